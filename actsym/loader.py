"""Turning generated source into a module object (no file on disk; tracebacks still show the source).

The lowest layer: used by :mod:`actsym.activation` (eager modules) and :mod:`actsym.codegen.custom_op`
(Triton modules), so neither has to import the other.
"""

from __future__ import annotations

import linecache
import types


def load_source(source: str, module_name: str) -> types.ModuleType:
    """Compile generated source (our printer's output, never user text) into a module object."""
    filename = f"<{module_name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    mod = types.ModuleType(module_name)
    mod.__file__ = filename
    exec(compile(source, filename, "exec"), mod.__dict__)  # noqa: S102 - generated code only
    return mod
