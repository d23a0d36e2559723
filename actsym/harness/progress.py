"""Progress output of an evaluation: tqdm bars on a terminal; one plain line per epoch (and per run) when
stderr is not a terminal (CI logs, ``2> log.txt``, ``nohup``), so logs hold no carriage returns or escape
codes; nothing with ``quiet``."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any


def stderr_is_terminal() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


class Progress:
    """``bars``: tqdm bars (a terminal); ``lines``: :meth:`line` writes; neither with ``quiet``."""

    def __init__(self, quiet: bool = False, terminal: bool | None = None):
        terminal = stderr_is_terminal() if terminal is None else terminal
        self.bars = not quiet and terminal
        self.lines = not quiet and not terminal

    def bar(self, iterable: Iterable, **kwargs: Any):
        from tqdm.auto import tqdm

        return tqdm(iterable, disable=not self.bars, **kwargs)

    def line(self, message: str) -> None:
        if self.lines:
            print(message, file=sys.stderr, flush=True)
