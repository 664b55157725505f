"""The CPM threshold and the other `[analysis]` keys of a session: recorded in it, else from its protocol file.

Split from `cpm_session.analysis.summarize`, which re-exports every name here.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from cpm_session.analysis.constants import DEFAULT_CPM_THRESHOLD_ABS
from cpm_session.analysis.summary_fields import _num
from cpm_session.record.folder import file_sha256
from cpm_session.resources import resource_dir


def _recorded(header: dict[str, Any], start_fields: dict[str, Any], key: str) -> float | None:
    """Return `analysis.<key>` as the session itself recorded it: in the `derivation` its results were computed
    with (results, header or session_start), directly in them, or in a protocol snapshot; else None."""
    results = header.get("results")
    sources = [s for s in (results, header, start_fields) if isinstance(s, dict)]
    for src in [*(s.get("derivation") for s in sources), *sources]:
        if isinstance(src, dict):
            v = _num(src.get(key))
            if v is not None:
                return v
    for src in (header, start_fields):
        for k in ("protocol_data", "protocol_snapshot", "protocol_settings"):
            snap = src.get(k)
            if isinstance(snap, str):
                try:
                    snap = tomllib.loads(snap)
                except tomllib.TOMLDecodeError:
                    snap = None
            if isinstance(snap, dict) and isinstance(snap.get("analysis"), dict):
                v = _num(snap["analysis"].get(key))
                if v is not None:
                    return v
    return None


def _analysis_key(header: dict[str, Any], start_fields: dict[str, Any], protocol: str | None,
                  protocol_sha256: str | None, protocols: ProtocolCache, key: str) -> float | None:
    """Return `analysis.<key>` recorded in the session (see `_recorded`), else from the recorded protocol file,
    else None."""
    v = _recorded(header, start_fields, key)
    return v if v is not None else protocols.analysis_value(protocol, protocol_sha256, key)


class ProtocolCache:
    """Read `analysis.cpm_threshold_abs` (and the other `[analysis]` keys) from protocol files once per (path, sha256)."""

    def __init__(self, search_dirs: list[Path]) -> None:
        self.search_dirs = search_dirs
        self._cache: dict[tuple[str, str], tuple[float | None, str | None]] = {}
        self._analysis: dict[tuple[str, str], dict[str, Any]] = {}

    def analysis_value(self, protocol_path: str | None, sha256: str | None, key: str) -> float | None:
        """Return the number `analysis.<key>` of the recorded protocol file (None if absent or unreadable)."""
        if not protocol_path:
            return None
        k = (protocol_path, sha256 or "")
        if k not in self._analysis:
            self.threshold(protocol_path, sha256)
        return _num(self._analysis.get(k, {}).get(key))

    def threshold(self, protocol_path: str | None, sha256: str | None) -> tuple[float | None, str | None]:
        """Return (threshold, problem) for the recorded protocol; threshold None if the file is not found."""
        if not protocol_path:
            return None, "session records no protocol path"
        key = (protocol_path, sha256 or "")
        if key not in self._cache:
            self._cache[key] = self._read(protocol_path, sha256)
        return self._cache[key]

    def _read(self, protocol_path: str, sha256: str | None) -> tuple[float | None, str | None]:
        p = Path(protocol_path)
        candidates = [p] if p.is_absolute() else [d / p for d in self.search_dirs] + [d / p.name for d in self.search_dirs]
        for c in candidates:
            if c.is_file():
                try:
                    data = tomllib.loads(c.read_text(encoding="utf-8"))
                    block = data.get("analysis")
                    if isinstance(block, dict):
                        self._analysis[(protocol_path, sha256 or "")] = block
                    thr = float(data["analysis"]["cpm_threshold_abs"])
                except (OSError, ValueError, KeyError, TypeError, tomllib.TOMLDecodeError) as e:
                    return None, f"protocol file {c} has no readable analysis.cpm_threshold_abs ({e})"
                problem = None
                if sha256 and file_sha256(c) != sha256:
                    problem = f"protocol file {c} differs from the sha256 recorded in the session; threshold read from it anyway"
                return thr, problem
        return None, f"protocol file {protocol_path} not found (looked in {', '.join(str(d) for d in self.search_dirs)})"


def _recorded_threshold(header: dict[str, Any], start_fields: dict[str, Any]) -> float | None:
    """Return a threshold stored in the session itself (its derivation, header, results or session_start), if any."""
    return _recorded(header, start_fields, "cpm_threshold_abs")


def default_protocol_dirs(data_dir: Path, extra: list[Path] | None = None) -> list[Path]:
    """Return where a protocol recorded by relative path is looked for: the current directory, `data_dir`,
    its parent, `extra` and the package's folder (which holds `protocols/`)."""
    return [Path.cwd(), data_dir, data_dir.parent, *(extra or []), resource_dir("protocols").parent]


def cpm_threshold(recorded: dict[str, Any], start_fields: dict[str, Any], protocol: str | None,
                  protocol_sha256: str | None, protocols: ProtocolCache) -> tuple[float, str, list[str]]:
    """Return (CPM threshold in rating points, its source, problems met) for one session.

    The source is "session" (recorded in `recorded` or `start_fields`), else "protocol_file" (the
    recorded `protocol` file), else "default" (DEFAULT_CPM_THRESHOLD_ABS).
    """
    thr = _recorded_threshold(recorded, start_fields)
    if thr is not None:
        return thr, "session", []
    problems: list[str] = []
    thr, problem = protocols.threshold(protocol, protocol_sha256)
    if problem:
        problems.append(problem)
    if thr is not None:
        return thr, "protocol_file", problems
    problems.append(f"CPM threshold unknown; used the default {DEFAULT_CPM_THRESHOLD_ABS}")
    return DEFAULT_CPM_THRESHOLD_ABS, "default", problems
