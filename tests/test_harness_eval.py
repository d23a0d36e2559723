"""Every recipe for one tiny epoch through ``run_eval``; reports; divergence; the CLI handlers."""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from actsym.cli import harness as cli_harness
from actsym.harness import evaluate, recipes, report
from actsym.harness.activations import ActivationHandle, resolve
from actsym.harness.evaluate import run_eval
from actsym.harness.store import Store


def fake_dataset(shape, n_train=64, n_test=32, classes=10, seed=0):
    """A tiny random stand-in for ``actsym.harness.data.Dataset`` (uint8 images, int64 labels)."""
    g = torch.Generator().manual_seed(seed)
    return SimpleNamespace(
        name="fake", x_train=torch.randint(0, 256, (n_train, *shape), dtype=torch.uint8, generator=g),
        y_train=torch.randint(0, classes, (n_train,), generator=g),
        x_test=torch.randint(0, 256, (n_test, *shape), dtype=torch.uint8, generator=g),
        y_test=torch.randint(0, classes, (n_test,), generator=g), num_classes=classes, source="fake",
        subset=True, note="random test fixture")


MNIST, CIFAR = (1, 28, 28), (3, 32, 32)


@pytest.mark.parametrize("recipe,shape,act,baselines,overrides", [
    ("mnist-mlp", MNIST, "tanh", ["relu"], None),
    ("mnist-mlp-keras", MNIST, "relu", ["tanh"], None),
    ("mnist-cnn21", MNIST, "relu", [], None),
    ("cifar-cnn3", CIFAR, "prelu", ["relu"], {"batch_size": "32"}),
    ("cifar-fast", CIFAR, "gelu", [], {"batch_size": "32", "widths": "8,16,16"}),
])
def test_each_recipe_one_tiny_epoch(tmp_path, recipe, shape, act, baselines, overrides):
    paths = run_eval(act, recipe=recipe, seeds=[0], epochs=1, baselines=baselines, dataset_obj=fake_dataset(shape),
                     db=tmp_path / "r.sqlite", out=tmp_path / "rep", quiet=True, overrides=overrides)
    md, html = paths["markdown"].read_text(), paths["html"].read_text()
    assert "Epochs reduced" in md and "subset" in md
    assert "Final epoch" in md and "Best epoch" in md
    assert html.startswith("<!DOCTYPE html>") and "data:image/png;base64," in html
    with Store(paths["db"]) as store:
        runs = store.runs()
        assert {r["status"] for r in runs} == {"finished"}
        assert len(runs) == 1 + len(baselines)
        ep = store.epochs(runs[0]["id"])
        assert [e["epoch"] for e in ep] == [1]
        assert 0.0 <= ep[0]["test_acc"] <= 1.0
        assert ep[0]["firing"], "firing statistics recorded per layer"
        for layer in ep[0]["firing"].values():
            assert sum(layer.values()) == pytest.approx(1.0)
    if recipe == "cifar-cnn3":  # learned parameter per layer, both in the store and in the report
        assert set(ep[0]["act_params"]) == {"1", "4", "7"}
        assert "Learned activation parameters per layer" in md


def test_rerun_skips_finished_and_paired_table(tmp_path):
    kw = dict(recipe="mnist-mlp", seeds=2, epochs=1, baselines=["relu"], dataset_obj=fake_dataset(MNIST),
              db=tmp_path / "r.sqlite", out=tmp_path / "rep", quiet=True)
    paths = run_eval("tanh", **kw)
    md = paths["markdown"].read_text()
    assert "tanh − relu" in md and "no claim (n=2 < 5 seeds)" in md  # too few seeds for a significance flag
    assert "Epochs to reach test accuracy" in md
    with Store(paths["db"]) as store:
        before = [(r["id"], r["updated"]) for r in store.runs()]
    calls = []
    orig = evaluate.train_run
    evaluate.train_run = lambda *a, **k: calls.append(1) or orig(*a, **k)
    try:
        run_eval("tanh", **kw)
    finally:
        evaluate.train_run = orig
    assert calls == []
    with Store(paths["db"]) as store:
        assert [(r["id"], r["updated"]) for r in store.runs()] == before


