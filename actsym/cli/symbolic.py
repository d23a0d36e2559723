"""``actsym list``, ``show``, ``codegen``, ``check``: the symbolic side (SymPy, code generation)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from actsym.cli.common import UsageError, activation_from_args, add_activation_arguments

# ------------------------------------------------------------------------------------------------------
# list
# ------------------------------------------------------------------------------------------------------


def add_list_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--all", action="store_true", help="also list the literature corpus")


def cmd_list(args) -> int:
    import actsym
    from actsym.catalog import CATALOG

    for name in actsym.names():
        entry = CATALOG[name]
        params = entry.get("params") or {}
        ps = f"  [{', '.join(params)}]" if params else ""
        print(f"{name:<12} {entry['class_name']:<12} {entry['expr']}{ps}")
    if getattr(args, "all", False):
        from actsym import corpus

        print(f"\nliterature corpus ({len(corpus.names())} entries, generated on first use):")
        for name in corpus.names():
            e = corpus.entry(name)
            params = e.get("params") or {}
            values = ", ".join(f"{k}={float(v['init']):g}" for k, v in params.items())
            ps = f"  [{values}]" if params else ""
            print(f"{name:<26} {e['expr']}{ps}")
    return 0


# ------------------------------------------------------------------------------------------------------
# show
# ------------------------------------------------------------------------------------------------------


def add_show_arguments(p: argparse.ArgumentParser) -> None:
    add_activation_arguments(p, "catalog name or expression in x")


def cmd_show(args) -> int:
    import sympy as sp

    from actsym.properties import Settings, prop_continuity

    act = activation_from_args(args)
    d = act.derivation
    print(f"{act.name}: {act.spec.title}")
    print(f"  f(x)        = {sp.sstr(d.f)}")
    for k, v in act.spec.params.items():
        print(f"  param {k:<5} = {v.init} ({'learnable' if v.learnable else 'fixed'})")
    print(f"  df/dx       = {sp.sstr(d.grads['x'])}")
    print(f"  d2f/dx2     = {sp.sstr(act.derivative('x', 2))}")
    for k in act.spec.params:
        print(f"  df/d{k:<7} = {sp.sstr(d.grads[k])}")
    print(f"  LaTeX       : {act.latex}")
    print(f"  continuity  : {_informational('continuity check', prop_continuity, act, Settings())}")
    for key, pts in d.removable.items():
        print(f"  limits      : {key} has a removable singularity at x = {pts} (evaluated by its Taylor series)")
    for key, at in d.param_removable.items():
        print(f"  limits      : {key} has a removable singularity at {', '.join(at)} (takes its limit there)")
    if d.hazards:
        from actsym.analysis.hazard_text import hazard_text

        for h in d.hazards:
            print(f"  hazard      : {hazard_text(h)}")
    else:
        print("  hazards     : none found for any parameter value")
    for line in d.checks:
        print(f"  verified    : {line}")
    from actsym.analysis.signal import signal_lines

    lines = _informational("signal analysis", signal_lines, act)
    for line in lines if isinstance(lines, list) else [f"signal      : {lines}"]:
        print(f"  {line}")
    return 0


def _informational(stage_name: str, fn, *args):
    """An informational part of ``show``: if it fails, its line says so (with the exception type), and the
    rest of the report still prints."""
    from actsym.budget import StageFailed, stage

    try:
        with stage(stage_name):
            return fn(*args)
    except StageFailed as e:
        return f"not computed ({e})"


# ------------------------------------------------------------------------------------------------------
# codegen
# ------------------------------------------------------------------------------------------------------


def add_codegen_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("activation", nargs="?", metavar="EXPR", help="expression in x (or a catalog name)")
    p.add_argument("--name", help="module name for the expression")
    p.add_argument("--param", action="append", metavar="K=V", help="parameter and initial value (repeatable)")
    p.add_argument("--fixed", action="append", default=[], metavar="K", help="make a parameter non-learnable")
    p.add_argument("--all", action="store_true", help="generate the whole catalog")
    p.add_argument("--check", action="store_true", help="fail (exit 1) if generated files are stale; write nothing")
    p.add_argument("--out", default="generated", help="output directory (default: generated)")
    p.add_argument("--eval", metavar="RECIPE", help="then evaluate the activation with this recipe (actsym eval)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the self-check of the generated code against the mpmath oracle (actsym.verify)")
    p.add_argument("--seeds", type=int, default=1, help="with --eval: paired seeds")
    p.add_argument("--epochs", type=int, default=None, help="with --eval: override the recipe's epochs")
    p.add_argument("--dataset", default=None, help="with --eval: dataset override, e.g. mnist-subset")
    p.add_argument("--data-dir", default=None, help="with --eval: root holding mnist/ and cifar10/")


def cmd_codegen(args) -> int:
    import actsym
    from actsym.codegen.writer import check_targets, planned_files, stale_files, write_all

    out = Path(args.out)
    if args.all:
        if args.activation:
            raise UsageError("give either an expression or --all, not both")
        acts = [actsym.get(n) for n in actsym.names()]
    else:
        if not args.activation:
            raise UsageError("give an expression (with --name) or --all")
        act = activation_from_args(args)
        if act.name in actsym.names() and act.source_hash != actsym.get(act.name).source_hash:
            raise UsageError(f"{act.name!r} is a built-in activation; choose another --name")
        if not args.no_verify:
            act.code  # noqa: B018 - builds the code, which self-checks it: VerificationFailed before anything is written
        acts = [act]
    # everything rendered before anything is written; the Triton sibling package only for the catalog (user
    # activations get their kernels generated on first use by backend="triton")
    files = planned_files(acts, out, with_init=True, triton=bool(args.all))
    if args.check:
        stale = stale_files(files)
        if stale:
            print(f"stale generated files (run: actsym codegen --all): {', '.join(map(str, stale))}", file=sys.stderr)
            return 1
        print(f"{len(files)} generated files are up to date")
        return 0
    check_targets(files, out)
    try:
        results = write_all(files)
    except OSError as err:
        raise UsageError(f"cannot write to {out}: {err.strerror or err}") from None
    for r in results:
        print(f"{'wrote    ' if r.changed else 'unchanged'} {r.path}")
    if args.eval:
        from actsym.cli.harness import print_results
        from actsym.harness.evaluate import run_eval

        paths = run_eval(acts[0], recipe=args.eval,
                         seeds=args.seeds, epochs=args.epochs, dataset=args.dataset, data_dir=args.data_dir)
        print_results(paths)
    return 0


# ------------------------------------------------------------------------------------------------------
# check
# ------------------------------------------------------------------------------------------------------


def add_check_arguments(p: argparse.ArgumentParser) -> None:
    add_activation_arguments(p, "catalog name or expression in x")
    p.add_argument("--examples", type=int, default=40, help="Hypothesis examples per property (default 40)")
    p.add_argument("--random", action="store_true", help="non-deterministic Hypothesis search")
    p.add_argument("--only", action="append", metavar="PROPERTY", help="run only these properties")


def cmd_check(args) -> int:
    from actsym.properties import PROPERTIES, Settings, run_suite

    unknown = [o for o in args.only or [] if o not in PROPERTIES]
    if unknown:
        raise UsageError(f"unknown property {unknown[0]!r}; choose from {', '.join(PROPERTIES)}")
    args.no_verify = True  # the property suite reports wrong code itself (the self-check would stop at the first)
    act = activation_from_args(args)
    report = run_suite(act, Settings(examples=args.examples, derandomize=not args.random), args.only)
    print(report.format(), end="")
    return 0 if report.passed else 1
