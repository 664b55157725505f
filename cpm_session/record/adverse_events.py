"""Adverse events: an append-only, hash-chained log per participant.

``<data>/<participant>/adverse_events.jsonl`` is written through `cpm_session.record.folder.EventLog`, so
every line carries ``seq``, ``t``, ``wall``, ``event`` and ``prev`` (SHA-256 of the previous line) and
is fsync'd before the call returns. Two kinds of line:

- ``adverse_event``: ``ae_id``, ``participant``, ``description``, ``onset_date`` (ISO date),
  ``severity``, ``serious`` ("yes" | "no"), ``relatedness``, ``action_taken``, ``outcome``,
  ``operator``, ``visit`` and ``session`` (null unless recorded during a visit).
- ``adverse_event_update``: ``ae_id``, ``participant``, ``changes`` ({field: new value}),
  ``operator``, ``note``, ``visit``, ``session``. Nothing written is ever edited; the current state of
  an event is its first line with every update applied in order (`list_adverse_events`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from cpm_session.errors import CpmError, SessionError
from cpm_session.ids import validate_participant_id
from cpm_session.record.folder import EventLog, read_events

AE_LOG = "adverse_events.jsonl"
EVENT_REPORT = "adverse_event"
EVENT_UPDATE = "adverse_event_update"
AE_ID_PREFIX = "AE"
AE_ID_DIGITS = 3
AE_ID_PATTERN = re.compile(r"^AE\d{3,}$")
MAX_DESCRIPTION_CHARS = 2000
MAX_OPERATOR_CHARS = 32
MAX_NOTE_CHARS = 2000

ALLOWED: dict[str, tuple[str, ...]] = {
    "severity": ("mild", "moderate", "severe"),
    "serious": ("yes", "no"),
    "relatedness": ("not related", "unlikely", "possible", "probable", "definite"),
    "action_taken": ("none", "dose reduced", "drug interrupted", "drug withdrawn", "other"),
    "outcome": ("recovered", "recovering", "not recovered", "recovered with sequelae", "fatal", "unknown"),
}
"""Controlled vocabularies (values are stored exactly as spelt here)."""

REPORT_FIELDS = ("description", "onset_date", "severity", "serious", "relatedness", "action_taken", "outcome")
"""Fields a new adverse event must give (the operator is a separate argument)."""
UPDATABLE_FIELDS = REPORT_FIELDS
"""Fields an update may change; ae_id, participant and the reporting operator never change."""
STATE_COLUMNS = ("participant", "ae_id", *REPORT_FIELDS, "operator", "visit", "session", "recorded_wall",
                 "updates", "updated_wall", "updated_by")
"""Keys of each dict `list_adverse_events` returns, in display order."""


class AdverseEventError(CpmError):
    """An adverse event (or an update of one) is incomplete or has a value outside its vocabulary."""


# ------------------------------------------------------------------------------ validation

def _norm_choice(field: str, value: object) -> str:
    allowed = ALLOWED[field]
    if field == "serious" and isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        v = " ".join(value.strip().lower().replace("_", " ").replace("-", " ").split())
        if v in allowed:
            return v
    raise AdverseEventError(f"{field}: expected one of {', '.join(repr(a) for a in allowed)}; got {value!r}")


def _norm_date(value: object, today: dt.date) -> str:
    if isinstance(value, dt.datetime):
        raise AdverseEventError(f"onset_date: expected a date YYYY-MM-DD; got a date and time {value!r}")
    if isinstance(value, dt.date):
        d = value
    elif isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            d = dt.date.fromisoformat(value.strip())
        except ValueError:
            raise AdverseEventError(f"onset_date: expected a real calendar date YYYY-MM-DD; got {value!r}") from None
    else:
        raise AdverseEventError(f"onset_date: expected an ISO date YYYY-MM-DD; got {value!r}")
    if d > today:
        raise AdverseEventError(f"onset_date: expected a date not in the future (today is {today.isoformat()}); "
                                f"got {d.isoformat()}")
    return d.isoformat()


def _norm_text(field: str, value: object, max_chars: int, *, required: bool = True) -> str:
    if not isinstance(value, str) or (required and not value.strip()):
        raise AdverseEventError(f"{field}: expected non-empty text; got {value!r}")
    v = value.strip()
    if len(v) > max_chars:
        raise AdverseEventError(f"{field}: expected at most {max_chars} characters; got {len(v)}")
    return v


def _norm_operator(value: object) -> str:
    from cpm_session.errors import InvalidIdError
    from cpm_session.ids import validate_operator

    v = _norm_text("operator", value, MAX_OPERATOR_CHARS)
    try:
        return validate_operator(v)
    except InvalidIdError as e:
        raise AdverseEventError(f"operator: {e}") from None


def _norm_field(field: str, value: object, today: dt.date) -> str:
    if field == "description":
        return _norm_text(field, value, MAX_DESCRIPTION_CHARS)
    if field == "onset_date":
        return _norm_date(value, today)
    return _norm_choice(field, value)


def _check_known(fields: dict[str, Any], allowed: tuple[str, ...], what: str) -> None:
    unknown = [k for k in fields if k not in allowed]
    if unknown:
        raise AdverseEventError(f"{unknown[0]}: not a field of {what}; expected one of {', '.join(allowed)}")


def _check_consistent(state: dict[str, Any]) -> None:
    if state.get("outcome") == "fatal" and state.get("serious") != "yes":
        raise AdverseEventError("serious: an adverse event with outcome 'fatal' is serious by definition; "
                                f"expected 'yes', got {state.get('serious')!r}")


def validate_report(fields: dict[str, Any], *, today: dt.date | None = None) -> dict[str, str]:
    """Return the fields of a new adverse event normalised (vocabulary spelling, ISO date); raise AdverseEventError."""
    today = today or dt.date.today()
    _check_known(fields, REPORT_FIELDS, "an adverse event")
    missing = [k for k in REPORT_FIELDS if fields.get(k) is None]
    if missing:
        raise AdverseEventError(f"{missing[0]}: required; expected "
                                + (f"one of {', '.join(repr(a) for a in ALLOWED[missing[0]])}" if missing[0] in ALLOWED
                                   else "a value") + "; got nothing")
    out = {k: _norm_field(k, fields[k], today) for k in REPORT_FIELDS}
    _check_consistent(out)
    return out


# ------------------------------------------------------------------------------ storage

def ae_log_path(data_dir: str | Path, participant: str) -> Path:
    """Return ``<data_dir>/<participant>/adverse_events.jsonl`` (participant ID validated)."""
    return Path(data_dir) / validate_participant_id(participant) / AE_LOG


def _writable_log_path(data_dir: str | Path, participant: str) -> Path:
    """Return the AE log path after checking the data folder (not inside a session or participant folder)
    and the participant's spelling (P001 and p001 are one participant)."""
    from cpm_session.record.folder import check_data_dir, check_participant_spelling

    check_data_dir(data_dir)
    check_participant_spelling(data_dir, validate_participant_id(participant))
    return ae_log_path(data_dir, participant)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if absent) so two writers never fork the chain."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f: IO[bytes] = open(path, "ab")
    except OSError as e:
        raise SessionError(f"cannot open {path} for appending: {e.strerror or e}") from e
    try:
        try:
            import fcntl
        except ImportError:  # Windows: one writer per participant is the lab's responsibility
            yield
            return
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    finally:
        f.close()


