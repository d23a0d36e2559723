"""Writing generated files: atomic, only when changed, with a drift check for CI."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from actsym.activation import Activation

PACKAGE_DOC = '''"""Generated activation modules -- do not edit by hand; regenerate with ``actsym codegen --all``.

Convention: ``generated/<name>.py`` holds ``<Class>Function`` (autograd), ``<Class>`` (nn.Module) and the
functional ``<name>(x, *params)``; e.g. ``from generated.exp2 import ExP2``.

Modules: {names}
"""
'''


@dataclass
class WriteResult:
    path: Path
    changed: bool


def atomic_write(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` atomically (temp file + rename); return False if it was already identical."""
    path = Path(path)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def package_init(names: list[str]) -> str:
    return PACKAGE_DOC.format(names=", ".join(sorted(names)))


def planned_files(acts: list[Activation], out_dir: Path, with_init: bool) -> dict[Path, str]:
    """All files a codegen run would write, rendered in memory first (nothing touches disk on error)."""
    files = {Path(out_dir) / f"{a.name}.py": a.source() for a in acts}
    if with_init:
        existing = {p.stem for p in Path(out_dir).glob("*.py") if p.stem != "__init__"} if Path(out_dir).exists() else set()
        files[Path(out_dir) / "__init__.py"] = package_init(sorted(existing | {a.name for a in acts}))
    return files


def write_all(files: dict[Path, str]) -> list[WriteResult]:
    return [WriteResult(p, atomic_write(p, text)) for p, text in files.items()]


def stale_files(files: dict[Path, str]) -> list[Path]:
    """Files that are missing or differ from what the generator would write now."""
    return [p for p, text in files.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
