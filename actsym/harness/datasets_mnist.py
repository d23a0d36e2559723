"""MNIST from the four original IDX files, verified against the official checksums.

A folder holding MNIST contains, for each of the four files, either the original gzip'd
file (``train-images-idx3-ubyte.gz``) or its gunzipped content (``train-images-idx3-ubyte``,
or ``train-images.idx3-ubyte``, the name stored inside the official .gz).  Every file is
checked against :data:`MNIST_FILES` (size, md5 and sha256; the .gz and the decompressed
values are both listed) *before* it is parsed.

IDX format: big-endian ``uint32`` magic (``0x00000803`` for 3-d ubyte images,
``0x00000801`` for 1-d ubyte labels), one big-endian ``uint32`` per dimension, then the
raw ``uint8`` data.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from actsym.harness.download import DataError, Digest, RawSplits, digest_bytes, fetch, read_bounded

__all__ = [
    "MNIST_CLASS_COUNTS",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "MnistFile",
    "download_mnist",
    "load_mnist",
    "missing_files",
    "parse_idx",
]

IMAGE_MAGIC = 0x00000803
LABEL_MAGIC = 0x00000801


@dataclass(frozen=True)
class MnistFile:
    """One of the four MNIST files: its name (without ``.gz``), IDX magic and digests."""

    name: str
    magic: int
    gz: Digest
    raw: Digest

    @property
    def gz_name(self) -> str:
        """File name of the gzip'd original."""
        return self.name + ".gz"

    def candidates(self, directory: Path) -> list[Path]:
        """Paths this file may have inside ``directory``, in order of preference."""
        dotted = self.name.replace("-idx", ".idx")
        return [directory / self.gz_name, directory / self.name, directory / dotted]


