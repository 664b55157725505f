"""Cost of trusting nothing unverified: the verification gate per session, the ledger's anchors, and a
whole data folder through `cpm-session verify`.

Writes a data folder of real simulated visits (virtual clock, real ledger), then times:
- `record.gate.check` of one session (hash chain, header/results recomputed from the log, table hashes,
  ledger anchors), median over repetitions;
- one ledger anchor (lock, append, fsync) into a ledger of 10 000 entries, median;
- reading and checking a 10 000-entry ledger (uncached);
- `verify` of the whole folder.

    PYTHONPATH=. python benchmarks/bench_verify.py [--visits 6] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--visits", type=int, default=6, help="simulated visits to write (pairs baseline/post)")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    from cpm_session.clock import VirtualClock
    from cpm_session.record import ledger
    from cpm_session.record.gate import check
    from cpm_session.record.integrity import verify_path
    from cpm_session.sim.world import run_simulated_visit

    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        data = Path(tmp) / "data"
        t0 = time.perf_counter()
        sessions = []
        for i in range(a.visits):
            visit = "baseline" if i % 2 == 0 else "post"
            sessions.append(run_simulated_visit(data, f"P{i // 2:03d}", visit, seed=i, clock=VirtualClock()))
        write_s = time.perf_counter() - t0
        anchors = len((data / "ledger.jsonl").read_text().splitlines())
        per = []
        for _ in range(a.reps):
            for s in sessions:
                ledger._CACHE.clear()
                t = time.perf_counter()
                r = check(s)
                per.append(time.perf_counter() - t)
                assert r.ok, r.problems
        t = time.perf_counter()
        results = verify_path(data)
        folder_s = time.perf_counter() - t
        assert all(r.ok for r in results)

        big = Path(tmp) / "big"
        big.mkdir()
        lines = []
        prev = "0" * 64
        from cpm_session.record.folder import line_hash

        for k in range(10_000):
            line = json.dumps({"seq": k, "wall": "2026-01-01T00:00:00.000Z", "subject": f"P{k % 500:03d}/s",
                               "point": "p", "events": k, "head": "a" * 64, "prev": prev},
                              separators=(",", ":")).encode()
            lines.append(line)
            prev = line_hash(line)
        (big / "ledger.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        anchor_s = []
        for k in range(50):
            t = time.perf_counter()
            ledger.anchor(big, "P001/s", "b" * 64, k + 1, "bench")
            anchor_s.append(time.perf_counter() - t)
        ledger._CACHE.clear()
        t = time.perf_counter()
        led = ledger.read_ledger(big)
        read_s = time.perf_counter() - t
        assert not led.problems and len(led.entries) == 10_050

    fig = {"visits": a.visits, "anchors_per_visit": anchors / a.visits, "write_s": round(write_s, 2),
           "gate_median_ms": round(statistics.median(per) * 1000, 2), "gate_max_ms": round(max(per) * 1000, 2),
           "verify_folder_s": round(folder_s, 3), "anchor_median_ms": round(statistics.median(anchor_s) * 1000, 2),
           "anchor_max_ms": round(max(anchor_s) * 1000, 2), "ledger_10k_read_s": round(read_s, 3)}
    if a.json:
        print(json.dumps(fig))
    else:
        print(f"gate check of one real session: median {fig['gate_median_ms']} ms, max {fig['gate_max_ms']} ms "
              f"({a.visits} sessions x {a.reps})")
        print(f"verify of the folder ({a.visits} sessions, {anchors} anchors): {fig['verify_folder_s']} s")
        print(f"ledger anchor (lock, append, fsync) into 10 000 entries: median {fig['anchor_median_ms']} ms, "
              f"max {fig['anchor_max_ms']} ms; {fig['anchors_per_visit']:.0f} anchors per visit")
        print(f"read + check a 10 000-entry ledger: {fig['ledger_10k_read_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
