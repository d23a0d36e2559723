"""The literature corpus: pointwise activations transcribed from their papers, as data (``corpus.json``).

Each entry: ``name`` (lowercase identifier, disjoint from the catalog), ``expr`` (a string for the safe parser),
``params`` (name -> ``{"init": float, "learnable": bool}``, published defaults), ``title``, ``reference``
(authors, venue or arXiv id, year) and an optional ``note`` (the variant or defaults chosen).
Unlike the catalog, corpus entries have no committed modules: :func:`actsym.get` generates the code in memory
on first use.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

from actsym.spec import Param


@functools.cache
def _entries() -> dict[str, dict]:
    text = resources.files("actsym").joinpath("corpus.json").read_text(encoding="utf-8")
    return {e["name"]: e for e in json.loads(text)}


def names() -> list[str]:
    """Corpus names, in file order."""
    return list(_entries())


def entry(name: str) -> dict:
    """The raw entry (a copy); ``KeyError`` when unknown."""
    return dict(_entries()[name])


def define_kwargs(name: str) -> dict:
    """Keyword arguments of :func:`actsym.spec.make_spec` for a corpus entry (``name`` and ``expr`` included)."""
    e = _entries()[name]
    params = {k: Param(float(v["init"]), bool(v.get("learnable", True))) for k, v in e.get("params", {}).items()}
    return dict(name=e["name"], expr=e["expr"], params=params, title=e.get("title", ""),
                reference=e.get("reference", ""))
