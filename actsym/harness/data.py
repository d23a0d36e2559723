"""Data layer of the evaluation harness: whole datasets as in-memory tensors (airbench style).

Public entry point: :func:`load_dataset` with one of :data:`DATASET_NAMES`:

* ``"mnist"`` -- the four official IDX files (gzip'd or not), md5/sha256-verified;
* ``"mnist-subset"`` -- a small, real, class-balanced MNIST subset shipped inside the package
  (``actsym/data/mnist_subset.npz``, see ``tools/make_mnist_subset.py``); needs no files;
* ``"cifar10"`` / ``"cifar100"`` -- the python-pickle version, from the extracted folder or the
  official ``.tar.gz`` (see :mod:`actsym.harness.datasets_cifar` for the trust model).

Where files are looked for, in order (the first root holding a complete copy wins):

1. the explicit ``data_dir`` argument (CLI ``--data-dir``);
2. the ``ACTSYM_DATA`` environment variable;
3. the user cache, ``$XDG_CACHE_HOME/actsym/datasets`` (default ``~/.cache/actsym/datasets``).

A root holds ``mnist/``, ``cifar10/`` and ``cifar100/`` sub-folders, laid out like the shared
dataset folder.  With ``download=True``, missing files are fetched from the official sources
into the cache (progress bar, checksum verification, atomic writes); otherwise a one-line
:class:`DatasetNotFound` says what is missing and where to put it.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from actsym.harness import datasets_cifar, datasets_mnist
from actsym.harness.download import (
    DataError,
    DatasetNotFound,
    DownloadError,
    RawSplits,
    UnverifiedDataWarning,
)

__all__ = [
    "DATASET_NAMES",
    "ENV_VAR",
    "MNIST_SUBSET_SHA256",
    "DataError",
    "Dataset",
    "DatasetNotFound",
    "FloatSplits",
    "UnverifiedDataWarning",
    "add_data_arguments",
    "default_cache_dir",
    "load_dataset",
    "load_mnist_subset",
    "resolve_data_roots",
]

#: Names accepted by :func:`load_dataset`.
DATASET_NAMES: tuple[str, ...] = ("mnist", "mnist-subset", "cifar10", "cifar100")

#: Environment variable naming a dataset root.
ENV_VAR = "ACTSYM_DATA"

#: Package resource holding the embedded MNIST subset, and its sha256.
MNIST_SUBSET_RESOURCE = ("actsym.data", "mnist_subset.npz")
MNIST_SUBSET_SHA256 = "16c321a4eaaf03889e136933741e7f1da2946b2d9a523fb6edaaa90c1dc3f9ed"

_ALIASES = {
    "cifar-10": "cifar10", "cifar_10": "cifar10",
    "cifar-100": "cifar100", "cifar_100": "cifar100",
    "mnist_subset": "mnist-subset",
}


# ----------------------------------------------------------------------------- roots

def default_cache_dir() -> Path:
    """The user cache root: ``$XDG_CACHE_HOME/actsym/datasets`` or ``~/.cache/actsym/datasets``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "actsym" / "datasets"


