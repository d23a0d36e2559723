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
