"""Tests of the harness data layer (actsym.harness.data and its loaders).

Fixture datasets are tiny files written to ``tmp_path`` in the real formats (gzip'd IDX with
the right magic numbers, Python-2-style protocol-2 CIFAR pickles with bytes keys, .tar.gz
archives); the known-checksum tables are monkeypatched to the fixtures' digests.  The network
is disabled: "downloads" only ever read ``file://`` URLs.  Tests against the real datasets run
only when they are present (``$ACTSYM_DATA`` or ``<repo>/../shared/datasets``).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import pickle
import socket
import struct
import tarfile
import warnings
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

from actsym.harness import data, datasets_cifar, datasets_mnist
from actsym.harness.data import (
    DataError,
    DatasetNotFound,
    UnverifiedDataWarning,
    load_dataset,
    resolve_data_roots,
)
from actsym.harness.datasets_cifar import CifarFile, CifarSpec, safe_unpickle
from actsym.harness.datasets_mnist import MnistFile, parse_idx
from actsym.harness.download import DownloadError, digest_bytes, fetch

# Captured at import, before the autouse fixture clears the variable.
_REAL_ROOTS = [
    Path(p) for p in (os.environ.get("ACTSYM_DATA"), Path(__file__).resolve().parents[2] / "shared" / "datasets")
    if p
]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ACTSYM_DATA, a private cache dir, and no network."""
    monkeypatch.delenv("ACTSYM_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))

    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("network access is disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)


# ----------------------------------------------------------------------------- fixture writers

def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX (magic 0x08, ndim)."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def mnist_fixture(n_train: int = 30, n_test: int = 20, seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, bytes]]:
    """Tiny MNIST-like arrays and their raw IDX encodings keyed like MNIST_FILES."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }
    return arrays, {k: idx_bytes(v) for k, v in arrays.items()}


def write_mnist(directory: Path, raw: dict[str, bytes], *, gz: bool = True) -> None:
    """Write the fixture files as the real MNIST names (gzip'd or not)."""
    directory.mkdir(parents=True, exist_ok=True)
    for key, blob in raw.items():
        spec = datasets_mnist.MNIST_FILES[key]
        if gz:
            (directory / spec.gz_name).write_bytes(gzip.compress(blob, mtime=0))
        else:
            (directory / spec.name).write_bytes(blob)


def mnist_table(raw: dict[str, bytes]) -> dict[str, MnistFile]:
    """A checksum table matching the fixture files (both .gz and raw forms)."""
    return {
        key: replace(spec, gz=digest_bytes(gzip.compress(raw[key], mtime=0)), raw=digest_bytes(raw[key]))
        for key, spec in datasets_mnist.MNIST_FILES.items()
    }


@pytest.fixture
def mnist_files(monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, np.ndarray], dict[str, bytes]]:
    """Fixture arrays/blobs with MNIST_FILES patched to their checksums."""
    arrays, raw = mnist_fixture()
    monkeypatch.setattr(datasets_mnist, "MNIST_FILES", mnist_table(raw))
    return arrays, raw


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Protocol-2 pickler writing ``bytes`` as Python-2 ``str`` (BINSTRING), like the real CIFAR files."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def _save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def py2_pickle(obj: object) -> bytes:
    """Pickle ``obj`` the way Python 2 + numpy 1.x wrote CIFAR (``numpy.core.multiarray`` globals)."""
    out = io.BytesIO()
    _Py2Pickler(out, protocol=2).dump(obj)
    return out.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def tiny_spec(base: CifarSpec, train_rows: tuple[int, ...], test_rows: int, per_class: tuple[int, int]) -> CifarSpec:
    """A CIFAR spec with tiny batches (checksums filled in later)."""
    train = tuple(CifarFile(f.name, rows, "0" * 32) for f, rows in zip(base.train, train_rows, strict=True))
    test = (CifarFile(base.test[0].name, test_rows, "0" * 32),)
    return replace(base, train=train, test=test, train_per_class=per_class[0], test_per_class=per_class[1],
                   archive_md5="0" * 32)


def cifar_blobs(spec: CifarSpec, seed: int = 0) -> dict[str, bytes]:
    """Python-2-style pickled batches for ``spec``, class-balanced, with bytes keys."""
    rng = np.random.default_rng(seed)
    blobs = {}
    for i, f in enumerate(spec.files):
        labels = [int(v) for v in np.arange(f.rows) % spec.num_classes]
        batch = {
            b"batch_label": f"fixture batch {i}".encode(),
            spec.label_key: labels,
            b"data": rng.integers(0, 256, (f.rows, 3072), dtype=np.uint8),
            b"filenames": [f"img_{i}_{j}.png".encode() for j in range(f.rows)],
        }
        if spec.label_key == b"fine_labels":
            batch[b"coarse_labels"] = [v // 5 for v in labels]
        blobs[f.name] = py2_pickle(batch)
    return blobs


def with_checksums(spec: CifarSpec, blobs: dict[str, bytes], *, md5: bool = False, sha: bool = False) -> CifarSpec:
    """Return ``spec`` whose per-file md5 (official) and/or known sha256 match ``blobs``."""
    def fix(f: CifarFile) -> CifarFile:
        d = digest_bytes(blobs[f.name])
        return replace(f, md5=d.md5 if md5 else f.md5, known_sha256=frozenset({d.sha256}) if sha else frozenset())

    return replace(spec, train=tuple(map(fix, spec.train)), test=tuple(map(fix, spec.test)))


def write_cifar_folder(directory: Path, spec: CifarSpec, blobs: dict[str, bytes]) -> Path:
    folder = directory / spec.folder
    folder.mkdir(parents=True, exist_ok=True)
    for name, blob in blobs.items():
        (folder / name).write_bytes(blob)
    return folder


def write_cifar_archive(directory: Path, spec: CifarSpec, blobs: dict[str, bytes],
                        extra: list[tarfile.TarInfo] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / spec.archive
    with tarfile.open(path, "w:gz") as tar:
        for info in extra or []:
            tar.addfile(info)
        for name, blob in blobs.items():
            info = tarfile.TarInfo(f"{spec.folder}/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


@pytest.fixture
def cifar10_tiny() -> tuple[CifarSpec, dict[str, bytes]]:
    """Five 10-image batches (1 per class each) and a 20-image test batch."""
    spec = tiny_spec(datasets_cifar.CIFAR10, (10,) * 5, 20, (5, 2))
    return spec, cifar_blobs(spec)


# ----------------------------------------------------------------------------- MNIST

def test_parse_idx_shapes_and_errors() -> None:
    images = np.arange(2 * 28 * 28, dtype=np.uint64).astype(np.uint8).reshape(2, 28, 28)
    np.testing.assert_array_equal(parse_idx(idx_bytes(images), 0x803), images)
    with pytest.raises(DataError, match="magic"):
        parse_idx(idx_bytes(images), 0x801)
    with pytest.raises(DataError, match="payload"):
        parse_idx(idx_bytes(images)[:-1], 0x803)
    with pytest.raises(DataError):
        parse_idx(b"\x00\x00", 0x803)


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "gunzipped"])
def test_mnist_loads_gz_and_raw(tmp_path: Path, mnist_files, gz: bool) -> None:
    arrays, raw = mnist_files
    write_mnist(tmp_path / "mnist", raw, gz=gz)
    ds = load_dataset("mnist", data_dir=tmp_path)
    assert ds.x_train.shape == (30, 1, 28, 28) and ds.x_train.dtype == torch.uint8
    assert ds.x_test.shape == (20, 1, 28, 28)
    assert ds.y_train.dtype == torch.int64 and ds.y_test.dtype == torch.int64
    np.testing.assert_array_equal(ds.x_train[:, 0].numpy(), arrays["train_images"])
    np.testing.assert_array_equal(ds.y_test.numpy(), arrays["test_labels"])
    assert (ds.num_classes, ds.subset, ds.source) == (10, False, str(tmp_path / "mnist"))
    assert "md5" in ds.note


def test_mnist_checksum_mismatch_is_one_line_error(tmp_path: Path, mnist_files) -> None:
    _, raw = mnist_files
    write_mnist(tmp_path / "mnist", raw)
    path = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    blob = bytearray(path.read_bytes())
    blob[-9] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(DataError) as info:
        load_dataset("mnist", data_dir=tmp_path)
    assert not isinstance(info.value, DatasetNotFound)
    message = str(info.value)
    assert "checksum mismatch" in message and "t10k-labels-idx1-ubyte.gz" in message and "\n" not in message


def test_real_checksum_table_rejects_non_official_files(tmp_path: Path) -> None:
    """Without the fixture table the loader insists on the official digests."""
    _, raw = mnist_fixture()
    write_mnist(tmp_path / "mnist", raw)
    with pytest.raises(DataError, match="checksum mismatch"):
        load_dataset("mnist", data_dir=tmp_path)


# ----------------------------------------------------------------------------- restricted unpickler

def test_safe_unpickle_reads_py2_numpy_pickles() -> None:
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    blob = py2_pickle({b"data": array, b"labels": [1, 2, 3]})
    assert b"cnumpy.core.multiarray\n_reconstruct" in blob and b"_codecs" not in blob
    obj = safe_unpickle(blob)
    assert isinstance(obj, dict) and obj[b"labels"] == [1, 2, 3]
    np.testing.assert_array_equal(obj[b"data"], array)


class _Evil:
    def __init__(self, func: object, arg: str) -> None:
        self.func, self.arg = func, arg

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return self.func, (self.arg,)


def _malicious_pickles(marker: Path) -> list[bytes]:
    cmd = f"touch {marker}"
    code = f"open({str(marker)!r}, 'w').write('pwned')"
    return [
        f"cos\nsystem\n(S'{cmd}'\ntR.".encode(),  # protocol 0, classic payload
        pickle.dumps(_Evil(os.system, cmd), protocol=2),  # references posix.system
        pickle.dumps(_Evil(exec, code), protocol=2),  # builtins.exec
        pickle.dumps({b"data": _Evil(eval, code)}, protocol=4),  # nested, STACK_GLOBAL
        b"\x80\x02cnumpy\nload\nq\x00.",  # allowed module, forbidden name
    ]


def test_restricted_unpickler_rejects_code_execution(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for blob in _malicious_pickles(marker):
        with pytest.raises(DataError, match="forbidden"):
            safe_unpickle(blob, "evil")
    assert not marker.exists()


def test_malicious_batch_file_in_folder_is_rejected(tmp_path: Path, monkeypatch, cifar10_tiny) -> None:
    spec, blobs = cifar10_tiny
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Evil(os.system, f"touch {marker}"), protocol=2)
    # Padded to a plausible size, so only the restricted unpickler stands in the way.
    blobs["data_batch_3"] = payload + b"\x00" * (spec.train[2].min_bytes - len(payload) + 10)
    monkeypatch.setitem(datasets_cifar.CIFAR_SPECS, "cifar10", spec)
    write_cifar_folder(tmp_path / "cifar10", spec, blobs)
    with pytest.raises(DataError, match="forbidden"):
        load_dataset("cifar10", data_dir=tmp_path)
    assert not marker.exists()


# ----------------------------------------------------------------------------- CIFAR

def test_cifar_folder_with_official_md5s(tmp_path: Path, monkeypatch, cifar10_tiny) -> None:
    spec, blobs = cifar10_tiny
    monkeypatch.setitem(datasets_cifar.CIFAR_SPECS, "cifar10", with_checksums(spec, blobs, md5=True))
    write_cifar_folder(tmp_path / "cifar10", spec, blobs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_dataset("cifar10", data_dir=tmp_path)
    assert ds.x_train.shape == (50, 3, 32, 32) and ds.x_train.dtype == torch.uint8
    assert ds.x_test.shape == (20, 3, 32, 32) and ds.y_test.dtype == torch.int64
    assert ds.class_counts() == [5] * 10 and ds.class_counts("test") == [2] * 10
    first = pickle.loads(blobs["data_batch_1"], encoding="bytes")  # trusted: our own fixture
    np.testing.assert_array_equal(ds.x_train[:10].reshape(10, -1).numpy(), first[b"data"])
    assert "official md5" in ds.note


def test_cifar_folder_known_sha256_copy(tmp_path: Path, monkeypatch, cifar10_tiny) -> None:
    spec, blobs = cifar10_tiny
    monkeypatch.setitem(datasets_cifar.CIFAR_SPECS, "cifar10", with_checksums(spec, blobs, sha=True))
    write_cifar_folder(tmp_path / "cifar10", spec, blobs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_dataset("cifar10", data_dir=tmp_path)
    assert "known-good" in ds.note


def test_cifar_folder_unverified_warns(tmp_path: Path, monkeypatch, cifar10_tiny) -> None:
    spec, blobs = cifar10_tiny
    monkeypatch.setitem(datasets_cifar.CIFAR_SPECS, "cifar10", spec)
    write_cifar_folder(tmp_path / "cifar10", spec, blobs)
    with pytest.warns(UnverifiedDataWarning, match="UNVERIFIED but structurally valid"):
        ds = load_dataset("cifar10", data_dir=tmp_path)
    assert ds.x_train.shape == (50, 3, 32, 32) and "UNVERIFIED" in ds.note


@pytest.mark.parametrize("defect", ["label_range", "class_counts", "missing_key", "dtype", "size"])
def test_cifar_structure_errors(tmp_path: Path, monkeypatch, cifar10_tiny, defect: str) -> None:
    spec, blobs = cifar10_tiny
    batch = pickle.loads(blobs["test_batch"], encoding="bytes")  # trusted: our own fixture
    if defect == "label_range":
        batch[b"labels"][0] = 10
    elif defect == "class_counts":
        batch[b"labels"][0] = batch[b"labels"][1]
    elif defect == "missing_key":
        del batch[b"labels"]
    elif defect == "dtype":
        batch[b"data"] = batch[b"data"].astype(np.int16)
    blobs["test_batch"] = py2_pickle(batch) if defect != "size" else blobs["test_batch"][:1000]
    monkeypatch.setitem(datasets_cifar.CIFAR_SPECS, "cifar10", spec)
    write_cifar_folder(tmp_path / "cifar10", spec, blobs)
    with pytest.raises(DataError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore", UnverifiedDataWarning)
        load_dataset("cifar10", data_dir=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert ("test split" if defect == "class_counts" else "test_batch") in message


def test_cifar_archive_matches_folder_and_extracts_nothing(tmp_path: Path, monkeypatch, cifar10_tiny) -> None:
    spec, blobs = cifar10_tiny
    archive = write_cifar_archive(tmp_path / "a" / "cifar10", spec, blobs)
    spec = replace(with_checksums(spec, blobs, md5=True), archive_md5=hashlib.md5(archive.read_bytes()).hexdigest())
    monkeypatch.setitem(datasets_cifar.CIFAR_SPECS, "cifar10", spec)
    write_cifar_folder(tmp_path / "f" / "cifar10", spec, blobs)
    from_archive = load_dataset("cifar10", data_dir=tmp_path / "a")
    from_folder = load_dataset("cifar10", data_dir=tmp_path / "f")
    assert "official archive" in from_archive.note
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(from_archive, name), getattr(from_folder, name))
    assert sorted(p.name for p in (tmp_path / "a" / "cifar10").iterdir()) == [spec.archive]


def test_cifar_archive_md5_mismatch(tmp_path: Path, monkeypatch, cifar10_tiny) -> None:
    spec, blobs = cifar10_tiny
    monkeypatch.setitem(datasets_cifar.CIFAR_SPECS, "cifar10", spec)  # archive_md5 = "000..."
    write_cifar_archive(tmp_path / "cifar10", spec, blobs)
    with pytest.raises(DataError, match="checksum mismatch") as info:
        load_dataset("cifar10", data_dir=tmp_path)
    assert "\n" not in str(info.value)


def test_cifar_archive_rejects_links_and_missing_members(tmp_path: Path, monkeypatch, cifar10_tiny) -> None:
    spec, blobs = cifar10_tiny
    link = tarfile.TarInfo(f"{spec.folder}/data_batch_1")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    cases = {
        "link": (dict(blobs, data_batch_1=None), [link], "not a regular file"),
        "missing": ({k: v for k, v in blobs.items() if k != "data_batch_2"}, [], "lacks"),
    }
    for label, (members, extra, match) in cases.items():
        directory = tmp_path / label / "cifar10"
        archive = write_cifar_archive(directory, spec, {k: v for k, v in members.items() if v is not None}, extra)
        patched = replace(spec, archive_md5=hashlib.md5(archive.read_bytes()).hexdigest())
        monkeypatch.setitem(datasets_cifar.CIFAR_SPECS, "cifar10", patched)
        with pytest.raises(DataError, match=match):
            load_dataset("cifar10", data_dir=tmp_path / label)


def test_cifar100_folder_and_archive(tmp_path: Path, monkeypatch) -> None:
    spec = tiny_spec(datasets_cifar.CIFAR100, (200,), 100, (2, 1))
    blobs = cifar_blobs(spec, seed=1)
    archive = write_cifar_archive(tmp_path / "a" / "cifar100", spec, blobs)
    spec = replace(with_checksums(spec, blobs, md5=True), archive_md5=hashlib.md5(archive.read_bytes()).hexdigest())
    monkeypatch.setitem(datasets_cifar.CIFAR_SPECS, "cifar100", spec)
    write_cifar_folder(tmp_path / "f" / "cifar100", spec, blobs)
    for root in ("a", "f"):
        ds = load_dataset("cifar-100", data_dir=tmp_path / root)
        assert ds.name == "cifar100" and ds.num_classes == 100
        assert ds.x_train.shape == (200, 3, 32, 32) and ds.x_test.shape == (100, 3, 32, 32)
        assert ds.class_counts() == [2] * 100 and ds.class_counts("test") == [1] * 100


# ----------------------------------------------------------------------------- roots and errors

def test_resolve_data_roots_order(tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "xdg-cache" / "actsym" / "datasets"
    assert resolve_data_roots() == [cache]
    monkeypatch.setenv("ACTSYM_DATA", str(tmp_path / "env"))
    assert resolve_data_roots(tmp_path / "arg") == [tmp_path / "arg", tmp_path / "env", cache]
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_roots()[-1] == tmp_path / "home" / ".cache" / "actsym" / "datasets"


def test_source_order_argument_then_env_then_cache(tmp_path: Path, monkeypatch, mnist_files) -> None:
    _, raw = mnist_files
    cache = tmp_path / "xdg-cache" / "actsym" / "datasets"
    for root in (tmp_path / "arg", tmp_path / "env", cache):
        write_mnist(root / "mnist", raw)
    monkeypatch.setenv("ACTSYM_DATA", str(tmp_path / "env"))
    assert load_dataset("mnist", data_dir=tmp_path / "arg").source == str(tmp_path / "arg" / "mnist")
    assert load_dataset("mnist").source == str(tmp_path / "env" / "mnist")
    # A root without the dataset is skipped in favour of the next one.
    assert load_dataset("mnist", data_dir=tmp_path / "empty").source == str(tmp_path / "env" / "mnist")
    monkeypatch.delenv("ACTSYM_DATA")
    assert load_dataset("mnist").source == str(cache / "mnist")


def test_missing_dataset_one_line_message(tmp_path: Path, monkeypatch, mnist_files) -> None:
    _, raw = mnist_files
    monkeypatch.setenv("ACTSYM_DATA", str(tmp_path / "env"))
    write_mnist(tmp_path / "env" / "mnist", {k: v for k, v in raw.items() if k != "test_images"})
    with pytest.raises(DatasetNotFound) as info:
        load_dataset("mnist", data_dir=tmp_path / "arg")
    message = str(info.value)
    assert isinstance(info.value, DataError) and "\n" not in message
    assert "t10k-images-idx3-ubyte.gz" in message and "train-labels" not in message
    for needle in (str(tmp_path / "arg" / "mnist"), str(tmp_path / "env" / "mnist"), "--data-dir", "ACTSYM_DATA"):
        assert needle in message
    with pytest.raises(DatasetNotFound, match=r"cifar-10-python\.tar\.gz.*--data-dir.*ACTSYM_DATA") as info:
        load_dataset("cifar10", data_dir=tmp_path / "arg")
    assert "\n" not in str(info.value)


def test_unknown_dataset_name() -> None:
    with pytest.raises(ValueError, match="cifar10"):
        load_dataset("imagenet")


def test_add_data_arguments() -> None:
    parser = argparse.ArgumentParser()
    data.add_data_arguments(parser)
    args = parser.parse_args(["--data-dir", "/x", "--download"])
    assert args.data_dir == Path("/x") and args.download is True
    assert parser.parse_args([]).data_dir is None


# ----------------------------------------------------------------------------- downloads (file:// only)

def test_download_into_cache_from_mirror(tmp_path: Path, monkeypatch, mnist_files) -> None:
    arrays, raw = mnist_files
    write_mnist(tmp_path / "mirror", raw)
    mirrors = ((tmp_path / "no-such-mirror").as_uri() + "/", (tmp_path / "mirror").as_uri() + "/")
    monkeypatch.setattr(datasets_mnist, "MNIST_MIRRORS", mirrors)
    ds = load_dataset("mnist", download=True, progress=False)
    cache = tmp_path / "xdg-cache" / "actsym" / "datasets" / "mnist"
    assert ds.source == str(cache)
    assert sorted(p.name for p in cache.iterdir()) == sorted(f.gz_name for f in datasets_mnist.MNIST_FILES.values())
    np.testing.assert_array_equal(ds.y_train.numpy(), arrays["train_labels"])


def test_download_failure_is_dataset_not_found(tmp_path: Path, monkeypatch, mnist_files) -> None:
    monkeypatch.setattr(datasets_mnist, "MNIST_MIRRORS", ((tmp_path / "nowhere").as_uri() + "/",))
    with pytest.raises(DatasetNotFound, match="download failed") as info:
        load_dataset("mnist", download=True, progress=False)
    assert "\n" not in str(info.value)


def test_fetch_verifies_and_writes_atomically(tmp_path: Path) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(b"payload" * 1000)
    digest = digest_bytes(source.read_bytes())
    dest = tmp_path / "out" / "file.bin"
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch([source.as_uri()], dest, md5="0" * 32, progress=False)
    assert list(dest.parent.iterdir()) == []  # neither the file nor a temp file
    with pytest.raises(DownloadError):
        fetch([(tmp_path / "missing").as_uri()], dest, progress=False)
    fetch([source.as_uri()], dest, md5=digest.md5, sha256=digest.sha256, size=digest.size, progress=False)
    assert dest.read_bytes() == source.read_bytes() and list(dest.parent.iterdir()) == [dest]


def test_cifar_download_uses_archive(tmp_path: Path, monkeypatch, cifar10_tiny) -> None:
    spec, blobs = cifar10_tiny
    archive = write_cifar_archive(tmp_path / "server", spec, blobs)
    spec = replace(spec, url=archive.as_uri(), archive_md5=hashlib.md5(archive.read_bytes()).hexdigest())
    monkeypatch.setitem(datasets_cifar.CIFAR_SPECS, "cifar10", spec)
    ds = load_dataset("cifar10", download=True, progress=False)
    assert ds.source == str(tmp_path / "xdg-cache" / "actsym" / "datasets" / "cifar10")
    assert ds.class_counts() == [5] * 10


# ----------------------------------------------------------------------------- embedded subset and tensors

def test_embedded_mnist_subset() -> None:
    blob = resources.files("actsym.data").joinpath("mnist_subset.npz").read_bytes()
    assert hashlib.sha256(blob).hexdigest() == data.MNIST_SUBSET_SHA256
    assert len(blob) < 3 * 1024 * 1024
    ds = load_dataset("mnist-subset")
    assert ds.subset is True and "subset" in ds.note.lower() and "5000" in ds.note
    assert ds.source.startswith("package:")
    assert ds.x_train.shape == (5000, 1, 28, 28) and ds.x_test.shape == (1000, 1, 28, 28)
    assert ds.x_train.dtype == torch.uint8 and ds.y_train.dtype == torch.int64
    assert ds.class_counts() == [500] * 10 and ds.class_counts("test") == [100] * 10
    assert int(ds.x_train.max()) == 255 and 0.1 < ds.x_train.float().mean().item() / 255 < 0.16


def test_to_float_normalization() -> None:
    ds = load_dataset("mnist-subset")
    x_train, y_train, x_test, _ = ds.to_float()
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert abs(x_train.mean().item()) < 1e-4 and abs(x_train.std().item() - 1) < 1e-3
    mean, std = ds.channel_stats()
    assert mean.shape == (1,) and 0.1 < mean.item() < 0.16
    raw = ds.to_float(dtype=torch.float64, normalize=False)
    assert raw.x_test.dtype == torch.float64 and raw.x_test.min() == 0 and raw.x_test.max() == 1
    fixed = ds.to_float(mean=[0.5], std=[0.5])
    assert torch.allclose(fixed.x_test, raw.x_test.float() * 2 - 1, atol=1e-6)
    assert ds.to_float(dtype=torch.bfloat16).x_train.dtype == torch.bfloat16
    assert "x_train" not in repr(ds)  # tensors are kept out of the repr


# ----------------------------------------------------------------------------- real datasets (when present)

def _real_root(dataset: str) -> Path:
    for root in _REAL_ROOTS:
        if (root / dataset).is_dir():
            return root
    pytest.skip(f"real {dataset} not found under {', '.join(map(str, _REAL_ROOTS))}")


def test_real_mnist() -> None:
    root = _real_root("mnist")
    ds = load_dataset("mnist", data_dir=root)
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert tuple(ds.class_counts()) == datasets_mnist.MNIST_CLASS_COUNTS["train"]
    assert tuple(ds.class_counts("test")) == datasets_mnist.MNIST_CLASS_COUNTS["test"]
    # The embedded subset is exactly the documented selection from the real files.
    with np.load(io.BytesIO(resources.files("actsym.data").joinpath("mnist_subset.npz").read_bytes())) as npz:
        train_index, test_index = npz["train_index"], npz["test_index"]
    subset = load_dataset("mnist-subset")
    assert torch.equal(subset.x_train, ds.x_train[torch.from_numpy(train_index).long()])
    assert torch.equal(subset.y_test, ds.y_test[torch.from_numpy(test_index).long()])
    for c in range(10):
        assert np.array_equal(train_index[subset.y_train.numpy() == c],
                              np.flatnonzero(ds.y_train.numpy() == c)[:500])


@pytest.mark.slow
def test_real_cifar10() -> None:
    root = _real_root("cifar10")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnverifiedDataWarning)  # the shared copy is recognised by sha256
        ds = load_dataset("cifar10", data_dir=root)
    assert ds.x_train.shape == (50000, 3, 32, 32) and ds.x_test.shape == (10000, 3, 32, 32)
    assert ds.class_counts() == [5000] * 10 and ds.class_counts("test") == [1000] * 10
    assert ds.y_train[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
