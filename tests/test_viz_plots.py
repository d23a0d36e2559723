"""Activation plots: files produced, non-empty, reproducible; CLI handler errors are one-liners."""

import argparse

import numpy as np
import pytest
import sympy as sp

import actsym
from actsym.cli import UsageError
from actsym.cli.analysis import add_plot_arguments, cmd_plot
from actsym.viz.plots import _grid, activation_png, mathtext, plot_activation


def test_plot_files_nonempty_and_svg_reproducible(tmp_path):
    paths = plot_activation("prelu", tmp_path, formats=("png", "svg"), dpi=40)
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert all(p.stat().st_size > 1000 for p in paths)
    first = paths[1].read_bytes()
    plot_activation("prelu", tmp_path, formats=("svg",), dpi=40)
    assert paths[1].read_bytes() == first


def test_png_bytes_for_reports():
    data = activation_png(actsym.define("tanhexp", "x*tanh(exp(b)*x)", params={"b": 0.0}), dpi=30)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_piecewise_title_is_mathtext_and_grid_splits_at_kinks():
    text = mathtext(actsym.get("elu").expr)
    assert "otherwise" in text and "cases" not in text
    xs = _grid(-1.0, 1.0, [0.0], 50)
    assert np.isnan(xs).sum() == 1 and not np.any(xs == 0.0)
    assert mathtext(sp.Symbol("x") ** 2) == "$x^{2}$"


def test_errors(tmp_path):
    with pytest.raises(ValueError):
        plot_activation("relu", tmp_path, x_range=(1, -1))
    with pytest.raises(ValueError):
        plot_activation("relu", tmp_path, formats=("gif",))
    with pytest.raises(KeyError):
        plot_activation("swish", tmp_path, param_values={"nope": [1.0]})


def _args(*argv):
    p = argparse.ArgumentParser()
    add_plot_arguments(p)
    return p.parse_args(list(argv))


def test_cli_handler(tmp_path, capsys):
    assert cmd_plot(_args("swish", "--values", "beta=0.5,4", "--format", "png", "--dpi", "30",
                          "--out", str(tmp_path))) == 0
    assert (tmp_path / "swish.png").stat().st_size > 0
    assert "wrote" in capsys.readouterr().out
    for bad in (["relu", "--range", "2", "1"], ["swish", "--values", "beta=x"], ["swish", "--values", "zz=1"]):
        with pytest.raises(UsageError):
            cmd_plot(_args(*bad, "--out", str(tmp_path)))
