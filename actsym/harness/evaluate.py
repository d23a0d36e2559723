"""``run_eval``: one activation vs a recipe's baselines over paired seeds → store → report.

Also the ``actsym eval`` / ``actsym report`` argument parsers and handlers, so the CLI only wires
``add_eval_arguments`` / ``cmd_eval`` and ``add_report_arguments`` / ``cmd_report``.
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
             download: bool = False, dataset_obj: Any = None, init_gain: str = "default") -> dict[str, Path]:
    """Train ``activation`` and the baselines on ``recipe`` for each seed; write the report.

    ``seeds``: a count (seeds 0..N-1) or explicit seeds.  ``baselines``: default the recipe's own
    set.  ``dataset`` overrides the recipe's dataset (e.g. ``"mnist-subset"``); ``dataset_obj``
    supplies a ready Dataset-like object (tests).  ``train_limit`` / ``test_limit`` keep the first N
    examples.  Finished runs already in ``db`` are skipped, interrupted ones resumed.
    Returns ``{"markdown": ..., "html": ..., "db": ...}``.
    """
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
        jobs = [(s, h) for s in seed_list for h in handles]
        for seed, h in tqdm(jobs, desc=f"{rec.NAME} runs", disable=quiet):
            key = _hash({"study": study, "act": h.hash, "params": h.params, "seed": seed})
            row = store.get_or_create_run(
                key, study=study, recipe=rec.NAME, variant=settings["variant"], activation=h.name,
                expr=h.expr_str, latex=h.latex, act_hash=h.hash, params=h.params, learnable=list(h.learnable),
                seed=seed, settings=settings, dataset=info, versions=_versions(), device=dev_desc)
            if row["status"] in ("finished", "failed"):
                continue
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
# CLI


def _sets(items: Sequence[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``actsym eval``."""
    parser.add_argument("activation", help="catalog name (exp2) or expression in x")
    parser.add_argument("--param", action="append", metavar="K=V", help="activation parameter (repeatable)")
    parser.add_argument("--recipe", default="mnist-mlp", choices=recipe_registry.names())
    parser.add_argument("--variant", default=None, help="recipe variant (e.g. adam, lr0.5, cifar100)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", dest="overrides",
                        help="override a recipe setting (repeatable), e.g. --set lr=0.05")
    parser.add_argument("--seeds", type=int, default=1, help="number of paired seeds (0..N-1)")
    parser.add_argument("--seed-list", default=None, help="explicit seeds, comma separated")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    parser.add_argument("--baselines", default=None, help="comma-separated (default: the recipe's own set)")
    parser.add_argument("--dataset", default=None, help="override the dataset, e.g. mnist-subset")
    parser.add_argument("--data-dir", default=None, help="root holding mnist/ and cifar10/")
    parser.add_argument("--download", action="store_true", help="download missing datasets")
    parser.add_argument("--train-limit", type=int, default=None, help="use the first N training examples")
    parser.add_argument("--test-limit", type=int, default=None, help="use the first N test examples")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--deterministic", action="store_true", help="deterministic kernels")
    parser.add_argument("--db", default=DEFAULT_DB, help="SQLite results file")
    parser.add_argument("--out", default=DEFAULT_OUT, help="report directory")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--init-gain", choices=["default", "computed"], default="default",
                        help="computed: weights N(0, gain²/fan_in) with the activation's variance-preserving gain")


