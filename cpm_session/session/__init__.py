"""The session layer: runs one visit (or resumes one) against devices, a participant screen and a clock.

It cannot tell a simulated device or participant from a real one: the caller builds the devices and the
screen, and whoever wants to follow the visit subscribes as an observer (see context.Observer).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cpm_session.clock import Clock, OffsetClock
from cpm_session.config.protocol import Protocol, load_protocol
from cpm_session.config.station import Station, load_station
from cpm_session.devices.factory import Devices, effective_cap
from cpm_session.errors import SessionError
from cpm_session.record.reader import load_session
from cpm_session.session.context import Context, EmergencyStop, Observer, SessionSettings, VisitFault
from cpm_session.session.resume import check_files, resume, session_lock
from cpm_session.session.visit import VisitOutcome, make_context, start
from cpm_session.ui.base import ParticipantUI

__all__ = ["Context", "EmergencyStop", "Observer", "ResumeInput", "SessionSettings", "VisitFault", "VisitOutcome",
           "continue_visit", "load_for_resume", "resume_clock", "start_visit"]


def start_visit(protocol: Protocol, station: Station, *, ui: ParticipantUI, clock: Clock, devices: Devices,
                data_dir: str | Path, participant: str, visit: str, settings: SessionSettings, simulate: bool,
                speed: float | None, override_reason: str = "", observers: Iterable[Observer] = (),
                extra_header: dict[str, Any] | None = None, start_utc: dt.datetime | None = None) -> VisitOutcome:
    """Run one visit from the beginning in a new session folder."""
    ctx = make_context(protocol, station, ui=ui, clock=clock, devices=devices, settings=settings,
                       observers=list(observers))
    return start(ctx, data_dir=Path(data_dir), participant=participant, visit=visit, simulate=simulate,
                 speed=speed, override_reason=override_reason, start_utc=start_utc, extra_header=extra_header)


@dataclass
class ResumeInput:
    """An interrupted session, read back and checked, ready to be continued."""

    session_dir: Path
    header: dict[str, Any]
    events: list[dict[str, Any]]
    protocol: Protocol
    station: Station
    cap_c: float

    @property
    def last_t(self) -> float:
        """Return the session time of the last logged event."""
        return float(self.events[-1]["t"]) if self.events else 0.0


def load_for_resume(session_dir: str | Path, *, protocol_path: str | Path | None = None,
                    override_reason: str = "") -> ResumeInput:
    """Read an interrupted session and check that it may be resumed (nothing is written)."""
    from cpm_session.session.resume import _verify_log

    d = Path(session_dir)
    header, events = load_session(d)
    if header.get("status") == "completed":
        raise SessionError(f"{d} is already completed; nothing to resume")
    for key in ("protocol", "station", "visit", "participant"):
        if not isinstance(header.get(key), str) or not header.get(key):
            raise SessionError(f"{d}/session.json: key '{key}' is missing or not text; it cannot be resumed")
    _verify_log(d)
    protocol = load_protocol(protocol_path or header["protocol"])
    if not protocol.resume.allowed:
        raise SessionError(f"protocol {protocol.path} does not allow resuming ([resume] allowed = false)")
    station = load_station(header["station"])
    cap_now = effective_cap(protocol.safety.thermode_cap_c, station, protocol.safety.neutral_c)
    cap = check_files(header, protocol.sha256, station.sha256, header.get("thermode_cap_c"), cap_now,
                      override_reason, d)
    return ResumeInput(d, header, events, protocol, station, cap)


def resume_clock(inp: ResumeInput, base: Clock) -> OffsetClock:
    """Return the clock a resumed session runs on: `base`, continuing one second after the last event."""
    return OffsetClock(base, inp.last_t + 1.0 - base.now())


def continue_visit(inp: ResumeInput, *, ui: ParticipantUI, clock: Clock, devices: Devices,
                   settings: SessionSettings, override_reason: str = "",
                   observers: Iterable[Observer] = ()) -> VisitOutcome:
    """Resume `inp` in its own folder (locked for the duration); session time continues after its last event."""
    with session_lock(inp.session_dir):
        clk = clock if isinstance(clock, OffsetClock) else OffsetClock(clock, inp.last_t + 1.0 - clock.now())
        ctx = Context(inp.protocol, inp.station, ui=ui, clock=clk, devices=devices, cap_c=inp.cap_c,
                      settings=settings)
        ctx.observers.extend(observers)
        return resume(ctx, inp.session_dir, inp.header, inp.events, reason=override_reason)
