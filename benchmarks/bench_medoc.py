"""Medoc over TCP: planned onset -> TRIGGER at the MMS emulator, and Escape (abort()) -> ABORT at the emulator.

The real MedocThermode talks to the MedocEmulator on localhost (speed 10: a 1-3 s pre-test lasts
0.1-0.3 s wall). Command spacing 0.3 s in the driver, 0.25 s enforced by the emulator (closer commands
are reset, as MMS users report). Times are `time.perf_counter()` on both sides (same process).

- onset, prepared: `prepare()` runs ahead; at the planned onset (>= one spacing after the last poll)
  `launch()` is called; figure = TRIGGER arrival at the emulator - planned onset.
- onset, stimulate(): no preparation ahead (what the engine calls today); figure = TRIGGER arrival -
  call time (SELECT_TP, pre-test polling, TRIGGER).
- abort: 0.1-1.0 s into a stimulus, `abort()` is called; figure = ABORT arrival - call. Half the repetitions
  hold the driver's command lock (a command in flight): ABORT must not wait for it. An ABORT that
  lands inside the emulator's busy window after the last command is reset and retried as soon as the
  window ends (the tail of the distribution).

Run: `.venv/bin/python benchmarks/bench_medoc.py [--n 20] [--json]`
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPEED = 10.0
SPACING_S = 0.3
EMULATOR_SPACING_S = 0.25


def _arrival(emu: Any, command: int, after: float) -> float | None:
    for r in emu.commands(command, executed=True):
        if r.perf >= after:
            return float(r.perf)
    return None


def _stats(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {"n": len(xs), "median_ms": statistics.median(xs) * 1000, "p95_ms": xs[int(0.95 * (len(xs) - 1))] * 1000,
            "max_ms": xs[-1] * 1000}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    from cpm_session.clock import RealClock
    from cpm_session.config.medoc import MedocSettings
    from cpm_session.devices.medoc import MedocThermode
    from cpm_session.devices.wire.medoc import Command
    from cpm_session.sim.emulators.medoc import MedocEmulator, grid_programs

    progs = grid_programs(40.0, 48.0, 0.5, plateau_s=1.0)
    emu = MedocEmulator(SPEED, programs=progs, pretest_s=(1.0, 3.0), spacing_s=EMULATOR_SPACING_S).start()
    th = MedocThermode(MedocSettings(host=emu.host, port=emu.port, command_spacing_s=SPACING_S,
                                     programs={p.target_c: c for c, p in progs.items()}),
                       cap_c=49.0, neutral_c=32.0, clock=RealClock(SPEED))
    th.connect()
    prepared, direct, aborts, aborts_busy = [], [], [], []
    resets_before = len(emu.commands(executed=False))
    try:
        for i in range(a.n):
            th.prepare(44.0 + (i % 4) * 0.5, 10.0, 10.0, 2.0)
            planned = time.perf_counter() + SPACING_S + 0.05
            while time.perf_counter() < planned:
                time.sleep(0.0005)
            th.launch()
            t = _arrival(emu, Command.TRIGGER, planned)
            assert t is not None
            prepared.append(t - planned)
            time.sleep(0.1 + (i * 0.37) % 0.9)  # Escape 0.1-1.0 s into the stimulus
            busy = i % 2 == 1
            hold = threading.Event()
            release = threading.Event()

            def holder(hold: threading.Event, release: threading.Event) -> None:
                with th._io:
                    hold.set()
                    release.wait(2.0)

            if busy:
                threading.Thread(target=holder, args=(hold, release), daemon=True).start()
                hold.wait(1.0)
            t0 = time.perf_counter()
            th.abort()
            release.set()
            t1 = _arrival(emu, Command.ABORT, t0)
            assert t1 is not None
            (aborts_busy if busy else aborts).append(t1 - t0)
        for _ in range(max(5, a.n // 2)):
            t0 = time.perf_counter()
            th.stimulate(44.0, 10.0, 10.0, 2.0)
            t = _arrival(emu, Command.TRIGGER, t0)
            assert t is not None
            direct.append(t - t0)
            time.sleep(0.1)
            th.abort()
    finally:
        th.close()
        emu.stop()
    out = {"onset_prepared": _stats(prepared), "onset_stimulate": _stats(direct), "abort_idle": _stats(aborts),
           "abort_command_in_flight": _stats(aborts_busy),
           "emulator_resets": len(emu.commands(executed=False)) - resets_before,
           "spacing_s": SPACING_S, "speed": SPEED}
    if a.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            if isinstance(v, dict):
                print(f"{k:26s} n={v['n']:3.0f}  median {v['median_ms']:7.1f} ms  p95 {v['p95_ms']:7.1f} ms  "
                      f"max {v['max_ms']:7.1f} ms")
            else:
                print(f"{k:26s} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
