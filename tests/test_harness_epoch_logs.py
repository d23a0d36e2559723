"""Per-epoch logs of every run next to the report (issue 11, section 4): one CSV per run, rebuilt from the
database (a resumed run has each epoch once), TensorBoard events when ``tensorboard`` is installed."""

from __future__ import annotations

import csv
import sys

import pytest

from actsym.cli import main
from actsym.harness import epoch_logs
from actsym.harness.store import Store


def _eval(tmp_path, *extra):
    return main(["eval", "tanh", "--recipe", "mnist-mlp", "--epochs", "2", "--baselines", "relu", "--seeds", "2",
                 "--dataset", "mnist-subset", "--train-limit", "200", "--test-limit", "100", "--device", "cpu",
                 "--set", "batch_size=50", "--db", str(tmp_path / "r.sqlite"), "--out", str(tmp_path / "rep"),
                 "--quiet", *extra])


def test_one_csv_per_run_with_every_epoch(tmp_path, capsys):
    assert _eval(tmp_path) == 0
    out = capsys.readouterr().out
    folder = next((tmp_path / "rep").iterdir())
    files = sorted(p.name for p in (folder / "runs").iterdir())
    assert files == ["relu-seed0.csv", "relu-seed1.csv", "tanh-seed0.csv", "tanh-seed1.csv"]
    assert f"epochs:  {folder / 'runs'} (one CSV per run)" in out
    with Store(tmp_path / "r.sqlite") as store:
        run = next(r for r in store.runs() if r["activation"] == "tanh" and r["seed"] == 1)
        epochs = store.epochs(run["id"])
    rows = list(csv.DictReader((folder / "runs" / "tanh-seed1.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"] and rows[0].keys() == set(epoch_logs.FIELDS)
    assert all(r["label"] == "tanh" and r["seed"] == "1" and r["status"] == "finished" for r in rows)
    for row, e in zip(rows, epochs, strict=True):
        assert float(row["test_acc_pct"]) == pytest.approx(100 * e["test_acc"])
        assert float(row["train_loss"]) == pytest.approx(e["train_loss"])
        assert float(row["lr"]) == pytest.approx(e["lr"])
    # a re-run (everything already finished) rewrites the logs from the database: each epoch once
    assert _eval(tmp_path) == 0
    assert [r["epoch"] for r in csv.DictReader((folder / "runs" / "tanh-seed1.csv").open())] == ["1", "2"]


def test_labels_become_unique_file_names():
    runs = [{"id": 1, "seed": 0}, {"id": 2, "seed": 0}, {"id": 3, "seed": 0}]
    labels = {1: "myact #1 [x*tanh(x)]", 2: "myact #2 [x*sigmoid(2*x)]", 3: "myact #1 [x*tanh(x)]?"}
    names = epoch_logs.run_names(runs, labels)
    assert names == {1: "myact_1_x_tanh_x-seed0", 2: "myact_2_x_sigmoid_2_x-seed0", 3: "myact_1_x_tanh_x-seed0-run3"}


def test_tensorboard_is_skipped_without_the_package(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails like a missing package
    assert epoch_logs.tensorboard_writer() is None
    assert _eval(tmp_path) == 0
    folder = next((tmp_path / "rep").iterdir())
    assert not (folder / "tensorboard").exists() and "tb:" not in capsys.readouterr().out


def test_tensorboard_events_when_installed(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert _eval(tmp_path) == 0
    folder = next((tmp_path / "rep").iterdir())
    acc = EventAccumulator(str(folder / "tensorboard" / "tanh-seed0"))
    acc.Reload()
    assert [ev.step for ev in acc.Scalars("accuracy/test")] == [1, 2]
