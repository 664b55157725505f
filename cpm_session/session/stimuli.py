"""One stimulus and its rating: cue, device-timed delivery at the planned onset, fixation, slider.

Heat: the parameters go to the thermode before the onset (`prepare`), only the launch happens at the
onset. Pressure: the examiner ramps the algometer to the target and holds it; the session logs the
planned course and waits for it. Every rating becomes a `rating` event and its ratings.csv row (the row
is derived from the event by record.derive, so the two always agree).
"""

from __future__ import annotations

from typing import Any

from cpm_session.errors import SafetyLimitError
from cpm_session.limits import check_target
from cpm_session.record.derive import continuous_summary, csv_cells, rating_row
from cpm_session.record.schema import CONTINUOUS_COLUMNS
from cpm_session.session.context import Context, TrialInterrupted
from cpm_session.ui.base import RatingPrompt

CUE_S = 2.0
"""'Stimulus coming' cue before each stimulus (session s): mechanics, not protocol."""


def _prompt(ctx: Context, phase: str, trial: int, kind: str, timeout_s: float | None,
            continuous: bool = False) -> RatingPrompt:
    t = ctx.p.texts
    question = t.rate_continuous if continuous else {"heat": t.rate_heat, "pressure": t.rate_pressure,
                                                     "hand": t.rate_hand}[kind]
    r = ctx.p.ratings
    return RatingPrompt(phase, trial, question, t.anchor_low, t.anchor_high, t.confirm,
                        timeout_s if timeout_s is not None else r.timeout_s, r.scale_min, r.scale_max, kind)


def _log_prompt(ctx: Context, prompt: RatingPrompt, attempt: int, **extra: Any) -> None:
    geom = ctx.ui.prompt_geometry(prompt)
    ctx.log("rating_prompt", phase=prompt.phase, trial=prompt.trial, attempt=attempt, question=prompt.question,
            slider_px=geom.get("slider_px"), confirm_px=geom.get("confirm_px"), window_px=geom.get("window_px"),
            **extra)


def record_rating(ctx: Context, phase: str, trial: int, kind: str, intensity: float | None, unit: str,
                  onset_t: float | None, planned_t: float | None, value: float | None, rt_s: float | None,
                  *, attempt: int = 1, flag: str = "", **extra: Any) -> None:
    """Log a `rating` event and write its ratings.csv row (derived from the event by record.derive)."""
    site = ctx.p.cold_pressor.site if kind == "hand" else (
        ctx.p.calibration.site if phase in ("calibration", "verification", "ppt") else ctx.p.test_stimulus.site)
    fields = {"phase": phase, "trial": trial, "attempt": attempt, "site": site,
              "intensity": None if intensity is None else round(intensity, 3), "intensity_unit": unit,
              "rating": value, "rt_s": None if rt_s is None else round(rt_s, 4),
              "onset_t": None if onset_t is None else round(onset_t, 4),
              "planned_onset_t": None if planned_t is None else round(planned_t, 4),
              "missing": value is None, "flag": flag}
    ev = ctx.log("rating", **fields, **extra)
    assert ctx.folder is not None
    ctx.folder.ratings.write(csv_cells(rating_row(ev or {"event": "rating", **fields})))
    ctx.status(last_rating=value)


def rating(ctx: Context, phase: str, trial: int, kind: str, intensity: float | None, unit: str,
           onset_t: float | None, planned_t: float | None, *, attempt: int = 1, timeout_s: float | None = None,
           flag: str = "") -> float | None:
    """Ask the participant for a 0-100 rating of `kind` (heat, pressure, hand); log it; return it (None = missing)."""
    prompt = _prompt(ctx, phase, trial, kind, timeout_s)
    _log_prompt(ctx, prompt, attempt)
    shown_t = ctx.clock.now()
    result = ctx.ui.rate(prompt)
    trace = [[round(a, 4), round(b, 2)] for a, b in result.trace]
    record_rating(ctx, phase, trial, kind, intensity, unit, onset_t, planned_t, result.value, result.rt_s,
                  attempt=attempt, flag=flag, prompt_t=round(shown_t, 4), trace=trace)
    return result.value


def start_continuous(ctx: Context, phase: str, trial: int, attempt: int, kind: str, onset_t: float) -> str:
    """Put the live slider up for the stimulus that started at `onset_t`; return its stimulus id."""
    prompt = _prompt(ctx, phase, trial, kind, None, continuous=True)
    stimulus_id = f"{phase}:{trial}:{attempt}"
    _log_prompt(ctx, prompt, attempt, continuous=True, stimulus=stimulus_id)
    ctx.ui.start_continuous(prompt, stimulus_id, onset_t)
    ctx.continuous_id = stimulus_id
    return stimulus_id


def stop_continuous(ctx: Context, how: str, at_s: float) -> tuple[float | None, int]:
    """Take the live slider down; keep every frame in continuous_ratings.csv; return (summary value, frames)."""
    stimulus_id, ctx.continuous_id = ctx.continuous_id, None
    samples = ctx.ui.stop_continuous()
    assert ctx.folder is not None and stimulus_id is not None
    table = ctx.folder.table("continuous_ratings.csv", CONTINUOUS_COLUMNS)
    for t, v in samples:
        table.write({"stimulus": stimulus_id, "t": round(t, 4), "value": round(v, 2)})
    value = continuous_summary(samples, how, at_s)
    ctx.log("continuous_rating", stimulus=stimulus_id, frames=len(samples), summary=how, value=value,
            at_s=at_s if how == "at" else None)
    return value, len(samples)


