"""Data a trial can defend: verify session folders and amend them without rewriting history.

`verify_session` re-walks the SHA-256 chain of ``events.jsonl`` line by line, checks ``seq``
continuity, compares the log with the header's ``log_final_sha256``/``log_events`` and checks that
the derived table ``ratings.csv`` still matches the ``rating`` events. `verify_path` does the same
for a whole data folder, including each participant's ``adverse_events.jsonl``.

`amend_session` corrects a header value (a wrong visit name, a mistyped result) by appending an
``amendment`` event with the old value, the new value, a reason and the operator; earlier lines are
never edited. `apply_amendments` returns the effective header that summaries and exports use.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cpm_session.errors import CpmError
from cpm_session.record.folder import GENESIS, line_hash
from cpm_session.record.schema import (
    AE_LOG,
    LIVE_STATUSES,
    RATING_SOURCE_EVENTS,
    SESSION_FILES,
)

TORN_FILE = "events.torn"
"""Statuses of a session that is still being written, or whose process was killed before closing it."""

RATING_CHECK_COLUMNS = ("phase", "trial", "attempt", "site", "intensity", "intensity_unit", "rating", "rt_s",
                        "onset_t", "planned_onset_t", "missing", "flag")
"""ratings.csv columns compared with the `rating` events of the log (each one the event carries)."""
PPT_CHECK_COLUMNS = ("phase", "trial", "intensity")
"""ratings.csv columns compared with `ppt` events (a pressure pain threshold row: intensity = kPa)."""
TEXT_COLUMNS = ("phase", "site", "intensity_unit", "flag")
"""Events that each give one ratings.csv row, in log order (a pressure pain threshold is a `ppt` row)."""

FLOAT_TOLERANCE = 1e-9
"""Absolute/relative tolerance when comparing numbers in ratings.csv with the log (text round trip)."""


HEX64 = re.compile(r"^[0-9a-f]{64}$")



class IntegrityError(CpmError):
    """A session folder failed verification, or an amendment was refused."""


@dataclass
class VerifyResult:
    """The verdict on one session folder or adverse-event log."""

    path: Path
    kind: str  # "session" | "adverse_events"
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Return True when no problem was found (notes are not problems)."""
        return not self.problems


# --------------------------------------------------------------------------------------------- chain


def check_chain(path: Path, *, name: str | None = None) -> tuple[list[dict[str, Any]], list[bytes], list[str]]:
    """Walk the hash chain of a JSON-lines log; return (events, raw lines, problems).

    Report the first broken link with its line number (1-based) and what most likely happened: a
    changed line, a deleted line (``seq`` jumps), a reordered pair (``prev`` is the hash of a later
    line) or a torn last line. Later broken links are only counted.
    """
    name = name or path.name
    raw = path.read_bytes()
    problems: list[str] = []
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines and lines[-1] != b"":
        problems.append(f"{name} line {len(lines)}: incomplete last line without newline (torn tail: the "
                        f"process was killed while writing, or bytes were cut off)")
        lines.pop()
    if not lines:
        if not problems:
            problems.append(f"{name}: the log is empty")
        return [], [], problems

    hashes = [line_hash(b) for b in lines]
    where = {h: i for i, h in enumerate(hashes)}
    events: list[dict[str, Any]] = []
    first_break: str | None = None
    n_breaks = 0
    bad_json = 0
    for i, line in enumerate(lines):
        no = i + 1
        try:
            ev = json.loads(line)
            if not isinstance(ev, dict):
                raise ValueError("not a JSON object")
        except (ValueError, RecursionError) as e:  # JSON, encoding, nesting, not an object
            bad_json += 1
            if first_break is None:
                first_break = f"{name} line {no}: not a valid JSON object ({e}); the line was changed or damaged"
            n_breaks += 1
            events.append({})
            continue
        events.append(ev)
        expected = GENESIS if i == 0 else hashes[i - 1]
        prev = ev.get("prev")
        if prev == expected:
            continue
        n_breaks += 1
        if first_break is not None:
            continue
        first_break = _explain_break(name, i, lines, events, prev, where)
    if first_break is not None:
        more = f" ({n_breaks - 1} further broken link(s))" if n_breaks > 1 else ""
        problems.insert(0, f"hash chain broken: {first_break}{more}")
    return events, lines, problems


