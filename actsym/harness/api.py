"""``actsym.evaluate(...)``: the evaluation harness as a Python function that returns the results.

>>> import actsym
>>> res = actsym.evaluate("tanh", recipe="mnist-mlp", baselines=["relu"], seeds=2, epochs=1,
...                       dataset="mnist-subset", train_limit=500, quiet=True)      # doctest: +SKIP
>>> res.candidate, res["tanh"]["final_acc"]["mean_pct"], res.delta("relu")["p_value"]  # doctest: +SKIP
>>> print(res.table())                                                               # doctest: +SKIP

Everything ``actsym eval`` does (the results database, resuming, the report) happens the same way; the
returned :class:`Results` holds the numbers, so nothing has to be parsed back out of files.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .evaluate import DEFAULT_DB, DEFAULT_OUT, run_eval


@dataclass(frozen=True)
class Results:
    """The results of one evaluation (accuracies in percent).

    ``summary`` is :func:`actsym.harness.report.results_summary`'s dict: ``activations`` (one entry per
    activation identity, the candidate first: ``final_acc`` / ``best_acc`` with n, mean, 95 % t-CI and std,
    ``vs_candidate`` -- the paired candidate − this difference at the final epoch --, ``reference``),
    ``comparisons`` (final and best epoch), ``runs`` (one entry per run and seed) and the study's settings.
    ``paths``: the files written (``markdown``, ``html``, ``db``, ``epochs``: one per-epoch CSV per run, ...).
    """

    summary: dict[str, Any]
    paths: dict[str, Any] = field(default_factory=dict)

    @property
    def study(self) -> str:
        return self.summary["study"]

    @property
    def candidate(self) -> str:
        """The candidate's label (its row is first)."""
        return self.summary["candidate"]

    @property
    def labels(self) -> list[str]:
        return [a["label"] for a in self.summary["activations"]]

    @property
    def activations(self) -> list[dict[str, Any]]:
        return self.summary["activations"]

    @property
    def runs(self) -> list[dict[str, Any]]:
        return self.summary["runs"]

    def __getitem__(self, label: str) -> dict[str, Any]:
        """The entry of one activation, by its label (``res["relu"]``)."""
        for a in self.summary["activations"]:
            if a["label"] == label:
                return a
        raise KeyError(f"no activation labelled {label!r} in these results; labels: {', '.join(self.labels)}")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.summary["activations"])

    def __len__(self) -> int:
        return len(self.summary["activations"])

    def final_accuracies(self, label: str | None = None) -> dict[int, float]:
        """seed -> final-epoch test accuracy (percent) of the finished runs of ``label`` (default the candidate)."""
        label = label or self.candidate
        return {r["seed"]: r["final_acc_pct"] for r in self.runs
                if r["label"] == label and r["status"] == "finished" and r["final_acc_pct"] is not None}

    def delta(self, label: str) -> dict[str, Any] | None:
        """The paired candidate − ``label`` difference at the final epoch (mean, p-value, CIs, flag)."""
        return self[label]["vs_candidate"]

    def table(self) -> str:
        """The compact table ``actsym eval`` prints."""
        from .report import console_table

        return console_table(self.summary)

    def __repr__(self) -> str:
        parts = []
        for a in self.activations:
            f = a["final_acc"]
            mean = "–" if f["mean_pct"] is None else f"{f['mean_pct']:.2f}"
            parts.append(f"{a['label']}: {mean} (n={f['n']})")
        return f"Results({self.summary['recipe']}, study {self.study[:8]}: {'; '.join(parts)})"


def evaluate(activation: Any, recipe: str = "mnist-mlp", *, params: dict[str, float] | None = None,
             seeds: int | Sequence[int] = 1, epochs: int | None = None, baselines: Sequence[str] | None = None,
             dataset: str | None = None, data_dir: str | Path | None = None, download: bool = False,
             train_limit: int | None = None, test_limit: int | None = None, variant: str | None = None,
             overrides: dict[str, Any] | None = None, device: str = "auto", threads: int | None = None,
             deterministic: bool = False, init_gain: str = "default", reference: float | None = None,
             reference_metric: str | None = None, db: str | Path = DEFAULT_DB, out: str | Path = DEFAULT_OUT,
             quiet: bool = False) -> Results:
    """Train ``activation`` and the recipe's baselines (or ``baselines``) over paired seeds and return the
    :class:`Results` -- the same work as ``actsym eval`` (results in the SQLite file ``db``, re-running resumes,
    report under ``out``).

    ``activation``: a catalog/corpus name, an expression in ``x`` (with ``params``), or an object from
    :func:`actsym.define`. ``recipe``: one of ``actsym.harness.recipes.names()``. ``seeds``: a count (seeds
    0..N-1) or explicit seeds. ``epochs``: override the recipe's. ``dataset``: e.g. ``"mnist-subset"`` (the
    real MNIST subset shipped in the package). ``train_limit`` / ``test_limit``: the first N examples.
    ``overrides``: recipe settings (``{"lr": 0.05, "batch_size": 64}``). ``reference``: the candidate's
    published accuracy (percent), compared with the measured CI (``reference_metric``: ``final``/``best``).
    ``quiet``: no progress output. Bad settings raise before anything runs (``KeyError`` for an unknown
    recipe, variant, setting or activation name; ``argparse.ArgumentTypeError`` -- a ``ValueError`` is not --
    for an out-of-range value).
    """
    from . import recipes as recipe_registry
    from .evaluate import check_settings

    sets = dict(overrides or {})  # text values are converted to the setting's type by the recipe
    check_settings(recipe_registry.resolve_settings(recipe_registry.get(recipe), variant, sets, epochs))
    paths = run_eval(activation, params, recipe=recipe, seeds=seeds, epochs=epochs, baselines=baselines,
                     data_dir=data_dir, device=device, db=db, out=out, quiet=quiet, deterministic=deterministic,
                     dataset=dataset, train_limit=train_limit, test_limit=test_limit, variant=variant,
                     overrides=sets, threads=threads, download=download, init_gain=init_gain,
                     reference=reference, reference_metric=reference_metric)
    summary = paths.pop("summary")
    return Results(summary=summary, paths=paths)