class _NaN(nn.Module):
    def forward(self, x):
        return x * float("nan")


def test_divergence_is_a_failed_run_not_a_crash(tmp_path, monkeypatch):
    real = evaluate.resolve

    def fake_resolve(spec, params=None):
        if spec == "nan":
            return ActivationHandle("nan", "x*nan", "nanhash", {}, (), lambda c: _NaN(), None, "test")
        return real(spec, params)

    monkeypatch.setattr(evaluate, "resolve", fake_resolve)
    paths = run_eval("nan", recipe="mnist-mlp", seeds=[0], epochs=2, baselines=["relu"],
                     dataset_obj=fake_dataset(MNIST), db=tmp_path / "r.sqlite", out=tmp_path / "rep", quiet=True)
    with Store(paths["db"]) as store:
        status = {r["activation"]: (r["status"], r["error"]) for r in store.runs()}
    assert status["relu"] == ("finished", None)
    assert status["nan"][0] == "failed" and "diverged" in status["nan"][1]
    md = paths["markdown"].read_text()
    assert "Failed runs" in md and "diverged" in md


def test_report_without_matplotlib(tmp_path, monkeypatch):
    paths = run_eval("relu", recipe="mnist-mlp-keras", seeds=[0], epochs=1, baselines=[],
                     dataset_obj=fake_dataset(MNIST), db=tmp_path / "r.sqlite", out=tmp_path / "rep", quiet=True)
    monkeypatch.setattr(report, "_matplotlib", lambda: None)
    with Store(paths["db"]) as store:
        study = store.runs()[0]["study"]
        out = report.write_report(store, study, tmp_path / "plain")
    md = out["markdown"].read_text()
    assert "matplotlib is not installed" in md and "![" not in md
    assert out["html"].stat().st_size > 1000


def test_settings_variants_and_overrides():
    rec = recipes.get("mnist-mlp")
    s = recipes.resolve_settings(rec, "wide-lr0.5", {"batch_size": "50"}, epochs=3)
    assert s["hidden"] == [200, 100] and s["lr"] == 0.5 and s["batch_size"] == 50 and s["epochs"] == 3
    assert s["reference_epochs"] == 50 and s["variant"] == "wide-lr0.5"
    assert recipes.resolve_settings(recipes.get("cifar_cnn3"), "cifar100")["channels"] == 64
    with pytest.raises(KeyError):
        recipes.resolve_settings(rec, overrides={"nope": 1})
    with pytest.raises(KeyError):
        recipes.get("imagenet")


