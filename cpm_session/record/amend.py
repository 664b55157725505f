"""Amendments: corrections appended to a session's log (who, when, why); the record itself never changes."""

from __future__ import annotations

import contextlib
import copy
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from cpm_session.errors import SessionError
from cpm_session.record.folder import EventLog, get_path, set_path, write_json_atomic
from cpm_session.record.integrity import IntegrityError, _read_header, verify_session_report
from cpm_session.record.schema import LIVE_STATUSES, is_protected


def _split(field_path: str) -> list[str]:
    parts = field_path.split(".")
    if not field_path or any(not p or not re.fullmatch(r"[A-Za-z0-9_]+", p) for p in parts):
        raise IntegrityError(f"field {field_path!r} is not a dotted path of names such as 'visit' or "
                             f"'results.cs_rating_30s'")
    return parts


def get_dotted(obj: dict[str, Any], field_path: str) -> Any:
    """Return the value at a dotted path (None if any part is missing)."""
    return get_path(obj, _split(field_path))


def set_dotted(obj: dict[str, Any], field_path: str, value: Any) -> None:
    """Set the value at a dotted path, creating intermediate objects."""
    set_path(obj, _split(field_path), value)


def amendment_events(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the ``amendment`` events of a log, in order."""
    return [ev for ev in events if ev.get("event") == "amendment"]


def _amendment_record(ev: dict[str, Any]) -> dict[str, Any]:
    return {k: ev.get(k) for k in ("seq", "field", "old", "new", "reason", "operator", "wall")}


def apply_amendments(header: dict[str, Any], events: Iterable[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Return a copy of `header` with every amendment applied in log order (the effective values).

    `events` is the session's event log (any iterable of event dicts); when None, the header's own
    ``amendments`` list is used. The result's ``amendments`` lists what was changed, from what, why
    and by whom; the input is not modified.
    """
    effective = copy.deepcopy(header)
    if events is None:
        records = [dict(a) for a in header.get("amendments") or []]
    else:
        records = [_amendment_record(ev) for ev in amendment_events(events)]
    for rec in records:
        f = rec.get("field")
        if isinstance(f, str) and not is_protected(f):
            set_dotted(effective, f, rec.get("new"))
    effective["amendments"] = records
    return effective


def load_effective_header(session_dir: str | Path) -> dict[str, Any]:
    """Read a session's header and log and return the header with amendments applied."""
    from cpm_session.record.folder import read_events

    session_dir = Path(session_dir)
    header, err = _read_header(session_dir / "session.json")
    if header is None:
        raise IntegrityError(f"{session_dir}: {err}")
    log = session_dir / "events.jsonl"
    events = read_events(log)[0] if log.exists() else None
    return apply_amendments(header, events)


def parse_cli_value(text: str, old: Any) -> Any:
    """Turn the text given on the command line into a value: JSON (numbers, true/false/null, lists)
    when it parses, otherwise the text itself; text stays text when the old value was text."""
    if isinstance(old, str):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _validate_new_value(field_path: str, value: Any) -> None:
    from cpm_session.ids import VISIT_PATTERN, validate_participant_id

    if field_path == "participant":
        validate_participant_id(value)
    elif field_path == "visit":
        if not isinstance(value, str) or not VISIT_PATTERN.fullmatch(value):
            raise IntegrityError(f"visit {value!r} is not valid: expected lower-case letters, digits, '-' or '_'")


def amend_session(session_dir: str | Path, field: str, new_value: Any, reason: str, operator: str) -> dict[str, Any]:
    """Append an ``amendment`` event correcting header field `field` to `new_value`; return the event.

    The log is verified first (an amendment never blesses a damaged record). The event carries
    ``field``, ``old`` (the effective value before), ``new``, ``reason``, ``operator`` and ``wall``;
    the header's original values stay as they were, its ``amendments`` list grows by one and
    ``log_final_sha256``/``log_events`` are refreshed atomically.
    """
    session_dir = Path(session_dir)
    with _amend_lock(session_dir):
        return _amend_locked(session_dir, field, new_value, reason, operator)


@contextlib.contextmanager
def _amend_lock(session_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the session's log so two amendments never fork the chain (POSIX)."""
    log = session_dir / "events.jsonl"
    if not log.is_file():
        raise IntegrityError(f"{session_dir}: events.jsonl is missing; nothing to amend")
    try:
        import fcntl
    except ImportError:  # Windows: one amending operator at a time is the lab's responsibility
        yield
        return
    with open(log, "rb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _amend_locked(session_dir: Path, field: str, new_value: Any, reason: str, operator: str) -> dict[str, Any]:
    if not isinstance(reason, str) or not reason.strip():
        raise IntegrityError("an amendment needs a reason (what was wrong and how the correct value is known)")
    if not isinstance(operator, str) or not operator.strip():
        raise IntegrityError("an amendment needs the operator's initials")
    _split(field)
    if is_protected(field):
        raise IntegrityError(f"field {field!r} describes the record itself and cannot be amended")
    _validate_new_value(field, new_value)
    report = verify_session_report(session_dir)
    if report.problems:
        raise IntegrityError(f"{session_dir} fails verification, so it cannot be amended: {report.problems[0]}")
    header, err = _read_header(session_dir / "session.json")
    if header is None:
        raise IntegrityError(f"{session_dir}: {err}")
    if header.get("status") in LIVE_STATUSES:
        raise IntegrityError(f"{session_dir} has status {header.get('status')!r}: it is still running or its "
                             f"process was killed; resume or close it before amending")
    from cpm_session.record.folder import read_events

    events, _ = read_events(session_dir / "events.jsonl")
    old = get_dotted(apply_amendments(header, events), field)
    if old == new_value and type(old) is type(new_value):
        raise IntegrityError(f"{field} is already {old!r}; nothing to amend")
    last_t = float(events[-1].get("t", 0.0)) if events else 0.0
    log = EventLog(session_dir / "events.jsonl", lambda: last_t)
    try:
        rec = log.append("amendment", field=field, old=old, new=new_value, reason=reason.strip(),
                         operator=operator.strip())
    except OSError as e:
        raise SessionError(f"cannot append to {session_dir / 'events.jsonl'}: {e.strerror or e}") from e
    finally:
        log.close()
    header.setdefault("amendments", [])
    header["amendments"] = list(header["amendments"]) + [_amendment_record(rec)]
    header["log_final_sha256"] = log.prev
    header["log_events"] = log.seq
    try:
        write_json_atomic(session_dir / "session.json", header)
    except OSError as e:
        raise SessionError(f"amendment logged but {session_dir / 'session.json'} could not be rewritten "
                           f"({e.strerror or e}); run the amendment's header refresh again") from e
    from cpm_session.record.ledger import anchor

    anchor(session_dir.parent.parent, f"{session_dir.parent.name}/{session_dir.name}", log.prev, log.seq,
           "amendment")
    return rec
