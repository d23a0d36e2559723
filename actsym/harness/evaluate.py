"""``run_eval``: one activation vs a recipe's baselines over paired seeds → store → report.

The ``actsym eval`` / ``actsym report`` commands are :mod:`actsym.cli.harness`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import sqlite3
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from tqdm.auto import tqdm

from . import recipes as recipe_registry
from .activations import ActivationHandle, resolve
from .progress import Progress
from .report import write_report
from .store import Store
from .train import last_checkpoint_epoch, pick_device, set_deterministic, train_run

DEFAULT_DB = "actsym-results/results.sqlite"
DEFAULT_OUT = "actsym-results/reports"


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _versions() -> dict[str, str]:
    try:
        from importlib.metadata import version
        actsym_version = version("actsym")
    except Exception:  # not installed (running from a checkout)
        actsym_version = "unknown"
    return {"torch": torch.__version__, "actsym": actsym_version, "python": platform.python_version()}


def _limit(ds, train_limit: int | None, test_limit: int | None):
    """A shallow copy of a Dataset-like object keeping the first N train / test examples."""
    if not train_limit and not test_limit:
        return ds
    fields = {k: getattr(ds, k, None) for k in ("name", "num_classes", "source", "subset", "note")}
    return SimpleNamespace(**fields, x_train=ds.x_train[:train_limit], y_train=ds.y_train[:train_limit],
                           x_test=ds.x_test[:test_limit], y_test=ds.y_test[:test_limit])


def _dataset_info(ds, name: str, train_limit: int | None, test_limit: int | None) -> dict[str, Any]:
    return {"name": name, "source": str(getattr(ds, "source", "")), "subset": bool(getattr(ds, "subset", False)),
            "note": str(getattr(ds, "note", "") or ""), "n_train": int(ds.x_train.shape[0]),
            "n_test": int(ds.x_test.shape[0]), "train_limit": train_limit, "test_limit": test_limit}


def _resolve_all(activation: Any, params: dict[str, float] | None,
                 baselines: Sequence[str]) -> tuple[list[ActivationHandle], list[str]]:
    handles = [resolve(activation, params)]
    skipped = []
    for name in baselines:
        try:
            h = resolve(name)
        except (KeyError, ValueError, ImportError, AttributeError) as err:
            warnings.warn(f"baseline {name!r} skipped: {err}", stacklevel=3)
            skipped.append(f"{name} ({err})")
            continue
        if all(h.name != x.name for x in handles):
            handles.append(h)
    return handles, skipped


def run_eval(activation: Any, params: dict[str, float] | None = None, recipe: str = "mnist-mlp",
             seeds: int | Sequence[int] = 1, epochs: int | None = None, baselines: Sequence[str] | None = None,
             data_dir: str | Path | None = None, device: str = "auto", db: str | Path = DEFAULT_DB,
             out: str | Path = DEFAULT_OUT, quiet: bool = False, deterministic: bool = False,
             dataset: str | None = None, train_limit: int | None = None, test_limit: int | None = None,
             variant: str | None = None, overrides: dict[str, Any] | None = None, threads: int | None = None,
             download: bool = False, dataset_obj: Any = None, init_gain: str = "default",
             reference: float | None = None, reference_metric: str | None = None) -> dict[str, Path]:
    """Train ``activation`` and the baselines on ``recipe`` for each seed; write the report.

    ``seeds``: a count (seeds 0..N-1) or explicit seeds.  ``baselines``: default the recipe's own
    set.  ``dataset`` overrides the recipe's dataset (e.g. ``"mnist-subset"``); ``dataset_obj``
    supplies a ready Dataset-like object (tests).  ``train_limit`` / ``test_limit`` keep the first N
    examples.  Finished runs already in ``db`` are skipped, interrupted ones resumed.  Progress: bars on a
    terminal, one line per run and epoch on stderr otherwise, nothing with ``quiet``.
    ``reference``: the candidate's published test accuracy (percent), stored with the study and shown in the
    report and table next to the measured mean ± CI (inside or outside it); ``reference_metric``: ``final`` or
    ``best`` epoch accuracy (default: the kind the recipe's own published numbers are).
    Returns ``{"markdown": ..., "html": ..., "db": ..., "summary": ...}`` (``summary``: the results as data,
    :func:`actsym.harness.report.results_summary`).
    """
    check_reference(reference, reference_metric)
    rec = recipe_registry.get(recipe)
    settings = recipe_registry.resolve_settings(rec, variant, overrides, epochs)
    if init_gain not in ("default", "computed"):
        raise KeyError(f"init_gain must be 'default' or 'computed', got {init_gain!r}")
    if init_gain != "default":  # (absent when default, so earlier studies keep their ids)
        settings["init_gain"] = init_gain
    dev = pick_device(device)
    if threads:
        torch.set_num_threads(int(threads))
    set_deterministic(deterministic, dev)
    # CPU results depend on the thread count (reduction order): record it with the device
    dev_desc = (f"cpu ({torch.get_num_threads()} threads)" if dev.type == "cpu"
                else f"{dev} ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else str(dev))
    ds_name = dataset or settings["dataset"]
    if dataset_obj is None:
        from .data import load_dataset
        dataset_obj = load_dataset(ds_name, data_dir=data_dir, download=download)
    ds = _limit(dataset_obj, train_limit, test_limit)
    info = _dataset_info(ds, ds_name, train_limit, test_limit)
    data = rec.prepare(ds, settings, dev)
    handles, skipped = _resolve_all(activation, params, list(baselines) if baselines is not None else rec.BASELINES)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    study = _hash({"recipe": rec.NAME, "settings": settings, "data": {k: v for k, v in info.items() if k != "note"}})
    db_path = Path(db)
    ckpt_dir = db_path.parent / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    store = Store(db_path)
    try:
        if reference is not None:
            from .report import reference_metric as recipe_metric
            store.set_reference(study, handles[0].hash, float(reference),
                                reference_metric or recipe_metric(getattr(rec, "REFERENCE", {})))
        jobs = [(seed, h, _hash({"study": study, "act": h.hash, "params": h.params, "seed": seed}))
                for seed in seed_list for h in handles]
        progress = Progress(quiet)
        before = [store.run_by_key(key) for _, _, key in jobs]
        done = sum(r is not None and r["status"] in ("finished", "failed") for r in before)
        partial = sum(r is not None and r["status"] not in ("finished", "failed") for r in before)
        if done or partial:
            message = (f"resuming: {done} finished, {partial} partial, {len(jobs) - done - partial} new "
                       f"(of {len(jobs)} runs)")
            if progress.bars:
                tqdm.write(message, file=sys.stderr)
            else:
                progress.line(message)
        for i, (seed, h, key) in enumerate(progress.bar(jobs, desc=f"{rec.NAME} runs"), 1):
            row = store.get_or_create_run(
                key, study=study, recipe=rec.NAME, variant=settings["variant"], activation=h.name,
                expr=h.expr_str, latex=h.latex, act_hash=h.hash, params=h.params, learnable=list(h.learnable),
                seed=seed, settings=settings, dataset=info, versions=_versions(), device=dev_desc)
            if row["status"] in ("finished", "failed"):
                continue
            progress.line(f"run {i}/{len(jobs)}: {h.name} seed {seed}")
            # checkpoints belong to this database (its uid) and this run; one that is ahead of the epochs
            # this database recorded (another database's, or a deleted one's) is discarded, never trusted
            ckpt = ckpt_dir / f"{store.uid[:12]}-{key}.pt"
            ck_epoch, recorded = last_checkpoint_epoch(ckpt), len(store.epochs(row["id"]))
            if ck_epoch > recorded:
                ckpt.unlink(missing_ok=True)
                ck_epoch = 0
            store.delete_epochs_after(row["id"], ck_epoch)
            store.set_status(row["id"], "running", device=dev_desc)
            try:
                result = train_run(rec, h, data, settings, seed, dev, checkpoint=ckpt, quiet=quiet,
                                   on_epoch=lambda r, rid=row["id"]: store.add_epoch(rid, r),
                                   desc=f"{h.name} seed {seed}")
            except (OSError, sqlite3.Error):  # the machine, not the run (disk full, database locked): resumable
                store.set_status(row["id"], "running", error="interrupted by an I/O error")
                raise
            except Exception as err:  # the run itself broke (e.g. the activation raised): a failed run, go on
                first = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
                store.set_status(row["id"], "failed", error=f"crashed: {type(err).__name__}: {first}")
                ckpt.unlink(missing_ok=True)
                continue
            except BaseException as err:  # interrupted (Ctrl-C, kill): leave it resumable, remember why
                store.set_status(row["id"], "running", error=f"interrupted: {err!r}")
                raise
            store.set_status(row["id"], result.status, result.error)
            ckpt.unlink(missing_ok=True)
        paths = write_report(store, study, out, candidate=handles[0].name, handles=handles,
                             notes=[f"baseline skipped: {s}" for s in skipped])
    finally:
        store.close()
    paths["db"] = db_path
    return paths


# ----------------------------------------------------------------------------------------------
# settings checks (``actsym eval`` validates its arguments with these before anything runs)


def _bad(message: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(message)


def check_reference(reference: float | None, metric: str | None = None) -> None:
    """A published accuracy is a finite percentage in [0, 100]; its metric ``final`` or ``best``."""
    if reference is not None and (not isinstance(reference, (int, float)) or not math.isfinite(reference)
                                  or not 0 <= reference <= 100):
        raise _bad(f"--reference must be a test accuracy in percent, between 0 and 100, got {reference!r}")
    if metric is not None and metric not in ("final", "best"):
        raise _bad(f"--reference-metric must be final or best, got {metric!r}")


def check_settings(settings: dict[str, Any]) -> None:
    """Numeric settings in range (one-line errors)."""
    bs = settings.get("batch_size")
    if not isinstance(bs, int) or bs < 1:
        raise _bad(f"--set batch_size must be a positive integer, got {bs!r}")
    lr = settings.get("lr")
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise _bad(f"--set lr must be a positive finite number, got {lr!r}")
    if settings.get("optimizer") not in ("sgd", "adam"):
        raise _bad(f"--set optimizer must be sgd or adam, got {settings.get('optimizer')!r}")
    for key in ("momentum", "weight_decay"):
        v = settings.get(key, 0.0)
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise _bad(f"--set {key} must be a non-negative finite number, got {v!r}")
