"""Fault probe: random expressions from the parser's whitelist through the real CLI (``actsym codegen``).

Each expression runs in a forked child with an outer kill deadline (budget + slack), so a stage that ignores
the budget shows up as a timeout instead of hanging the probe. Outcomes: ok, refused (exit 2, one line),
budget (a refusal that names the stage that ran out of time), traceback (an exception escaped ``main``),
stage-failed (a one-line refusal for an unexpected exception: a bug), timeout (killed by the outer deadline),
other (another exit status)::

    ACTSYM_BUDGET=10 python tools/probe_hostile.py --count 200 --seed 1 --out /tmp/probe.jsonl

``--repo DIR`` probes another checkout (e.g. a ``git worktree`` of an older commit) for before/after numbers.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import pickle
import random
import signal
import sys
import time
import traceback

UNARY = ["exp", "log", "log1p", "expm1", "sqrt", "sin", "cos", "tan", "tanh", "sinh", "cosh", "atan", "asinh",
         "erf", "erfc", "Abs", "sign", "Heaviside", "sigmoid", "softplus", "logsigmoid", "relu"]
PARAMS = ["a", "b", "alpha", "out", "t0"]
CONSTS = ["1", "2", "3", "0.5", "0.044715", "pi", "E", "sqrt(2/pi)", "1.702", "-1", "10"]


class Gen:
    def __init__(self, rng: random.Random, params: list[str]):
        self.rng = rng
        self.params = params

    def leaf(self) -> str:
        r = self.rng.random()
        if r < 0.55:
            return "x"
        if r < 0.75 and self.params:
            return self.rng.choice(self.params)
        return self.rng.choice(CONSTS)

    def cond(self, depth: int) -> str:
        lhs = self.rng.choice(["x", "x", f"x - {self.leaf()}", self.expr(depth - 1)])
        op = self.rng.choice(["<", "<=", ">", ">="])
        c = f"{lhs} {op} {self.rng.choice(['0', '1', '-1', '0.5'] + self.params)}"
        if self.rng.random() < 0.15:
            c = f"({c}) & (x {self.rng.choice(['<', '>'])} {self.rng.choice(['2', '-2'])})"
        return c

    def expr(self, depth: int) -> str:
        if depth <= 0 or self.rng.random() < 0.2:
            return self.leaf()
        r = self.rng.random()
        if r < 0.35:
            return f"{self.rng.choice(UNARY)}({self.expr(depth - 1)})"
        if r < 0.7:
            op = self.rng.choice(["+", "-", "*", "/", "*", "+"])
            return f"({self.expr(depth - 1)} {op} {self.expr(depth - 1)})"
        if r < 0.78:
            e = self.rng.choice(["2", "3", "-1", "0.5", "1/3", self.expr(depth - 1)])
            return f"({self.expr(depth - 1)})**({e})"
        if r < 0.88:
            f = self.rng.choice(["Max", "Min"])
            return f"{f}({self.expr(depth - 1)}, {self.expr(depth - 1)})"
        n = self.rng.randint(1, 3)
        pairs = [f"({self.expr(depth - 1)}, {self.cond(depth - 1)})" for _ in range(n)]
        return f"Piecewise({', '.join(pairs)}, ({self.expr(depth - 1)}, True))"


def generate(rng: random.Random) -> tuple[str, dict[str, float]]:
    while True:
        params = rng.sample(PARAMS, rng.randint(0, 2))
        text = Gen(rng, params).expr(rng.randint(1, 4))
        tokens = _tokens(text)
        used = {p: round(rng.uniform(0.2, 2.0), 2) for p in params if p in tokens}
        if "x" in tokens:
            return text, used


def _tokens(text: str) -> list[str]:
    out, cur = [], ""
    for ch in text:
        if ch.isalnum() or ch == "_":
            cur += ch
        else:
            if cur:
                out.append(cur)
            cur = ""
    return out + ([cur] if cur else [])


def run_one(text: str, params: dict[str, float], out_dir: str, limit: float) -> dict:
    """Fork, run ``actsym codegen`` in the child, collect the outcome through a pipe."""
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        result: dict
        err = io.StringIO()
        try:
            from actsym.cli import main

            sys.stdout = io.StringIO()
            sys.stderr = err
            args = ["codegen", text, "--name", "probe", "--out", out_dir]
            for k, v in params.items():
                args += ["--param", f"{k}={v}"]
            rc = main(args)
            result = {"rc": rc, "stderr": err.getvalue().strip()[-300:]}
        except BaseException as e:  # noqa: BLE001 - that is what we count
            tb = traceback.extract_tb(e.__traceback__)
            result = {"rc": "traceback", "exc": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}",
                      "where": [f"{f.filename.split('site-packages/')[-1]}:{f.lineno}" for f in tb[-4:]]}
        os.write(w, pickle.dumps(result))
        os._exit(0)
    os.close(w)
    chunks = []
    deadline = start + limit
    import select

    timed_out = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([r], [], [], left)
        if not ready:
            continue
        data = os.read(r, 1 << 16)
        if not data:
            break
        chunks.append(data)
    os.close(r)
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    wall = time.monotonic() - start
    if timed_out:
        return {"outcome": "timeout", "wall": wall}
    try:
        res = pickle.loads(b"".join(chunks))
    except Exception:  # noqa: BLE001
        return {"outcome": "other", "wall": wall, "detail": "child died"}
    res["wall"] = wall
    if res["rc"] == "traceback":
        res["outcome"] = "traceback"
    elif res["rc"] == 0:
        res["outcome"] = "ok"
    elif res["rc"] == 2:
        if "ran out of its" in res["stderr"]:
            res["outcome"] = "budget"
        elif "self-check failed" in res["stderr"]:
            res["outcome"] = "verify-refused"  # actsym.verify found the generated code wrong
        elif " failed: " in res["stderr"]:
            res["outcome"] = "stage-failed"  # an unexpected exception, reported as a one-line refusal
        else:
            res["outcome"] = "refused"
    else:
        res["outcome"] = "other"
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="/tmp/probe.jsonl", help="one JSON line per expression")
    ap.add_argument("--gen-dir", default="/tmp/probe_gen", help="codegen --out directory")
    ap.add_argument("--limit", type=float, default=None, help="outer kill deadline (default: budget + 30 s)")
    ap.add_argument("--repo", default=None, help="import actsym from this checkout")
    args = ap.parse_args()
    if args.repo:
        sys.path.insert(0, args.repo)
    import actsym  # noqa: F401 - imported once before forking (children start warm)
    import actsym.cli

    actsym.cli.build_parser()  # every subcommand's arguments: imports the modules they need (recipes, viz)
    from actsym.codegen import eager, triton_backend, writer  # noqa: F401

    budget = float(os.environ.get("ACTSYM_BUDGET", "30") or 30)
    limit = args.limit or budget + 30
    rng = random.Random(args.seed)
    counts: collections.Counter = collections.Counter()
    with open(args.out, "w") as fh:
        for i in range(args.count):
            text, params = generate(rng)
            res = run_one(text, params, args.gen_dir, limit)
            res.update(i=i, expr=text, params=params)
            counts[res["outcome"]] += 1
            fh.write(json.dumps(res) + "\n")
            fh.flush()
            if res["outcome"] in ("traceback", "timeout", "other", "stage-failed"):
                print(f"[{i}] {res['outcome']}: {text} {params} {res.get('exc', '')} {res.get('where', '')}",
                      flush=True)
    print(dict(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
