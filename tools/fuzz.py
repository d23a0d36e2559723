"""Long grammar-fuzzing runs against the independent oracle (actsym.verify).

    python tools/fuzz.py --minutes 10 [--seed 1] [--out tests/corpus/regressions.json] [--no-shrink]

Random activation expressions come from the Hypothesis strategies in ``tests/fuzz_grammar.py`` (the same ones
the CI run uses); each ends ok, refused (a clean one-line ExpressionError, by stage), wrong (a path disagrees
with the oracle) or crashed (any other exception). A failure is shrunk by Hypothesis; the fuzzing then goes
on with the next seed until the time is up. The smallest case of every failure class is appended (with a
note) to the regression corpus that ``tests/test_fuzz.py`` replays. Prints a progress bar and a summary.
"""

from __future__ import annotations

import argparse
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(fg.CORPUS), help="regression corpus to append failures to")
    ap.add_argument("--budget", type=float, default=20.0, help="symbolic time budget per expression (s)")
    ap.add_argument("--max-depth", type=int, default=6)
    ap.add_argument("--no-shrink", action="store_true", help="record failures as found (faster)")
    ap.add_argument("--no-extra", action="store_true", help="skip vmap(grad)/gradcheck/d2f paths")
    args = ap.parse_args(argv)

    end = time.monotonic() + 60 * args.minutes
    outcomes: list = []
    smallest: dict[str, tuple[dict, object]] = {}
    bar = tqdm(total=int(60 * args.minutes), unit="s", bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} s {postfix}")
    last = [time.monotonic()]
    seen: set = set()

    class TimeUp(Exception):
        pass

    def record(case, outcome):
        key = (case["name"], case["expr"], tuple(sorted(case["params"].items())))
        if key not in seen:
            seen.add(key)
            outcomes.append(outcome)
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
            if time.monotonic() > end:
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
