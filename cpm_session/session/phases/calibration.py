"""Calibration: the thermal Pain-60 search, the pressure pain threshold, or visit 2's baseline intensity."""

from __future__ import annotations

from typing import Any

import numpy as np

from cpm_session.errors import SessionError
from cpm_session.session.context import Context, VisitFault
from cpm_session.session.stimuli import CUE_S, ts_trial

PPT_REST_S = 10.0
CALIBRATION_SEED_OFFSET = 4242
PPT_SETTLE_S = 0.5


def run(ctx: Context) -> tuple[dict[str, Any], str]:
    """Find the TS intensity (baseline visit) or take it from the baseline (later visits)."""
    if ctx.visit != ctx.p.protocol.baseline_visit:
        return from_baseline(ctx), "next"
    if ctx.p.protocol.ts_modality == "pressure":
        return pressure(ctx), "next"
    return heat(ctx), "next"


def from_baseline(ctx: Context) -> dict[str, Any]:
    """Use the verified baseline session's TS intensity."""
    base = ctx.baseline
    if base is None:
        raise SessionError("no baseline")  # checked before the session starts
    res = base["results"]
    out = {"ts_intensity": res["ts_intensity"], "ts_unit": res["ts_unit"], "pain60_c": res.get("pain60_c"),
           "ppt_kpa": res.get("ppt_kpa"), "source": "baseline", "baseline_session": base["_dir"]}
    ctx.log("baseline_intensity", **out, baseline_protocol_sha256=base.get("protocol_sha256"))
    return out


def _stimulus(ctx: Context, stage: str, trial: int, temp: float) -> float | None:
    c = ctx.p.calibration
    phase = "verification" if stage == "verification" else "calibration"
    r = ts_trial(ctx, phase, trial, ctx.clock.now() + CUE_S, temp, plateau_s=c.stimulus_s, modality="thermal")
    ctx.ui.show("rest", ctx.p.texts.rest)
    ctx.wait(c.rest_s)
    return r


def heat(ctx: Context) -> dict[str, Any]:
    """Search the temperature rated `target_rating` (Pain-60) on the calibration site with the protocol's
    procedure; the TS is always a temperature whose rating was verified. When none is found the staff are
    told and the visit stops (resumable): neither the cap nor any untested temperature is ever offered."""
    c = ctx.p.calibration
    ctx.ui.show("calibration_intro", ctx.p.texts.calibration_intro)
    ctx.staff_step("thermode placed on the " + c.site)
    grid = ctx.devices.thermode.available_targets_c()
    from cpm_session.calibration import make_procedure  # scipy (bayes): imported when calibrating, not at start-up

    try:
        proc = make_procedure(c.method, c, cap_c=ctx.cap_c, available_targets_c=grid,
                              rng=np.random.default_rng(ctx.settings.seed + CALIBRATION_SEED_OFFSET))
    except ValueError as e:
        raise SessionError(f"{ctx.p.path}: calibration cannot run: {e}") from None
    if grid is not None:
        ctx.log("calibration_grid", temperatures_c=grid,
                detail="the thermode offers only these temperatures (program grid); calibration chooses among them")
    while (step := proc.next()) is not None:
        rating = _stimulus(ctx, step.stage, step.index, step.temp_c)
        proc.add(step.temp_c, rating)
    res = proc.result()
    out = {**res.as_dict(), "ts_intensity": res.ts_c, "ts_unit": "C", "source": "calibration"}
    ctx.log("calibration_result", **out)
    if res.outcome != "ok" or res.ts_c is None:
        msg = (f"calibration found no verified temperature rated {c.target_rating:.0f} ({res.outcome}: "
               f"{res.reason}); the visit stops here, nothing hotter is given")
        ctx.status(warning=msg)
        ctx.log("calibration_problem", outcome=res.outcome, reason=res.reason, hottest_c=res.hottest_c)
        ctx.log("deviation", kind="calibration_" + res.outcome, detail=msg, operator=ctx.operator)
        ctx.staff_step("calibration failed: press space to end the visit")
        raise VisitFault(msg)
    return out


def pressure(ctx: Context) -> dict[str, Any]:
    """Measure the pressure pain threshold `ppt_measurements` times; the TS is a protocol factor of its mean."""
    c = ctx.p.calibration
    ctx.ui.show("pressure_instructions", ctx.p.texts.pressure_instructions)
    ctx.staff_step("algometer ready at the " + c.site)
    values = []
    alg = ctx.devices.algometer
    for i in range(1, c.ppt_measurements + 1):
        alg.clear_peak()
        ctx.status(next_action=f"PPT {i}/{c.ppt_measurements}: press at ~{c.ppt_ramp_kpa_per_s:.0f} kPa/s until STOP")
        t0 = ctx.clock.now()
        ctx.notify("ppt_started", trial=i, ramp_kpa_per_s=c.ppt_ramp_kpa_per_s)
        ctx.staff_step(f"PPT {i}: participant said stop")
        ctx.wait(PPT_SETTLE_S)
        kpa = round(alg.peak_kpa(), 2)
        values.append(kpa)
        ev = ctx.log("ppt", trial=i, kpa=kpa, t_start=round(t0, 4), site=c.site)
        assert ctx.folder is not None
        from cpm_session.record.derive import csv_cells, rating_row

        ctx.folder.ratings.write(csv_cells(rating_row(ev, ppt_site=c.site)))
        ctx.wait(PPT_REST_S)
    ppt = round(float(np.mean(values)), 3)
    ts_kpa = round(min(ppt * c.ts_pressure_factor, ctx.p.safety.max_pressure_kpa), 3)
    out = {"ts_intensity": ts_kpa, "ts_unit": "kPa", "ppt_kpa": ppt, "ppt_values_kpa": values,
           "method": "ppt_mean", "n_stimuli": len(values), "outcome": "ok", "source": "calibration",
           "ts_pressure_factor": c.ts_pressure_factor}
    ctx.log("calibration_result", **out)
    return out
