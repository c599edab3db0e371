"""A NumPy-backed stand-in for CuPy: the slice of it tinygrad_mlp uses, on a simulated GPU.

Loaded under the name ``cupy`` by :mod:`gpusim.standin` (never imported as itself). Arrays live in
NumPy buffers handed out by a CuPy-like memory pool; ``RawModule`` kernels run on the CPU CUDA
simulator (:mod:`gpusim.simulator`), which reads and writes those buffers through ``.data.ptr``.

What matters is that mistakes fail here as they fail on a GPU:

- ``ndarray`` is its own type, not a ``numpy.ndarray``: ``np.asarray(x)`` raises CuPy's TypeError,
  and a NumPy array handed to a ufunc, an operator or a kernel is CuPy's "Unsupported type";
- dtypes follow NumPy's rules (CuPy follows NumPy's promotion, NEP 50 included);
- stream capture refuses what CUDA graph capture refuses (see :mod:`cupy.cuda`), and a captured
  graph replays the recorded work on launch.
"""

from __future__ import annotations

import builtins
import functools
import math

import numpy as np
from numpy import (  # noqa: F401 - re-exported like CuPy's dtype names
    bool_,
    complex64,
    complex128,
    float16,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    intp,
    uint8,
    uint16,
    uint32,
    uint64,
)

from . import cuda
from .cuda import _cublas, _host_sync, _host_to_device, _submit

__version__ = "14.0.0+standin"
dtype = np.dtype
newaxis = None
inf, nan, pi, e = np.inf, np.nan, np.pi, np.e

