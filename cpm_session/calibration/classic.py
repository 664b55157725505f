"""The ascending series and the up-down staircase, on the shared interface and rules (base.py).

Both fit rating on temperature (`legacy.fit_target`, least squares on the rising part of the curve) to
predict the temperature rated `target_rating` and verify it with `verify_n` stimuli; when the verification
mean is off, the line is refitted on every rating so far (or, if that does not move it, stepped by the
fitted slope: `legacy.refine`) and the new temperature verified, never above the ceiling or the cap.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cpm_session.calibration.base import EPS, ProcedureBase, Verification, on_grid
from cpm_session.calibration.legacy import fit_target, refine


class _FitThenVerify(ProcedureBase):
    """Series planned by a subclass; the candidate TS comes from a straight-line fit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slope = 0.0

    def _n_series(self) -> int:
        return sum(1 for _, _, s in self.stimuli if s == "series")

    def _end_series(self) -> None:
        c = self.cfg
        fit = fit_target(self.points, c.target_rating, min_slope=c.min_slope_per_c, min_r2=c.min_r2,
                         lo_c=c.floor_c, hi_c=self.cap_c)
        self.slope = max(fit.slope, c.min_slope_per_c)
        ratings = [r for _, r in self.points]
        if not ratings:
            self._finish("failed", "no stimulus was rated")
            return
        if max(ratings) < c.target_rating - c.tolerance and self.ceiling_c() >= self.cap_c - EPS and \
                any(t >= self.cap_c - EPS for t, _ in self.points):
            self._finish("not_reached", f"rating {c.target_rating:.0f} not reached: at most {max(ratings):.0f} "
                         f"up to the cap {self.cap_c:.1f} °C")
            return
        if min(ratings) > c.target_rating + c.tolerance and any(t <= c.floor_c + EPS for t, _ in self.points):
            self._finish("not_reached", f"already at the floor {c.floor_c:.1f} °C the rating is {min(ratings):.0f}")
            return
        if fit.target_c is None:
            self._finish("failed", "calibration quality: " + "; ".join(fit.warnings))
            return
        cand = self.snap(fit.target_c)
        if cand is None:
            self._finish("failed", "no allowed temperature near the fitted Pain-60")
            return
        self.candidate_c = cand

    def _after_verification(self, v: Verification) -> float | None:
        if v.passed:
            return v.temp_c
        m = v.mean
        assert m is not None
        c = self.cfg
        fit = fit_target(self.points, c.target_rating, min_slope=c.min_slope_per_c, min_r2=c.min_r2,
                         lo_c=c.floor_c, hi_c=self.cap_c)  # every rating so far, the verification's included
        if fit.target_c is not None and abs(fit.target_c - v.temp_c) >= 0.1:
            self.slope = max(fit.slope, c.min_slope_per_c)
            new = fit.target_c
        else:
            new = refine(v.temp_c, m, c.target_rating, self.slope, self.cap_c)
        return self.snap(new)


class AscendingProcedure(_FitThenVerify):
    """From `start_c` up in `step_c` steps until a rating reaches `stop_rating` (or the ceiling/cap).
    When the first ratings already reach `stop_rating`, step down by 2 x `step_c` (not below `floor_c`)
    until one is below it, then ascend again from there."""

    name = "ascending"

    def _next_series(self) -> float | None:
        c = self.cfg
        if not self.stimuli:
            return self.snap(c.start_c)
        if self._n_series() >= c.max_stimuli:
            self._end_series()
            return None
        if not self.points:  # only missed ratings so far: repeat
            return self.stimuli[-1][0]
        last_t, last_r = self.points[-1]
        if self.stimuli[-1][1] is None:
            return self.stimuli[-1][0]
        if last_r >= c.stop_rating:
            if any(r < c.stop_rating for _, r in self.points) or last_t <= c.floor_c + EPS:
                self._end_series()
                return None
            return self._step(last_t, -2 * c.step_c)
        nxt = self._step(last_t, c.step_c)
        if nxt is None or nxt <= last_t + EPS:
            self._end_series()
            return None
        return nxt

    def _step(self, from_c: float, delta_c: float) -> float | None:
        target = from_c + delta_c
        if self.targets is None:
            return on_grid(float(np.clip(target, self.cfg.floor_c, self.ceiling_c())), self.cfg.floor_c, self.ceiling_c())
        allowed = self.allowed() or []
        if delta_c > 0:
            up = [x for x in allowed if x > from_c + EPS]
            return min(up, key=lambda x: abs(x - target)) if up else None
        down = [x for x in allowed if x < from_c - EPS]
        return min(down, key=lambda x: abs(x - target)) if down else from_c


class StaircaseProcedure(_FitThenVerify):
    """Up-down staircase on `target_rating` from `start_c`: up when rated below, down when above; the step
    (first 2 x `step_c`) halves at each reversal (not below 0.25 °C); `staircase_trials` stimuli (at most
    `max_stimuli`), then the line fit."""

    name = "staircase"
    MIN_STEP_C = 0.25

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.step = 2 * self.cfg.step_c
        self._last_dir = 0
        self.reversals = 0

    def _next_series(self) -> float | None:
        c = self.cfg
        if not self.stimuli:
            return self.snap(c.start_c)
        if self._n_series() >= min(c.staircase_trials, c.max_stimuli):
            self._end_series()
            return None
        temp, rating = self.stimuli[-1][0], self.stimuli[-1][1]
        if rating is None:
            return temp
        direction = 1 if rating < c.target_rating else -1
        if self._last_dir and direction != self._last_dir:
            self.reversals += 1
            self.step = max(self.MIN_STEP_C, self.step / 2)
        self._last_dir = direction
        nxt = self.snap(temp + direction * self.step)
        if nxt is None:
            self._end_series()
            return None
        return nxt
