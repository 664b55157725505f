"""Read session folders back: header and events, and the participant's baseline session.

Everything read here is untrusted input: callers that let it drive a device or a statistic verify it
first (record.integrity).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cpm_session.errors import SessionError
from cpm_session.record.folder import read_events
from cpm_session.record.schema import META_KEYS


def load_session(session_dir: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Return (session.json header, events) of a session folder; tolerate a torn last log line.

    A missing or unreadable session.json is rebuilt in memory from the log's `session_start` event (status
    running); nothing is written (a file that fails verification is evidence, never overwritten before it)."""
    d = Path(session_dir)
    if not (d / "events.jsonl").is_file():
        raise SessionError(f"{d} is not a session folder (no events.jsonl)")
    events, _problem = read_events(d / "events.jsonl")
    try:
        header = json.loads((d / "session.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        header = None
    if not isinstance(header, dict):
        start = next((e for e in events if e.get("event") == "session_start"), None)
        if start is None:
            raise SessionError(f"{d}: neither session.json nor a session_start event can be read") from None
        header = {k: v for k, v in start.items() if k not in META_KEYS}
        header["status"] = "running"
    return header, events


def find_baseline(data_dir: Path, participant: str, baseline_visit: str) -> dict[str, Any] | None:
    """Return the header (with `_dir`) of the participant's latest completed baseline session, or None.

    Sessions are ordered by the start time their log records, not by folder name."""
    best: tuple[str, dict[str, Any]] | None = None
    pdir = Path(data_dir) / participant
    if not pdir.is_dir():
        return None
    for sj in sorted(pdir.glob(f"{baseline_visit}-*/session.json")):
        try:
            header = json.loads(sj.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            continue
        if not isinstance(header, dict) or header.get("status") != "completed":
            continue
        if not isinstance(header.get("results"), dict) or header["results"].get("ts_intensity") is None:
            continue
        header["_dir"] = str(sj.parent)
        key = str(header.get("start_utc", ""))
        if best is None or key >= best[0]:
            best = (key, header)
    return best[1] if best else None
