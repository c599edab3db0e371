"""Tensor, Function/ctx and reverse-mode autodiff over NumPy (CPU) or CuPy (GPU) arrays.

A short list of primitives (unary, binary, reduce, movement, matmul) carries hand-written gradients;
everything else (mean, softmax, flatten, reflected operators) is composed once from them on Tensor.
"""

from __future__ import annotations

import contextlib
import functools
import math
import operator
import weakref

import numpy as np

from . import device as _dev
from . import dtypes as _dtypes

_grad_enabled = True
_profiler = None  # a tinygrad_mlp.profiler.Profile while one records; else one `is None` test


class no_grad(contextlib.ContextDecorator):
    """Context manager (and decorator): operations inside record no graph."""

    def __enter__(self):
        global _grad_enabled
        # A stack, so one instance used as a decorator survives nested and recursive calls.
        self.__dict__.setdefault("_prev", []).append(_grad_enabled)
        _grad_enabled = False

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev.pop()


def _dims(axis, keepdims, dim, keepdim):
    """torch's ``dim=``/``keepdim=`` beside NumPy's ``axis=``/``keepdims=`` (torch takes both)."""
    return (axis if dim is None else dim), (keepdims if keepdim is None else keepdim)


def _broadcasts(a: tuple, b: tuple) -> bool:
    return all(x == y or 1 in (x, y) for x, y in zip(reversed(a), reversed(b)))


def unbroadcast(grad, shape):
    """Sum `grad` over the axes that broadcasting added or stretched, back to `shape`."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1
    )
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


class _Freed:
    """Stands in for an op whose saved arrays backward() freed: reaching it again raises."""

    parents = ()

    def __init__(self, op: str):
        self.op = op

    def backward(self, grad):
        raise RuntimeError(f"backward through {self.op} a second time: its graph was already "
                           "freed by an earlier backward(); pass retain_graph=True to the first "
                           "backward() to keep it")


class _RetainGrad:
    """Wraps a non-leaf tensor's op so backward() also stores the gradient reaching the tensor."""

    def __init__(self, ctx, tensor: Tensor):
        self.ctx, self.parents, self.freed = ctx, ctx.parents, ctx.freed
        self.tensor = weakref.ref(tensor)  # no cycle: backward() reaches us only through it

    def backward(self, grad):
        self.tensor()._accumulate_grad(grad.copy())  # its own array, not one a leaf also gets
        return self.ctx.backward(grad)


def _host_values(items):
    """Nested lists/tuples with any tensors in them replaced by their host arrays."""
    return [_host_values(x) if isinstance(x, (list, tuple))
            else x.numpy() if isinstance(x, Tensor) else x for x in items]


