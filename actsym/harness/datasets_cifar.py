"""CIFAR-10 / CIFAR-100 from the "python version" pickles, read defensively.

A folder holding CIFAR-10 (``<root>/cifar10/``) contains either the extracted
``cifar-10-batches-py/`` folder (``data_batch_1`` .. ``data_batch_5``, ``test_batch``) or the
official archive ``cifar-10-python.tar.gz``.  CIFAR-100 (``<root>/cifar100/``) likewise holds
``cifar-100-python/`` (``train``, ``test``) or ``cifar-100-python.tar.gz``.

Trust model -- nothing is unpickled before its size (and, where known, checksum) is checked,
and unpickling always goes through :class:`RestrictedUnpickler`, which can only rebuild numpy
arrays:

* archive: its md5 must equal the official one (else :class:`DataError`); members are read
  from the tar stream in memory (regular files only, size-bounded; nothing is extracted).
* folder: each file whose md5 equals the official per-file md5, or whose sha256 is a known
  good copy (the rebuilt batches of the shared dataset folder, which lack ``b'filenames'``),
  counts as verified.  Any other file is accepted only if the whole dataset passes the
  structural checks (keys, uint8 ``(N, 3072)`` data, label range, exact per-class counts), and
  an :class:`UnverifiedDataWarning` says so.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from actsym.harness.download import (
    DataError,
    RawSplits,
    UnverifiedDataWarning,
    digest_bytes,
    digest_file,
    fetch,
    read_bounded,
)

__all__ = [
    "CIFAR10",
    "CIFAR100",
    "CIFAR_SPECS",
    "CifarFile",
    "CifarSpec",
    "RestrictedUnpickler",
    "download_cifar",
    "load_cifar",
    "missing_files",
    "safe_unpickle",
]

_ROW = 3 * 32 * 32


@dataclass(frozen=True)
class CifarFile:
    """One batch file: name, number of images, official md5 and other known-good sha256s."""

    name: str
    rows: int
    md5: str
    known_sha256: frozenset[str] = frozenset()

    @property
    def min_bytes(self) -> int:
        """Smallest plausible size: the pixel payload alone."""
        return self.rows * _ROW

    @property
    def max_bytes(self) -> int:
        """Largest plausible size: payload plus generous room for labels and file names."""
        return self.rows * (_ROW + 256) + 65536


@dataclass(frozen=True)
class CifarSpec:
    """Everything needed to find, verify and parse one CIFAR variant."""

    name: str
    title: str
    folder: str
    archive: str
    archive_md5: str
    url: str
    label_key: bytes
    num_classes: int
    train: tuple[CifarFile, ...]
    test: tuple[CifarFile, ...]
    train_per_class: int
    test_per_class: int

    @property
    def files(self) -> tuple[CifarFile, ...]:
        """All batch files, train first."""
        return self.train + self.test


def _batch(name: str, md5: str, sha256: str) -> CifarFile:
    return CifarFile(name, 10000, md5, frozenset({sha256}))


CIFAR10 = CifarSpec(
    name="cifar10",
    title="CIFAR-10",
    folder="cifar-10-batches-py",
    archive="cifar-10-python.tar.gz",
    archive_md5="c58f30108f718f92721af3b95e74349a",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    label_key=b"labels",
    num_classes=10,
    # Official per-file md5s, plus the sha256s of the rebuilt copy documented in
    # /work/shared/datasets/README.md (same images/labels, no b'filenames' key).
    train=(
        _batch("data_batch_1", "c99cafc152244af753f735de768cd75f",
               "809454c645931070f431fe22cee2ad522195e7c6738cb92d5271fb4b1fe31693"),
        _batch("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec",
               "ba06209dc3259f68afef594fdb8c8976aa18b1b99f63d38ad1f2f58307b0a1ed"),
        _batch("data_batch_3", "54ebc095f3ab1f0389bbae665268c751",
               "8c73626cc8cf3757533f8603634762d6ec3a59dee7331014892c4310e08eb1c9"),
        _batch("data_batch_4", "634d18415352ddfa80567beed471001a",
               "31541e73614619fc3096e64e259efbb4fb96f5aeac2178ceb5c7672b395dbf3c"),
        _batch("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb",
               "b7ac0a09c1f0dd4ee23e48a8d4662579d99e3e9aaddc21e3498b7c80f9fa26c0"),
    ),
    test=(
        _batch("test_batch", "40351d587109b95175f43aff81a1287e",
               "a9e13ff060b2d2236500a8b2bbce481495ea37fb05531d0ab5d3a94229c4bea9"),
    ),
    train_per_class=5000,
    test_per_class=1000,
)

CIFAR100 = CifarSpec(
    name="cifar100",
    title="CIFAR-100",
    folder="cifar-100-python",
    archive="cifar-100-python.tar.gz",
    archive_md5="eb9058c3a382ffc7106e4002c42a8d85",
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    label_key=b"fine_labels",
    num_classes=100,
    train=(CifarFile("train", 50000, "16019d7e3df5f24257cddd939b257f8d"),),
    test=(CifarFile("test", 10000, "f0ef6b0ae62326f3e7ffdfab6717acfc"),),
    train_per_class=500,
    test_per_class=100,
)

#: Specs by dataset name (looked up at call time, so tests can substitute their own).
CIFAR_SPECS: dict[str, CifarSpec] = {CIFAR10.name: CIFAR10, CIFAR100.name: CIFAR100}


# ----------------------------------------------------------------------------- unpickling

def _allowed_globals() -> dict[tuple[str, str], object]:
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    return allowed


_ALLOWED_GLOBALS = _allowed_globals()


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and plain containers, and nothing else.

    Any other global (``os.system``, ``builtins.eval``, ...) raises
    :class:`pickle.UnpicklingError` before it is even imported.
    """

    def find_class(self, module: str, name: str) -> object:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is forbidden") from None


