"""The record against its log: header, folder name, status and results (recomputed from the phase
outputs), the running table hashes and the ledger anchors."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from cpm_session.record.integrity.common import FLOAT_TOLERANCE, VerifyResult
from cpm_session.record.integrity.tables import read_table_bytes
from cpm_session.record.schema import LIVE_STATUSES

# --------------------------------------------------------------------------------------------- record vs log

CLOSING_EVENTS = ("results", "session_end")
"""Events written after the last phase's anchor and before the final one (a kill in between is no tamper)."""


def _norm(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str, allow_nan=True))


def _first_difference(a: Any, b: Any, where: str = "") -> str | None:
    """Return the dotted path of the first difference between two JSON values (numbers compared with a
    tolerance), or None when they are equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            d = _first_difference(a.get(k), b.get(k), f"{where}.{k}" if where else str(k))
            if d is not None:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return where or "."
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d = _first_difference(x, y, f"{where}[{i}]")
            if d is not None:
                return d
        return None
    if isinstance(a, bool) or isinstance(b, bool) or not (isinstance(a, int | float) and isinstance(b, int | float)):
        return None if a == b else (where or ".")
    if math.isnan(a) or math.isnan(b):
        return None if math.isnan(a) and math.isnan(b) else where
    return None if math.isclose(a, b, rel_tol=FLOAT_TOLERANCE, abs_tol=1e-6) else where


def phase_outputs(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the outputs of the completed phases a log records, as the session holds them at its end
    (a resume keeps only the phases it lists in `kept_phases`)."""
    completed: dict[str, Any] = {}
    for ev in events:
        if ev.get("event") == "phase_exit" and ev.get("status") == "completed" and isinstance(ev.get("phase"), str):
            completed[ev["phase"]] = ev.get("output", {})
        elif ev.get("event") == "resume_session":
            kept = ev.get("kept_phases") or []
            completed = {k: v for k, v in completed.items() if k in kept}
    return completed


def results_from_log(events: list[dict[str, Any]], session_dir: Path | None = None,
                     cap_c: Any = None) -> dict[str, Any] | None:
    """Recompute a session's `results` block from its log (record/derive does the arithmetic); None when the
    log carries no phase outputs (written by an older version or a synthetic writer).

    The fidelity part is measured from what the closing `finish` saw: the events before its `results` /
    `session_end` event and the devices.csv rows up to then (`session_dir`)."""
    from cpm_session.record.derive import session_results
    from cpm_session.record.fidelity import read_device_rows

    if not any(ev.get("event") == "phase_exit" and "output" in ev for ev in events):
        return None
    start = next((ev for ev in events if ev.get("event") == "session_start"), {})
    derivation = start.get("derivation")
    if not isinstance(derivation, dict) or "cpm_threshold_abs" not in derivation:
        return None
    end_i = next((i for i in range(len(events) - 1, -1, -1) if events[i].get("event") == "session_end"), None)
    fidelity: dict[str, Any] = {}
    if end_i is not None:
        cut = end_i - 1 if end_i > 0 and events[end_i - 1].get("event") == "results" else end_i
        seen = events[:cut]
        end_t = _as_float(events[end_i].get("t"))
        rows = []
        if session_dir is not None:
            rows = [r for r in read_device_rows(session_dir / "devices.csv") if end_t is None or r[0] <= end_t + 1e-9]
        cap = cap_c if isinstance(cap_c, int | float) and not isinstance(cap_c, bool) else start.get("thermode_cap_c")
        fidelity = {"events": seen, "device_rows": rows, "status": str(events[end_i].get("status")),
                    "cap_c": float(cap) if isinstance(cap, int | float) and not isinstance(cap, bool) else None}
    outputs = phase_outputs(events[:end_i] if end_i is not None else events)
    cal = outputs.get("calibration") if isinstance(outputs.get("calibration"), dict) else {}
    unit = cal.get("ts_unit") if cal else None
    logged = next((ev for ev in reversed(events) if ev.get("event") == "results"), None)
    modality = "pressure" if unit == "kPa" else "thermal" if unit == "C" else \
        (logged.get("ts_modality") if logged else None) or "thermal"
    try:
        return _norm(session_results(outputs, str(modality), derivation, **fidelity))
    except (TypeError, ValueError, KeyError, AttributeError):
        return None


