"""One session folder -> one summary row (`read_session`), from events.jsonl and session.json.

Split from `cpm_session.analysis.summarize`, which re-exports every name here.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cpm_session.analysis.constants import DEFAULT_CPM_PCT_MIN_TS_PRE
from cpm_session.analysis.fidelity import summary_columns as fidelity_summary_columns
from cpm_session.analysis.summary_bath import bath_stats, immersions
from cpm_session.analysis.summary_fields import (
    _PROTECTED,
    CPM_SIGN,
    RESUME_EVENTS,
    _fields,
    _num,
    cpm_pct_value,
    set_dotted,
)
from cpm_session.analysis.summary_protocol import ProtocolCache, _analysis_key, cpm_threshold
from cpm_session.errors import CpmError, SessionError
from cpm_session.record import derive
from cpm_session.record.folder import read_events


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
