"""Session folders -> one tidy row per session (participant, visit, ...), with warnings, never stopping.

The event log is the truth: ratings, the cold-pressor window, withdrawal, deviations, amendments and
questionnaires are read from events.jsonl; session.json supplies the header and the engine's results
when present. CPM is recomputed from the (possibly amended) TS rating lists with the threshold of the
protocol the session recorded. Sign convention: CPM_abs = TS_pre - TS_post, positive = inhibition.
"""

from __future__ import annotations

import copy
import datetime as dt
import importlib
import json
import math
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cpm_session.analysis.constants import DEFAULT_CPM_PCT_MIN_TS_PRE, DEFAULT_CPM_THRESHOLD_ABS, SIGN_TAG
from cpm_session.analysis.fidelity import summary_columns as fidelity_summary_columns
from cpm_session.errors import CpmError, SessionError
from cpm_session.record import derive
from cpm_session.record.folder import file_sha256, iter_session_dirs, read_events, set_path
from cpm_session.resources import resource_dir

BASE_COLUMNS = [
    "participant", "visit", "date", "start_utc", "status", "log_complete", "protocol", "protocol_name",
    "protocol_sha256", "ts_modality", "ts_intensity", "ts_unit", "pain60_c", "ppt_kpa",
]
RESULT_COLUMNS = [
    "ts_pre", "ts_post", "cpm_abs", "cpm_pct", "cpm_pct_note", "cpm_pct_min_ts_pre", "cpm_srd95_abs", "cpm_sign", "cpm_category", "cpm_threshold_abs", "cpm_threshold_source",
    "cs_rating_30s", "cs_rating_flag", "bath_mean_c", "bath_min_c", "bath_max_c", "bath_n", "withdrawal_s",
    "early_withdrawal",
]
TAIL_COLUMNS = [
    "n_deviations", "deviations", "missing_ts_pre", "missing_ts_post", "missing_cs_rating", "missing",
    "resumed", "amended", "amendments", "integrity_ok", "log_events", "path",
]
META_KEYS = ("seq", "t", "wall", "event", "prev")
INT_COLUMNS = ("bath_n", "n_deviations", "missing_ts_pre", "missing_ts_post", "log_events")
_PROTECTED: tuple[str, ...]
try:
    from cpm_session.record.schema import PROTECTED_FIELDS as _PROTECTED
except ImportError:  # the integrity module is optional
    _PROTECTED = ("log_final_sha256", "log_events", "amendments", "protocol_sha256", "software_version")
CATEGORIES = ("inhibition", "none", "facilitation")
_BATH_ROW = re.compile(rb"^([^,\n]*),[^,\n]*,bath_c,([^,\n]*)", re.M)
"""A devices.csv row (t, role, quantity, value, ...) whose quantity is bath_c: captures t and value."""
CPM_SIGN = "TS_pre - TS_post " + SIGN_TAG
"""Written in every summary row so a CSV read on its own still says which way CPM points."""
RESUME_EVENTS = ("resume_session", "session_resumed")
"""Events that mark a session continued after an interruption (besides the header's `resumed_from`)."""
FLOAT_COLUMNS = ("ts_intensity", "pain60_c", "ppt_kpa", "ts_pre", "ts_post", "cpm_abs", "cpm_pct", "cpm_threshold_abs",
                 "cpm_pct_min_ts_pre", "cpm_srd95_abs",
                 "cs_rating_30s", "bath_mean_c", "bath_min_c", "bath_max_c", "withdrawal_s")


@dataclass
class SummaryResult:
    """The summary table (one row per session folder) and the problems met while reading."""

    table: pd.DataFrame
    warnings: list[str] = field(default_factory=list)


