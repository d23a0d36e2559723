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
    """mean ± t-CI half-width [CI] of accuracies in [0, 1], in percent; a CI reaching outside [0, 100] is shown
    clipped to it and says so (the t interval assumes a normal mean; accuracy cannot leave [0, 100])."""
    if s.n == 0:
        return "–"
    if s.n == 1 or not math.isfinite(s.ci_low):
        return f"{100 * s.mean:.2f} (n={s.n}, no CI)"
    lo, hi = max(s.ci_low, 0.0), min(s.ci_high, 1.0)
    clipped = " (CI clipped to 0–100)" if (lo, hi) != (s.ci_low, s.ci_high) else ""
    return f"{100 * s.mean:.2f} ± {100 * s.half_width:.2f} [{100 * lo:.2f}, {100 * hi:.2f}]{clipped}"


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
                    references: dict[str, dict[str, Any]]) -> list[Block]:
    rows = []
    for name in names:
        ok = [r for r in by_act[name] if r["status"] == "finished" and metrics.get(r["id"])]
        failed = [r for r in by_act[name] if r["status"] == "failed"]
        running = [r for r in by_act[name] if r["status"] == "running"]
        fin = summary([metrics[r["id"]]["final_acc"] for r in ok])
        best = summary([metrics[r["id"]]["best_acc"] for r in ok])
        best_ep = summary([metrics[r["id"]]["best_epoch"] for r in ok])
        ref = references.get(name)
        check = reference_check(ref, best if ref and ref["metric"] == "best" else fin)
        rows.append([name, f"{len(ok)}/{len(failed)}/{len(running)}", _ci(fin), _pct(fin.std), _ci(best),
                     _pct(best.std), "–" if best_ep.n == 0 else f"{best_ep.mean:.1f}", reference_text(check)])
    return [
        ("h", 2, "Test accuracy per activation (%)"),
        ("p", "Mean ± 95 % t-CI half-width [CI] and sample std over seeds. **Final epoch** is the honest number. "
              "**Best epoch** picks the maximum over epochs *on the test set* — this is what the reference "
              "articles report, so it is shown for comparison, but it is optimistically biased. "
              "**Reference**: the published number (the recipe's, or `--reference`), compared with the measured "
              "accuracy of the same kind (final or best epoch): inside or outside its 95 % CI, and measured − "
              "published. A CI that reaches outside 0–100 is shown clipped and says so."),
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
              f"*Significant* needs at least {MIN_SEEDS_FOR_SIGNIFICANCE} paired seeds, p < 0.05 and a bootstrap "
              "CI excluding 0; with fewer seeds no claim is made (a handful of values gives a bootstrap "
              "distribution with few distinct points and the t-test's normality cannot be checked)."),
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


def reference_metric(reference_all: dict[str, Any] | None) -> str:
    """Which accuracy a recipe's published numbers are: ``best`` (best epoch) or ``final`` (last epoch)."""
    return "best" if "best" in str((reference_all or {}).get("metric", "")).lower() else "final"


def _references(store: Store, study: str, reference_all: dict[str, Any], recipe_refs: dict[str, float],
                names: list[str], by_act: dict[str, list[dict]]) -> dict[str, dict[str, Any]]:
    """label -> {value_pct, metric, source}: ``actsym eval --reference`` numbers (stored per identity) first,
    else the recipe's published number for that name."""
    stored = store.references(study)
    out = {}
    for label in names:
        act_hash = by_act[label][0]["act_hash"]
        if act_hash in stored:
            value, metric = stored[act_hash]
            out[label] = {"value_pct": value, "metric": metric, "source": "--reference"}
        elif recipe_refs.get(label) is not None:
            out[label] = {"value_pct": float(recipe_refs[label]), "metric": reference_metric(reference_all),
                          "source": str(reference_all.get("source") or "recipe")}
    return out


def reference_check(ref: dict[str, Any] | None, stats: Any) -> dict[str, Any] | None:
    """A published number against the measured mean and 95 % t-CI (a :class:`~actsym.harness.stats.Summary` of
    accuracies in [0, 1], the CI clipped to [0, 1]): ``inside_ci`` is None when there is no CI (n < 2)."""
    if ref is None:
        return None
    value = ref["value_pct"] / 100
    out = dict(ref, measured_mean_pct=None, ci_low_pct=None, ci_high_pct=None, inside_ci=None,
               diff_pct=None, n=stats.n)
    if stats.n >= 1:
        out["measured_mean_pct"] = round(100 * stats.mean, 4)
        out["diff_pct"] = round(100 * (stats.mean - value), 4)
    if stats.n >= 2 and math.isfinite(stats.ci_low):
        lo, hi = max(stats.ci_low, 0.0), min(stats.ci_high, 1.0)
        out.update(ci_low_pct=round(100 * lo, 4), ci_high_pct=round(100 * hi, 4), inside_ci=bool(lo <= value <= hi))
    return out


