"""The README's examples run as written (issue 11: they show ``replace_activations`` and a pickled model).

Every ```python block runs in a fresh interpreter in an empty folder; the command-line walk-through (the
```bash block that uses ``replace_activations``) runs in bash with ``actsym`` meaning this checkout's CLI, and
the model it saves loads in yet another process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README, flags=re.S | re.M)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


PYTHON_BLOCKS = _blocks("python")


def test_the_examples_show_replace_activations_and_pickling():
    python, cli = "\n".join(PYTHON_BLOCKS), "\n".join(_blocks("bash"))
    for text in (python, cli):
        assert "replace_activations(" in text and "torch.save(model" in text


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_python_example_runs(tmp_path, index):
    proc = subprocess.run([sys.executable, "-c", PYTHON_BLOCKS[index]], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = sorted(tmp_path.glob("*.pt"))
    assert saved or "torch.save(" not in PYTHON_BLOCKS[index], "the example saves its model"
    for path in saved:  # and the pickle loads in a fresh process
        code = f"import torch; m = torch.load({str(path)!r}, weights_only=False); print(type(m).__name__)"
        load = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                              timeout=600)
        assert load.returncode == 0 and "Sequential" in load.stdout, load.stderr[-3000:]


def test_command_line_walkthrough_runs(tmp_path):
    block = next(b for b in _blocks("bash") if "replace_activations" in b)
    script = re.sub(r"^actsym ", f"{sys.executable} -m actsym ", block, flags=re.M)
    script = re.sub(r"^python ", f"{sys.executable} ", script, flags=re.M)
    proc = subprocess.run(["bash", "-euc", script], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert (tmp_path / "mymods" / "tanhexp.py").exists() and (tmp_path / "model.pt").exists()
    assert "Tanhexp" in proc.stdout and "df/dx" in proc.stdout