def _session_context(session_dir: Path | None, participant: str) -> tuple[str | None, str | None]:
    """Return (visit, session folder name) for an event recorded during a visit."""
    if session_dir is None:
        return None, None
    session_dir = Path(session_dir)
    if session_dir.parent.name != participant:
        raise AdverseEventError(f"session: folder {session_dir} does not belong to participant {participant!r}")
    visit: str | None = None
    try:
        header = json.loads((session_dir / "session.json").read_text(encoding="utf-8"))
        if isinstance(header, dict) and isinstance(header.get("visit"), str):
            visit = header["visit"]
    except (OSError, ValueError):
        pass
    if visit is None:
        visit = session_dir.name.rsplit("-", 1)[0]
    return visit, session_dir.name


def _read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    events, _problem = read_events(path)  # a torn last line is dropped here and kept aside on the next append
    return [e for e in events if isinstance(e, dict)]


def _states(events: list[dict[str, Any]], participant: str) -> dict[str, dict[str, Any]]:
    states: dict[str, dict[str, Any]] = {}
    for ev in events:
        kind, ae_id = ev.get("event"), ev.get("ae_id")
        if kind == EVENT_REPORT and isinstance(ae_id, str):
            st: dict[str, Any] = dict.fromkeys(STATE_COLUMNS)
            st.update({k: ev.get(k) for k in (*REPORT_FIELDS, "operator", "visit", "session")})
            st.update(participant=participant, ae_id=ae_id, recorded_wall=ev.get("wall"), updates=0)
            states[ae_id] = st
        elif kind == EVENT_UPDATE and ae_id in states and isinstance(ev.get("changes"), dict):
            st = states[ae_id]
            st.update({k: v for k, v in ev["changes"].items() if k in UPDATABLE_FIELDS})
            st.update(updates=st["updates"] + 1, updated_wall=ev.get("wall"), updated_by=ev.get("operator"))
    return states


def _next_id(states: dict[str, dict[str, Any]]) -> str:
    numbers = [int(k[len(AE_ID_PREFIX):]) for k in states if AE_ID_PATTERN.fullmatch(k)]
    return f"{AE_ID_PREFIX}{(max(numbers, default=0) + 1):0{AE_ID_DIGITS}d}"


def _append(path: Path, clock_now: Callable[[], float] | None, event: str, **fields: Any) -> dict[str, Any]:
    from cpm_session.record.ledger import anchor

    log = EventLog(path, clock_now or (lambda: 0.0))
    try:
        rec = log.append(event, **fields)
    except OSError as e:
        raise SessionError(f"cannot append to {path}: {e.strerror or e}") from e
    finally:
        log.close()
    try:
        anchor(path.parent.parent, f"{path.parent.name}/{path.name}", log.prev, log.seq, event)
    except OSError as e:
        raise SessionError(f"{path}: recorded, but the data folder's ledger could not be written "
                           f"({e.strerror or e}); `cpm-session verify` will report this log as unanchored") from e
    return rec


