"""From what a user typed to an :class:`~actsym.activation.Activation`: ``NAME=VALUE`` parameter items and
"a catalog/corpus name or an expression in x". Shared by the command line and the library (the analysis
and picture modules take the same inputs); bad input is a one-line :class:`UsageError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actsym.activation import Activation


class UsageError(Exception):
    """A one-line user error (the command line prints it and exits with status 2)."""


def parse_params(items: Iterable[str] | None) -> dict[str, float]:
    """``NAME=VALUE`` items (``--param``) -> {name: float}; a bad item is a one-line UsageError."""
    out: dict[str, float] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param expects NAME=VALUE, got {item!r}")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise UsageError(f"--param {key}: {value!r} is not a number") from None
    return out


def resolve_activation(text: str, *, name: str | None = None, params: Mapping[str, float] | None = None,
                       fixed: Iterable[str] = (), verify: bool = True) -> Activation:
    """A catalog or corpus name, or an expression in ``x`` defined on the fly as ``name`` (default
    ``custom``) with ``params`` (initial values) and ``fixed`` (non-learnable parameter names).

    A catalog or corpus name with ``params``/``fixed``/``name`` is its formula with those parameter values.
    ``verify``: self-check the generated code when it is built (:mod:`actsym.verify`)."""
    from actsym.api import corpus_names, define, get, names

    params = dict(params or {})
    fixed = list(fixed)
    known = text in names() or text in corpus_names()
    if known and not params and not name and not fixed:
        return get(text)
    if known:  # a named formula with other values/name
        base = get(text).spec
        merged = {k: (params[k] if k in params else v.init) for k, v in base.params.items()}
        merged.update({k: v for k, v in params.items() if k not in merged})  # unknown names: define refuses them
        frozen = {k for k, v in base.params.items() if not v.learnable} | set(fixed)
        return define(name or text, base.source, merged, fixed=tuple(sorted(frozen)),
                      title=base.title, reference=base.reference, verify=verify)
    if isinstance(text, str) and text.isidentifier() and text != "x":  # a name, and no expression: a typo?
        try:
            get(text)
        except KeyError as e:
            raise UsageError(e.args[0]) from None
    return define(name or "custom", text, params, fixed=tuple(fixed), verify=verify)
