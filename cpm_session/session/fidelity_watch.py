"""Protocol fidelity as it happens: the staff see the countdown from the end of the immersion to the TS_post
onset, and every limit of the protocol's `[fidelity]` table that is exceeded is logged as a `deviation`
event at that moment, with what was planned and what happened.

The watch follows the visit as an observer (it sees every logged event) and is ticked from the context's
wait loop (so a deadline passes on time even while the session waits for a staff key). The numbers in
session.json are computed afterwards from the log by record.fidelity; this module only warns and logs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from cpm_session.record.derive import as_number
from cpm_session.record.fidelity import CUE_S, FIDELITY_PREFIX, onset_shift, paused_between

if TYPE_CHECKING:
    from cpm_session.session.context import Context

COUNTDOWN_LABEL = "TS_post must start within"
IMMERSION_ENDS = {"cold_pressor_end": "ts_post", "control_immersion_end": "control_ts_post"}
IMMERSION_STARTS = ("cold_pressor_start", "control_immersion_start")


class FidelityWatch:
    """Watch one run of a visit against its protocol's fidelity limits."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.lim = ctx.p.fidelity
        self.cs_end: float | None = None
        self.waiting_for: str | None = None  # the TS phase whose first onset ends the countdown
        self.deadline: float | None = None
        self.late_logged = False
        self.warned = False
        self._shown_s: int | None = None
        self._bath_logged = False
        self._planned_immersion_s: float | None = None
        self._first_onsets: dict[str, dict[Any, float]] = {}
        self._missing = 0
        self._pauses = 0
        self._pause_t: float | None = None
        self._pause_spans: list[tuple[float, float]] = []
        self._block_ref: dict[str, float] = {}

    # ------------------------------------------------------------------ logging
    def _deviation(self, requirement: str, planned: Any, actual: Any, limit: Any, detail: str, **extra: Any) -> None:
        self.ctx.log("deviation", kind=FIDELITY_PREFIX + requirement, requirement=requirement, planned=planned,
                     actual=actual, limit=limit, detail=detail, phase=self.ctx.phase, operator=self.ctx.operator,
                     **extra)

    # ------------------------------------------------------------------ the countdown
    def next_due(self) -> float | None:
        """Return the session time the watch must be ticked at next (the TS_post deadline), or None."""
        if self.deadline is None or self.late_logged:
            return None
        return self.deadline

    def tick(self, now: float) -> None:
        """Update the staff countdown; log the deviation the moment the TS_post limit passes."""
        if self.deadline is None or self.cs_end is None:
            return
        left = self.deadline - now
        shown = math.ceil(left) if left > 0 else 0
        if shown != self._shown_s:
            self._shown_s = shown
            self.ctx.status(countdowns={COUNTDOWN_LABEL: max(0.0, left)})
        if not self.warned and left <= self.lim.warn_before_s:
            self.warned = True
            self.ctx.status(warning=f"TS_post must start within {max(0.0, left):.0f} s "
                                    f"(limit {self.lim.max_cs_to_ts_post_s:g} s after the hand came out)")
        if not self.late_logged and now >= self.deadline - 1e-9:
            self.late_logged = True
            elapsed = now - self.cs_end
            self._deviation("cs_end_to_ts_post_s", self.ctx.p.test_stimulus.post_delay_s, None,
                            self.lim.max_cs_to_ts_post_s,
                            f"{self.waiting_for} has not started {elapsed:.1f} s after the immersion ended "
                            f"(limit {self.lim.max_cs_to_ts_post_s:g} s)", cs_end_t=round(self.cs_end, 4),
                            elapsed_s=round(elapsed, 3))
            self.ctx.status(warning=f"TS_post late: {elapsed:.0f} s since the hand came out "
                                    f"(limit {self.lim.max_cs_to_ts_post_s:g} s): logged as a deviation")

    def _ts_post_onset(self, onset: float) -> None:
        assert self.cs_end is not None
        actual = onset - self.cs_end
        limit = self.lim.max_cs_to_ts_post_s
        within = actual <= limit + 1e-9
        self.ctx.log("fidelity_check", requirement="cs_end_to_ts_post_s", phase=self.waiting_for,
                     planned=self.ctx.p.test_stimulus.post_delay_s, actual=round(actual, 4), limit=limit,
                     within_limits=within, cs_end_t=round(self.cs_end, 4), onset_t=round(onset, 4))
        if not within and not self.late_logged:  # the onset came between two ticks, after the limit
            self.late_logged = True
            self._deviation("cs_end_to_ts_post_s", self.ctx.p.test_stimulus.post_delay_s, round(actual, 4), limit,
                            f"{self.waiting_for} started {actual:.1f} s after the immersion ended (limit {limit:g} s)",
                            cs_end_t=round(self.cs_end, 4))
        self.ctx.status(countdowns={}, **({"warning": ""} if self.warned or self.late_logged else {}))
        self.cs_end = self.deadline = self.waiting_for = None
        self._shown_s = None

    # ------------------------------------------------------------------ device samples
    def on_bath(self, now: float, bath_c: float) -> None:
        """Check one bath reading taken while the hand is in the water against `bath_range_c`."""
        lo, hi = self.lim.bath_range_c
        if not self._bath_logged and not (lo <= bath_c <= hi):
            self._bath_logged = True
            self._deviation("cs_bath_range_c", [lo, hi], round(bath_c, 3), [lo, hi],
                            f"bath {bath_c:.2f} °C outside {lo:g}-{hi:g} °C during the immersion", t_sample=round(now, 4))

    # ------------------------------------------------------------------ events
    def __call__(self, name: str, ev: dict[str, Any]) -> None:
        """Observe one logged event (or signal) of the visit."""
        if name in ("deviation", "fidelity_check"):
            return
        if name == "phase_enter":
            self._first_onsets.clear()
            self._block_ref.clear()
        elif name == "resume" and self._pause_t is not None:
            self._pause_spans.append((self._pause_t, as_number(ev.get("paused_s")) or 0.0))
            self._pause_t = None
        elif name in IMMERSION_STARTS:
            self._bath_logged = False
            self._planned_immersion_s = as_number(ev.get("planned_s"))
        elif name in IMMERSION_ENDS:
            end = as_number(ev.get("end_t"))
            self.cs_end = end if end is not None else as_number(ev.get("t"))
            if self.cs_end is not None:
                self.waiting_for = IMMERSION_ENDS[name]
                self.deadline = self.cs_end + self.lim.max_cs_to_ts_post_s
                self.late_logged = self.warned = False
                self.tick(self.ctx.clock.now())
        elif name == "withdrawal":
            self._withdrawal(ev)
        elif name == "stimulus":
            self._stimulus(ev)
        elif name == "stimulus_delivered":
            self._delivered(ev)
        elif name == "rating":
            self._rating(ev)
        elif name == "pause":
            self._pause_t = as_number(ev.get("t"))
            self._pauses += 1
            if self._pauses > self.lim.max_pauses:
                self._deviation("pauses", self.lim.max_pauses, self._pauses, self.lim.max_pauses,
                                f"pause {self._pauses} (the protocol allows {self.lim.max_pauses})")

    def _withdrawal(self, ev: dict[str, Any]) -> None:
        w = as_number(ev.get("t_in_water_s"))
        planned = self._planned_immersion_s
        if w is not None and planned is not None and w < planned - self.lim.max_immersion_shortfall_s:
            self._deviation("cs_immersion_s", planned, round(w, 3), self.lim.max_immersion_shortfall_s,
                            f"hand withdrawn after {w:.1f} s of a planned {planned:g} s immersion")

    def _stimulus(self, ev: dict[str, Any]) -> None:
        phase = str(ev.get("phase"))
        onset, planned = as_number(ev.get("onset_t")), as_number(ev.get("planned_onset_t"))
        if onset is None:
            return
        if self.waiting_for is not None and phase == self.waiting_for:
            self._ts_post_onset(onset)
        trial = ev.get("trial")
        firsts = self._first_onsets.setdefault(phase, {})
        repeat = trial in firsts
        ts_block = "ts_" in phase
        if ts_block and planned is not None and phase not in self._block_ref:
            self._block_ref[phase] = planned - CUE_S  # a TS block plans every onset at its start
        ref = self._block_ref.get(phase) if ts_block and not repeat else None
        shift = onset_shift(self._pause_spans, ev, ref)  # a pause delays what was planned before it
        if planned is not None and abs(onset - planned - shift) > self.lim.max_onset_error_s + 1e-9:
            self._deviation(f"{phase}_onset_error_s", round(planned, 4), round(onset, 4), self.lim.max_onset_error_s,
                            f"{phase} #{trial} started {onset - planned - shift:+.2f} s from its planned onset"
                            + (f" (besides {shift:.1f} s paused)" if shift else ""), trial=trial)
        if repeat:
            return
        firsts[trial] = onset
        if phase.endswith("ts_pre") and isinstance(trial, int):
            prev = firsts.get(trial - 1)
            planned_iv = self.ctx.p.test_stimulus.interval_s
            paused = paused_between(self._pause_spans, prev, onset) if prev is not None else 0.0
            if prev is not None and abs(onset - prev - paused - planned_iv) > self.lim.max_ts_interval_error_s + 1e-9:
                self._deviation(f"{phase}_interval_error_s", planned_iv, round(onset - prev, 4),
                                self.lim.max_ts_interval_error_s,
                                f"{phase} #{trial} came {onset - prev:.2f} s after #{trial - 1} "
                                f"(planned {planned_iv:g} s)", trial=trial)

    def _delivered(self, ev: dict[str, Any]) -> None:
        got, target = as_number(ev.get("plateau_mean_c")), as_number(ev.get("target_c"))
        if got is not None and target is not None and abs(got - target) > self.lim.max_delivered_error_c:
            self._deviation(f"{ev.get('phase')}_delivered_error", target, got, self.lim.max_delivered_error_c,
                            f"{ev.get('phase')} #{ev.get('trial')}: the thermode delivered {got:.2f} °C "
                            f"for a target of {target:.2f} °C", trial=ev.get("trial"))

    def _rating(self, ev: dict[str, Any]) -> None:
        r = self.ctx.p.ratings
        attempt = as_number(ev.get("attempt")) or 1
        final = not r.repeat_missing or attempt >= r.max_attempts or ev.get("phase") in ("cs", "control_cs")
        if ev.get("missing") and final:
            self._missing += 1
            if self._missing > self.lim.max_missing_ratings:
                self._deviation("missing_ratings", self.lim.max_missing_ratings, self._missing,
                                self.lim.max_missing_ratings,
                                f"{ev.get('phase')} #{ev.get('trial')}: no rating given")