def cpm_pct_value(cpm_abs: float | None, ts_pre: float | None, min_ts_pre: float) -> tuple[float | None, str]:
    """Return (CPM_pct, note) as record.derive computes it (None with a note below the TS_pre floor)."""
    if cpm_abs is None or ts_pre is None:
        return None, "TS_pre or TS_post missing"
    r = derive.cpm_values(ts_pre, ts_pre - cpm_abs, 0.0, min_ts_pre)
    return r["cpm_pct"], r["cpm_pct_note"]


def _analysis_key(header: dict[str, Any], start_fields: dict[str, Any], protocol: str | None,
                  protocol_sha256: str | None, protocols: ProtocolCache, key: str) -> float | None:
    """Return `analysis.<key>` recorded in the session (results, header or a protocol snapshot), else from
    the recorded protocol file, else None."""
    for src in (header.get("results") or {}, header, start_fields):
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
            if isinstance(snap, dict):
                v = _num((snap.get("analysis") or {}).get(key))
                if v is not None:
                    return v
    return protocols.analysis_value(protocol, protocol_sha256, key)


def _nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def _num(x: Any) -> float | None:
    """Return `x` as float, or None for missing / empty / non-numeric."""
    if x is None or x == "" or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _fields(ev: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ev.items() if k not in META_KEYS}


# ---------------------------------------------------------------------------------------------- dotted paths
def set_dotted(obj: dict[str, Any], path: str, value: Any) -> None:
    """Set `obj[a][b][c] = value` for `path` "a.b.c", creating dicts on the way."""
    set_path(obj, path.split("."), value)


# ---------------------------------------------------------------------------------------------- protocol threshold
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
    """Return a threshold stored in the session itself (header, results or session_start), if any."""
    for src in (header.get("results") or {}, header, start_fields):
        v = _num(src.get("cpm_threshold_abs"))
        if v is not None:
            return v
    for src in (header, start_fields):
        for key in ("protocol_data", "protocol_snapshot", "protocol_settings"):
            snap = src.get(key)
            if isinstance(snap, str):
                try:
                    snap = tomllib.loads(snap)
                except tomllib.TOMLDecodeError:
                    snap = None
            if isinstance(snap, dict):
                v = _num((snap.get("analysis") or {}).get("cpm_threshold_abs"))
                if v is not None:
                    return v
    return None


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


# ---------------------------------------------------------------------------------------------- devices.csv
ENDS_IMMERSION = ("cold_pressor_end", "emergency_stop", "session_end", "device_fault")


def immersions(events: list[dict[str, Any]]) -> list[tuple[float, float | None]]:
    """Return (start, end) session times of every cold-pressor immersion; an interrupted one ends at the
    stop that interrupted it, and one still going when the log ends has end None."""
    out: list[tuple[float, float | None]] = []
    start: float | None = None
    for e in events:
        kind = e.get("event")
        if kind == "cold_pressor_start":
            start = float(e["t"])
        elif kind in ENDS_IMMERSION and start is not None:
            out.append((start, float(e["t"])))
            start = None
    if start is not None:
        out.append((start, None))
    return out


def bath_stats(devices_csv: Path, t0: float, t1: float | None) -> tuple[float | None, float | None, float | None, int]:
    """Return (mean, min, max, n) of `bath_c` samples (°C) in devices.csv with t0 <= t < t1 (t1 None = to the end)."""
    try:
        raw = devices_csv.read_bytes()
    except OSError:
        return None, None, None, 0
    nl = raw.find(b"\n")
    if nl < 0:
        return None, None, None, 0
    cols = raw[:nl].decode("utf-8").strip().split(",")
    try:
        it, iq, iv = cols.index("t"), cols.index("quantity"), cols.index("value")
    except ValueError:
        return None, None, None, 0
    hi = math.inf if t1 is None else t1
    vals: list[float] = []
    if cols[:4] == ["t", "role", "quantity", "value"]:  # the documented order: one C-level regex scan
        for t_b, v_b in _BATH_ROW.findall(raw, nl + 1):
            try:
                t = float(t_b)
                if t0 <= t < hi:
                    vals.append(float(v_b))
            except ValueError:
                continue
    else:
        key = b"bath_c"
        for line in raw[nl + 1:].split(b"\n"):
            if key not in line:
                continue
            parts = line.split(b",")
            try:
                if parts[iq].strip() != key:
                    continue
                t = float(parts[it])
                if t0 <= t < hi:
                    vals.append(float(parts[iv]))
            except (IndexError, ValueError):
                continue
    if not vals:
        return None, None, None, 0
    return sum(vals) / len(vals), min(vals), max(vals), len(vals)


