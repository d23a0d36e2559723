"""File plumbing shared by the dataset loaders: errors, integrity checks and downloads.

Everything that touches raw bytes before they are parsed lives here:

* :class:`DataError` / :class:`DatasetNotFound` -- the exceptions of the data layer.  Their
  messages are always a single line, so a CLI can print them as-is.
* :func:`digest_bytes` / :func:`digest_file` -- md5 + sha256 + size of a blob, in one pass.
* :func:`read_bounded` -- read a file, refusing anything larger than expected.
* :class:`RawSplits` -- what the format-specific loaders hand back.
* :func:`fetch` -- download a URL (trying mirrors in order) with a tqdm progress bar,
  verify its checksum and publish it atomically (temp file in the same folder, then
  :func:`os.replace`).  Nothing is left behind on failure.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm.auto import tqdm

from .progress import stderr_is_terminal

__all__ = [
    "DataError",
    "DatasetNotFound",
    "DownloadError",
    "Digest",
    "RawSplits",
    "UnverifiedDataWarning",
    "digest_bytes",
    "digest_file",
    "fetch",
    "read_bounded",
]

_CHUNK = 1 << 20


class DataError(Exception):
    """A dataset could not be loaded: corrupt, mismatching or malformed files."""


class DatasetNotFound(DataError):
    """The files of a dataset are not present in any of the searched folders."""


class DownloadError(DataError):
    """A download failed for a network reason (unreachable host, HTTP error, timeout)."""


class UnverifiedDataWarning(UserWarning):
    """Files passed the structural checks but match no known checksum."""


@dataclass(frozen=True)
class Digest:
    """Size and hex digests of a blob."""

    size: int
    md5: str
    sha256: str


def digest_bytes(data: bytes) -> Digest:
    """Return the :class:`Digest` of an in-memory blob."""
    return Digest(len(data), hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest())


def digest_file(path: Path) -> Digest:
    """Return the :class:`Digest` of a file, streaming it in 1 MiB chunks."""
    md5, sha, size = hashlib.md5(), hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            md5.update(chunk)
            sha.update(chunk)
            size += len(chunk)
    return Digest(size, md5.hexdigest(), sha.hexdigest())


def read_bounded(path: Path, max_bytes: int) -> bytes:
    """Read ``path`` whole, raising :class:`DataError` if it holds more than ``max_bytes``."""
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise DataError(f"{path}: file is larger than the {max_bytes} bytes expected; refusing to parse it")
    return data


def _matches(d: Digest, md5: str | None, sha256: str | None, size: int | None) -> bool:
    return (
        (md5 is None or d.md5 == md5)
        and (sha256 is None or d.sha256 == sha256)
        and (size is None or d.size == size)
    )


def fetch(
    urls: Sequence[str],
    dest: Path,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    size: int | None = None,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Download ``dest`` from the first working URL in ``urls`` and verify it.

    The data goes to a temporary file next to ``dest``; only once its checksum matches is it
    moved into place with :func:`os.replace`, so ``dest`` is either absent or complete.

    Raises:
        DownloadError: every URL failed for a network reason (the last reason is reported).
        DataError: a download completed but its checksum does not match.
    """
    if not urls:
        raise DownloadError(f"no download URL known for {dest.name}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    last: str = "no URL tried"
    for url in urls:
        try:
            got = _download_to_temp(url, dest, timeout=timeout, progress=progress)
        except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError, ValueError) as exc:
            last = f"{url}: {getattr(exc, 'reason', exc)}"
            continue
        tmp, digest = got
        if not _matches(digest, md5, sha256, size):
            tmp.unlink(missing_ok=True)
            raise DataError(
                f"checksum mismatch for {dest.name} downloaded from {url} "
                f"(got md5 {digest.md5}, sha256 {digest.sha256}, {digest.size} bytes; "
                f"expected md5 {md5}, sha256 {sha256}); nothing was saved"
            )
        os.replace(tmp, dest)
        return dest
    raise DownloadError(f"could not download {dest.name} ({last})")


def _download_to_temp(url: str, dest: Path, *, timeout: float, progress: bool) -> tuple[Path, Digest]:
    """Stream ``url`` into a temp file beside ``dest``; return it with its digest."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    md5, sha, size = hashlib.md5(), hashlib.sha256(), 0
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "actsym-data/1.0"})
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(request, timeout=timeout) as response,
        ):
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total, unit="B", unit_scale=True, unit_divisor=1024,
                desc=dest.name, leave=False, disable=not progress or not stderr_is_terminal(),
            ) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    md5.update(chunk)
                    sha.update(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return tmp, Digest(size, md5.hexdigest(), sha.hexdigest())


class RawSplits(NamedTuple):
    """Parsed dataset arrays as returned by the format-specific loaders.

    Images are uint8 ``(N, C, H, W)``, labels int64 ``(N,)``; ``note`` says how the files were
    verified.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    note: str
