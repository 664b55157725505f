"""The session folder: header, hash-chained append-only event log, derived CSV tables.

Layout of ``<data>/<participant>/<visit>-<UTC stamp>/``:

- ``session.json``  header (software, protocol path + sha256, station, participant, visit, operator,
  start/end time, status) and, once known, ``results``. Rewritten atomically; the log is the truth.
- ``events.jsonl``  one JSON object per line: ``seq``, ``t`` (session s), ``wall`` (UTC ISO 8601),
  ``event`` and its fields, and ``prev``: the SHA-256 (hex) of the previous line's bytes without its
  newline (64 zeros for the first line). Each line is flushed and fsync'd as it is written.
- ``ratings.csv``   one row per rating prompt (rebuildable from ``rating`` events).
- ``devices.csv``   device samples over time.

Both CSV tables keep a running SHA-256 of the bytes written (`SessionFolder.table_hashes`); the session
logs it as ``tables`` at every phase exit and at the end, so `verify` finds an edited, truncated or
extended table. After each phase and at the end the log's head is anchored in the data folder's ledger
(record/ledger.py).

File modes: folders 0750 and files 0640 (before the umask): the operator's account and group may read,
other local users cannot. A lab that wants an analysts' group gives the data folder that group (and
the setgid bit, so new folders inherit it).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from cpm_session.errors import SessionError
from cpm_session.ids import clean_value
from cpm_session.record.schema import AE_LOG, DEVICE_COLUMNS, GENESIS, RATING_COLUMNS

__all__ = ["DEVICE_COLUMNS", "GENESIS", "RATING_COLUMNS"]

DIR_MODE = 0o750
FILE_MODE = 0o640
"""Modes of what the program creates (see the module docstring)."""
SESSION_DIR_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*-\d{8}T\d{6}Z$")
"""`<visit>-<UTC stamp>`: the name of a session folder."""

# --- durability switch for scratch runs (power / simulate-trial in a temporary folder) -------------------
_DURABLE: ContextVar[bool] = ContextVar("cpm_session_durable", default=True)


@contextmanager
def scratch_writes() -> Iterator[None]:
    """Within the block, session folders created without an explicit `durable` skip per-event fsync.

    Only for throw-away simulated sessions in a temporary folder (power replicates): a crash may lose
    the last events, which is harmless there and saves ~40 % of a headless visit's time. Real visits
    never enter this block, so they keep flush + fsync per event.
    """
    token = _DURABLE.set(False)
    try:
        yield
    finally:
        _DURABLE.reset(token)


def durable_default() -> bool:
    """Return whether new session folders fsync every event (False only inside `scratch_writes`)."""
    return _DURABLE.get()


def utc_now() -> dt.datetime:
    """Return the current UTC time."""
    return dt.datetime.now(dt.UTC)


def iso(t: dt.datetime) -> str:
    """Return `t` as ISO 8601 with milliseconds and a Z suffix."""
    return t.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def line_hash(line: bytes) -> str:
    """Return the SHA-256 hex digest of one log line (without its newline)."""
    return hashlib.sha256(line).hexdigest()


def file_sha256(path: str | Path) -> str:
    """Return the SHA-256 hex digest of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write `obj` as JSON to `path` via a temporary file, fsync and rename, so a crash leaves old or new."""
    tmp = path.with_name(path.name + ".tmp")
    text = json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):  # a full disk must not leave an empty temporary behind
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_events(path: str | Path) -> tuple[list[dict[str, Any]], str | None]:
    """Read an event log; return (events, problem).

    A torn last line (the process was killed mid-write) is dropped and reported in `problem`; any
    other unreadable line raises SessionError naming the line number.
    """
    path = Path(path)
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    problem = None
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        problem = f"{path}: last line is incomplete (process killed while writing); dropped"
        lines.pop()
    events = []
    for i, line in enumerate(lines, start=1):
        try:
            ev = json.loads(line)
        except (ValueError, RecursionError) as e:  # JSON, encoding, nesting
            raise SessionError(f"{path}: line {i} is not valid JSON ({str(e)[:200]})") from None
        if not isinstance(ev, dict):
            raise SessionError(f"{path}: line {i} is not a JSON object")
        events.append(ev)
    return events, problem


class EventLog:
    """An append-only, hash-chained JSON-lines log; every event is fsync'd before `append` returns."""

    def __init__(self, path: Path, clock_now: Callable[[], float], fsync: bool = True) -> None:
        self.path = path
        self._now = clock_now
        self._fsync = fsync
        self.seq = 0
        self.prev = GENESIS
        if path.exists():
            events, problem = read_events(path)
            if problem:
                self._truncate_torn_tail()
            self.seq = len(events)
            data = path.read_bytes().rstrip(b"\n").split(b"\n")
            if data and data[0]:
                self.prev = line_hash(data[-1])
        self._f = os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE), "ab")
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    def _truncate_torn_tail(self) -> None:
        raw = self.path.read_bytes()
        keep = raw[: raw.rfind(b"\n") + 1]
        torn = raw[len(keep):]
        with open(self.path, "r+b") as f:
            f.truncate(len(keep))
            f.flush()
            os.fsync(f.fileno())
        # keep the torn bytes for the record, never silently discard them
        with open(self.path.with_name("events.torn"), "ab") as f:
            f.write(torn + b"\n")
            f.flush()
            os.fsync(f.fileno())

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one event with session time, wall time and the hash of the previous line."""
        rec: dict[str, Any] = {"seq": self.seq, "t": round(self._now(), 6), "wall": iso(utc_now()), "event": event}
        rec.update(clean_value(fields))  # no control characters in stored text
        rec["prev"] = self.prev
        line = json.dumps(rec, ensure_ascii=False, default=str, allow_nan=False).encode("utf-8")
        self._f.write(line + b"\n")
        self._f.flush()
        if self._fsync:
            os.fsync(self._f.fileno())
        self.prev = line_hash(line)
        self.seq += 1
        for listener in self.listeners:
            listener(rec)
        return rec

    def close(self) -> None:
        """Close the file (idempotent)."""
        if not self._f.closed:
            self._f.close()


_PLAIN = (int, float, bool)
"""Cell types that can hold no text, so need no cleaning."""


class CsvAppender:
    """Append rows to a CSV file with a header, flushing every row and keeping a running SHA-256 of its bytes."""

    def __init__(self, path: Path, columns: list[str], fsync_every: int = 1) -> None:
        new = not path.exists()
        self.path = path
        self._columns = columns
        self._hash = hashlib.sha256()
        self.rows = 0
        self.bytes = 0
        if not new:
            data = path.read_bytes()
            self._hash.update(data)
            self.bytes = len(data)
            self.rows = max(0, data.count(b"\n") - 1)
        self._f = os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE), "ab")
        self._every = fsync_every
        self._n = 0
        if new:
            buf = io.StringIO()
            csv.writer(buf).writerow(columns)
            self._put(buf.getvalue().encode("utf-8"))

    def _put(self, data: bytes) -> None:
        self._f.write(data)
        self._f.flush()
        self._hash.update(data)
        self.bytes += len(data)

    def write(self, row: dict[str, Any]) -> None:
        """Append a row (keys not in the columns ignored, missing ones empty) and flush it (fsync every
        `fsync_every` rows)."""
        self.write_rows([[row.get(c, "") for c in self._columns]])

    def write_rows(self, rows: list[list[Any]]) -> None:
        """Append `rows` (lists in column order) in one write and one flush; fsync when a multiple of
        `fsync_every` rows is passed (0: never, for scratch runs). Every cell that is not a number or None
        goes through clean_value (no control characters in stored text)."""
        if not rows:
            return
        buf = io.StringIO()
        csv.writer(buf).writerows([[c if c is None or type(c) in _PLAIN else clean_value(c) for c in r] for r in rows])
        self._put(buf.getvalue().encode("utf-8"))
        self.rows += len(rows)
        before, self._n = self._n, self._n + len(rows)
        if self._every and self._n // self._every > before // self._every:
            os.fsync(self._f.fileno())

    def digest(self) -> dict[str, Any]:
        """Return {rows, bytes, sha256} of everything written to the file so far (header included)."""
        return {"rows": self.rows, "bytes": self.bytes, "sha256": self._hash.hexdigest()}

    def close(self) -> None:
        """Flush, fsync and close (idempotent)."""
        if not self._f.closed:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()


def stamp(t: dt.datetime) -> str:
    """Return the folder time stamp for `t`: YYYYmmddTHHMMSSZ."""
    return t.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


class SessionFolder:
    """One session's folder and its open files."""

    def __init__(self, path: Path, clock_now: Callable[[], float], fsync: bool = True,
                 durable: bool | None = None) -> None:
        self.path = path
        durable = durable_default() if durable is None else durable  # False: no per-event fsync (scratch runs)
        self.durable = durable
        self.log = EventLog(path / "events.jsonl", clock_now, fsync=fsync and durable)
        self.ratings = CsvAppender(path / "ratings.csv", RATING_COLUMNS, fsync_every=1 if durable else 0)
        self.devices = CsvAppender(path / "devices.csv", DEVICE_COLUMNS, fsync_every=50 if durable else 0)

    @classmethod
    def create(cls, data_dir: str | Path, participant: str, visit: str, header: dict[str, Any],
               clock_now: Callable[[], float], start: dt.datetime | None = None, fsync: bool = True,
               durable: bool | None = None) -> SessionFolder:
        """Create a new session folder; refuse (SessionError) if it exists or cannot be written."""
        start = start or utc_now()
        check_data_dir(data_dir)
        check_participant_spelling(data_dir, participant)
        if header.get("operator") is not None:
            from cpm_session.ids import validate_operator

            header = dict(header, operator=validate_operator(header["operator"]))
        parent = Path(data_dir) / participant
        path = parent / f"{visit}-{stamp(start)}"
        try:
            Path(data_dir).mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            parent.mkdir(mode=DIR_MODE, exist_ok=True)
            path.mkdir(mode=DIR_MODE, exist_ok=False)
        except FileExistsError:
            raise SessionError(f"session folder {path} already exists; refusing to write over it") from None
        except OSError as e:
            raise SessionError(f"cannot create session folder {path}: {e.strerror or e}") from e
        header = dict(clean_value(header), participant=participant, visit=visit, start_utc=iso(start),
                      status="running")
        try:
            write_json_atomic(path / "session.json", header)
        except OSError as e:
            raise SessionError(f"cannot write {path / 'session.json'}: {e.strerror or e}") from e
        if durable is None:  # follow scratch_writes() (decided in __init__)
            return cls(path, clock_now, fsync=fsync)
        return cls(path, clock_now, fsync=fsync, durable=durable)

    def table(self, name: str, columns: list[str], fsync_every: int = 100) -> CsvAppender:
        """Return the appender of an optional table of this session (e.g. thermode_trace.csv), opened on first use."""
        extra: dict[str, CsvAppender] = self.__dict__.setdefault("_tables", {})
        if name not in extra:
            extra[name] = CsvAppender(self.path / name, columns, fsync_every=fsync_every if self.durable else 0)
        return extra[name]

    def read_header(self) -> dict[str, Any]:
        """Return the current session.json."""
        return json.loads((self.path / "session.json").read_text(encoding="utf-8"))

    def update_header(self, **fields: Any) -> dict[str, Any]:
        """Merge `fields` into session.json (atomic rewrite) and return the new header."""
        header = self.read_header()
        header.update(fields)
        header["log_final_sha256"] = self.log.prev
        header["log_events"] = self.log.seq
        write_json_atomic(self.path / "session.json", header)
        return header

    def table_hashes(self) -> dict[str, dict[str, Any]]:
        """Return {file: {rows, bytes, sha256}} of the CSV tables as written so far (logged as `tables`)."""
        return {"ratings.csv": self.ratings.digest(), "devices.csv": self.devices.digest()}

    @property
    def subject(self) -> str:
        """Return this session's name in its data folder's ledger: ``<participant>/<folder>``."""
        return f"{self.path.parent.name}/{self.path.name}"

    def anchor(self, point: str) -> dict[str, Any]:
        """Anchor the log's head (hash and line count) in the data folder's ledger after `point`."""
        from cpm_session.record.ledger import anchor

        return anchor(self.path.parent.parent, self.subject, self.log.prev, self.log.seq, point)

    def close(self) -> None:
        """Close every file (idempotent, never raises)."""
        tables = list(self.__dict__.get("_tables", {}).values())
        for closer in (self.log.close, self.ratings.close, self.devices.close, *(t.close for t in tables)):
            try:
                closer()
            except OSError:
                pass


