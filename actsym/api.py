"""Public entry points: ``define``, ``get``, ``names``, ``corpus_names``."""

from __future__ import annotations

import functools

from actsym.activation import Activation
from actsym.budget import budget_seconds, cpu_clock
from actsym.catalog import CATALOG
from actsym.spec import make_spec


def define(name: str, expr, params=None, *, budget: float | None = None, verify: bool = True,
           **options) -> Activation:
    """Declare an activation.

    ``expr``: a SymPy expression or a string in ``x`` (parsed safely, see :mod:`actsym.parse`).
    ``params``: parameter name -> initial value (or :class:`~actsym.spec.Param`); all learnable by default.
    Options: ``fixed=("beta",)`` makes parameters non-learnable, ``class_name``, ``title``, ``reference``.
    ``budget``: CPU seconds for all symbolic work on this activation together (validation, derivation,
    rendering; default ``ACTSYM_BUDGET`` or 30 s; 0 = no limit). Past it a stage is stopped and
    :class:`actsym.budget.BudgetExceeded` (an ``ExpressionError``) names it.
    ``verify``: self-check the generated code against an independent mpmath oracle on every eager path when
    it is built (:func:`actsym.verify.self_check`, well under a second); a mismatch is refused with
    :class:`actsym.verify.VerificationFailed` (an ``ExpressionError``). ``verify=False`` skips it.
    """
    total = budget_seconds(budget)
    start = cpu_clock()
    spec = make_spec(name, expr, params, budget=total, **options)
    return Activation(spec, budget=total, spent=cpu_clock() - start, verify=verify)


def names() -> list[str]:
    """Names of the built-in catalog."""
    return list(CATALOG)


def corpus_names() -> list[str]:
    """Names of the literature corpus (``actsym/corpus.json``), usable with :func:`get`."""
    from actsym import corpus

    return corpus.names()


@functools.cache
def get(name: str) -> Activation:
    """An activation by name: the built-in catalog first (uses the committed code in ``generated/`` when up to
    date), then the literature corpus (code generated in memory on first use)."""
    if name in CATALOG:
        return Activation(make_spec(name, **CATALOG[name]), prefer_generated=True)
    from actsym import corpus

    if isinstance(name, str) and name in corpus.names():
        return Activation(make_spec(**corpus.define_kwargs(name)))
    raise KeyError(_unknown(name))


def _unknown(name) -> str:
    """'unknown activation ...; did you mean ...?' over the catalog and the corpus."""
    import difflib

    from actsym import corpus

    known = list(CATALOG) + corpus.names()
    lower = {k.lower(): k for k in known}
    key = str(name)
    guess = [lower[key.lower()]] if key.lower() in lower else difflib.get_close_matches(key, known, n=3)
    hint = f"did you mean {', '.join(repr(g) for g in guess)}?" if guess else "see actsym.names() and actsym.corpus_names()"
    return f"unknown activation {name!r}; {hint}"
