"""The command line: subcommands, exit codes, nothing written on error, drift check of generated/."""

import subprocess
import sys
from pathlib import Path

import pytest

from actsym.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_generated_directory_is_up_to_date(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    assert main(["codegen", "--all", "--check"]) == 0, capsys.readouterr().err


def test_check_detects_stale_files(tmp_path, capsys):
    assert main(["codegen", "--all", "--out", str(tmp_path)]) == 0
    target = tmp_path / "exp2.py"
    target.write_text(target.read_text() + "# edited by hand\n")
    assert main(["codegen", "--all", "--check", "--out", str(tmp_path)]) == 1
    assert "exp2.py" in capsys.readouterr().err


def test_codegen_expression_writes_importable_module(tmp_path, monkeypatch):
    rc = main(["codegen", "x*tanh(exp(b)*x)", "--name", "tanhexp", "--param", "b=0.0", "--out", str(tmp_path / "gen")])
    assert rc == 0
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    mod = importlib.import_module("gen.tanhexp")
    import torch

    layer = mod.Tanhexp()
    x = torch.linspace(-2, 2, 5, requires_grad=True)
    layer(x).sum().backward()
    assert layer.b.grad is not None and torch.isfinite(x.grad).all()


def test_codegen_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["codegen", "--all", "--out", str(a)]) == 0
    assert main(["codegen", "--all", "--out", str(b)]) == 0
    for f in sorted(a.iterdir()):
        assert f.read_bytes() == (b / f.name).read_bytes(), f.name


@pytest.mark.parametrize(
    "argv",
    [
        ["codegen", "__import__('os').system('echo hi')", "--name", "evil"],
        ["codegen", "y*x", "--name", "bad"],
        ["codegen", "x*exp", "--name", "bad", "--param", "exp=1"],
        ["codegen", "x", "--name", "bad", "--param", "a"],
        ["codegen", "x*2", "--name", "relu"],
        ["check", "nosuchthing(x)"],
        ["show", "x**"],
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(argv, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main([*argv, "--out", str(out)] if argv[0] == "codegen" else argv)
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("actsym: error:") and err.count("\n") == 1
    assert not out.exists()


def test_console_entry_points_agree():
    a = subprocess.run([sys.executable, str(REPO / "cli.py"), "list"], capture_output=True, text=True, check=True)
    b = subprocess.run([sys.executable, "-m", "actsym.cli", "list"], capture_output=True, text=True, check=True)
    assert a.stdout == b.stdout and "exp2" in a.stdout
    c = subprocess.run([sys.executable, str(REPO / "cli.py"), "show", "__import__('os')"], capture_output=True, text=True)
    assert c.returncode == 2 and "Traceback" not in c.stderr


def test_show_reports_hazard_and_limits(capsys):
    assert main(["show", "rational"]) == 0
    out = capsys.readouterr().out
    assert "division by zero at x = a" in out and "safe when a >= 0" in out
    assert main(["show", "sin(x)/x", "--name", "sinc"]) == 0
    assert "removable singularity at x = [0.0]" in capsys.readouterr().out


def test_check_command_runs_suite(capsys):
    assert main(["check", "exp2", "--examples", "5", "--only", "gradcheck", "--only", "extreme-inputs"]) == 0
    out = capsys.readouterr().out
    assert "PASS  gradcheck" in out and "2/2 properties hold" in out


def test_check_fails_for_overflowing_activation(capsys):
    assert main(["check", "x*exp(x)", "--name", "xexp", "--only", "extreme-inputs"]) == 1
    assert "FAIL  extreme-inputs" in capsys.readouterr().out


def test_codegen_then_eval_in_one_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc = main(["codegen", "x*tanh(exp(b)*x)", "--name", "tanhexp", "--param", "b=0.0", "--out", "gen",
               "--eval", "mnist-mlp", "--epochs", "1", "--dataset", "mnist-subset"])
    assert rc == 0
    assert "report:" in capsys.readouterr().out
    assert (tmp_path / "gen" / "tanhexp.py").exists()
    report = (tmp_path / "actsym-results" / "reports").rglob("*.md")
    text = "\n".join(p.read_text() for p in report)
    assert "tanhexp" in text and "relu" in text


def test_missing_dataset_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ACTSYM_DATA", str(tmp_path / "nothing"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    rc = main(["eval", "exp2", "--recipe", "mnist-mlp", "--data-dir", str(tmp_path / "empty"), "--epochs", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("actsym: error:") and err.count("\n") == 1


def test_analysis_commands_are_wired(tmp_path, capsys):
    assert main(["signal", "relu"]) == 0
    assert "sqrt(2)" in capsys.readouterr().out
    assert main(["plot", "exp2", "--out", str(tmp_path), "--format", "png"]) == 0
    assert any(p.stat().st_size > 0 for p in tmp_path.glob("*.png"))
    assert main(["toy2d", "abs", "--epochs", "0"]) == 2  # one-line usage error


def test_eval_bad_param_is_a_one_line_error(capsys):
    assert main(["eval", "swish", "--param", "beta=abc", "--dataset", "mnist-subset"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("actsym: error: --param beta") and err.count("\n") == 1


def test_codegen_never_overwrites_files_actsym_did_not_write(tmp_path, capsys):
    out = tmp_path / "pkg"
    out.mkdir()
    (out / "__init__.py").write_text("print('my package')\n")
    (out / "other.py").write_text("x = 1\n")
    assert main(["codegen", "x*tanh(x)", "--name", "other", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "not generated by actsym" in err and len(err.splitlines()) == 1
    assert (out / "__init__.py").read_text() == "print('my package')\n" and (out / "other.py").read_text() == "x = 1\n"
    assert sorted(p.name for p in out.iterdir()) == ["__init__.py", "other.py"]


def test_codegen_user_file_is_readable_and_says_how_to_regenerate(tmp_path):
    out = tmp_path / "gen"
    assert main(["codegen", "x*sigmoid(b*x)", "--name", "sw", "--param", "b=1.5", "--out", str(out)]) == 0
    assert not (tmp_path / "gen_triton").exists()  # no unrequested sibling package
    text = (out / "sw.py").read_text()
    assert "Regenerate: actsym codegen 'x*sigmoid(b*x)' --name sw --param b=1.5" in text.splitlines()[1]
    assert (out / "sw.py").stat().st_mode & 0o044 == 0o044  # readable by group/others (umask permitting)
    # rewriting our own file is fine
    assert main(["codegen", "x*sigmoid(b*x)", "--name", "sw", "--param", "b=2.0", "--out", str(out)]) == 0


@pytest.mark.parametrize("target", ["file", "/proc/nope"])
def test_codegen_out_must_be_a_writable_directory(tmp_path, capsys, target):
    out = tmp_path / "afile" if target == "file" else Path(target)
    if target == "file":
        out.write_text("hello\n")
    assert main(["codegen", "x", "--name", "ident", "--out", str(out)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_catalog_names_take_params_and_new_names(tmp_path, capsys):
    assert main(["show", "swish", "--param", "beta=2"]) == 0
    assert "beta  = 2.0" in capsys.readouterr().out
    out = tmp_path / "gen"
    assert main(["codegen", "mish", "--name", "mish2", "--out", str(out)]) == 0
    assert "class Mish2(" in (out / "mish2.py").read_text()
    # the catalog's own name with other values would silently differ from generated/swish.py
    assert main(["codegen", "swish", "--param", "beta=2", "--out", str(out)]) == 2
    assert "choose another --name" in capsys.readouterr().err
