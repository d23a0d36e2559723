"""2-D toy study: data, model, a tiny training run, and the animation files (tiny sizes)."""

import argparse
import json

import pytest
import torch

from actsym.cli import UsageError
from actsym.cli.analysis import add_toy2d_arguments, cmd_toy2d
from actsym.viz import animate
from actsym.viz.toy2d import DATASETS, ToyMLP, activation_factory, make_dataset, run, toy2d

TINY = {"snapshots": 2, "grid_lines": 4, "grid_points": 6, "n_train": 40, "n_test": 40, "layer_steps": 2, "hold": 0}


@pytest.mark.parametrize("kind", DATASETS)
def test_dataset_seeded_balanced(kind):
    X, y = make_dataset(kind, 101, seed=3)
    assert X.shape == (101, 2) and y.shape == (101,) and set(y.tolist()) == {0.0, 1.0}
    assert abs(int(y.sum()) - 50) <= 1
    assert torch.equal(X, make_dataset(kind, 101, seed=3)[0])
    assert not torch.equal(X, make_dataset(kind, 101, seed=4)[0])
    with pytest.raises(ValueError):
        make_dataset("checkerboard")


def test_model_trace_shapes_and_softmax_layers_on_simplex():
    _, make = activation_factory("softmax")
    model = ToyMLP(make, layers=3, units=3)
    x = torch.randn(7, 2)
    out = model.trace(x)
    assert [t.shape for t in out] == [(7, 2), (7, 3), (7, 3), (7, 3), (7,)]
    assert all(torch.allclose(h.sum(1), torch.ones(7)) for h in out[1:-1])
    assert len(model.trace(x, pre=True)) == 1 + 2 * 3 + 1


@pytest.mark.parametrize("act", ["tanh", "x*sigmoid(x)"])
def test_tiny_run_loss_decreases(act):
    model, hist, data, _ = run(act, layers=2, units=2, epochs=40, seed=0, lr=0.05, **TINY)
    assert hist.losses[-1] < hist.losses[0]
    assert [s.epoch for s in hist.snapshots] == [0, 40]
    snap = hist.snapshots[-1]
    assert [p.shape for p in snap.points] == [(40, 2), (40, 2), (40, 2)]
    assert snap.grid[1].shape == (8, 6, 2) and snap.prob.shape == (120, 120)
    assert 0.0 <= data["test_acc"] <= 1.0


def test_toy2d_writes_nonempty_files(tmp_path, monkeypatch):
    monkeypatch.setattr(animate, "mp4_available", lambda: False)
    s = toy2d("abs", layers=1, units=3, epochs=3, out_dir=tmp_path, seed=1, dpi=25, **TINY)
    files = {k: v for k, v in s["files"].items() if v}
    assert {"final", "training_gif", "layers_gif", "activation_grid_gif", "summary"} <= set(files)
    assert all((tmp_path / p.split("/")[-1]).stat().st_size > 0 for p in files.values())
    assert s["files"]["training_mp4"] is None and any("ffmpeg" in n for n in s["notes"])
    assert json.loads((tmp_path / "summary.json").read_text())["activation"] == "abs"


def _args(*argv):
    p = argparse.ArgumentParser()
    add_toy2d_arguments(p)
    return p.parse_args(list(argv))


def test_cli_handler(tmp_path, capsys):
    assert cmd_toy2d(_args("softmax", "--grid-only", "--frames", "3", "--out", str(tmp_path))) == 0
    assert (tmp_path / "activation_grid.gif").stat().st_size > 0
    assert "activation_grid.gif" in capsys.readouterr().out
    for bad in (["relu", "--layers", "0"], ["relu", "--epochs", "0"], ["relu", "--lr", "-1"]):
        with pytest.raises(UsageError):
            cmd_toy2d(_args(*bad, "--out", str(tmp_path)))