def safe_unpickle(data: bytes, where: str = "pickle") -> object:
    """Unpickle ``data`` (Python-2 pickles: ``encoding='bytes'``) with :class:`RestrictedUnpickler`.

    Raises:
        DataError: the pickle is malformed or references a forbidden global.
    """
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # any failure of untrusted input is a data error
        raise DataError(f"{where}: refusing to unpickle ({type(exc).__name__}: {exc})") from exc


# ----------------------------------------------------------------------------- structure

def _parse_batch(data: bytes, spec: CifarSpec, f: CifarFile, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Unpickle one batch and check its structure; return images (N,3,32,32) and int64 labels."""
    obj = safe_unpickle(data, where)
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a dict, got {type(obj).__name__}")
    for key in (b"data", spec.label_key):
        if key not in obj:
            raise DataError(f"{where}: key {key!r} missing (keys: {sorted(map(repr, obj))})")
    x = obj[b"data"]
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.shape != (f.rows, _ROW):
        desc = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise DataError(f"{where}: b'data' is {desc}, expected uint8 ({f.rows}, {_ROW})")
    y = np.asarray(obj[spec.label_key])
    if y.ndim != 1 or y.dtype.kind not in "iu" or len(y) != f.rows:
        raise DataError(f"{where}: {spec.label_key!r} is not {f.rows} integers")
    if y.size and (int(y.min()) < 0 or int(y.max()) >= spec.num_classes):
        raise DataError(f"{where}: labels outside 0..{spec.num_classes - 1}")
    return x.reshape(f.rows, 3, 32, 32), y.astype(np.int64)


def _check_counts(labels: np.ndarray, spec: CifarSpec, per_class: int, split: str, where: str) -> None:
    counts = np.bincount(labels, minlength=spec.num_classes)
    if not np.all(counts == per_class):
        raise DataError(
            f"{where}: {split} split has per-class counts {counts.min()}..{counts.max()}, "
            f"expected exactly {per_class} per class"
        )


def _assemble(parts: dict[str, tuple[np.ndarray, np.ndarray]], spec: CifarSpec, where: str) -> tuple[np.ndarray, ...]:
    """Concatenate parsed batches into train/test arrays and check the per-class counts."""
    def split(files: Iterable[CifarFile]) -> tuple[np.ndarray, np.ndarray]:
        chosen = [parts[f.name] for f in files]
        return np.concatenate([p[0] for p in chosen]), np.concatenate([p[1] for p in chosen])

    x_train, y_train = split(spec.train)
    x_test, y_test = split(spec.test)
    _check_counts(y_train, spec, spec.train_per_class, "train", where)
    _check_counts(y_test, spec, spec.test_per_class, "test", where)
    return x_train, y_train, x_test, y_test


# ----------------------------------------------------------------------------- sources

def _folder_complete(folder: Path, spec: CifarSpec) -> bool:
    return all((folder / f.name).is_file() for f in spec.files)


def missing_files(directory: Path, name: str) -> list[str]:
    """What is missing in ``directory`` for dataset ``name`` (empty when loadable)."""
    spec = CIFAR_SPECS[name]
    folder = directory / spec.folder
    if _folder_complete(folder, spec) or (directory / spec.archive).is_file():
        return []
    if folder.is_dir():
        return [f"{spec.folder}/{f.name}" for f in spec.files if not (folder / f.name).is_file()]
    return [f"{spec.archive} (or the extracted {spec.folder}/ folder)"]


def _load_folder(folder: Path, spec: CifarSpec) -> RawSplits:
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    unverified: list[str] = []
    official = 0
    for f in spec.files:
        path = folder / f.name
        data = read_bounded(path, f.max_bytes)
        if len(data) < f.min_bytes:
            raise DataError(f"{path}: {len(data)} bytes is too small for {f.rows} images")
        digest = digest_bytes(data)
        if digest.md5 == f.md5:
            official += 1
        elif digest.sha256 not in f.known_sha256:
            unverified.append(f.name)
        parts[f.name] = _parse_batch(data, spec, f, str(path))
        del data
    arrays = _assemble(parts, spec, str(folder))
    if unverified:
        msg = (f"{spec.title} at {folder}: {', '.join(unverified)} match no known checksum; the copy is "
               "UNVERIFIED but structurally valid (keys, uint8 (N,3072) data, label range, per-class counts)")
        warnings.warn(msg, UnverifiedDataWarning, stacklevel=3)
        note = msg
    elif official == len(spec.files):
        note = f"{spec.title} from {folder}; every batch file matches its official md5"
    else:
        note = (f"{spec.title} from {folder}; batch files recognised by sha256 as a known-good copy "
                "(rebuilt files: same images and labels as the official ones, official md5s differ)")
    return RawSplits(*arrays, note)


def _load_archive(archive: Path, spec: CifarSpec) -> RawSplits:
    digest = digest_file(archive)
    if digest.md5 != spec.archive_md5:
        raise DataError(f"checksum mismatch for {archive} (md5 {digest.md5}, expected the official "
                        f"{spec.archive_md5}): the archive is corrupt or not the official {spec.title}; replace it")
    wanted = {f"{spec.folder}/{f.name}": f for f in spec.files}
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        with tarfile.open(archive, mode="r|gz") as tar:
            for member in tar:
                f = wanted.get(member.name.removeprefix("./"))
                if f is None:
                    continue
                if not member.isreg():
                    raise DataError(f"{archive}: member {member.name} is not a regular file")
                if f.name in parts:
                    raise DataError(f"{archive}: member {member.name} appears twice")
                if not f.min_bytes <= member.size <= f.max_bytes:
                    raise DataError(f"{archive}: member {member.name} has implausible size {member.size}")
                stream = tar.extractfile(member)
                if stream is None:  # pragma: no cover - isreg() guarantees a stream
                    raise DataError(f"{archive}: cannot read member {member.name}")
                parts[f.name] = _parse_batch(stream.read(), spec, f, f"{archive}:{member.name}")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{archive}: cannot read archive ({exc})") from exc
    absent = [name for name, f in wanted.items() if f.name not in parts]
    if absent:
        raise DataError(f"{archive}: archive lacks {', '.join(absent)}")
    arrays = _assemble(parts, spec, str(archive))
    return RawSplits(*arrays, f"{spec.title} from the official archive {archive} (md5 verified)")


def load_cifar(directory: Path, name: str) -> RawSplits:
    """Load CIFAR dataset ``name`` ("cifar10" or "cifar100") from ``directory``.

    The extracted folder is used when complete, otherwise the archive.

    Raises:
        DataError: files missing, checksum mismatch (archive), or malformed content.
    """
    spec = CIFAR_SPECS[name]
    folder = directory / spec.folder
    if _folder_complete(folder, spec):
        return _load_folder(folder, spec)
    if (directory / spec.archive).is_file():
        return _load_archive(directory / spec.archive, spec)
    raise DataError(f"{directory}: missing {spec.title} files {', '.join(missing_files(directory, name))}")


def download_cifar(directory: Path, name: str, *, progress: bool = True) -> None:
    """Download the official archive of ``name`` into ``directory`` (md5-verified, atomic)."""
    spec = CIFAR_SPECS[name]
    fetch([spec.url], directory / spec.archive, md5=spec.archive_md5, progress=progress)
