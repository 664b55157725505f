"""Run a visit: check the visit rules, create the session folder, connect the devices, run the phases
through the state machine, and always leave the thermode at neutral and the log closed.

Whatever happens (exception, Escape, Ctrl-C, device fault) `run_phases` sends the thermode to neutral
and closes the log in its `finally`.
"""

from __future__ import annotations

import datetime as dt
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cpm_session import __version__
from cpm_session.clock import Clock
from cpm_session.config.protocol import Protocol
from cpm_session.config.station import Station
from cpm_session.devices.factory import Devices, effective_cap
from cpm_session.errors import DeviceError, SessionError
from cpm_session.ids import validate_participant_id, validate_visit
from cpm_session.record.derive import SIGN_CONVENTION, derivation_values, session_results
from cpm_session.record.folder import SessionFolder, iso, utc_now
from cpm_session.record.reader import find_baseline
from cpm_session.session.context import Context, EmergencyStop, Observer, SessionSettings, VisitFault
from cpm_session.session.machine import PHASES
from cpm_session.session.phases import RUNNERS
from cpm_session.session.phases.questionnaires import preflight
from cpm_session.ui.base import ParticipantUI


@dataclass
class VisitOutcome:
    """What a run ended with."""

    session_dir: Path
    status: str
    results: dict[str, Any] = field(default_factory=dict)
    message: str = ""


def plan(protocol: Protocol) -> list[str]:
    """Return the phases this protocol's visit goes through, in order."""
    return [p for p in PHASES if p != "control" or protocol.control_conditioning.enabled]


def make_context(protocol: Protocol, station: Station, *, ui: ParticipantUI, clock: Clock, devices: Devices,
                 settings: SessionSettings, observers: list[Observer] | None = None) -> Context:
    """Build the context of one run; the cap in force is the lower of protocol and station (never above 50 °C)."""
    cap = effective_cap(protocol.safety.thermode_cap_c, station, protocol.safety.neutral_c)
    ctx = Context(protocol, station, ui=ui, clock=clock, devices=devices, cap_c=cap, settings=settings)
    ctx.observers.extend(observers or [])
    return ctx


def check_baseline(ctx: Context, data_dir: Path, override_reason: str) -> dict[str, Any] | None:
    """For a later visit, return the deviation to log (protocol mismatch with override) after checking that a
    completed, verified baseline with a valid TS intensity exists; raise SessionError otherwise."""
    from cpm_session.session.trust import baseline_problem

    p = ctx.p
    base = find_baseline(data_dir, ctx.participant, p.protocol.baseline_visit)
    if base is None:
        raise SessionError(f"participant {ctx.participant} has no completed '{p.protocol.baseline_visit}' "
                           f"session in {data_dir}: visit '{ctx.visit}' needs its calibrated TS intensity")
    problem = baseline_problem(base, p, ctx.cap_c)
    if problem:
        raise SessionError(f"baseline {base['_dir']} cannot be used: {problem}")
    ctx.baseline = base
    if base.get("protocol_sha256") != p.sha256:
        if not override_reason.strip():
            raise SessionError(
                f"protocol file {p.path} (sha256 {p.sha256[:12]}…) differs from the baseline's "
                f"({str(base.get('protocol_sha256'))[:12]}…, {base.get('protocol')}); "
                "use the same file, or override with --override-reason \"...\"")
        return {"kind": "protocol_mismatch", "detail": override_reason.strip(),
                "baseline_protocol_sha256": base.get("protocol_sha256")}
    return None


def start(ctx: Context, *, data_dir: Path, participant: str, visit: str, simulate: bool, speed: float | None,
          override_reason: str = "", start_utc: dt.datetime | None = None,
          extra_header: dict[str, Any] | None = None) -> VisitOutcome:
    """Create the session folder and run the visit from the beginning."""
    validate_participant_id(participant)
    validate_visit(visit, ctx.p.protocol.visits)
    preflight(ctx)  # a missing wording file stops us before anything is written
    ctx.visit, ctx.participant = visit, participant
    deviation = None
    if visit != ctx.p.protocol.baseline_visit:
        deviation = check_baseline(ctx, Path(data_dir), override_reason)
    header = {
        "software": "cpm-session", "software_version": __version__, "python": platform.python_version(),
        "protocol": ctx.p.path, "protocol_sha256": ctx.p.sha256, "protocol_name": ctx.p.protocol.name,
        "protocol_version": ctx.p.protocol.version, "station": ctx.station.path,
        "station_name": ctx.station.station.name, "station_sha256": ctx.station.sha256,
        "operator": ctx.operator, "seed": ctx.settings.seed,
        "simulate": simulate, "speed": speed, "staff": ctx.settings.staff, "thermode_cap_c": ctx.cap_c,
        "sign_convention": SIGN_CONVENTION, "derivation": derivation_values(ctx.p),
        **(extra_header or {}),
    }
    open_ui(ctx)
    if ctx.sync.enabled:
        header["sync"] = ctx.sync.header()
    ctx.folder = SessionFolder.create(data_dir, participant, visit, header, ctx.clock.now, start=start_utc)
    ctx.log("session_start", **header, participant=participant, visit=visit)
    if deviation:
        ctx.log("deviation", **deviation, operator=ctx.operator)
    return run_phases(ctx, restart="welcome", done=set())