def record_adverse_event(data_dir: str | Path, participant: str, fields: dict[str, Any], *, operator: str,
                         session_dir: Path | None = None, clock_now: Callable[[], float] | None = None,
                         today: dt.date | None = None) -> dict[str, Any]:
    """Validate a new adverse event, append it to the participant's log (fsync'd) and return the written line.

    `fields` holds every name in REPORT_FIELDS (values as in ALLOWED; `serious` may be a bool;
    `onset_date` a date or 'YYYY-MM-DD' not after `today`, default the local date). With
    `session_dir` (data/<participant>/<visit>-<stamp>) the visit and session folder are recorded and
    `clock_now` (the session clock) gives ``t``; otherwise ``t`` is 0.0. The new ``ae_id`` is AE001,
    AE002, ... per participant. The engine should log the returned fields in events.jsonl too.
    """
    participant = validate_participant_id(participant)
    clean = validate_report(fields, today=today)
    op = _norm_operator(operator)
    visit, session = _session_context(session_dir, participant)
    path = _writable_log_path(data_dir, participant)
    with _locked(path):
        ae_id = _next_id(_states(_read_log(path), participant))
        return _append(path, clock_now, EVENT_REPORT, ae_id=ae_id, participant=participant, **clean,
                       operator=op, visit=visit, session=session)


def update_adverse_event(data_dir: str | Path, participant: str, ae_id: str, changes: dict[str, Any], *,
                         operator: str, note: str = "", session_dir: Path | None = None,
                         clock_now: Callable[[], float] | None = None, today: dt.date | None = None) -> dict[str, Any]:
    """Append an update of adverse event `ae_id` (e.g. its outcome) and return the written line.

    `changes` maps fields of UPDATABLE_FIELDS to new values (validated as for a new event; at least
    one must differ from the current state). The original line is never edited.
    """
    participant = validate_participant_id(participant)
    if not changes:
        raise AdverseEventError(f"update of {ae_id}: expected at least one field to change "
                                f"({', '.join(UPDATABLE_FIELDS)}); got none")
    _check_known(changes, UPDATABLE_FIELDS, "an adverse-event update")
    today = today or dt.date.today()
    clean = {k: _norm_field(k, v, today) for k, v in changes.items()}
    op = _norm_operator(operator)
    note_text = _norm_text("note", note, MAX_NOTE_CHARS, required=False)
    visit, session = _session_context(session_dir, participant)
    path = _writable_log_path(data_dir, participant)
    if not path.exists():
        raise AdverseEventError(f"ae_id: participant {participant} has no adverse events recorded ({path} does not exist)")
    with _locked(path):
        states = _states(_read_log(path), participant)
        if ae_id not in states:
            raise AdverseEventError(f"ae_id: expected one of {', '.join(states) or 'none'} for participant "
                                    f"{participant}; got {ae_id!r}")
        current = states[ae_id]
        effective = {k: v for k, v in clean.items() if current.get(k) != v}
        if not effective:
            raise AdverseEventError(f"update of {ae_id}: nothing changes ({', '.join(f'{k} is already {v!r}' for k, v in clean.items())})")
        _check_consistent({**current, **effective})
        return _append(path, clock_now, EVENT_UPDATE, ae_id=ae_id, participant=participant, changes=effective,
                       operator=op, note=note_text, visit=visit, session=session)


def list_adverse_events(data_dir: str | Path, participant: str | None = None) -> list[dict[str, Any]]:
    """Return the current state of every adverse event (keys STATE_COLUMNS), by participant then ae_id.

    With `participant` only that participant's events; otherwise every ``<data_dir>/*/adverse_events.jsonl``.
    """
    root = Path(data_dir)
    if participant is not None:
        paths = [ae_log_path(root, participant)]
    else:
        paths = sorted(root.glob(f"*/{AE_LOG}"))
    out: list[dict[str, Any]] = []
    for path in paths:
        out.extend(_states(_read_log(path), path.parent.name).values())
    return out


def adverse_event_history(data_dir: str | Path, participant: str, ae_id: str) -> list[dict[str, Any]]:
    """Return every line (report and updates) written about `ae_id`, oldest first."""
    return [e for e in _read_log(ae_log_path(data_dir, participant)) if e.get("ae_id") == ae_id]


def parse_ae_note(text: str, *, today: dt.date) -> dict[str, Any] | None:
    """Return the adverse-event fields of a staff note 'AE: description; severity=mild; ...', or None when
    the note is not an adverse event. Unknown keys are dropped; `action` means `action_taken`."""
    if not text.strip().upper().startswith("AE:"):
        return None
    parts = [p.strip() for p in text.strip()[3:].split(";")]
    fields: dict[str, Any] = {"description": parts[0] or "(no description)", "onset_date": today.isoformat()}
    for p in parts[1:]:
        key, _, val = p.partition("=")
        key = {"action": "action_taken"}.get(key.strip().lower(), key.strip().lower())
        if key in ALLOWED or key == "onset_date":
            fields[key] = val.strip()
    return fields
