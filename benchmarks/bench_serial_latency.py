"""Latency over a pty: `stimulate()` call → `L` byte at the TCS II emulator, and `abort()` call → `A` byte.

Run: `.venv/bin/python benchmarks/bench_serial_latency.py [--n 100]`. Prints median / p99 / max in ms.
Both ends share `time.perf_counter()`: the emulator stamps every chunk it reads from the pty master.
The abort is measured while a query holds the request lock (the worst case it is designed for).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

from cpm_session.clock import RealClock
from cpm_session.config.station import RoleConfig
from cpm_session.devices.real import open_real
from cpm_session.errors import DeviceError
from cpm_session.sim.emulators import TcsEmulator

SPEED = 50.0
"""Emulator and host speed: 0.1 device-s stimuli finish in 2 wall-ms, so repetitions do not overlap."""


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]


def _wait_arrival(emu: TcsEmulator, byte: bytes, after: float, timeout: float = 2.0) -> float:
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        t = emu.first_arrival(byte, after)
        if t is not None:
            return t
        time.sleep(0.0002)
    raise RuntimeError(f"{byte!r} never arrived")


def run(n: int) -> dict[str, list[float]]:
    emu = TcsEmulator(speed=SPEED).start()
    dev = open_real("thermode", RoleConfig(model="tcs2", port=emu.port), cap_c=49.0, neutral_c=32.0,
                    clock=RealClock(SPEED))
    out: dict[str, list[float]] = {"stimulate -> L": [], "abort -> A (idle)": [], "abort -> A (query in flight)": []}
    try:
        dev.connect()
        for i in range(n):
            emu.clear_received()
            t0 = time.perf_counter()
            dev.stimulate(40.0 + (i % 5), 50.0, 50.0, 0.1)
            out["stimulate -> L"].append((_wait_arrival(emu, b"L", t0) - t0) * 1000)
            t0 = time.perf_counter()
            dev.abort()
            out["abort -> A (idle)"].append((_wait_arrival(emu, b"A", t0) - t0) * 1000)
            # abort while another request waits for a reply the device will not send
            emu.ignore_next(1)
            th = threading.Thread(target=_blocked_query, args=(dev,))
            th.start()
            time.sleep(0.002)
            t0 = time.perf_counter()
            dev.abort()
            out["abort -> A (query in flight)"].append((_wait_arrival(emu, b"A", t0) - t0) * 1000)
            th.join()
    finally:
        dev.close()
        emu.stop()
    return out


def _blocked_query(dev: object) -> None:
    try:
        dev.transport.query(b"Q", lambda m: None, command="Q", timeout_s=0.03)  # type: ignore[attr-defined]
    except DeviceError:
        pass


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=100, help="repetitions")
    args = p.parse_args()
    res = run(args.n)
    print(f"pty latency, {args.n} repetitions (ms):")
    print(f"{'':32s} {'median':>8s} {'p99':>8s} {'max':>8s}")
    for k, v in res.items():
        print(f"{k:32s} {statistics.median(v):8.3f} {_pct(v, 0.99):8.3f} {max(v):8.3f}")


if __name__ == "__main__":
    main()
