"""Friendlier parser errors (issue 11, section 2): pasted NumPy/PyTorch/math prefixes, ``ln``, ``|x|``,
Python's conditional expression and mis-cased names get a one-line hint naming what to write; the command
line exits 2."""

from __future__ import annotations

import pytest

from actsym.cli import main
from actsym.parse import ExpressionError, parse_expression


@pytest.mark.parametrize("text,hint", [
    ("np.exp(x)", "write exp(...) without the 'np.' prefix"),
    ("torch.tanh(x)", "write tanh(...) without the 'torch.' prefix"),
    ("x*math.pi", "write pi without the 'math.' prefix"),
    ("F.relu(x)", "write relu(...) without the 'F.' prefix"),
    ("torch.nn.functional.softplus(x)", "without the 'torch.nn.functional.' prefix"),
    ("np.blah(x)", "np.blah is not available"),
    ("ln(1 + x**2)", "unknown function 'ln'; write log(...)"),
    ("|x|", "write Abs(x) for |x|"),
    ("x if x > 0 else 0", "write Piecewise((x, x > 0), (0, True))"),
    ("ReLU(x)", "did you mean relu(...)?"),
    ("x*sigmod(x)", "did you mean sigmoid(...)?"),
    ("x*ReLU", "unknown name 'ReLU'; did you mean relu(x)?"),
    ("x*Pi", "did you mean pi?"),
])
def test_hints(text, hint):
    with pytest.raises(ExpressionError) as err:
        parse_expression(text)
    assert hint in str(err.value) and "\n" not in str(err.value)


def test_no_false_suggestion():
    with pytest.raises(ExpressionError, match=r"unknown name 'alpha' \(declare parameters"):
        parse_expression("x*alpha")
    with pytest.raises(ExpressionError) as err:
        parse_expression("torch.gelu(x)")  # gelu is not in the whitelist; relu is not what was meant
    assert "relu" not in str(err.value)
    assert parse_expression("Abs(x)") is not None  # valid input is unaffected


@pytest.mark.parametrize("text", ["np.exp(x)", "|x|", "x if x > 0 else 0", "ln(x)"])
def test_cli_one_line_exit_2(capsys, text):
    assert main(["show", text]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("actsym: error:"), err