def test_cli_handlers(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd")
    p_eval, p_rep = sub.add_parser("eval"), sub.add_parser("report")
    cli_harness.add_eval_arguments(p_eval)
    cli_harness.add_report_arguments(p_rep)
    db, out = str(tmp_path / "r.sqlite"), str(tmp_path / "rep")
    args = parser.parse_args(["eval", "tanh", "--recipe", "mnist-mlp", "--epochs", "1", "--baselines", "relu",
                              "--dataset", "mnist-subset", "--train-limit", "200", "--test-limit", "100",
                              "--db", db, "--out", out, "--quiet", "--device", "cpu", "--set", "batch_size=50"])
    assert cli_harness.cmd_eval(args) == 0
    assert "report:" in capsys.readouterr().out
    assert cli_harness.cmd_report(parser.parse_args(["report", "--db", db, "--out", out, "--list"])) == 0
    assert "mnist-mlp" in capsys.readouterr().out
    assert cli_harness.cmd_report(parser.parse_args(["report", "--db", db, "--out", out + "2"])) == 0
    md = next((tmp_path / "rep2").rglob("report.md")).read_text()
    assert "Embedded MNIST subset used" in md and "Data limited" in md


def test_resolve_handles_names_and_params():
    h = resolve("relu")
    assert h.make()(torch.tensor([-1.0, 2.0])).tolist() == [0.0, 2.0]
    p = resolve("prelu", {"a": 0.1})
    assert "a" in p.learnable and p.params["a"] == pytest.approx(0.1)
    mod = p.make(4)
    assert sum(q.numel() for q in mod.parameters()) == 4
    assert torch.allclose(mod(-torch.ones(2, 4)), torch.full((2, 4), -0.1))


def test_runs_are_pooled_by_identity_never_by_name(tmp_path):
    """The same display name for two different formulas gives two rows (issue 11: no silent pooling)."""
    import actsym

    kw = dict(recipe="mnist-mlp", seeds=1, epochs=1, baselines=[], dataset_obj=fake_dataset(MNIST),
              db=tmp_path / "r.sqlite", out=tmp_path / "rep", quiet=True)
    run_eval(actsym.define("myact", "x*tanh(x)"), **kw)
    paths = run_eval(actsym.define("myact", "x*sigmoid(2*x)"), **kw)
    md = paths["markdown"].read_text()
    assert "myact #1 [x*tanh(x)]" in md and "myact #2 [x*sigmoid(2*x)]" in md
    assert "2/0/0" not in md  # no row pools both formulas


def test_unknown_name_is_refused_with_a_suggestion_not_a_fallback():
    from actsym.harness.activations import resolve

    with pytest.raises(KeyError, match="did you mean 'mish'"):
        resolve("Mish")


@pytest.mark.parametrize("extra", [
    ["--device", "cuda"] if not torch.cuda.is_available() else ["--seeds", "-1"],
    ["--set", "lr=abc"], ["--dataset", "mnist-sub"], ["--seed-list", "1,a"], ["--epochs", "0"],
    ["--train-limit", "0"], ["--seeds", "0"], ["--baselines", "relu,nosuch"], ["--threads", "-1"],
    ["--set", "batch_size=0"], ["--set", "optimizer=foo"], ["--set", "lr=nan"], ["--set", "nosuch=1"],
])
def test_eval_inputs_are_validated_up_front(tmp_path, capsys, extra):
    """One line on stderr, exit 2, nothing created -- before any data is loaded (issue 11)."""
    from actsym.cli import main

    db, out = tmp_path / "r.sqlite", tmp_path / "rep"
    rc = main(["eval", "exp2", "--recipe", "mnist-mlp", "--dataset", "mnist-subset", "--db", str(db),
               "--out", str(out), "--quiet", *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("actsym: error:"), err
    assert not db.exists() and not out.exists()


class _Boom(nn.Module):
    def forward(self, x):
        raise RuntimeError("kaboom in forward")


def test_crashing_runs_fail_with_reason_and_a_report_is_still_written(tmp_path, monkeypatch):
    """An activation raising mid-training is a failed run (not 'running' forever, not a traceback); with
    every run failed the report is still written and says why; it names the command, version and commit."""
    real = evaluate.resolve

    def fake_resolve(spec, params=None):
        if spec in ("nan", "boom"):
            mod = _NaN if spec == "nan" else _Boom
            return ActivationHandle(spec, "x", f"{spec}hash", {}, (), lambda c: mod(), None, "test")
        return real(spec, params)

    monkeypatch.setattr(evaluate, "resolve", fake_resolve)
    paths = run_eval("nan", recipe="mnist-mlp", seeds=[0], epochs=2, baselines=["boom"],
                     dataset_obj=fake_dataset(MNIST), db=tmp_path / "r.sqlite", out=tmp_path / "rep", quiet=True)
    with Store(paths["db"]) as store:
        status = {r["activation"]: (r["status"], r["error"]) for r in store.runs()}
    assert status["boom"] == ("failed", "crashed: RuntimeError: kaboom in forward")
    md = paths["markdown"].read_text()
    assert "No run finished" in md and "kaboom" in md
    assert "Written by" in md and "actsym 0.1.0" in md and "commit" in md
