"""Visits back to back in one process (virtual clock): heap, resident memory and open files stay flat.

The full 20-visit run is `benchmarks/bench_longrun.py`; this is its small version.
"""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import psutil

from cpm_session.sim.world import run_simulated_visit

VISITS = 6
HEAP_GROWTH_LIMIT_MB = 1.0
RSS_GROWTH_LIMIT_MB = 20.0


def test_back_to_back_visits_do_not_grow_memory_or_open_files(tmp_path: Path) -> None:
    proc = psutil.Process()
    heap, rss, fds = [], [], []
    tracemalloc.start()
    try:
        for i in range(VISITS):
            folder = run_simulated_visit(tmp_path, f"L{i:03d}", "baseline", seed=i)
            assert (folder / "session.json").read_text().count('"status": "completed"') == 1
            gc.collect()
            heap.append(tracemalloc.get_traced_memory()[0] / 2**20)
            rss.append(proc.memory_info().rss / 2**20)
            fds.append(proc.num_fds())
            assert not [f for f in proc.open_files() if str(tmp_path) in f.path]  # every session file closed
    finally:
        tracemalloc.stop()
    assert fds[-1] == fds[0], fds
    assert heap[-1] - heap[1] <= HEAP_GROWTH_LIMIT_MB, heap  # from the end of the warm-up visit
    assert rss[-1] - rss[1] <= RSS_GROWTH_LIMIT_MB, rss
