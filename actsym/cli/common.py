"""What several subcommands share: the activation arguments (``NAME|EXPR --name --param --fixed``)."""

from __future__ import annotations

import argparse

from actsym.resolve import UsageError, parse_params

__all__ = ["UsageError", "activation_from_args", "add_activation_arguments", "parse_params"]


def add_activation_arguments(p: argparse.ArgumentParser, positional_help: str) -> None:
    p.add_argument("activation", metavar="NAME|EXPR", help=positional_help)
    p.add_argument("--name", help="name for a new expression (default: custom)")
    p.add_argument("--param", action="append", metavar="K=V", help="parameter and initial value (repeatable)")
    p.add_argument("--fixed", action="append", default=[], metavar="K", help="make a parameter non-learnable")


def activation_from_args(args: argparse.Namespace):
    """The activation ``args`` name (:func:`actsym.resolve.resolve_activation` of its ``activation``,
    ``--name``, ``--param``, ``--fixed``; ``--no-verify`` when the command has it)."""
    from actsym.resolve import resolve_activation

    return resolve_activation(args.activation, name=args.name, params=parse_params(args.param),
                              fixed=args.fixed, verify=not getattr(args, "no_verify", False))
