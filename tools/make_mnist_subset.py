"""Regenerate ``actsym/data/mnist_subset.npz``, the real MNIST subset embedded in the package.

Source: the four official MNIST files, loaded (and md5/sha256-verified) with
:func:`actsym.harness.data.load_dataset`.

Selection rule (deterministic, no randomness):

* train: for each digit ``c`` in 0..9, the first 500 images of the official training set,
  in file order, whose label is ``c`` -> 5000 images;
* test: for each digit ``c``, the first 100 images of the official test set with label ``c``
  -> 1000 images;
* the selected indices are sorted ascending, so the subset keeps the original file order.

File format: a ``.npz`` (zip, DEFLATE level 9) whose members are written in this order with a
fixed timestamp (1980-01-01 00:00:00), Unix ``create_system`` and mode 0644, so the bytes are
reproducible:

=============== ======= ================= ================================================
member          dtype   shape             meaning
=============== ======= ================= ================================================
x_train.npy     uint8   (5000, 28, 28)    images
y_train.npy     uint8   (5000,)           labels 0..9
train_index.npy int32   (5000,)           index of each image in the official 60000
x_test.npy      uint8   (1000, 28, 28)    images
y_test.npy      uint8   (1000,)           labels 0..9
test_index.npy  int32   (1000,)           index of each image in the official 10000
=============== ======= ================= ================================================

Result (built with zlib 1.2.13, numpy 2.4, .npy format 1.0 headers): 983,810 bytes,
sha256 ``16c321a4eaaf03889e136933741e7f1da2946b2d9a523fb6edaaa90c1dc3f9ed``.  The same value is stored as
``actsym.harness.data.MNIST_SUBSET_SHA256``; ``--check`` rebuilds the file in memory and
compares it with the shipped one (a different zlib could in principle compress differently,
in which case the array contents are compared instead).

Usage::

    python tools/make_mnist_subset.py [--data-dir ROOT] [--out PATH] [--check]

``ROOT`` holds ``mnist/`` (default: ``--data-dir``, ``$ACTSYM_DATA``, the cache, then the
shared dataset folder next to the repository).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "actsym" / "data" / "mnist_subset.npz"
SHARED = REPO.parent / "shared" / "datasets"
TRAIN_PER_CLASS = 500
TEST_PER_CLASS = 100


def select(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Indices of the first ``per_class`` samples of each class 0..9, sorted ascending."""
    chosen = [np.flatnonzero(labels == c)[:per_class] for c in range(10)]
    for c, idx in enumerate(chosen):
        if len(idx) != per_class:
            raise ValueError(f"only {len(idx)} samples of class {c}, need {per_class}")
    return np.sort(np.concatenate(chosen)).astype(np.int32)


def build_arrays(x_train: np.ndarray, y_train: np.ndarray,
                 x_test: np.ndarray, y_test: np.ndarray) -> dict[str, np.ndarray]:
    """Apply the selection rule to full MNIST arrays (images (N,28,28) or (N,1,28,28))."""
    tr, te = select(y_train, TRAIN_PER_CLASS), select(y_test, TEST_PER_CLASS)
    return {
        "x_train": np.ascontiguousarray(x_train.reshape(-1, 28, 28)[tr], dtype=np.uint8),
        "y_train": y_train[tr].astype(np.uint8),
        "train_index": tr,
        "x_test": np.ascontiguousarray(x_test.reshape(-1, 28, 28)[te], dtype=np.uint8),
        "y_test": y_test[te].astype(np.uint8),
        "test_index": te,
    }


def to_npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Serialize ``arrays`` as a reproducible compressed ``.npz`` blob."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, member.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return out.getvalue()


def _load_full_mnist(data_dir: Path | None) -> tuple[np.ndarray, ...]:
    if str(REPO) not in sys.path:  # run as a script from a checkout
        sys.path.insert(0, str(REPO))
    from actsym.harness.data import DatasetNotFound, load_dataset

    try:
        ds = load_dataset("mnist", data_dir=data_dir)
    except DatasetNotFound:
        if data_dir is not None or not SHARED.is_dir():
            raise
        ds = load_dataset("mnist", data_dir=SHARED)
    return ds.x_train.numpy(), ds.y_train.numpy(), ds.x_test.numpy(), ds.y_test.numpy()


def main(argv: list[str] | None = None) -> int:
    """Build the subset; write it to ``--out`` or, with ``--check``, compare with it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="dataset root holding mnist/")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output file (default {DEFAULT_OUT})")
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    args = parser.parse_args(argv)

    arrays = build_arrays(*_load_full_mnist(args.data_dir))
    blob = to_npz_bytes(arrays)
    sha = hashlib.sha256(blob).hexdigest()
    if args.check:
        shipped = args.out.read_bytes()
        if shipped == blob:
            sys.stdout.write(f"OK: {args.out} is byte-identical ({len(blob)} bytes, sha256 {sha})\n")
            return 0
        with np.load(io.BytesIO(shipped), allow_pickle=False) as npz:
            same = set(npz.files) == {f"{k}" for k in arrays} and all(
                np.array_equal(npz[k], v) and npz[k].dtype == v.dtype for k, v in arrays.items()
            )
        verdict = "same arrays, different compression" if same else "DIFFERENT CONTENT"
        sys.stdout.write(f"{verdict}: shipped sha256 {hashlib.sha256(shipped).hexdigest()}, rebuilt {sha}\n")
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".npz.tmp")
    tmp.write_bytes(blob)
    tmp.replace(args.out)
    sys.stdout.write(f"wrote {args.out}: {len(blob)} bytes, sha256 {sha}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
