"""Fidelity of the immersions: the cold pressor (bath, duration, withdrawal, hand rating) and the time
from the end of an immersion to the first TS_post onset."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from cpm_session.record.fidelity.reading import _entry, _Log, _missing, _num, _of, _r, _t
from cpm_session.record.fidelity.requirements import _TIME_TOL_S, DeviceRow


def _immersion(log: _Log, phase: str, start_ev: str, end_ev: str) -> tuple[
        Mapping[str, Any] | None, float | None, float | None, bool, Sequence[Mapping[str, Any]]]:
    """Return (start event, start t, end t, interrupted, segment) of the last immersion in `phase`'s segment."""
    seg = log.segment(phase)
    starts = _of(seg, start_ev)
    if not starts:
        return None, None, None, False, seg
    st = starts[-1]
    t0 = _num(st.get("start_t")) or _t(st)
    ends = [e for e in _of(seg, end_ev) if _t(e) >= _t(st)]
    if ends:
        e = ends[-1]
        t1 = _num(e.get("end_t"))
        if t1 is None:
            d = _num(e.get("duration_s"))
            t1 = t0 + d if d is not None else _t(e)
        return st, t0, t1, False, seg
    # interrupted: the immersion ended at the stop that ended the segment
    i = log.events.index(seg[-1]) + 1 if seg else len(log.events)
    t_stop = _t(log.events[i]) if i < len(log.events) else (_t(seg[-1]) if seg else None)
    return st, t0, t_stop, True, seg


def _cold_pressor(log: _Log, plan: Mapping[str, Any], rows: Sequence[DeviceRow],
                  lim: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], float | None]:
    keys = ("cs_bath_min_c", "cs_bath_mean_c", "cs_bath_max_c", "cs_immersion_s", "cs_withdrawal", "cs_rating_time_s")
    cp = plan["cold_pressor"]
    lo, hi = lim["bath_range_c"]
    st, t0, t1, interrupted, seg = _immersion(log, "cold_pressor", "cold_pressor_start", "cold_pressor_end")
    if st is None or t0 is None:
        r = f"no cold pressor in this session (the session ended in {log.ended_in()})" if not seg else \
            "the hand was never put in the water (the cold pressor did not start)"
        return {k: _missing(None, r) for k in keys}, None
    res: dict[str, dict[str, Any]] = {}
    bath = [v for t, role, q, v in rows if q == "bath_c" and t0 - _TIME_TOL_S <= t <= (t1 if t1 is not None else math.inf)]
    if bath:
        mn, mx, mean = min(bath), max(bath), sum(bath) / len(bath)

        def out_of(v: float) -> float:
            return round(lo - v if v < lo else v - hi if v > hi else 0.0, 3)
        res["cs_bath_min_c"] = _entry([lo, hi], _r(mn), out_of(mn), lo <= mn <= hi, limit=[lo, hi], unit="C", n=len(bath))
        res["cs_bath_mean_c"] = _entry([lo, hi], _r(mean), out_of(mean), lo <= mean <= hi, limit=[lo, hi], unit="C")
        res["cs_bath_max_c"] = _entry([lo, hi], _r(mx), out_of(mx), lo <= mx <= hi, limit=[lo, hi], unit="C")
    else:
        for k in ("cs_bath_min_c", "cs_bath_mean_c", "cs_bath_max_c"):
            res[k] = _missing([lo, hi], "no bath samples during the immersion", limit=[lo, hi], unit="C")
    planned = float(_num(st.get("planned_s")) or cp["duration_s"])
    if t1 is None:
        res["cs_immersion_s"] = _missing(planned, "the log ends during the immersion", unit="s")
    else:
        dur = t1 - t0
        res["cs_immersion_s"] = _entry(planned, _r(dur), _r(dur - planned),
                                       (not interrupted) and dur >= planned - lim["max_immersion_shortfall_s"] - _TIME_TOL_S,
                                       limit=lim["max_immersion_shortfall_s"], unit="s",
                                       **({"detail": "interrupted (emergency stop, fault or crash)"} if interrupted else {}))
    wd = [e for e in _of(seg, "withdrawal") if _t(e) >= t0 - _TIME_TOL_S]
    if wd:
        w = _num(wd[0].get("t_in_water_s"))
        res["cs_withdrawal"] = _entry(False, True, _r(w), w is not None and w >= planned - lim["max_immersion_shortfall_s"],
                                      value=True, withdrawal_s=_r(w), unit="s")
    else:
        res["cs_withdrawal"] = _entry(False, False, None, True, value=False)
    prompts = [e for e in _of(seg, "rating_prompt") if e.get("phase") == "cs"]
    if prompts:
        pt = _t(prompts[0]) - t0
        res["cs_rating_time_s"] = _entry(cp["rating_at_s"], _r(pt), _r(pt - cp["rating_at_s"]),
                                         abs(pt - cp["rating_at_s"]) <= lim["max_onset_error_s"] + _TIME_TOL_S,
                                         limit=lim["max_onset_error_s"], unit="s")
    else:
        res["cs_rating_time_s"] = _missing(cp["rating_at_s"], "the hand rating was never asked", unit="s")
    return res, (t1 if not interrupted else None)


def _cs_to_ts_post(log: _Log, cs_end: float | None, post_seg_phase: str, ts_phase: str, plan: Mapping[str, Any],
                   lim: Mapping[str, Any], what: str) -> dict[str, Any]:
    planned = float(plan["test_stimulus"]["post_delay_s"])
    limit = float(lim["max_cs_to_ts_post_s"])
    if cs_end is None:
        return _missing(planned, f"no completed {what} in this session (it ended in {log.ended_in()})",
                        limit=limit, unit="s")
    seg = log.segment(post_seg_phase)
    raw = [_num(s.get("onset_t")) for s in _of(seg, "stimulus") if s.get("phase") == ts_phase]
    onsets = [o for o in raw if o is not None and o >= cs_end - _TIME_TOL_S]
    if not onsets:
        return _missing(planned, f"no {ts_phase} stimulus after the {what} (the session ended in {log.ended_in()})",
                        limit=limit, unit="s")
    actual = onsets[0] - cs_end
    out_steps = [e for e in log.events if e.get("event") == "staff_step" and str(e.get("step")) == "hand is out"
                 and cs_end - _TIME_TOL_S <= _t(e) <= onsets[0]]
    extra: dict[str, Any] = {"hand_out_confirmed_after_s": _r(_t(out_steps[-1]) - cs_end)} if out_steps else {}
    return _entry(planned, _r(actual), _r(actual - planned), actual <= limit + _TIME_TOL_S, limit=limit, unit="s",
                  cs_end_t=_r(cs_end, 4), ts_post_onset_t=_r(onsets[0], 4), **extra)

