"""The hash chain and ``seq`` of a JSON-lines log (events.jsonl, adverse_events.jsonl)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cpm_session.record.folder import GENESIS, line_hash
from cpm_session.record.integrity.common import HEX64

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