PILOT_DIR = "pilot"
"""Pilot runs (`cpm-session run --pilot`) write into `<data>/pilot/<participant>/...`: never study data."""


def pilot_dir(data_dir: str | Path) -> Path:
    """Return where pilot sessions of the data folder `data_dir` go."""
    return Path(data_dir) / PILOT_DIR


def is_study_entry(name: str) -> bool:
    """Return False for a top-level entry of a data folder that holds no study sessions (pilot/, .cache, ...)."""
    return name.lower() != PILOT_DIR and not name.startswith(".")


def iter_session_dirs(data_dir: str | Path) -> Iterable[Path]:
    """Yield every session folder (one holding session.json or events.jsonl) below `data_dir`, sorted.

    Pilot runs (`<data>/pilot/`) and hidden folders (`<data>/.cache/`) are not study data and are skipped."""
    root = Path(data_dir)
    found: list[tuple[str, str]] = []
    try:
        with os.scandir(root) as top:
            parents = sorted(e.name for e in top if is_study_entry(e.name) and e.is_dir())
    except OSError:
        return
    for pname in parents:
        try:
            with os.scandir(root / pname) as it:
                found.extend((pname, e.name) for e in it if e.is_dir())
        except OSError:
            continue
    for pname, name in sorted(found):
        p = root / pname / name
        if os.path.exists(p / "session.json") or os.path.exists(p / "events.jsonl"):
            yield p


