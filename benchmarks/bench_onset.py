"""Stimulus onset error: planned onset vs the moment the `L` (launch) byte reaches the thermode, over a pty.

A whole simulated visit (short protocol: every phase, no acclimatization, short rests, 20 s immersion, no
questionnaires) runs through the real TCS II driver against the pty emulator on `RealClock(speed)`. The
emulator stamps every byte it reads with `time.perf_counter()`; the engine's clock counts from its own
`perf_counter()` origin, so planned session time `p` is wall `t0 + p / speed`. Errors are reported in
wall milliseconds (what a participant would feel at speed 1) and in session milliseconds.

Run: `.venv/bin/python benchmarks/bench_onset.py [--speed 10] [--json]`
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHORT = {"acclimatization": {"duration_s": 0.0, "min_s": 0.0},
         "calibration": {"rest_s": 2.0, "verify_n": 1},
         "test_stimulus": {"interval_s": 12.0},
         "cold_pressor": {"duration_s": 20.0, "max_s": 20.0, "rating_at_s": 10.0, "bath_stable_s": 2.0},
         "questionnaires": {"names": []}}
"""The standard thermal protocol shortened to ~280 session seconds (every phase, every stimulus kind)."""


def write_short_protocol(folder: Path) -> Path:
    """Write the short protocol to `folder/short.toml` and return its path."""
    from tests.conftest import THERMAL, toml_dumps

    data = tomllib.loads(THERMAL.read_text(encoding="utf-8"))
    for table, kv in SHORT.items():
        data[table].update(kv)
    path = folder / "short.toml"
    path.write_text(toml_dumps(data), encoding="utf-8")
    return path


def pct(values: list[float], q: float) -> float:
    """Return the `q` quantile (nearest rank) of `values`."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]


def run(speed: float, visits: int = 1) -> dict[str, Any]:
    """Run `visits` emulated visits at `speed`; return onset errors (wall ms) of every stimulus."""
    errors: list[float] = []
    phases: set[str] = set()
    for i in range(visits):
        e, ph = _one_visit(speed, seed=i)
        errors += e
        phases |= ph
    return {"speed": speed, "visits": visits, "n": len(errors), "median_ms": statistics.median(errors),
            "p99_ms": pct(errors, 0.99), "max_ms": max(errors), "min_ms": min(errors), "phases": sorted(phases)}


def _one_visit(speed: float, seed: int) -> tuple[list[float], set[str]]:
    from cpm_session.clock import RealClock
    from cpm_session.config.protocol import load_protocol
    from cpm_session.config.station import load_station
    from cpm_session.record.folder import read_events
    from cpm_session.sim.emulators import start_emulated_station
    from cpm_session.sim.world import run_visit
    from cpm_session.ui.headless import HeadlessUI

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        path, st = start_emulated_station(tmp, speed=speed)
        try:
            clock = RealClock(speed)
            out = run_visit(load_protocol(write_short_protocol(tmp)), load_station(path), data_dir=tmp / "data",
                            participant="B001", visit="baseline", ui=HeadlessUI(clock), clock=clock, speed=speed,
                            seed=seed)
            evs, _ = read_events(out.session_dir / "events.jsonl")
        finally:
            st.stop()
        launches = [t for t, chunk in st.thermode.received if b"L" in chunk]
    stims = [e for e in evs if e["event"] == "stimulus"]
    if out.status != "completed" or len(launches) != len(stims):
        raise RuntimeError(f"visit {out.status} ({out.message}); {len(launches)} L bytes for {len(stims)} stimuli")
    wall_ms = [(t_l - (clock._t0 + s["planned_onset_t"] / speed)) * 1000 for t_l, s in zip(launches, stims)]
    return wall_ms, {s["phase"] for s in stims}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--speed", type=float, default=10.0, help="time compression (1 = real time, ~5 min)")
    p.add_argument("--visits", type=int, default=1, help="visits to pool (12 stimuli each)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args()
    r = run(args.speed, args.visits)
    if args.json:
        print(json.dumps(r))
        return
    print(f"onset error, planned -> L byte at the emulated TCS II, {r['n']} stimuli in {args.visits} visit(s) "
          f"at speed {args.speed:g} "
          f"({', '.join(r['phases'])}):")
    print(f"  wall ms: median {r['median_ms']:.2f}, p99 {r['p99_ms']:.2f}, max {r['max_ms']:.2f}, "
          f"min {r['min_ms']:.2f}")
    print(f"  session ms: median {r['median_ms'] * args.speed:.1f}, p99 {r['p99_ms'] * args.speed:.1f}")


if __name__ == "__main__":
    main()
