"""``codegen`` writes its set of files as one transaction (issue 11, section 1b): a write failure (disk full,
read-only, EFBIG) while staging or while swapping leaves the old set intact, no temporary files behind, and the
command line says so in one line (exit 2)."""

from __future__ import annotations

import errno
import os

import pytest

from actsym.codegen import writer


def _set(tmp_path, version):
    return {tmp_path / "pkg" / f"m{i}.py": f"# m{i} {version}\n" for i in range(4)}


def _state(tmp_path):
    return {p.name: p.read_text() for p in sorted((tmp_path / "pkg").iterdir())}


def _failing(real, fail_at):
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(args)
        if len(calls) == fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)
    return wrapped


@pytest.mark.parametrize("where", ["_stage", "replace"])
def test_a_failed_write_leaves_the_old_set(tmp_path, monkeypatch, where):
    assert all(r.changed for r in writer.write_all(_set(tmp_path, "v1")))
    before = _state(tmp_path)
    if where == "_stage":
        monkeypatch.setattr(writer, "_stage", _failing(writer._stage, 3))
    else:
        monkeypatch.setattr(writer.os, "replace", _failing(os.replace, 3))
    with pytest.raises(OSError, match="No space left"):
        writer.write_all(_set(tmp_path, "v2"))
    monkeypatch.undo()
    assert _state(tmp_path) == before  # every file still v1, nothing staged left behind
    assert all(r.changed for r in writer.write_all(_set(tmp_path, "v2")))
    assert all(text.endswith("v2\n") for text in _state(tmp_path).values())
    assert not any(r.changed for r in writer.write_all(_set(tmp_path, "v2")))


def test_cli_disk_error_is_one_line(tmp_path, monkeypatch, capsys):
    from actsym.cli import main

    out = tmp_path / "mods"
    assert main(["codegen", "x*tanh(x)", "--name", "mytanh", "--out", str(out)]) == 0
    before = {p.name: p.read_text() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    monkeypatch.setattr(writer, "_stage", _failing(writer._stage, 1))
    assert main(["codegen", "x*tanh(2*x)", "--name", "mytanh", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No space left on device" in err, err
    assert {p.name: p.read_text() for p in out.iterdir() if p.is_file()} == before
