"""Verify a session folder, an adverse-event log, or every one of them below a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cpm_session.record.integrity.chain import check_chain, check_seq
from cpm_session.record.integrity.common import TORN_FILE, IntegrityError, VerifyResult
from cpm_session.record.integrity.record_vs_log import check_record
from cpm_session.record.integrity.tables import _check_devices, _check_header_vs_log, _check_ratings, _read_header
from cpm_session.record.schema import AE_LOG, LIVE_STATUSES, SESSION_FILES


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
