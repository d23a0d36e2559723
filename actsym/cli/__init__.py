"""The ``actsym`` command line (also ``python cli.py`` and ``python -m actsym``).

Bad input (an expression the parser rejects, an unknown name, a bad ``--param``) prints one line to stderr
and exits with status 2; nothing is written.

Every subcommand is a pair ``add_<name>_arguments(parser)`` / ``cmd_<name>(args)`` in one module of this
package (:mod:`.symbolic`: list, show, codegen, check; :mod:`.harness`: eval, report; :mod:`.analysis`:
plot, signal, toy2d). Those modules import the library only inside their functions, and only the chosen
subcommand's arguments are built, so ``actsym --help`` imports neither torch nor SymPy. The library never
imports this package.
"""

from __future__ import annotations

import argparse
import sys

from actsym.cli import analysis, harness, symbolic
from actsym.cli.common import UsageError, add_activation_arguments, parse_params  # noqa: F401 - re-exported

#: name -> (module holding add_<name>_arguments / cmd_<name>, one-line help), in the order --help lists them
COMMANDS = {
    "list": (symbolic, "list the built-in activations"),
    "show": (symbolic, "expression, derivatives, LaTeX, continuity and hazards"),
    "codegen": (symbolic, "generate PyTorch modules into generated/"),
    "check": (symbolic, "run the property suite on an activation"),
    "eval": (harness, "train and compare an activation with a recipe's baselines"),
    "report": (harness, "write reports (Markdown/HTML, CSV, JSON, LaTeX) from a results database"),
    "plot": (analysis, "plot f, f', f'' (and df/dparam) with branch points marked"),
    "signal": (analysis, "Gaussian moments, init gain and variance-map fixed point"),
    "toy2d": (analysis, "2-D toy study: train narrow MLPs and animate how layers deform the plane"),
}

_ALL = object()


def build_parser(command=_ALL) -> argparse.ArgumentParser:
    """The parser; every subcommand's arguments by default, only ``command``'s when it is given (a name, or
    None for none: what ``main`` does, so that ``--help`` imports nothing heavy)."""
    from actsym import __version__

    parser = argparse.ArgumentParser(prog="actsym", description="Symbolic activation-function designer for PyTorch.")
    parser.add_argument("--version", action="version", version=f"actsym {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if command is _ALL or command == name:
            getattr(module, f"add_{name}_arguments")(p)
            p.set_defaults(func=getattr(module, f"cmd_{name}"))
    return parser


def _command(argv: list[str]) -> str | None:
    """The subcommand named on the command line (the first word that is not an option), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input (one line on stderr, exit 2), not a bug. Only modules already imported
    are asked (a handler that raises one of their errors has imported them)."""
    errors: list[type[BaseException]] = [UsageError, KeyError, argparse.ArgumentTypeError]
    for module, name in (("actsym.parse", "ExpressionError"), ("actsym.codegen.writer", "UnsafeWrite"),
                         ("actsym.harness.download", "DataError"), ("actsym.harness.store", "StoreError")):
        mod = sys.modules.get(module)
        if mod is not None:
            errors.append(getattr(mod, name))
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command(argv))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("actsym: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `actsym show elu | head -1`: the reader left; not an error of ours
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as e:
        if not isinstance(e, _user_errors()):
            raise
        msg = str(e.args[0] if e.args else e).strip().splitlines()
        print(f"actsym: error: {msg[0] if msg else type(e).__name__}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
