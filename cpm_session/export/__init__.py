"""Exports of a data folder to shared formats: BIDS (`bids.py`) and REDCap (`redcap.py`).

Both read the study through `collect_study`: every session folder is verified first (a damaged record
is refused unless the caller asks to include it, and then it is marked), and the header is read
with its amendments applied, so exports carry the effective values plus the amendment trail.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cpm_session.errors import CpmError
from cpm_session.record.amend import apply_amendments
from cpm_session.record.folder import iter_session_dirs, read_events
from cpm_session.record.integrity import verify_ae_log, verify_session_report
from cpm_session.record.schema import AE_LOG

TS_LIST_FIELDS = ("results.ts_pre_ratings", "results.ts_post_ratings")
TS_MEAN_FIELDS = ("results.ts_pre", "results.ts_post")
DERIVED_CPM_FIELDS = ("results.cpm_abs", "results.cpm_pct", "results.cpm_category", "results.inhibition")


class ExportError(CpmError):
    """An export cannot be written (non-empty output folder, damaged sessions, clashing labels)."""


@dataclass
class SessionData:
    """One session folder as the exports see it."""

    path: Path
    header: dict[str, Any]
    """Effective header: session.json with every amendment applied; `amendments` lists them."""
    original: dict[str, Any]
    events: list[dict[str, Any]]
    ratings: list[dict[str, str]]
    devices: list[dict[str, str]]
    problems: list[str] = field(default_factory=list)

    @property
    def participant(self) -> str:
        """Return the effective participant pseudonym."""
        return str(self.header.get("participant") or self.path.parent.name)

    @property
    def visit(self) -> str:
        """Return the effective visit name (from the folder name `<visit>-<stamp>` when the header has none)."""
        return str(self.header.get("visit") or self.path.name.rsplit("-", 1)[0])

    @property
    def results(self) -> dict[str, Any]:
        """Return the effective results (empty when the session ended before any)."""
        r = self.header.get("results")
        return r if isinstance(r, dict) else {}

    @property
    def questionnaires(self) -> dict[str, Any]:
        """Return the effective questionnaire results."""
        q = self.header.get("questionnaires")
        return q if isinstance(q, dict) else {}

    @property
    def integrity(self) -> str:
        """Return "verified" or "FAILED: <first problem>"."""
        return "verified" if not self.problems else f"FAILED: {self.problems[0]}"


@dataclass
class Study:
    """Every session and adverse event below a data folder."""

    data_dir: Path
    sessions: list[SessionData]
    adverse_events: dict[str, list[dict[str, Any]]]
    """participant -> adverse events (effective, one dict per ae_id)."""
    screened: list[str] = field(default_factory=list)
    """One line per record left out (fails verification) or included marked (--include-unverified)."""


def _read_csv(path: Path) -> list[dict[str, str]]:
    """Return a table's rows ([] when it cannot be read; verification reports why)."""
    if not path.is_file() or path.is_symlink():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return [dict(r) for r in csv.DictReader(f)]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def amendment_text(amendments: list[dict[str, Any]]) -> str:
    """Return the amendments as one line of text: field: old -> new (reason; operator, time) | ..."""
    parts = []
    for a in amendments:
        parts.append(f"{a.get('field')}: {json.dumps(a.get('old'), ensure_ascii=False)} -> "
                     f"{json.dumps(a.get('new'), ensure_ascii=False)} (reason: {a.get('reason')}; "
                     f"by {a.get('operator')} at {a.get('wall')})")
    return " | ".join(parts)


def _recompute_cpm(header: dict[str, Any], path: Path, events: list[dict[str, Any]]) -> None:
    """After amended TS rating lists, recompute TS means and CPM (record/derive) so the export stays consistent.

    The category uses the threshold the session recorded, else the one of its protocol file (as summarize
    finds it), else the default."""
    fields = {a.get("field") for a in header.get("amendments") or []}
    if not fields & set(TS_LIST_FIELDS) or fields & set(TS_MEAN_FIELDS + DERIVED_CPM_FIELDS):
        return
    from cpm_session.record.derive import recompute_cpm, recorded_threshold

    res = header.get("results")
    if not isinstance(res, dict):
        return
    start = next((ev for ev in events if ev.get("event") == "session_start"), {})
    thr = recorded_threshold(header, start)
    if thr is None:
        from cpm_session.analysis.summarize import META_KEYS, ProtocolCache, cpm_threshold, default_protocol_dirs

        thr, _source, _problems = cpm_threshold(header, {k: v for k, v in start.items() if k not in META_KEYS},
                                                header.get("protocol"), header.get("protocol_sha256"),
                                                ProtocolCache(default_protocol_dirs(path.parent.parent)))
    der: dict[str, Any] = res["derivation"] if isinstance(res.get("derivation"), dict) else {}
    floor = der.get("cpm_pct_min_ts_pre", 0.0) if isinstance(der.get("cpm_pct_min_ts_pre"), int | float) else 0.0
    recompute_cpm(res, float(thr), float(floor))


