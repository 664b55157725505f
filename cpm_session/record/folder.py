"""The session folder: header, hash-chained append-only event log, derived CSV tables.

Layout of ``<data>/<participant>/<visit>-<UTC stamp>/``:

- ``session.json``  header (software, protocol path + sha256, station, participant, visit, operator,
  start/end time, status) and, once known, ``results``. Rewritten atomically; the log is the truth.
- ``events.jsonl``  one JSON object per line: ``seq``, ``t`` (session s), ``wall`` (UTC ISO 8601),
  ``event`` and its fields, and ``prev``: the SHA-256 (hex) of the previous line's bytes without its
  newline (64 zeros for the first line). Each line is flushed and fsync'd as it is written.
- ``ratings.csv``   one row per rating prompt (rebuildable from ``rating`` events).
- ``devices.csv``   device samples over time.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cpm_session.errors import SessionError
from cpm_session.record.schema import DEVICE_COLUMNS, GENESIS, RATING_COLUMNS

__all__ = ["DEVICE_COLUMNS", "GENESIS", "RATING_COLUMNS"]


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
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
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
            events.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise SessionError(f"{path}: line {i} is not valid JSON ({e})") from e
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
        self._f = open(path, "ab")
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
        rec.update(fields)
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


class CsvAppender:
    """Append rows to a CSV file with a header, flushing every row."""

    def __init__(self, path: Path, columns: list[str], fsync_every: int = 1) -> None:
        new = not path.exists()
        self._f = open(path, "a", newline="", encoding="utf-8")
        self._w = csv.DictWriter(self._f, fieldnames=columns, extrasaction="ignore")
        self._every = fsync_every
        self._n = 0
        if new:
            self._w.writeheader()
            self._f.flush()

    def write(self, row: dict[str, Any]) -> None:
        """Append a row and flush it (fsync every `fsync_every` rows)."""
        self._w.writerow(row)
        self._f.flush()
        self._n += 1
        if self._n % self._every == 0:
            os.fsync(self._f.fileno())

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

    def __init__(self, path: Path, clock_now: Callable[[], float], fsync: bool = True) -> None:
        self.path = path
        self.log = EventLog(path / "events.jsonl", clock_now, fsync=fsync)
        self.ratings = CsvAppender(path / "ratings.csv", RATING_COLUMNS)
        self.devices = CsvAppender(path / "devices.csv", DEVICE_COLUMNS, fsync_every=50)

    @classmethod
    def create(cls, data_dir: str | Path, participant: str, visit: str, header: dict[str, Any],
               clock_now: Callable[[], float], start: dt.datetime | None = None, fsync: bool = True) -> SessionFolder:
        """Create a new session folder; refuse (SessionError) if it exists or cannot be written."""
        start = start or utc_now()
        parent = Path(data_dir) / participant
        path = parent / f"{visit}-{stamp(start)}"
        try:
            parent.mkdir(parents=True, exist_ok=True)
            path.mkdir(exist_ok=False)
        except FileExistsError:
            raise SessionError(f"session folder {path} already exists; refusing to write over it") from None
        except OSError as e:
            raise SessionError(f"cannot create session folder {path}: {e.strerror or e}") from e
        header = dict(header, participant=participant, visit=visit, start_utc=iso(start), status="running")
        try:
            write_json_atomic(path / "session.json", header)
        except OSError as e:
            raise SessionError(f"cannot write {path / 'session.json'}: {e.strerror or e}") from e
        return cls(path, clock_now, fsync=fsync)

    def table(self, name: str, columns: list[str], fsync_every: int = 100) -> CsvAppender:
        """Return the appender of an optional table of this session (e.g. thermode_trace.csv), opened on first use."""
        extra: dict[str, CsvAppender] = self.__dict__.setdefault("_tables", {})
        if name not in extra:
            extra[name] = CsvAppender(self.path / name, columns, fsync_every=fsync_every)
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
