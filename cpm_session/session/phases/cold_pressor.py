"""The conditioning stimulus: the hand in 1-4 °C water (bath checked first), rated at 30 s; and the
optional control immersion in neutral water, which gives a net CPM."""

from __future__ import annotations

from typing import Any

from cpm_session.record.derive import bath_stats
from cpm_session.session.context import Context, VisitFault
from cpm_session.session.phases import ts
from cpm_session.session.stimuli import CUE_S, rating, record_rating, start_continuous, stop_continuous

BATH_RECHECK_S = 10.0
BATH_MAX_WAIT_S = 600.0
BATH_POLL_S = 1.0


def check_bath(ctx: Context, lo: float, hi: float) -> tuple[bool, list[float]]:
    """Read the bath for the protocol's `bath_stable_s`; return (all within [lo, hi], the readings)."""
    cp = ctx.p.cold_pressor
    samples: list[float] = []
    end = ctx.clock.now() + cp.bath_stable_s
    while True:
        samples.append(ctx.read_bath())
        if ctx.clock.now() >= end:
            break
        ctx.wait(min(BATH_POLL_S, max(0.0, end - ctx.clock.now())))
    ok = all(lo <= s <= hi for s in samples)
    ctx.log("bath_check", ok=ok, min_c=round(min(samples), 3), max_c=round(max(samples), 3),
            range_c=[lo, hi], n=len(samples))
    return ok, samples


def _wait_for_bath(ctx: Context, lo: float, hi: float) -> None:
    """Block the cold pressor until the bath is within range (a fault after BATH_MAX_WAIT_S)."""
    waited = 0.0
    ok, _ = check_bath(ctx, lo, hi)
    while not ok:
        ctx.status(warning=f"bath out of {lo}-{hi} °C: cold pressor blocked")
        if waited >= BATH_MAX_WAIT_S:
            raise VisitFault(f"bath temperature out of {lo}-{hi} °C for {waited:.0f} s: cold pressor not started")
        ctx.wait(BATH_RECHECK_S)
        waited += BATH_RECHECK_S + ctx.p.cold_pressor.bath_stable_s
        ok, _ = check_bath(ctx, lo, hi)


def immersion(ctx: Context, lo: float, hi: float, duration_s: float, monitored: bool) -> dict[str, Any]:
    """One hand immersion: bath check (monitored), staff confirm, rating at `rating_at_s`, hand out."""
    cp = ctx.p.cold_pressor
    ctx.ui.show("cold_prepare", ctx.p.texts.cold_pressor_prepare)
    if monitored:
        _wait_for_bath(ctx, lo, hi)
    ctx.staff_step("hand is in the water" if monitored else "hand is in the control water")
    t0 = ctx.clock.now()
    ctx.in_water_t, ctx.withdrawn_t, ctx.bath_warned = t0, None, False
    ctx.bath_samples = []
    duration_s = min(duration_s, cp.max_s)
    ctx.log("cold_pressor_start" if monitored else "control_immersion_start", planned_s=duration_s,
            bath_c=round(ctx.read_bath(), 3) if monitored else None)
    ctx.ui.show("cold_keep", ctx.p.texts.cold_pressor_keep, countdown_to=t0 + duration_s)
    value: float | None = None
    flag = ""
    continuous = cp.rating_mode == "continuous"
    try:
        if continuous:
            value, flag = _continuous_immersion(ctx, monitored, t0, duration_s)
            return _end_immersion(ctx, monitored, t0, value, flag)
        ctx.wait(cp.rating_at_s, stop_when=lambda: ctx.withdrawn_t is not None)
        early = ctx.withdrawn_t is not None
        flag = "early_withdrawal" if early else ""
        remaining = t0 + duration_s - ctx.clock.now()
        timeout = ctx.p.ratings.timeout_s if early else max(1.0, min(ctx.p.ratings.timeout_s, remaining))
        value = rating(ctx, "cs" if monitored else "control_cs", 1, "hand", None, "", t0, t0 + cp.rating_at_s,
                       timeout_s=timeout, flag=flag)
        if value is None:
            flag = flag or "missing"
        elif value < cp.min_cs_rating and not early:
            flag = "not_noxious"
            ctx.log("deviation", kind="cs_not_noxious", detail=f"hand rating {value} below {cp.min_cs_rating}")
        if not early:
            ctx.wait(max(0.0, t0 + duration_s - ctx.clock.now()), stop_when=lambda: ctx.withdrawn_t is not None)
    finally:
        if not continuous:
            ctx.in_water_t = None
    return _end_immersion(ctx, monitored, t0, value, flag)


