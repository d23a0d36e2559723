"""The ``actsym`` command line (also ``python cli.py``).

Bad input (an expression the parser rejects, an unknown name, a bad ``--param``) prints one line to stderr
and exits with status 2; nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from actsym.parse import ExpressionError


class UsageError(Exception):
    """A one-line user error (exit code 2)."""


# ------------------------------------------------------------------------------------------------------
# shared argument handling
# ------------------------------------------------------------------------------------------------------


def parse_params(items: list[str] | None) -> dict[str, float]:
    """``--param NAME=VALUE`` items -> {name: float}; a bad item is a one-line UsageError."""
    out: dict[str, float] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param expects NAME=VALUE, got {item!r}")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise UsageError(f"--param {key}: {value!r} is not a number") from None
    return out


def add_activation_arguments(p: argparse.ArgumentParser, positional_help: str) -> None:
    p.add_argument("activation", metavar="NAME|EXPR", help=positional_help)
    p.add_argument("--name", help="name for a new expression (default: custom)")
    p.add_argument("--param", action="append", metavar="K=V", help="parameter and initial value (repeatable)")
    p.add_argument("--fixed", action="append", default=[], metavar="K", help="make a parameter non-learnable")


def resolve_activation(args):
    """A catalog or corpus name, or an expression defined on the fly from --name/--param/--fixed.

    A catalog or corpus name with --param/--fixed/--name is its formula with those parameter values."""
    import actsym

    params = parse_params(args.param)
    text = args.activation
    verify = not getattr(args, "no_verify", False)  # self-check generated code (actsym.verify) when it is built
    if (text in actsym.names() or text in actsym.corpus_names()) and not params and not args.name and not args.fixed:
        return actsym.get(text)
    if text in actsym.names() or text in actsym.corpus_names():  # a named formula with other values/name
        base = actsym.get(text).spec
        merged = {k: (params[k] if k in params else v.init) for k, v in base.params.items()}
        merged.update({k: v for k, v in params.items() if k not in merged})  # unknown names: define refuses them
        fixed = {k for k, v in base.params.items() if not v.learnable} | set(args.fixed)
        return actsym.define(args.name or text, base.source, merged, fixed=tuple(sorted(fixed)),
                             title=base.title, reference=base.reference, verify=verify)
    if isinstance(text, str) and text.isidentifier() and text != "x":  # a name, and no expression: a typo?
        try:
            actsym.get(text)
        except KeyError as e:
            raise UsageError(e.args[0]) from None
    return actsym.define(args.name or "custom", text, params, fixed=tuple(args.fixed), verify=verify)


# ------------------------------------------------------------------------------------------------------
# subcommands
# ------------------------------------------------------------------------------------------------------


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


def cmd_show(args) -> int:
    import sympy as sp

    from actsym.properties import Settings, prop_continuity

    act = resolve_activation(args)
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
    if d.hazards:
        for h in d.hazards:
            print(f"  hazard      : {h['kind']} at {h['at']} on branch {h['branch']} when {h['when']}; safe range: {h['safe']}")
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
        act = resolve_activation(args)
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
        from actsym.harness.evaluate import run_eval

        paths = run_eval(acts[0], recipe=args.eval,
                         seeds=args.seeds, epochs=args.epochs, dataset=args.dataset, data_dir=args.data_dir)
        print(f"report: {paths['markdown']}\n        {paths['html']}\nresults: {paths['db']}")
    return 0


def cmd_check(args) -> int:
    from actsym.properties import PROPERTIES, Settings, run_suite

    unknown = [o for o in args.only or [] if o not in PROPERTIES]
    if unknown:
        raise UsageError(f"unknown property {unknown[0]!r}; choose from {', '.join(PROPERTIES)}")
    args.no_verify = True  # the property suite reports wrong code itself (the self-check would stop at the first)
    act = resolve_activation(args)
    report = run_suite(act, Settings(examples=args.examples, derandomize=not args.random), args.only)
    print(report.format(), end="")
    return 0 if report.passed else 1


# ------------------------------------------------------------------------------------------------------
# parser
# ------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from actsym import __version__

    parser = argparse.ArgumentParser(prog="actsym", description="Symbolic activation-function designer for PyTorch.")
    parser.add_argument("--version", action="version", version=f"actsym {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list the built-in activations")
    p.add_argument("--all", action="store_true", help="also list the literature corpus")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="expression, derivatives, LaTeX, continuity and hazards")
    add_activation_arguments(p, "catalog name or expression in x")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("codegen", help="generate PyTorch modules into generated/")
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
    p.set_defaults(func=cmd_codegen)

    p = sub.add_parser("check", help="run the property suite on an activation")
    add_activation_arguments(p, "catalog name or expression in x")
    p.add_argument("--examples", type=int, default=40, help="Hypothesis examples per property (default 40)")
    p.add_argument("--random", action="store_true", help="non-deterministic Hypothesis search")
    p.add_argument("--only", action="append", metavar="PROPERTY", help="run only these properties")
    p.set_defaults(func=cmd_check)

    _add_harness_commands(sub)
    _add_analysis_commands(sub)
    return parser


def _add_analysis_commands(sub) -> None:
    """``plot``, ``signal`` and ``toy2d``: their modules (matplotlib, scipy) are imported only when run."""
    import importlib

    commands = [
        ("plot", "actsym.viz.plots", "plot f, f', f'' (and df/dparam) with branch points marked"),
        ("signal", "actsym.analysis.signal", "Gaussian moments, init gain and variance-map fixed point"),
        ("toy2d", "actsym.viz.toy2d", "2-D toy study: train narrow MLPs and animate how layers deform the plane"),
    ]
    for name, module, help_text in commands:
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_text)
        getattr(mod, f"add_{name}_arguments")(p)
        p.set_defaults(func=getattr(mod, f"cmd_{name}"))


def _add_harness_commands(sub) -> None:
    """``eval`` and ``report`` come from the harness (imported lazily: it needs more dependencies)."""
    try:
        from actsym.harness import evaluate
    except ImportError:
        return
    p = sub.add_parser("eval", help="train and compare an activation with a recipe's baselines")
    evaluate.add_eval_arguments(p)
    p.set_defaults(func=evaluate.cmd_eval)
    p = sub.add_parser("report", help="write Markdown/HTML reports from a results database")
    evaluate.add_report_arguments(p)
    p.set_defaults(func=evaluate.cmd_report)


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input (one line on stderr, exit 2), not a bug."""
    from actsym.codegen.writer import UnsafeWrite

    errors: tuple[type[BaseException], ...] = (ExpressionError, UsageError, KeyError, argparse.ArgumentTypeError,
                                               UnsafeWrite)
    try:
        from actsym.harness.download import DataError
        from actsym.harness.store import StoreError

        errors += (DataError, StoreError)
    except ImportError:
        pass
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except _user_errors() as e:
        msg = str(e.args[0] if e.args else e).strip().splitlines()
        print(f"actsym: error: {msg[0] if msg else type(e).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("actsym: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `actsym show elu | head -1`: the reader left; not an error of ours
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
