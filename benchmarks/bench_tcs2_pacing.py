"""TCS II with paced writes (1 ms per character) against the strict pty emulator, at the driver level.

1. Onset error with pre-load: `prepare()` (the ~30 ms paced parameter string plus the `P` read-back)
   runs ahead of the planned onset; at the onset only `launch()` sends `L`. Measured: planned onset
   (a `perf_counter()` deadline the host spins to, as the session's clock would) → `L` read by the
   emulator. For contrast the same with `stimulate()` called at the onset (load + read-back + `L`).
2. Escape → `A` while a parameter string is being paced: `prepare()` runs in a thread; after a random
   3-25 of its 34 characters reached the emulator, `abort()` is called; measured: call → `A` read by
   the emulator, and whether the rest of the string stayed unsent.

Both ends share `time.perf_counter()`. Speed 1 (real time): the strict emulator judges character gaps in
wall time. Run: `.venv/bin/python benchmarks/bench_tcs2_pacing.py [--n 50] [--json]`
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LEAD_S = 0.15
"""Seconds between the start of `prepare()` and the planned onset (load + read-back take ~60 ms)."""


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]


def _arrival(emu: Any, byte: bytes, after: float, timeout: float = 2.0) -> float:
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        t = emu.first_arrival(byte, after)
        if t is not None:
            return float(t)
        time.sleep(0.0002)
    raise RuntimeError(f"{byte!r} never arrived")


def _spin_until(t: float) -> None:
    while time.perf_counter() < t - 0.002:
        time.sleep(0.001)
    while time.perf_counter() < t:
        pass


def run(n: int) -> dict[str, Any]:
    from cpm_session.clock import RealClock
    from cpm_session.config.station import RoleConfig
    from cpm_session.devices.real import open_real
    from cpm_session.devices.transport import WritePreempted
    from cpm_session.sim.emulators import TcsEmulator

    emu = TcsEmulator(speed=1.0, strict=True).start()
    dev = open_real("thermode", RoleConfig(model="tcs2", port=emu.port), cap_c=49.0, neutral_c=32.0,
                    clock=RealClock(1.0))
    rng = random.Random(13)
    pre: list[float] = []
    whole: list[float] = []
    prep_ms: list[float] = []
    esc: list[float] = []
    unsent_ok = 0
    try:
        dev.connect()
        for i in range(n):
            target = 40.0 + (i % 5)
            # 1. pre-load, then L alone at the onset
            t_start = time.perf_counter()
            planned = t_start + LEAD_S
            dev.prepare(target, 50.0, 50.0, 0.1)
            prep_ms.append((time.perf_counter() - t_start) * 1000)
            _spin_until(planned)
            dev.launch()
            pre.append((_arrival(emu, b"L", planned) - planned) * 1000)
            time.sleep(0.25)  # 0.1 s stimulus + return
            # contrast: everything at the onset
            planned = time.perf_counter() + 0.02
            _spin_until(planned)
            dev.stimulate(target, 50.0, 50.0, 0.1)
            whole.append((_arrival(emu, b"L", planned) - planned) * 1000)
            time.sleep(0.25)
            # 2. Escape while the parameter string is paced
            emu.clear_received()
            k = rng.randint(3, 25)
            errs: list[BaseException] = []

            def load(errs: list[BaseException] = errs, target: float = target) -> None:
                try:
                    dev.prepare(target, 50.0, 50.0, 0.1)
                except WritePreempted as e:
                    errs.append(e)

            th = threading.Thread(target=load)
            th.start()
            while len(emu.received_bytes()) < k:
                time.sleep(0.0002)
            t0 = time.perf_counter()
            dev.abort()
            esc.append((_arrival(emu, b"A", t0) - t0) * 1000)
            th.join(2.0)
            got = emu.received_bytes()
            if errs and got.endswith(b"A") and len(got) < 34:
                unsent_ok += 1
            time.sleep(0.05)
    finally:
        dev.close()
        emu.stop()
    return {"n": n, "dropped_chars": emu.dropped_chars,
            "preload_median_ms": statistics.median(pre), "preload_p99_ms": _pct(pre, 0.99), "preload_max_ms": max(pre),
            "at_onset_median_ms": statistics.median(whole), "at_onset_p99_ms": _pct(whole, 0.99),
            "prepare_median_ms": statistics.median(prep_ms), "prepare_max_ms": max(prep_ms),
            "escape_median_ms": statistics.median(esc), "escape_p99_ms": _pct(esc, 0.99), "escape_max_ms": max(esc),
            "escape_rest_unsent": unsent_ok}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=50, help="repetitions")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    r = run(args.n)
    if args.json:
        print(json.dumps(r))
        return
    print(f"TCS II, paced writes (1 ms/char) against the strict emulator, {r['n']} repetitions (wall ms):")
    print(f"  onset, pre-loaded (planned -> L):    median {r['preload_median_ms']:.3f}, p99 {r['preload_p99_ms']:.3f}, "
          f"max {r['preload_max_ms']:.3f}")
    print(f"  onset, stimulate() at the onset:     median {r['at_onset_median_ms']:.1f}, p99 {r['at_onset_p99_ms']:.1f}")
    print(f"  prepare() (load + P read-back):      median {r['prepare_median_ms']:.1f}, max {r['prepare_max_ms']:.1f}")
    print(f"  Escape -> A during a paced string:   median {r['escape_median_ms']:.3f}, p99 {r['escape_p99_ms']:.3f}, "
          f"max {r['escape_max_ms']:.3f}; rest of the string unsent in {r['escape_rest_unsent']}/{r['n']}")
    print(f"  characters dropped by the strict emulator: {r['dropped_chars']}")


if __name__ == "__main__":
    main()
