"""Check a station before a visit: open every real device, show identity and readings, pass/fail each requirement.

Requirements: the thermode identifies, accepts and reads back its maximum (`Om`), reports no probe
error and sits at neutral; the bath lies within the protocol's cold-pressor range and is stable over
a short window; the algometer reads zero with no load. Simulated roles are reported, not checked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cpm_session.clock import Clock, RealClock
from cpm_session.config.protocol import Protocol
from cpm_session.config.station import Station
from cpm_session.devices.base import Algometer, Bath, Device, Thermode
from cpm_session.errors import CpmError

NEUTRAL_TOLERANCE_C = 0.5
NEUTRAL_WAIT_S = 15.0
"""Wall seconds allowed for the thermode to settle at neutral after connect."""
BATH_WINDOW_S = 3.0
BATH_SAMPLES = 5
BATH_STABLE_SPAN_C = 0.3
"""Largest spread of the bath samples over the window that still counts as stable."""
ALGOMETER_ZERO_KPA = 5.0
DEFAULT_NEUTRAL_C = 32.0
DEFAULT_CAP_C = 45.0


@dataclass
class Check:
    """One requirement and its outcome."""

    role: str
    name: str
    ok: bool | None  # None = not checked (simulated or skipped)
    detail: str


@dataclass
class Report:
    """Everything a station check found."""

    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Return True if no requirement failed."""
        return all(c.ok is not False for c in self.checks)

    def add(self, role: str, name: str, ok: bool | None, detail: str) -> None:
        self.checks.append(Check(role, name, ok, detail))


Opener = Callable[..., Device]


def check_station(station: Station, protocol: Protocol | None = None, *, clock: Clock | None = None,
                  opener: Opener | None = None, bath_window_s: float = BATH_WINDOW_S,
                  neutral_wait_s: float = NEUTRAL_WAIT_S, emit: Callable[[str], None] = print) -> Report:
    """Open, identify and check every real device of `station` against `protocol`; return the report."""
    if opener is None:
        from cpm_session.devices.real import open_real

        opener = open_real
    clock = clock or RealClock()
    cap = min(protocol.safety.thermode_cap_c if protocol else DEFAULT_CAP_C, station.station.max_thermode_c)
    neutral = protocol.safety.neutral_c if protocol else DEFAULT_NEUTRAL_C
    rep = Report()
    for role in ("thermode", "bath", "algometer"):
        cfg = getattr(station, role)
        if cfg.model == "sim":
            rep.add(role, "device", None, "simulated (model = \"sim\"): nothing to check")
            emit(f"SIM  {role}: simulated, not checked")
            continue
        dev: Device | None = None
        try:
            dev = opener(role, cfg, cap_c=cap, neutral_c=neutral, clock=clock)
            info = dev.connect()
            extra = ", ".join(f"{k} {v}" for k, v in info.extra.items())
            rep.add(role, "identify", True, f"{info.identity} firmware {info.firmware or '-'}")
            emit(f"OK   {role}: {cfg.model} on {cfg.port}: {info.identity}"
                 + (f", firmware {info.firmware}" if info.firmware else "") + (f" ({extra})" if extra else ""))
            if isinstance(dev, Thermode) and dev.model == "medoc":  # TCP thermode: its own checks
                from cpm_session.station_check_medoc import check_medoc
                check_medoc(dev, rep, cap, neutral, emit, _line)
            elif isinstance(dev, Thermode):
                _check_thermode(dev, rep, cap, neutral, neutral_wait_s, emit)
            elif isinstance(dev, Bath):
                _check_bath(dev, rep, protocol, bath_window_s, emit)
            elif isinstance(dev, Algometer):
                _check_algometer(dev, rep, emit)
        except CpmError as e:
            rep.add(role, "device", False, str(e))
            emit(f"FAIL {role}: {e}")
        finally:
            if dev is not None:
                dev.close()
    emit("station check: " + ("PASS" if rep.ok else "FAIL"))
    return rep


def _line(rep: Report, emit: Callable[[str], None], role: str, name: str, ok: bool, detail: str) -> None:
    rep.add(role, name, ok, detail)
    emit(f"{'OK  ' if ok else 'FAIL'} {role}: {name}: {detail}")


def _check_thermode(dev: Thermode, rep: Report, cap: float, neutral: float, wait_s: float,
                    emit: Callable[[str], None]) -> None:
    max_c = getattr(dev, "device_max_c", None)
    if max_c is not None:
        _line(rep, emit, "thermode", "device maximum", max_c <= cap, f"Om read back {max_c:.1f} °C (cap {cap:.1f} °C)")
    status = dev.error_status()
    _line(rep, emit, "thermode", "probe status", status == "", "all zones OK" if not status else f"error codes {status}")
    deadline = time.monotonic() + wait_s
    while True:
        r = dev.read()
        off = max(abs(z - neutral) for z in r.zones_c)
        if off <= NEUTRAL_TOLERANCE_C or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    _line(rep, emit, "thermode", "at neutral", off <= NEUTRAL_TOLERANCE_C,
          f"zones {' '.join(f'{z:.1f}' for z in r.zones_c)} °C, neutral {neutral:.1f} ± {NEUTRAL_TOLERANCE_C} °C")


def _check_bath(dev: Bath, rep: Report, protocol: Protocol | None, window_s: float,
                emit: Callable[[str], None]) -> None:
    samples = []
    for i in range(BATH_SAMPLES):
        samples.append(dev.read_c())
        if i < BATH_SAMPLES - 1:
            time.sleep(window_s / (BATH_SAMPLES - 1))
    sp = dev.setpoint_c()
    lo, hi = min(samples), max(samples)
    emit(f"     bath: {' '.join(f'{s:.2f}' for s in samples)} °C" + (f", set point {sp:.2f} °C" if sp is not None else ""))
    if protocol is not None:
        bmin, bmax = protocol.cold_pressor.bath_min_c, protocol.cold_pressor.bath_max_c
        _line(rep, emit, "bath", "in range", bmin <= lo and hi <= bmax,
              f"{lo:.2f}-{hi:.2f} °C, protocol range {bmin:.1f}-{bmax:.1f} °C")
    else:
        rep.add("bath", "in range", None, "no --protocol: range not checked")
        emit("SKIP bath: in range: no --protocol given")
    _line(rep, emit, "bath", "stable", hi - lo <= BATH_STABLE_SPAN_C,
          f"spread {hi - lo:.2f} °C over {window_s:g} s (limit {BATH_STABLE_SPAN_C} °C)")


def _check_algometer(dev: Algometer, rep: Report, emit: Callable[[str], None]) -> None:
    kpa = dev.read_kpa()
    _line(rep, emit, "algometer", "zeroed", kpa <= ALGOMETER_ZERO_KPA,
          f"reads {kpa:.1f} kPa with no load (limit {ALGOMETER_ZERO_KPA:g} kPa)")
