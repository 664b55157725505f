"""The test-stimulus blocks: TS_pre (repeats averaged) and TS_post (right after the conditioning stimulus)."""

from __future__ import annotations

from typing import Any

from cpm_session.record.derive import ts_mean
from cpm_session.session.context import Context
from cpm_session.session.stimuli import CUE_S, ts_trial


def block(ctx: Context, phase: str, repeats: int, first_delay_s: float) -> dict[str, Any]:
    """Deliver `repeats` test stimuli `interval_s` apart, the first `first_delay_s` from now; return ratings."""
    intensity = ctx.outputs["calibration"]["ts_intensity"]
    ts = ctx.p.test_stimulus
    t0 = ctx.clock.now() + max(first_delay_s, CUE_S)
    ratings = [ts_trial(ctx, phase, i + 1, t0 + i * ts.interval_s, intensity) for i in range(repeats)]
    return {"ratings": ratings, "mean": ts_mean(ratings), "intensity": intensity}


def ts_pre(ctx: Context) -> tuple[dict[str, Any], str]:
    """Place the stimulator, then the TS_pre block."""
    site = ctx.p.test_stimulus.site
    ctx.staff_step("thermode placed on the " + site if ctx.p.protocol.ts_modality == "thermal"
                   else "algometer at the " + site)
    return block(ctx, "ts_pre", ctx.p.test_stimulus.pre_repeats, CUE_S), "next"


def post_first_delay(ctx: Context, cs_end_t: float | None) -> float:
    """Return the seconds from now to the first TS_post onset: `post_delay_s` after the hand came out (at
    `cs_end_t`), not after the staff confirmed it (never sooner than the cue allows)."""
    delay = ctx.p.test_stimulus.post_delay_s
    if cs_end_t is None:
        return delay
    return max(CUE_S, cs_end_t + delay - ctx.clock.now())


def ts_post(ctx: Context) -> tuple[dict[str, Any], str]:
    """The TS_post block, `post_delay_s` after the hand came out."""
    cs_end = ctx.outputs.get("cold_pressor", {}).get("end_t")
    out = block(ctx, "ts_post", ctx.p.test_stimulus.post_repeats, post_first_delay(ctx, cs_end))
    return out, "next" if ctx.p.control_conditioning.enabled else "no_control"
