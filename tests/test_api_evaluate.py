"""``actsym.evaluate(...)`` (issue 11, section 3): the evaluation as a documented Python function that returns
the results, not only paths. One tiny evaluation on the embedded MNIST subset (never a download)."""

from __future__ import annotations

import argparse

import pytest

import actsym
from actsym.harness.store import Store


def test_evaluate_returns_the_results(tmp_path):
    db = tmp_path / "r.sqlite"
    res = actsym.evaluate("tanh", recipe="mnist-mlp", baselines=["relu"], seeds=2, epochs=1,
                          dataset="mnist-subset", train_limit=200, test_limit=100, overrides={"batch_size": 50},
                          device="cpu", db=db, out=tmp_path / "rep", quiet=True, reference=90.0)
    assert isinstance(res, actsym.Results)
    assert res.candidate == "tanh" and res.labels == ["tanh", "relu"] and len(res) == 2
    # the numbers are the database's: per-seed final accuracies and their mean
    with Store(db) as store:
        runs = {(r["activation"], r["seed"]): r for r in store.runs(study=res.study)}
        finals = {key: 100 * store.epochs(r["id"])[-1]["test_acc"] for key, r in runs.items()}
    assert set(runs) == {("tanh", 0), ("tanh", 1), ("relu", 0), ("relu", 1)}
    got = res.final_accuracies("tanh")
    assert got == pytest.approx({0: finals["tanh", 0], 1: finals["tanh", 1]}, abs=1e-3)
    assert res["tanh"]["final_acc"]["n"] == 2
    assert res["tanh"]["final_acc"]["mean_pct"] == pytest.approx(sum(got.values()) / 2, abs=1e-3)
    delta = res.delta("relu")
    diffs = [finals["tanh", s] - finals["relu", s] for s in (0, 1)]
    assert delta["n"] == 2 and delta["mean_diff_pct"] == pytest.approx(sum(diffs) / 2, abs=1e-3)
    assert delta["significant"] is False and "no claim" in delta["flag"]
    assert res["tanh"]["reference"]["value_pct"] == 90.0
    assert res.delta("tanh") is None  # the candidate has no difference to itself
    with pytest.raises(KeyError, match="labels: tanh, relu"):
        res["mish"]
    # the files are still written, and the table is the one the command line prints
    assert res.paths["markdown"].exists() and res.paths["db"] == db
    assert sorted(p.name for p in res.paths["epochs"]) == ["relu-seed0.csv", "relu-seed1.csv", "tanh-seed0.csv",
                                                           "tanh-seed1.csv"]
    assert "(candidate)" in res.table() and "tanh" in repr(res)
    # a second call resumes: same study, same numbers, nothing retrained
    again = actsym.evaluate("tanh", recipe="mnist-mlp", baselines=["relu"], seeds=2, epochs=1,
                            dataset="mnist-subset", train_limit=200, test_limit=100, overrides={"batch_size": 50},
                            device="cpu", db=db, out=tmp_path / "rep", quiet=True)
    assert again.study == res.study and again.final_accuracies("tanh") == got


def test_evaluate_refuses_bad_settings_before_anything_runs(tmp_path):
    kw = dict(recipe="mnist-mlp", dataset="mnist-subset", db=tmp_path / "r.sqlite", out=tmp_path / "rep", quiet=True)
    with pytest.raises(argparse.ArgumentTypeError, match="batch_size"):
        actsym.evaluate("tanh", overrides={"batch_size": 0}, **kw)
    with pytest.raises(KeyError, match="no setting"):
        actsym.evaluate("tanh", overrides={"nosuch": 1}, **kw)
    assert not (tmp_path / "r.sqlite").exists()
