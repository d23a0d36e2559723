"""Model pieces: paired initial weights, activation tracking, firing statistics, batched seeds."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from actsym.harness import recipes
from actsym.harness.activations import resolve
from actsym.harness.firing import act_param_values, firing_stats
from actsym.harness.models import BatchedMLP, build_tracked, mlp
from actsym.harness.train import build_model, train_run, train_seeds_batched

CPU = torch.device("cpu")


def test_paired_seeds_give_identical_initial_weights():
    rec = recipes.get("mnist-mlp")
    settings = recipes.resolve_settings(rec)
    weights = {}
    for name in ("relu", "tanh", "prelu"):
        model, acts = build_model(rec, resolve(name), settings, 10, seed=7, device=CPU)
        weights[name] = [p.detach().clone() for n, p in model.named_parameters() if "weight" in n or "bias" in n]
        assert [a for a, _ in acts] == ["1", "3"]
    for name in ("tanh", "prelu"):
        assert all(torch.equal(a, b) for a, b in zip(weights["relu"], weights[name], strict=True))
    other, _ = build_model(rec, resolve("relu"), settings, 10, seed=8, device=CPU)
    assert not torch.equal(next(other.parameters()), weights["relu"][0])


def test_firing_stats_and_params_per_layer():
    model, acts = build_tracked(lambda act: nn.Sequential(nn.Identity(), act(), nn.Identity(), act()),
                                resolve("prelu").make)
    x = torch.tensor([[-2.0, 0.0, 1.0, 3.0]])
    fire = firing_stats(model, acts, x)
    assert fire["1"] == {"pos": 0.5, "neg": 0.25, "zero": 0.25}
    relu_model, relu_acts = build_tracked(lambda act: nn.Sequential(act()), resolve("relu").make)
    assert firing_stats(relu_model, relu_acts, x)["0"] == {"pos": 0.5, "neg": 0.0, "zero": 0.5}
    assert act_param_values(acts) == {"1": {"a": pytest.approx(0.25)}, "3": {"a": pytest.approx(0.25)}}
    assert act_param_values(relu_acts) == {}


@pytest.mark.parametrize("name", ["tanh", "prelu"])
def test_batched_mlp_matches_separate_models(name):
    h = resolve(name)
    models = []
    for s in range(3):
        torch.manual_seed(s)
        models.append(mlp([12, 8, 5, 3], h.make))
    net = BatchedMLP(models, h.make, bool(h.learnable))
    x = torch.randn(3, 4, 12)
    out = net(x)
    for s, m in enumerate(models):
        torch.testing.assert_close(out[s], m(x[s]), rtol=1e-5, atol=1e-6)


def test_batched_seeds_training_matches_sequential():
    g = torch.Generator().manual_seed(0)
    ds = SimpleNamespace(x_train=torch.randint(0, 256, (120, 1, 28, 28), dtype=torch.uint8, generator=g),
                         y_train=torch.randint(0, 10, (120,), generator=g),
                         x_test=torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8, generator=g),
                         y_test=torch.randint(0, 10, (40,), generator=g), num_classes=10)
    rec = recipes.get("mnist-mlp")
    settings = recipes.resolve_settings(rec, overrides={"batch_size": "30"}, epochs=2)
    data = rec.prepare(ds, settings, CPU)
    h = resolve("tanh")
    batched = train_seeds_batched(rec, h, data, settings, [0, 1], CPU)
    for s in (0, 1):
        seq = train_run(rec, h, data, settings, s, CPU).records
        for a, b in zip(seq, batched[s], strict=True):
            assert a.test_loss == pytest.approx(b.test_loss, rel=1e-4)
            assert a.train_loss == pytest.approx(b.train_loss, rel=1e-4)
            assert a.test_acc == pytest.approx(b.test_acc, abs=1 / 40 + 1e-9)
