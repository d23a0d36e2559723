"""``actsym eval`` and ``actsym report``: the evaluation harness (:mod:`actsym.harness`) on the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from actsym.cli.common import parse_params

# ------------------------------------------------------------------------------------------------------
# eval
# ------------------------------------------------------------------------------------------------------


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``actsym eval``."""
    from actsym.harness import recipes as recipe_registry
    from actsym.harness.evaluate import DEFAULT_DB, DEFAULT_OUT

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
    parser.add_argument("--quiet", action="store_true",
                        help="no progress output (default: bars on a terminal, one line per epoch otherwise)")
    parser.add_argument("--reference", type=float, default=None, metavar="PCT",
                        help="the candidate's published test accuracy (%%): shown next to the measured mean ± CI, "
                             "inside or outside it")
    parser.add_argument("--reference-metric", choices=["final", "best"], default=None,
                        help="which accuracy --reference is (default: the kind the recipe's published numbers are)")
    parser.add_argument("--init-gain", choices=["default", "computed"], default="default",
                        help="computed: weights N(0, gain²/fan_in) with the activation's variance-preserving gain")


def parse_sets(items: Sequence[str] | None) -> dict[str, str]:
    """``--set KEY=VALUE`` items -> {key: value} (the recipe converts the values)."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _bad(message: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(message)


def validate_eval_args(args: argparse.Namespace, params: dict[str, float]) -> tuple[int | list[int], list[str] | None]:
    """Every ``actsym eval`` input checked before anything is loaded, trained or created: a one-line error
    (exit 2) names the bad value. Returns (seeds, baselines)."""
    import torch

    from actsym.harness import recipes as recipe_registry
    from actsym.harness.activations import resolve
    from actsym.harness.data import DATASET_NAMES
    from actsym.harness.evaluate import check_reference, check_settings

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
    if args.dataset is not None and args.dataset not in DATASET_NAMES:
        raise _bad(f"unknown --dataset {args.dataset!r}; choose one of {', '.join(DATASET_NAMES)}")
    db = Path(args.db)
    if db.exists() and not db.is_file():
        raise _bad(f"--db {db} is not a file")
    rec = recipe_registry.get(args.recipe)
    try:
        settings = recipe_registry.resolve_settings(rec, args.variant, parse_sets(args.overrides), args.epochs)
    except (ValueError, TypeError) as err:
        raise _bad(f"--set: {str(err).splitlines()[0]}") from None
    check_settings(settings)
    check_reference(getattr(args, "reference", None), getattr(args, "reference_metric", None))
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


def print_results(paths: dict[str, Any]) -> None:
    """The compact results table (when the report has one), then where the files are."""
    from actsym.harness.report import console_table

    if paths.get("summary"):
        print(console_table(paths["summary"]))
    names = {"markdown": "report", "html": "", "csv": "csv", "json": "json", "latex": "latex", "db": "results"}
    for key, label in names.items():
        if paths.get(key) is not None:
            print(f"{label + ':' if label else '':<8} {paths[key]}")
    if paths.get("epochs"):
        print(f"{'epochs:':<8} {paths['epochs'][0].parent} (one CSV per run)")
    if paths.get("tensorboard") is not None:
        print(f"{'tb:':<8} {paths['tensorboard']} (tensorboard --logdir ...)")


def cmd_eval(args: argparse.Namespace) -> int:
    from actsym.harness.evaluate import run_eval

    params = parse_params(args.param)
    seeds, baselines = validate_eval_args(args, params)
    paths = run_eval(args.activation, params, recipe=args.recipe, seeds=seeds, epochs=args.epochs,
                     baselines=baselines, data_dir=args.data_dir, device=args.device, db=args.db, out=args.out,
                     quiet=args.quiet, deterministic=args.deterministic, dataset=args.dataset,
                     train_limit=args.train_limit, test_limit=args.test_limit, variant=args.variant,
                     overrides=parse_sets(args.overrides), threads=args.threads, download=args.download,
                     init_gain=args.init_gain, reference=args.reference, reference_metric=args.reference_metric)
    print_results(paths)
    return 0


# ------------------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------------------


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``actsym report``."""
    from actsym.harness.evaluate import DEFAULT_DB, DEFAULT_OUT
    from actsym.harness.report import FORMATS

    parser.add_argument("--db", default=DEFAULT_DB, help="SQLite results file")
    parser.add_argument("--out", default=DEFAULT_OUT, help="report directory")
    parser.add_argument("--study", default=None, help="study id (default: the most recently updated)")
    parser.add_argument("--recipe", default=None, help="pick the latest study of this recipe")
    parser.add_argument("--candidate", default=None, help="activation compared against the others")
    parser.add_argument("--format", action="append", choices=FORMATS, dest="formats",
                        help="markdown (report.md + report.html, the default), csv, json or latex (results.csv, "
                             "results.json, results.tex: the results table as data); repeatable")
    parser.add_argument("--list", action="store_true", help="list the studies in the database and exit")


def cmd_report(args: argparse.Namespace) -> int:
    from actsym.harness.report import write_report
    from actsym.harness.store import Store

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
        formats = tuple(dict.fromkeys(getattr(args, "formats", None) or ["markdown"]))
        paths = write_report(store, study, args.out, candidate=args.candidate, formats=formats)
    paths.pop("summary", None)  # the table is for eval; report lists the files
    print_results(paths)
    return 0
