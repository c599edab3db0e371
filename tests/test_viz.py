"""The graph as DOT text: parsed back (nodes, edges, labels, styles), the reference MLP, files."""

import re
import shutil

import numpy as np
import pytest

import tinygrad_mlp.functional as F
from tinygrad_mlp import Tensor, nn, viz

NODE = re.compile(r'^\s*(n\d+) \[label="((?:[^"\\]|\\.)*)", (.*)\];$')
EDGE = re.compile(r"^\s*(n\d+) -> (n\d+);$")


def parse(dot):
    """{node: (label lines, attributes)} and [(from, to)]; fails on any line it cannot read."""
    lines = dot.strip().splitlines()
    assert lines[0].startswith("digraph ") and lines[0].endswith("{") and lines[-1] == "}"
    nodes, edges = {}, []
    for line in lines[1:-1]:
        if line.strip().startswith("node ["):
            continue
        if m := NODE.match(line):
            assert m.group(1) not in nodes, f"node {m.group(1)} declared twice"
            nodes[m.group(1)] = (m.group(2).split("\\n"), m.group(3))
        elif m := EDGE.match(line):
            edges.append(m.groups())
        else:
            raise AssertionError(f"unparsed DOT line: {line!r}")
    for a, b in edges:
        assert a in nodes and b in nodes, f"edge {a} -> {b} names an undeclared node"
    return nodes, edges


def by_label(nodes):
    return {tuple(label): (node, attrs) for node, (label, attrs) in nodes.items()}


def test_small_known_graph():
    a = Tensor(np.ones(3), requires_grad=True)
    x = Tensor(np.arange(3.0))
    loss = ((a * x) + a).sum()
    nodes, edges = parse(viz.to_dot(loss))
    assert len(nodes) == 5 and len(edges) == 5
    labels = by_label(nodes)
    expected = {("param", "(3,) float32 cpu"), ("data", "(3,) float32 cpu"),
                ("Mul", "(3,) float32 cpu"), ("Add", "(3,) float32 cpu"),
                ("Sum", "() float32 cpu")}
    assert set(labels) == expected
    node = {label[0]: n for label, (n, _) in labels.items()}
    assert sorted(edges) == sorted([(node["param"], node["Mul"]), (node["data"], node["Mul"]),
                                    (node["Mul"], node["Add"]), (node["param"], node["Add"]),
                                    (node["Add"], node["Sum"])])
    attrs = {label[0]: a for label, (_, a) in labels.items()}
    assert "filled" in attrs["param"] and "dashed" in attrs["data"]  # parameters stand apart
    assert "dashed" not in attrs["param"] and "filled" not in attrs["Mul"]
    assert [k for k, a in attrs.items() if "peripheries=2" in a] == ["Sum"]  # the output


def test_reference_mlp_shows_each_layer_op_once_and_each_parameter():
    model = nn.MLP([784, 512, 512, 10], init_scale=0.01)
    x = Tensor(np.random.default_rng(0).random((8, 784)))
    loss = F.cross_entropy(model(x), np.arange(8) % 10)
    nodes, edges = parse(viz.to_dot(loss, dict(model.named_parameters())))
    heads = [label[0] for label, _ in nodes.values()]
    assert sorted(heads) == sorted(["SoftmaxCrossEntropy", "Linear", "LinearReLU", "LinearReLU",
                                    "data", *dict(model.named_parameters())])
    labels = by_label(nodes)
    assert ("layers.0.weight", "(784, 512) float32 cpu") in labels
    assert ("LinearReLU", "(8, 512) float32 cpu") in labels
    assert ("SoftmaxCrossEntropy", "() float32 cpu") in labels
    fused = [label[0] for label, attrs in nodes.values() if "#ffe0b3" in attrs]
    assert sorted(fused) == ["Linear", "LinearReLU", "LinearReLU", "SoftmaxCrossEntropy"]
    assert len(edges) == 3 * 3 + 1  # (x, W, b) into each layer, logits into the loss


def test_unfused_mlp_shows_primitives():
    model = nn.MLP([6, 5, 3], fused=False)
    loss = F.cross_entropy(model(Tensor(np.ones((2, 6)))), [0, 2], fused=False)
    heads = [label[0] for label, _ in parse(viz.to_dot(loss))[0].values()]
    assert heads.count("MatMul") == 2 and heads.count("ReLU") == 1
    assert "LinearReLU" not in heads and "Log" in heads and "Exp" in heads


def test_freed_graph_is_an_error_and_retain_graph_keeps_it():
    a = Tensor([1.0, 2.0], requires_grad=True)
    loss = (a * a).sum()
    loss.backward(retain_graph=True)
    assert len(parse(viz.to_dot(loss))[0]) == 3
    loss.backward()
    with pytest.raises(ValueError, match="freed by backward"):
        viz.to_dot(loss)
    with pytest.raises(TypeError, match="expected a Tensor"):
        viz.to_dot(np.ones(2))


def test_quotes_in_names_are_escaped():
    a = Tensor([1.0], requires_grad=True)
    nodes, _ = parse(viz.to_dot(a * 2, {'w"1\\': a}))
    assert ['w\\"1\\\\', "(1,) float32 cpu"] in [label for label, _ in nodes.values()]


def test_write_graph_dot_and_missing_graphviz(tmp_path, monkeypatch):
    a = Tensor([1.0], requires_grad=True)
    path = viz.write_graph(a * 2, tmp_path / "g.dot")
    assert parse(path.read_text())[0] and sorted(p.name for p in tmp_path.iterdir()) == ["g.dot"]
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="needs Graphviz's 'dot' program"):
        viz.write_graph(a * 2, tmp_path / "g.svg")
    assert not (tmp_path / "g.svg").exists()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")
def test_write_graph_svg_with_graphviz(tmp_path):
    a = Tensor([1.0], requires_grad=True)
    svg = viz.write_graph(a * 2, tmp_path / "g.svg").read_text()
    assert "<svg" in svg and "Mul" in svg


def test_graph_freed_inside_and_retained_grads():
    a = Tensor(np.ones(3), requires_grad=True)
    h = a * 2
    h.retain_grad()
    l1, l2 = h.sum(), (h * h).sum()
    labels = [lines[0] for lines, _ in parse(viz.to_dot(l2))[0].values()]
    assert labels.count("Mul") == 2  # h = a * 2 (drawn as its op, not the wrapper) and h * h
    l1.backward()  # frees h's op, which l2's graph shares
    with pytest.raises(ValueError, match="freed by backward"):
        viz.to_dot(l2)
