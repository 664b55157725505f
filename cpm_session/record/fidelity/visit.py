"""Fidelity of the rest of the visit: the acclimatization, the ratings and the resumes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cpm_session.record.fidelity.reading import _entry, _info, _Log, _missing, _num, _of, _r, _t


# ------------------------------------------------------------------------------------------ requirements
def _acclimatization(log: _Log, plan: Mapping[str, Any], tol: float) -> dict[str, dict[str, Any]]:
    a = plan["acclimatization"]
    out = log.exit_output("acclimatization")
    if out is None:
        r = f"the acclimatization did not finish (the session ended in {log.ended_in()})"
        return {"acclimatization_s": _missing(a["duration_s"], r, limit=[a["min_s"], a["max_s"]], unit="s"),
                "acclimatization_skipped": _missing(False, r)}
    elapsed = _num(out.get("elapsed_s"))
    skipped = bool(out.get("skipped"))
    if elapsed is None:
        seg = log.segment("acclimatization")
        elapsed = (_t(seg[-1]) - _t(seg[0])) if seg else None
    if elapsed is None:
        dur = _missing(a["duration_s"], "no elapsed time in the log", limit=[a["min_s"], a["max_s"]], unit="s")
    else:
        ok = a["min_s"] - tol <= elapsed <= a["max_s"] + tol
        dur = _entry(a["duration_s"], _r(elapsed), _r(elapsed - a["duration_s"]), ok, limit=[a["min_s"], a["max_s"]],
                     unit="s")
    skip = _entry(False, skipped, _r(a["duration_s"] - elapsed) if skipped and elapsed is not None else None,
                  not skipped, value=skipped)
    return {"acclimatization_s": dur, "acclimatization_skipped": skip}



def _ratings(log: _Log, plan: Mapping[str, Any], lim: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    phases = ("calibration", "verification", "ts_pre", "cs", "ts_post", "control_cs", "control_ts_pre",
              "control_ts_post")
    segs = {p: log.segment(p) for p in ("calibration", "ts_pre", "cold_pressor", "ts_post", "control")}
    ratings = [e for seg in segs.values() for e in _of(seg, "rating") if e.get("phase") in phases]
    final: dict[tuple[Any, Any], bool] = {}
    for r in ratings:
        key = (r.get("phase"), r.get("trial"))
        final[key] = final.get(key, False) or not r.get("missing")
    missing = sorted(f"{p}_{t}" for (p, t), ok in final.items() if not ok)
    repeated = [f"{r.get('phase')}_{r.get('trial')}" for r in ratings if (_num(r.get("attempt")) or 1) > 1]
    mx = int(lim["max_missing_ratings"])
    return {"missing_ratings": _entry(0, len(missing), len(missing), len(missing) <= mx, limit=mx, which=missing),
            "repeated_ratings": _info(len(repeated), which=repeated)}


def _resumes(log: _Log, plan: Mapping[str, Any]) -> dict[str, Any]:
    gaps: list[dict[str, Any]] = []
    prev = 0
    for i, e in enumerate(log.events):
        if e.get("event") != "resume_session":
            continue
        before = log.events[prev:i]
        prev = i
        restart = str(e.get("restart_phase") or "")
        gap = _num(e.get("gap_wall_s"))
        entered = [str(x.get("phase")) for x in _of(before, "phase_enter")]
        broke: list[str] = []
        stim_phases = [str(s.get("phase")) for s in _of(before, "stimulus")]
        if restart == "ts_pre":
            n_pre = stim_phases.count("ts_pre")
            if n_pre:
                broke.append(f"CPM block restarted at TS_pre: {n_pre} TS_pre stimulus/i already given before the "
                             "interruption (the participant has been tested at this intensity before)")
            if _of(before, "cold_pressor_start"):
                broke.append("cold pressor repeated: the participant was already immersed before the interruption; "
                             "the restarted TS_pre follows an earlier conditioning stimulus"
                             + (f" by about {gap:.0f} s" if gap is not None else ""))
            n_post = stim_phases.count("ts_post")
            if n_post:
                broke.append(f"TS_post repeated: {n_post} TS_post stimulus/i given before the interruption")
        if restart == "calibration":
            n_cal = sum(p in ("calibration", "verification") for p in stim_phases)
            if n_cal:
                broke.append(f"calibration restarted: {n_cal} calibration stimulus/i given before the interruption")
        acc = plan["acclimatization"]
        after_acclim = restart not in ("welcome", "acclimatization")
        if after_acclim and gap is not None and acc.get("min_s") and gap >= float(acc["min_s"]):
            broke.append(f"no re-acclimatization after a gap of {gap:.0f} s (the protocol's acclimatization is "
                         f"{float(acc['duration_s']):.0f} s)")
        gaps.append({"gap_wall_s": _r(gap), "restart_phase": restart,
                     "interrupted_phase": entered[-1] if entered else "", "at_t": _r(_t(e), 4),
                     "previous_status": e.get("previous_status"), "broke": broke})
    if not gaps:
        return _entry(0, 0, None, True, gaps=[], broke=[])
    total = sum(g["gap_wall_s"] or 0.0 for g in gaps)
    broke_all = [b for g in gaps for b in g["broke"]]
    return _entry(0, len(gaps), _r(total), not broke_all, limit="no requirement broken", unit="s", gaps=gaps,
                  broke=broke_all)

