"""Published numbers and statistical guardrails (issue 11, section 1): ``actsym eval --reference VALUE`` is
stored with the study and shown next to the measured mean ± CI, inside or outside it; CIs that reach outside
[0, 100] are clipped and flagged; fewer than 5 paired seeds never give a significance claim."""

from __future__ import annotations

import json

import pytest

from actsym.cli import main
from actsym.harness.report import _ci, reference_check, reference_text
from actsym.harness.stats import Summary, paired, summary


def _eval(tmp_path, *extra):
    return main(["eval", "tanh", "--recipe", "mnist-mlp", "--epochs", "1", "--baselines", "relu", "--seeds", "2",
                 "--dataset", "mnist-subset", "--train-limit", "200", "--test-limit", "100", "--device", "cpu",
                 "--set", "batch_size=50", "--db", str(tmp_path / "r.sqlite"), "--out", str(tmp_path / "rep"),
                 "--quiet", *extra])


def test_reference_inside_and_outside_the_ci():
    s = Summary(n=3, mean=0.90, std=0.01, ci_low=0.88, ci_high=0.92)
    inside = reference_check({"value_pct": 91.0, "metric": "final", "source": "--reference"}, s)
    assert inside["inside_ci"] is True and inside["diff_pct"] == pytest.approx(-1.0)
    assert reference_text(inside) == "91.00 (final epoch): inside the 95 % CI, measured -1.00 pp"
    outside = reference_check({"value_pct": 95.0, "metric": "best", "source": "--reference"}, s)
    assert outside["inside_ci"] is False and "outside the 95 % CI, measured -5.00 pp" in reference_text(outside)
    one = reference_check({"value_pct": 95.0, "metric": "final", "source": "x"}, summary([0.9]))
    assert one["inside_ci"] is None and "no CI (n=1)" in reference_text(one)
    # the CI is clipped to [0, 100] before the comparison: 100 is inside a CI that reaches past it
    wide = Summary(n=2, mean=0.99, std=0.01, ci_low=0.90, ci_high=1.08)
    top = reference_check({"value_pct": 100.0, "metric": "final", "source": "x"}, wide)
    assert top["inside_ci"] is True and top["ci_high_pct"] == 100.0


def test_a_ci_outside_0_100_is_clipped_and_says_so():
    text = _ci(summary([0.99, 0.999]))  # n=2: t(0.975, 1) = 12.7, the raw interval passes 100
    assert text.endswith("(CI clipped to 0–100)") and "100.00]" in text
    assert "clipped" not in _ci(summary([0.5, 0.51, 0.52]))


def test_fewer_than_five_seeds_make_no_claim():
    a, b = [0.9, 0.91, 0.92, 0.93], [0.1, 0.11, 0.12, 0.13]  # a huge, consistent difference
    assert not paired(a, b).significant
    assert paired(a + [0.94], b + [0.14]).significant


def test_eval_reference_in_table_report_and_exports(tmp_path, capsys):
    assert _eval(tmp_path, "--reference", "97.5", "--reference-metric", "final") == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("activation"))
    assert header.rstrip().endswith("published %")
    tanh = next(line for line in out.splitlines() if line.startswith("tanh"))
    assert "97.50 (final epoch): " in tanh and "the 95 % CI, measured" in tanh
    relu = next(line for line in out.splitlines() if line.startswith("relu"))
    assert "97.88 (best epoch): " in relu  # the recipe's own published number for relu, a best-epoch accuracy

    md = next((tmp_path / "rep").rglob("report.md")).read_text()
    assert "97.50 (final epoch)" in md and "at least 5 paired seeds" in md
    # the reference lives in the database: a rebuilt report (and its JSON) still has it
    assert main(["report", "--db", str(tmp_path / "r.sqlite"), "--out", str(tmp_path / "again"),
                 "--format", "json", "--format", "csv"]) == 0
    data = json.loads(next((tmp_path / "again").rglob("results.json")).read_text())
    ref = data["activations"][0]["reference"]
    assert data["activations"][0]["label"] == "tanh" and ref["value_pct"] == 97.5 and ref["metric"] == "final"
    assert ref["source"] == "--reference" and ref["n"] == 2
    final = data["activations"][0]["final_acc"]
    assert ref["measured_mean_pct"] == pytest.approx(final["mean_pct"], abs=1e-3)
    lo, hi = max(final["ci_low_pct"], 0), min(final["ci_high_pct"], 100)
    assert ref["inside_ci"] == (lo <= 97.5 <= hi)
    csv_text = next((tmp_path / "again").rglob("results.csv")).read_text()
    assert "reference_inside_ci" in csv_text.splitlines()[0] and ",97.5,final," in csv_text


def test_the_recipes_own_numbers_are_compared_with_the_kind_they_are(tmp_path):
    """mnist-mlp publishes best-epoch accuracies: relu's 97.88 is compared with the best-epoch CI."""
    assert main(["eval", "relu", "--recipe", "mnist-mlp", "--epochs", "2", "--baselines", "", "--seeds", "2",
                 "--dataset", "mnist-subset", "--train-limit", "200", "--test-limit", "100", "--device", "cpu",
                 "--set", "batch_size=50", "--db", str(tmp_path / "r.sqlite"), "--out", str(tmp_path / "rep"),
                 "--quiet"]) == 0
    assert main(["report", "--db", str(tmp_path / "r.sqlite"), "--out", str(tmp_path / "rep"), "--format",
                 "json"]) == 0
    data = json.loads(next((tmp_path / "rep").rglob("results.json")).read_text())
    ref = data["activations"][0]["reference"]
    assert ref["value_pct"] == 97.88 and ref["metric"] == "best"
    assert ref["measured_mean_pct"] == pytest.approx(data["activations"][0]["best_acc"]["mean_pct"], abs=1e-3)


@pytest.mark.parametrize("value", ["120", "-1", "nan"])
def test_a_reference_outside_0_100_is_refused_up_front(tmp_path, capsys, value):
    rc = _eval(tmp_path, "--reference", value)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "--reference" in err, err
    assert not (tmp_path / "r.sqlite").exists() and not (tmp_path / "rep").exists()