def _explain_break(name: str, i: int, lines: list[bytes], events: list[dict[str, Any]], prev: object,
                   where: dict[str, int]) -> str:
    """Describe why line i+1's ``prev`` does not match the line before it."""
    no = i + 1
    if not isinstance(prev, str) or not HEX64.fullmatch(prev):
        return f"{name} line {no}: its 'prev' field {prev!r} is not a SHA-256; line {no} was changed"
    if i == 0:
        return (f"{name} line 1: 'prev' is not the genesis value (64 zeros): earlier lines were deleted or "
                f"line 1 was changed")
    j = where.get(prev)
    if j is not None and j > i:
        return (f"{name} line {no}: 'prev' is the hash of line {j + 1}: lines {no} and {j + 1} are out of "
                f"order (reordered)")
    seq_here = events[i].get("seq")
    seq_before = events[i - 1].get("seq") if events[i - 1] else None
    if isinstance(seq_here, int) and isinstance(seq_before, int) and seq_here > seq_before + 1:
        gap = seq_here - seq_before - 1
        return (f"{name} line {no}: 'prev' does not match line {no - 1} and seq jumps from {seq_before} to "
                f"{seq_here}: {gap} line(s) deleted before line {no}")
    return (f"{name} line {no - 1} was changed after it was written: its SHA-256 no longer matches 'prev' "
            f"of line {no} (or line {no}'s 'prev' was changed)")


def check_seq(events: list[dict[str, Any]], *, name: str) -> list[str]:
    """Return a problem if ``seq`` is not 0, 1, 2, ... (first discontinuity only)."""
    for i, ev in enumerate(events):
        if not ev:
            continue
        seq = ev.get("seq")
        if seq != i:
            return [f"{name} line {i + 1}: seq is {seq!r}, expected {i} (a line was deleted, inserted or moved)"]
    return []


# --------------------------------------------------------------------------------------------- session


