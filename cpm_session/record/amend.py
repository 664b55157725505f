"""Amendments: corrections appended to a session's log (who, when, why); the record itself never changes."""

from __future__ import annotations

import contextlib
import copy
import json
import math
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


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def parse_cli_value(text: str, old: Any) -> Any:
    """Turn the text given on the command line into a value: JSON (numbers, true/false/null, lists)
    when it parses, otherwise the text itself; text stays text when the old value was text.
    NaN, Infinity and numbers too large for a float (1e999) are refused, never stored."""
    if isinstance(old, str):
        return text
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError:
        return text
    except RecursionError:
        raise IntegrityError("value: nested far too deeply to be a header value") from None
    except ValueError as e:
        raise IntegrityError(f"value {text[:60]!r}: {e}; give a finite number") from None
    if not _all_finite(value):
        raise IntegrityError(f"value {text[:60]!r} holds a number that is not finite (too large for a float?)")
    return value


def _all_finite(v: Any) -> bool:
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, list):
        return all(_all_finite(x) for x in v)
    if isinstance(v, dict):
        return all(_all_finite(x) for x in v.values())
    return True


RATING_RANGE = (0.0, 100.0)
MAX_RATINGS = 20


def _rating(field: str, v: Any, *, nullable: bool = True) -> None:
    if v is None and nullable:
        return
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
            or not RATING_RANGE[0] <= v <= RATING_RANGE[1]:
        raise IntegrityError(f"{field}: expected a rating, a number in [{RATING_RANGE[0]:g}, {RATING_RANGE[1]:g}]"
                             f"{' or null (missing)' if nullable else ''}; found {v!r}")


def _rating_list(field: str, v: Any) -> None:
    if not isinstance(v, list) or not 1 <= len(v) <= MAX_RATINGS:
        raise IntegrityError(f"{field}: expected a list of 1-{MAX_RATINGS} ratings (numbers in [0, 100] or null), "
                             f"found {v!r}")
    for x in v:
        _rating(field, x)


def _choice(field: str, v: Any, allowed: tuple[Any, ...]) -> None:
    if v not in allowed or isinstance(v, bool) != isinstance(allowed[0], bool):
        raise IntegrityError(f"{field}: expected one of {', '.join(repr(a) for a in allowed)}; found {v!r}")


def _seconds(field: str, v: Any, hi: float) -> None:
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not 0 <= v <= hi:
        raise IntegrityError(f"{field}: expected seconds in [0, {hi:g}] or null; found {v!r}")


def _participant(field: str, v: Any) -> None:
    from cpm_session.ids import validate_participant_id

    validate_participant_id(v)


def _visit(field: str, v: Any) -> None:
    from cpm_session.ids import VISIT_PATTERN

    if not isinstance(v, str) or not VISIT_PATTERN.fullmatch(v):
        raise IntegrityError(f"visit {v!r} is not valid: expected lower-case letters, digits, '-' or '_'")


def _operator(field: str, v: Any) -> None:
    from cpm_session.ids import validate_operator

    validate_operator(v)


AMENDABLE: dict[str, Any] = {
    "participant": _participant,
    "visit": _visit,
    "operator": _operator,
    "hand": lambda f, v: _choice(f, v, ("left", "right")),
    "results.cs_rating_30s": _rating,
    "results.ts_pre_ratings": _rating_list,
    "results.ts_post_ratings": _rating_list,
    "results.cs_rating_flag": lambda f, v: _choice(f, v, ("", "early_withdrawal", "not_noxious", "missing")),
    "results.withdrawal_s": lambda f, v: _seconds(f, v, 300.0),
}
"""Fields an amendment may correct, each with the check of its new value (type and range)."""

QUESTIONNAIRE_ANSWER = re.compile(r"^questionnaires\.[a-z0-9_]+\.answers\.[A-Za-z0-9_]+$")
"""A questionnaire answer (a number, or null) may be corrected too: questionnaires.<name>.answers.<item>."""

FACTS = ("results.ts_intensity", "results.pain60_c", "results.ppt_kpa", "results.ts_unit", "results.ts_modality",
         "results.calibration", "results.derivation", "results.sign_convention")
"""What a device delivered and how it was derived: a fact of the log, never amended."""
DERIVED = ("results.ts_pre", "results.ts_post", "results.cpm_abs", "results.cpm_pct", "results.cpm_pct_note",
           "results.cpm_category", "results.inhibition", "results.bath_mean_c", "results.bath_min_c",
           "results.bath_max_c", "results.control", "questionnaires")
"""Derived values: amend what they are derived from (the ratings), never the result."""


def _validate_new_value(field_path: str, value: Any) -> None:
    """Raise IntegrityError unless `field_path` may be amended and `value` fits its type and range."""
    if any(field_path == f or field_path.startswith(f + ".") for f in FACTS):
        raise IntegrityError(f"field {field_path!r} records what the device delivered (a fact of the log); it "
                             f"cannot be amended")
    check = AMENDABLE.get(field_path)
    if check is None and QUESTIONNAIRE_ANSWER.fullmatch(field_path):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not math.isfinite(value) or not 0 <= value <= 1000):
            raise IntegrityError(f"{field_path}: expected a questionnaire answer, a number in [0, 1000] or null; "
                                 f"found {value!r}")
        return
    if check is None and any(field_path == f or field_path.startswith(f + ".") for f in DERIVED):
        raise IntegrityError(f"field {field_path!r} is derived (record/derive computes it); amend what it is "
                             f"derived from, e.g. results.ts_pre_ratings or results.ts_post_ratings")
    if check is None:
        raise IntegrityError(f"field {field_path!r} cannot be amended; amendable fields: "
                             f"{', '.join(AMENDABLE)}, questionnaires.<name>.answers.<item>")
    check(field_path, value)


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
    from cpm_session.ids import has_control_chars, validate_operator

    operator = validate_operator(operator)
    if has_control_chars(reason) or len(reason) > 2000:
        raise IntegrityError("the reason must be at most 2000 characters of text without control characters")
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
