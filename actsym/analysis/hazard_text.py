"""Hazards (:func:`actsym.derive.find_hazards` dicts) in words, for ``actsym show`` and ``actsym check``:

    pole at x = 0 on branch True when True; safe range: none
    -> division by zero at x = 0, for every parameter value

    log-domain at x in Interval(-oo, 0) on branch x > 0 when a > 0; safe range: a <= 0
    -> log of a non-positive number for x <= 0, in the branch where x > 0, when a > 0 (safe when a <= 0)
"""

from __future__ import annotations

import re

_KINDS = {"pole": "division by zero", "log-domain": "log of a non-positive number",
          "sqrt-domain": "square root of a negative number"}

_INTERVAL = re.compile(r"^Interval(?:\.(open|Lopen|Ropen))?\((.+), (.+)\)$")


def _interval_words(text: str) -> str:
    """``Interval.open(-oo, 0)`` -> ``x < 0``; ``Interval(1, 2)`` -> ``1 <= x <= 2``; other sets as they are."""
    m = _INTERVAL.match(text.strip())
    if not m:
        return f"x in {text}"
    kind, lo, hi = m.group(1), m.group(2).strip(), m.group(3).strip()
    lo_op = "<" if kind in ("open", "Lopen") else "<="
    hi_op = "<" if kind in ("open", "Ropen") else "<="
    if lo == "-oo" and hi == "oo":
        return "every x"
    if lo == "-oo":
        return f"x {hi_op} {hi}"
    if hi == "oo":
        return f"x {'>' if lo_op == '<' else '>='} {lo}"
    return f"{lo} {lo_op} x {hi_op} {hi}"


def _where(at: str) -> str:
    at = at.strip()
    if at.startswith("x in "):
        return "for " + _interval_words(at[len("x in "):])
    if at.startswith("x on one side of "):
        return f"on one side of x = {at[len('x on one side of '):]}"
    return f"at {at}"


def hazard_text(h: dict) -> str:
    """One hazard as a sentence: what goes wrong, where, in which branch, for which parameters, what is safe."""
    what = _KINDS.get(h.get("kind", ""), str(h.get("kind", "hazard")))
    parts = [f"{what} {_where(str(h.get('at', '')))}"]
    branch = str(h.get("branch", "True"))
    if branch not in ("True", ""):
        parts.append(f"in the branch where {branch}")
    when = str(h.get("when", "True"))
    safe = str(h.get("safe", "none"))
    if when in ("True", ""):
        parts.append("for every parameter value")
        text = ", ".join(parts)
    else:
        parts.append(f"when {when}")
        text = ", ".join(parts)
        if safe not in ("none", ""):
            text += f" (safe when {safe})"
    return text