def heat(ctx: Context, target_c: float, plateau_s: float, phase: str, trial: int,
         planned_t: float) -> tuple[float, float]:
    """Load one device-timed heat stimulus, launch it at `planned_t`; return (onset, time back at neutral)."""
    th = ctx.p.thermode
    check_target(target_c, ctx.cap_c, who="session")
    neutral = ctx.p.safety.neutral_c
    rise_s = abs(target_c - neutral) / th.rise_c_per_s
    duration_s = rise_s + plateau_s  # device duration counts from launch: rise plus plateau
    thermode = ctx.devices.thermode
    thermode.prepare(target_c, th.rise_c_per_s, th.return_c_per_s, duration_s)
    ctx.wait_until(planned_t)
    thermode.launch()
    onset = ctx.clock.now()
    lsl_onset = ctx.sync.now()  # the onset marker is stamped at the launch, not when the event is written
    ttl = ctx.sync.ttl_after_launch(thermode)  # station [sync] ttl_on_launch: the thermode's trigger output
    back_s = duration_s + abs(target_c - neutral) / th.return_c_per_s
    ctx.stim_end = onset + back_s
    ctx.log("stimulus", phase=phase, trial=trial, modality="thermal", target_c=round(target_c, 3),
            duration_s=round(duration_s, 4), plateau_s=plateau_s, planned_onset_t=round(planned_t, 6),
            onset_t=round(onset, 6), onset_error_s=round(onset - planned_t, 6),
            **thermode.stimulus_details(), **ttl, lsl_at=lsl_onset)
    return onset, onset + back_s


def pressure(ctx: Context, target_kpa: float, hold_s: float, phase: str, trial: int,
             planned_t: float) -> tuple[float, float]:
    """Have the examiner ramp the algometer to `target_kpa` and hold it `hold_s`; return (onset, end)."""
    if target_kpa > ctx.p.safety.max_pressure_kpa:
        raise SafetyLimitError(f"pressure {target_kpa:.0f} kPa above the protocol limit "
                               f"{ctx.p.safety.max_pressure_kpa:.0f} kPa")
    ctx.devices.algometer.clear_peak()
    ctx.wait_until(planned_t)
    ramp = ctx.p.calibration.ppt_ramp_kpa_per_s
    took = target_kpa / ramp + hold_s
    onset = ctx.clock.now()
    ctx.stim_end = onset + took
    ctx.log("stimulus", phase=phase, trial=trial, modality="pressure", target_kpa=round(target_kpa, 2),
            ramp_kpa_per_s=ramp, hold_s=hold_s, duration_s=round(took, 4), planned_onset_t=round(planned_t, 6),
            onset_t=round(onset, 6), onset_error_s=round(onset - planned_t, 6))
    return onset, onset + took


def ts_trial(ctx: Context, phase: str, trial: int, planned_t: float, intensity: float, *,
             plateau_s: float | None = None, modality: str | None = None) -> float | None:
    """Cue, deliver one stimulus at `planned_t`, fixate, then ask for its rating; repeat a missing one.

    Defaults are the protocol's test stimulus (its modality and duration); calibration passes its own and is
    always rated with the prompt. A test stimulus whose protocol says `rating_mode = "continuous"` is rated on
    a live slider from its onset; its rating is the protocol's summary of that trace."""
    ts = ctx.p.test_stimulus
    plateau = ts.duration_s if plateau_s is None else plateau_s
    thermal = (modality or ctx.p.protocol.ts_modality) == "thermal"
    continuous = ts.rating_mode == "continuous" and phase not in ("calibration", "verification")
    kind, unit = ("heat", "C") if thermal else ("pressure", "kPa")
    value = None
    qc_flags = ""
    for attempt in range(1, ctx.p.ratings.max_attempts + 1):
        while True:
            try:
                ctx.ui.show("cue", ctx.p.texts.stimulus_coming)
                deliver = heat if thermal else pressure
                onset, back = deliver(ctx, intensity, plateau, phase, trial, planned_t)
                if continuous:
                    start_continuous(ctx, phase, trial, attempt, kind, onset)
                else:
                    ctx.ui.show("fixation", ctx.p.texts.stimulus_on)
                ctx.wait_until(back + (ts.continuous_tail_s if continuous else 0.0))
                ctx.stim_end = -1.0
                if ctx.sync.enabled:  # the offset marker (without a marker stream the end is onset + duration)
                    ctx.log("stimulus_end", phase=phase, trial=trial, modality="thermal" if thermal else "pressure",
                            onset_t=round(onset, 6), end_t=round(back, 6))
                if thermal:
                    rise_s = abs(intensity - ctx.p.safety.neutral_c) / ctx.p.thermode.rise_c_per_s
                    qc_flags = ctx.stimulus_delivered(phase, trial, intensity, onset, rise_s + plateau)
                break
            except TrialInterrupted:
                ctx.log("trial_discarded", phase=phase, trial=trial, reason="paused during the stimulus")
                planned_t = ctx.clock.now() + CUE_S
        if continuous:
            value, frames = stop_continuous(ctx, ts.continuous_summary, ts.continuous_at_s)
            record_rating(ctx, phase, trial, kind, intensity, unit, onset, planned_t, value, None,
                          attempt=attempt, flag=qc_flags, continuous=True, frames=frames)
        else:
            value = rating(ctx, phase, trial, kind, intensity, unit, onset, planned_t, attempt=attempt,
                           flag=qc_flags)
        if value is not None or not ctx.p.ratings.repeat_missing:
            break
        planned_t = ctx.clock.now() + CUE_S
    return value