def reference_text(check: dict[str, Any] | None) -> str:
    """``97.88 (best epoch): inside the 95 % CI`` / ``outside ... (measured -0.41 pp)`` / ``no CI (n=1)``."""
    if check is None:
        return "–"
    head = f"{check['value_pct']:.2f} ({check['metric']} epoch)"
    if check["n"] == 0:
        return head + ": no finished run"
    if check["inside_ci"] is None:
        return head + f": no CI (n={check['n']}), measured {check['diff_pct']:+.2f} pp"
    where = "inside" if check["inside_ci"] else "outside"
    return head + f": {where} the 95 % CI, measured {check['diff_pct']:+.2f} pp"


def _collect(store: Store, study: str, candidate: str | None = None,
             handles: Sequence[Any] | None = None) -> dict[str, Any]:
    """One study read back: runs pooled by identity label, the candidate's label first, per-run metrics."""
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
    references = _references(store, study, reference_all, reference, names, by_act)
    cand_hash = getattr(handles[0], "hash", None) if handles else None
    matching = [lb for lb in names if by_act[lb][0]["act_hash"] == cand_hash] if cand_hash else []
    named = [lb for lb in names if by_act[lb][0]["activation"] == candidate]
    candidate = (matching or named or names)[0]
    names = [candidate] + [n for n in names if n != candidate]
    thresholds = runs[0]["settings"].get("acc_thresholds", []) or []
    all_epochs = store.epochs_for(r["id"] for r in runs)
    metrics = {rid: run_metrics(eps, thresholds) for rid, eps in all_epochs.items()}
    return {"runs": runs, "recipe_mod": recipe_mod, "variant": variant, "reference_all": reference_all,
            "reference": reference, "references": references, "labels": labels, "names": names, "by_act": by_act, "candidate": candidate,
            "thresholds": thresholds, "all_epochs": all_epochs, "metrics": metrics}


