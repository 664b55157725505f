"""Protocol fidelity, measured: how closely a visit followed its protocol, computed from its log.

`compute_fidelity(events, device_rows, plan, status=...)` returns the `fidelity` block of
session.json `results`: one entry per protocol requirement (REQUIREMENTS), each
``{"planned", "actual", "deviation", "within_limits", "status", "value", "unit", "limit", ...}``, per-trial
detail of the test stimuli, the resumes and which requirements they broke, and a session-level
`within_protocol` flag. Part of the one module family that owns derived values (`record.derive`
calls it); the session layer only logs, analysis and export only read the block (or ask this module).

Conventions:
- `status`: "ok" | "deviation" | "not_measured" (it should have happened but the log cannot show it:
  `actual` None and a `reason`, never a zero) | "not_applicable" (the protocol or visit has no such step;
  `reason`) | "info" (reported, no limit applies). `within_limits` is True for ok/info, False for a
  deviation and None otherwise. `within_protocol` is True only when no entry is a deviation or not measured.
- `deviation`: actual - planned for a point target (an onset, a duration); the distance outside the
  range for a range (bath temperature); a count or text for counts and events.
- `value`: the one number (or flag) per requirement that summaries and exports show.
- Times are session seconds (`t` of the log); temperatures °C; pressures kPa.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

FIDELITY_VERSION = 1
FIDELITY_PREFIX = "fidelity_"
"""Kind prefix of the `deviation` events the session's fidelity watch logs (kind = prefix + requirement)."""

DeviceRow = tuple[float, str, str, float]
"""(t, role, quantity, value) of one devices.csv row."""

REQUIREMENTS: dict[str, tuple[str, str]] = {
    "completed": ("Session completed", "the session ended with status 'completed'"),
    "acclimatization_s": ("Acclimatization duration", "seconds of acclimatization before calibration "
                          "(limits: the protocol's acclimatization min_s..max_s)"),
    "acclimatization_skipped": ("Acclimatization skipped", "whether the staff skipped the acclimatization"),
    "calibration_n_stimuli": ("Calibration stimuli", "number of calibration and verification stimuli "
                              "delivered (limit: the most the protocol's calibration can need)"),
    "calibration_hottest_c": ("Hottest calibration stimulus", "highest calibration target in °C "
                              "(limit: the thermode cap in force)"),
    "calibration_rest_s": ("Shortest rest between calibration stimuli", "seconds from the thermode back at "
                           "neutral to the next calibration onset, the shortest one (limit: calibration.rest_s)"),
    "ts_pre_onset_error_s": ("TS_pre onset error", "largest |actual - planned| TS_pre onset in seconds "
                             "(limit: fidelity.max_onset_error_s)"),
    "ts_pre_interval_error_s": ("TS_pre interval error", "largest |actual - planned| interval between "
                                "consecutive TS_pre onsets in seconds (limit: fidelity.max_ts_interval_error_s)"),
    "ts_pre_delivered_error": ("TS_pre delivered vs target", "largest |delivered - target| of a TS_pre "
                               "stimulus (°C from the thermode trace, kPa from the algometer)"),
    "ts_post_onset_error_s": ("TS_post onset error", "largest |actual - planned| TS_post onset in seconds"),
    "ts_post_delivered_error": ("TS_post delivered vs target", "largest |delivered - target| of a TS_post "
                                "stimulus (°C or kPa)"),
    "cs_bath_min_c": ("Bath minimum during the immersion", "lowest bath reading in °C during the immersion "
                      "(limits: fidelity.bath_range_c)"),
    "cs_bath_mean_c": ("Bath mean during the immersion", "mean bath reading in °C during the immersion"),
    "cs_bath_max_c": ("Bath maximum during the immersion", "highest bath reading in °C during the immersion"),
    "cs_immersion_s": ("Immersion duration", "seconds the hand was in the cold water (planned: "
                       "cold_pressor.duration_s; limit: fidelity.max_immersion_shortfall_s shorter)"),
    "cs_withdrawal": ("Early withdrawal", "whether the hand was withdrawn before the planned end "
                      "(deviation: seconds after immersion)"),
    "cs_rating_time_s": ("Time of the hand rating", "seconds after immersion at which the hand rating was "
                         "asked (planned: cold_pressor.rating_at_s)"),
    "cs_end_to_ts_post_s": ("CS end to TS_post onset", "seconds from the end of the immersion (hand out) to "
                            "the first TS_post onset (limit: fidelity.max_cs_to_ts_post_s)"),
    "control_cs_end_to_ts_post_s": ("Control immersion end to control TS_post onset",
                                    "as cs_end_to_ts_post_s, for the control immersion"),
    "missing_ratings": ("Missing ratings", "ratings never given (every attempt timed out), TS and hand "
                        "(limit: fidelity.max_missing_ratings)"),
    "repeated_ratings": ("Repeated ratings", "rating attempts repeated after a missing one (allowed by "
                         "ratings.repeat_missing)"),
    "pauses": ("Pauses", "pauses during the visit (limit: fidelity.max_pauses); deviation: paused seconds"),
    "notes": ("Staff notes", "staff notes during the visit (reported)"),
    "adverse_events": ("Adverse events", "adverse events recorded during the visit (reported)"),
    "other_deviations": ("Other logged deviations", "deviation events besides the fidelity checks (e.g. "
                         "protocol override, calibration not reached, CS not noxious); deviation: those that "
                         "describe how the visit was run (all but 'CS not noxious'), outside limits when any"),
    "resume": ("Resumed", "times the session was resumed after an interruption (deviation: total gap in "
               "wall seconds; within limits when no resume broke a requirement)"),
}
"""Every requirement key of the fidelity block, with a short label and a description (exports use these)."""

