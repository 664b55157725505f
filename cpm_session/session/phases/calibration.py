"""Calibration: the thermal Pain-60 search, the pressure pain threshold, or visit 2's baseline intensity."""

from __future__ import annotations

from typing import Any

import numpy as np

from cpm_session.calibration import fit_target, make_procedure, refine
from cpm_session.errors import SessionError
from cpm_session.session.context import Context
from cpm_session.session.stimuli import CUE_S, ts_trial

PPT_REST_S = 10.0
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


def _stimulus(ctx: Context, phase: str, trial: int, temp: float) -> float | None:
    c = ctx.p.calibration
    r = ts_trial(ctx, phase, trial, ctx.clock.now() + CUE_S, temp, plateau_s=c.stimulus_s, modality="thermal")
    ctx.ui.show("rest", ctx.p.texts.rest)
    ctx.wait(c.rest_s)
    return r


def heat(ctx: Context) -> dict[str, Any]:
    """Search the temperature rated `target_rating` (Pain-60) on the calibration site."""
    c = ctx.p.calibration
    cap = ctx.cap_c
    ctx.ui.show("calibration_intro", ctx.p.texts.calibration_intro)
    ctx.staff_step("thermode placed on the " + c.site)
    proc = make_procedure(c.method, start_c=c.start_c, step_c=c.step_c, stop_rating=c.stop_rating,
                          target=c.target_rating, cap_c=cap, trials=c.staircase_trials)
    trial = 0
    while (temp := proc.next_c()) is not None:
        trial += 1
        proc.add(temp, _stimulus(ctx, "calibration", trial, temp))
    points = list(proc.points)
    fit = fit_target(points, c.target_rating, min_slope=c.min_slope_per_c, min_r2=c.min_r2,
                     lo_c=c.start_c - 4 * c.step_c, hi_c=cap)
    ctx.log("calibration_fit", method=proc.name, stage="series", **fit.as_dict(), points=points)
    outcome = "ok"
    max_rating = max((r for _, r in points), default=0.0)
    if fit.target_c is None or max_rating < c.target_rating - c.tolerance:
        if max_rating < c.target_rating - c.tolerance and (proc.reached_cap or fit.target_c is None or fit.target_c >= cap):
            outcome = "not_reached"
        else:
            outcome = "failed_quality"
        temp = _staff_decision(ctx, outcome, fit.warnings, max_rating)
    else:
        temp = round(fit.target_c, 2)
    for w in fit.warnings:
        ctx.status(warning=w)
    refinements = 0
    verify: list[float] = []
    if outcome == "ok":
        for _ in range(c.max_refinements + 1):
            verify = []
            for _k in range(c.verify_n):
                trial += 1
                r = _stimulus(ctx, "verification", trial, temp)
                if r is not None:
                    verify.append(r)
                    points.append((temp, r))
            if not verify or abs(float(np.mean(verify)) - c.target_rating) <= c.tolerance or refinements >= c.max_refinements:
                break
            refinements += 1
            temp = refine(temp, float(np.mean(verify)), c.target_rating, max(fit.slope, c.min_slope_per_c), cap)
            ctx.log("calibration_refine", new_c=temp, verify_mean=round(float(np.mean(verify)), 3))
        final = fit_target(points, c.target_rating, min_slope=c.min_slope_per_c, min_r2=c.min_r2,
                           lo_c=c.start_c - 4 * c.step_c, hi_c=cap)
        if final.target_c is not None:
            temp = round(final.target_c, 2)
        ctx.log("calibration_fit", method=proc.name, stage="final", **final.as_dict(), points=points)
        fit = final
    temp = min(temp, cap)
    out = {"ts_intensity": temp, "ts_unit": "C", "pain60_c": temp, "method": proc.name, "n_stimuli": trial,
           "outcome": outcome, "slope": round(fit.slope, 4), "intercept": round(fit.intercept, 4),
           "r2": round(fit.r2, 4), "warnings": fit.warnings, "refinements": refinements,
           "verification_ratings": verify, "source": "calibration"}
    ctx.log("calibration_result", **out)
    return out


def _staff_decision(ctx: Context, outcome: str, warnings: list[str], max_rating: float) -> float:
    """Tell the staff calibration did not find the target; use the cap (space) or stop (Escape)."""
    cap = ctx.cap_c
    msg = (f"calibration: rating {ctx.p.calibration.target_rating:.0f} not reached below the cap "
           f"(max rating {max_rating:.0f}); space = use the cap {cap:.1f} °C, Escape = stop"
           if outcome == "not_reached" else "calibration quality: " + "; ".join(warnings) +
           f"; space = use the cap {cap:.1f} °C, Escape = stop")
    ctx.status(warning=msg)
    ctx.log("calibration_problem", outcome=outcome, warnings=warnings, max_rating=max_rating)
    ctx.staff_step("decide: use the cap")
    ctx.log("deviation", kind="calibration_" + outcome, detail=msg, chosen_c=cap, operator=ctx.operator)
    return cap


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
