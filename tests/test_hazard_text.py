"""Hazards in words (issue 11, section 2), not "on branch True when True; safe range: none"."""

from __future__ import annotations

import pytest

from actsym.analysis.hazard_text import hazard_text
from actsym.cli import main


@pytest.mark.parametrize("h,text", [
    ({"kind": "pole", "at": "x = 0", "branch": "True", "when": "True", "safe": "none"},
     "division by zero at x = 0, for every parameter value"),
    ({"kind": "log-domain", "at": "x in Interval(-oo, 0)", "branch": "True", "when": "True", "safe": "none"},
     "log of a non-positive number for x <= 0, for every parameter value"),
    ({"kind": "sqrt-domain", "at": "x in Interval.open(-oo, 0)", "branch": "x > -1", "when": "True", "safe": "none"},
     "square root of a negative number for x < 0, in the branch where x > -1, for every parameter value"),
    ({"kind": "pole", "at": "x = -1/a", "branch": "True", "when": "a > 0", "safe": "a <= 0"},
     "division by zero at x = -1/a, when a > 0 (safe when a <= 0)"),
    ({"kind": "log-domain", "at": "x in Interval.Lopen(1, 2)", "branch": "True", "when": "True", "safe": "none"},
     "log of a non-positive number for 1 < x <= 2, for every parameter value"),
])
def test_hazard_sentences(h, text):
    assert hazard_text(h) == text


def test_show_prints_hazards_in_words(capsys):
    assert main(["show", "log(x)"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "hazard" in ln)
    assert "log of a non-positive number for x <= 0" in line
    assert "branch True" not in line and "safe range: none" not in line