class Function:
    """One op: the instance is the context that `forward` fills and `backward` reads.

    `forward(*arrays, **params)` returns an array; `backward(grad)` returns one gradient array (or
    None) per Tensor input. `self.needs_input_grad[i]` says whether input i wants a gradient.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.freed = _Freed(cls.__name__)  # what backward() leaves in place of a used node

    def __init__(self, *parents: Tensor):
        self.parents = parents
        self.needs_input_grad = tuple(p.requires_grad for p in parents)
        self.saved_tensors = ()

    def save_for_backward(self, *arrays):
        self.saved_tensors = arrays

    def forward(self, *arrays, **params):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *tensors: Tensor, **params) -> Tensor:
        device = tensors[0].device
        for t in tensors[1:]:
            if t.device != device:
                raise RuntimeError(f"{cls.__name__}: tensors are on different devices: "
                                   f"{device} and {t.device}")
        ctx = cls(*tensors)
        arrays = [t.data for t in tensors]
        data = (ctx.forward(*arrays, **params) if _profiler is None
                else _profiler.wrap(ctx, "forward")(*arrays, **params))
        if isinstance(data, np.generic):  # NumPy reductions return scalars; keep 0-d arrays
            data = np.asarray(data)
        out = Tensor._wrap(data, device)
        if _grad_enabled and any(ctx.needs_input_grad):
            out.requires_grad, out._ctx, out.is_leaf = True, ctx, False
        return out

    def __repr__(self):
        return f"<{type(self).__name__}>"


class Tensor:
    """An n-dimensional array with reverse-mode autodiff.

    `data` may be a NumPy or CuPy array, a Tensor, a Python scalar or nested list; it is copied
    (into a C-contiguous array), like ``torch.tensor``: use :meth:`from_numpy` to share memory.
    Float data becomes float32 unless `dtype` is given; integer and bool data keep their dtype.
    `device` is "cpu", "gpu", "cuda" or "cuda:N"; by default the device the data already lives on.
    """

    __slots__ = ("data", "grad", "requires_grad", "device", "is_leaf", "_ctx", "__weakref__")
    __array_ufunc__ = None  # NumPy values on the left defer to our reflected operators
    _rng = np.random.default_rng()

    def __init__(self, data, requires_grad=False, device=None, dtype=None):
        src = data.data if isinstance(data, Tensor) else data
        fresh = isinstance(src, (list, tuple))
        if fresh:  # a new host array; tensors inside are read too (torch.tensor([t0, t1]) works)
            try:
                src = np.asarray(src)
                if src.dtype == object:
                    src = np.asarray(_host_values(data))
            except ValueError:
                raise ValueError("Tensor: nested lists must be rectangular (every row of one "
                                 "length)") from None
        if device is None:  # Python data (lists, scalars) goes to the CPU
            device = "cpu" if fresh or isinstance(src, (int, float)) else _dev.device_of(src)
        self.device = _dev.canonical(device)
        data = _dev.to_device(src, self.device)
        if dtype is None:
            dtype = np.float32 if data.dtype.kind == "f" else data.dtype
        # A copy of the caller's array (none if it is already a fresh one).
        data = data.astype(dtype, order="C", copy=data is src and not fresh)
        _dtypes.check(data.dtype, requires_grad)
        self.data, self.grad, self.requires_grad = data, None, requires_grad
        self.is_leaf, self._ctx = True, None

    @classmethod
    def from_numpy(cls, array: np.ndarray, requires_grad=False) -> Tensor:
        """A CPU tensor sharing `array`'s memory and dtype (float64 stays float64), like
        ``torch.from_numpy``: in-place changes (an optimizer step) show in both."""
        if not isinstance(array, np.ndarray):
            raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
        _dtypes.check(array.dtype, requires_grad)
        return cls._wrap(array, "cpu", requires_grad)

    @classmethod
    def _wrap(cls, array, device, requires_grad=False):
        """Wrap an array already on `device` (canonical name) without checks or copies."""
        t = object.__new__(cls)
        t.data, t.grad, t.requires_grad, t.device = array, None, requires_grad, device
        t.is_leaf, t._ctx = True, None
        return t

    # ---- construction -------------------------------------------------------------------
    @staticmethod
    def manual_seed(seed: int):
        """Seed the generator behind Tensor.uniform/randn (drawn on the host, so CPU and GPU
        runs with one seed start from the same numbers)."""
        Tensor._rng = np.random.default_rng(seed)

    @staticmethod
    def _shape(shape):
        return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape

    @classmethod
    def zeros(cls, *shape, device="cpu", dtype=np.float32, requires_grad=False):
        return cls(np.zeros(cls._shape(shape), dtype), requires_grad, device, dtype)

    @classmethod
    def ones(cls, *shape, device="cpu", dtype=np.float32, requires_grad=False):
        return cls(np.ones(cls._shape(shape), dtype), requires_grad, device, dtype)

    @classmethod
    def uniform(cls, *shape, low=-1.0, high=1.0, device="cpu", dtype=np.float32,
                requires_grad=False):
        data = cls._rng.uniform(low, high, cls._shape(shape)).astype(dtype)
        return cls(data, requires_grad, device, dtype)

    @classmethod
    def randn(cls, *shape, device="cpu", dtype=np.float32, requires_grad=False):
        data = cls._rng.standard_normal(cls._shape(shape)).astype(dtype)
        return cls(data, requires_grad, device, dtype)

    @classmethod
    def rand(cls, *shape, **kwargs):
        """U[0, 1), as torch.rand."""
        return cls.uniform(*shape, low=0.0, high=1.0, **kwargs)

    @classmethod
    def full(cls, shape, fill_value, device="cpu", dtype=None, requires_grad=False):
        """`shape` filled with `fill_value`; dtype from the value (floats float32), as torch."""
        data = np.full(shape, fill_value, dtype=dtype)
        return cls(data, requires_grad, device, dtype)

    @classmethod
    def arange(cls, start, stop=None, step=1, device="cpu", dtype=None, requires_grad=False):
        """Evenly spaced values in [start, stop) (int64 from ints, float32 otherwise)."""
        data = np.arange(start, stop, step) if stop is not None else np.arange(start)
        return cls(data, requires_grad, device, dtype)

    @classmethod
    def eye(cls, n, m=None, device="cpu", dtype=np.float32, requires_grad=False):
        return cls(np.eye(n, m, dtype=dtype), requires_grad, device, dtype)

    def zeros_like(self, **kwargs) -> Tensor:
        return Tensor.zeros(*self.shape, **{"device": self.device, "dtype": self.dtype, **kwargs})

    def ones_like(self, **kwargs) -> Tensor:
        return Tensor.ones(*self.shape, **{"device": self.device, "dtype": self.dtype, **kwargs})

    # ---- properties and conversion ------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def T(self):
        return self.transpose()  # all axes reversed (numpy's and torch's .T)

    def size(self, dim=None):
        """The shape as a tuple (torch's ``torch.Size``), or the length of axis `dim`."""
        if dim is not None and not -self.ndim <= dim < self.ndim:
            raise ValueError(f"size: dim {dim} is out of range for shape {self.shape}")
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int: return self.data.size

    def numpy(self) -> np.ndarray:
        """A host NumPy array (a copy from the GPU; the array itself on the CPU)."""
        return _dev.to_device(self.data, "cpu")

    def tolist(self): return self.data.tolist()  # nested lists; a 0-d tensor: a scalar

    def item(self):
        if self.data.size != 1:
            raise ValueError("only tensors with one element convert to Python scalars (item(), "
                             f"float(), int()), got shape {self.shape}")
        return self.data.item()

    # Python scalars from one-element tensors, as in torch (a host sync on the GPU).
    def __float__(self): return float(self.item())
    def __int__(self): return int(self.item())

    def __index__(self):  # range(t), a[t]: integer tensors of one element, as torch
        if self.data.dtype.kind not in "iub":
            raise TypeError(f"only integer tensors of a single element can be converted to an "
                            f"index, not {self.dtype}")
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(f"bool() of a tensor of shape {self.shape} is ambiguous")
        return bool(self.item())

    def to(self, device) -> Tensor:
        """This tensor on `device`: itself if already there, else a copy (same dtype) that keeps
        requires_grad as a new leaf."""
        device = _dev.canonical(device)
        if device == self.device:
            return self
        return Tensor._wrap(_dev.to_device(self.data, device), device, self.requires_grad)

    def cast(self, dtype) -> Tensor:
        """This tensor as `dtype` (itself if it already is); gradients flow back as the old one."""
        return self if self.data.dtype == dtype else Cast.apply(self, dtype=np.dtype(dtype))

    def float(self) -> Tensor: return self.cast(np.float32)
    def double(self) -> Tensor: return self.cast(np.float64)
    def long(self) -> Tensor: return self.cast(np.int64)
    def cpu(self) -> Tensor: return self.to("cpu")

    def detach(self) -> Tensor:
        return Tensor._wrap(self.data, self.device)

    def clone(self) -> Tensor:
        """A copy that stays in the graph (its gradient flows back here), as torch."""
        return Cast.apply(self, dtype=self.data.dtype)  # astype copies; -0.0 and NaN kept

    def __setitem__(self, index, value):
        """``t[index] = value`` in place (basic or advanced index), for a tensor outside the
        graph: one that needs no gradient, or a leaf inside ``no_grad()`` (as torch)."""
        if self.requires_grad and (_grad_enabled or not self.is_leaf):
            raise RuntimeError("item assignment into a tensor that requires grad: do it inside "
                               "no_grad() on a leaf (a graph cannot record it here)")
        parts = index if isinstance(index, tuple) else (index,)
        if not Tensor._basic(parts):
            index = self._advanced_index(parts)
        self.data[index] = (value.to(self.device).data if isinstance(value, Tensor)
                            else self._other(value).data if np.ndim(value) == 0
                            else Tensor(value, device=self.device, dtype=self.dtype).data)

    def zero_(self) -> Tensor: return self.fill_(0)

    def fill_(self, value) -> Tensor:
        self[...] = value
        return self

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.numpy(), separator=", ", prefix="Tensor(", threshold=20)
        return f"Tensor({body}, device={self.device!r}, dtype={self.dtype}{grad})"

    def __len__(self):
        return len(self.data)

    def __iter__(self):  # rows, as torch; a 0-d tensor raises (len) instead of yielding nothing
        return (self[i] for i in range(len(self)))

    # ---- autodiff -----------------------------------------------------------------------
    def _toposort(self):
        """A list of this tensor and every tensor it depends on through ops that need a gradient,
        each before the tensors it was made from."""
        # Iterative post-order DFS: deep graphs (thousands of ops) must not hit the recursion limit.
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                if node._ctx is not None:
                    stack.extend((p, False) for p in node._ctx.parents if p.requires_grad)
        return order[::-1]

    def backward(self, grad=None, retain_graph=False, *, _order=None):
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`, like PyTorch.

        `grad` defaults to 1 for a one-element tensor; otherwise it must have this tensor's shape.
        Gradients arrive in each tensor's own dtype. Only leaves (and tensors that called
        :meth:`retain_grad`) get `.grad`. The graph is freed afterwards unless `retain_graph` is
        True; a later backward() that reaches a freed op raises (even ops that saved nothing,
        which torch could re-run). (`_order`: this tensor's :meth:`_toposort`, from a caller that
        has already walked the graph.)
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad")
        xp = _dev.module_of(self.data)
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"grad can be implicit only for one-element outputs, "
                                   f"not shape {self.shape}")
            grad = xp.ones(self.shape, self.dtype)
        else:
            grad = grad.data if isinstance(grad, Tensor) else grad
            grad = xp.array(grad, dtype=self.dtype)  # a copy: the caller keeps its array
            if grad.shape != self.shape:
                raise ValueError(f"backward: grad shape {grad.shape} != tensor shape {self.shape}")
        grads = {id(self): grad}
        for node in self._toposort() if _order is None else _order:
            g = grads.pop(id(node), None)
            if g is None:
                continue
            ctx = node._ctx
            if ctx is None:
                node._accumulate_grad(g)
                continue
            parent_grads = (ctx.backward(g) if _profiler is None
                            else _profiler.wrap(ctx, "backward")(g))
            if not isinstance(parent_grads, tuple):
                parent_grads = (parent_grads,)
            for parent, pg in zip(ctx.parents, parent_grads):
                if pg is None or not parent.requires_grad:
                    continue
                if pg.shape != parent.shape:
                    raise RuntimeError(f"{type(ctx).__name__}.backward gave a gradient of shape "
                                       f"{pg.shape} for an input of shape {parent.shape}")
                prev = grads.get(id(parent))
                grads[id(parent)] = pg if prev is None else prev + pg
            if not retain_graph:
                node._ctx = ctx.freed  # drop the saved arrays; a second pass here raises

    def _accumulate_grad(self, g):
        if g.dtype != self.data.dtype:  # e.g. from a custom Function: keep the tensor's dtype
            g = g.astype(self.data.dtype)
        self.grad = Tensor._wrap(g if self.grad is None else self.grad.data + g, self.device)

    def requires_grad_(self, requires_grad=True) -> Tensor:
        """Set `requires_grad` in place and return self, as torch: floating-point tensors only,
        and only a leaf may stop requiring grad (detach() a result instead)."""
        if not requires_grad and not self.is_leaf:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor: only leaves can "
                               "change it; use .detach() for a tensor outside the graph")
        _dtypes.check(self.data.dtype, requires_grad)
        self.requires_grad = requires_grad
        return self

    def retain_grad(self):
        """Let this non-leaf tensor keep its gradient in `.grad` on backward(), as in torch."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        if self._ctx is not None and not isinstance(self._ctx, (_RetainGrad, _Freed)):
            self._ctx = _RetainGrad(self._ctx, self)

    # ---- binary ops (with broadcasting, scalars and reflected forms) --------------------
    def _other(self, x) -> Tensor:
        if isinstance(x, Tensor):
            return x
        if isinstance(x, (int, float, bool, np.generic)):
            dtype = self.data.dtype  # an int tensor * 0.5 is float32 in torch:
            dtype = dtype if dtype.kind == "f" else _dtypes.of_scalar(dtype, x)
            # A fill, not a host-to-device copy: allowed inside CUDA-graph capture.
            xp = _dev.module_of(self.data)
            return Tensor._wrap(xp.full((), x, dtype=dtype), self.device)
        return Tensor(x, device=self.device)  # an array: its own dtype (floats as float32)

    def _binary(self, fn, other, reflected=False):
        other = self._other(other)
        a, b = (other, self) if reflected else (self, other)
        if a.data.dtype != b.data.dtype or (fn is Div and a.data.dtype.kind != "f"):
            dtype = _dtypes.result(a.data.dtype, a.ndim == 0, b.data.dtype, b.ndim == 0, fn is Div)
            a, b = a.cast(dtype), b.cast(dtype)
        if a.shape != b.shape and not _broadcasts(a.shape, b.shape):
            raise ValueError(f"{fn.__name__}: shapes {a.shape} and {b.shape} do not broadcast")
        return fn.apply(a, b)

    def __add__(self, x): return self._binary(Add, x)
    def __radd__(self, x): return self._binary(Add, x, True)
    def __sub__(self, x): return self._binary(Sub, x)
    def __rsub__(self, x): return self._binary(Sub, x, True)
    def __mul__(self, x): return self._binary(Mul, x)
    def __rmul__(self, x): return self._binary(Mul, x, True)
    def __truediv__(self, x): return self._binary(Div, x)
    def __rtruediv__(self, x): return self._binary(Div, x, True)
    def __neg__(self): return 0 - self if self.data.dtype.kind == "u" else self * -1  # torch wraps

    def _inplace(self, fn, x):
        """``t += x`` etc. Outside the graph (``p -= lr * p.grad`` in no_grad) t's array is
        updated in place, as in torch; recorded in a graph, the result is a new node."""
        out = self._binary(fn, x)
        if out.requires_grad and self.is_leaf and self.requires_grad:
            raise RuntimeError(f"in-place {fn.__name__} on a leaf that requires grad: update it "
                               "inside no_grad(), as torch asks")
        if out.requires_grad:
            return out
        if out.shape != self.shape or not np.can_cast(out.dtype, self.dtype, "same_kind"):
            raise ValueError(f"in-place {fn.__name__}: the result ({out.shape}, {out.dtype}) does "
                             f"not fit this tensor ({self.shape}, {self.dtype})")
        self.data[...] = out.data
        return self

    def __iadd__(self, x): return self._inplace(Add, x)
    def __isub__(self, x): return self._inplace(Sub, x)
    def __imul__(self, x): return self._inplace(Mul, x)
    def __itruediv__(self, x): return self._inplace(Div, x)

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor) or np.ndim(exponent) != 0:  # elementwise exponents
            return self._binary(PowTensor, exponent)
        if self.data.dtype.kind == "f" or isinstance(exponent, (float, np.floating)):
            return Pow.apply(self._floating(), exponent=float(exponent))
        if exponent < 0:
            raise ValueError(f"{self.dtype} ** {exponent}: no negative powers of integers (torch)")
        base = self.cast(np.int64) if self.data.dtype.kind == "b" else self  # bool ** 2: int64
        return Pow.apply(base, exponent=int(exponent))

    def __rpow__(self, base): return self._binary(PowTensor, base, True)  # 2 ** t
    # torch's method names for the operators
    def add(self, x): return self + x
    def sub(self, x): return self - x
    def mul(self, x): return self * x
    def div(self, x): return self / x
    def pow(self, x): return self ** x
    def neg(self): return -self
    def matmul(self, x): return self @ x

    def __matmul__(self, other):
        other = self._other(other)
        if (0 in (self.ndim, other.ndim) or self.shape[-1] != other.shape[-min(other.ndim, 2)]
                or not _broadcasts(self.shape[:-2], other.shape[:-2])):  # batch dimensions
            raise ValueError(f"matmul: shapes {self.shape} and {other.shape} do not align")
        if self.data.dtype != other.data.dtype:
            raise TypeError(f"matmul: dtypes {self.dtype} and {other.dtype} differ; cast one")
        return MatMul.apply(self, other)

    def __rmatmul__(self, other):
        return self._other(other).__matmul__(self)

    # ---- comparisons: bool tensors outside the graph, as in torch -----------------------
    def _compare(self, op, x):
        if x is None or isinstance(x, str):  # t == None is False, as in torch; t < None raises
            return NotImplemented
        other = self._other(x)
        if not _broadcasts(self.shape, other.shape):
            raise ValueError(f"comparison: shapes {self.shape} and {other.shape} do not broadcast")
        return Tensor(op(self.data, other.data), device=self.device)

    def __eq__(self, x): return self._compare(operator.eq, x)
    def __ne__(self, x): return self._compare(operator.ne, x)
    def __lt__(self, x): return self._compare(operator.lt, x)
    def __le__(self, x): return self._compare(operator.le, x)
    def __gt__(self, x): return self._compare(operator.gt, x)
    def __ge__(self, x): return self._compare(operator.ge, x)

    __hash__ = object.__hash__  # by identity (defining __eq__ would drop it), as torch

    # ---- unary ops ----------------------------------------------------------------------
    def _floating(self):
        """Self, or as float32 if bool/integer: what torch gives float-only ops (exp, log...)."""
        return self if self.data.dtype.kind == "f" else self.cast(np.float32)

    def exp(self): return Exp.apply(self._floating())
    def log(self): return Log.apply(self._floating())
    def relu(self): return ReLU.apply(self)
    def sigmoid(self): return Sigmoid.apply(self._floating())
    def tanh(self): return Tanh.apply(self._floating())
    def sqrt(self): return Sqrt.apply(self._floating())
    def __abs__(self): return self.abs()

    def abs(self):
        if self.data.dtype.kind == "b":
            raise TypeError("abs() of a bool tensor is not implemented (as in torch)")
        return Abs.apply(self)

    def clamp(self, min=None, max=None):
        """Limit values to [min, max] (scalar bounds, either may be None); the gradient passes
        where min <= x <= max, bounds included, as torch. A float bound makes integers float32."""
        if min is None and max is None:
            raise ValueError("clamp: at least one of min and max must be given")
        if isinstance(min, Tensor) or isinstance(max, Tensor):
            raise TypeError("clamp: min and max must be Python or NumPy scalars, not tensors")
        dtype = functools.reduce(_dtypes.of_scalar, (b for b in (min, max) if b is not None),
                                 self.data.dtype)
        low, high = (None if b is None else dtype.type(b) for b in (min, max))
        return Clamp.apply(self.cast(dtype), low=low, high=high)

    clip = clamp

    # ---- reductions ---------------------------------------------------------------------
    def _axes(self, axis):
        if axis is None:
            return tuple(range(self.ndim))
        axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
        for a in axes:
            if not -max(self.ndim, 1) <= a < max(self.ndim, 1):
                raise ValueError(f"axis {a} is out of range for shape {self.shape}")
        return tuple(int(a) % self.ndim for a in axes) if self.ndim else ()  # 0-d: as torch

    def sum(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis, keepdims = _dims(axis, keepdims, dim, keepdim)
        x = self if self.data.dtype.kind == "f" else self.cast(np.int64)  # as torch: int64 sums
        return Sum.apply(x, axis=self._axes(axis), keepdims=keepdims)

    def max(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """The largest values over `axis` (torch's ``amax``: ties share the gradient equally)."""
        return self._extreme("max", *_dims(axis, keepdims, dim, keepdim))

    def min(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """The smallest values over `axis` (torch's ``amin``: ties share the gradient equally)."""
        return self._extreme("min", *_dims(axis, keepdims, dim, keepdim))

    def _extreme(self, name, axis, keepdims):
        axes = self._axes(axis)
        if self.data.size == 0 and any(self.shape[a] == 0 for a in axes):
            raise ValueError(f"{name} over an axis of length 0 (shape {self.shape}, axis {axis})")
        return (Max if name == "max" else Min).apply(self, axis=axes, keepdims=keepdims)

    def argmax(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """int64 indices of the max along one axis (of the flattened tensor if None); no grad."""
        axis, keepdims = _dims(axis, keepdims, dim, keepdim)
        axis = self._axes(axis)[0] if axis is not None and self.ndim else None
        out = _dev.module_of(self.data).argmax(self.data, axis=axis, keepdims=keepdims)
        return Tensor(out.astype(np.int64), device=self.device)

    def mean(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis, keepdims = _dims(axis, keepdims, dim, keepdim)
        _dtypes.require_float(self.data.dtype, "mean()")
        axes = self._axes(axis)
        count = math.prod(self.shape[a] for a in axes)
        return self.sum(axes, keepdims) * (1.0 / count if count else math.nan)  # empty: nan

    # ---- movement -----------------------------------------------------------------------
    def reshape(self, *shape):
        shape = Tensor._shape(shape)
        try:
            new_shape = np.empty(self.shape, dtype=[]).reshape(shape).shape
        except ValueError:
            raise ValueError(f"reshape: cannot reshape {self.shape} into {shape}") from None
        return Reshape.apply(self, shape=new_shape)

    def view(self, *shape):
        """:meth:`reshape` under torch's name (it never fails for strides: there are none)."""
        return self.reshape(*shape)

    def squeeze(self, dim=None):
        """Drop axes of length 1: all of them, or those of `dim` (an int or a tuple) that are 1."""
        axes = self._axes(dim)
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if n != 1 or i not in axes))

    def unsqueeze(self, dim):
        """Insert an axis of length 1 at `dim` (a negative dim counts as ``dim + ndim + 1``)."""
        if not -self.ndim - 1 <= dim <= self.ndim:
            raise ValueError(f"dim {dim} is out of range for a new axis in shape {self.shape}")
        dim %= self.ndim + 1
        return self.reshape(*self.shape[:dim], 1, *self.shape[dim:])

    def expand(self, *sizes):
        """Broadcast to `sizes` without copying: -1 keeps an axis, new axes may lead, as torch."""
        sizes = Tensor._shape(sizes)
        lead = len(sizes) - self.ndim
        shape = tuple(self.shape[i - lead] if s == -1 and i >= lead else s
                      for i, s in enumerate(sizes))
        if (lead < 0 or min(shape, default=0) < 0
                or any(n not in (1, s) for n, s in zip(self.shape, shape[lead:]))):
            raise ValueError(f"expand: cannot expand shape {self.shape} to {sizes}")
        return Expand.apply(self, shape=shape)

    @staticmethod
    def cat(tensors, dim=0) -> Tensor:
        """Join tensors along their axis `dim` (as ``torch.cat``); the other axes must match.
        Mixed dtypes promote as in arithmetic; each input gets its slice of the gradient."""
        tensors = Tensor._joinable("cat", tensors)
        first = tensors[0]
        if first.ndim == 0:
            raise ValueError("cat: 0-d tensors cannot be concatenated (stack them instead)")
        axis = first._axes(dim)[0]
        for i, t in enumerate(tensors):
            if t.ndim != first.ndim or any(t.shape[k] != first.shape[k]
                                           for k in range(t.ndim) if k != axis):
                raise ValueError(f"cat: shapes {first.shape} (tensor 0) and {t.shape} (tensor {i})"
                                 f" differ outside dim {dim}")
        return Cat.apply(*tensors, axis=axis)

    @staticmethod
    def stack(tensors, dim=0) -> Tensor:
        """Join equal-shaped tensors along a new axis `dim` (as ``torch.stack``)."""
        tensors = Tensor._joinable("stack", tensors)
        for i, t in enumerate(tensors):
            if t.shape != tensors[0].shape:
                raise ValueError(f"stack: shapes {tensors[0].shape} (tensor 0) and {t.shape} "
                                 f"(tensor {i}) differ; stack needs equal shapes")
        return Tensor.cat([t.unsqueeze(dim) for t in tensors], dim)

    @staticmethod
    def _joinable(op, tensors) -> list:
        """cat/stack's inputs checked (a non-empty sequence of tensors on one device) and cast
        to their common dtype."""
        if not (isinstance(tensors, (list, tuple)) and all(isinstance(t, Tensor) for t in tensors)):
            raise TypeError(f"{op}: expected a list or tuple of Tensors, got {tensors!r:.80}")
        if not tensors:
            raise ValueError(f"{op}: expected a non-empty list of tensors")
        devices = sorted({t.device for t in tensors})
        if len(devices) > 1:
            raise RuntimeError(f"{op}: tensors are on different devices: {' and '.join(devices)}")
        dtype = functools.reduce(lambda d, t: _dtypes.result(d, False, t.dtype, False), tensors,
                                 tensors[0].dtype)
        return [t.cast(dtype) for t in tensors]

    def flatten(self, start_dim=0, end_dim=-1):
        start, end = (self._axes(d)[0] if self.ndim else 0 for d in (start_dim, end_dim))
        if start > end:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} "
                             f"for shape {self.shape}")
        return self.reshape(*self.shape[:start], math.prod(self.shape[start:end + 1]),
                            *self.shape[end + 1:])

    def transpose(self, *axes):
        """Swap two axes, as torch's ``transpose(dim0, dim1)``; with none, reverse all (``.T``);
        with all of them, permute like :meth:`permute` (NumPy's ``transpose(axes)``)."""
        if len(axes) == 2 and all(-self.ndim <= a < self.ndim for a in axes):
            order = list(range(self.ndim))
            order[axes[0]], order[axes[1]] = order[axes[1]], order[axes[0]]
            return self.permute(order)
        return self.permute(*axes)

    def permute(self, *axes):
        """Reorder the axes: axis i of the result is axis ``axes[i]`` of this tensor."""
        given = Tensor._shape(axes)
        axes = tuple(int(a) % self.ndim if -self.ndim <= a < self.ndim else -1 for a in given)
        axes = axes or tuple(reversed(range(self.ndim)))
        if sorted(axes) != list(range(self.ndim)):
            raise ValueError(f"permute/transpose: axes {given} do not fit shape {self.shape}")
        return Transpose.apply(self, axes=axes)

    def __getitem__(self, index):
        parts = index if isinstance(index, tuple) else (index,)
        if Tensor._basic(parts):
            return Slice.apply(self, index=index)
        return Gather.apply(self, index=self._advanced_index(parts))

    @staticmethod
    def _basic(parts) -> bool:
        """Only ints, slices, None and ...: NumPy's basic indexing (views, no arrays)."""
        return all(p is None or p is Ellipsis or isinstance(p, (int, np.integer, slice))
                   and not isinstance(p, bool) for p in parts)

    def _advanced_index(self, parts) -> tuple:
        """Index parts with integer or bool arrays (tensors, lists, ranges, NumPy arrays) moved to
        this tensor's device, integer ones checked against their axis (CuPy would wrap)."""
        out = []
        for p in parts:
            if isinstance(p, Tensor):
                p = p.data
            elif isinstance(p, (list, tuple, range, bool, np.bool_)):
                p = np.asarray(p)
            if not (p is None or p is Ellipsis or isinstance(p, (int, np.integer, slice))):
                if not hasattr(p, "dtype") or p.dtype.kind not in "iub":
                    raise TypeError(f"index parts must be ints, slices, None, ..., or integer or "
                                    f"bool arrays/tensors, got {p!r:.60}")
                p = _dev.to_device(p, self.device)
            out.append(p)
        used = sum(p.ndim if getattr(p, "dtype", None) == np.bool_ else p is not None
                   and p is not Ellipsis for p in out)
        axis = 0
        for p in out:
            axis += self.ndim - used if p is Ellipsis else 0
            if p is None or p is Ellipsis:
                continue
            if axis >= self.ndim:
                raise IndexError(f"too many indices for a tensor of shape {self.shape}")
            if hasattr(p, "dtype") and p.dtype.kind in "iu" and p.size:
                size, low, high = self.shape[axis], int(p.min()), int(p.max())
                if low < -size or high >= size:
                    bad = low if low < -size else high
                    raise IndexError(f"index {bad} is out of bounds for axis {axis} with size "
                                     f"{size}")
            axis += p.ndim if getattr(p, "dtype", None) == np.bool_ else 1
        return tuple(out)

    # ---- composites ---------------------------------------------------------------------
    def _minus_max(self, axis, op):
        # Shift by the (constant) max so exp never overflows; the shift cancels exactly.
        _dtypes.require_float(self.data.dtype, op)
        if self.data.size == 0:
            return self  # nothing to shift, and no max over a length-0 axis
        return self - self.max(axis, keepdims=True).detach()

    def softmax(self, axis=-1, *, dim=None):
        axis = axis if dim is None else dim
        e = self._minus_max(axis, "softmax").exp()
        return e / e.sum(axis, keepdims=True)

    def log_softmax(self, axis=-1, *, dim=None):
        axis = axis if dim is None else dim
        shifted = self._minus_max(axis, "log_softmax")
        return shifted - shifted.exp().sum(axis, keepdims=True).log()


# ---- primitives -------------------------------------------------------------------------
class Add(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, g):
        ga, gb = unbroadcast(g, self.shapes[0]), unbroadcast(g, self.shapes[1])
        # Two leaves must not share one .grad array (`a.grad *= 2` would scale both).
        return ga, gb.copy() if gb is ga and all(self.needs_input_grad) else gb


class Sub(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, g):
        return unbroadcast(g, self.shapes[0]), unbroadcast(-g, self.shapes[1])


class Mul(Function):
    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a * b

    def backward(self, g):
        a, b = self.saved_tensors
        return (unbroadcast(g * b, a.shape) if self.needs_input_grad[0] else None,
                unbroadcast(g * a, b.shape) if self.needs_input_grad[1] else None)


class Div(Function):
    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a / b

    def backward(self, g):
        a, b = self.saved_tensors
        return (unbroadcast(g / b, a.shape) if self.needs_input_grad[0] else None,
                # (a / b) / b as torch: b * b underflows to 0 for tiny b where this does not
                unbroadcast(-g * (a / b / b), b.shape) if self.needs_input_grad[1] else None)


class Pow(Function):
    def forward(self, a, exponent):
        self.save_for_backward(a)
        self.exponent = exponent
        return a ** (a.dtype.type(exponent) if a.dtype.kind == "f" else exponent)

    def backward(self, g):
        (a,) = self.saved_tensors
        if self.exponent == 0:  # d(x**0)/dx = 0 everywhere, x = 0 included (as torch)
            return _dev.module_of(a).zeros_like(a)
        e = a.dtype.type(self.exponent)
        return g * e * a ** (e - 1)


class PowTensor(Function):
    """``a ** b`` with b a tensor too; torch's gradients (b's is 0 where a == 0 and b >= 0)."""

    def forward(self, a, b):
        with np.errstate(divide="ignore", invalid="ignore"):  # 0 ** -1 is inf, as torch says
            out = a ** b
        self.save_for_backward(a, b, out)
        return out

    def backward(self, g):
        a, b, out = self.saved_tensors
        xp = _dev.module_of(g)
        with np.errstate(divide="ignore", invalid="ignore"):  # 0 ** -1, log(0), log(-1): as torch
            da = g * xp.where(b == 0, 0, b * a ** (b - 1)) if self.needs_input_grad[0] else None
            db = (g * xp.where((a == 0) & (b >= 0), 0, out * xp.log(a))
                  if self.needs_input_grad[1] else None)
        return (None if da is None else unbroadcast(da, a.shape),
                None if db is None else unbroadcast(db, b.shape))


class Cast(Function):
    def forward(self, a, dtype):
        self.in_dtype = a.dtype
        return a.astype(dtype)

    def backward(self, g):
        return g.astype(self.in_dtype)


class Exp(Function):
    def forward(self, a):
        out = _dev.module_of(a).exp(a)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        return g * self.saved_tensors[0]


class Log(Function):
    def forward(self, a):
        self.save_for_backward(a)
        return _dev.module_of(a).log(a)

    def backward(self, g):
        return g / self.saved_tensors[0]


class ReLU(Function):
    def forward(self, a):
        out = _dev.module_of(a).maximum(a, 0)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        # Mask with the output (Chainer): gradient 0 at exactly x = 0, as in PyTorch, and the
        # gradient passes where the output is NaN (torch's threshold_backward).
        return g * ~(self.saved_tensors[0] <= 0)


class Sigmoid(Function):
    def forward(self, a):
        xp = _dev.module_of(a)
        # exp of -|a| never overflows; pick the algebraically equal form for each sign.
        e = xp.exp(-xp.abs(a))
        out = xp.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        s = self.saved_tensors[0]
        return g * s * (1 - s)


class Tanh(Function):
    def forward(self, a):
        out = _dev.module_of(a).tanh(a)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        t = self.saved_tensors[0]
        return g * (1 - t * t)


class Sqrt(Function):
    def forward(self, a):
        out = _dev.module_of(a).sqrt(a)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        with np.errstate(divide="ignore", invalid="ignore"):  # inf (0 / 0: nan) at 0, as torch
            return g / (2 * self.saved_tensors[0])


class Abs(Function):
    def forward(self, a):
        self.save_for_backward(a)
        return _dev.module_of(a).abs(a)

    def backward(self, g):
        (a,) = self.saved_tensors
        return g * _dev.module_of(a).sign(a)  # torch's sign(x) * g: 0 at x == 0


class Clamp(Function):
    def forward(self, a, low, high):
        xp = _dev.module_of(a)
        self.save_for_backward(a)
        self.low, self.high = low, high
        # torch's min(max(x, low), high): NaN stays NaN, and low > high gives high everywhere.
        out = a if low is None else xp.maximum(a, low)
        return out if high is None else xp.minimum(out, high)

    def backward(self, g):
        (a,) = self.saved_tensors
        # torch's mask: bounds included, NaN inputs pass no gradient.
        keep_low = True if self.low is None else a >= self.low
        return g * (keep_low & (True if self.high is None else a <= self.high))


class Sum(Function):
    def forward(self, a, axis, keepdims):
        self.shape, self.axis, self.keepdims = a.shape, axis, keepdims
        return a.sum(axis=axis, keepdims=keepdims)

    def backward(self, g):
        if not self.keepdims:
            g = g.reshape([1 if i in self.axis else n for i, n in enumerate(self.shape)])
        return _dev.module_of(g).broadcast_to(g, self.shape).copy()


class Max(Function):
    reduce = "max"  # the array method; Min reuses the rest

    def forward(self, a, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims
        out = getattr(a, self.reduce)(axis=axis, keepdims=True)
        self.save_for_backward(a, out)
        return out if keepdims else out.reshape([n for i, n in enumerate(out.shape)
                                                 if i not in axis])

    def backward(self, g):
        a, out = self.saved_tensors
        # Ties share the gradient equally (like torch.amax), so the sum stays exact; a NaN is
        # the max of its slice and takes the gradient, as in torch.
        mask = ((a == out) | (a != a)).astype(a.dtype)
        mask /= mask.sum(axis=self.axis, keepdims=True)
        return mask * g.reshape(out.shape)


class Min(Max):
    reduce = "min"


class Reshape(Function):
    def forward(self, a, shape):
        self.in_shape = a.shape
        return a.reshape(shape)

    def backward(self, g):
        return g.reshape(self.in_shape)


class Expand(Function):
    def forward(self, a, shape):
        self.in_shape = a.shape
        return _dev.module_of(a).broadcast_to(a, shape)  # a read-only view, as torch's expand

    def backward(self, g):
        return unbroadcast(g, self.in_shape)


class Cat(Function):
    def forward(self, *arrays, axis):
        self.axis, self.bounds = axis, np.cumsum([0] + [a.shape[axis] for a in arrays]).tolist()
        return _dev.module_of(arrays[0]).concatenate(arrays, axis=axis)

    def backward(self, g):
        lead = (slice(None),) * self.axis  # each input's slice: disjoint views, as torch's
        return tuple(g[lead + (slice(start, end),)] if need else None
                     for start, end, need in zip(self.bounds, self.bounds[1:],
                                                 self.needs_input_grad))


class Transpose(Function):
    def forward(self, a, axes):
        self.axes = axes
        return a.transpose(axes)

    def backward(self, g):
        return g.transpose(np.argsort(self.axes))


class Slice(Function):
    def forward(self, a, index):
        self.shape, self.dtype, self.index = a.shape, a.dtype, index
        return a[index]

    def backward(self, g):
        out = _dev.module_of(g).zeros(self.shape, self.dtype)
        out[self.index] = g
        return out


class Gather(Function):
    """Advanced indexing: the gradient adds into every position read, so repeats accumulate."""

    def forward(self, a, index):
        self.shape, self.dtype, self.index = a.shape, a.dtype, index
        return a[index]

    def backward(self, g):
        xp = _dev.module_of(g)
        out = xp.zeros(self.shape, self.dtype)
        xp.add.at(out, self.index, g)
        return out


class MatMul(Function):
    def forward(self, a, b):
        self.save_for_backward(a, b)
        return _dev.matmul(a, b)

    def backward(self, g):
        a, b = self.saved_tensors
        # Treat 1-D operands as a row (left) or a column (right), as matmul does.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        xp = _dev.module_of(g)
        g2 = xp.expand_dims(g, -1) if b.ndim == 1 else g
        g2 = xp.expand_dims(g2, -2) if a.ndim == 1 else g2
        da = db = None
        if self.needs_input_grad[0]:
            da = unbroadcast(_dev.matmul(g2, b2.swapaxes(-1, -2)), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            db = unbroadcast(_dev.matmul(a2.swapaxes(-1, -2), g2), b2.shape).reshape(b.shape)
        return da, db