def get_path(obj: dict[str, Any], parts: Iterable[str]) -> Any:
    """Return `obj[a][b][c]` for `parts` (a, b, c), or None if a part is missing or not inside an object."""
    cur: Any = obj
    for part in parts:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def set_path(obj: dict[str, Any], parts: list[str], value: Any) -> None:
    """Set `obj[a][b][c] = value` for `parts` (a, b, c), replacing anything on the way that is not an object."""
    cur = obj
    for part in parts[:-1]:
        nxt = cur.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[part] = nxt
        cur = nxt
    cur[parts[-1]] = value


def is_session_dir(p: Path) -> bool:
    """Return True if `p` is a session folder (it holds session.json or events.jsonl)."""
    return (p / "session.json").exists() or (p / "events.jsonl").exists()


def is_participant_dir(p: Path) -> bool:
    """Return True if `p` looks like a participant folder (an adverse-event log or a session folder in it)."""
    if (p / AE_LOG).exists():
        return True
    try:
        return any(is_session_dir(c) for c in p.iterdir() if SESSION_DIR_PATTERN.fullmatch(c.name) and c.is_dir())
    except OSError:
        return False


def check_data_dir(data_dir: str | Path) -> Path:
    """Return `data_dir` as a Path if sessions may be created below it; raise SessionError if it is empty text,
    or a session folder or participant folder (or inside one): a session is never nested in another."""
    if not str(data_dir).strip():
        raise SessionError("--data is empty: give the data folder (e.g. data), never the working directory by accident")
    p = Path(data_dir).expanduser().absolute()
    for anc in (p, *p.parents):
        if not anc.is_dir():
            continue
        if is_session_dir(anc):
            raise SessionError(f"--data {data_dir} is inside the session folder {anc}; give the data folder that "
                               f"holds <participant>/<visit>-<stamp>/")
        if is_participant_dir(anc):
            raise SessionError(f"--data {data_dir} is inside the participant folder {anc}; give the data folder "
                               f"above it")
    return Path(data_dir)


def check_participant_spelling(data_dir: str | Path, participant: str) -> None:
    """Refuse a participant ID that already exists in `data_dir` in another spelling (P001 vs p001)."""
    from cpm_session.ids import same_participant_other_spelling

    root = Path(data_dir)
    if (root / participant).is_dir() or not root.is_dir():
        return
    try:
        names = [c.name for c in root.iterdir() if c.is_dir()]
    except OSError:
        return
    other = same_participant_other_spelling(participant, names)
    if other:
        raise SessionError(f"participant {participant!r} already exists in {root} as {other!r}: IDs are "
                           f"case-insensitive; use {other!r}")
