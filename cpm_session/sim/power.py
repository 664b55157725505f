"""Power by simulation: many whole simulated trials, their ANCOVA results, and what they say.

A replicate is one whole two-arm trial run through the real engine (see `cpm_session.sim.trial`):
`n` participants per arm, both visits, then the trial's primary analysis (ANCOVA of post CPM_abs by
arm adjusted for baseline). For each cell (n per arm, drug effect) this module reports

- the rejection rate (two-sided p < alpha): the **power** when the effect is not 0, the **type-I
  error** when it is 0;
- the **coverage** of the 95 % confidence interval: the share of replicates whose interval holds the
  true adjusted difference (drug effect x the participants' expected TS_pre at the post visit);
- each with its Monte Carlo standard error sqrt(p (1 - p) / reps), plus bias and the empirical and
  model standard errors of the estimate.

Seeds: replicate `r` of cell (n, effect) uses ``SeedSequence(seed, spawn_key=(n, effect_key(effect), r))``
(the effect in millionths, offset to be non-negative), a child of the one root ``SeedSequence(seed)``; so
every replicate is independent, a run is reproducible whatever the scheduler or the order results come
back in, and a cell gives the same replicates whichever other cells are in the run and in whatever order
the effects are listed (`--effect 0.1` and `--effect 0,0.1` share the 0.1 cell's replicates).

Replicates run in parallel on the local cores (ProcessPoolExecutor) or on a Dask cluster
(`scheduler` = address of a dask.distributed scheduler, e.g. ``tcp://10.0.0.5:8786``; a
``LocalCluster`` in the tests). Workers need cpm_session importable.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cpm_session.analysis.constants import CI_LEVEL
from cpm_session.errors import CpmError

ALPHA = 1.0 - CI_LEVEL
DASK_CONNECT_TIMEOUT_S = 15.0
"""How long to wait for a Dask scheduler before giving up with one line."""
REPLICATE_COLUMNS = ["n_per_arm", "effect", "rep", "ok", "error", "estimate", "se", "ci_low", "ci_high", "p",
                     "true_diff", "n_analysed", "reactivated_treatment", "reactivated_control", "reactivation_fisher_p",
                     "seconds", "dropouts"]


class PowerError(CpmError):
    """The power request cannot be run (bad grid, no workers, scheduler unreachable, ...)."""


@dataclass(frozen=True)
class ReplicateTask:
    """One replicate to run: cell, replicate number, its seed and where the protocol is."""

    n_per_arm: int
    effect: float
    rep: int
    seed: int
    protocol_path: str
    arms: tuple[str, str] = ("treatment", "control")

    def seed_sequence(self) -> np.random.SeedSequence:
        """Return this replicate's SeedSequence: child (n, effect_key(effect), rep) of SeedSequence(seed)."""
        return np.random.SeedSequence(self.seed, spawn_key=(self.n_per_arm, effect_key(self.effect), self.rep))


EFFECT_KEY_SCALE = 1_000_000


def effect_key(effect: float) -> int:
    """Return the non-negative integer naming a drug effect in a replicate's spawn key (its millionths + 10^6)."""
    return int(round(effect * EFFECT_KEY_SCALE)) + EFFECT_KEY_SCALE


def make_tasks(ns: list[int], effects: list[float], reps: int, seed: int, protocol_path: str | Path) -> list[ReplicateTask]:
    """Return every replicate of the grid, in cell order."""
    if not ns or not effects:
        raise PowerError("give at least one --n and one --effect")
    if any(n < 2 for n in ns):
        raise PowerError(f"--n is participants per arm and must be at least 2 (the ANCOVA needs 2 per arm), got {ns}")
    if reps < 1:
        raise PowerError(f"--reps must be at least 1, got {reps}")
    if seed < 0:
        raise PowerError(f"--seed must be a non-negative integer, got {seed}")
    if any(not math.isfinite(e) or abs(e) > 1.0 for e in effects):
        raise PowerError(f"--effect values are fractions of TS_pre between -1 and 1, got {effects}")
    keys = [effect_key(e) for e in effects]
    if len(set(keys)) != len(keys):
        raise PowerError(f"--effect values must differ by at least 1e-6 (they name the replicates' seeds), got {effects}")
    return [ReplicateTask(n, float(e), r, seed, str(protocol_path)) for n in ns for e in effects for r in range(reps)]


