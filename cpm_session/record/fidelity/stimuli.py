"""Fidelity of the stimuli: the calibration series, the TS blocks (onsets, intervals, delivered
intensity) and how pauses shift the onsets (also used by the session's fidelity watch)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cpm_session.record.fidelity.reading import _entry, _Log, _missing, _na, _num, _of, _r, _t
from cpm_session.record.fidelity.requirements import _TIME_TOL_S, CUE_S, DeviceRow


def _max_calibration_stimuli(plan: Mapping[str, Any], cap_c: float) -> int:
    c = plan["calibration"]
    series = (int(math.floor((cap_c - c["start_c"]) / c["step_c"] + 1e-9)) + 1 if c["method"] == "ascending"
              else int(c["staircase_trials"]))
    return max(series, 0) + int(c["verify_n"]) * (int(c["max_refinements"]) + 1)


def _stim_end(st: Mapping[str, Any], plan: Mapping[str, Any]) -> float | None:
    """Return when a heat stimulus was back at neutral (onset + rise + plateau + return)."""
    onset, dur, target = _num(st.get("onset_t")), _num(st.get("duration_s")), _num(st.get("target_c"))
    if onset is None or dur is None:
        return None
    ret = abs(target - plan["neutral_c"]) / plan["return_c_per_s"] if target is not None else 0.0
    return onset + dur + ret


def _calibration(log: _Log, plan: Mapping[str, Any], cap_c: float, tol: float) -> dict[str, dict[str, Any]]:
    keys = ("calibration_n_stimuli", "calibration_hottest_c", "calibration_rest_s")
    out = log.exit_output("calibration")
    seg = log.segment("calibration")
    if out is not None and out.get("source") == "baseline":
        return {k: _na("the TS intensity was taken from the baseline visit (no calibration in this visit)")
                for k in keys}
    if not seg:
        r = f"no calibration in this session (it ended in {log.ended_in()})"
        return {k: _missing(None, r) for k in keys}
    c = plan["calibration"]
    res: dict[str, dict[str, Any]] = {}
    if plan["ts_modality"] == "pressure":
        n = len(_of(seg, "ppt"))
        planned = int(c["ppt_measurements"])
        res["calibration_n_stimuli"] = _entry(planned, n, n - planned, n == planned, limit=planned)
        res["calibration_hottest_c"] = _na("pressure protocol: no heat stimuli")
        res["calibration_rest_s"] = _na("pressure protocol: the rest between PPT measurements is fixed by the program")
        return res
    stims = [s for s in _of(seg, "stimulus") if s.get("phase") in ("calibration", "verification")]
    if not stims:
        return {k: _missing(None, "no calibration stimulus in the log") for k in keys}
    most = _max_calibration_stimuli(plan, cap_c)
    n = len(stims)
    trials = len({(s.get("phase"), s.get("trial")) for s in stims})
    res["calibration_n_stimuli"] = _entry(most, n, max(0, trials - most), 2 <= trials <= most,
                                          limit=[2, most], trials=trials)
    hottest = max(_num(s.get("target_c")) or -math.inf for s in stims)
    res["calibration_hottest_c"] = _entry(cap_c, _r(hottest), _r(hottest - cap_c),
                                          hottest <= cap_c + 1e-9, limit=cap_c, unit="C")
    rests = []
    for a, b in zip(stims, stims[1:], strict=False):
        end, nxt = _stim_end(a, plan), _num(b.get("onset_t"))
        if end is not None and nxt is not None:
            rests.append(nxt - end)
    if rests:
        shortest = min(rests)
        res["calibration_rest_s"] = _entry(c["rest_s"], _r(shortest), _r(shortest - c["rest_s"]),
                                           shortest >= c["rest_s"] - tol, limit=c["rest_s"], unit="s")
    else:
        res["calibration_rest_s"] = _missing(c["rest_s"], "fewer than two calibration stimuli", unit="s")
    return res


def _delivered(st: Mapping[str, Any], after: Sequence[Mapping[str, Any]], rows: Sequence[DeviceRow],
               plan: Mapping[str, Any]) -> tuple[float | None, float | None, str, str]:
    """Return (target, delivered, unit, source) of one TS stimulus: the thermode trace when logged, else the
    devices.csv samples of its plateau (heat) or hold (pressure)."""
    onset, dur = _num(st.get("onset_t")), _num(st.get("duration_s"))
    if st.get("modality") == "pressure":
        target = _num(st.get("target_kpa"))
        if target is None or onset is None or dur is None:
            return target, None, "kPa", ""
        ramp = _num(st.get("ramp_kpa_per_s")) or plan["calibration"]["ppt_ramp_kpa_per_s"]
        lo, hi = onset + target / ramp, onset + dur
        vals = [v for t, role, q, v in rows if q == "pressure_kpa" and lo <= t <= hi]
        return target, (sum(vals) / len(vals) if vals else None), "kPa", "algometer samples"
    target = _num(st.get("target_c"))
    for d in after:
        if d.get("event") == "stimulus_delivered" and d.get("trial") == st.get("trial") \
                and d.get("phase") == st.get("phase"):
            v = _num(d.get("plateau_mean_c"))
            if v is not None:
                return target, v, "C", "thermode trace"
            break
    if target is None or onset is None or dur is None:
        return target, None, "C", ""
    rise_s = abs(target - plan["neutral_c"]) / plan["rise_c_per_s"]
    lo, hi = onset + rise_s, onset + dur
    vals = [v for t, role, q, v in rows if q == "zone_mean_c" and lo <= t <= hi]
    return target, (sum(vals) / len(vals) if vals else None), "C", "thermode samples"


def _ts_block(log: _Log, seg: Sequence[Mapping[str, Any]], phase: str, plan: Mapping[str, Any],
              rows: Sequence[DeviceRow], lim: Mapping[str, Any], repeats: int,
              trials_out: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """Return the (onset error, delivered error, interval error) entries of one TS block; append per-trial rows."""
    stims = [s for s in _of(seg, "stimulus") if s.get("phase") == phase]
    pressure = plan["ts_modality"] == "pressure"
    d_lim = lim["max_delivered_error_kpa"] if pressure else lim["max_delivered_error_c"]
    unit = "kPa" if pressure else "C"
    if not stims:
        r = f"no {phase} stimulus in the log (the session ended in {log.ended_in()})"
        return (_missing(0.0, r, limit=lim["max_onset_error_s"], unit="s"), _missing(0.0, r, limit=d_lim, unit=unit),
                _missing(plan["test_stimulus"]["interval_s"], r, unit="s") if repeats > 1 else None)
    by_trial: dict[Any, list[Mapping[str, Any]]] = {}
    for s in stims:
        by_trial.setdefault(s.get("trial"), []).append(s)
    errs: list[float] = []
    dels: list[float] = []
    ivals: list[float] = []
    prev_first: float | None = None
    interval = float(plan["test_stimulus"]["interval_s"])
    no_delivery = ""
    pauses = pause_spans(log.events)
    first_planned = _num(stims[0].get("planned_onset_t"))
    block_ref = None if first_planned is None else first_planned - CUE_S
    for trial, ss in by_trial.items():
        first, last = ss[0], ss[-1]
        err = _num(last.get("onset_error_s"))
        if err is None and _num(last.get("onset_t")) is not None and _num(last.get("planned_onset_t")) is not None:
            err = float(last["onset_t"]) - float(last["planned_onset_t"])
        shift = 0.0
        if err is not None:  # a pause between planning and onset delays the onset: the pause is its own entry
            shift = onset_shift(pauses, last, block_ref if len(ss) == 1 else None)
            err -= shift
        after = seg[seg.index(last) + 1:] if last in seg else []
        target, delivered, _u, source = _delivered(last, after, rows, plan)
        d_err = None if target is None or delivered is None else delivered - target
        if d_err is None:
            no_delivery = no_delivery or f"no {'algometer' if pressure else 'thermode'} samples during the stimulus"
        f_on = _num(first.get("onset_t"))
        ival = None if prev_first is None or f_on is None else f_on - prev_first
        if ival is not None and prev_first is not None and f_on is not None:
            ival -= paused_between(pauses, prev_first, f_on)
        prev_first = f_on if f_on is not None else prev_first
        if err is not None:
            errs.append(err)
        if d_err is not None:
            dels.append(d_err)
        if ival is not None:
            ivals.append(ival - interval)
        trials_out.append({"phase": phase, "trial": trial, "stimuli": len(ss),
                           "planned_onset_t": _r(_num(last.get("planned_onset_t")), 4),
                           "onset_t": _r(_num(last.get("onset_t")), 4), "onset_error_s": _r(err, 4),
                           "paused_before_onset_s": _r(shift),
                           "interval_s": _r(ival, 4), "planned_interval_s": interval if ival is not None else None,
                           "target": target, "delivered": _r(delivered), "delivered_error": _r(d_err),
                           "unit": unit, "delivered_from": source})
    worst = max(errs, key=abs) if errs else None
    onset = (_entry(0.0, _r(worst, 4), _r(worst, 4), abs(worst) <= lim["max_onset_error_s"] + _TIME_TOL_S,
                    limit=lim["max_onset_error_s"], unit="s", trials=len(by_trial))
             if worst is not None else _missing(0.0, "no onset times in the log", unit="s"))
    if len(by_trial) < (repeats if phase.endswith("ts_pre") else 1):
        onset["status"], onset["within_limits"] = "deviation", False
        onset["detail"] = f"{len(by_trial)} of {repeats} {phase} stimuli delivered"
    dworst = max(dels, key=abs) if dels else None
    delivered_e = (_entry(0.0, _r(dworst), _r(dworst), abs(dworst) <= d_lim, limit=d_lim, unit=unit)
                   if dworst is not None else _missing(0.0, no_delivery or "no delivered value", limit=d_lim, unit=unit))
    ival_e: dict[str, Any] | None = None
    if repeats > 1:
        iworst = max(ivals, key=abs) if ivals else None
        ival_e = (_entry(interval, _r(interval + iworst, 4), _r(iworst, 4),
                         abs(iworst) <= lim["max_ts_interval_error_s"] + _TIME_TOL_S,
                         value=_r(iworst, 4), limit=lim["max_ts_interval_error_s"], unit="s")
                  if iworst is not None else _missing(interval, "fewer than two stimuli", unit="s"))
    return onset, delivered_e, ival_e


def pause_spans(events: Iterable[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """Return (t of the pause, paused seconds) of every pause of the log (an unfinished one counts 0 s)."""
    out: list[tuple[float, float]] = []
    start: float | None = None
    for e in events:
        if e.get("event") == "pause":
            start = _t(e)
        elif e.get("event") == "resume" and start is not None:
            out.append((start, _num(e.get("paused_s")) or 0.0))
            start = None
    return out


def paused_between(pauses: Iterable[tuple[float, float]], t0: float, t1: float) -> float:
    """Return the paused seconds of the pauses that began within [t0, t1]."""
    return sum(d for t, d in pauses if t0 - _TIME_TOL_S <= t <= t1 + _TIME_TOL_S)


def onset_shift(pauses: Iterable[tuple[float, float]], stim: Mapping[str, Any], plan_ref: float | None) -> float:
    """Return how much pausing delayed a stimulus: the pauses that began after its onset was planned (at
    `plan_ref`, default its planned onset minus the cue) and before its onset."""
    planned, onset = _num(stim.get("planned_onset_t")), _num(stim.get("onset_t"))
    if planned is None or onset is None:
        return 0.0
    return paused_between(pauses, planned - CUE_S if plan_ref is None else plan_ref, onset)

