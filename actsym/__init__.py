"""actsym: declare an activation once as a SymPy expression; get derivatives, generated PyTorch code,
property tests and evaluations.

>>> import actsym
>>> act = actsym.define("tanhexp", "x*tanh(exp(b)*x)", params={"b": 0.0})
>>> layer = act.module()            # nn.Module with a learnable scalar b
>>> actsym.get("exp2").derivative("x")

Importing the package imports nothing else (no torch, no SymPy): the names below are loaded on first use,
so ``actsym --help`` and ``from actsym import __version__`` stay instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: public name -> the module that defines it (loaded on first access)
_EXPORTS = {
    "define": "actsym.api", "get": "actsym.api", "names": "actsym.api", "corpus_names": "actsym.api",
    "replace_activations": "actsym.modules", "ExpressionError": "actsym.parse", "Param": "actsym.spec",
    "evaluate": "actsym.harness.api", "Results": "actsym.harness.api",
}

__all__ = ["define", "get", "names", "corpus_names", "replace_activations", "evaluate", "Results", "ExpressionError",
           "Param", "__version__"]

if TYPE_CHECKING:
    from actsym.api import corpus_names, define, get, names
    from actsym.harness.api import Results, evaluate
    from actsym.modules import replace_activations
    from actsym.parse import ExpressionError
    from actsym.spec import Param


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later lookups skip __getattr__
        return value
    raise AttributeError(f"module 'actsym' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