def _bad(message: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(message)


def validate_eval_args(args: argparse.Namespace, params: dict[str, float]) -> tuple[int | list[int], list[str] | None]:
    """Every ``actsym eval`` input checked before anything is loaded, trained or created: a one-line error
    (exit 2) names the bad value. Returns (seeds, baselines)."""
    seeds: int | list[int] = args.seeds
    if args.seed_list:
        try:
            seeds = [int(s) for s in args.seed_list.split(",") if s.strip()]
        except ValueError:
            raise _bad(f"--seed-list expects comma-separated integers, got {args.seed_list!r}") from None
        if not seeds or any(s < 0 for s in seeds):
            raise _bad(f"--seed-list expects non-negative integers, got {args.seed_list!r}")
    elif args.seeds < 1:
        raise _bad(f"--seeds must be at least 1, got {args.seeds}")
    for flag, value in (("--epochs", args.epochs), ("--train-limit", args.train_limit),
                        ("--test-limit", args.test_limit), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise _bad(f"{flag} must be at least 1, got {value}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise _bad("--device cuda: no CUDA device is available to this PyTorch build (use --device cpu or auto)")
    from .data import DATASET_NAMES

    if args.dataset is not None and args.dataset not in DATASET_NAMES:
        raise _bad(f"unknown --dataset {args.dataset!r}; choose one of {', '.join(DATASET_NAMES)}")
    db = Path(args.db)
    if db.exists() and not db.is_file():
        raise _bad(f"--db {db} is not a file")
    rec = recipe_registry.get(args.recipe)
    try:
        settings = recipe_registry.resolve_settings(rec, args.variant, _sets(args.overrides), args.epochs)
    except (ValueError, TypeError) as err:
        raise _bad(f"--set: {str(err).splitlines()[0]}") from None
    check_settings(settings)
    limit = args.train_limit
    if limit is not None and settings.get("drop_last") and limit < int(settings["batch_size"]):
        raise _bad(f"--train-limit {limit} is smaller than one batch ({settings['batch_size']}): no training step")
    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()] if args.baselines else None
    # unknown names and bad expressions fail here, before the data loads
    names = baselines if baselines is not None else list(getattr(rec, "BASELINES", []))
    handles = [resolve(args.activation, params)] + [resolve(name) for name in names]
    if getattr(args, "init_gain", "default") == "computed":
        for h in handles:
            if h.activation is None:
                raise _bad(f"--init-gain computed needs a symbolic activation; {h.name!r} has none")
    return seeds, baselines


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


def cmd_eval(args: argparse.Namespace) -> int:
    from actsym.cli import parse_params

    params = parse_params(args.param)
    seeds, baselines = validate_eval_args(args, params)
    paths = run_eval(args.activation, params, recipe=args.recipe, seeds=seeds, epochs=args.epochs,
                     baselines=baselines, data_dir=args.data_dir, device=args.device, db=args.db, out=args.out,
                     quiet=args.quiet, deterministic=args.deterministic, dataset=args.dataset,
                     train_limit=args.train_limit, test_limit=args.test_limit, variant=args.variant,
                     overrides=_sets(args.overrides), threads=args.threads, download=args.download,
                     init_gain=args.init_gain)
    print(f"report: {paths['markdown']}\n        {paths['html']}\nresults: {paths['db']}")
    return 0


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``actsym report``."""
    parser.add_argument("--db", default=DEFAULT_DB, help="SQLite results file")
    parser.add_argument("--out", default=DEFAULT_OUT, help="report directory")
    parser.add_argument("--study", default=None, help="study id (default: the most recently updated)")
    parser.add_argument("--recipe", default=None, help="pick the latest study of this recipe")
    parser.add_argument("--candidate", default=None, help="activation compared against the others")
    parser.add_argument("--list", action="store_true", help="list the studies in the database and exit")


def cmd_report(args: argparse.Namespace) -> int:
    if not Path(args.db).exists():
        print(f"no results database at {args.db}", file=sys.stderr)
        return 1
    with Store(args.db) as store:
        studies = store.studies()
        if args.recipe:
            studies = [s for s in studies if s["recipe"] == args.recipe]
        if args.list:
            for s in studies:
                print(f"{s['study']}  {s['recipe']:<16} {s['variant'] or '':<10} runs={s['n']:<4} {s['updated']}")
            return 0
        study = args.study or (studies[-1]["study"] if studies else None)
        if study is None:
            print("no studies found", file=sys.stderr)
            return 1
        paths = write_report(store, study, args.out, candidate=args.candidate)
    print(f"report: {paths['markdown']}\n        {paths['html']}")
    return 0
