"""Summary rows at consortium scale: each session's verified row cached by record/cache.py, misses in parallel.

`read_rows` is what `summarize` calls: it returns the same (rows, warnings) as reading every folder with
`summarize.read_session`, but reads a folder again only when its log's head hash or one of its files
changed (or the code that computes rows did). A row's one outside input, the CPM threshold read from the
protocol file the session recorded, is kept with it and re-checked before the row is reused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cpm_session import __version__
from cpm_session.errors import CpmError
from cpm_session.record.cache import CacheStats, cached_map, code_salt

KIND = "summary"
SKIPPED_ERRORS = (CpmError, OSError, ValueError, KeyError, TypeError, AttributeError)
"""What makes a folder 'unreadable, skipped' (as summarize always did)."""

_state: dict[tuple[tuple[str, ...], bool], tuple[Any, Any]] = {}
"""This process's ProtocolCache and verifier per settings (a worker process makes its own once)."""


def _protocols_and_verify(search_dirs: tuple[str, ...], check_integrity: bool) -> tuple[Any, Any]:
    """Return this process's ProtocolCache and integrity verifier for these settings (made once)."""
    from cpm_session.analysis import summarize as s

    key = (search_dirs, check_integrity)
    if key not in _state:
        _state[key] = (s.ProtocolCache([Path(d) for d in search_dirs]),
                       s._integrity_verifier() if check_integrity else None)
    return _state[key]


def _recording(protocols: Any) -> Any:
    """Return a ProtocolCache stand-in that remembers each threshold lookup (the row's outside dependency)."""
    from cpm_session.analysis.summarize import ProtocolCache

    class Recording(ProtocolCache):
        def __init__(self) -> None:
            super().__init__([])
            self.used: list[list[Any]] = []

        def analysis_value(self, protocol_path: str | None, sha256: str | None, key: str) -> float | None:
            self.threshold(protocol_path, sha256)  # the row depends on that protocol file: record it
            value: float | None = protocols.analysis_value(protocol_path, sha256, key)
            return value

        def threshold(self, protocol_path: str | None, sha256: str | None) -> tuple[float | None, str | None]:
            thr, problem = protocols.threshold(protocol_path, sha256)
            self.used.append([protocol_path, sha256, thr, problem])
            return thr, problem

    return Recording()


def summary_job(path: Path, context: tuple[tuple[str, ...], bool]) -> tuple[Any, list[Any]]:
    """Read one session folder: return ((row or None, warnings), threshold lookups made)."""
    from cpm_session.analysis.summarize import read_session

    protocols, verify = _protocols_and_verify(*context)
    rec = _recording(protocols)
    try:
        row, warns = read_session(path, rec, verify)
    except SKIPPED_ERRORS as e:
        return [None, [f"{path}: unreadable session skipped ({e})"]], rec.used
    return [row, warns], rec.used


def read_rows(root: Path, paths: list[Path], search_dirs: list[Path], check_integrity: bool, *,
              use_cache: bool = True, workers: int | None = None) -> tuple[list[dict[str, Any]], list[str], CacheStats]:
    """Return (rows, warnings, cache stats) for the session folders `paths` below `root`."""
    from cpm_session.analysis import summarize as s
    from cpm_session.analysis import summary_bath, summary_fields, summary_protocol, summary_row
    from cpm_session.record import integrity

    _state.clear()  # protocol files are read afresh by every summarize (they may have changed since the last)
    context = (tuple(str(d) for d in search_dirs), check_integrity)
    protocols, _ = _protocols_and_verify(*context)

    def still_valid(deps: list[Any]) -> bool:
        try:
            return all(list(protocols.threshold(p, sha)) == [thr, problem] for p, sha, thr, problem in deps)
        except (TypeError, ValueError):
            return False

    from cpm_session.record import derive, fidelity

    salt = code_salt(s, summary_fields, summary_protocol, summary_bath, summary_row, integrity, derive, fidelity,
                     extra=f"{__version__}|integrity={check_integrity}|{context[0]}")  # the row's code
    values, stats = cached_map(root, paths, summary_job, context, kind=KIND, salt=salt, validate=still_valid,
                               workers=workers, use_cache=use_cache)
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    for v in values:
        row, warns = v
        if row is not None:
            rows.append(row)
        warnings.extend(warns)
    if stats.write_problem:
        warnings.append(stats.write_problem)
    return rows, warnings, stats
