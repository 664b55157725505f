"""Resume an interrupted session in its own folder from a safe point, after verifying what it reads back.

Before any device is touched: the folder is locked (two resumes of one session cannot run at once), the
log's hash chain is verified, torn CSV rows are repaired from the log, the protocol and station files
are compared with the sha256 the session recorded (a change needs a logged override reason, and the cap
in force is never above the one recorded), and a crash loop (resumed twice at the same point without
progress) stops with a clear message.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cpm_session.errors import SessionError
from cpm_session.record.derive import csv_cells, rating_row
from cpm_session.record.folder import SessionFolder, iso, utc_now
from cpm_session.record.reader import find_baseline
from cpm_session.record.schema import RATING_SOURCE_EVENTS
from cpm_session.session.context import Context
from cpm_session.session.machine import RESTART_FROM
from cpm_session.session.phases.questionnaires import preflight
from cpm_session.session.visit import VisitOutcome, open_ui, plan, run_phases

LOCK_FILE = ".session.lock"


@contextlib.contextmanager
def session_lock(session_dir: Path) -> Iterator[None]:
    """Hold an exclusive OS lock on the session folder; raise SessionError if another process holds it."""
    fd = os.open(session_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SessionError(f"{session_dir} is in use by another cpm-session process (resume already running?)") from None
        yield
    finally:
        os.close(fd)


def repair_torn_csv(path: Path) -> int:
    """Cut a torn last row (no final newline) from a CSV table; return the bytes removed."""
    if not path.is_file():
        return 0
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with open(path, "r+b") as f:
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return len(data) - keep


def _verify_log(session_dir: Path) -> None:
    """Refuse a session that fails the verification gate (chain, header, results, tables, ledger)."""
    from cpm_session.record.gate import require_verified

    require_verified(session_dir, "resumed")


def _crash_loop(events: list[dict[str, Any]], restart: str) -> bool:
    """Return True when the last two resumes restarted at `restart` with no phase completed since the first."""
    resumes = [i for i, e in enumerate(events) if e.get("event") == "resume_session"]
    if len(resumes) < 2:
        return False
    a, b = resumes[-2], resumes[-1]
    if events[a].get("restart_phase") != restart or events[b].get("restart_phase") != restart:
        return False
    return not any(e.get("event") == "phase_exit" and e.get("phase") == restart for e in events[a:])


def catch_up_ratings(ctx: Context, events: list[dict[str, Any]]) -> None:
    """Append the ratings.csv rows of logged rating/ppt events the table lacks (killed between log and row)."""
    import csv

    assert ctx.folder is not None
    with open(ctx.folder.path / "ratings.csv", newline="", encoding="utf-8") as f:
        n_rows = sum(1 for _ in csv.DictReader(f))
    missing = [e for e in events if e.get("event") in RATING_SOURCE_EVENTS][n_rows:]
    for ev in missing:
        ctx.folder.ratings.write(csv_cells(rating_row(ev, ppt_site=ctx.p.calibration.site)))
    if missing:
        ctx.log("ratings_table_caught_up", rows=len(missing), from_seq=[e.get("seq") for e in missing])


def resume(ctx: Context, session_dir: Path, header: dict[str, Any], events: list[dict[str, Any]],
           reason: str = "") -> VisitOutcome:
    """Continue an interrupted session in the same folder from a safe point; record the gap."""
    ctx.visit, ctx.participant = str(header["visit"]), str(header["participant"])
    if ctx.visit != ctx.p.protocol.baseline_visit:
        ctx.baseline = find_baseline(session_dir.parent.parent, ctx.participant, ctx.p.protocol.baseline_visit)
    completed: dict[str, Any] = {}
    for ev in events:
        if ev.get("event") == "phase_exit" and ev.get("status") == "completed":
            completed[ev["phase"]] = ev.get("output", {})
        if ev.get("event") == "resume_session":
            completed = {k: v for k, v in completed.items() if k in ev.get("kept_phases", [])}
    phases = plan(ctx.p)
    restart = next((p for p in phases if p not in completed), "done")
    restart = RESTART_FROM.get(restart, restart)
    keep = phases[: phases.index(restart)]
    if _crash_loop(events, restart) and not reason.strip():
        raise SessionError(f"{session_dir} was resumed twice at '{restart}' without getting past it; "
                           "find out why before trying again, or resume with --override-reason \"...\"")
    ctx.outputs = {k: completed[k] for k in keep if k in completed}
    last = events[-1] if events else {}
    try:
        last_wall = dt.datetime.fromisoformat(str(last.get("wall", "")).replace("Z", "+00:00"))
        gap_s: float | None = (utc_now() - last_wall).total_seconds()
    except ValueError:
        gap_s = None
    if gap_s is not None and gap_s < 0 and not reason.strip():
        raise SessionError(f"{session_dir}: its last event is {-gap_s / 3600:.1f} h in the future: the computer's "
                           "clock was changed; correct it, or resume with --override-reason \"...\"")
    if gap_s is not None and gap_s > ctx.p.resume.max_gap_s and not reason.strip():
        raise SessionError(f"{session_dir} was interrupted {gap_s / 3600:.1f} h ago, more than the protocol's "
                           f"resume.max_gap_s ({ctx.p.resume.max_gap_s / 3600:.1f} h); start a new session, "
                           "or resume with --override-reason \"...\"")
    preflight(ctx)
    torn = {name: repair_torn_csv(session_dir / name) for name in ("ratings.csv", "devices.csv")}
    open_ui(ctx)
    ctx.folder = SessionFolder(session_dir, ctx.clock.now)
    ctx.log("resume_session", gap_wall_s=None if gap_s is None else round(gap_s, 3),
            previous_status=header.get("status"), last_event=last.get("event"), last_seq=last.get("seq"),
            restart_phase=restart, kept_phases=keep, operator=ctx.operator, reason=reason,
            thermode_cap_c=ctx.cap_c, station_sha256=ctx.station.sha256,
            torn_rows_removed={k: v for k, v in torn.items() if v})
    catch_up_ratings(ctx, events)
    gaps = list(header.get("resumed", []))
    gaps.append({"at_utc": iso(utc_now()), "gap_wall_s": gap_s, "restart_phase": restart})
    ctx.folder.update_header(status="running", resumed=gaps)
    return run_phases(ctx, restart=restart, done=set(keep))


def check_files(header: dict[str, Any], protocol_sha256: str, station_sha256: str, recorded_cap: Any,
                cap_now: float, reason: str, where: Path) -> float:
    """Compare the protocol/station in use with the session's record; return the cap to use (never above
    the recorded one). A changed file needs `reason`."""
    if protocol_sha256 != header.get("protocol_sha256") and not reason.strip():
        raise SessionError(f"{where}: the protocol file changed since the session started (sha256 "
                           f"{protocol_sha256[:12]}… vs {str(header.get('protocol_sha256'))[:12]}…); "
                           "restore it or give --override-reason")
    recorded_station = header.get("station_sha256")
    if recorded_station and station_sha256 != recorded_station and not reason.strip():
        raise SessionError(f"{where}: the station file changed since the session started (sha256 "
                           f"{station_sha256[:12]}… vs {str(recorded_station)[:12]}…); "
                           "restore it or give --override-reason")
    if isinstance(recorded_cap, int | float) and not isinstance(recorded_cap, bool):
        return min(cap_now, float(recorded_cap))
    raise SessionError(f"{where}: session.json has no valid thermode_cap_c ({recorded_cap!r}); it cannot be resumed")
