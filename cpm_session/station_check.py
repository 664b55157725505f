"""Check a station before a visit: open every real device, show identity and readings, pass/fail each requirement.

Requirements: the thermode identifies, reports no probe error, sits at neutral and passes the limiter
test (on the resting thermode, not on skin: `Om` = neutral + 2 °C, a stimulus to neutral + 5 °C for
~1.5 s, every streamed zone sample must stay at or below `Om` + 0.3 °C; then `Om` goes back to the cap);
the bath lies within the protocol's cold-pressor range and is stable over a short window; the algometer
reads zero with no load. Simulated roles are reported, not checked.

With a data folder, the limiter result (peak, pass/fail, firmware, station file sha256, UTC time) is
appended to `<data>/station-checks.jsonl` (append-only, fsync'd). `require_recent_check()` is what
`run` asks before a visit on a real TCS II.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cpm_session.clock import Clock, RealClock
from cpm_session.config.protocol import Protocol
from cpm_session.config.station import Station, thermode_settings
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
CHECKS_FILE = "station-checks.jsonl"
SCHEMA = "cpm-station-check/1"


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
    warnings: list[str] = field(default_factory=list)
    record: dict[str, Any] | None = None
    """The limiter-test record written to the station log (None if no limiter test ran)."""

    @property
    def ok(self) -> bool:
        """Return True if no requirement failed."""
        return all(c.ok is not False for c in self.checks)

    def add(self, role: str, name: str, ok: bool | None, detail: str) -> None:
        self.checks.append(Check(role, name, ok, detail))


Opener = Callable[..., Device]


def check_station(station: Station, protocol: Protocol | None = None, *, clock: Clock | None = None,
                  opener: Opener | None = None, bath_window_s: float = BATH_WINDOW_S,
                  neutral_wait_s: float = NEUTRAL_WAIT_S, emit: Callable[[str], None] = print,
                  data_dir: str | Path | None = None) -> Report:
    """Open, identify and check every real device of `station` against `protocol`; return the report.

    With `data_dir`, the thermode limiter result is appended to `<data_dir>/station-checks.jsonl`.
    """
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
                warning = getattr(dev, "readback_warning", "")
                if warning:
                    rep.warnings.append(warning)
                    emit(f"WARN {role}: {warning}")
                _check_thermode(dev, rep, cap, neutral, neutral_wait_s, emit)
                if hasattr(dev, "limiter_test"):
                    _limiter(dev, station, rep, cap, neutral, info.firmware, data_dir, emit)
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
    shown = getattr(dev, "device_max_readback_c", None)
    if shown is not None:
        _line(rep, emit, "thermode", "device maximum", shown <= cap, f"Om read back {shown:.1f} °C (cap {cap:.1f} °C)")
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


def station_sha256(station: Station) -> str:
    """Return the sha256 of the station file's bytes ('' for a station not read from a file)."""
    try:
        return hashlib.sha256(Path(station.path).read_bytes()).hexdigest()
    except OSError:
        return ""


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def append_record(data_dir: str | Path, record: dict[str, Any]) -> Path:
    """Append `record` as one JSON line to `<data_dir>/station-checks.jsonl`; flush and fsync. Return the path."""
    folder = Path(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CHECKS_FILE
    line = json.dumps(record, ensure_ascii=False, sort_keys=True, allow_nan=False) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def _limiter(dev: Thermode, station: Station, rep: Report, cap: float, neutral: float, firmware: str,
             data_dir: str | Path | None, emit: Callable[[str], None]) -> None:
    """Run the limiter test on the resting thermode, report it and append it to the station log."""
    ts = thermode_settings(station.thermode, station.path)
    om = neutral + ts.limiter_om_above_neutral_c
    target = min(neutral + ts.limiter_target_above_neutral_c, cap)
    emit(f"     thermode: limiter test on the resting thermode (not on skin): Om {om:.1f} °C, "
         f"target {target:.1f} °C for {ts.limiter_duration_s:g} s")
    record: dict[str, Any] = {"schema": SCHEMA, "kind": "limiter", "utc": _utc_now(),
                              "station_file": station.path, "station_sha256": station_sha256(station),
                              "station_name": station.station.name, "port": station.thermode.port,
                              "firmware": firmware, "om_c": round(om, 1), "target_c": round(target, 1),
                              "limit_c": round(om + ts.limiter_margin_c, 2), "restored_om_c": round(cap, 1),
                              "readback_warning": getattr(dev, "readback_warning", "")}
    try:
        res = dev.limiter_test(om_c=om, target_c=target, duration_s=ts.limiter_duration_s,  # type: ignore[attr-defined]
                               margin_c=ts.limiter_margin_c, restore_c=cap)
        record.update(peak_c=None if res.peak_c is None else round(res.peak_c, 2), samples=res.samples,
                      passed=bool(res.passed), detail=res.detail)
        _line(rep, emit, "thermode", "limiter", res.passed, res.detail + f"; Om set back to {cap:.1f} °C")
    except CpmError as e:
        record.update(peak_c=None, samples=0, passed=False, detail=str(e))
        _line(rep, emit, "thermode", "limiter", False, str(e))
    rep.record = record
    if data_dir is not None:
        path = append_record(data_dir, record)
        emit(f"     thermode: limiter result appended to {path}")


def read_records(data_dir: str | Path) -> list[dict[str, Any]]:
    """Return the station log's records (lines that are not a JSON object are skipped: untrusted file)."""
    path = Path(data_dir) / CHECKS_FILE
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    out = []
    for ln in text.splitlines():
        try:
            rec = json.loads(ln)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def _parse_utc(v: object) -> dt.datetime | None:
    if not isinstance(v, str):
        return None
    try:
        t = dt.datetime.fromisoformat(v)
    except ValueError:
        return None
    return t if t.tzinfo is not None else None


def require_recent_check(station: Station, data_dir: str | Path, max_age_h: float | None = None, *,
                         now: dt.datetime | None = None) -> dict[str, Any]:
    """Return the newest passing limiter record of this exact station file within `max_age_h` hours.

    `max_age_h` defaults to the station's `check_max_age_h` (24 h). Raises CpmError (one line: what is
    missing and what to run) when there is none.
    """
    age_h = station.station.check_max_age_h if max_age_h is None else max_age_h
    if not (math.isfinite(age_h) and age_h > 0):
        raise CpmError(f"check age limit {age_h!r} h is not a positive number")
    sha = station_sha256(station)
    now = now or dt.datetime.now(dt.UTC)
    best: tuple[dt.datetime, dict[str, Any]] | None = None
    stale: dt.datetime | None = None
    failed = 0
    for rec in read_records(data_dir):
        if rec.get("kind") != "limiter" or not sha or rec.get("station_sha256") != sha:
            continue
        t = _parse_utc(rec.get("utc"))
        if t is None or t > now + dt.timedelta(minutes=5):
            continue
        if rec.get("passed") is not True:
            failed += 1
            continue
        if now - t > dt.timedelta(hours=age_h):
            stale = t if stale is None or t > stale else stale
            continue
        if best is None or t > best[0]:
            best = (t, rec)
    if best is not None:
        return best[1]
    why = (f"the last passing one is from {stale.isoformat(timespec='minutes')}" if stale is not None
           else f"{failed} failed" if failed else "none found")
    raise CpmError(f"no passing thermode limiter check of station file {station.path} (sha256 {sha[:12]}) "
                   f"within {age_h:g} h in {Path(data_dir) / CHECKS_FILE} ({why}): run `cpm-session check-station "
                   f"{station.path}` with the thermode resting on the bench, or give --override-reason")


def record_override(station: Station, data_dir: str | Path, reason: str, **context: str) -> dict[str, Any]:
    """Append an 'override' record (a visit started without a recent passing check) to the station log."""
    rec: dict[str, Any] = {"schema": SCHEMA, "kind": "override", "utc": _utc_now(), "station_file": station.path,
                           "station_sha256": station_sha256(station), "reason": reason, **context}
    append_record(data_dir, rec)
    return rec