# ---------------------------------------------------------------------------------------------- one session
def _ratings_from_events(events: list[dict[str, Any]], phase: str) -> list[float | None]:
    """Return the final rating per trial of `phase` (None when every attempt was missing), in trial order."""
    by_trial: dict[int, float | None] = {}
    for ev in events:
        if ev.get("event") != "rating" or ev.get("phase") != phase:
            continue
        trial = int(_num(ev.get("trial")) or 0)
        r = None if ev.get("missing") in (True, "True", "true", 1) else _num(ev.get("rating"))
        if r is not None or trial not in by_trial:
            by_trial[trial] = r
    return [by_trial[k] for k in sorted(by_trial)]


def read_session(path: Path, protocols: ProtocolCache,
                 verify: Callable[[Path], list[str]] | None = None) -> tuple[dict[str, Any], list[str]]:
    """Return (row, warnings) for one session folder; raise SessionError if nothing in it can be read."""
    warns: list[str] = []
    header: dict[str, Any] = {}
    header_ok = False
    sj = path / "session.json"
    if sj.exists():
        try:
            header = json.loads(sj.read_text(encoding="utf-8"))
            if not isinstance(header, dict):
                raise ValueError("not a JSON object")
            header_ok = True
        except (OSError, ValueError, UnicodeDecodeError) as e:
            header = {}
            warns.append(f"{path}: session.json unreadable ({e}); row built from events.jsonl")
    events: list[dict[str, Any]] = []
    ej = path / "events.jsonl"
    if ej.exists():
        try:
            events, problem = read_events(ej)
            if problem:
                warns.append(problem)
        except (SessionError, OSError, UnicodeDecodeError) as e:
            if not header_ok:
                raise SessionError(f"{path}: neither session.json nor events.jsonl can be read ({e})") from e
            warns.append(f"{path}: events.jsonl unreadable ({e}); row built from session.json")
            events = []
    elif not header_ok:
        raise SessionError(f"{path}: neither session.json nor events.jsonl can be read")

    by_event: dict[str, list[dict[str, Any]]] = {}
    for ev in events:
        by_event.setdefault(str(ev.get("event")), []).append(ev)

    def first(name: str) -> dict[str, Any] | None:
        lst = by_event.get(name)
        return lst[0] if lst else None

    def last(name: str) -> dict[str, Any] | None:
        lst = by_event.get(name)
        return lst[-1] if lst else None

    start_fields = _fields(first("session_start") or {})
    amendments = by_event.get("amendment", [])
    rec: dict[str, Any] = copy.deepcopy(header) if amendments else dict(header)  # amendments write into nested dicts
    for k, v in start_fields.items():
        rec.setdefault(k, v)
    # participant / visit from the folder name as the last resort: <participant>/<visit>-<stamp>
    rec.setdefault("participant", path.parent.name)
    rec.setdefault("visit", path.name.rsplit("-", 1)[0])
    end_ev = last("session_end")
    if not rec.get("status") or (rec.get("status") == "running" and end_ev is not None):
        rec["status"] = (end_ev or {}).get("status") or "running"

    results = rec.get("results")
    if not isinstance(results, dict) or not results:
        res_ev = last("results")
        if res_ev is not None:
            f = _fields(res_ev)
            results = f["results"] if isinstance(f.get("results"), dict) else f
        else:
            results = {}
    results = dict(results)
    if not results.get("ts_pre_ratings"):
        results["ts_pre_ratings"] = _ratings_from_events(events, "ts_pre")
    if not results.get("ts_post_ratings"):
        results["ts_post_ratings"] = _ratings_from_events(events, "ts_post")
    if results.get("cs_rating_30s") is None:
        cs = [r for r in _ratings_from_events(events, "cs") if r is not None]
        if cs:
            results["cs_rating_30s"] = cs[0]
    if results.get("ts_intensity") is None:
        for st in by_event.get("stimulus", []):
            if st.get("phase") == "ts_pre":
                results["ts_intensity"] = _num(st.get("target_c", st.get("target_kpa")))
                results.setdefault("ts_unit", "C" if "target_c" in st else "kPa")
                results.setdefault("ts_modality", st.get("modality"))
                break
    if results.get("pain60_c") is None:
        cr = last("calibration_result") or last("baseline_intensity")
        if cr is not None and _num(cr.get("pain60_c")) is not None:
            results["pain60_c"] = _num(cr.get("pain60_c"))
    rec["results"] = results
    if not isinstance(rec.get("questionnaires"), dict) or not rec.get("questionnaires"):
        q: dict[str, Any] = {}
        for qe in by_event.get("questionnaire", []):
            name = qe.get("name") or qe.get("questionnaire")
            if name:
                q[str(name)] = {"scores": qe.get("scores") or {}}
        rec["questionnaires"] = q

    # amendments: applied in log order to the dotted path they name
    amended: list[str] = []
    amended_paths: set[str] = set()
    for am in amendments:
        fld = am.get("field")
        if not isinstance(fld, str) or not fld or fld.split(".")[0] in _PROTECTED:
            warns.append(f"{path}: amendment seq {am.get('seq')} names no amendable field ({fld!r}); ignored")
            continue
        set_dotted(rec, fld, am.get("new"))
        amended_paths.add(fld)
        amended.append(f"{fld}: {am.get('old')!r} -> {am.get('new')!r} ({am.get('reason', '')}; {am.get('operator', '')})")
    results = rec["results"] if isinstance(rec.get("results"), dict) else {}

    # TS and CPM, recomputed from the (possibly amended) rating lists
    pre = [_num(x) for x in (results.get("ts_pre_ratings") or [])]
    post = [_num(x) for x in (results.get("ts_post_ratings") or [])]
    ts_pre = _num(results.get("ts_pre")) if "results.ts_pre" in amended_paths else derive.ts_mean(pre)
    ts_post = _num(results.get("ts_post")) if "results.ts_post" in amended_paths else derive.ts_mean(post)
    if ts_pre is None and not pre:
        ts_pre = _num(results.get("ts_pre"))
    if ts_post is None and not post:
        ts_post = _num(results.get("ts_post"))
    cpm_abs = derive.cpm_values(ts_pre, ts_post, 0.0)["cpm_abs"]

    thr, thr_source, problems = cpm_threshold(header, start_fields, rec.get("protocol"), rec.get("protocol_sha256"),
                                              protocols)
    warns.extend(f"{path}: {p}" for p in problems)
    pct_floor = _analysis_key(header, start_fields, rec.get("protocol"), rec.get("protocol_sha256"), protocols,
                              "cpm_pct_min_ts_pre")
    if pct_floor is None:
        pct_floor = DEFAULT_CPM_PCT_MIN_TS_PRE
    cpm_pct, cpm_pct_note = cpm_pct_value(cpm_abs, ts_pre, pct_floor)
    srd95 = _analysis_key(header, start_fields, rec.get("protocol"), rec.get("protocol_sha256"), protocols,
                          "cpm_srd95_abs")

    # cold pressor window
    # the last immersion (a resumed session may have an interrupted one before it) and its end
    spans = immersions(events)
    bath: tuple[float | None, float | None, float | None, int] = (None, None, None, 0)
    if spans:
        bath = bath_stats(path / "devices.csv", spans[-1][0], spans[-1][1])
    cps = last("cold_pressor_start")
    if bath[3] == 0:
        bath = (_num(results.get("bath_mean_c")), _num(results.get("bath_min_c")), _num(results.get("bath_max_c")), 0)
    withdrawal = _num(results.get("withdrawal_s"))
    # a withdrawal during the last cold-pressor immersion (not one from a control immersion of the visit)
    wd = None
    if spans:
        w0, w1 = spans[-1][0], math.inf if spans[-1][1] is None else spans[-1][1]
        wd = next((e for e in by_event.get("withdrawal", []) if w0 <= (_num(e.get("t")) or -math.inf) <= w1), None)
    if withdrawal is None and wd is not None:
        for k in ("withdrawal_s", "t_in_water_s", "after_s", "elapsed_s"):
            withdrawal = _num(wd.get(k))
            if withdrawal is not None:
                break
        if withdrawal is None and cps is not None:
            withdrawal = float(wd["t"]) - float(cps["t"])

    devs = by_event.get("deviation", [])
    dev_text = " | ".join(f"{d.get('kind', '?')}: {d.get('detail', '')}" for d in devs)
    cs30 = _num(results.get("cs_rating_30s"))
    missing: list[str] = [f"ts_pre_{i}" for i, v in enumerate(pre, 1) if v is None]
    missing += [f"ts_post_{i}" for i, v in enumerate(post, 1) if v is None]
    if not pre:
        missing.append("ts_pre")
    if not post:
        missing.append("ts_post")
    if cs30 is None:
        missing.append("cs_rating_30s")

    start_utc = str(rec.get("start_utc") or "") or _stamp_of(path)
    if not start_utc and events:
        start_utc = str(events[0].get("wall", ""))
    row: dict[str, Any] = {
        "participant": rec.get("participant"), "visit": rec.get("visit"), "date": start_utc[:10] or None,
        "start_utc": start_utc or None, "status": rec.get("status"), "log_complete": end_ev is not None,
        "protocol": rec.get("protocol"), "protocol_name": rec.get("protocol_name"),
        "protocol_sha256": rec.get("protocol_sha256"), "ts_modality": results.get("ts_modality"),
        "ts_intensity": _num(results.get("ts_intensity")), "ts_unit": results.get("ts_unit"),
        "pain60_c": _num(results.get("pain60_c")), "ppt_kpa": _num(results.get("ppt_kpa")),
    }
    for i, v in enumerate(pre, 1):
        row[f"ts_pre_{i}"] = v
    for i, v in enumerate(post, 1):
        row[f"ts_post_{i}"] = v
    row.update({
        "ts_pre": ts_pre, "ts_post": ts_post, "cpm_abs": cpm_abs, "cpm_pct": cpm_pct, "cpm_pct_note": cpm_pct_note,
        "cpm_pct_min_ts_pre": pct_floor, "cpm_srd95_abs": srd95,
        "cpm_sign": CPM_SIGN, "cpm_category": derive.cpm_category(cpm_abs, thr), "cpm_threshold_abs": thr, "cpm_threshold_source": thr_source,
        "cs_rating_30s": cs30, "cs_rating_flag": results.get("cs_rating_flag") or ("missing" if cs30 is None else ""),
        "bath_mean_c": bath[0], "bath_min_c": bath[1], "bath_max_c": bath[2], "bath_n": bath[3],
        "withdrawal_s": withdrawal, "early_withdrawal": withdrawal is not None,
    })
    for qname, block in sorted((rec.get("questionnaires") or {}).items()):
        scores = block.get("scores") if isinstance(block, dict) else None
        for sub, val in sorted((scores or {}).items()):
            row[f"{qname}_{sub}"] = _num(val)
    integrity_ok = None
    if verify is not None:
        try:
            problems = list(verify(path))
        except CpmError as e:
            problems = [str(e)]
        except Exception as e:  # noqa: BLE001 - an optional check must never cost the row
            problems = [f"integrity check itself failed ({type(e).__name__}: {e})"]
        integrity_ok = not problems
        warns.extend(f"{path}: integrity: {p}" for p in problems)
    row.update({
        "n_deviations": len(devs), "deviations": dev_text,
        "missing_ts_pre": sum(v is None for v in pre) if pre else None,
        "missing_ts_post": sum(v is None for v in post) if post else None, "missing_cs_rating": cs30 is None,
        "missing": ";".join(missing), "resumed": bool(rec.get("resumed_from")) or any(by_event.get(k) for k in RESUME_EVENTS),
        "amended": bool(amended), "amendments": " | ".join(amended), "integrity_ok": integrity_ok,
        "log_events": len(events), "path": str(path),
    })
    row.update(fidelity_summary_columns(path, results, rec.get("status"), events))  # protocol fidelity (analysis/fidelity.py)
    return row, warns


