"""Checkpoints are data, never code: a crafted or damaged file is refused, moved aside, and the run restarts."""

import pickle

import torch

from actsym.harness.train import last_checkpoint_epoch, load_checkpoint


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED_BY_CHECKPOINT",))


def test_malicious_checkpoint_is_refused_and_nothing_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ckpt = tmp_path / "run.pt"
    with open(ckpt, "wb") as f:
        pickle.dump({"epoch": 3, "model": _Payload(), "optimizer": {}, "rng": torch.zeros(1)}, f)
    assert load_checkpoint(ckpt) is None
    assert not (tmp_path / "PWNED_BY_CHECKPOINT").exists()
    assert not ckpt.exists() and (tmp_path / "run.pt.bad").exists()
    err = capsys.readouterr().err
    assert "unreadable or unsafe" in err and len(err.strip().splitlines()) == 1


def test_truncated_checkpoint_restarts_the_run(tmp_path):
    ckpt = tmp_path / "run.pt"
    torch.save({"epoch": 2, "model": {"w": torch.ones(3)}, "optimizer": {"state": {}}, "rng": torch.get_rng_state()}, ckpt)
    assert last_checkpoint_epoch(ckpt) == 2
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    assert last_checkpoint_epoch(ckpt) == 0
    assert not ckpt.exists()


def test_foreign_file_is_not_a_checkpoint(tmp_path):
    ckpt = tmp_path / "run.pt"
    torch.save([1, 2, 3], ckpt)
    assert load_checkpoint(ckpt) is None


def _interrupt_at_epoch(monkeypatch, epoch):
    from actsym.harness.store import Store

    real = Store.add_epoch

    def add_epoch(self, run_id, rec):
        if rec.epoch == epoch:
            raise KeyboardInterrupt
        return real(self, run_id, rec)

    monkeypatch.setattr(Store, "add_epoch", add_epoch)


def test_a_fresh_database_never_resumes_another_databases_checkpoint(tmp_path, monkeypatch):
    import pytest
    from test_harness_eval import MNIST, fake_dataset

    from actsym.harness.evaluate import run_eval
    from actsym.harness.store import Store

    kw = dict(recipe="mnist-mlp", seeds=[0], epochs=2, baselines=[], dataset_obj=fake_dataset(MNIST),
              out=tmp_path / "rep", quiet=True)
    with monkeypatch.context() as m:
        _interrupt_at_epoch(m, 2)
        with pytest.raises(KeyboardInterrupt):
            run_eval("relu", db=tmp_path / "a.sqlite", **kw)
    left = list((tmp_path / "checkpoints").glob("*.pt"))
    assert len(left) == 1  # run a stopped after epoch 1
    run_eval("relu", db=tmp_path / "b.sqlite", **kw)  # same folder, new database: starts from epoch 1
    with Store(tmp_path / "b.sqlite") as store:
        (run,) = store.runs()
        assert run["status"] == "finished" and [e["epoch"] for e in store.epochs(run["id"])] == [1, 2]
    assert left[0].exists()  # a's checkpoint is a's
    (tmp_path / "a.sqlite").unlink()  # deleting the database but keeping checkpoints: never resumed either
    run_eval("relu", db=tmp_path / "a.sqlite", **kw)
    with Store(tmp_path / "a.sqlite") as store:
        (run,) = store.runs()
        assert [e["epoch"] for e in store.epochs(run["id"])] == [1, 2]


def test_damaged_database_is_one_line(tmp_path, capsys):
    from actsym.cli import main

    db = tmp_path / "r.sqlite"
    db.write_bytes(b"this is not sqlite" * 100)
    assert main(["report", "--db", str(db)]) == 2
    err = capsys.readouterr().err.strip()
    assert "damaged or not an actsym database" in err and len(err.splitlines()) == 1
