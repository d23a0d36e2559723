"""Harness options from the analysis issue: computed init gain and vector (softmax) activations."""

import math

import torch
from torch import nn

from actsym.cli import main
from actsym.harness import recipes
from actsym.harness.activations import resolve
from actsym.harness.train import build_model


def test_computed_gain_rescales_hidden_layers_only():
    rec = recipes.get("mnist-mlp")
    settings = {**recipes.resolve_settings(rec), "hidden": [64, 64]}
    handle = resolve("relu")
    default, _ = build_model(rec, handle, settings, 10, seed=0, device=torch.device("cpu"))
    computed, _ = build_model(rec, handle, {**settings, "init_gain": "computed"}, 10, seed=0,
                              device=torch.device("cpu"))
    linears = [m for m in computed.modules() if isinstance(m, nn.Linear)]
    torch.manual_seed(0)
    for i, m in enumerate(linears):
        expected = (1.0 if i == 0 else math.sqrt(2.0)) / math.sqrt(m.in_features)  # relu gain is sqrt(2)
        assert abs(m.weight.std().item() / expected - 1) < 0.15
    assert not torch.equal(linears[1].weight, [m for m in default.modules() if isinstance(m, nn.Linear)][1].weight)


def _eval(tmp_path, *extra):
    return main(["eval", "exp2", "--recipe", "mnist-mlp", "--dataset", "mnist-subset", "--epochs", "1",
                 "--train-limit", "500", "--test-limit", "200", "--quiet", "--db", str(tmp_path / "r.sqlite"),
                 "--out", str(tmp_path / "rep"), *extra])


def test_eval_cli_with_softmax_baseline(tmp_path, capsys):
    assert _eval(tmp_path, "--baselines", "softmax") == 0, capsys.readouterr().err
    text = "\n".join(p.read_text() for p in (tmp_path / "rep").rglob("*.md"))
    assert "| softmax |" in text


def test_eval_cli_with_computed_gain(tmp_path, capsys):
    assert _eval(tmp_path, "--baselines", "relu", "--init-gain", "computed") == 0, capsys.readouterr().err
    text = "\n".join(p.read_text() for p in (tmp_path / "rep").rglob("*.md"))
    assert "| init_gain | computed |" in text
    assert _eval(tmp_path, "--baselines", "softmax", "--init-gain", "computed") == 2  # no symbolic f: one-line error
    assert "needs a symbolic activation" in capsys.readouterr().err