def resolve_data_roots(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Dataset roots to search, in priority order: ``data_dir``, ``$ACTSYM_DATA``, the cache."""
    roots: list[Path] = []
    env = os.environ.get(ENV_VAR)
    for candidate in (data_dir, env or None, default_cache_dir()):
        if candidate is None:
            continue
        path = Path(candidate).expanduser()
        if path not in roots:
            roots.append(path)
    return roots


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--data-dir`` and ``--download`` to a CLI parser (pass them on to :func:`load_dataset`)."""
    parser.add_argument(
        "--data-dir", type=Path, default=None,
        help=f"dataset root holding mnist/, cifar10/, cifar100/ (searched before ${ENV_VAR} and "
             f"{default_cache_dir()})",
    )
    parser.add_argument(
        "--download", action="store_true",
        help="download missing datasets from the official sources into the cache",
    )


# ----------------------------------------------------------------------------- dataset

class FloatSplits(NamedTuple):
    """Float images and int64 labels, ready for training on a device."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@dataclass(frozen=True, eq=False)
class Dataset:
    """A whole dataset in memory.

    Images are uint8 tensors ``(N, C, H, W)`` (MNIST ``(N, 1, 28, 28)``, CIFAR
    ``(N, 3, 32, 32)``); labels are int64 ``(N,)``.  ``source`` says where the data came
    from, ``subset`` whether it is only part of the dataset, ``note`` how it was verified.
    """

    name: str
    x_train: torch.Tensor = field(repr=False)
    y_train: torch.Tensor = field(repr=False)
    x_test: torch.Tensor = field(repr=False)
    y_test: torch.Tensor = field(repr=False)
    num_classes: int
    source: str
    subset: bool
    note: str

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    def class_counts(self, split: str = "train") -> list[int]:
        """Number of images per class in ``split`` ("train" or "test")."""
        labels = {"train": self.y_train, "test": self.y_test}[split]
        return torch.bincount(labels, minlength=self.num_classes).tolist()

    @functools.cached_property
    def _channel_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.x_train.shape[1]
        total = torch.zeros(c, dtype=torch.float64)
        squares = torch.zeros(c, dtype=torch.float64)
        for chunk in self.x_train.split(4096):
            values = chunk.to(torch.float64)
            total += values.sum(dim=(0, 2, 3))
            squares += values.square().sum(dim=(0, 2, 3))
        count = self.x_train.numel() // c
        mean = total / count
        std = (squares / count - mean.square()).clamp_min(0).sqrt()
        return mean / 255, std / 255

    def channel_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and std of the training images scaled to [0, 1] (float64, shape ``(C,)``)."""
        mean, std = self._channel_stats
        return mean.clone(), std.clone()

    def to_float(
        self,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        *,
        normalize: bool = True,
        mean: Sequence[float] | torch.Tensor | None = None,
        std: Sequence[float] | torch.Tensor | None = None,
    ) -> FloatSplits:
        """Images as ``dtype`` on ``device``, scaled to [0, 1] and (by default) standardized.

        With ``normalize=True`` each channel becomes ``(x - mean) / std``; ``mean``/``std``
        default to :meth:`channel_stats` of the training set (in [0, 1] units).  Labels are moved
        to ``device`` as int64.  The uint8 data is transferred first and converted on the device.
        """
        work = torch.float64 if dtype == torch.float64 else torch.float32
        shift: torch.Tensor | None = None
        scale: torch.Tensor | None = None
        if normalize:
            stats = self.channel_stats()
            shift = torch.as_tensor(stats[0] if mean is None else mean, dtype=work, device=device)
            scale = torch.as_tensor(stats[1] if std is None else std, dtype=work, device=device)
            shift, scale = shift.reshape(1, -1, 1, 1), scale.reshape(1, -1, 1, 1)

        def convert(x: torch.Tensor) -> torch.Tensor:
            out = x.to(device=device).to(work).div_(255)
            if shift is not None and scale is not None:
                out.sub_(shift).div_(scale)
            return out.to(dtype)

        return FloatSplits(
            convert(self.x_train), self.y_train.to(device),
            convert(self.x_test), self.y_test.to(device),
        )


def _make_dataset(name: str, raw: RawSplits, num_classes: int, source: str, *, subset: bool) -> Dataset:
    def images(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.uint8))

    def labels(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))

    return Dataset(
        name=name,
        x_train=images(raw.x_train), y_train=labels(raw.y_train),
        x_test=images(raw.x_test), y_test=labels(raw.y_test),
        num_classes=num_classes, source=source, subset=subset, note=raw.note,
    )


# ----------------------------------------------------------------------------- sources

@dataclass(frozen=True)
class _Source:
    subdir: str
    num_classes: int
    missing: Callable[[Path], list[str]]
    load: Callable[[Path], RawSplits]
    download: Callable[[Path, bool], None]
    hint: str = ""


def _cifar_source(name: str, num_classes: int) -> _Source:
    return _Source(
        subdir=name,
        num_classes=num_classes,
        missing=lambda d: datasets_cifar.missing_files(d, name),
        load=lambda d: datasets_cifar.load_cifar(d, name),
        download=lambda d, progress: datasets_cifar.download_cifar(d, name, progress=progress),
    )


