"""A hard time budget for the symbolic stages (validation probe, derivation, rendering).

SymPy and mpmath can spend minutes inside one C-level operation (a big-integer power, ``evalf`` of a tower
of exponentials, ``as_set`` of a product of many-branch Piecewise); a signal handler only runs between
bytecodes, so it cannot interrupt them. :func:`run_budgeted` therefore runs a stage in a forked worker
process and kills the worker when the budget is spent. The worker reports the name of the stage it is in
(:func:`stage`), so the refusal says what ran out of time::

    actsym: error: derivation of df/db ran out of its 30 s budget

Budget: ``DEFAULT_BUDGET`` = 30 s **of CPU time** for all symbolic work of one activation together
(validation, derivation and rendering), overridable with the ``ACTSYM_BUDGET`` environment variable (seconds;
``0`` or ``inf`` means no limit) or a ``budget=`` argument. CPU time, not wall time: on a loaded machine (a CI
runner, two jobs on two cores) the same expression gets the same work done, and the generated code does not
depend on the load. A worker is also stopped after ``WALL_FACTOR`` times its budget of wall time (a process
starved of CPU, or one blocked). Where ``fork`` is unavailable (Windows) or ``ACTSYM_WORKER=0``, the stage runs
in-process under a ``SIGPROF`` (CPU-time) alarm instead (main thread on Unix), which cannot interrupt C-level
work.

An unexpected exception inside a stage (a SymPy ``PoleError``, ``OverflowError``, ...) becomes a one-line
:class:`StageFailed` that names the stage and the exception type, so a user never sees a traceback, and a
bug is still recognisable as one (the message ends with the innermost actsym frame; ``ACTSYM_DEBUG=1``
prints the whole traceback to stderr).
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import signal
import sys
import threading
import time
import traceback
import warnings

from actsym.parse import ExpressionError

DEFAULT_BUDGET = 30.0
#: A worker is killed after this many times its CPU budget of wall time too.
WALL_FACTOR = 4.0

#: In a worker: the connection stage names and the result go through (None in the parent process).
_CHANNEL = None
#: The innermost stage currently running in this process (for in-process timeouts and failure messages).
_STAGES: list[str] = []
#: Where :func:`deliver` puts values in this process (one list per active in-process run_budgeted).
_SINKS: list[list] = []


class BudgetExceeded(ExpressionError):
    """A symbolic stage ran past the time budget (one line, names the stage)."""


class StageFailed(ExpressionError):
    """A symbolic stage raised an unexpected exception (one line: stage, exception type, message)."""


class _InProcessTimeout(BaseException):
    """Raised by the fallback SIGPROF budget (BaseException: no ``except Exception`` swallows it)."""


def cpu_clock() -> float:
    """CPU seconds (user + system) of this process and of its children that have been waited for: what a
    budget counts (a worker's time is counted once it has finished)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _child_cpu(pid: int) -> float | None:
    """CPU seconds a running child has used so far (itself and its finished children; Linux ``/proc``),
    or None where that cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime
    except (OSError, ValueError, IndexError):
        return None


def budget_seconds(budget: float | None = None) -> float:
    """The budget in seconds: ``budget`` if given, else ``ACTSYM_BUDGET``, else ``DEFAULT_BUDGET``.

    ``math.inf`` means no limit."""
    if budget is None:
        text = os.environ.get("ACTSYM_BUDGET", "").strip()
        if not text:
            return DEFAULT_BUDGET
        try:
            budget = float(text)
        except ValueError:
            raise ExpressionError(f"ACTSYM_BUDGET must be a number of seconds, got {text!r}") from None
    if budget != budget or budget < 0:
        raise ExpressionError(f"time budget must be a non-negative number of seconds, got {budget!r}")
    return math.inf if budget == 0 else float(budget)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    line = text[0] if text else ""
    return line if len(line) <= 200 else line[:197] + "..."


@contextlib.contextmanager
def stage(name: str):
    """Mark a symbolic stage: its name goes to the parent (for a timeout message), and an unexpected
    exception leaving it becomes :class:`StageFailed` naming the stage and the exception type."""
    _STAGES.append(name)
    _report(name)
    try:
        yield
    except (ExpressionError, _InProcessTimeout, KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except Exception as e:  # noqa: BLE001 - the stage boundary: one line for the user, type kept for bugs
        if os.environ.get("ACTSYM_DEBUG"):
            traceback.print_exc()
        if isinstance(e, RecursionError):
            text = "expression too deeply nested (RecursionError)"
        elif isinstance(e, MemoryError):
            text = "out of memory (MemoryError)"
        else:
            text = f"{type(e).__name__}: {_one_line(e)}"
        raise StageFailed(f"{name} failed: {text}{_where(e)}") from None
    finally:
        _STAGES.pop()
        if _STAGES:
            _report(_STAGES[-1])


def _where(e: BaseException) -> str:
    """`` (at actsym/derive.py:123)``: the innermost actsym frame of a traceback, for bug reports."""
    here = os.path.dirname(os.path.abspath(__file__))
    frames = [
        f
        for f in traceback.extract_tb(e.__traceback__)
        if os.path.abspath(f.filename).startswith(here) and os.path.abspath(f.filename) != os.path.abspath(__file__)
    ]
    if not frames:
        return ""
    rel = os.path.relpath(frames[-1].filename, os.path.dirname(here))
    return f" (at {rel}:{frames[-1].lineno}; ACTSYM_DEBUG=1 prints the traceback)"


def current_stage() -> str | None:
    return _STAGES[-1] if _STAGES else None


def _report(name: str) -> None:
    if _CHANNEL is not None:
        with contextlib.suppress(OSError, ValueError):
            _CHANNEL.send(("stage", name))


def in_worker() -> bool:
    return _CHANNEL is not None


def _fork_available() -> bool:
    return hasattr(os, "fork") and os.environ.get("ACTSYM_WORKER", "1") != "0"


def run_budgeted(fn, *args, stage_name: str, seconds: float | None = None, total: float | None = None,
                 partial: list | None = None):
    """``fn(*args)`` under a hard deadline of ``seconds`` (default :func:`budget_seconds`; what is left of an
    activation's budget when earlier stages spent some of it; ``<= 0`` refuses at once).

    Returns ``(result, cpu_seconds_spent)``. The result must pickle. Raises :class:`BudgetExceeded` naming the
    stage that was running when time ran out, :class:`StageFailed` for an unexpected exception (or a
    worker that died), and re-raises :class:`ExpressionError` from ``fn`` as is. ``total`` is the whole
    budget ``seconds`` is what is left of (for the message; default ``seconds``). Values ``fn`` passes to
    :func:`deliver` are appended to ``partial`` as they arrive, so they survive a later timeout or failure."""
    if seconds is None:
        seconds = budget_seconds()
    total = seconds if total is None else total
    if seconds <= 0:
        raise _out_of_time(stage_name, total)
    start = cpu_clock()
    sink = [] if partial is None else partial
    _SINKS.append(sink)
    try:
        if in_worker() or not _fork_available():
            result = _run_in_process(fn, args, stage_name, seconds, total)
        else:
            result = _run_in_worker(fn, args, stage_name, seconds, total, sink)
    finally:
        _SINKS.pop()
    return result, cpu_clock() - start


def run_hard(fn, *args, seconds: float, stage_name: str):
    """``fn(*args)`` killed after ``seconds`` even inside a budget worker (a search with its own soft
    deadline that must never outlast it: an alarm swallowed by an ``except Exception`` deep in SymPy, or a
    C-level big-number operation, would otherwise spend the whole activation's budget). Runs in a forked
    child where fork is available (nested forks are fine), else in-process. Returns the result (it must
    pickle); raises :class:`BudgetExceeded` when the time ran out, as :func:`run_budgeted` does."""
    if seconds <= 0:
        raise _out_of_time(stage_name, seconds)
    if not _fork_available() or not math.isfinite(seconds):
        with stage(stage_name):
            return fn(*args)
    return _run_in_worker(fn, args, stage_name, seconds, seconds, [])  # the child reports to us only


def deliver(value) -> None:
    """Hand ``value`` to the caller of :func:`run_budgeted` now (its ``partial`` list), before ``fn`` returns:
    a derivation is kept even when rendering the module after it runs out of time."""
    if _CHANNEL is not None and not _SINKS:
        _CHANNEL.send(("partial", value))
    elif _SINKS:
        _SINKS[-1].append(value)


def _out_of_time(name: str, total: float) -> BudgetExceeded:
    limit = f"{total:.3g}" if total < 10 else f"{total:.0f}"
    return BudgetExceeded(f"{name} ran out of its {limit} s budget (ACTSYM_BUDGET sets it)")


def in_finalizer(frame) -> bool:
    """True in a weakref callback/finalizer or a __del__: garbage collection runs them at any point, and an
    exception raised there by an alarm is printed ("Exception ignored in ...") and lost. An alarm handler
    re-arms itself for a moment later instead."""
    code = frame.f_code if frame is not None else None
    return code is not None and (code.co_name == "__del__" or code.co_filename.endswith("weakref.py"))


def _run_in_process(fn, args, stage_name, seconds, total):
    usable = (
        math.isfinite(seconds)
        and not in_worker()  # a worker is already under its parent's hard deadline
        and hasattr(signal, "SIGPROF")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        with stage(stage_name):
            return fn(*args)
    seen: list[str | None] = []

    def handler(signum, frame):
        if in_finalizer(frame):
            signal.setitimer(signal.ITIMER_PROF, 1e-3)
            return
        seen.append(current_stage())
        signal.setitimer(signal.ITIMER_PROF, 0.1)  # again unless the stage is left by then
        raise _InProcessTimeout

    old = signal.signal(signal.SIGPROF, handler)
    signal.setitimer(signal.ITIMER_PROF, max(seconds, 1e-3))
    try:
        with stage(stage_name):
            return fn(*args)
    except _InProcessTimeout:
        raise _out_of_time((seen[0] if seen else None) or stage_name, total) from None
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)


def _run_in_worker(fn, args, stage_name, seconds, total, sink):
    from multiprocessing import Pipe

    reader, writer = Pipe(duplex=False)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded process": the child runs no threads
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child (coverage does not follow os._exit)
        _worker_main(writer, fn, args, stage_name)
    writer.close()
    last = stage_name
    started = time.monotonic()
    wall_deadline = started + WALL_FACTOR * seconds
    message = None
    try:
        while True:
            used = _child_cpu(pid)
            if used is None:  # no /proc: wall time
                used = time.monotonic() - started
            left = min(seconds - used, wall_deadline - time.monotonic())
            if left <= 0:
                break
            if not reader.poll(min(left, 0.25)):
                continue
            try:
                kind, payload = reader.recv()
            except (EOFError, OSError):
                message = ("died", None)
                break
            if kind == "stage":
                last = payload
                continue
            if kind == "partial":
                sink.append(payload)
                continue
            message = (kind, payload)
            break
    finally:
        reader.close()
        if message is None or message[0] == "died":
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    if message is None:
        raise _out_of_time(last, total)
    kind, payload = message
    if kind == "ok":
        return payload
    if kind == "error":
        raise payload
    if kind == "error-text":
        cls_name, text = payload
        raise StageFailed(f"{last} failed: {cls_name}: {text}")
    code = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status
    why = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
    raise StageFailed(f"{last} failed: the worker process died ({why})")


def _single_threaded_torch():  # pragma: no cover - child process
    """A forked child must not enter the parent's intra-op thread pool (OpenMP is not fork-safe: the first
    parallel region waits for threads that do not exist in the child); stages run small tensors anyway.
    What torch's DataLoader workers do too."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def _worker_main(writer, fn, args, stage_name):  # pragma: no cover - child process
    global _CHANNEL
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # the parent handles Ctrl-C and kills us
        _CHANNEL = writer
        _SINKS.clear()  # the parent's lists: values go through the pipe now
        _single_threaded_torch()
        try:
            with stage(stage_name):
                result = fn(*args)
            message = ("ok", result)
        except ExpressionError as e:
            message = ("error", e)
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            message = ("error-text", (type(e).__name__, _one_line(e)))
        try:
            data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:  # noqa: BLE001 - an unpicklable result is a bug: report it by name
            kind = "the result" if message[0] == "ok" else "an exception"
            data = pickle.dumps(("error-text", (type(e).__name__, f"{kind} could not be sent back: {_one_line(e)}")))
        writer.send_bytes(data)
        writer.close()
    except BaseException:  # noqa: BLE001
        code = 1
    finally:
        os._exit(code)