REQUIREMENT_UNITS = {
    "acclimatization_s": "s", "calibration_hottest_c": "C", "calibration_rest_s": "s",
    "ts_pre_onset_error_s": "s", "ts_pre_interval_error_s": "s", "ts_post_onset_error_s": "s",
    "cs_bath_min_c": "C", "cs_bath_mean_c": "C", "cs_bath_max_c": "C", "cs_immersion_s": "s",
    "cs_rating_time_s": "s", "cs_end_to_ts_post_s": "s", "control_cs_end_to_ts_post_s": "s",
}
ENDS_SEGMENT = ("phase_enter", "resume_session", "session_end", "emergency_stop", "device_fault", "visit_fault",
                "crash")
_TIME_TOL_S = 1e-6
CUE_S = 2.0
COUNTED_KINDS = ("acclimatization_skipped", "info")
"""Deviation kinds reported by their own requirement (or informational only)."""
PARTICIPANT_KINDS = ("cs_not_noxious",)
"""Deviation kinds that describe the participant's response, not how the visit was run (listed, not a breach)."""
"""The 'stimulus coming' cue the session shows before every planned onset (= session.stimuli.CUE_S)."""


# ------------------------------------------------------------------------------------------ the plan
def fidelity_plan(protocol: Any) -> dict[str, Any]:
    """Return what the protocol plans and the fidelity limits (stored with the session's derivation values)."""
    p = protocol
    a, c, ts, cp = p.acclimatization, p.calibration, p.test_stimulus, p.cold_pressor
    return {
        "ts_modality": p.protocol.ts_modality, "thermode_cap_c": float(p.safety.thermode_cap_c),
        "neutral_c": float(p.safety.neutral_c), "rise_c_per_s": float(p.thermode.rise_c_per_s),
        "return_c_per_s": float(p.thermode.return_c_per_s),
        "acclimatization": {"duration_s": a.duration_s, "min_s": a.min_s, "max_s": a.max_s},
        "calibration": {"method": c.method, "start_c": c.start_c, "step_c": c.step_c, "rest_s": c.rest_s,
                        "stimulus_s": c.stimulus_s, "verify_n": c.verify_n, "max_refinements": c.max_refinements,
                        "staircase_trials": c.staircase_trials, "ppt_measurements": c.ppt_measurements,
                        "ppt_ramp_kpa_per_s": c.ppt_ramp_kpa_per_s},
        "test_stimulus": {"pre_repeats": ts.pre_repeats, "post_repeats": ts.post_repeats,
                          "interval_s": ts.interval_s, "post_delay_s": ts.post_delay_s, "duration_s": ts.duration_s},
        "cold_pressor": {"duration_s": min(cp.duration_s, cp.max_s), "rating_at_s": cp.rating_at_s},
        "control_enabled": bool(p.control_conditioning.enabled),
        "control_duration_s": float(p.control_conditioning.duration_s),
        "ratings": {"max_attempts": p.ratings.max_attempts, "repeat_missing": p.ratings.repeat_missing},
        "limits": p.fidelity.model_dump(),
    }


