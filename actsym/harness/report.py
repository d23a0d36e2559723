"""Markdown + self-contained HTML report of one study, read back from the results store.

Contents: the setup (with explicit labels when the embedded MNIST subset was used, data were
limited, or epochs were reduced), per-activation tables (final epoch and best epoch separately —
best-epoch is what the reference articles report, and it selects on the test set), paired
differences against each other activation with p-value, t and bootstrap CIs and a significance
flag, epochs-to-accuracy, learned activation parameters per layer, firing statistics, formulas,
training curves and plots of f and f′ (f′ from autograd on the module).  Plots need matplotlib
(Agg backend); without it the report is written without plots and says so.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .firing import scalar
from .report_plots import _matplotlib, _plots
from .stats import MIN_SEEDS_FOR_SIGNIFICANCE, paired, summary
from .store import Store

Block = tuple  # ("h", level, text) | ("p", text) | ("table", headers, rows) | ("img", path, caption) | ("code", text)


def _pct(x: float) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}"


def _ci(s) -> str:
    if s.n == 0:
        return "–"
    if s.n == 1:
        return f"{100 * s.mean:.2f} (n=1, no CI)"
    return f"{100 * s.mean:.2f} ± {100 * s.half_width:.2f} [{100 * s.ci_low:.2f}, {100 * s.ci_high:.2f}]"


# ----------------------------------------------------------------------------------------------
# per-run metrics


def run_metrics(epochs: list[dict[str, Any]], thresholds: Sequence[float] = ()) -> dict[str, Any]:
    """Final-epoch and best-epoch test accuracy, best epoch, epochs to each threshold, final params."""
    accs = [(e["epoch"], e["test_acc"]) for e in epochs if e["test_acc"] is not None]
    if not accs:
        return {}
    best_epoch, best = max(accs, key=lambda t: (t[1], -t[0]))
    last = epochs[-1]
    reach = {th: next((ep for ep, a in accs if a >= th), None) for th in thresholds}
    return {"final_acc": last["test_acc"], "final_loss": last["test_loss"], "best_acc": best,
            "best_epoch": best_epoch, "reach": reach, "act_params": last["act_params"],
            "firing": last["firing"], "epochs_done": last["epoch"]}


# ----------------------------------------------------------------------------------------------
# sections


def _setup_blocks(runs: list[dict[str, Any]], recipe_mod, notes: Sequence[str]) -> list[Block]:
    first = runs[0]
    settings, data = first["settings"], first["dataset"] or {}
    seeds = sorted({r["seed"] for r in runs})
    blocks: list[Block] = [("h", 1, f"actsym evaluation — {first['recipe']} ({settings.get('variant')})")]
    if recipe_mod is not None:
        blocks.append(("p", recipe_mod.DESCRIPTION))
    warn = []
    if data.get("subset"):
        what = "Embedded MNIST subset used" if "mnist" in str(data.get("name")) else "Data subset used"
        warn.append(f"**{what}** ({data.get('n_train')} train / {data.get('n_test')} test images"
                    f"{': ' + data['note'] if data.get('note') else ''}) — not the full dataset; numbers are "
                    "not comparable to the reference.")
    if data.get("train_limit") or data.get("test_limit"):
        warn.append(f"**Data limited** to the first {data.get('n_train')} training and {data.get('n_test')} test "
                    "examples.")
    if settings.get("epochs", 0) < settings.get("reference_epochs", 0):
        warn.append(f"**Epochs reduced**: {settings['epochs']} instead of the recipe's reference "
                    f"{settings['reference_epochs']}; numbers are not comparable to the reference.")
    blocks += [("p", w) for w in warn]
    blocks += [("p", n) for n in notes]
    keys = [k for k in settings if k not in ("variant", "reference_epochs")]
    blocks.append(("table", ["setting", "value"], [[k, str(settings[k])] for k in keys]))
    blocks.append(("p", f"Dataset: {data.get('name')} ({data.get('n_train')} train / {data.get('n_test')} test, "
                        f"source: {data.get('source') or 'n/a'}). Seeds: {', '.join(map(str, seeds))} — paired: every "
                        "activation gets the same data order and the same initial weights for a seed. "
                        f"Device: {first['device']}. Versions: {first['versions']}."))
    return blocks


def _summary_blocks(names: list[str], by_act: dict[str, list[dict]], metrics: dict[int, dict],
                    reference: dict[str, float]) -> list[Block]:
    rows = []
    for name in names:
        ok = [r for r in by_act[name] if r["status"] == "finished" and metrics.get(r["id"])]
        failed = [r for r in by_act[name] if r["status"] == "failed"]
        running = [r for r in by_act[name] if r["status"] == "running"]
        fin = summary([metrics[r["id"]]["final_acc"] for r in ok])
        best = summary([metrics[r["id"]]["best_acc"] for r in ok])
        best_ep = summary([metrics[r["id"]]["best_epoch"] for r in ok])
        ref = reference.get(name)
        rows.append([name, f"{len(ok)}/{len(failed)}/{len(running)}", _ci(fin), _pct(fin.std), _ci(best),
                     _pct(best.std), "–" if best_ep.n == 0 else f"{best_ep.mean:.1f}",
                     "–" if ref is None else f"{ref:.2f}"])
    return [
        ("h", 2, "Test accuracy per activation (%)"),
        ("p", "Mean ± 95 % t-CI half-width [CI] and sample std over seeds. **Final epoch** is the honest number. "
              "**Best epoch** picks the maximum over epochs *on the test set* — this is what the reference "
              "articles report, so it is shown for comparison, but it is optimistically biased."),
        ("table", ["activation", "finished/failed/running", "final-epoch acc", "std", "best-epoch acc", "std",
                   "mean best epoch", "reference"], rows),
    ]


def _paired_blocks(candidate: str, names: list[str], by_act: dict[str, list[dict]],
                   metrics: dict[int, dict]) -> list[Block]:
    def per_seed(name: str, key: str) -> dict[int, float]:
        return {r["seed"]: metrics[r["id"]][key] for r in by_act[name]
                if r["status"] == "finished" and metrics.get(r["id"])}

    rows = []
    for other in names:
        if other == candidate:
            continue
        for key, label in (("final_acc", "final epoch"), ("best_acc", "best epoch")):
            a, b = per_seed(candidate, key), per_seed(other, key)
            common = sorted(set(a) & set(b))
            if not common:
                continue
            p = paired([a[s] for s in common], [b[s] for s in common])
            flag = "significant" if p.significant else "not significant"
            rows.append([f"{candidate} − {other}", label, str(p.n), f"{100 * p.mean_diff:+.2f}",
                         "–" if math.isnan(p.p_value) else f"{p.p_value:.3g}",
                         "–" if math.isnan(p.ci_low) else f"[{100 * p.ci_low:+.2f}, {100 * p.ci_high:+.2f}]",
                         "–" if math.isnan(p.boot_low) else f"[{100 * p.boot_low:+.2f}, {100 * p.boot_high:+.2f}]",
                         flag if p.n >= MIN_SEEDS_FOR_SIGNIFICANCE else
                         f"no claim (n={p.n} < {MIN_SEEDS_FOR_SIGNIFICANCE} seeds)"])
    if not rows:
        return []
    return [
        ("h", 2, f"Paired differences: {candidate} vs the others (percentage points)"),
        ("p", "Per seed A − B on seeds where both runs finished (failed runs are excluded and counted above). "
              "p: two-sided paired t-test; 95 % t-CI and seeded percentile bootstrap CI of the mean difference. "
              "*Significant* needs p < 0.05 and a bootstrap CI excluding 0."),
        ("table", ["comparison", "epoch", "n", "mean diff", "p", "t-CI", "bootstrap CI", "flag"], rows),
    ]


def _reach_blocks(names, by_act, metrics, thresholds) -> list[Block]:
    if not thresholds:
        return []
    rows = []
    for name in names:
        ok = [metrics[r["id"]] for r in by_act[name] if r["status"] == "finished" and metrics.get(r["id"])]
        row = [name]
        for th in thresholds:
            hits = [m["reach"].get(th) for m in ok]
            got = [h for h in hits if h is not None]
            row.append("–" if not got else f"{sum(got) / len(got):.1f} ({len(got)}/{len(hits)} seeds)")
        rows.append(row)
    return [("h", 2, "Epochs to reach test accuracy"),
            ("p", "First epoch whose test accuracy reaches each threshold, mean over the seeds that reached it."),
            ("table", ["activation", *[f"{100 * t:g} %" for t in thresholds]], rows)]


def _params_blocks(names, by_act, metrics, reference_learned: dict[str, list[float]]) -> list[Block]:
    rows = []
    for name in names:
        vals: dict[tuple[str, str], list[float]] = {}
        for r in by_act[name]:
            m = metrics.get(r["id"])
            if r["status"] != "finished" or not m:
                continue
            for layer, params in m["act_params"].items():
                for pname, v in params.items():
                    vals.setdefault((layer, pname), []).append(scalar(v))
        init = {k: v for k, v in (by_act[name][0]["params"] or {}).items()}
        for i, ((layer, pname), xs) in enumerate(vals.items()):
            s = summary(xs)
            ref = reference_learned.get(name.lower(), [])
            rows.append([name, layer, pname, f"{init.get(pname, float('nan')):.3g}", f"{s.mean:.4g}",
                         "–" if math.isnan(s.std) else f"{s.std:.3g}", f"{ref[i]:.3g}" if i < len(ref) else "–"])
    if not rows:
        return []
    return [("h", 2, "Learned activation parameters per layer (final epoch)"),
            ("p", "Mean and std over seeds; per-channel parameters are averaged over channels first."),
            ("table", ["activation", "layer", "parameter", "init", "learned (mean)", "std", "reference"], rows)]


def _firing_blocks(names, by_act, metrics) -> list[Block]:
    rows = []
    for name in names:
        fires = [metrics[r["id"]]["firing"] for r in by_act[name] if r["status"] == "finished" and metrics.get(r["id"])]
        if not fires:
            continue
        layers = list(fires[0])
        for key in ("pos", "neg", "zero"):
            per_layer = [sum(f[layer][key] for f in fires if layer in f) / len(fires) for layer in layers]
            rows.append([name, key, f"{100 * sum(per_layer) / len(per_layer):.1f}",
                         " ".join(f"{100 * v:.0f}" for v in per_layer)])
    if not rows:
        return []
    return [("h", 2, "Firing statistics (final epoch)"),
            ("p", "Fraction (%) of activation outputs > 0 (pos), < 0 (neg) and = 0 (zero) on a fixed test batch; "
                  "mean over layers, then per layer in forward order; averaged over seeds."),
            ("table", ["activation", "sign", "mean over layers", "per layer"], rows)]


def _formula_blocks(runs_by_act: dict[str, list[dict]], names: list[str]) -> list[Block]:
    blocks: list[Block] = [("h", 2, "Activation formulas")]
    for name in names:
        r = runs_by_act[name][0]
        params = ", ".join(f"{k}={v:g}" for k, v in (r["params"] or {}).items())
        learn = f" (learnable: {', '.join(r['learnable'])})" if r["learnable"] else ""
        blocks.append(("p", f"**{name}** — hash `{r['act_hash']}`{'; ' + params if params else ''}{learn}"))
        blocks.append(("code", f"f(x) = {r['expr']}" + (f"\nLaTeX: {r['latex']}" if r.get("latex") else "")))
    return blocks


# ----------------------------------------------------------------------------------------------
# rendering


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    esc = [[str(c).replace("|", "\\|") for c in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in esc]
    return "\n".join(lines)


def render_markdown(blocks: list[Block], base: Path) -> str:
    parts = []
    for b in blocks:
        if b[0] == "h":
            parts.append("#" * b[1] + " " + b[2])
        elif b[0] == "p":
            parts.append(b[1])
        elif b[0] == "table":
            parts.append(_md_table(b[1], b[2]))
        elif b[0] == "img":
            parts.append(f"![{b[2]}]({Path(b[1]).relative_to(base).as_posix()})\n\n*{b[2]}*")
        elif b[0] == "code":
            parts.append("```\n" + b[1] + "\n```")
    return "\n\n".join(parts) + "\n"


def _inline_md(text: str) -> str:
    """HTML-escape, then turn **bold**, *italic* and `code` into tags."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"\*(.+?)\*", r"<em>\1</em>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def render_html(blocks: list[Block], title: str) -> str:
    body = []
    for b in blocks:
        if b[0] == "h":
            body.append(f"<h{b[1]}>{html.escape(b[2])}</h{b[1]}>")
        elif b[0] == "p":
            body.append(f"<p>{_inline_md(b[1])}</p>")
        elif b[0] == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b[1])
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in b[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif b[0] == "img":
            data = base64.b64encode(Path(b[1]).read_bytes()).decode()
            body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(b[2])}">'
                        f"<figcaption>{html.escape(b[2])}</figcaption></figure>")
        elif b[0] == "code":
            body.append(f"<pre>{html.escape(b[1])}</pre>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.45}"
             "table{border-collapse:collapse;margin:1em 0;font-size:90%}td,th{border:1px solid #ccc;padding:3px 8px}"
             "th{background:#f3f3f3}img{max-width:100%}pre{background:#f7f7f7;padding:8px;overflow-x:auto}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


# ----------------------------------------------------------------------------------------------
# entry


def provenance() -> str:
    """The command line that wrote the report, the package version and the git commit of the code."""
    import shlex
    import subprocess
    import sys

    from actsym import __version__

    here = Path(__file__).resolve().parent
    commit = "not a git checkout"
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
        if out.returncode == 0:
            dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            commit = out.stdout.strip()[:12] + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    cmd = " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "?"
    return f"Written by `{cmd}` with actsym {__version__}, commit {commit}."


def identity_labels(runs: Sequence[dict]) -> dict[int, str]:
    """Run id -> the label its results are pooled under. Runs are pooled only when they share the
    activation's *identity* (``act_hash``: normalised expression, parameter values, which are learnable, code
    version) -- never by display name alone. A name used by several identities gets one label per identity,
    numbered and showing its formula; parameter values are always part of the label."""
    hashes: dict[str, list[str]] = {}
    for r in runs:
        seen = hashes.setdefault(r["activation"], [])
        if r["act_hash"] not in seen:
            seen.append(r["act_hash"])
    out = {}
    for r in runs:
        name, params = r["activation"], r.get("params") or {}
        label = name
        if params and "(" not in name:
            label += "(" + ", ".join(f"{k}={v:g}" for k, v in sorted(params.items())) + ")"
        ids = hashes[name]
        if len(ids) > 1:
            expr = str(r.get("expr") or "")
            label += f" #{ids.index(r['act_hash']) + 1} [{expr[:40]}{'…' if len(expr) > 40 else ''}]"
        out[r["id"]] = label
    return out


def write_report(store: Store, study: str, out: str | Path, candidate: str | None = None,
                 handles: Sequence[Any] | None = None, notes: Sequence[str] = ()) -> dict[str, Path]:
    """Write ``report.md`` and ``report.html`` for ``study`` under ``out``; return their paths."""
    runs = store.runs(study=study)
    if not runs:
        raise KeyError(f"no runs for study {study!r} in {store.path}")
    from . import recipes as registry
    try:
        recipe_mod = registry.get(runs[0]["recipe"])
    except KeyError:
        recipe_mod = None
    variant = runs[0]["settings"].get("variant")
    reference_all = getattr(recipe_mod, "REFERENCE", {}) if recipe_mod else {}
    reference = reference_all.get(variant, {}) if isinstance(reference_all.get(variant), dict) else {}
    labels = identity_labels(runs)
    names: list[str] = []
    by_act: dict[str, list[dict]] = {}
    for r in runs:
        label = labels[r["id"]]
        if label not in by_act:
            names.append(label)
        by_act.setdefault(label, []).append(r)
    cand_hash = getattr(handles[0], "hash", None) if handles else None
    matching = [lb for lb in names if by_act[lb][0]["act_hash"] == cand_hash] if cand_hash else []
    named = [lb for lb in names if by_act[lb][0]["activation"] == candidate]
    candidate = (matching or named or names)[0]
    names = [candidate] + [n for n in names if n != candidate]
    thresholds = runs[0]["settings"].get("acc_thresholds", []) or []
    all_epochs = store.epochs_for(r["id"] for r in runs)
    metrics = {rid: run_metrics(eps, thresholds) for rid, eps in all_epochs.items()}

    folder = Path(out) / f"{runs[0]['recipe']}_{variant}_{study[:8]}"
    fig_dir = folder / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    blocks = _setup_blocks(runs, recipe_mod, notes)
    if not any(r["status"] == "finished" for r in runs):
        reasons = sorted({(r["error"] or r["status"]).split(":")[0] for r in runs})
        blocks.append(("p", f"**No run finished** ({len(runs)} run(s): {', '.join(reasons)}); the tables below have no "
                            "results -- see *Failed runs* for each reason."))
    blocks += _summary_blocks(names, by_act, metrics, reference)
    blocks += _paired_blocks(candidate, names, by_act, metrics)
    blocks += _reach_blocks(names, by_act, metrics, thresholds)
    blocks += _params_blocks(names, by_act, metrics, reference_all.get("learned", {}) if reference_all else {})
    blocks += _firing_blocks(names, by_act, metrics)
    failed = [r for r in runs if r["status"] == "failed"]
    if failed:
        blocks += [("h", 2, "Failed runs"),
                   ("table", ["activation", "seed", "error"], [[r["activation"], str(r["seed"]), r["error"] or ""]
                                                               for r in failed])]
    blocks += _formula_blocks(by_act, names)
    if _matplotlib() is not None:
        blocks.append(("h", 2, "Plots"))
        blocks += _plots(fig_dir, names, by_act, all_epochs, handles)
    else:
        blocks.append(("p", "*matplotlib is not installed: the report has no plots "
                            "(`pip install actsym[plot]`).*"))
    blocks.append(("p", f"Study `{study}`; results database `{store.path}`."))
    blocks.append(("p", provenance()))
    md_path, html_path = folder / "report.md", folder / "report.html"
    md_path.write_text(render_markdown(blocks, folder), encoding="utf-8")
    html_path.write_text(render_html(blocks, f"actsym {runs[0]['recipe']} report"), encoding="utf-8")
    return {"markdown": md_path, "html": html_path}
