"""The event log: append-only, hash-chained, fsync'd per event, recoverable after a torn write."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cpm_session.errors import SessionError
from cpm_session.record.folder import GENESIS, EventLog, SessionFolder, line_hash, read_events


def test_chain_and_fsync_per_event(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    log = EventLog(tmp_path / "events.jsonl", lambda: 1.5)
    log.append("a", x=1)
    log.append("b", y="ü")
    assert len(calls) == 2
    lines = (tmp_path / "events.jsonl").read_bytes().split(b"\n")[:-1]
    first, second = (json.loads(x) for x in lines)
    assert first["prev"] == GENESIS and second["prev"] == line_hash(lines[0])
    assert (first["seq"], first["t"], first["event"], first["x"]) == (0, 1.5, "a", 1)
    assert first["wall"].endswith("Z") and second["y"] == "ü"


def test_reopening_continues_the_chain(tmp_path: Path) -> None:
    p = tmp_path / "events.jsonl"
    log = EventLog(p, lambda: 0.0)
    log.append("a")
    log.close()
    log2 = EventLog(p, lambda: 0.0)
    rec = log2.append("b")
    assert rec["seq"] == 1 and rec["prev"] == line_hash(p.read_bytes().split(b"\n")[0])


def test_torn_tail_is_kept_aside_and_the_log_goes_on(tmp_path: Path) -> None:
    p = tmp_path / "events.jsonl"
    log = EventLog(p, lambda: 0.0)
    log.append("a")
    log.close()
    with open(p, "ab") as f:
        f.write(b'{"seq": 1, "t": 0.0, "ev')  # killed mid-write
    events, problem = read_events(p)
    assert [e["event"] for e in events] == ["a"] and "incomplete" in (problem or "")
    log2 = EventLog(p, lambda: 0.0)
    log2.append("b")
    events, problem = read_events(p)
    assert [e["event"] for e in events] == ["a", "b"] and problem is None
    assert b'"ev' in (tmp_path / "events.torn").read_bytes()


def test_corrupt_middle_line_is_an_error_with_its_number(tmp_path: Path) -> None:
    p = tmp_path / "events.jsonl"
    p.write_bytes(b'{"a": 1}\nnot json\n{"b": 2}\n')
    with pytest.raises(SessionError, match="line 2"):
        read_events(p)


def test_session_folder_refuses_existing_and_unwritable(tmp_path: Path) -> None:
    import datetime as dt

    stamp = dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
    f = SessionFolder.create(tmp_path, "P001", "baseline", {"k": 1}, lambda: 0.0, start=stamp)
    f.log.append("x")
    f.update_header(status="completed")
    f.close()
    header = json.loads((f.path / "session.json").read_text())
    assert header["status"] == "completed" and header["log_events"] == 1 and header["start_utc"] == "2026-05-01T12:00:00.000Z"
    with pytest.raises(SessionError, match="already exists"):
        SessionFolder.create(tmp_path, "P001", "baseline", {}, lambda: 0.0, start=stamp)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.geteuid() != 0:  # root ignores permission bits
            with pytest.raises(SessionError, match="cannot create"):
                SessionFolder.create(ro, "P001", "baseline", {}, lambda: 0.0)
    finally:
        ro.chmod(0o700)


def test_write_rows_batches_cleans_and_hashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch of rows is one write: text cells cleaned, the running hash equals the file's, and fsync
    runs once per `fsync_every` rows passed (not per row)."""
    import hashlib

    from cpm_session.record.folder import CsvAppender

    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    t = CsvAppender(tmp_path / "trace.csv", ["t", "stimulus", "v"], fsync_every=100)
    t.write_rows([[0.01 * k, "ts_pre:1\x1b", 40.5] for k in range(150)])
    assert len(calls) == 1  # 0 -> 150 rows crosses 100 once
    t.write_rows([[2.0, "x", 1.0]] * 49)
    assert len(calls) == 1  # 199 rows: the next boundary (200) not reached
    t.write_rows([[3.0, "x", 1.0]])
    assert len(calls) == 2
    data = (tmp_path / "trace.csv").read_bytes()
    assert t.digest() == {"rows": 200, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    lines = data.decode().splitlines()
    assert lines[0] == "t,stimulus,v" and lines[1] == "0.0,ts_pre:1\\x1b,40.5" and len(lines) == 201
    t.write_rows([])
    assert t.digest()["rows"] == 200
    t.write_rows([[4.0, ["a\x07"], None]])  # text inside a non-text cell is cleaned too
    assert (tmp_path / "trace.csv").read_bytes().decode().splitlines()[-1] == "4.0,['a\\\\x07'],"