#: Official MNIST files (the values in /work/shared/datasets/README.md).
MNIST_FILES: dict[str, MnistFile] = {
    "train_images": MnistFile(
        "train-images-idx3-ubyte", IMAGE_MAGIC,
        gz=Digest(9912422, "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                  "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        raw=Digest(47040016, "6bbc9ace898e44ae57da46a324031adb",
                   "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    ),
    "train_labels": MnistFile(
        "train-labels-idx1-ubyte", LABEL_MAGIC,
        gz=Digest(28881, "d53e105ee54ea40749a09fcbcd1e9432",
                  "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        raw=Digest(60008, "a25bea736e30d166cdddb491f175f624",
                   "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    ),
    "test_images": MnistFile(
        "t10k-images-idx3-ubyte", IMAGE_MAGIC,
        gz=Digest(1648877, "9fb629c4189551a2d022fa330f9573f3",
                  "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        raw=Digest(7840016, "2646ac647ad5339dbf082846283269ea",
                   "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    ),
    "test_labels": MnistFile(
        "t10k-labels-idx1-ubyte", LABEL_MAGIC,
        gz=Digest(4542, "ec29112dd5afa0611ce80d1b7f02629c",
                  "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
        raw=Digest(10008, "27ae3e4e09519cfbb04c329615203637",
                   "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    ),
}

#: Download mirrors, tried in order (the file name is appended).
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

#: Images per digit 0..9 in the official splits.
MNIST_CLASS_COUNTS: dict[str, tuple[int, ...]] = {
    "train": (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    "test": (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
}


def _locate(directory: Path, files: Mapping[str, MnistFile]) -> tuple[dict[str, Path], list[str]]:
    found: dict[str, Path] = {}
    missing: list[str] = []
    for key, spec in files.items():
        path = next((p for p in spec.candidates(directory) if p.is_file()), None)
        if path is None:
            missing.append(spec.gz_name)
        else:
            found[key] = path
    return found, missing


def missing_files(directory: Path) -> list[str]:
    """Names of the MNIST files absent from ``directory`` (empty when complete)."""
    return _locate(directory, MNIST_FILES)[1]


def _verified_idx_bytes(path: Path, spec: MnistFile) -> bytes:
    """Read ``path``, check it against the known digest, return the decompressed IDX bytes."""
    gzipped = path.name.endswith(".gz")
    expected = spec.gz if gzipped else spec.raw
    data = read_bounded(path, expected.size)
    got = digest_bytes(data)
    if got != expected:
        raise DataError(
            f"checksum mismatch for {path} (size {got.size}, md5 {got.md5}, sha256 {got.sha256}; "
            f"expected size {expected.size}, md5 {expected.md5}, sha256 {expected.sha256}): "
            "the file is corrupt or not the official MNIST; replace it"
        )
    if not gzipped:
        return data
    try:
        raw = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot gunzip ({exc})") from exc
    if len(raw) != spec.raw.size:
        raise DataError(f"{path}: gunzipped to {len(raw)} bytes, expected {spec.raw.size}")
    return raw


def parse_idx(data: bytes, magic: int, where: str = "IDX data") -> np.ndarray:
    """Parse an uncompressed IDX blob of unsigned bytes into an array of its declared shape."""
    if len(data) < 4:
        raise DataError(f"{where}: too short for an IDX header")
    got_magic = int.from_bytes(data[:4], "big")
    if got_magic != magic:
        raise DataError(f"{where}: bad IDX magic 0x{got_magic:08x}, expected 0x{magic:08x}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{where}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(data) != header + int(np.prod(shape, dtype=np.int64)):
        raise DataError(f"{where}: IDX payload is {len(data) - header} bytes, shape {shape} needs "
                        f"{int(np.prod(shape, dtype=np.int64))}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _read_split(found: dict[str, Path], files: Mapping[str, MnistFile], split: str) -> tuple[np.ndarray, np.ndarray]:
    img_spec, lbl_spec = files[f"{split}_images"], files[f"{split}_labels"]
    img_path, lbl_path = found[f"{split}_images"], found[f"{split}_labels"]
    images = parse_idx(_verified_idx_bytes(img_path, img_spec), IMAGE_MAGIC, str(img_path))
    labels = parse_idx(_verified_idx_bytes(lbl_path, lbl_spec), LABEL_MAGIC, str(lbl_path))
    if images.shape[1:] != (28, 28):
        raise DataError(f"{img_path}: images are {images.shape[1:]}, expected 28x28")
    if len(images) != len(labels):
        raise DataError(f"{img_path}: {len(images)} images but {len(labels)} labels in {lbl_path}")
    if labels.size and int(labels.max()) > 9:
        raise DataError(f"{lbl_path}: label {int(labels.max())} outside 0..9")
    return images.reshape(-1, 1, 28, 28).copy(), labels.astype(np.int64)


def load_mnist(directory: Path) -> RawSplits:
    """Load MNIST from ``directory`` after verifying every file against :data:`MNIST_FILES`.

    Raises:
        DataError: a file is missing, fails its checksum or is not valid IDX.
    """
    files = MNIST_FILES
    found, missing = _locate(directory, files)
    if missing:
        raise DataError(f"{directory}: missing MNIST files {', '.join(missing)}")
    x_train, y_train = _read_split(found, files, "train")
    x_test, y_test = _read_split(found, files, "test")
    note = (f"MNIST, {len(x_train)} train / {len(x_test)} test images from {directory}; "
            "all four files match the official md5 and sha256")
    return RawSplits(x_train, y_train, x_test, y_test, note)


def download_mnist(directory: Path, mirrors: Sequence[str] | None = None, *, progress: bool = True) -> None:
    """Download the missing official ``.gz`` files into ``directory`` (verified, atomic).

    Raises:
        DownloadError: no mirror could be reached.
        DataError: a downloaded file has the wrong checksum.
    """
    mirrors = MNIST_MIRRORS if mirrors is None else mirrors
    found, _ = _locate(directory, MNIST_FILES)
    for key, spec in MNIST_FILES.items():
        if key in found:
            continue
        fetch([m + spec.gz_name for m in mirrors], directory / spec.gz_name,
              md5=spec.gz.md5, sha256=spec.gz.sha256, size=spec.gz.size, progress=progress)
