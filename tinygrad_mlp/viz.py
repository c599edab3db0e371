"""The graph behind a tensor as Graphviz DOT text; SVG/PNG where the ``dot`` program exists.

One node per op (a :class:`~tinygrad_mlp.tensor.Function`, so a fused op is one node) and one per
leaf tensor, each labelled with op name (or leaf kind), shape, dtype and device. Edges follow the
data, from inputs to the op that reads them. Parameters (leaves that require grad) are filled boxes,
data and constants are dashed boxes, fused ops are filled ellipses.

``backward()`` frees the graph it walks (unless ``retain_graph=True``), so draw it before: the
trainer's ``--dump-graph`` does. A freed graph is an error, not an empty picture.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from . import functional as _functional
from .data import atomic_open
from .tensor import Tensor, _Freed, _RetainGrad

_STYLES = {
    "param": 'shape=box, style=filled, fillcolor="#cfe2ff"',
    "data": "shape=box, style=dashed",
    "op": "shape=ellipse",
    "fused": 'shape=ellipse, style=filled, fillcolor="#ffe0b3"',
}


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _describe(t: Tensor) -> str:
    return f"{tuple(t.shape)} {t.dtype} {t.device}"


def to_dot(tensor: Tensor, params: dict | None = None, name: str = "graph") -> str:
    """DOT text of the graph that produced `tensor`.

    `params` maps names to tensors (e.g. ``dict(model.named_parameters())``) to label leaves by
    name. Raises ValueError when `tensor`'s graph was already freed by ``backward()``.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dot: expected a Tensor, got {type(tensor).__name__}")
    names = {id(t): n for n, t in (params or {}).items()}
    ids: dict[int, str] = {}

    def node_id(t):
        return ids.setdefault(id(t), f"n{len(ids)}")

    nodes, edges, done, stack = [], [], set(), [tensor]
    while stack:  # iterative: deep graphs must not hit the recursion limit
        t = stack.pop()
        if id(t) in done:
            continue
        done.add(id(t))
        node, ctx = node_id(t), t._ctx
        if isinstance(ctx, _Freed):
            raise ValueError(f"to_dot: the graph of this tensor was freed by backward() (at "
                             f"{ctx.op}); call to_dot before backward(), or pass "
                             "retain_graph=True to backward()")
        if isinstance(ctx, _RetainGrad):  # retain_grad() wraps the op; draw the op itself
            ctx = ctx.ctx
        if ctx is None:
            kind = "param" if t.requires_grad else "data"
            label = f"{names.get(id(t), kind)}\n{_describe(t)}"
        else:
            kind = "fused" if type(ctx).__module__ == _functional.__name__ else "op"
            label = f"{type(ctx).__name__.lstrip('_')}\n{_describe(t)}"
            edges += [f"  {node_id(parent)} -> {node};" for parent in ctx.parents]
            stack.extend(reversed(ctx.parents))
        extra = ", peripheries=2" if t is tensor else ""
        nodes.append(f"  {node} [label={_quote(label)}, {_STYLES[kind]}{extra}];")
    body = "\n".join(nodes + edges)
    return f"digraph {_quote(name)} {{\n  node [fontname=\"Helvetica\", fontsize=10];\n{body}\n}}\n"


RENDERED = (".svg", ".png", ".pdf")  # suffixes rendered by Graphviz's dot program


def write_graph(tensor_or_dot, path, params: dict | None = None) -> Path:
    """Write the graph to `path` (atomically), in the format its suffix names.

    ``.dot`` / ``.gv`` (or any other suffix) write DOT text; ``.svg``, ``.png`` and ``.pdf`` run
    Graphviz's ``dot`` program, and raise RuntimeError where it is not installed.
    """
    dot = tensor_or_dot if isinstance(tensor_or_dot, str) else to_dot(tensor_or_dot, params)
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if path.suffix.lower() in RENDERED:
        exe = shutil.which("dot")
        if exe is None:
            raise RuntimeError(f"writing {path}: .{fmt} needs Graphviz's 'dot' program, which is "
                               "not installed (apt install graphviz); .dot text needs nothing")
        done = subprocess.run([exe, f"-T{fmt}"], input=dot.encode(), capture_output=True)
        if done.returncode != 0:
            raise RuntimeError(f"writing {path}: dot failed: {done.stderr.decode().strip()}")
        content = done.stdout
    else:
        content = dot.encode()
    with atomic_open(path) as f:
        f.write(content)
    return path
