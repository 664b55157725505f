"""The one verification gate: nothing read back from disk drives a device, a statistic or an export unverified.

Every command that reads a session asks this module:

- `require_verified(path, purpose)`: resume and visit 2 refuse a session that fails, with the reason.
- `screen_table(table, include_unverified)`: summarize and analyze drop the rows of sessions that fail
  (or keep them marked with ``--include-unverified``) and get the lines to print and to put in the report.
- `screen_paths(paths, include_unverified)`: the exports, the same for session folders.
- `require_ae_log(path)`: the adverse-event command.

What "verified" means is `record.integrity.verify_session_report`: the hash chain and ``seq``, the header
and its results recomputed from the log (record/derive), ratings.csv and devices.csv against the hashes the
log recorded, the folder name against the log, and the log's head against the data folder's ledger.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cpm_session.errors import SessionError
from cpm_session.record.integrity import IntegrityError, VerifyResult, verify_ae_log, verify_session_report

MAX_REASONS = 3
"""Problems quoted in a refusal (the rest: `cpm-session verify`)."""


class VerificationFailed(IntegrityError, SessionError):
    """A session or log failed verification and may not be used for what was asked."""


def check(path: str | Path) -> VerifyResult:
    """Return the full verdict on one session folder."""
    return verify_session_report(Path(path))


def _why(result: VerifyResult) -> str:
    more = len(result.problems) - MAX_REASONS
    text = "; ".join(result.problems[:MAX_REASONS])
    return text + (f" (and {more} more; run `cpm-session verify`)" if more > 0 else "")


def require_verified(path: str | Path, purpose: str) -> VerifyResult:
    """Return the verdict if the session passes; raise VerificationFailed naming it and why otherwise.

    `purpose` completes "cannot be ...": e.g. "resumed", "used as the baseline"."""
    result = check(path)
    if not result.ok:
        raise VerificationFailed(f"{path} fails verification, so it cannot be {purpose}: {_why(result)}")
    return result


def require_ae_log(path: str | Path) -> VerifyResult:
    """Return the verdict on an adverse-event log; raise VerificationFailed if it fails."""
    result = verify_ae_log(Path(path))
    if not result.ok:
        raise VerificationFailed(f"{path} fails verification; nothing is appended to a damaged adverse-event "
                                 f"log: {_why(result)}")
    return result


@dataclass
class Screened:
    """What a reader may use, and what it left out (or kept marked) and why."""

    kept: list[Path] = field(default_factory=list)
    excluded: list[tuple[Path, str]] = field(default_factory=list)
    marked: list[tuple[Path, str]] = field(default_factory=list)
    results: dict[Path, VerifyResult] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """Return one line per excluded or marked session, for the output and the report."""
        out = [f"EXCLUDED (fails verification): {p}: {why}" for p, why in self.excluded]
        out += [f"UNVERIFIED, included on request (--include-unverified): {p}: {why}" for p, why in self.marked]
        return out


def screen_paths(paths: Iterable[str | Path], *, include_unverified: bool = False) -> Screened:
    """Verify every session folder; keep those that pass (and, on request, the others marked)."""
    s = Screened()
    for raw in paths:
        p = Path(raw)
        r = check(p)
        s.results[p] = r
        if r.ok:
            s.kept.append(p)
        elif include_unverified:
            s.kept.append(p)
            s.marked.append((p, _why(r)))
        else:
            s.excluded.append((p, _why(r)))
    return s


def screen_table(table: Any, *, include_unverified: bool = False) -> tuple[Any, list[str]]:
    """Return (rows to use, lines saying what was excluded or marked) of a summary table.

    The table has `integrity_ok` (from the gate's verdict, via summarize) and `path`; rows with
    integrity_ok False are dropped unless `include_unverified`, rows with None were not checked and are
    dropped too (an unverified statistic is never silent)."""
    if len(table) == 0 or "integrity_ok" not in table.columns:
        return table, []
    bad = table["integrity_ok"].map(lambda v: v is not True and v != True)  # noqa: E712 (numpy bools)
    lines = []
    for _, row in table[bad].iterrows():
        r = check(row["path"]) if row.get("path") else None
        why = _why(r) if r is not None and r.problems else "not verified"
        label = "UNVERIFIED, included on request (--include-unverified)" if include_unverified else \
            "EXCLUDED (fails verification)"
        lines.append(f"{label}: {row.get('path')}: {why}")
    if include_unverified:
        return table, lines
    return table[~bad].reset_index(drop=True), lines
