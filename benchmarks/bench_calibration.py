"""Calibration accuracy: how often the engine finds a simulated participant's true Pain-60 within ±0.5 °C.

Grid: seeds × true Pain-60 (42-49 °C) × rating noise (SD on 0-100). Each cell runs the engine's own heat
calibration (`Engine._calibrate_heat`: ascending series or staircase from the protocol, fit, verification,
refinement) against a `SimParticipant` on simulated devices and a virtual clock, writing to a scratch
session folder. Reported: share within ±0.5 °C (requirement ≥ 90 %), per-cell shares below that, the
highest temperature ever delivered against the cap, the mean number of stimuli.

Run: `.venv/bin/python benchmarks/bench_calibration.py [--seeds 50] [--noise 2 4 8] [--json]`
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TRUE_PAIN60_C = (42.0, 43.0, 44.0, 45.0, 46.0, 47.0, 48.0, 49.0)
NOISE_SD = (2.0, 4.0, 8.0, 12.0)
TOLERANCE_C = 0.5
REQUIRED_SHARE = 0.90


def calibrate_once(protocol: Any, station: Any, truth: Any, seed: int, folder: Path) -> dict[str, Any]:
    """Run the engine's heat calibration once; return its output plus the stimuli delivered."""
    from cpm_session.clock import VirtualClock
    from cpm_session.devices.factory import effective_cap
    from cpm_session.record.folder import SessionFolder
    from cpm_session.sim.participant import SimParticipant
    from cpm_session.sim.world import Engine
    from cpm_session.sim.world import build_devices as open_devices
    from cpm_session.ui.headless import HeadlessUI

    clock = VirtualClock()
    cap = effective_cap(protocol.safety.thermode_cap_c, station)
    devs = open_devices(station, cap_c=cap, neutral_c=protocol.safety.neutral_c, clock=clock, seed=seed)
    for d in devs.all():
        d.connect()
    sim = SimParticipant(truth, np.random.default_rng(seed))
    eng = Engine(protocol, station, ui=HeadlessUI(clock), clock=clock, participant=sim, staff="auto", seed=seed,
                 devices=devs)
    folder.mkdir(parents=True)
    eng.folder = SessionFolder(folder, clock.now, fsync=False)
    eng.visit, eng.baseline, eng.phase = protocol.protocol.baseline_visit, None, "calibration"
    try:
        out = eng._calibrate_heat()
    finally:
        eng.folder.close()
        devs.close()
    out["delivered_c"] = [c[2]["target_c"] for c in devs.thermode.commands if c[1] == "launch"]  # type: ignore[attr-defined]
    return out


def run(seeds: int, noise: tuple[float, ...] = NOISE_SD, truths: tuple[float, ...] = TRUE_PAIN60_C,
        protocol_path: Path | None = None) -> dict[str, Any]:
    """Run the grid; return overall and per-cell figures."""
    from cpm_session.config.protocol import load_protocol
    from cpm_session.config.station import load_station
    from cpm_session.sim.participant import ParticipantTruth

    protocol = load_protocol(protocol_path or ROOT / "protocols" / "cpm-thermal.toml")
    station = load_station(ROOT / "hardware" / "sim.toml")
    cells: dict[tuple[float, float], list[float]] = defaultdict(list)
    n_stim: list[int] = []
    max_c = 0.0
    outcomes: dict[str, int] = defaultdict(int)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        k = 0
        for sd in noise:
            for p60 in truths:
                for seed in range(seeds):
                    k += 1
                    out = calibrate_once(protocol, station, ParticipantTruth(pain60_c=p60, noise_sd=sd), seed,
                                         Path(tmp) / f"c{k}")
                    cells[(p60, sd)].append(out["pain60_c"] - p60)
                    n_stim.append(out["n_stimuli"])
                    max_c = max(max_c, *out["delivered_c"])
                    outcomes[out["outcome"]] += 1
    errors = [e for v in cells.values() for e in v]
    share = sum(abs(e) <= TOLERANCE_C + 1e-9 for e in errors) / len(errors)
    per_cell = {f"{p60:g}C/sd{sd:g}": round(sum(abs(e) <= TOLERANCE_C + 1e-9 for e in v) / len(v), 3)
                for (p60, sd), v in sorted(cells.items())}
    per_noise = {f"sd{sd:g}": round(statistics.mean(abs(e) <= TOLERANCE_C + 1e-9
                                                    for (_, s), v in cells.items() if s == sd for e in v), 3)
                 for sd in noise}
    return {"n": len(errors), "share_within": round(share, 4), "required": REQUIRED_SHARE,
            "max_delivered_c": max_c, "cap_c": protocol.safety.thermode_cap_c,
            "mean_stimuli": round(statistics.mean(n_stim), 2), "mean_abs_error_c": round(statistics.mean(map(abs, errors)), 3),
            "per_noise": per_noise, "per_cell": per_cell,
            "cells_below": {c: s for c, s in per_cell.items() if s < REQUIRED_SHARE},
            "outcomes": dict(outcomes), "wall_s": round(time.perf_counter() - t0, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=50)
    p.add_argument("--noise", type=float, nargs="+", default=list(NOISE_SD), help="rating noise SDs")
    p.add_argument("--protocol", type=Path, default=None)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    r = run(args.seeds, tuple(args.noise), protocol_path=args.protocol)
    if args.json:
        print(json.dumps(r))
        return
    print(f"calibration, {r['n']} runs ({args.seeds} seeds x {len(TRUE_PAIN60_C)} true Pain-60 x noise "
          f"{args.noise}) in {r['wall_s']} s")
    print(f"  within ±{TOLERANCE_C} °C: {r['share_within']:.1%} (required {REQUIRED_SHARE:.0%}); by noise {r['per_noise']}")
    print(f"  mean |error| {r['mean_abs_error_c']} °C; max delivered {r['max_delivered_c']} °C (cap {r['cap_c']}); "
          f"mean stimuli {r['mean_stimuli']}; outcomes {r['outcomes']}")
    for cell, share in r["per_cell"].items():
        flag = "  <-- below" if share < REQUIRED_SHARE else ""
        print(f"    {cell:>12s}: {share:.0%}{flag}")


if __name__ == "__main__":
    main()
