"""SQLite results store — the source of truth for every evaluation.

Table ``runs``: one row per (study, activation, seed) with the activation's expression, hash and
parameters, the full settings, library versions, device, status (``running`` / ``finished`` /
``failed``), timestamps and the error text of a failed run.  ``key`` identifies a run across
processes: re-running the same command finds the row again, skips it when finished and resumes it
otherwise.  A *study* is one recipe + variant + settings + data selection.

Table ``epochs``: one row per completed epoch: losses and accuracies, seconds, learning rate,
firing statistics and learned activation parameters (JSON).

Table ``refs``: published numbers given with ``actsym eval --reference VALUE`` (per study and activation
identity, in percent, and which epoch's accuracy they are: ``final`` or ``best``).
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT UNIQUE NOT NULL,
    study TEXT NOT NULL,
    recipe TEXT NOT NULL,
    variant TEXT,
    activation TEXT NOT NULL,
    expr TEXT,
    latex TEXT,
    act_hash TEXT,
    params TEXT,
    learnable TEXT,
    seed INTEGER NOT NULL,
    settings TEXT,
    dataset TEXT,
    versions TEXT,
    device TEXT,
    status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed')),
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS runs_study ON runs (study);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS epochs (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    train_loss REAL,
    train_acc REAL,
    test_loss REAL,
    test_acc REAL,
    seconds REAL,
    lr REAL,
    firing TEXT,
    act_params TEXT,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS refs (
    study TEXT NOT NULL,
    act_hash TEXT NOT NULL,
    value REAL NOT NULL,
    metric TEXT NOT NULL CHECK (metric IN ('final', 'best')),
    PRIMARY KEY (study, act_hash)
);
"""

_JSON_FIELDS = ("params", "learnable", "settings", "dataset", "versions")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


class StoreError(ValueError):
    """The results database cannot be used (one line for the CLI)."""


class Store:
    """A thin wrapper around one SQLite file (created on first use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_file():
            raise StoreError(f"results database {self.path} is not a file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(self.path, timeout=30)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA busy_timeout = 30000")  # concurrent evals wait for each other's writes
            self.conn.execute("PRAGMA journal_mode = WAL")  # readers never block the writer
            self.conn.execute("PRAGMA foreign_keys = ON")
            self.conn.executescript(SCHEMA)
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('uid', ?)", (uuid.uuid4().hex,))
            self.conn.commit()
            self.uid = self.conn.execute("SELECT value FROM meta WHERE name = 'uid'").fetchone()[0]
        except sqlite3.DatabaseError as err:
            raise StoreError(
                f"results database {self.path} is damaged or not an actsym database ({err}); move it aside "
                "(its finished runs are lost to this study) or choose another --db") from None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs ------------------------------------------------------------------------------------

    def _row(self, row: sqlite3.Row | None) -> dict[str, Any] | None:
        if row is None:
            return None
        out = dict(row)
        for name in _JSON_FIELDS:
            if out.get(name) is not None:
                out[name] = json.loads(out[name])
        return out

    def run_by_key(self, key: str) -> dict[str, Any] | None:
        return self._row(self.conn.execute("SELECT * FROM runs WHERE key = ?", (key,)).fetchone())

    def get_or_create_run(self, key: str, **fields: Any) -> dict[str, Any]:
        """The run row for ``key``, inserted with ``fields`` and status ``running`` if new."""
        row = self.run_by_key(key)
        if row is not None:
            return row
        values = {k: (json.dumps(v, sort_keys=True) if k in _JSON_FIELDS else v) for k, v in fields.items()}
        values.update(key=key, status="running", created=_now(), updated=_now())
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self.conn:  # OR IGNORE: another eval may have created the same run a moment ago
            self.conn.execute(f"INSERT OR IGNORE INTO runs ({cols}) VALUES ({marks})", tuple(values.values()))
        return self.run_by_key(key)  # type: ignore[return-value]

    def set_status(self, run_id: int, status: str, error: str | None = None, device: str | None = None) -> None:
        with self.conn:
            self.conn.execute(
                "UPDATE runs SET status = ?, error = ?, device = COALESCE(?, device), updated = ? WHERE id = ?",
                (status, error, device, _now(), run_id))

    def runs(self, study: str | None = None, recipe: str | None = None,
             status: str | None = None) -> list[dict[str, Any]]:
        query, args = "SELECT * FROM runs WHERE 1=1", []
        for col, val in (("study", study), ("recipe", recipe), ("status", status)):
            if val is not None:
                query += f" AND {col} = ?"
                args.append(val)
        rows = self.conn.execute(query + " ORDER BY id", args).fetchall()
        return [r for r in (self._row(x) for x in rows) if r is not None]

    def studies(self) -> list[dict[str, Any]]:
        """One row per study: recipe, variant, number of runs, last update."""
        rows = self.conn.execute(
            "SELECT study, recipe, variant, COUNT(*) AS n, MAX(updated) AS updated FROM runs "
            "GROUP BY study ORDER BY updated").fetchall()
        return [dict(r) for r in rows]

    # -- published reference numbers -------------------------------------------------------------

    def set_reference(self, study: str, act_hash: str, value: float, metric: str) -> None:
        """Record (or replace) the published accuracy (percent) of one activation identity in ``study``."""
        if metric not in ("final", "best"):
            raise ValueError(f"reference metric must be 'final' or 'best', got {metric!r}")
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO refs VALUES (?, ?, ?, ?)",
                              (study, act_hash, float(value), metric))

    def references(self, study: str) -> dict[str, tuple[float, str]]:
        """act_hash -> (published accuracy in percent, ``final``/``best``) for ``study``."""
        rows = self.conn.execute("SELECT act_hash, value, metric FROM refs WHERE study = ?", (study,)).fetchall()
        return {r["act_hash"]: (float(r["value"]), r["metric"]) for r in rows}

    # -- epochs ----------------------------------------------------------------------------------

    def add_epoch(self, run_id: int, rec: Any) -> None:
        """Store an ``EpochRecord`` (replacing a row of the same epoch, e.g. after a resume)."""
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO epochs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, rec.epoch, _finite(rec.train_loss), _finite(rec.train_acc), _finite(rec.test_loss),
                 _finite(rec.test_acc), rec.seconds, rec.lr, json.dumps(rec.firing), json.dumps(rec.act_params)))
            self.conn.execute("UPDATE runs SET updated = ? WHERE id = ?", (_now(), run_id))

    def delete_epochs_after(self, run_id: int, epoch: int) -> None:
        with self.conn:
            self.conn.execute("DELETE FROM epochs WHERE run_id = ? AND epoch > ?", (run_id, epoch))

    def epochs(self, run_id: int) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT * FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,)).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["firing"] = json.loads(d["firing"] or "{}")
            d["act_params"] = json.loads(d["act_params"] or "{}")
            out.append(d)
        return out

    def epochs_for(self, run_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
        return {rid: self.epochs(rid) for rid in run_ids}