def summarize_replicates(reps: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Return one row per cell: rejection rate (power / type-I error), CI coverage, each with its Monte
    Carlo SE, bias, empirical SE, mean model SE and the number of replicates that failed."""
    rows = []
    for (n, eff), g in reps.groupby(["n_per_arm", "effect"], sort=True):
        ok = g[g["ok"].astype(bool)]
        k = len(ok)
        rej = float((ok["p"] < alpha).mean()) if k else float("nan")
        cov = float(((ok["ci_low"] <= ok["true_diff"]) & (ok["true_diff"] <= ok["ci_high"])).mean()) if k else float("nan")
        err = ok["estimate"] - ok["true_diff"]
        rows.append({
            "n_per_arm": int(n), "effect": float(eff), "reps": int(len(g)), "reps_ok": int(k),
            "failed": int(len(g) - k), "what": "type-I error" if eff == 0 else "power",
            "rejection_rate": rej, "rejection_mcse": _mcse(rej, k),
            "coverage": cov, "coverage_mcse": _mcse(cov, k),
            "mean_true_diff": float(ok["true_diff"].mean()) if k else float("nan"),
            "mean_estimate": float(ok["estimate"].mean()) if k else float("nan"),
            "bias": float(err.mean()) if k else float("nan"),
            "bias_mcse": float(err.std(ddof=1) / math.sqrt(k)) if k > 1 else float("nan"),
            "empirical_se": float(ok["estimate"].std(ddof=1)) if k > 1 else float("nan"),
            "mean_model_se": float(ok["se"].mean()) if k else float("nan"),
            "dropouts": int(pd.to_numeric(ok["dropouts"], errors="coerce").fillna(0).sum()) if "dropouts" in ok else 0,
            "mean_reactivated_treatment": _col_mean(ok, "reactivated_treatment"),
            "mean_reactivated_control": _col_mean(ok, "reactivated_control"),
            "reactivation_fisher_rejection": float((pd.to_numeric(ok["reactivation_fisher_p"], errors="coerce")
                                                    .dropna() < alpha).mean())
            if "reactivation_fisher_p" in ok.columns and ok["reactivation_fisher_p"].notna().any() else float("nan"),
        })
    return pd.DataFrame(rows)


def _col_mean(df: pd.DataFrame, col: str) -> float:
    return float(pd.to_numeric(df[col], errors="coerce").mean()) if col in df.columns else float("nan")


def _mcse(p: float, k: int) -> float:
    """Monte Carlo SE of a proportion `p` estimated from `k` replicates."""
    return math.sqrt(p * (1.0 - p) / k) if k and math.isfinite(p) else float("nan")


@dataclass
class PowerResult:
    """Every replicate, the per-cell summary and how long the run took."""

    replicates: pd.DataFrame
    cells: pd.DataFrame
    wall_s: float
    backend: str
    workers: int
    seed: int
    notes: list[str] = field(default_factory=list)


def run_power(ns: list[int], effects: list[float], reps: int, seed: int, *, protocol_path: str | Path,
              workers: int | None = None, scheduler: str | None = None,
              replicate: Callable[[ReplicateTask], dict[str, Any]] | None = None,
              progress: Callable[[int, int], None] | None = None, checkpoint: str | Path | None = None) -> PowerResult:
    """Run every replicate of the grid in parallel and summarize them.

    Local cores by default (`workers` processes, default os.cpu_count()); with `scheduler`, on the Dask
    cluster at that address (its workers' count is reported). `replicate` defaults to
    `cpm_session.sim.trial.power_replicate` (a whole trial through the engine). Each finished replicate
    is appended to `checkpoint` (CSV) at once; Ctrl-C stops the run and summarizes the replicates done.
    """
    if replicate is None:
        from cpm_session.sim.trial import power_replicate

        replicate = power_replicate
    tasks = make_tasks(ns, effects, reps, seed, protocol_path)
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    sink = _Checkpoint(checkpoint)

    def done(row: dict[str, Any]) -> None:
        rows.append(row)
        sink.write(row)
        if progress:
            progress(len(rows), len(tasks))

    interrupted = False
    try:
        if scheduler:
            backend, n_workers = _run_dask(scheduler, tasks, replicate, done)
        else:
            n_workers = max(1, int(workers or os.cpu_count() or 1))
            backend = f"local ProcessPoolExecutor, {n_workers} process(es)"
            ex = ProcessPoolExecutor(max_workers=n_workers)
            try:
                futs = [ex.submit(replicate, t) for t in tasks]
                for f in as_completed(futs):
                    done(f.result())
            finally:
                ex.shutdown(wait=True, cancel_futures=True)
    except KeyboardInterrupt:
        interrupted = True
        backend = backend if "backend" in locals() else "interrupted"
        n_workers = n_workers if "n_workers" in locals() else 0
    finally:
        sink.close()
    wall = time.perf_counter() - t0
    df = pd.DataFrame(rows, columns=REPLICATE_COLUMNS).sort_values(["n_per_arm", "effect", "rep"]).reset_index(drop=True)
    res = PowerResult(df, summarize_replicates(df), wall, backend, n_workers, seed)
    if interrupted:
        res.notes.append(f"interrupted: {len(df)} of {len(tasks)} replicates finished; figures are over those")
    failed = df[~df["ok"].astype(bool)]
    if len(failed):
        res.notes.append(f"{len(failed)} replicate(s) could not be analysed (first: {failed['error'].iloc[0]}); "
                         "rates are over the analysed replicates")
    return res


class _Checkpoint:
    """Append replicate rows to a CSV as they arrive (a killed run keeps what it finished)."""

    def __init__(self, path: str | Path | None) -> None:
        self._f = None
        if path is not None:
            p = Path(path)
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
                self._f = open(p, "w", encoding="utf-8", newline="")
            except OSError as e:
                raise PowerError(f"cannot write {p}: {e.strerror or e}") from e
            self._f.write(",".join(REPLICATE_COLUMNS) + "\n")

    def write(self, row: dict[str, Any]) -> None:
        if self._f is not None:
            pd.DataFrame([row], columns=REPLICATE_COLUMNS).to_csv(self._f, header=False, index=False)
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()


def _run_dask(scheduler: str, tasks: list[ReplicateTask], replicate: Callable[[ReplicateTask], dict[str, Any]],
              done: Callable[[dict[str, Any]], None]) -> tuple[str, int]:
    """Run `tasks` on the Dask scheduler at `scheduler`, calling `done` with each result; return (backend, workers)."""
    try:
        from dask.distributed import Client
        from dask.distributed import as_completed as dask_completed
    except ImportError as e:  # pragma: no cover - dask is a dependency
        raise PowerError(f"--scheduler needs dask.distributed ({e})") from e
    try:
        client = Client(scheduler, timeout=DASK_CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as e:
        raise PowerError(f"cannot connect to the Dask scheduler at {scheduler}: {e}") from e
    try:
        n_workers = len(client.scheduler_info().get("workers", {}))
        if n_workers == 0:
            raise PowerError(f"the Dask scheduler at {scheduler} has no workers")
        futs = client.map(replicate, tasks, pure=False)
        try:
            for f in dask_completed(futs):
                done(f.result())
        finally:
            client.cancel(futs)
    finally:
        client.close()
    return f"Dask scheduler {scheduler}, {n_workers} worker(s)", n_workers


# ---------------------------------------------------------------------------------------------- output
def markdown_table(cells: pd.DataFrame) -> str:
    """Return the per-cell results as a Markdown table (rates in %, ± Monte Carlo SE)."""
    lines = ["| n per arm | drug effect (× TS_pre) | what | rejection rate (p < 0.05) | 95 % CI coverage | "
             "bias (points) | empirical SE | mean model SE | reps (failed) | participants without a post visit |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in cells.itertuples():
        lines.append(f"| {r.n_per_arm} | {r.effect:g} | {r.what} | {100 * r.rejection_rate:.1f} % ± "
                     f"{100 * r.rejection_mcse:.1f} | {100 * r.coverage:.1f} % ± {100 * r.coverage_mcse:.1f} | "
                     f"{r.bias:+.2f} ± {r.bias_mcse:.2f} | {r.empirical_se:.2f} | {r.mean_model_se:.2f} | "
                     f"{r.reps_ok} ({r.failed}) | {getattr(r, 'dropouts', 0)} |")
    return "\n".join(lines)


def power_curve(cells: pd.DataFrame, path: str | Path, alpha: float = ALPHA) -> Path:
    """Draw the rejection rate against n per arm, one line per drug effect, with ±1.96 MC SE bars; save a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cpm_session.analysis.constants import PLOT_DPI

    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    many_n = cells["n_per_arm"].nunique() > 1
    if many_n:
        for eff, g in cells.groupby("effect", sort=True):
            g = g.sort_values("n_per_arm")
            ax.errorbar(g["n_per_arm"], 100 * g["rejection_rate"], yerr=196 * g["rejection_mcse"], marker="o",
                        capsize=3, label=f"effect {eff:g} × TS_pre" + (" (type-I error)" if eff == 0 else ""))
        ax.set_xlabel("participants per arm")
    else:
        g = cells.sort_values("effect")
        ax.errorbar(g["effect"], 100 * g["rejection_rate"], yerr=196 * g["rejection_mcse"], marker="o", capsize=3,
                    label=f"n = {int(g['n_per_arm'].iloc[0])} per arm")
        ax.set_xlabel("drug effect on CPM (fraction of TS_pre)")
    ax.axhline(100 * alpha, color="grey", ls="--", lw=1, label=f"alpha {100 * alpha:.0f} %")
    ax.axhline(80, color="grey", ls=":", lw=1, label="80 %")
    ax.set_ylim(-1, 102)  # a line at 0 % or 100 % stays visible
    ax.set_ylabel("rejection rate, % (power; type-I error at effect 0)")
    ax.set_title("Power of the ANCOVA of post CPM_abs (simulated trials, ±1.96 MC SE)")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=PLOT_DPI)
    plt.close(fig)
    return out


def write_outputs(res: PowerResult, out_dir: str | Path) -> dict[str, Path]:
    """Write replicates.csv, power.csv, power.md and power_curve.png into `out_dir`; return their paths."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths = {"replicates": out / "replicates.csv", "cells": out / "power.csv", "markdown": out / "power.md",
                 "curve": out / "power_curve.png"}
        res.replicates.to_csv(paths["replicates"], index=False)
        res.cells.to_csv(paths["cells"], index=False)
        head = (f"Power by simulation: {len(res.replicates)} replicate trials through the engine, seed {res.seed}, "
                f"{res.backend}, wall time {res.wall_s:.1f} s.\n\nTwo-sided ANCOVA of post CPM_abs by arm adjusted for "
                "baseline; rejection = p < 0.05 (power when the effect is not 0, type-I error when it is 0); "
                "coverage = share of 95 % CIs holding the true difference; ± = Monte Carlo SE.\n\n")
        paths["markdown"].write_text(head + markdown_table(res.cells) + "\n"
                                     + "".join(f"\n{n}\n" for n in res.notes), encoding="utf-8")
    except OSError as e:
        raise PowerError(f"cannot write power results into {out}: {e.strerror or e}") from e
    power_curve(res.cells, paths["curve"])
    return paths


def parse_list(text: str, kind: type, name: str) -> list[Any]:
    """Parse "20,40,60" into [20, 40, 60] (kind int or float); PowerError naming `name` otherwise."""
    try:
        vals = [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise PowerError(f"{name} must be a comma-separated list of {kind.__name__}s, got {text!r}") from None
    if not vals:
        raise PowerError(f"{name} is empty")
    return list(dict.fromkeys(vals))


def replicate_row(task: ReplicateTask, **fields: Any) -> dict[str, Any]:
    """Return a replicate result row for `task` (missing fields NaN)."""
    row: dict[str, Any] = dict.fromkeys(REPLICATE_COLUMNS, float("nan"))
    row.update(n_per_arm=task.n_per_arm, effect=task.effect, rep=task.rep, ok=False, error="")
    row.update(fields)
    return row