def _as_float(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def _closing_status(events: list[dict[str, Any]]) -> str | None:
    """Return the status the log says the session has: the last session_end's, 'running' after a resume."""
    for ev in reversed(events):
        if ev.get("event") == "session_end":
            return str(ev.get("status"))
        if ev.get("event") == "resume_session":
            return "running"
    return "running" if any(ev.get("event") == "session_start" for ev in events) else None


def _check_tables(path: Path, events: list[dict[str, Any]], closed: bool, result: VerifyResult) -> None:
    """Compare ratings.csv / devices.csv with the running hashes the log recorded (`tables`)."""
    last = next(((ev.get("seq"), ev["tables"]) for ev in reversed(events)
                 if isinstance(ev.get("tables"), dict)), None)
    if last is None:
        return
    seq, tables = last
    end: dict[str, Any] = next((ev for ev in reversed(events) if ev.get("event") == "session_end"), {})
    final = bool(closed and end.get("seq") == seq)
    for name, rec in tables.items():
        if name not in ("ratings.csv", "devices.csv") or not isinstance(rec, dict):
            continue
        n, h = rec.get("bytes"), rec.get("sha256")
        if not isinstance(n, int) or not isinstance(h, str):
            continue
        if any(p.startswith(name) for p in result.problems):
            continue  # already explained row by row
        import hashlib

        scratch = VerifyResult(path, "session")
        data = read_table_bytes(path / name, scratch)
        if data is None:
            result.problems.extend(scratch.problems)
            continue
        if len(data) < n:
            result.problems.append(f"{name} has {len(data)} bytes but the log (seq {seq}) recorded {n} "
                                   f"({rec.get('rows')} rows): rows were deleted or the table was truncated")
        elif hashlib.sha256(data[:n]).hexdigest() != h:
            result.problems.append(f"{name}: its first {n} bytes ({rec.get('rows')} rows) no longer match the "
                                   f"SHA-256 the log recorded at seq {seq}: rows were edited, deleted or replaced")
        elif final and len(data) > n:
            result.problems.append(f"{name} has {len(data) - n} byte(s) after the end the log recorded when the "
                                   f"session closed: rows were appended afterwards")


def check_record(path: Path, header: dict[str, Any], events: list[dict[str, Any]], lines: list[bytes],
                 result: VerifyResult) -> None:
    """Check a session's header, folder name, status, results, tables and ledger anchors against its log."""
    start = next((ev for ev in events if ev.get("event") == "session_start"), None)
    if start is not None:
        for k, v in start.items():
            if k in ("seq", "t", "wall", "event", "prev"):
                continue
            if _first_difference(_norm(header.get(k)), _norm(v)) is not None:
                result.problems.append(f"session.json {k} is {header.get(k)!r} but the log's session_start says "
                                       f"{v!r}: the header was edited")
                break
        pid, visit = start.get("participant"), start.get("visit")
        if isinstance(pid, str) and path.parent.name != pid:
            result.problems.append(f"the folder is below {path.parent.name!r} but its log belongs to participant "
                                   f"{pid!r}: the session folder was moved or swapped")
        elif isinstance(visit, str) and not path.name.startswith(f"{visit}-"):
            result.problems.append(f"the folder is named {path.name!r} but its log is a {visit!r} visit: the session "
                                   f"folder was renamed or swapped")
        stamp_txt = str(header.get("start_utc", ""))
        digits = re.sub(r"[^0-9]", "", stamp_txt)[:14]
        if len(digits) == 14 and not path.name.endswith(f"{digits[:8]}T{digits[8:]}Z"):
            result.problems.append(f"the folder name {path.name!r} does not match the start time {stamp_txt!r}: "
                                   f"the folder was renamed or swapped, or start_utc was edited")
    log_status = _closing_status(events)
    status = header.get("status")
    live = status in LIVE_STATUSES
    recorded_n = header.get("log_events")
    recorded_events = events
    if isinstance(recorded_n, int) and not isinstance(recorded_n, bool) and 0 <= recorded_n <= len(events):
        recorded_events = events[:recorded_n]  # the header was written when the log had this many lines
        at_record = _closing_status(recorded_events)
    else:
        at_record = "running"  # the header of a new session, written before its log: it must say running
    if at_record is not None and status != at_record and not (live and at_record in LIVE_STATUSES):
        result.problems.append(f"session.json status is {status!r} but the log says {at_record!r}: the header "
                               f"was edited")
    elif log_status != at_record and live:
        result.notes.append(f"the log says {log_status!r} after the header's last update: the process was killed "
                            f"while closing or resuming")
    res = header.get("results")
    logged = next((ev for ev in reversed(recorded_events) if ev.get("event") == "results"), None)
    if isinstance(res, dict) and not live:
        if logged is not None:
            body = {k: v for k, v in logged.items() if k not in ("seq", "t", "wall", "event", "prev")}
            d = _first_difference(_norm(res), _norm(body))
            if d is not None:
                result.problems.append(f"session.json results.{d} differs from the log's results event (seq "
                                       f"{logged.get('seq')}): the results were edited")
        recomputed = results_from_log(recorded_events, path, header.get("thermode_cap_c"))
        if recomputed is not None and not any("results" in p for p in result.problems):
            d = _first_difference(_norm(res), recomputed)
            if d is not None:
                result.problems.append(f"session.json results.{d} is not what the log's phase outputs give "
                                       f"(recomputed): the results were edited")
    elif res is not None and not isinstance(res, dict):
        result.problems.append(f"session.json results is {type(res).__name__}, not an object")
    closed = not live and log_status not in (None, *LIVE_STATUSES)
    _check_tables(path, events, closed, result)
    from cpm_session.record.ledger import LedgerError, check_anchors, read_ledger

    try:
        led = read_ledger(path.parent.parent)
    except LedgerError as e:
        result.problems.append(str(e))
        return
    # each anchor follows its phase_exit at once; a kill can lose only the latest one, so a log with two or more
    # anchoring phase exits must be in the ledger
    expect = sum(ev.get("event") == "phase_exit" and "tables" in ev for ev in events) >= 2
    anchors = led.for_subject(f"{path.parent.name}/{path.name}")
    last_anchored = anchors[-1].get("events") if anchors else None
    tail_closing = isinstance(last_anchored, int) and all(
        ev.get("event") in CLOSING_EVENTS for ev in events[last_anchored:])
    problems, notes = check_anchors(led, f"{path.parent.name}/{path.name}", lines, expect_anchor=expect,
                                    closed=closed and not tail_closing)
    result.problems.extend(problems)
    result.notes.extend(notes)
