"""A session folder's files against its log: the header's record of the log, ratings.csv row by row
and the devices.csv header."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from cpm_session.record.folder import GENESIS, line_hash
from cpm_session.record.integrity.common import (
    FLOAT_TOLERANCE,
    PPT_CHECK_COLUMNS,
    RATING_CHECK_COLUMNS,
    TEXT_COLUMNS,
    VerifyResult,
)
from cpm_session.record.schema import LIVE_STATUSES, RATING_SOURCE_EVENTS

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