def _read_header(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        return None, f"session.json cannot be read: {str(e)[:200]}"
    if not isinstance(header, dict):
        return None, "session.json is not a JSON object"
    return header, None


def _check_header_vs_log(header: dict[str, Any], lines: list[bytes], result: VerifyResult) -> None:
    status = header.get("status")
    live = status in LIVE_STATUSES
    n = len(lines)
    recorded_n = header.get("log_events")
    recorded_h = header.get("log_final_sha256")
    if recorded_n is None or recorded_h is None:
        msg = "session.json has no log_final_sha256/log_events yet"
        if live:
            result.notes.append(f"{msg} (status {status!r}: still running or killed early)")
        else:
            result.problems.append(f"{msg} although status is {status!r}")
        return
    if not isinstance(recorded_n, int) or recorded_n < 0:
        result.problems.append(f"session.json log_events is {recorded_n!r}, not a count")
        return
    if n < recorded_n:
        result.problems.append(f"events.jsonl has {n} lines but session.json records {recorded_n}: "
                               f"{recorded_n - n} line(s) missing (deleted, or the log truncated after line {n})")
        return
    at = line_hash(lines[recorded_n - 1]) if recorded_n > 0 else GENESIS
    if at != recorded_h:
        result.problems.append(f"events.jsonl line {recorded_n} (the last one session.json records) does not match "
                               f"log_final_sha256: that line was changed or the log was replaced")
        return
    if n > recorded_n:
        extra = n - recorded_n
        if live:
            result.notes.append(f"events.jsonl has {extra} event(s) after the last header update (status "
                                f"{status!r}: the session is still running or its process was killed)")
        elif _event_at(lines[recorded_n]) == "resume_session":  # killed between resume's first line and its header
            result.notes.append(f"events.jsonl has {extra} event(s) after session.json's record, starting with a "
                                f"resume: a resume was killed before it updated the header")
        else:
            result.problems.append(f"events.jsonl has {extra} event(s) after session.json's record although the "
                                   f"session is {status!r}: lines {recorded_n + 1}..{n} were appended after it closed")


def _event_at(line: bytes) -> object:
    try:
        ev = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return ev.get("event") if isinstance(ev, dict) else None


def _num_equal(a: str, b: object) -> bool:
    if b is None or b == "":
        return a.strip() == ""
    if isinstance(b, bool):
        return a.strip().lower() in (str(b).lower(), str(int(b)))
    try:
        fa, fb = float(a), float(b)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return a == str(b)
    if math.isnan(fa) or math.isnan(fb):
        return math.isnan(fa) and math.isnan(fb)
    return math.isclose(fa, fb, rel_tol=FLOAT_TOLERANCE, abs_tol=FLOAT_TOLERANCE)


def _as_rating(ev: dict[str, Any]) -> dict[str, Any]:
    """Return the ratings.csv view of a `rating` event, or of a `ppt` event (phase ppt, intensity = kPa)."""
    if ev.get("event") != "ppt":
        return ev
    return {"event": "ppt", "seq": ev.get("seq"), "phase": ev.get("phase", "ppt"), "trial": ev.get("trial"),
            "intensity": ev.get("kpa", ev.get("intensity"))}


def read_table_bytes(path: Path, result: VerifyResult) -> bytes | None:
    """Return a CSV table's bytes without a torn last row (no final newline: a write cut short by a kill or a
    full disk, noted, and cut by `resume` before anything else is written); None if unreadable."""
    try:
        data = path.read_bytes()
    except OSError as e:
        result.problems.append(f"{path.name} cannot be read: {e.strerror or e}")
        return None
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        result.notes.append(f"{path.name}: torn last row of {len(data) - keep} bytes (a write cut short by a kill "
                            f"or a full disk); `cpm-session resume` cuts it")
        data = data[:keep]
    return data


def _check_ratings(path: Path, events: list[dict[str, Any]], live: bool, result: VerifyResult) -> None:
    import io

    data = read_table_bytes(path, result)
    if data is None:
        return
    try:
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))
    except (UnicodeDecodeError, csv.Error) as e:
        result.problems.append(f"ratings.csv cannot be read: {e}")
        return
    rating_events = [_as_rating(ev) for ev in events if ev.get("event") in RATING_SOURCE_EVENTS]
    for k, (row, ev) in enumerate(zip(rows, rating_events, strict=False), start=1):
        for col in PPT_CHECK_COLUMNS if ev.get("event") == "ppt" else RATING_CHECK_COLUMNS:
            if col not in ev:
                continue
            if col not in row:
                result.problems.append(f"ratings.csv has no column '{col}'")
                return
            cell, logged = row[col] or "", ev.get(col)
            same = (cell == ("" if logged is None else str(logged))) if col in TEXT_COLUMNS \
                else _num_equal(cell, logged)
            if not same:
                result.problems.append(
                    f"ratings.csv row {k} (file line {k + 1}): {col} is {cell!r} but the log's rating event "
                    f"seq {ev.get('seq')} says {logged!r}; the derived table no longer matches the log")
                return
    if len(rows) != len(rating_events):
        msg = f"ratings.csv has {len(rows)} rows but the log has {len(rating_events)} rating/ppt events"
        if live and len(rows) < len(rating_events):
            result.notes.append(msg + " (session still running or killed: the table lags the log)")
        else:
            result.problems.append(msg)


def _check_devices(path: Path, result: VerifyResult) -> None:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), None)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        result.problems.append(f"devices.csv cannot be read: {e}")
        return
    from cpm_session.record.folder import DEVICE_COLUMNS

    if header != DEVICE_COLUMNS:
        result.problems.append(f"devices.csv header is {header}, expected {DEVICE_COLUMNS}")


