"""``actsym check`` failures say why and where (issue 11, section 2): the falsifying input Hypothesis found and
the whole reason in one line, not a cut-off exception repr."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actsym import properties
from actsym.properties import PropertyFailed, failure_detail


def _falsified():
    @settings(database=None, derandomize=True, max_examples=50)
    @given(st.floats(-10, 10))
    def check(x0):
        if x0 > 1:
            raise PropertyFailed(f"f'(x) mismatch\nnumerical: {x0}\nanalytical: {x0 + 1}")

    with pytest.raises(PropertyFailed) as err:
        check()
    return err.value


def test_reason_and_falsifying_input_in_one_line():
    text = failure_detail(_falsified())
    assert "\n" not in text
    assert text.startswith("f'(x) mismatch numerical: ") and " analytical: " in text
    reason, _, example = text.partition("; falsifying input: ")
    assert example.startswith("x0=") and float(example[3:]) > 1  # the shrunk input that fails ...
    assert f"numerical: {float(example[3:])} " in reason  # ... and the reason is that input's


def test_other_exceptions_name_their_type_and_are_bounded():
    text = failure_detail(RuntimeError("Jacobian mismatch for output 0\n" + "numerical:" + "1.0 " * 200))
    assert text.startswith("RuntimeError: Jacobian mismatch for output 0 numerical:") and len(text) <= 300


def test_run_suite_reports_the_input(monkeypatch):
    import actsym

    def prop(act, s):
        raise _falsified()

    monkeypatch.setattr(properties, "PROPERTIES", {"fake": prop})
    report = properties.run_suite(actsym.get("relu"), properties.Settings(examples=5), None)
    result = report.results[0]
    assert not result.passed and "falsifying input: x0=" in result.detail and "analytical" in result.detail
