"""What ``actsym eval`` prints (issue 11, section 4): a compact results table when it finishes, one line per
epoch on stderr when stderr is not a terminal (no tqdm bars in logs), "resuming: ..." on a re-run; and
``actsym report --format csv|json|latex``."""

from __future__ import annotations

import csv
import io
import json

from actsym.cli import main
from actsym.harness.progress import Progress
from actsym.harness.report import console_table


def _eval(tmp_path, *extra):
    return main(["eval", "tanh", "--recipe", "mnist-mlp", "--epochs", "2", "--baselines", "relu", "--seeds", "2",
                 "--dataset", "mnist-subset", "--train-limit", "200", "--test-limit", "100", "--device", "cpu",
                 "--set", "batch_size=50", "--db", str(tmp_path / "r.sqlite"), "--out", str(tmp_path / "rep"),
                 *extra])


def test_eval_prints_a_results_table_and_logs_one_line_per_epoch(tmp_path, capsys):
    assert _eval(tmp_path) == 0
    cap = capsys.readouterr()
    out, err = cap.out, cap.err
    # the table: every activation with its final accuracy, the candidate's paired difference to each baseline
    header = next(line for line in out.splitlines() if line.startswith("activation"))
    assert "final test acc %" in header and "Δ tanh − this" in header
    rows = {line.split()[0]: line for line in out.splitlines() if line.split() and line.split()[0] in ("tanh", "relu")}
    assert "(candidate)" in rows["tanh"] and "± " in rows["tanh"] and "(n=2)" in rows["tanh"]
    assert "no claim (n=2 < 5 seeds)" in rows["relu"]
    assert "report:" in out and "results:" in out
    # stderr is not a terminal here: plain lines, no bars
    assert "\r" not in err and "\x1b[" not in err and "it/s" not in err
    epoch_lines = [line for line in err.splitlines() if ": epoch " in line]
    assert len(epoch_lines) == 2 * 2 * 2, err  # 2 activations x 2 seeds x 2 epochs
    assert any(line.startswith("tanh seed 1: epoch 2/2") and "test loss" in line for line in epoch_lines)
    assert "run 1/4: tanh seed 0" in err
    # a re-run finds everything done and says so
    assert _eval(tmp_path) == 0
    err = capsys.readouterr().err
    assert "resuming: 4 finished, 0 partial, 0 new (of 4 runs)" in err and ": epoch " not in err


def test_quiet_eval_logs_nothing(tmp_path, capsys):
    assert main(["eval", "relu", "--recipe", "mnist-mlp", "--epochs", "1", "--baselines", "", "--seeds", "1",
                 "--dataset", "mnist-subset", "--train-limit", "100", "--test-limit", "50", "--device", "cpu",
                 "--set", "batch_size=50", "--db", str(tmp_path / "r.sqlite"), "--out", str(tmp_path / "rep"),
                 "--quiet"]) == 0
    cap = capsys.readouterr()
    assert cap.err == "" and "relu" in cap.out and "(n=1, no CI)" in cap.out


def test_report_formats(tmp_path, capsys):
    assert _eval(tmp_path, "--quiet") == 0
    capsys.readouterr()
    db, out = str(tmp_path / "r.sqlite"), tmp_path / "exports"
    assert main(["report", "--db", db, "--out", str(out), "--format", "csv", "--format", "json",
                 "--format", "latex"]) == 0
    printed = capsys.readouterr().out
    folder = next(out.iterdir())
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == ["results.csv", "results.json", "results.tex"]
    assert str(folder / "results.csv") in printed and "report.md" not in printed

    rows = list(csv.DictReader(io.StringIO((folder / "results.csv").read_text())))
    assert [r["label"] for r in rows] == ["tanh", "relu"] and rows[0]["candidate"] == "1"
    assert rows[0]["final_n"] == "2" and 0 <= float(rows[0]["final_mean_pct"]) <= 100
    assert rows[0]["delta_vs_candidate_pct"] == "" and rows[1]["delta_flag"] == "no claim (n=2 < 5 seeds)"

    data = json.loads((folder / "results.json").read_text())
    assert data["candidate"] == "tanh" and data["recipe"] == "mnist-mlp" and data["min_seeds_for_significance"] == 5
    relu = data["activations"][1]
    assert relu["label"] == "relu" and relu["vs_candidate"]["n"] == 2 and relu["vs_candidate"]["significant"] is False
    assert {c["epoch"] for c in data["comparisons"]} == {"final", "best"} and len(data["runs"]) == 4
    assert "actsym 0.1.0" in data["provenance"]

    tex = (folder / "results.tex").read_text()
    assert r"\begin{tabular}{llrrll}" in tex and "97.88 (best epoch)" in tex and r"\toprule" in tex and r"\bottomrule" in tex
    assert r"$\pm$" in tex and "±" not in tex and "(n=2 $<$ 5 seeds)" in tex and r"$\Delta$ tanh $-$ this" in tex
    assert tex.count(r" \\") == 3  # header + two rows

    # the default is still the Markdown + HTML report
    assert main(["report", "--db", db, "--out", str(tmp_path / "md")]) == 0
    assert {p.name for p in next((tmp_path / "md").iterdir()).iterdir()} >= {"report.md", "report.html"}


def test_console_table_without_finished_runs():
    summary = {"study": "abcdef123456", "recipe": "mnist-mlp", "variant": "default", "candidate": "x",
               "activations": [
                   {"label": "x", "candidate": True, "finished": 0, "failed": 1, "running": 0,
                    "final_acc": {"n": 0, "mean_pct": None, "ci_half_width_pct": None, "ci_outside_0_100": False},
                    "vs_candidate": None},
                   {"label": "relu", "candidate": False, "finished": 1, "failed": 0, "running": 0,
                    "final_acc": {"n": 1, "mean_pct": 91.5, "ci_half_width_pct": None, "ci_outside_0_100": False},
                    "vs_candidate": None}]}
    table = console_table(summary)
    rows = {line.split()[0]: line for line in table.splitlines()[3:]}
    assert rows["x"].split()[1:] == ["0/1/0", "–", "(candidate)"]
    assert "91.50 (n=1, no CI)" in table and "no paired seeds" in table


def test_progress_mode():
    assert Progress(quiet=False, terminal=True).bars and not Progress(quiet=False, terminal=True).lines
    assert Progress(quiet=False, terminal=False).lines and not Progress(quiet=False, terminal=False).bars
    quiet = Progress(quiet=True, terminal=True)
    assert not quiet.bars and not quiet.lines