def verify_session_report(path: str | Path) -> VerifyResult:
    """Verify one session folder; return problems (failures) and notes (worth knowing, not failures)."""
    path = Path(path)
    result = VerifyResult(path, "session")
    if not path.is_dir():
        result.problems.append(f"{path} is not a folder")
        return result
    for fname in SESSION_FILES:
        if not (path / fname).is_file():
            result.problems.append(f"{fname} is missing")
    header: dict[str, Any] | None = None
    if (path / "session.json").is_file():
        header, err = _read_header(path / "session.json")
        if err:
            result.problems.append(err)
    live = bool(header and header.get("status") in LIVE_STATUSES)
    events: list[dict[str, Any]] = []
    lines: list[bytes] = []
    for fname in SESSION_FILES:
        if (path / fname).is_symlink():
            result.problems.append(f"{fname} is a symbolic link; a session file is always a regular file")
            return result
    if (path / "events.jsonl").is_file():
        events, lines, chain_problems = check_chain(path / "events.jsonl")
        if live:  # a killed process may leave half a line; `cpm-session resume` keeps it in events.torn
            torn = [p for p in chain_problems if "incomplete last line" in p]
            result.notes.extend(f"{p} (status {header.get('status')!r}: expected after a kill; resume keeps the "
                                f"torn bytes in {TORN_FILE})" for p in torn if header)
            chain_problems = [p for p in chain_problems if p not in torn]
        result.problems.extend(chain_problems)
        if not chain_problems:
            result.problems.extend(check_seq(events, name="events.jsonl"))
        if header is not None:
            _check_header_vs_log(header, lines, result)
        if (path / "ratings.csv").is_file():
            _check_ratings(path / "ratings.csv", events, live, result)
    if (path / "devices.csv").is_file():
        _check_devices(path / "devices.csv", result)
    if header is not None and events and not any("hash chain broken" in p for p in result.problems):
        check_record(path, header, events, lines, result)
    if (path / TORN_FILE).is_file():
        result.notes.append(f"{TORN_FILE} holds the torn tail of a killed process, kept when the log was resumed")
    if header is not None and header.get("amendments"):
        result.notes.append(f"{len(header['amendments'])} amendment(s) recorded")
    return result


def verify_session(path: str | Path) -> list[str]:
    """Verify one session folder; return its problems (an empty list means it is intact)."""
    return verify_session_report(path).problems


def verify_ae_log(path: str | Path) -> VerifyResult:
    """Verify one participant's ``adverse_events.jsonl`` (hash chain and seq)."""
    path = Path(path)
    result = VerifyResult(path, "adverse_events")
    if path.is_symlink():
        result.problems.append(f"{path} is a symbolic link; an adverse-event log is always a regular file")
        return result
    events, lines, problems = check_chain(path, name=f"{path.parent.name}/{path.name}")
    result.problems.extend(problems)
    if not problems and all("seq" in ev for ev in events):
        result.problems.extend(check_seq(events, name=f"{path.parent.name}/{path.name}"))
    if not problems:
        from cpm_session.record.ledger import LedgerError, check_anchors, read_ledger

        try:
            led = read_ledger(path.parent.parent)
        except LedgerError as e:
            result.problems.append(str(e))
            return result
        subject = f"{path.parent.name}/{path.name}"
        expect = bool(led.for_subject(subject)) or any(ev.get("anchored") for ev in events)
        p2, n2 = check_anchors(led, subject, lines, expect_anchor=expect, closed=True)
        result.problems.extend(p2)
        result.notes.extend(n2)
    return result


def _is_session_dir(p: Path) -> bool:
    return p.is_dir() and ((p / "session.json").exists() or (p / "events.jsonl").exists())


def verify_path(path: str | Path) -> list[VerifyResult]:
    """Verify a session folder, a participant folder or a whole data folder (``*/*`` sessions and AE logs)."""
    path = Path(path)
    if not path.exists():
        raise IntegrityError(f"{path} does not exist")
    if path.is_file():
        if path.name == AE_LOG or path.suffix == ".jsonl" and path.name != "events.jsonl":
            return [verify_ae_log(path)]
        return [verify_session_report(path.parent)]
    if _is_session_dir(path):
        return [verify_session_report(path)]
    results: list[VerifyResult] = []
    participant_dirs = [path] if (path / AE_LOG).exists() or any(_is_session_dir(p) for p in path.glob("*")) \
        else []
    participant_dirs += [p for p in sorted(path.glob("*")) if p.is_dir() and not _is_session_dir(p)]
    seen: set[Path] = set()
    for pdir in participant_dirs:
        for s in sorted(pdir.glob("*")):
            if _is_session_dir(s) and s not in seen:
                seen.add(s)
                results.append(verify_session_report(s))
        ae = pdir / AE_LOG
        if ae.is_file() and ae not in seen:
            seen.add(ae)
            results.append(verify_ae_log(ae))
    if not results:
        raise IntegrityError(f"{path}: no session folders (holding session.json or events.jsonl) and no "
                             f"{AE_LOG} found below it")
    return results


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


# --------------------------------------------------------------------------------------------- amendments
