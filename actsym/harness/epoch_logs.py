"""Per-epoch logs of every run, next to the report: ``runs/<label>-seed<N>.csv`` (always) and TensorBoard event
files under ``tensorboard/<label>-seed<N>/`` (only when ``torch.utils.tensorboard`` -- the ``tensorboard``
package -- is importable; skipped silently otherwise).

Both are rebuilt from the results database each time the report is written, so a resumed run's log has every
epoch once and ``actsym report`` reproduces them.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: the per-epoch CSV's columns (accuracies in percent; ``act_params``/``firing`` as JSON)
FIELDS = ["label", "activation", "seed", "status", "epoch", "train_loss", "train_acc_pct", "test_loss",
          "test_acc_pct", "seconds", "lr", "act_params", "firing"]


def _safe(text: str) -> str:
    """A file-name part: letters, digits and ``.=+-`` kept, every other run of characters one ``_``."""
    return re.sub(r"[^A-Za-z0-9.=+-]+", "_", text).strip("_.") or "run"


def _pct(x: float | None) -> float | None:
    return None if x is None else round(100 * float(x), 6)


def run_names(runs: Sequence[dict[str, Any]], labels: dict[int, str]) -> dict[int, str]:
    """run id -> a unique file stem ``<label>-seed<N>`` (the run id appended where two labels sanitise alike)."""
    out, seen = {}, set()
    for r in runs:
        stem = f"{_safe(labels[r['id']])}-seed{r['seed']}"
        if stem in seen:
            stem += f"-run{r['id']}"
        seen.add(stem)
        out[r["id"]] = stem
    return out


def tensorboard_writer():
    """``torch.utils.tensorboard.SummaryWriter``, or None when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch's module needs the tensorboard package
        return None
    return SummaryWriter


def write_epoch_logs(folder: Path, runs: Sequence[dict[str, Any]], labels: dict[int, str],
                     all_epochs: dict[int, list[dict[str, Any]]]) -> dict[str, Any]:
    """Write one CSV per run under ``folder/runs`` (replacing the folder's old logs) and, when possible,
    TensorBoard events under ``folder/tensorboard``. Returns ``{"epochs": [csv paths, run order],
    "tensorboard": folder or None}``."""
    names = run_names(runs, labels)
    csv_dir = folder / "runs"
    if csv_dir.exists():
        shutil.rmtree(csv_dir)
    csv_dir.mkdir(parents=True)
    paths = []
    for r in runs:
        path = csv_dir / f"{names[r['id']]}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=FIELDS, lineterminator="\n")
            w.writeheader()
            for e in all_epochs.get(r["id"], []):
                w.writerow({"label": labels[r["id"]], "activation": r["activation"], "seed": r["seed"],
                            "status": r["status"], "epoch": e["epoch"], "train_loss": e["train_loss"],
                            "train_acc_pct": _pct(e["train_acc"]), "test_loss": e["test_loss"],
                            "test_acc_pct": _pct(e["test_acc"]), "seconds": e["seconds"], "lr": e["lr"],
                            "act_params": json.dumps(e["act_params"], sort_keys=True),
                            "firing": json.dumps(e["firing"], sort_keys=True)})
        paths.append(path)
    tb_dir = None
    writer_cls = tensorboard_writer()
    if writer_cls is not None:
        tb_dir = folder / "tensorboard"
        if tb_dir.exists():
            shutil.rmtree(tb_dir)
        for r in runs:
            writer = writer_cls(log_dir=str(tb_dir / names[r["id"]]))
            try:
                for e in all_epochs.get(r["id"], []):
                    for key in ("train_loss", "test_loss"):
                        if e[key] is not None:
                            writer.add_scalar(f"loss/{key[:-5]}", e[key], e["epoch"])
                    for key in ("train_acc", "test_acc"):
                        if e[key] is not None:
                            writer.add_scalar(f"accuracy/{key[:-4]}", 100 * e[key], e["epoch"])
                    if e["lr"] is not None:
                        writer.add_scalar("lr", e["lr"], e["epoch"])
            finally:
                writer.close()
    return {"epochs": paths, "tensorboard": tb_dir}