def write_report(store: Store, study: str, out: str | Path, candidate: str | None = None,
                 handles: Sequence[Any] | None = None, notes: Sequence[str] = (),
                 formats: Sequence[str] = ("markdown",)) -> dict[str, Any]:
    """Write the report of ``study`` under ``out`` in ``formats`` (:data:`FORMATS`: ``markdown`` is
    ``report.md`` + ``report.html``; ``csv``, ``json``, ``latex`` are ``results.csv``/``.json``/``.tex``, see
    :func:`results_summary`), and always the per-epoch log of each run (:mod:`actsym.harness.epoch_logs`:
    ``runs/<label>-seed<N>.csv``, TensorBoard events when tensorboard is installed). Returns their paths by key
    (``markdown``, ``html``, ``csv``, ``json``, ``latex``; ``epochs``: the list of per-run CSVs; ``tensorboard``:
    the events folder or None) and ``summary``: the :func:`results_summary` dict (what ``actsym eval`` prints as its table)."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise KeyError(f"unknown report format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
    c = _collect(store, study, candidate, handles)
    runs, variant = c["runs"], c["variant"]
    folder = Path(out) / f"{runs[0]['recipe']}_{variant}_{study[:8]}"
    folder.mkdir(parents=True, exist_ok=True)
    summary_dict = _summary_dict(store, study, c)
    from .epoch_logs import write_epoch_logs

    paths: dict[str, Any] = write_epoch_logs(folder, runs, c["labels"], c["all_epochs"])
    if "markdown" in formats:
        paths.update(_write_markdown(store, study, folder, c, handles, notes))
    writers = {"csv": ("results.csv", results_csv), "json": ("results.json", results_json),
               "latex": ("results.tex", results_latex)}
    for fmt in formats:
        if fmt in writers:
            name, render = writers[fmt]
            path = folder / name
            path.write_text(render(summary_dict), encoding="utf-8")
            paths[fmt] = path
    paths["summary"] = summary_dict
    return paths


def _write_markdown(store: Store, study: str, folder: Path, c: dict[str, Any], handles, notes) -> dict[str, Path]:
    runs, recipe_mod, names, by_act = c["runs"], c["recipe_mod"], c["names"], c["by_act"]
    metrics, thresholds, reference_all = c["metrics"], c["thresholds"], c["reference_all"]
    fig_dir = folder / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    blocks = _setup_blocks(runs, recipe_mod, notes)
    if not any(r["status"] == "finished" for r in runs):
        reasons = sorted({(r["error"] or r["status"]).split(":")[0] for r in runs})
        blocks.append(("p", f"**No run finished** ({len(runs)} run(s): {', '.join(reasons)}); the tables below have no "
                            "results -- see *Failed runs* for each reason."))
    blocks += _summary_blocks(names, by_act, metrics, c["references"])
    blocks += _paired_blocks(c["candidate"], names, by_act, metrics)
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
        blocks += _plots(fig_dir, names, by_act, c["all_epochs"], handles)
    else:
        blocks.append(("p", "*matplotlib is not installed: the report has no plots "
                            "(`pip install actsym[plot]`).*"))
    blocks.append(("p", f"Study `{study}`; results database `{store.path}`."))
    blocks.append(("p", provenance()))
    md_path, html_path = folder / "report.md", folder / "report.html"
    md_path.write_text(render_markdown(blocks, folder), encoding="utf-8")
    html_path.write_text(render_html(blocks, f"actsym {runs[0]['recipe']} report"), encoding="utf-8")
    return {"markdown": md_path, "html": html_path}


# ----------------------------------------------------------------------------------------------
# exports: the results as data (CSV, JSON, LaTeX) and the table ``actsym eval`` prints

#: what ``actsym report --format`` writes (``markdown`` = report.md + report.html, the default)
FORMATS = ("markdown", "csv", "json", "latex")


def _num(x: float | None, digits: int = 4) -> float | None:
    """A JSON-safe number (NaN/inf -> None)."""
    if x is None or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return round(float(x), digits)


def _acc_stats(values: list[float]) -> dict[str, Any]:
    s = summary(values)
    half = s.half_width if s.n >= 2 else float("nan")
    return {"n": s.n, "mean_pct": _num(100 * s.mean), "ci_half_width_pct": _num(100 * half),
            "ci_low_pct": _num(100 * s.ci_low), "ci_high_pct": _num(100 * s.ci_high), "std_pct": _num(100 * s.std),
            "ci_outside_0_100": bool(s.n >= 2 and (s.ci_low < 0 or s.ci_high > 1))}


def _paired_stats(a: dict[int, float], b: dict[int, float]) -> dict[str, Any] | None:
    common = sorted(set(a) & set(b))
    if not common:
        return None
    p = paired([a[s] for s in common], [b[s] for s in common])
    if p.n < MIN_SEEDS_FOR_SIGNIFICANCE:
        flag = f"no claim (n={p.n} < {MIN_SEEDS_FOR_SIGNIFICANCE} seeds)"
    else:
        flag = "significant" if p.significant else "not significant"
    return {"n": p.n, "mean_diff_pct": _num(100 * p.mean_diff), "p_value": _num(p.p_value, 6),
            "ci_low_pct": _num(100 * p.ci_low), "ci_high_pct": _num(100 * p.ci_high),
            "bootstrap_low_pct": _num(100 * p.boot_low), "bootstrap_high_pct": _num(100 * p.boot_high),
            "significant": bool(p.significant), "flag": flag}


def _summary_dict(store: Store, study: str, c: dict[str, Any]) -> dict[str, Any]:
    runs, names, by_act, metrics, candidate = c["runs"], c["names"], c["by_act"], c["metrics"], c["candidate"]

    def per_seed(name: str, key: str) -> dict[int, float]:
        return {r["seed"]: metrics[r["id"]][key] for r in by_act[name]
                if r["status"] == "finished" and metrics.get(r["id"])}

    activations, comparisons = [], []
    for name in names:
        rs = by_act[name]
        first = rs[0]
        ok = [r for r in rs if r["status"] == "finished" and metrics.get(r["id"])]
        row = {"label": name, "activation": first["activation"], "expr": first["expr"],
               "params": first["params"] or {}, "learnable": list(first["learnable"] or []),
               "act_hash": first["act_hash"], "candidate": name == candidate,
               "finished": len(ok), "failed": sum(r["status"] == "failed" for r in rs),
               "running": sum(r["status"] == "running" for r in rs),
               "final_acc": _acc_stats([metrics[r["id"]]["final_acc"] for r in ok]),
               "best_acc": _acc_stats([metrics[r["id"]]["best_acc"] for r in ok]),
               "reference_pct": c["reference"].get(name), "vs_candidate": None}
        ref = c["references"].get(name)
        if ref is not None:
            key = "best_acc" if ref["metric"] == "best" else "final_acc"
            row["reference"] = reference_check(ref, summary([metrics[r["id"]][key] for r in ok]))
            row["reference_pct"] = ref["value_pct"]
        else:
            row["reference"] = None
        if name != candidate:
            row["vs_candidate"] = _paired_stats(per_seed(candidate, "final_acc"), per_seed(name, "final_acc"))
            for key, epoch in (("final_acc", "final"), ("best_acc", "best")):
                stats = _paired_stats(per_seed(candidate, key), per_seed(name, key))
                if stats is not None:
                    comparisons.append({"a": candidate, "b": name, "epoch": epoch, **stats})
        activations.append(row)
    label_of = c["labels"]
    per_run = [{"label": label_of[r["id"]], "seed": r["seed"], "status": r["status"], "error": r["error"],
                "final_acc_pct": _num(100 * metrics[r["id"]]["final_acc"]) if metrics.get(r["id"]) else None,
                "best_acc_pct": _num(100 * metrics[r["id"]]["best_acc"]) if metrics.get(r["id"]) else None,
                "epochs_done": metrics[r["id"]]["epochs_done"] if metrics.get(r["id"]) else 0} for r in runs]
    first = runs[0]
    return {"study": study, "recipe": first["recipe"], "variant": c["variant"], "database": str(store.path),
            "candidate": candidate, "settings": first["settings"], "dataset": first["dataset"],
            "device": first["device"], "versions": first["versions"],
            "min_seeds_for_significance": MIN_SEEDS_FOR_SIGNIFICANCE, "activations": activations,
            "comparisons": comparisons, "runs": per_run}


def results_summary(store: Store, study: str, candidate: str | None = None,
                    handles: Sequence[Any] | None = None) -> dict[str, Any]:
    """The results of ``study`` as plain data (accuracies in percent): ``activations`` (one entry per identity,
    the candidate first: final/best test accuracy n, mean, 95 % t-CI, std; ``vs_candidate``: the paired
    candidate − this difference at the final epoch), ``comparisons`` (final and best epoch) and ``runs``."""
    return _summary_dict(store, study, _collect(store, study, candidate, handles))


def _fmt_acc(s: dict[str, Any]) -> str:
    if s["n"] == 0 or s["mean_pct"] is None:
        return "–"
    if s["ci_half_width_pct"] is None:
        return f"{s['mean_pct']:.2f} (n={s['n']}, no CI)"
    flag = " (CI outside 0–100)" if s["ci_outside_0_100"] else ""
    return f"{s['mean_pct']:.2f} ± {s['ci_half_width_pct']:.2f} (n={s['n']}){flag}"


def _fmt_delta(d: dict[str, Any] | None, candidate: bool) -> tuple[str, str]:
    if candidate:
        return "(candidate)", ""
    if d is None or d["mean_diff_pct"] is None:
        return "–", "no paired seeds"
    ci = "" if d["ci_low_pct"] is None else f" [{d['ci_low_pct']:+.2f}, {d['ci_high_pct']:+.2f}]"
    p = "" if d["p_value"] is None else f", p={d['p_value']:.3g}"
    return f"{d['mean_diff_pct']:+.2f}{ci}", d["flag"] + p


def _has_references(summary_dict: dict[str, Any]) -> bool:
    return any(a.get("reference") for a in summary_dict["activations"])


def _rows(summary_dict: dict[str, Any]) -> list[list[str]]:
    """The table's rows; a ``published`` column (the reference number, inside/outside the measured CI) only
    when some activation has one."""
    rows = []
    refs = _has_references(summary_dict)
    for a in summary_dict["activations"]:
        delta, flag = _fmt_delta(a["vs_candidate"], a["candidate"])
        row = [a["label"], f"{a['finished']}/{a['failed']}/{a['running']}", _fmt_acc(a["final_acc"]), delta, flag]
        if refs:
            row.append(reference_text(a.get("reference")))
        rows.append(row)
    return rows


def console_table(summary_dict: dict[str, Any]) -> str:
    """The compact table ``actsym eval`` prints when it finishes: per activation the final-epoch test accuracy
    (mean ± 95 % CI half-width over seeds) and the paired difference candidate − that activation."""
    cand = summary_dict["candidate"]
    headers = ["activation", "fin/fail/run", "final test acc %", f"Δ {cand} − this (pp) [95% CI]", "flag"]
    if _has_references(summary_dict):
        headers.append("published %")
    rows = _rows(summary_dict)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    out = [f"results: {summary_dict['recipe']} ({summary_dict['variant']}), study {summary_dict['study'][:8]}",
           line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out) + "\n"


_CSV_FIELDS = ["label", "activation", "expr", "params", "learnable", "act_hash", "candidate", "finished", "failed",
               "running", "final_n", "final_mean_pct", "final_ci_low_pct", "final_ci_high_pct", "final_std_pct",
               "best_mean_pct", "best_ci_low_pct", "best_ci_high_pct", "best_std_pct", "reference_pct",
               "reference_metric", "reference_inside_ci", "reference_diff_pct",
               "delta_vs_candidate_pct", "delta_ci_low_pct", "delta_ci_high_pct", "delta_p_value", "delta_flag"]


def results_csv(summary_dict: dict[str, Any]) -> str:
    """One row per activation identity (the candidate first); the delta columns are candidate − this row."""
    import csv
    import io
    import json

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=_CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for a in summary_dict["activations"]:
        f, b, d, ref = a["final_acc"], a["best_acc"], a["vs_candidate"] or {}, a.get("reference") or {}
        w.writerow({"label": a["label"], "activation": a["activation"], "expr": a["expr"],
                    "params": json.dumps(a["params"], sort_keys=True), "learnable": " ".join(a["learnable"]),
                    "act_hash": a["act_hash"], "candidate": int(a["candidate"]), "finished": a["finished"],
                    "failed": a["failed"], "running": a["running"], "final_n": f["n"],
                    "final_mean_pct": f["mean_pct"], "final_ci_low_pct": f["ci_low_pct"],
                    "final_ci_high_pct": f["ci_high_pct"], "final_std_pct": f["std_pct"],
                    "best_mean_pct": b["mean_pct"], "best_ci_low_pct": b["ci_low_pct"],
                    "best_ci_high_pct": b["ci_high_pct"], "best_std_pct": b["std_pct"],
                    "reference_pct": a["reference_pct"], "reference_metric": ref.get("metric", ""),
                    "reference_inside_ci": {True: 1, False: 0}.get(ref.get("inside_ci"), ""),
                    "reference_diff_pct": ref.get("diff_pct"), "delta_vs_candidate_pct": d.get("mean_diff_pct"),
                    "delta_ci_low_pct": d.get("ci_low_pct"), "delta_ci_high_pct": d.get("ci_high_pct"),
                    "delta_p_value": d.get("p_value"), "delta_flag": d.get("flag", "")})
    return buf.getvalue()


def results_json(summary_dict: dict[str, Any]) -> str:
    """Everything :func:`results_summary` holds, plus the provenance line."""
    import json

    return json.dumps({**summary_dict, "provenance": provenance()}, indent=2, default=str) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "<": "$<$", ">": "$>$", "±": r"$\pm$", "−": "$-$", "Δ": r"$\Delta$", "–": "--"}


def _tex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def results_latex(summary_dict: dict[str, Any]) -> str:
    """A booktabs ``table`` of :func:`console_table`'s columns (``\\usepackage{booktabs}``)."""
    cand = summary_dict["candidate"]
    headers = ["activation", "runs", "final test acc (\\%)", f"$\\Delta$ {_tex(cand)} $-$ this (pp)", "flag"]
    columns = "llrrl"
    if _has_references(summary_dict):
        headers.append("published (\\%)")
        columns += "l"
    lines = [r"\begin{table}[ht]", r"\centering", rf"\begin{{tabular}}{{{columns}}}", r"\toprule",
             " & ".join(headers) + r" \\", r"\midrule"]
    lines += [" & ".join(_tex(c) for c in row) + r" \\" for row in _rows(summary_dict)]
    lines += [r"\bottomrule", r"\end{tabular}",
              rf"\caption{{{_tex(summary_dict['recipe'])} ({_tex(summary_dict['variant'])}): final-epoch test accuracy, "
              rf"mean $\pm$ 95\,\% t-CI half-width over seeds; $\Delta$: paired difference with its 95\,\% t-CI "
              rf"(no significance claim below {summary_dict['min_seeds_for_significance']} seeds). "
              rf"Study {_tex(summary_dict['study'][:8])}.}}",
              r"\end{table}"]
    return "\n".join(lines) + "\n"
