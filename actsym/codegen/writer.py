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


TRITON_PACKAGE_DOC = '''"""Generated fused Triton kernels -- do not edit by hand; regenerate with ``actsym codegen --all``.

Convention: ``{package}/<name>.py`` holds ``<name>_fwd_kernel`` and ``<name>_bwd_kernel`` (grad_x and every
parameter gradient in one pass) and their launchers ``forward(x, *params)`` and
``backward(grad, x, *params, needs=...)``; the files import only torch and triton. For autograd, torch.compile
and torch.export use ``actsym.backends.make_module(name, backend="triton")``.

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


def triton_dir(out_dir: Path) -> Path:
    """Where the Triton modules of ``out_dir`` go: the sibling package ``<out_dir>_triton`` (``generated`` ->
    ``generated_triton``), so ``out_dir`` itself holds only the eager modules."""
    out_dir = Path(out_dir)
    return out_dir.parent / f"{out_dir.name}_triton"


def _existing_modules(directory: Path) -> set[str]:
    return {p.stem for p in directory.glob("*.py") if p.stem != "__init__"} if directory.exists() else set()


def planned_files(acts: list[Activation], out_dir: Path, with_init: bool, triton: bool = True) -> dict[Path, str]:
    """All files a codegen run would write, rendered in memory first (nothing touches disk on error).

    With ``triton`` the fused Triton module of every activation the Triton printer supports goes to
    :func:`triton_dir` (an activation with an unsupported node, e.g. ``atan``, gets the eager module only)."""
    from actsym.codegen.triton_backend import UnsupportedNode, render

    files = {Path(out_dir) / f"{a.name}.py": a.source() for a in acts}
    if with_init:
        existing = _existing_modules(Path(out_dir))
        files[Path(out_dir) / "__init__.py"] = package_init(sorted(existing | {a.name for a in acts}))
    if triton:
        tdir = triton_dir(out_dir)
        rendered = {}
        for a in acts:
            try:
                rendered[tdir / f"{a.name}.py"] = render(a.derivation)
            except UnsupportedNode:
                continue
        files.update(rendered)
        if with_init and rendered:
            names = sorted(_existing_modules(tdir) | {p.stem for p in rendered})
            files[tdir / "__init__.py"] = TRITON_PACKAGE_DOC.format(package=tdir.name, names=", ".join(names))
    return files


def write_all(files: dict[Path, str]) -> list[WriteResult]:
    return [WriteResult(p, atomic_write(p, text)) for p, text in files.items()]


def stale_files(files: dict[Path, str]) -> list[Path]:
    """Files that are missing or differ from what the generator would write now."""
    return [p for p, text in files.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
