"""Long grammar-fuzzing runs against the independent oracle (actsym.verify).

    python tools/fuzz.py --minutes 10 [--seed 1] [--out tests/corpus/regressions.json] [--no-shrink]
    python tools/fuzz.py --minutes 600 --count 10000 --no-shrink --log fuzz.jsonl   # the 10,000-expression run

Random activation expressions come from the Hypothesis strategies in ``tests/fuzz_grammar.py`` (the same ones
the CI run uses); each ends ok, refused (a clean one-line ExpressionError, by stage), wrong (a path disagrees
with the oracle) or crashed (any other exception). A failure is shrunk by Hypothesis; the fuzzing then goes
on with the next seed until the time is up. The smallest case of every failure class is appended (with a
note) to the regression corpus that ``tests/test_fuzz.py`` replays. Prints a progress bar and a summary.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import fuzz_grammar as fg  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from tqdm import tqdm  # noqa: E402


def signature(outcome) -> str:
    """A failure class: status, stage and the message with numbers and names blurred."""
    msg = re.sub(r"\b[a-z_]\w*=[^,:)]*", "", outcome.message)
    msg = re.sub(r"[-+]?\d[\d.e+-]*", "#", msg)
    return f"{outcome.status}|{outcome.stage}|{msg[:90]}"


#: refusals of input that is wrong by design, not of a valid expression: a parameter named like a module
#: option, a declared parameter the expression does not use, an expression without x, ...
INVALID_INPUT = ("is an option of generated modules", "do not appear in the expression", "does not depend on x",
                 "is a Python keyword", "is reserved", "shadows")
#: "ordinary" expressions (issue 9: refusals of valid, ordinary ones stay below 2 %)
ORDINARY_DEPTH = 6
ORDINARY_EXPONENT = 10


def _tree_depth(e) -> int:
    return 1 + max((_tree_depth(a) for a in e.args), default=0) if e.args else 0


def ordinary(case) -> bool:
    """Nesting depth <= 6 (of the SymPy tree as parsed) and no numeric power beyond 10 in magnitude."""
    import sympy as sp

    from actsym.parse import parse_expression

    try:
        e = parse_expression(case["expr"], params=set(case["params"]))
    except Exception:  # noqa: BLE001 - not parseable: not an ordinary valid expression
        return False
    if _tree_depth(e) > ORDINARY_DEPTH:
        return False
    return not any(p.exp.is_Number and abs(float(p.exp)) > ORDINARY_EXPONENT for p in e.atoms(sp.Pow))


def refusal_kind(case, outcome) -> str:
    """'invalid input' (refused by design), 'ordinary' (a valid, ordinary expression refused) or 'hard'."""
    if any(k in outcome.message for k in INVALID_INPUT):
        return "invalid input"
    return "ordinary" if ordinary(case) else "hard"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(fg.CORPUS), help="regression corpus to append failures to")
    ap.add_argument("--budget", type=float, default=20.0, help="symbolic time budget per expression (s)")
    ap.add_argument("--max-depth", type=int, default=6)
    ap.add_argument("--no-shrink", action="store_true", help="record failures as found (faster)")
    ap.add_argument("--no-extra", action="store_true", help="skip vmap(grad)/gradcheck/d2f paths")
    ap.add_argument("--count", type=int, default=0, help="stop after this many distinct expressions (0: no limit)")
    ap.add_argument("--log", default="", help="append every outcome as one JSON line to this file")
    args = ap.parse_args(argv)

    end = time.monotonic() + 60 * args.minutes
    outcomes: list = []
    smallest: dict[str, tuple[dict, object]] = {}
    bar = tqdm(total=int(60 * args.minutes), unit="s", bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} s {postfix}")
    last = [time.monotonic()]
    seen: set = set()
    kinds: dict[str, int] = {}

    class TimeUp(Exception):
        pass

    log = open(args.log, "a") if args.log else None  # noqa: SIM115 - open for the whole run

    def record(case, outcome):
        key = (case["name"], case["expr"], tuple(sorted(case["params"].items())))
        if key not in seen:
            seen.add(key)
            outcomes.append(outcome)
            kind = refusal_kind(case, outcome) if outcome.status == "refused" else ""
            if kind:
                kinds[kind] = kinds.get(kind, 0) + 1
            if kind != "invalid input" and ordinary(case):
                kinds["valid ordinary"] = kinds.get("valid ordinary", 0) + 1
            if log:
                log.write(json.dumps({**case, "status": outcome.status, "stage": outcome.stage, "kind": kind,
                                      "message": outcome.message, "seconds": round(outcome.seconds, 3)}) + "\n")
                log.flush()
        if outcome.status in ("wrong", "crashed"):
            sig = signature(outcome)
            best = smallest.get(sig)
            if best is None or len(case["expr"]) < len(best[0]["expr"]):
                smallest[sig] = (case, outcome)
        now = time.monotonic()
        bar.update(int(now - last[0]))
        last[0] += int(now - last[0])
        counts = {}
        for o in outcomes:
            counts[o.status] = counts.get(o.status, 0) + 1
        bar.set_postfix_str(" ".join(f"{k}={v}" for k, v in sorted(counts.items())) + f" classes={len(smallest)}")

    phases = [Phase.generate] if args.no_shrink else [Phase.generate, Phase.shrink]
    run_seed = args.seed
    while time.monotonic() < end:

        @seed(run_seed)
        @settings(max_examples=10**6, deadline=None, database=None, phases=phases,
                  suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
        @given(fg.activations(max_depth=args.max_depth))
        def fuzz(case):
            if time.monotonic() > end or (args.count and len(outcomes) >= args.count):
                raise TimeUp
            outcome = fg.run_case(case, budget=args.budget, extra=not args.no_extra)
            record(case, outcome)
            if outcome.status in ("wrong", "crashed") and not args.no_shrink:
                raise AssertionError(signature(outcome))

        try:
            fuzz()
        except TimeUp:
            break
        except BaseException as e:  # noqa: BLE001 - a found (and shrunk) failure, or Hypothesis giving up on one
            if isinstance(e, KeyboardInterrupt):
                break
        run_seed += 1
    bar.close()

    print(fg.summarize(outcomes))
    if outcomes:
        n_ord = kinds.get("valid ordinary", 0)
        print(f"refusals: {kinds.get('invalid input', 0)} of invalid input (by design), {kinds.get('hard', 0)} of "
              f"deep or huge-exponent expressions, {kinds.get('ordinary', 0)} of valid ordinary ones "
              f"({100 * kinds.get('ordinary', 0) / max(n_ord, 1):.2f} % of the {n_ord} valid ordinary expressions)")
    refusals: dict[str, int] = {}
    for o in outcomes:
        if o.status == "refused":
            k = re.sub(r"[-+]?\d[\d.e+-]*", "#", o.message)[:100]
            refusals[k] = refusals.get(k, 0) + 1
    if refusals:
        print("refusals:")
        for k, v in sorted(refusals.items(), key=lambda kv: -kv[1])[:15]:
            print(f"  {v:4d}  {k}")
    if smallest:
        print(f"{len(smallest)} failure classes (smallest case of each):")
        for _sig, (case, o) in sorted(smallest.items(), key=lambda kv: kv[0]):
            print(f"  {o.line()}\n      {case}")
        added = fg.append_corpus(
            [{**({"name": c["name"]} if c["name"] != "fz" else {}), "expr": c["expr"], "params": c["params"],
              "note": f"tools/fuzz.py --seed {args.seed}: {o.line()[:240]}"} for c, o in smallest.values()],
            Path(args.out))
        print(f"appended {added} new case(s) to {args.out}")
    return 1 if smallest else 0


if __name__ == "__main__":
    sys.exit(main())