def open_ui(ctx: Context) -> None:
    """Open the participant screen first (it can take seconds), then start session time at 0."""
    ctx.ui.open()
    ctx.status(participant=ctx.participant, visit=ctx.visit, operator=ctx.operator,
               bath_range=[ctx.p.cold_pressor.bath_min_c, ctx.p.cold_pressor.bath_max_c])
    if ctx.sync.enabled and ctx.sync.settings.wait_for_recorder_s > 0:
        s = ctx.sync.settings
        ctx.status(next_action=f"waiting up to {s.wait_for_recorder_s:g} s for a recorder on LSL stream "
                               f"'{s.stream_name}'")
        if not ctx.sync.wait_for_recorder():
            ctx.status(warning=f"no recorder connected to LSL stream '{s.stream_name}'; markers are sent anyway")
        ctx.status(next_action="")
    ctx.clock.restart()


def _connect(ctx: Context) -> None:
    for d in ctx.devices.all():
        info = d.connect()
        ctx.log("device_connected", role=info.role, model=info.model, port=info.port,
                identity=info.identity, firmware=info.firmware, extra=info.extra)
        warning = getattr(d, "readback_warning", "")
        if warning:
            ctx.status(warning=warning)


def run_phases(ctx: Context, *, restart: str, done: set[str]) -> VisitOutcome:
    """Connect the devices and run the phases from `restart` (skipping `done`); always end safely."""
    assert ctx.folder is not None
    status, message = "aborted", ""
    ctx.ui.key_handler = ctx.handle_key
    try:
        ctx.ui.open()
        _connect(ctx)
        ctx.start_background_readers()
        ctx.machine.go("start" if restart == "welcome" and not done else f"restart:{restart}")
        while ctx.machine.state not in ("completed",):
            phase = ctx.machine.state
            if phase in done:
                ctx.machine.go("next")
                continue
            ctx.log("phase_enter", phase=phase)
            ctx.status(next_action="")
            out, trigger = RUNNERS[phase](ctx)
            ctx.outputs[phase] = out
            ctx.log("phase_exit", phase=phase, status="completed", output=out, tables=ctx.folder.table_hashes())
            anchor_log(ctx, phase)
            ctx.machine.go(trigger)
        status = "completed"
    except EmergencyStop as e:
        status, message = "aborted", f"emergency stop ({e}); resume with: cpm-session resume {ctx.folder.path}"
        ctx.machine.go("abort")
    except (DeviceError, VisitFault) as e:
        status, message = "paused_fault", f"{e}; fix it, then: cpm-session resume {ctx.folder.path}"
        ctx.safe_abort()
        ctx.log("device_fault" if isinstance(e, DeviceError) else "visit_fault", message=str(e),
                role=getattr(e, "role", ""), port=getattr(e, "port", ""), phase=ctx.phase)
        ctx.machine.go("fault")
        ctx.status(warning=str(e))
    except OSError as e:  # the data folder failed (disk full, removed, read-only): stop, heat off first
        ctx.safe_abort()
        ctx.write_failed = True
        status, message = "aborted", (
            f"visit stopped: cannot write the session data in {ctx.folder.path} ({e.strerror or e}); "
            "the thermode was sent to neutral; what was written is kept. Free space, then: "
            f"cpm-session resume {ctx.folder.path}")
    except BaseException as e:
        ctx.safe_abort()
        ctx.log("crash", error=f"{type(e).__name__}: {e}", phase=ctx.phase)
        finish(ctx, "aborted", f"{type(e).__name__}: {e}")
        raise
    finally:
        ctx.safe_abort()
        ctx.stop_background_readers()
        ctx.devices.close()
        ctx.ui.close()
    return finish(ctx, status, message)


def fidelity_inputs(session_dir: Path, status: str, cap_c: float) -> dict[str, Any]:
    """Return the log and device samples `session_results` measures protocol fidelity from (nothing if unreadable)."""
    from cpm_session.record.fidelity import read_device_rows
    from cpm_session.record.folder import read_events

    try:
        events, _problem = read_events(session_dir / "events.jsonl")
    except (OSError, SessionError):
        return {}
    return {"events": events, "device_rows": read_device_rows(session_dir / "devices.csv"), "status": status,
            "cap_c": cap_c}


def anchor_log(ctx: Context, point: str) -> None:
    """Anchor the log's head in the data folder's ledger; a ledger that cannot be written is logged, never fatal."""
    from cpm_session.errors import CpmError

    assert ctx.folder is not None
    try:
        ctx.folder.anchor(point)
    except (OSError, CpmError) as e:
        if not getattr(ctx, "_ledger_warned", False):
            ctx._ledger_warned = True  # type: ignore[attr-defined]
            ctx.log("ledger_unavailable", point=point, error=str(e))
            ctx.status(warning=f"ledger not written: {e}")


def finish(ctx: Context, status: str, message: str = "") -> VisitOutcome:
    """Write the results, the `session_end` event and the final header; close the folder."""
    assert ctx.folder is not None
    res = session_results(ctx.outputs, ctx.p.protocol.ts_modality, derivation_values(ctx.p),
                          **fidelity_inputs(ctx.folder.path, status, ctx.cap_c))
    try:
        if status == "completed":
            ctx.log("results", **res)
        ctx.log("session_end", status=status, message=message, tables=ctx.folder.table_hashes())
        ctx.folder.update_header(status=status, end_utc=iso(utc_now()), results=res, message=message)
        anchor_log(ctx, "end")
    except OSError as e:
        if not ctx.write_failed:  # the end of a visit could not be recorded: it is not complete on disk
            status = "aborted"
            message = (f"{message}; " if message else "") + (
                f"cannot write the session data in {ctx.folder.path} ({e.strerror or e}); free space, then: "
                f"cpm-session resume {ctx.folder.path}")
    finally:
        ctx.folder.close()
        ctx.sync.close()
    return VisitOutcome(ctx.folder.path, status, res, message)
