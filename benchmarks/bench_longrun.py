"""Many simulated visits back to back in one process: memory and open files must not grow.

Run: `.venv/bin/python benchmarks/bench_longrun.py [--visits 20]`. Each visit is a full headless
simulated visit on a virtual clock (`run_simulated_visit`), a new participant each time. After every
visit the script records Python heap in use (tracemalloc), resident memory (psutil RSS) and open file
descriptors; growth is measured from the end of the second visit (the first one warms caches up).
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from cpm_session.sim.world import run_simulated_visit

HEAP_GROWTH_LIMIT_MB = 2.0
"""Allowed growth of the Python heap after warm-up over the whole run."""
RSS_GROWTH_LIMIT_MB = 30.0
FD_GROWTH_LIMIT = 0


@dataclass
class LongRun:
    """Per-visit measurements of a long run."""

    heap_mb: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)

    def growth(self, values: list[float] | list[int]) -> float:
        """Return the growth from the end of visit 2 to the end of the run."""
        return float(values[-1] - values[min(1, len(values) - 1)])

    @property
    def ok(self) -> bool:
        """Return True if heap, RSS and descriptors stayed within their limits."""
        return (self.growth(self.heap_mb) <= HEAP_GROWTH_LIMIT_MB and self.growth(self.rss_mb) <= RSS_GROWTH_LIMIT_MB
                and self.growth(self.fds) <= FD_GROWTH_LIMIT)


def run(visits: int, data_dir: Path, *, trace: bool = True) -> LongRun:
    """Run `visits` simulated visits back to back in this process; return the measurements."""
    proc = psutil.Process()
    res = LongRun()
    if trace:
        tracemalloc.start()
    try:
        for i in range(visits):
            t0 = time.perf_counter()
            run_simulated_visit(data_dir, f"L{i:04d}", "baseline", seed=i)
            res.wall_s.append(time.perf_counter() - t0)
            gc.collect()
            res.heap_mb.append(tracemalloc.get_traced_memory()[0] / 2**20 if trace else 0.0)
            res.rss_mb.append(proc.memory_info().rss / 2**20)
            res.fds.append(proc.num_fds())
    finally:
        if trace:
            tracemalloc.stop()
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--visits", type=int, default=20)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        r = run(args.visits, Path(tmp))
    if args.json:
        print(json.dumps({"visits": args.visits, "wall_s": round(sum(r.wall_s), 1),
                          "heap_growth_mb": round(r.growth(r.heap_mb), 3), "rss_growth_mb": round(r.growth(r.rss_mb), 2),
                          "fds_first": r.fds[0], "fds_last": r.fds[-1], "ok": r.ok,
                          "heap_limit_mb": HEAP_GROWTH_LIMIT_MB, "rss_limit_mb": RSS_GROWTH_LIMIT_MB}))
        return
    print(f"{args.visits} visits back to back: {sum(r.wall_s):.1f} s")
    print(f"heap growth {r.growth(r.heap_mb):+.2f} MB (limit {HEAP_GROWTH_LIMIT_MB}), "
          f"RSS growth {r.growth(r.rss_mb):+.1f} MB (limit {RSS_GROWTH_LIMIT_MB}), "
          f"open fds {r.fds[0]} -> {r.fds[-1]}: {'OK' if r.ok else 'FAIL'}")


if __name__ == "__main__":
    main()
