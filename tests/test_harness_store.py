"""SQLite store and resume: a run killed after epoch k resumes from k and ends bit-identical."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from actsym.harness import evaluate, train
from actsym.harness.evaluate import run_eval
from actsym.harness.store import Store
from actsym.harness.train import EpochRecord


def fake_mnist(n_train=300, n_test=100, seed=0):
    g = torch.Generator().manual_seed(seed)
    return SimpleNamespace(
        name="fake", x_train=torch.randint(0, 256, (n_train, 1, 28, 28), dtype=torch.uint8, generator=g),
        y_train=torch.randint(0, 10, (n_train,), generator=g),
        x_test=torch.randint(0, 256, (n_test, 1, 28, 28), dtype=torch.uint8, generator=g),
        y_test=torch.randint(0, 10, (n_test,), generator=g), num_classes=10, source="fake", subset=True, note="")


@pytest.fixture(autouse=True)
def _no_report(monkeypatch):
    """Reports are tested in test_harness_eval; here they would only cost plotting time."""
    monkeypatch.setattr(evaluate, "write_report", lambda *a, **k: {"markdown": None, "html": None})


class Killed(BaseException):
    """Stands in for a killed process (like KeyboardInterrupt/SystemExit, not an Exception: an Exception inside
    a run is the run failing, and is recorded as such)."""


def _rows(db):
    with Store(db) as store:
        return {(r["activation"], r["seed"]): ([(e["epoch"], e["train_loss"], e["train_acc"], e["test_loss"],
                                                 e["test_acc"], e["act_params"]) for e in store.epochs(r["id"])],
                                               r["status"]) for r in store.runs()}


KW = dict(recipe="mnist-mlp", seeds=[3], epochs=3, baselines=[], quiet=True, deterministic=True,
          overrides={"batch_size": "25", "optimizer": "adam", "lr": "0.01"})


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 3-epoch run (learnable activation + Adam: optimizer state must resume too)."""
    tmp = tmp_path_factory.mktemp("ref")
    ds = fake_mnist(200, 50)
    run_eval("prelu", dataset_obj=ds, db=tmp / "r.sqlite", out=tmp / "rep", **KW)
    return _rows(tmp / "r.sqlite")


@pytest.mark.parametrize("where", ["after_checkpoint", "between_row_and_checkpoint"])
def test_kill_and_resume_is_bit_exact(tmp_path, monkeypatch, reference, where):
    k = 2
    db = tmp_path / "r.sqlite"
    real_save_checkpoint, real_add_epoch = train._save_checkpoint, Store.add_epoch
    if where == "after_checkpoint":  # killed right after epoch k was fully saved
        real_save = train._save_checkpoint

        def save_then_die(path, epoch, model, opt):
            real_save(path, epoch, model, opt)
            if epoch == k:
                raise Killed
        monkeypatch.setattr(train, "_save_checkpoint", save_then_die)
        resume_from = k
    else:  # killed after epoch k's row was committed but before its checkpoint: epoch k is redone
        real_add = Store.add_epoch

        def add_then_die(self, run_id, rec):
            real_add(self, run_id, rec)
            if rec.epoch == k:
                raise Killed
        monkeypatch.setattr(Store, "add_epoch", add_then_die)
        resume_from = k - 1
    with pytest.raises(Killed):
        run_eval("prelu", dataset_obj=fake_mnist(200, 50), db=db, out=tmp_path / "rep", **KW)
    monkeypatch.setattr(train, "_save_checkpoint", real_save_checkpoint)
    monkeypatch.setattr(Store, "add_epoch", real_add_epoch)
    partial = _rows(db)
    (epochs, status), = partial.values()
    assert status == "running"
    assert [e[0] for e in epochs] == list(range(1, k + 1))
    assert list((tmp_path / "checkpoints").glob("*.pt")), "checkpoint written atomically, no .tmp left"
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))

    starts = []
    real_run = evaluate.train_run

    def spy(*a, **kw):
        result = real_run(*a, **kw)
        starts.append(result.start_epoch)
        return result
    monkeypatch.setattr(evaluate, "train_run", spy)
    run_eval("prelu", dataset_obj=fake_mnist(200, 50), db=db, out=tmp_path / "rep", **KW)
    assert starts == [resume_from]
    assert _rows(db) == reference  # every epoch's metrics and learned parameters, bit for bit
    assert not list((tmp_path / "checkpoints").glob("*.pt")), "checkpoint removed once finished"


def test_store_roundtrip(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        row = store.get_or_create_run("k1", study="s", recipe="mnist-mlp", variant="default", activation="relu",
                                      expr="Max(0, x)", act_hash="h", params={"a": 1.0}, learnable=["a"], seed=0,
                                      settings={"lr": 0.1}, dataset={"name": "mnist"}, versions={"torch": "x"},
                                      device="cpu")
        assert row["status"] == "running" and row["params"] == {"a": 1.0} and row["settings"] == {"lr": 0.1}
        assert store.get_or_create_run("k1", study="other", recipe="x", activation="y", seed=9)["id"] == row["id"]
        rec = EpochRecord(1, float("nan"), 0.5, float("inf"), 0.25, 1.0, 0.1,
                          firing={"1": {"pos": 0.5, "neg": 0.5, "zero": 0.0}}, act_params={"1": {"a": 0.3}})
        store.add_epoch(row["id"], rec)
        store.add_epoch(row["id"], EpochRecord(2, 0.1, 0.6, 0.2, 0.3, 1.0, 0.1))
        (e1, e2) = store.epochs(row["id"])
        assert e1["train_loss"] is None and e1["test_loss"] is None and e1["test_acc"] == 0.25
        assert e1["firing"]["1"]["pos"] == 0.5 and e1["act_params"] == {"1": {"a": 0.3}}
        store.delete_epochs_after(row["id"], 1)
        assert [e["epoch"] for e in store.epochs(row["id"])] == [1]
        store.set_status(row["id"], "failed", "diverged")
        assert store.runs(status="failed")[0]["error"] == "diverged"
        assert store.studies()[0]["n"] == 1
        assert math.isnan(float("nan"))


def test_run_keys_separate_settings(tmp_path):
    kw = dict(recipe="mnist-mlp", seeds=[0], baselines=[], dataset_obj=fake_mnist(100, 50), db=tmp_path / "r.sqlite",
              out=tmp_path / "rep", quiet=True)
    run_eval("relu", epochs=1, **kw)
    run_eval("relu", epochs=2, **kw)  # different settings → a different study and run, not a resume
    with Store(tmp_path / "r.sqlite") as store:
        runs = store.runs()
        assert len(runs) == 2 and len({r["study"] for r in runs}) == 2
        assert [len(store.epochs(r["id"])) for r in runs] == [1, 2]