def load_session(path: Path) -> SessionData:
    """Read one session folder (verified, amendments applied)."""
    report = verify_session_report(path)
    try:
        original = json.loads((path / "session.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        original = {}
        report.problems.append(f"session.json cannot be read ({str(e)[:200]})") if not report.problems else None
    if not isinstance(original, dict):
        original = {}
    events: list[dict[str, Any]] = []
    if (path / "events.jsonl").is_file():
        try:
            events = read_events(path / "events.jsonl")[0]
        except CpmError:
            events = []
    header = apply_amendments(original, events if events else None)
    _recompute_cpm(header, path, events)
    return SessionData(path, header, original, events, _read_csv(path / "ratings.csv"),
                       _read_csv(path / "devices.csv"), list(report.problems))


def read_adverse_events(data_dir: Path, participant: str) -> list[dict[str, Any]]:
    """Return a participant's adverse events, one dict per ae_id (later lines update earlier ones)."""
    try:
        from cpm_session.record.adverse_events import list_adverse_events
    except ImportError:  # older installs without the adverse-event module: read the log directly
        pass
    else:
        return [dict(a) for a in list_adverse_events(data_dir, participant)]
    path = data_dir / participant / AE_LOG
    if not path.is_file():
        return []
    merged: dict[str, dict[str, Any]] = {}
    for ev in read_events(path)[0]:
        key = str(ev.get("ae_id"))
        merged.setdefault(key, {}).update({k: v for k, v in ev.items() if k not in ("prev",)})
    return list(merged.values())


def collect_study(data_dir: str | Path, *, include_unverified: bool = False) -> Study:
    """Read every session folder and adverse-event log below `data_dir`.

    Raise ExportError naming the damaged records unless `include_unverified` (then each keeps its
    problems and the exports mark it).
    """
    data_dir = Path(data_dir)
    if not str(data_dir).strip() or not data_dir.is_dir():
        raise ExportError(f"data folder {data_dir} does not exist")
    refuse_links(data_dir)
    sessions = [load_session(p) for p in iter_session_dirs(data_dir)]
    if not sessions:
        raise ExportError(f"{data_dir}: no session folders found (expected <participant>/<visit>-<stamp>/)")
    bad = [f"{s.path}: {s.problems[0]}" for s in sessions if s.problems]
    participants = sorted({s.path.parent.name for s in sessions} | {p.parent.name for p in data_dir.glob(f"*/{AE_LOG}")})
    ae_bad = [f"{r.path}: {r.problems[0]}" for p in participants
              if (data_dir / p / AE_LOG).is_file() for r in [verify_ae_log(data_dir / p / AE_LOG)] if r.problems]
    excluded = [f"EXCLUDED (fails verification): {b}" for b in bad + ae_bad] if not include_unverified else \
        [f"UNVERIFIED, included on request (--include-unverified): {b}" for b in bad + ae_bad]
    if not include_unverified:
        sessions = [s for s in sessions if not s.problems]
        bad_logs = {str(r).split(": ", 1)[0] for r in ae_bad}
        participants = [p for p in participants if str(data_dir / p / AE_LOG) not in bad_logs]
        if not sessions:
            raise ExportError(f"every session below {data_dir} fails verification (run `cpm-session verify`); "
                              f"first: {bad[0] if bad else '?'}. Use --include-unverified to export them marked")
    aes = {p: read_adverse_events(data_dir, p) for p in participants}
    return Study(data_dir, sessions, {p: a for p, a in aes.items() if a}, excluded)


def refuse_links(data_dir: Path) -> None:
    """Raise ExportError if anything below `data_dir` is a symbolic link (an export never follows one)."""
    for root, dirs, files in os.walk(data_dir, followlinks=False):
        for name in dirs + files:
            p = Path(root) / name
            if p.is_symlink():
                raise ExportError(f"{p} is a symbolic link (to {os.readlink(p)}); an export never follows links "
                                  f"out of the data folder. Remove it (or replace it by the real file) and export again")


def copy_session_files(src: Path, dst: Path, data_dir: Path) -> list[Path]:
    """Copy the regular files of a session folder (no links, nothing from outside `data_dir`); return them."""
    root = data_dir.resolve()
    written: list[Path] = []
    for dirpath, dirs, files in os.walk(src, followlinks=False):
        rel = Path(dirpath).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in sorted(dirs):
            if (Path(dirpath) / name).is_symlink():
                raise ExportError(f"{Path(dirpath) / name} is a symbolic link; an export never follows links")
        for name in sorted(files):
            p = Path(dirpath) / name
            try:
                p.resolve().relative_to(root)
            except ValueError:
                raise ExportError(f"{p} lies outside the data folder {data_dir}; refusing to copy it") from None
            try:
                fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            except OSError as e:
                raise ExportError(f"{p} cannot be copied ({e.strerror or e}; a link is never followed)") from None
            with os.fdopen(fd, "rb") as fin:
                if not stat.S_ISREG(os.fstat(fin.fileno()).st_mode):
                    raise ExportError(f"{p} is not a regular file; refusing to copy it")
                target = dst / rel / name
                with open(target, "xb") as fout:
                    shutil.copyfileobj(fin, fout)
            written.append(target)
    return written


def staged_export(out_dir: str | Path, data_dir: str | Path, write: Callable[[Path], list[Path]]) -> list[Path]:
    """Run `write(tmp)` into a temporary folder next to `out_dir`, then rename it to `out_dir`; on any failure
    remove the temporary folder, so nothing half-written is left. Return the files at their final paths."""
    from cpm_session.record.outputs import OutputError, check_output_dir

    try:
        out = check_output_dir(out_dir, data_dir=data_dir, what="export folder")
    except OutputError as e:
        raise ExportError(str(e)) from None
    out = out.absolute()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot create {out.parent}: {e.strerror or e}") from None
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(mode=0o750)
        written = write(tmp)
        if out.exists():
            out.rmdir()  # checked empty above
        os.rename(tmp, out)
    except OSError as e:
        raise ExportError(f"cannot write the export into {out}: {e.strerror or e}; nothing was left behind") from None
    finally:
        with contextlib.suppress(OSError):
            if tmp.exists():
                shutil.rmtree(tmp)
    return [out / p.relative_to(tmp) for p in written]


def questionnaire_labels(name: str) -> dict[str, Any]:
    """Return what an export may say about questionnaire `name`: its title, and item texts and option
    labels only when the wording ships with cpm-session (licensed wording from a lab's local file
    never leaves the lab in an export). Empty when the questionnaire file cannot be loaded.
    """
    try:
        from cpm_session.config.questionnaires import WORDING_INCLUDED, load_questionnaire

        q = load_questionnaire(name)
    except (CpmError, ImportError, OSError):
        return {}
    free = q.wording_source == WORDING_INCLUDED
    return {
        "title": q.title,
        "wording_included": free,
        "items": {it.id: it.text for it in q.items} if free else {},
        "options": {it.id: [(o.value, o.label if free else str(o.value)) for o in it.options] for it in q.items},
    }


def prepare_out_dir(out_dir: str | Path) -> Path:
    """Create `out_dir` if needed; refuse (ExportError) if it exists and is not empty."""
    out = Path(out_dir)
    if out.exists():
        if not out.is_dir():
            raise ExportError(f"output {out} exists and is not a folder")
        if any(out.iterdir()):
            raise ExportError(f"output folder {out} is not empty; refusing to write into it (choose a new folder)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot create output folder {out}: {e.strerror or e}") from e
    return out


def sessions_by_visit(sessions: list[SessionData]) -> dict[tuple[str, str], list[SessionData]]:
    """Group sessions by (participant, visit), each group sorted by start time."""
    groups: dict[tuple[str, str], list[SessionData]] = {}
    for s in sessions:
        groups.setdefault((s.participant, s.visit), []).append(s)
    for g in groups.values():
        g.sort(key=lambda s: (str(s.header.get("start_utc") or ""), s.path.name))
    return dict(sorted(groups.items()))
