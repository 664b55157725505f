"""The fidelity block of a session: every requirement measured from its log, device samples and plan."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cpm_session.record.fidelity.immersion import _cold_pressor, _cs_to_ts_post, _immersion
from cpm_session.record.fidelity.reading import _entry, _info, _Log, _na, _num, _of, _r, read_device_rows
from cpm_session.record.fidelity.requirements import (
    COUNTED_KINDS,
    FIDELITY_PREFIX,
    FIDELITY_VERSION,
    PARTICIPANT_KINDS,
    REQUIREMENT_UNITS,
    DeviceRow,
)
from cpm_session.record.fidelity.stimuli import _calibration, _ts_block
from cpm_session.record.fidelity.visit import _acclimatization, _ratings, _resumes


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
