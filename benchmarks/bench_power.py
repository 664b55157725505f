"""Power by simulation: the cost of one headless visit, and null replicates on local cores vs a LocalCluster.

1. Times `--visits` headless simulated visits through the engine with per-event fsync (a real visit) and
   inside `datalog.scratch_writes()` (what power replicates use), so the fsync share is measured.
2. Runs `--reps` null replicate trials (`--n` participants per arm, drug effect 0) with the same seed on
   the local cores (ProcessPoolExecutor, `--workers`) and on a `--workers`-worker dask LocalCluster; prints
   type-I error and 95 % CI coverage with their Monte Carlo SE, and both wall times. Both backends must
   give identical replicates.

Run: .venv/bin/python benchmarks/bench_power.py [--reps 40] [--n 20] [--workers 2] [--backends local,cluster]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

from cpm_session.record.folder import scratch_writes
from cpm_session.resources import resolve
from cpm_session.sim.power import markdown_table, run_power
from cpm_session.sim.world import run_simulated_visit


def visit_seconds(k: int) -> dict[str, float]:
    """Return the mean wall time of `k` headless simulated visits, durable and scratch."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench-power-") as d:
        run_simulated_visit(d, "W000", "baseline", seed=0)  # warm-up: imports, protocol parse
        for label in ("durable", "scratch"):
            t0 = time.perf_counter()
            for i in range(k):
                if label == "scratch":
                    with scratch_writes():
                        run_simulated_visit(d, f"{label[0].upper()}{i:03d}", "baseline", seed=i)
                else:
                    run_simulated_visit(d, f"{label[0].upper()}{i:03d}", "baseline", seed=i)
            out[label] = (time.perf_counter() - t0) / k
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--n", type=int, default=20, help="participants per arm")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--visits", type=int, default=10)
    ap.add_argument("--backends", default="local,cluster")
    args = ap.parse_args()
    protocol = str(resolve("protocols/cpm-thermal.toml").resolve())
    report: dict[str, object] = {}
    v = visit_seconds(args.visits)
    report["visit_s_durable"], report["visit_s_scratch"] = round(v["durable"], 4), round(v["scratch"], 4)
    print(f"one headless visit: {v['durable']:.3f} s with per-event fsync, {v['scratch']:.3f} s without "
          f"({100 * (1 - v['scratch'] / v['durable']):.0f} % saved)")
    results = {}
    for backend in args.backends.split(","):
        grid = dict(ns=[args.n], effects=[0.0], reps=args.reps, seed=args.seed, protocol_path=protocol)
        if backend == "cluster":
            from dask.distributed import LocalCluster

            with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster:
                t0 = time.perf_counter()
                res = run_power(**grid, scheduler=cluster.scheduler_address)  # type: ignore[arg-type]
                wall = time.perf_counter() - t0
        else:
            t0 = time.perf_counter()
            res = run_power(**grid, workers=args.workers)  # type: ignore[arg-type]
            wall = time.perf_counter() - t0
        results[backend] = res
        c = res.cells.iloc[0]
        print(f"\n{backend}: {res.backend}; {args.reps} null trials of {args.n}/arm in {wall:.1f} s "
              f"({wall / args.reps:.2f} s per trial)")
        print(markdown_table(res.cells))
        report[backend] = {"wall_s": round(wall, 1), "type1": c["rejection_rate"], "type1_mcse": c["rejection_mcse"],
                           "coverage": c["coverage"], "coverage_mcse": c["coverage_mcse"], "failed": int(c["failed"])}
    if len(results) == 2:
        a, b = (r.replicates[["rep", "estimate", "p"]] for r in results.values())
        report["identical_replicates"] = bool(a.equals(b))
        print(f"\nidentical replicates on both backends: {report['identical_replicates']}")
    print(json.dumps(report, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
