"""Exports of a data folder to shared formats: BIDS (`bids.py`) and REDCap (`redcap.py`).

Both read the study through `collect_study`: every session folder is verified first (a damaged record
is refused unless the caller asks to include it, and then it is marked), and the header is read
with its amendments applied, so exports carry the effective values plus the amendment trail.
"""

from __future__ import annotations

import csv
import json
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


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [dict(r) for r in csv.DictReader(f)]


def amendment_text(amendments: list[dict[str, Any]]) -> str:
    """Return the amendments as one line of text: field: old -> new (reason; operator, time) | ..."""
    parts = []
    for a in amendments:
        parts.append(f"{a.get('field')}: {json.dumps(a.get('old'), ensure_ascii=False)} -> "
                     f"{json.dumps(a.get('new'), ensure_ascii=False)} (reason: {a.get('reason')}; "
                     f"by {a.get('operator')} at {a.get('wall')})")
    return " | ".join(parts)


def _recompute_cpm(header: dict[str, Any], path: Path, events: list[dict[str, Any]]) -> None:
    """After amended TS rating lists, recompute TS means and CPM so the export stays consistent.

    The category uses the threshold summarize uses: recorded in the session, else from the session's
    protocol file (`path` is the session folder), else the default.
    """
    fields = {a.get("field") for a in header.get("amendments") or []}
    if not fields & set(TS_LIST_FIELDS) or fields & set(TS_MEAN_FIELDS + DERIVED_CPM_FIELDS):
        return
    from cpm_session.analysis.summarize import META_KEYS, ProtocolCache, cpm_threshold, default_protocol_dirs

    res = header.get("results")
    if not isinstance(res, dict):
        return

    def mean(xs: Any) -> float | None:
        vals = [float(x) for x in xs or [] if isinstance(x, (int, float)) and not isinstance(x, bool)]
        return sum(vals) / len(vals) if vals else None

    pre, post = mean(res.get("ts_pre_ratings")), mean(res.get("ts_post_ratings"))
    res["ts_pre"], res["ts_post"] = pre, post
    if pre is None or post is None:
        res["cpm_abs"] = res["cpm_pct"] = res["cpm_category"] = res["inhibition"] = None
        return
    cpm = pre - post
    start = next((ev for ev in events if ev.get("event") == "session_start"), {})
    thr, _source, _problems = cpm_threshold(header, {k: v for k, v in start.items() if k not in META_KEYS},
                                            header.get("protocol"), header.get("protocol_sha256"),
                                            ProtocolCache(default_protocol_dirs(path.parent.parent)))
    res["cpm_abs"] = cpm
    res["cpm_pct"] = cpm / pre * 100.0 if pre != 0 else None
    res["cpm_category"] = "inhibition" if cpm > thr else "facilitation" if cpm < -thr else "none"
    res["inhibition"] = cpm > thr


def load_session(path: Path) -> SessionData:
    """Read one session folder (verified, amendments applied)."""
    report = verify_session_report(path)
    try:
        original = json.loads((path / "session.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ExportError(f"{path}: session.json cannot be read ({e})") from e
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
    if not data_dir.is_dir():
        raise ExportError(f"data folder {data_dir} does not exist")
    sessions = [load_session(p) for p in iter_session_dirs(data_dir)]
    if not sessions:
        raise ExportError(f"{data_dir}: no session folders found (expected <participant>/<visit>-<stamp>/)")
    bad = [f"{s.path}: {s.problems[0]}" for s in sessions if s.problems]
    participants = sorted({s.path.parent.name for s in sessions} | {p.parent.name for p in data_dir.glob(f"*/{AE_LOG}")})
    ae_bad = [f"{r.path}: {r.problems[0]}" for p in participants
              if (data_dir / p / AE_LOG).is_file() for r in [verify_ae_log(data_dir / p / AE_LOG)] if r.problems]
    if (bad or ae_bad) and not include_unverified:
        raise ExportError(f"{len(bad) + len(ae_bad)} record(s) fail verification (run `cpm-session verify`); "
                          f"first: {(bad + ae_bad)[0]}. Use --include-unverified to export them marked as such")
    aes = {p: read_adverse_events(data_dir, p) for p in participants}
    return Study(data_dir, sessions, {p: a for p, a in aes.items() if a})


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