def _continuous_immersion(ctx: Context, monitored: bool, t0: float, duration_s: float) -> tuple[float | None, str]:
    """Rate the hand on a live slider for the whole immersion; return (value at `rating_at_s`, flag)."""
    cp = ctx.p.cold_pressor
    phase = "cs" if monitored else "control_cs"
    start_continuous(ctx, phase, 1, 1, "hand", t0)
    try:
        ctx.wait(max(0.0, t0 + duration_s - ctx.clock.now()), stop_when=lambda: ctx.withdrawn_t is not None)
    finally:
        ctx.in_water_t = None
        value, frames = stop_continuous(ctx, "at", cp.rating_at_s)
    early = ctx.withdrawn_t is not None and ctx.withdrawn_t - t0 < cp.rating_at_s
    flag = "early_withdrawal" if early else ("missing" if value is None else "")
    if value is not None and value < cp.min_cs_rating and not early:
        flag = "not_noxious"
        ctx.log("deviation", kind="cs_not_noxious", detail=f"hand rating {value} below {cp.min_cs_rating}")
    record_rating(ctx, phase, 1, "hand", None, "", t0, t0 + cp.rating_at_s, value, None, flag=flag,
                  continuous=True, frames=frames)
    return value, flag


def _end_immersion(ctx: Context, monitored: bool, t0: float, value: float | None, flag: str) -> dict[str, Any]:
    """Log the end of the immersion, wait for the staff's "hand is out" and return the phase output."""
    ctx.in_water_t = None
    end = ctx.withdrawn_t if ctx.withdrawn_t is not None else ctx.clock.now()
    withdrawn = ctx.withdrawn_t is not None
    withdrawal_s = round(ctx.withdrawn_t - t0, 4) if ctx.withdrawn_t is not None else None
    ctx.ui.show("cold_out", ctx.p.texts.cold_pressor_out)
    ctx.log("cold_pressor_end" if monitored else "control_immersion_end", duration_s=round(end - t0, 4),
            withdrawn=withdrawn, withdrawal_s=withdrawal_s, start_t=round(t0, 6), end_t=round(end, 6))
    ctx.staff_step("hand is out")
    out: dict[str, Any] = {"cs_rating_30s": value, "cs_rating_flag": flag, "immersion_s": round(end - t0, 4),
                           "withdrawal_s": withdrawal_s, "start_t": round(t0, 4), "end_t": round(end, 4)}
    if monitored:
        stats = bath_stats(ctx.bath_samples, t0, end)
        out.update({k: stats[k] for k in ("bath_mean_c", "bath_min_c", "bath_max_c")})
    return out


def run(ctx: Context) -> tuple[dict[str, Any], str]:
    """The cold pressor (conditioning stimulus)."""
    cp = ctx.p.cold_pressor
    return immersion(ctx, cp.bath_min_c, cp.bath_max_c, cp.duration_s, monitored=True), "next"


def control(ctx: Context) -> tuple[dict[str, Any], str]:
    """The optional control immersion, with its own TS_pre and TS_post blocks."""
    cc = ctx.p.control_conditioning
    if not cc.enabled:
        return {"enabled": False}, "next"
    ctx.log("deviation", kind="info", detail="control water is not monitored by the bath device")
    ctx.wait(ctx.p.test_stimulus.interval_s)
    pre = ts.block(ctx, "control_ts_pre", ctx.p.test_stimulus.pre_repeats, CUE_S)
    imm = immersion(ctx, cc.bath_min_c, cc.bath_max_c, cc.duration_s, monitored=False)
    post = ts.block(ctx, "control_ts_post", ctx.p.test_stimulus.post_repeats, ts.post_first_delay(ctx, imm["end_t"]))
    return {"enabled": True, "ts_pre": pre, "immersion": imm, "ts_post": post}, "next"
