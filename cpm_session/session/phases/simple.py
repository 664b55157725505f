"""Welcome, acclimatization and the closing screen."""

from __future__ import annotations

from typing import Any

from cpm_session.session.context import Context

WELCOME_S = 5.0
DONE_S = 2.0


def welcome(ctx: Context) -> tuple[dict[str, Any], str]:
    """Show the welcome screen."""
    ctx.ui.show("welcome", ctx.p.texts.welcome)
    ctx.wait(WELCOME_S)
    return {}, "next"


def acclimatization(ctx: Context) -> tuple[dict[str, Any], str]:
    """Let the participant settle for the protocol's duration; `s` skips (a logged deviation)."""
    a = ctx.p.acclimatization
    t0 = ctx.clock.now()
    ctx.skip_requested = False
    ctx.ui.show("acclimatization", ctx.p.texts.acclimatization, countdown_to=t0 + a.duration_s)
    ctx.status(next_action="acclimatization (s skips)")
    ctx.wait(a.duration_s, stop_when=lambda: ctx.skip_requested)
    elapsed = ctx.clock.now() - t0
    skipped = ctx.skip_requested
    if skipped:
        remaining = a.duration_s - elapsed
        ctx.log("deviation", kind="acclimatization_skipped", remaining_s=round(remaining, 3),
                elapsed_s=round(elapsed, 3), below_minimum=elapsed < a.min_s, operator=ctx.operator,
                detail=f"acclimatization skipped with {remaining:.0f} s remaining")
    return {"elapsed_s": round(elapsed, 3), "skipped": skipped}, "skip" if skipped else "next"


def done(ctx: Context) -> tuple[dict[str, Any], str]:
    """Thank the participant."""
    ctx.ui.show("thanks", ctx.p.texts.thanks)
    ctx.wait(DONE_S)
    return {}, "finish"