IMPLICIT_CONVERSION = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` "
                       "to construct a NumPy array explicitly.")
_SCALARS = (bool, int, float, complex, np.generic)


def _operand(a):
    """The NumPy view behind a device array, or a scalar; CuPy's TypeError for anything else."""
    if isinstance(a, ndarray):
        return a._a
    if isinstance(a, _SCALARS):
        return a
    raise TypeError(f"Unsupported type {type(a)}")


def _new(shape, dtype_) -> ndarray:
    """A new, uninitialized device array from the current allocator."""
    dtype_ = np.dtype(dtype_)
    shape = tuple(int(n) for n in shape)
    ptr = cuda.alloc(math.prod(shape) * dtype_.itemsize)
    a = object.__new__(ndarray)
    a._a = np.ndarray(shape, dtype_, buffer=ptr.mem.array) if ptr.mem.size else np.empty(
        shape, dtype_)
    a._mem, a._base = ptr.mem, None
    return a


def _apply(fn, args=(), kwargs=None, out=None, probe=None) -> ndarray:
    """Device work ``fn(*arrays, **kwargs)`` on NumPy views: into `out`, or into a new array.

    A capturing stream records the work (a graph launch computes it from the then-current
    contents of the same buffers); a new array's shape and dtype are still found at once, by
    computing on whatever the buffers hold (``probe`` instead of ``fn`` where that could fail).
    """
    kwargs = kwargs or {}
    inputs = [_operand(a) for a in args]
    if out is not None:
        if not isinstance(out, ndarray):
            raise TypeError(f"Unsupported type {type(out)} for out")
        target = out._a

        def work():
            with np.errstate(all="ignore"):  # a GPU never warns about inf or NaN
                fn(*inputs, out=target, **kwargs)

        _submit(work)
        return out
    capturing = cuda._on_capture()
    with np.errstate(all="ignore"):
        result = np.asarray((probe if capturing and probe else fn)(*inputs, **kwargs))
    res = _new(result.shape, result.dtype)
    target = res._a

    def work():
        with np.errstate(all="ignore"):
            np.copyto(target, fn(*inputs, **kwargs))

    if capturing:
        cuda._submit(work)
    else:
        np.copyto(target, result)  # already computed
    return res


def _view(base: ndarray, view: np.ndarray) -> ndarray:
    """`view` (a NumPy view into base's buffer) as a device array sharing base's memory."""
    a = object.__new__(ndarray)
    a._a, a._mem = view, base._mem
    a._base = base._base if base._base is not None else base
    return a


def _derived(base: ndarray, fn) -> ndarray:
    """``fn(base)`` as a view when NumPy gives a view (reshape, transpose, basic indexing), else a
    copy on the device (e.g. reshaping a non-contiguous array)."""
    result = fn(base._a)
    if isinstance(result, np.ndarray) and (
            result.size == 0 or np.may_share_memory(result, base._mem.array)):
        return _view(base, result)
    return _apply(fn, [base])


class _Flags:
    def __init__(self, a: np.ndarray, owndata: bool):
        self.c_contiguous = bool(a.flags.c_contiguous)
        self.f_contiguous = bool(a.flags.f_contiguous)
        self.owndata = owndata

    def __getitem__(self, name):
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous,
                "OWNDATA": self.owndata}[name]


def _basic_key(key):
    parts = key if isinstance(key, tuple) else (key,)
    return builtins.all(
        p is None or p is Ellipsis or isinstance(p, slice)
        or (isinstance(p, (int, np.integer)) and not isinstance(p, (bool, np.bool_)))
        for p in parts)


def _index_operand(p, what):
    if isinstance(p, ndarray):
        if p.dtype == np.bool_:
            _host_sync(f"{what} with a boolean mask (its result size is read on the host)")
        return p._a
    if isinstance(p, (np.ndarray, list)):
        _host_to_device(f"{what} with a host index array")
        return np.array(p)
    return p


def _device_key(key, what):
    if isinstance(key, tuple):
        return tuple(_index_operand(p, what) for p in key)
    return _index_operand(key, what)


class ndarray:  # noqa: N801 - CuPy's name
    """A device array: a NumPy array in a pool block, behind CuPy's interface."""

    __array_priority__ = 100
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        if memptr is None:
            new = _new(shape, dtype)
            self._a, self._mem, self._base = new._a, new._mem, None
        else:
            self._a = np.ndarray(shape, dtype, buffer=memptr.mem.array, offset=memptr.offset,
                                 strides=strides, order=order)
            self._mem, self._base = memptr.mem, None

    # ---- attributes -------------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    dtype = property(lambda self: self._a.dtype)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    base = property(lambda self: self._base)
    device = property(lambda self: cuda.Device(0))

    @property
    def flags(self):
        return _Flags(self._a, self._base is None)

    @property
    def data(self) -> cuda.MemoryPointer:
        offset = self._a.ctypes.data - self._mem.ptr if self._mem.size else 0
        return cuda.MemoryPointer(self._mem, offset)

    @property
    def T(self):  # noqa: N802
        return self.transpose()

    # ---- host transfers (syncs) ---------------------------------------------------------------
    def get(self, stream=None, order="C", out=None, blocking=True):
        _host_sync("ndarray.get()")
        if out is not None:
            if not isinstance(out, np.ndarray) or out.shape != self.shape:
                raise ValueError("out must be a numpy.ndarray of the same shape")
            np.copyto(out, self._a)
            return out
        return np.array(self._a, order=order)

    def set(self, arr, stream=None):
        _host_to_device("ndarray.set()")
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, got {type(arr)}")
        if arr.shape != self.shape or arr.dtype != self.dtype:
            raise ValueError(f"set: shape and dtype must match: {arr.shape} {arr.dtype} vs "
                             f"{self.shape} {self.dtype}")
        np.copyto(self._a, arr)

    def item(self):
        _host_sync("ndarray.item()")
        return self._a.item()

    def tolist(self):
        _host_sync("ndarray.tolist()")
        return self._a.tolist()

    def __float__(self):
        _host_sync("float(ndarray)")
        return float(self._a)

    def __int__(self):
        _host_sync("int(ndarray)")
        return int(self._a)

    def __complex__(self):
        _host_sync("complex(ndarray)")
        return complex(self._a)

    def __bool__(self):
        _host_sync("bool(ndarray)")
        return bool(self._a)

    def __array__(self, dtype=None, copy=None):
        raise TypeError(IMPLICIT_CONVERSION)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        fn = _UFUNCS.get(ufunc.__name__)
        if method != "__call__" or fn is None:
            return NotImplemented
        out = kwargs.get("out")
        if isinstance(out, tuple):
            if len(out) != 1:
                raise ValueError("The 'out' parameter must have exactly one array value")
            kwargs["out"] = out[0]
        return fn(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        fn = globals().get(func.__name__)
        if not callable(fn) or fn is func or not builtins.all(
                issubclass(t, (ndarray, np.ndarray)) for t in types):
            return NotImplemented
        return fn(*args, **kwargs)

    def __repr__(self):
        _host_sync("repr(ndarray)")
        return repr(self._a)

    def __str__(self):
        _host_sync("str(ndarray)")
        return str(self._a)

    def __format__(self, spec):
        _host_sync("format(ndarray)")
        return format(self._a if self.ndim else self._a.item(), spec)

    # ---- shape ----------------------------------------------------------------------------------
    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    def reshape(self, *shape, order="C"):
        shape = shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape
        return _derived(self, lambda a: a.reshape(shape, order=order))

    def transpose(self, *axes):
        axes = axes[0] if len(axes) == 1 and not isinstance(axes[0], (int, np.integer)) else axes
        axes = None if axes is None or len(axes) == 0 else tuple(int(i) for i in axes)
        return _derived(self, lambda a: a.transpose(axes))

    def swapaxes(self, axis1, axis2):
        return _derived(self, lambda a: a.swapaxes(axis1, axis2))

    def ravel(self, order="C"):
        return _derived(self, lambda a: a.ravel(order))

    def flatten(self, order="C"):
        return _apply(lambda a: a.flatten(order), [self])

    def squeeze(self, axis=None):
        return _derived(self, lambda a: a.squeeze(axis))

    def view(self, dtype=None):
        return _derived(self, lambda a: a.view(dtype))

    def __getitem__(self, key):
        if _basic_key(key):
            parts = key if isinstance(key, tuple) else (key,)
            if Ellipsis not in parts:
                parts = (*parts, Ellipsis)  # a 0-d view, never a NumPy scalar
            return _view(self, self._a[parts])
        k = _device_key(key, "indexing")
        # While capturing, index arrays hold no values yet: find the shape with zeros.
        zeros = tuple(np.zeros_like(p) if isinstance(p, np.ndarray) and p.dtype.kind in "iu"
                      else p for p in (k if isinstance(k, tuple) else (k,)))
        return _apply(lambda a: a[k], [self], probe=lambda a: a[zeros])

    def __setitem__(self, key, value):
        k = key if _basic_key(key) else _device_key(key, "indexed assignment")
        if isinstance(value, ndarray):
            v = value._a
        elif isinstance(value, _SCALARS):
            v = value
        elif isinstance(value, (np.ndarray, list, tuple)):
            _host_to_device("assigning a host array into a device array")
            v = np.array(value)
        else:
            raise TypeError(f"Unsupported type {type(value)}")
        target = self._a
        _submit(lambda: target.__setitem__(k, v))

    # ---- copies and fills ---------------------------------------------------------------------
    def copy(self, order="C"):
        return _apply(lambda a: a.copy(order), [self])

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        if not copy and np.dtype(dtype) == self.dtype:
            return self
        return _apply(lambda a: a.astype(dtype, order=order), [self])

    def fill(self, value):
        _operand(value)
        target = self._a
        _submit(lambda: target.fill(value))

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    # ---- reductions -----------------------------------------------------------------------------
    def sum(self, axis=None, dtype=None, out=None, keepdims=False):
        return sum(self, axis=axis, dtype=dtype, out=out, keepdims=keepdims)

    def prod(self, axis=None, dtype=None, out=None, keepdims=False):
        return prod(self, axis=axis, dtype=dtype, out=out, keepdims=keepdims)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False):
        return mean(self, axis=axis, dtype=dtype, out=out, keepdims=keepdims)

    def max(self, axis=None, out=None, keepdims=False):
        return amax(self, axis=axis, out=out, keepdims=keepdims)

    def min(self, axis=None, out=None, keepdims=False):
        return amin(self, axis=axis, out=out, keepdims=keepdims)

    def argmax(self, axis=None, out=None, keepdims=False):
        return argmax(self, axis=axis, out=out, keepdims=keepdims)

    def argmin(self, axis=None, out=None, keepdims=False):
        return argmin(self, axis=axis, out=out, keepdims=keepdims)

    def any(self, axis=None, out=None, keepdims=False):
        return any(self, axis=axis, out=out, keepdims=keepdims)

    def all(self, axis=None, out=None, keepdims=False):
        return all(self, axis=axis, out=out, keepdims=keepdims)

    def clip(self, min=None, max=None, out=None):  # noqa: A002 - CuPy's names
        return clip(self, min, max, out=out)

    def dot(self, b, out=None):
        return dot(self, b, out=out)

    # ---- operators ------------------------------------------------------------------------------
    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    def __neg__(self):
        return _UFUNCS["negative"](self)

    def __pos__(self):
        return _UFUNCS["positive"](self)

    def __abs__(self):
        return _UFUNCS["absolute"](self)

    def __invert__(self):
        return _UFUNCS["invert"](self)


def _operators():
    binary = {"add": "add", "sub": "subtract", "mul": "multiply", "truediv": "true_divide",
              "floordiv": "floor_divide", "mod": "remainder", "pow": "power",
              "and": "bitwise_and", "or": "bitwise_or", "xor": "bitwise_xor"}
    for name, ufunc in binary.items():
        fn = _UFUNCS[ufunc]
        setattr(ndarray, f"__{name}__", lambda self, o, fn=fn: fn(self, o))
        setattr(ndarray, f"__r{name}__", lambda self, o, fn=fn: fn(o, self))
        setattr(ndarray, f"__i{name}__", lambda self, o, fn=fn: fn(self, o, out=self))
    for name, ufunc in {"lt": "less", "le": "less_equal", "gt": "greater",
                        "ge": "greater_equal", "eq": "equal", "ne": "not_equal"}.items():
        fn = _UFUNCS[ufunc]
        setattr(ndarray, f"__{name}__", lambda self, o, fn=fn: fn(self, o))


# ---- ufuncs -------------------------------------------------------------------------------------
def _ufunc(np_ufunc):
    def ufunc(*args, out=None, dtype=None, casting="same_kind"):
        if len(args) != np_ufunc.nin:
            raise TypeError(f"Wrong number of arguments for {np_ufunc.__name__}")
        kwargs = {"casting": casting, **({"dtype": dtype} if dtype is not None else {})}
        return _apply(np_ufunc, args, kwargs, out=out)

    ufunc.__name__ = np_ufunc.__name__
    return ufunc


_UFUNC_NAMES = (
    "add subtract multiply divide true_divide floor_divide remainder power negative positive "
    "absolute sign sqrt square exp exp2 expm1 log log2 log10 log1p sin cos tan tanh arctan "
    "maximum minimum fmax fmin greater greater_equal less less_equal equal not_equal "
    "logical_and logical_or logical_not logical_xor bitwise_and bitwise_or bitwise_xor invert "
    "isfinite isnan isinf floor ceil rint reciprocal").split()
_UFUNCS = {name: _ufunc(getattr(np, name)) for name in _UFUNC_NAMES}
globals().update(_UFUNCS)  # cupy.add, cupy.exp, ...


def _add_at(a, indices, b):
    """``cupy.add.at``: unbuffered in-place addition, so repeated indices all add."""
    if not isinstance(a, ndarray):
        raise TypeError(f"Unsupported type {type(a)}")
    k = indices if _basic_key(indices) else _device_key(indices, "add.at")
    target, value = a._a, _operand(b)
    _submit(lambda: np.add.at(target, k, value))


_UFUNCS["add"].at = _add_at
abs = _UFUNCS["absolute"]  # noqa: A001 - CuPy's alias
_operators()


def where(condition, x=None, y=None):
    if x is None and y is None:
        _host_sync("where(condition) (its result size is read on the host)")
        return tuple(asarray(i) for i in np.nonzero(_operand(condition)))
    return _apply(np.where, [condition, x, y])


def clip(a, a_min=None, a_max=None, out=None):
    lo = None if a_min is None else _operand(a_min)
    hi = None if a_max is None else _operand(a_max)
    return _apply(lambda x, **kw: np.clip(x, lo, hi, **kw), [a], out=out)


# ---- reductions ---------------------------------------------------------------------------------
def _reduction(np_fn, with_dtype=True):
    def reduce(a, axis=None, dtype=None, out=None, keepdims=False):
        kwargs = {"axis": axis, "keepdims": keepdims}
        if with_dtype and dtype is not None:
            kwargs["dtype"] = dtype
        return _apply(np_fn, [a], kwargs, out=out)

    reduce.__name__ = np_fn.__name__
    return reduce


sum = _reduction(np.sum)  # noqa: A001 - CuPy's names
prod = _reduction(np.prod)
mean = _reduction(np.mean)


def _no_dtype(np_fn):
    inner = _reduction(np_fn, with_dtype=False)

    @functools.wraps(inner)
    def reduce(a, axis=None, out=None, keepdims=False):
        return inner(a, axis=axis, out=out, keepdims=keepdims)

    return reduce


amax = max = _no_dtype(np.max)  # noqa: A001
amin = min = _no_dtype(np.min)  # noqa: A001
argmax = _no_dtype(np.argmax)
argmin = _no_dtype(np.argmin)
any = _no_dtype(np.any)  # noqa: A001
all = _no_dtype(np.all)  # noqa: A001


def count_nonzero(a, axis=None):
    return _apply(lambda x: np.asarray(np.count_nonzero(x, axis=axis), dtype=np.intp), [a])


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    return _apply(lambda x, y: np.allclose(x, y, rtol, atol, equal_nan), [a, b])


# ---- linear algebra (cuBLAS on a GPU: refused while capturing) ----------------------------------
def _blas(name, np_fn, a, b, out):
    if _operand(a) is not None and np.result_type(_operand(a), _operand(b)).kind in "fc":
        _cublas(name)
    return _apply(np_fn, [a, b], out=out)


def matmul(a, b, out=None):
    return _blas("matmul", np.matmul, a, b, out)


def dot(a, b, out=None):
    return _blas("dot", np.dot, a, b, out)


# ---- creation -----------------------------------------------------------------------------------
def empty(shape, dtype=float, order="C"):
    return _new((shape,) if isinstance(shape, (int, np.integer)) else shape, dtype)


def full(shape, fill_value, dtype=None, order="C"):
    a = empty(shape, np.array(fill_value).dtype if dtype is None else dtype)
    a.fill(fill_value)
    return a


def zeros(shape, dtype=float, order="C"):
    return full(shape, 0, dtype)


def ones(shape, dtype=float, order="C"):
    return full(shape, 1, dtype)


def empty_like(a, dtype=None, order="K", shape=None):
    return empty(a.shape if shape is None else shape, a.dtype if dtype is None else dtype)


def zeros_like(a, dtype=None, order="K", shape=None):
    return full(a.shape if shape is None else shape, 0, a.dtype if dtype is None else dtype)


def ones_like(a, dtype=None, order="K", shape=None):
    return full(a.shape if shape is None else shape, 1, a.dtype if dtype is None else dtype)


def full_like(a, fill_value, dtype=None, order="K", shape=None):
    return full(a.shape if shape is None else shape, fill_value,
                a.dtype if dtype is None else dtype)


def arange(start, stop=None, step=1, dtype=None):
    return _apply(lambda: np.arange(start, stop, step, dtype=dtype))


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0):
    if isinstance(obj, ndarray):
        if not copy and (dtype is None or np.dtype(dtype) == obj.dtype) and obj.ndim >= ndmin:
            return obj
        return _apply(lambda a: np.array(a, dtype=dtype, order=order, ndmin=ndmin), [obj])
    _host_to_device("cupy.array() of host data")
    host = np.array(obj, dtype=dtype, order=order, ndmin=ndmin)
    out = empty(host.shape, host.dtype)
    np.copyto(out._a, host)
    return out


def asarray(a, dtype=None, order=None):
    return array(a, dtype=dtype, copy=False)


def ascontiguousarray(a, dtype=None):
    if not isinstance(a, ndarray):
        raise TypeError(f"Argument 'a' has incorrect type (expected cupy.ndarray, got "
                        f"{type(a).__module__}.{type(a).__name__})")
    if (dtype is None or np.dtype(dtype) == a.dtype) and a.flags.c_contiguous:
        return a if a.ndim else a.ravel()
    return _apply(lambda x: np.ascontiguousarray(x, dtype=dtype), [a])


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    if isinstance(a, ndarray):
        return a.get(stream=stream, order=order, out=out)
    result = np.asarray(a, order=order)
    if out is not None:
        out[...] = result
        return out
    return result


def get_array_module(*args):
    import sys

    for a in args:
        if isinstance(a, ndarray):
            return sys.modules[__name__]
    return np


# ---- shape functions ----------------------------------------------------------------------------
def ndim(a):
    return a.ndim if isinstance(a, ndarray) else np.ndim(a)


def shape(a):
    return a.shape if isinstance(a, ndarray) else np.shape(a)


def size(a):
    return a.size if isinstance(a, ndarray) else np.size(a)


def reshape(a, newshape, order="C"):
    return a.reshape(newshape, order=order)


def transpose(a, axes=None):
    return a.transpose(axes) if axes is not None else a.transpose()


def swapaxes(a, axis1, axis2):
    return a.swapaxes(axis1, axis2)


def ravel(a, order="C"):
    return a.ravel(order)


def squeeze(a, axis=None):
    return a.squeeze(axis)


def expand_dims(a, axis):
    return _derived(a, lambda x: np.expand_dims(x, axis))


def broadcast_to(array, shape):  # noqa: A002 - CuPy's name
    return _derived(array, lambda x: np.broadcast_to(x, shape))


def concatenate(arrays, axis=0, out=None, dtype=None):
    arrays = list(arrays)
    return _apply(lambda *xs, **kw: np.concatenate(xs, axis=axis, dtype=dtype, **kw), arrays,
                  out=out)


def stack(arrays, axis=0, out=None):
    arrays = list(arrays)
    return _apply(lambda *xs, **kw: np.stack(xs, axis=axis, **kw), arrays, out=out)


# ---- memory pools -------------------------------------------------------------------------------
def get_default_memory_pool():
    return cuda._default_pool()


def get_default_pinned_memory_pool():
    return cuda._default_pinned_pool()


# ---- kernels ------------------------------------------------------------------------------------
class _Function:
    """A kernel of a RawModule, called as CuPy calls one: ``f(grid, block, args, shared_mem=0)``."""

    def __init__(self, sim_function, name):
        self._fn, self.name = sim_function, name

    def __call__(self, grid, block, args, *, shared_mem=0, stream=None):
        args = tuple(args)
        for a in args:
            if not isinstance(a, (ndarray, *_SCALARS)):
                raise TypeError(f"Unsupported type {type(a)}")
        fn = self._fn
        _submit(lambda: fn(tuple(grid), tuple(block), args, shared_mem=shared_mem), stream)


@functools.cache
def _sim_module(code, options, name):
    from gpusim.simulator import SimModule

    if name is None:  # the package's own sources get their file name in simulator errors
        from tinygrad_mlp.fused import kernel_sources

        name = next((n for n, text in kernel_sources().items() if text == code), "kernel.cu")
    return SimModule(code, options, name=name)


class RawModule:
    """``cupy.RawModule(code=..., options=...)``: compiled for, and run on, the CPU simulator
    (compiled once per source and options)."""

    def __init__(self, code=None, *, path=None, options=(), backend="nvrtc",
                 translate_cucomplex=False, enable_cooperative_groups=False,
                 name_expressions=None, log_stream=None, jitify=False):
        if code is None:
            with open(path, encoding="utf-8") as f:
                code = f.read()
        self.code, self.options = code, tuple(options)
        # CuPy always adds -ftz=true (cupy/cuda/compiler.py, _compile_with_cache_cuda), so float
        # denormals flush to zero as on the GPU. (The simulator's MXCSR flush also touches
        # doubles, which a GPU would not: no kernel test depends on double denormals.)
        ftz = () if [o for o in self.options if "ftz" in o] else ("-ftz=true",)  # (any: ours)
        self._module = _sim_module(code, self.options + ftz, path)

    def get_function(self, name):
        return _Function(self._module.get_function(name), name)


class RawKernel:
    def __init__(self, code, name, options=(), backend="nvrtc", **kwargs):
        self._fn = RawModule(code=code, options=options).get_function(name)

    def __call__(self, grid, block, args, *, shared_mem=0, stream=None):
        self._fn(grid, block, args, shared_mem=shared_mem, stream=stream)