_SOURCES: dict[str, _Source] = {
    "mnist": _Source(
        subdir="mnist",
        num_classes=10,
        missing=lambda d: datasets_mnist.missing_files(d),
        load=lambda d: datasets_mnist.load_mnist(d),
        download=lambda d, progress: datasets_mnist.download_mnist(d, progress=progress),
        hint="; or use the embedded 'mnist-subset', which needs no files",
    ),
    "cifar10": _cifar_source("cifar10", 10),
    "cifar100": _cifar_source("cifar100", 100),
}


def _not_found(name: str, src: _Source, dirs: list[Path], reason: str = "") -> DatasetNotFound:
    """Build the one-line error listing what is missing and where it was looked for."""
    missing = min((src.missing(d) for d in dirs), key=len)
    msg = (
        f"{name}: dataset files not found (missing: {', '.join(missing)}); "
        f"searched {', '.join(str(d) for d in dirs)}; "
        f"put the files in <root>/{src.subdir}/ and pass --data-dir <root> or set {ENV_VAR}=<root>, "
        f"or use download=True (--download) to fetch them into {default_cache_dir()}"
        f"{reason}{src.hint}"
    )
    return DatasetNotFound(msg.replace("\n", " "))


def load_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    *,
    progress: bool = True,
) -> Dataset:
    """Load a whole dataset into memory.

    Args:
        name: one of :data:`DATASET_NAMES` (``"cifar-10"``-style aliases accepted).
        data_dir: dataset root searched first (then ``$ACTSYM_DATA``, then the cache).
        download: fetch missing files from the official sources into the cache.
        progress: show a tqdm bar while downloading.

    Raises:
        ValueError: unknown ``name``.
        DatasetNotFound: no searched root holds the files (and downloading was off or failed).
        DataError: a file fails its checksum or is malformed.
    """
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key == "mnist-subset":
        return load_mnist_subset()
    src = _SOURCES.get(key)
    if src is None:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    dirs = [root / src.subdir for root in resolve_data_roots(data_dir)]
    for directory in dirs:
        if not src.missing(directory):
            return _make_dataset(key, src.load(directory), src.num_classes, str(directory), subset=False)
    if not download:
        raise _not_found(key, src, dirs)
    target = default_cache_dir() / src.subdir
    try:
        src.download(target, progress)
    except DownloadError as exc:
        raise _not_found(key, src, dirs, f"; download failed: {exc}") from exc
    return _make_dataset(key, src.load(target), src.num_classes, str(target), subset=False)


# ----------------------------------------------------------------------------- embedded subset

def load_mnist_subset() -> Dataset:
    """Load the real, class-balanced MNIST subset shipped in ``actsym/data/mnist_subset.npz``.

    The file's sha256 is checked against :data:`MNIST_SUBSET_SHA256` before parsing.
    """
    package, filename = MNIST_SUBSET_RESOURCE
    where = f"{package.replace('.', '/')}/{filename}"
    try:
        blob = resources.files(package).joinpath(filename).read_bytes()
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise DatasetNotFound(f"mnist-subset: embedded file {where} is missing from the installed package; "
                              "reinstall actsym or regenerate it with tools/make_mnist_subset.py") from exc
    sha = hashlib.sha256(blob).hexdigest()
    if sha != MNIST_SUBSET_SHA256:
        raise DataError(f"checksum mismatch for embedded {where} (sha256 {sha}, expected {MNIST_SUBSET_SHA256})")
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    n_train, n_test = len(arrays["x_train"]), len(arrays["x_test"])
    note = (
        f"SUBSET: {n_train} train + {n_test} test real MNIST images embedded in the package "
        f"({n_train // 10} train / {n_test // 10} test per digit, the first ones in file order), "
        "not the full 60000/10000 dataset"
    )
    raw = RawSplits(
        arrays["x_train"].reshape(-1, 1, 28, 28), arrays["y_train"],
        arrays["x_test"].reshape(-1, 1, 28, 28), arrays["y_test"], note,
    )
    return _make_dataset("mnist-subset", raw, 10, f"package:{where}", subset=True)