# ------------------------------------------------------------------------------------------ reading
def read_device_rows(devices_csv: str | Path) -> list[DeviceRow]:
    """Return the (t, role, quantity, value) rows of a devices.csv with finite numbers (others skipped)."""
    rows: list[DeviceRow] = []
    try:
        with open(devices_csv, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            head = next(reader, None)
            if head is None:
                return rows
            try:
                it, ir, iq, iv = (head.index(c) for c in ("t", "role", "quantity", "value"))
            except ValueError:
                return rows
            need = max(it, ir, iq, iv)
            for r in reader:
                if len(r) <= need:
                    continue
                try:
                    t, v = float(r[it]), float(r[iv])
                except ValueError:
                    continue
                if math.isfinite(t) and math.isfinite(v):
                    rows.append((t, r[ir], r[iq], v))
    except (OSError, UnicodeDecodeError, csv.Error):
        return rows
    return rows


def _num(x: Any) -> float | None:
    if x is None or x == "" or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(x, nd)


# ------------------------------------------------------------------------------------------ entries
def _entry(planned: Any, actual: Any, deviation: Any, ok: bool | None, *, value: Any = None,
           limit: Any = None, unit: str = "", status: str | None = None, reason: str = "",
           **extra: Any) -> dict[str, Any]:
    st = status or ("ok" if ok else "deviation")
    e: dict[str, Any] = {"planned": planned, "actual": actual, "deviation": deviation,
                         "within_limits": ok if st in ("ok", "deviation") else (True if st == "info" else None),
                         "status": st, "value": actual if value is None else value, "limit": limit, "unit": unit}
    if reason:
        e["reason"] = reason
    e.update(extra)
    return e


def _missing(planned: Any, reason: str, *, limit: Any = None, unit: str = "") -> dict[str, Any]:
    return _entry(planned, None, None, None, status="not_measured", reason=reason, limit=limit, unit=unit)


def _na(reason: str, planned: Any = None) -> dict[str, Any]:
    return _entry(planned, None, None, None, status="not_applicable", reason=reason)


def _info(actual: Any, **extra: Any) -> dict[str, Any]:
    return _entry(0, actual, actual, True, status="info", **extra)


# ------------------------------------------------------------------------------------------ log segments
class _Log:
    """The log split into the segment of each phase's last attempt."""

    def __init__(self, events: Sequence[Mapping[str, Any]]) -> None:
        self.events = list(events)
        self.last_enter: dict[str, int] = {}
        for i, e in enumerate(self.events):
            if e.get("event") == "phase_enter":
                self.last_enter[str(e.get("phase"))] = i

    def segment(self, phase: str) -> list[Mapping[str, Any]]:
        """Return the events of the last attempt of `phase` (from its phase_enter to the next segment end)."""
        i = self.last_enter.get(phase)
        if i is None:
            return []
        out = [self.events[i]]
        for e in self.events[i + 1:]:
            if e.get("event") in ENDS_SEGMENT:
                break
            out.append(e)
        return out

    def exit_output(self, phase: str) -> Mapping[str, Any] | None:
        """Return the output of the completed last attempt of `phase`, or None."""
        seg_start = self.last_enter.get(phase)
        if seg_start is None:
            return None
        for e in self.events[seg_start + 1:]:
            if e.get("event") == "phase_exit" and e.get("phase") == phase:
                out = e.get("output")
                return out if isinstance(out, Mapping) else {}
            if e.get("event") in ENDS_SEGMENT:
                return None
        return None

    def ended_in(self) -> str:
        """Return the phase the session was in when its log ends."""
        phase = ""
        for e in self.events:
            if e.get("event") == "phase_enter":
                phase = str(e.get("phase"))
        return phase or "before the first phase"


def _t(e: Mapping[str, Any]) -> float:
    return _num(e.get("t")) or 0.0


def _of(events: Iterable[Mapping[str, Any]], name: str, **match: Any) -> list[Mapping[str, Any]]:
    return [e for e in events if e.get("event") == name and all(e.get(k) == v for k, v in match.items())]


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


# ------------------------------------------------------------------------------------------ the block
def compute_fidelity(events: Sequence[Mapping[str, Any]], device_rows: Sequence[DeviceRow],
                     plan: Mapping[str, Any], *, status: str | None = None,
                     cap_c: float | None = None) -> dict[str, Any]:
    """Return the fidelity block of a session from its log, its device samples and its plan.

    `status`: how the session ended (None: from its last `session_end`, else "running"). `cap_c`: the
    thermode cap in force (default: the protocol's)."""
    log = _Log(events)
    lim = plan["limits"]
    tol = float(lim["max_onset_error_s"])
    if status is None:
        ends = _of(log.events, "session_end")
        status = str(ends[-1].get("status")) if ends else "running"
    if cap_c is None:
        starts = _of(log.events, "session_start")
        cap_c = (_num(starts[0].get("thermode_cap_c")) if starts else None) or float(plan["thermode_cap_c"])
    req: dict[str, dict[str, Any]] = {}
    req["completed"] = _entry("completed", status, None if status == "completed" else status, status == "completed",
                              value=status == "completed")
    req.update(_acclimatization(log, plan, tol))
    req.update(_calibration(log, plan, cap_c, tol))
    trials: list[dict[str, Any]] = []
    ts = plan["test_stimulus"]
    on, dl, iv = _ts_block(log, log.segment("ts_pre"), "ts_pre", plan, device_rows, lim, ts["pre_repeats"], trials)
    req["ts_pre_onset_error_s"], req["ts_pre_delivered_error"] = on, dl
    req["ts_pre_interval_error_s"] = iv if iv is not None else _na("the protocol has one TS_pre stimulus")
    on, dl, _ = _ts_block(log, log.segment("ts_post"), "ts_post", plan, device_rows, lim, ts["post_repeats"], trials)
    req["ts_post_onset_error_s"], req["ts_post_delivered_error"] = on, dl
    cs, cs_end = _cold_pressor(log, plan, device_rows, lim)
    req.update(cs)
    req["cs_end_to_ts_post_s"] = _cs_to_ts_post(log, cs_end, "ts_post", "ts_post", plan, lim, "cold pressor")
    if plan.get("control_enabled"):
        _st, _t0, c_end, c_int, _seg = _immersion(log, "control", "control_immersion_start", "control_immersion_end")
        req["control_cs_end_to_ts_post_s"] = _cs_to_ts_post(log, None if c_int else c_end, "control",
                                                             "control_ts_post", plan, lim, "control immersion")
        _ts_block(log, log.segment("control"), "control_ts_pre", plan, device_rows, lim, ts["pre_repeats"], trials)
        _ts_block(log, log.segment("control"), "control_ts_post", plan, device_rows, lim, ts["post_repeats"], trials)
    else:
        req["control_cs_end_to_ts_post_s"] = _na("the protocol has no control immersion")
    req.update(_ratings(log, plan, lim))
    pauses = _of(log.events, "pause")
    paused_s = sum(_num(e.get("paused_s")) or 0.0 for e in _of(log.events, "resume"))
    mp = int(lim["max_pauses"])
    req["pauses"] = _entry(0, len(pauses), _r(paused_s), len(pauses) <= mp, limit=mp, unit="s",
                           discarded_trials=len(_of(log.events, "trial_discarded")))
    req["notes"] = _info(len(_of(log.events, "note")))
    aes = _of(log.events, "adverse_event")
    req["adverse_events"] = _info(len(aes), which=[str(a.get("ae_id") or a.get("description") or "") for a in aes])
    other = [e for e in _of(log.events, "deviation")
             if not str(e.get("kind", "")).startswith(FIDELITY_PREFIX) and e.get("kind") not in COUNTED_KINDS]
    breaking = [e for e in other if e.get("kind") not in PARTICIPANT_KINDS]
    req["other_deviations"] = _entry(0, len(other), len(breaking), not breaking, limit=0,
                                     which=[f"{e.get('kind')}: {e.get('detail', '')}" for e in other])
    req["resume"] = _resumes(log, plan)
    for k, e in req.items():
        e.setdefault("unit", REQUIREMENT_UNITS.get(k, ""))
        if not e.get("unit"):
            e["unit"] = REQUIREMENT_UNITS.get(k, "")
    outside = [k for k, e in req.items() if e["status"] == "deviation"]
    unmeasured = [k for k, e in req.items() if e["status"] == "not_measured"]
    return {"version": FIDELITY_VERSION, "within_protocol": not outside and not unmeasured,
            "outside_limits": outside, "not_measured": unmeasured, "outside_limits_text": ";".join(outside),
            "not_measured_text": ";".join(unmeasured),
            "requirements": req, "trials": trials, "limits": dict(lim)}


def fidelity_of_folder(session_dir: str | Path, plan: Mapping[str, Any] | None = None, *,
                       status: str | None = None) -> dict[str, Any] | None:
    """Return the fidelity block of a session folder from its events.jsonl and devices.csv (None if the
    folder records no plan, e.g. a session written before fidelity was measured)."""
    from cpm_session.record.folder import read_events

    d = Path(session_dir)
    events, _problem = read_events(d / "events.jsonl")
    if plan is None:
        start = next((e for e in events if e.get("event") == "session_start"), {})
        der = start.get("derivation") if isinstance(start, Mapping) else None
        plan = der.get("fidelity") if isinstance(der, Mapping) else None
        if not isinstance(plan, Mapping):
            return None
    return compute_fidelity(events, read_device_rows(d / "devices.csv"), plan, status=status)


EXPORT_NAMES: dict[str, tuple[str, str]] = {
    "completed": ("fid_completed", "bool"), "acclimatization_s": ("fid_acclim_s", "number"),
    "acclimatization_skipped": ("fid_acclim_skipped", "bool"), "calibration_n_stimuli": ("fid_cal_n", "integer"),
    "calibration_hottest_c": ("fid_cal_hottest_c", "number"), "calibration_rest_s": ("fid_cal_rest_s", "number"),
    "ts_pre_onset_error_s": ("fid_pre_onset_err_s", "number"),
    "ts_pre_interval_error_s": ("fid_pre_interval_err_s", "number"),
    "ts_pre_delivered_error": ("fid_pre_deliv_err", "number"),
    "ts_post_onset_error_s": ("fid_post_onset_err_s", "number"),
    "ts_post_delivered_error": ("fid_post_deliv_err", "number"),
    "cs_bath_min_c": ("fid_bath_min_c", "number"), "cs_bath_mean_c": ("fid_bath_mean_c", "number"),
    "cs_bath_max_c": ("fid_bath_max_c", "number"), "cs_immersion_s": ("fid_immersion_s", "number"),
    "cs_withdrawal": ("fid_withdrawal", "bool"), "cs_rating_time_s": ("fid_cs_rating_t_s", "number"),
    "cs_end_to_ts_post_s": ("fid_cs_to_ts_post_s", "number"),
    "control_cs_end_to_ts_post_s": ("fid_ctl_cs_to_post_s", "number"),
    "missing_ratings": ("fid_missing_ratings", "integer"), "repeated_ratings": ("fid_repeated_ratings", "integer"),
    "pauses": ("fid_pauses", "integer"), "notes": ("fid_notes", "integer"), "adverse_events": ("fid_aes", "integer"),
    "other_deviations": ("fid_other_devs", "integer"), "resume": ("fid_resumes", "integer"),
}
"""Requirement -> (column / field name used by summarize, BIDS and REDCap, value type); `<name>_ok` is its flag."""
SESSION_FIELDS = {
    "fidelity_within_protocol": "whether the visit followed its protocol: every requirement measured and within "
                                "the protocol's [fidelity] limits",
    "fidelity_outside": "requirements outside their limits (';'-separated keys of results.fidelity.requirements)",
    "fidelity_not_measured": "requirements the log cannot show (e.g. no cold pressor in an aborted session)",
}


def export_fields() -> list[dict[str, str]]:
    """Return every fidelity field an export carries: name, dotted path in session.json, type, label, description."""
    base = "results.fidelity"
    out = [{"name": "fidelity_within_protocol", "path": f"{base}.within_protocol", "type": "bool",
            "label": "Within protocol", "description": SESSION_FIELDS["fidelity_within_protocol"], "unit": ""},
           {"name": "fidelity_outside", "path": f"{base}.outside_limits_text", "type": "text",
            "label": "Requirements outside limits", "description": SESSION_FIELDS["fidelity_outside"], "unit": ""},
           {"name": "fidelity_not_measured", "path": f"{base}.not_measured_text", "type": "text",
            "label": "Requirements not measured", "description": SESSION_FIELDS["fidelity_not_measured"], "unit": ""}]
    for key, (name, typ) in EXPORT_NAMES.items():
        label, desc = REQUIREMENTS[key]
        unit = REQUIREMENT_UNITS.get(key, "")
        out.append({"name": name, "path": f"{base}.requirements.{key}.value", "type": typ, "label": label,
                    "description": desc, "unit": unit})
        out.append({"name": f"{name}_ok", "path": f"{base}.requirements.{key}.within_limits", "type": "bool",
                    "label": f"{label}: within limits", "unit": "",
                    "description": f"whether '{label}' was within the protocol's limits (empty: not measured or "
                                   "not applicable)"})
    return out


def fidelity_columns(block: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the flat summary columns of a fidelity block: `fidelity_within_protocol`, `fidelity_outside`,
    `fidelity_not_measured`, and per requirement its EXPORT_NAMES name (its value) and `<name>_ok`."""
    cols: dict[str, Any] = {k: None for k in SESSION_FIELDS}
    for name, _typ in EXPORT_NAMES.values():
        cols[name] = None
        cols[f"{name}_ok"] = None
    if not isinstance(block, Mapping) or not isinstance(block.get("requirements"), Mapping):
        return cols
    cols["fidelity_within_protocol"] = bool(block.get("within_protocol"))
    cols["fidelity_outside"] = ";".join(str(x) for x in block.get("outside_limits") or [])
    cols["fidelity_not_measured"] = ";".join(str(x) for x in block.get("not_measured") or [])
    for k, e in block["requirements"].items():
        if k in EXPORT_NAMES and isinstance(e, Mapping):
            name = EXPORT_NAMES[k][0]
            v = e.get("value")
            cols[name] = v if isinstance(v, bool | int | float | str) or v is None else str(v)
            cols[f"{name}_ok"] = e.get("within_limits")
    return cols