def _stamp_of(path: Path) -> str:
    """Return the session start encoded in the folder name (<visit>-YYYYmmddTHHMMSSZ) as ISO 8601, or ""."""
    try:
        t = dt.datetime.strptime(path.name.rsplit("-", 1)[1], "%Y%m%dT%H%M%SZ")
    except (IndexError, ValueError):
        return ""
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _integrity_verifier() -> Callable[[Path], list[str]] | None:
    try:
        mod = importlib.import_module("cpm_session.record.integrity")
    except ImportError:
        return None
    fn = getattr(mod, "verify_session", None)
    return fn if callable(fn) else None


def summarize(data_dir: str | Path, *, protocol_dirs: list[Path] | None = None,
              check_integrity: bool = True, use_cache: bool = True, workers: int | None = None) -> SummaryResult:
    """Read every session folder below `data_dir` into one row each; collect warnings instead of stopping.

    Protocol files recorded by relative path are looked for in the current directory, `data_dir`, its
    parent, the extra `protocol_dirs` and the package's `protocols/` folder.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise SessionError(f"data folder {root} does not exist or is not a folder")
    # rows cached per session under <data>/.cache/summary/ (keyed by the log's head hash), misses read in
    # parallel: analysis/summary_cache.py + record/cache.py; use_cache=False reads every folder afresh
    from cpm_session.analysis.summary_cache import read_rows

    rows, warnings, _ = read_rows(root, list(iter_session_dirs(root)), default_protocol_dirs(root, protocol_dirs),
                                  check_integrity, use_cache=use_cache, workers=workers)
    return SummaryResult(_tidy(rows), warnings)


def _tidy(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Return rows as a DataFrame with a stable column order, sorted by participant, visit, start."""
    n_pre = max((sum(k.startswith("ts_pre_") and k[7:].isdigit() for k in r) for r in rows), default=0)
    n_post = max((sum(k.startswith("ts_post_") and k[8:].isdigit() for k in r) for r in rows), default=0)
    known = set(BASE_COLUMNS) | set(RESULT_COLUMNS) | set(TAIL_COLUMNS)
    ts_cols = [f"ts_pre_{i}" for i in range(1, n_pre + 1)] + [f"ts_post_{i}" for i in range(1, n_post + 1)]
    known |= set(ts_cols)
    extra = sorted({k for r in rows for k in r} - known)
    cols = BASE_COLUMNS + ts_cols + RESULT_COLUMNS + extra + TAIL_COLUMNS
    df = pd.DataFrame.from_records(rows, columns=cols)
    for c in INT_COLUMNS:
        df[c] = df[c].astype("Int64")
    for c in (*FLOAT_COLUMNS, *(k for k in cols if k.startswith(("ts_pre_", "ts_post_")))):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    if not df.empty:
        df = df.sort_values(["participant", "visit", "start_utc"], kind="stable", na_position="last").reset_index(drop=True)
    return df
