"""Public entry points: ``define``, ``get``, ``names``."""

from __future__ import annotations

import functools
import time

from actsym.activation import Activation
from actsym.budget import budget_seconds
from actsym.catalog import CATALOG
from actsym.spec import make_spec


def define(name: str, expr, params=None, *, budget: float | None = None, **options) -> Activation:
    """Declare an activation.

    ``expr``: a SymPy expression or a string in ``x`` (parsed safely, see :mod:`actsym.parse`).
    ``params``: parameter name -> initial value (or :class:`~actsym.spec.Param`); all learnable by default.
    Options: ``fixed=("beta",)`` makes parameters non-learnable, ``class_name``, ``title``, ``reference``.
    ``budget``: seconds for all symbolic work on this activation together (validation, derivation,
    rendering; default ``ACTSYM_BUDGET`` or 30 s; 0 = no limit). Past it a stage is stopped and
    :class:`actsym.budget.BudgetExceeded` (an ``ExpressionError``) names it.
    """
    total = budget_seconds(budget)
    start = time.monotonic()
    spec = make_spec(name, expr, params, budget=total, **options)
    return Activation(spec, budget=total, spent=time.monotonic() - start)


def names() -> list[str]:
    """Names of the built-in catalog."""
    return list(CATALOG)


@functools.cache
def get(name: str) -> Activation:
    """A built-in activation by name (uses the committed code in ``generated/`` when up to date)."""
    if name not in CATALOG:
        raise KeyError(f"unknown activation {name!r}; built-in: {', '.join(CATALOG)}")
    return Activation(make_spec(name, **CATALOG[name]), prefer_generated=True)
