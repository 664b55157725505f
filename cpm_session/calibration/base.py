"""What every calibration procedure shares: settings, the step it asks for, the safety rules, verification
and the result. Pure logic: no I/O, no clock; the session delivers each step and hands back the rating.

    proc = make_procedure(method, cfg, cap_c=cap, available_targets_c=None, rng=rng)
    while (step := proc.next()) is not None:       # step.temp_c, step.stage ("series" | "verification")
        proc.add(step.temp_c, rating)              # rating 0-100, or None when the participant gave none
    result = proc.result()

Rules for every method (issue 15):
- never above `cap_c`; never below `floor_c`;
- never more than `max_step_up_c` above the hottest temperature already rated below `stop_rating`
  (before any such rating: never above `start_c`), so a sensitive participant is never jumped to heat;
- the first stimulus is at `start_c`; when ratings are already high the procedure steps DOWN (to `floor_c`);
- with `available_targets_c` (a Medoc program grid) every temperature is taken from that list;
- the TS is always a temperature that was delivered `verify_n` times with a mean rating within
  `target_rating ± tolerance`; the cap or an untested temperature is never a fallback: when no such
  temperature is found the result's `ts_c` is None and `outcome` says why (`not_reached` | `failed`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

Stage = Literal["series", "verification"]
Outcome = Literal["ok", "not_reached", "failed"]
MAX_MISSED = 3
"""A calibration with this many unanswered stimuli stops (outcome failed): the staff must check the participant."""
EPS = 1e-9


RESOLUTION_C = 0.1
"""Temperatures are chosen on a 0.1 °C grid (the TCS II target resolution) unless a target list is given."""


def on_grid(temp_c: float, lo_c: float, hi_c: float) -> float:
    """Return `temp_c` rounded to RESOLUTION_C, kept within [lo_c, hi_c] (rounded inwards at the ends)."""
    t = round(round(temp_c / RESOLUTION_C) * RESOLUTION_C, 2)
    if t > hi_c + EPS:
        t = round(math.floor(hi_c / RESOLUTION_C + EPS) * RESOLUTION_C, 2)
    if t < lo_c - EPS:
        t = round(math.ceil(lo_c / RESOLUTION_C - EPS) * RESOLUTION_C, 2)
    return min(max(t, lo_c), hi_c)


class CalibrationSettings(Protocol):
    """The protocol keys a procedure reads (`protocol.Calibration` has them; so does `Settings`)."""

    @property
    def method(self) -> str: ...
    @property
    def target_rating(self) -> float: ...
    @property
    def floor_c(self) -> float: ...
    @property
    def start_c(self) -> float: ...
    @property
    def step_c(self) -> float: ...
    @property
    def max_step_up_c(self) -> float: ...
    @property
    def stop_rating(self) -> float: ...
    @property
    def max_stimuli(self) -> int: ...
    @property
    def ci_halfwidth_c(self) -> float: ...
    @property
    def verify_n(self) -> int: ...
    @property
    def tolerance(self) -> float: ...
    @property
    def max_refinements(self) -> int: ...
    @property
    def min_slope_per_c(self) -> float: ...
    @property
    def min_r2(self) -> float: ...
    @property
    def staircase_trials(self) -> int: ...


@dataclass(frozen=True)
class Settings:
    """Calibration settings with the defaults of protocols/cpm-thermal.toml (tests, benchmarks)."""

    method: str = "bayes"
    target_rating: float = 60.0
    floor_c: float = 35.0
    start_c: float = 40.0
    step_c: float = 1.0
    max_step_up_c: float = 3.0
    stop_rating: float = 70.0
    max_stimuli: int = 14
    ci_halfwidth_c: float = 0.5
    verify_n: int = 2
    tolerance: float = 10.0
    max_refinements: int = 2
    min_slope_per_c: float = 3.0
    min_r2: float = 0.6
    staircase_trials: int = 12


@dataclass(frozen=True)
class Step:
    """One stimulus the procedure asks for: deliver `temp_c` and return the rating with `add`."""

    temp_c: float
    stage: Stage
    index: int  # 1-based number of this stimulus in the calibration


@dataclass
class Verification:
    """One verification of a candidate TS: its ratings and whether their mean is within tolerance."""

    temp_c: float
    ratings: list[float] = field(default_factory=list)
    passed: bool = False

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.ratings)) if self.ratings else None

    def as_dict(self) -> dict[str, Any]:
        m = self.mean
        return {"temp_c": self.temp_c, "ratings": list(self.ratings), "mean": None if m is None else round(m, 3),
                "passed": self.passed}


@dataclass
class CalibrationResult:
    """What a calibration found. `ts_c` is a temperature verified within tolerance, or None."""

    method: str
    outcome: Outcome
    ts_c: float | None
    n_stimuli: int
    hottest_c: float | None
    warnings: list[str]
    reason: str
    stimuli: list[tuple[float, float | None, str]]
    verifications: list[Verification]
    refinements: int
    posterior: dict[str, Any] | None = None
    fit: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict for session.json `results.calibration` and the `calibration_result` event.

        Keys kept from before issue 15 (exports read them): `method`, `n_stimuli`, `outcome`, `slope`,
        `intercept`, `r2`, `warnings`, `refinements`, `verification_ratings`, `pain60_c` (= `ts_c`)."""
        fit = self.fit or {}
        last_ok = next((v for v in reversed(self.verifications) if v.passed and v.temp_c == self.ts_c), None)
        return {
            "method": self.method, "outcome": self.outcome, "ts_c": self.ts_c, "pain60_c": self.ts_c,
            "n_stimuli": self.n_stimuli, "hottest_c": self.hottest_c, "warnings": list(self.warnings),
            "reason": self.reason, "refinements": self.refinements,
            "verification_ratings": list(last_ok.ratings) if last_ok else [],
            "verifications": [v.as_dict() for v in self.verifications],
            "stimuli": [{"temp_c": t, "rating": r, "stage": s} for t, r, s in self.stimuli],
            "slope": fit.get("slope_per_c"), "intercept": fit.get("intercept"), "r2": fit.get("r2"),
            "posterior": self.posterior,
        }


def check_settings(cfg: CalibrationSettings, cap_c: float) -> None:
    """Raise ValueError naming the key when a setting is not finite or not usable with `cap_c`."""
    for key in ("target_rating", "floor_c", "start_c", "step_c", "max_step_up_c", "stop_rating",
                "ci_halfwidth_c", "tolerance"):
        v = getattr(cfg, key)
        if not (isinstance(v, (int, float)) and math.isfinite(v)):
            raise ValueError(f"calibration.{key}: expected a finite number, found {v!r}")
    if not (isinstance(cap_c, (int, float)) and math.isfinite(cap_c)):
        raise ValueError(f"cap_c: expected a finite number, found {cap_c!r}")
    if not cfg.floor_c <= cfg.start_c < cap_c:
        raise ValueError(f"calibration: need floor_c {cfg.floor_c} <= start_c {cfg.start_c} < cap {cap_c}")
    if cfg.verify_n < 1:
        raise ValueError(f"calibration.verify_n: expected >= 1 (the TS is always verified), found {cfg.verify_n}")


def usable_targets(available_targets_c: list[float] | None, floor_c: float, cap_c: float) -> list[float] | None:
    """Return the sorted, de-duplicated available temperatures within [floor_c, cap_c] (None: any temperature)."""
    if available_targets_c is None:
        return None
    out: list[float] = []
    for t in available_targets_c:
        if not (isinstance(t, (int, float)) and math.isfinite(t)):
            raise ValueError(f"available_targets_c: expected finite temperatures, found {t!r}")
        if floor_c - EPS <= t <= cap_c + EPS:
            out.append(round(float(t), 2))
    return sorted(set(out))


class ProcedureBase:
    """Bookkeeping, safety rules and verification shared by every method; subclasses plan the series."""

    name = "base"

    def __init__(self, cfg: CalibrationSettings, *, cap_c: float, available_targets_c: list[float] | None = None,
                 rng: np.random.Generator | None = None) -> None:
        check_settings(cfg, cap_c)
        self.cfg = cfg
        self.cap_c = float(cap_c)
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.targets = usable_targets(available_targets_c, cfg.floor_c, self.cap_c)
        self.points: list[tuple[float, float]] = []          # every rated stimulus (temp, rating)
        self.stimuli: list[tuple[float, float | None, str]] = []  # every delivered stimulus (temp, rating, stage)
        self.missed = 0
        self.warnings: list[str] = []
        self.verifications: list[Verification] = []
        self.refinements = 0
        self.stage: Stage = "series"
        self.candidate_c: float | None = None
        self._pending: Step | None = None
        self._outcome: Outcome | None = None
        self._ts_c: float | None = None
        self._reason = ""
        if self.targets is not None and not self.targets:
            self._finish("failed", f"no available target temperature between floor {cfg.floor_c} °C and cap {self.cap_c} °C")

    # ------------------------------------------------------------------ rules
    def ceiling_c(self) -> float:
        """Return the hottest temperature allowed now: the cap, and at most `max_step_up_c` above the hottest
        temperature rated below `stop_rating` (before any such rating, `start_c`)."""
        below = [t for t, r in self.points if r < self.cfg.stop_rating]
        limit = (max(below) + self.cfg.max_step_up_c) if below else self.cfg.start_c
        return min(self.cap_c, limit)

    def allowed(self) -> list[float] | None:
        """Return the available temperatures allowed now (None when any temperature in range is allowed)."""
        if self.targets is None:
            return None
        hi = self.ceiling_c()
        return [t for t in self.targets if t <= hi + EPS]

    def snap(self, temp_c: float) -> float | None:
        """Return the allowed temperature nearest to `temp_c` within [floor, ceiling] (grid-aware), None if none."""
        hi = self.ceiling_c()
        lo = self.cfg.floor_c
        if hi < lo - EPS:
            return None
        if self.targets is None:
            return on_grid(float(np.clip(temp_c, lo, hi)), lo, hi)
        allowed = self.allowed() or []
        if not allowed:
            return None
        return min(allowed, key=lambda t: (abs(t - temp_c), t))

    # ------------------------------------------------------------------ loop
    @property
    def done(self) -> bool:
        return self._outcome is not None

    def next(self) -> Step | None:
        """Return the next stimulus to deliver (the same one until `add` is called), or None when finished."""
        if self._outcome is not None:
            return None
        if self._pending is not None:
            return self._pending
        if self.stage == "series":
            temp = self._next_series()
            if temp is None:  # the series is over: _end_series chose a candidate or finished
                if self._outcome is not None:
                    return None
                self.stage = "verification"
                self.verifications.append(Verification(self._checked(self.candidate_c)))
        if self.stage == "verification":
            if self._outcome is not None:
                return None
            temp = self.verifications[-1].temp_c
        assert temp is not None
        temp = self._checked(temp)
        self._pending = Step(temp, self.stage, len(self.stimuli) + 1)
        return self._pending

    def _checked(self, temp: float | None) -> float:
        if temp is None or not math.isfinite(temp):
            raise AssertionError(f"calibration {self.name}: no temperature to deliver")
        if temp > self.cap_c + EPS or temp > self.ceiling_c() + EPS or temp < self.cfg.floor_c - EPS:
            raise AssertionError(f"calibration {self.name}: {temp} °C breaks the rules "
                                 f"(floor {self.cfg.floor_c}, ceiling {self.ceiling_c()}, cap {self.cap_c})")
        return round(float(temp), 2)

    def add(self, temp_c: float, rating: float | None) -> None:
        """Record the rating of the stimulus delivered at `temp_c` (None: no rating)."""
        if rating is not None and not (isinstance(rating, (int, float)) and math.isfinite(rating) and -EPS <= rating <= 100 + EPS):
            raise ValueError(f"calibration: rating must be a number in 0-100 or None, found {rating!r}")
        if not (isinstance(temp_c, (int, float)) and math.isfinite(temp_c)):
            raise ValueError(f"calibration: temp_c must be a finite number, found {temp_c!r}")
        if self._outcome is not None:
            raise ValueError("calibration: add() after the procedure finished")
        step = self._pending
        stage: Stage = step.stage if step is not None else self.stage
        self._pending = None
        temp = float(temp_c)
        self.stimuli.append((temp, None if rating is None else float(rating), stage))
        if rating is None:
            self.missed += 1
            if self.missed >= MAX_MISSED:
                self._finish("failed", f"{self.missed} stimuli were not rated: check the participant")
            return
        r = float(min(100.0, max(0.0, rating)))
        self.points.append((temp, r))
        self._observe(temp, r, stage)
        if stage == "verification":
            v = self.verifications[-1]
            v.ratings.append(r)
            if len(v.ratings) >= self.cfg.verify_n:
                self._end_verification(v)

    def _end_verification(self, v: Verification) -> None:
        m = v.mean
        assert m is not None
        v.passed = abs(m - self.cfg.target_rating) <= self.cfg.tolerance + EPS
        new_c = self._after_verification(v)
        if v.passed and (new_c is None or abs(new_c - v.temp_c) <= self._accept_c() + EPS):
            self._finish("ok", "", ts_c=v.temp_c)
            return
        c = self.cfg
        if not v.passed and not any(x.passed for x in self.verifications):
            if m < c.target_rating - c.tolerance and v.temp_c >= self.cap_c - EPS:
                self._finish("not_reached", f"rating {c.target_rating:.0f} ± {c.tolerance:.0f} is not reached at the cap "
                             f"{self.cap_c:.1f} °C (mean rating {m:.0f} there)")
                return
            if m > c.target_rating + c.tolerance and v.temp_c <= c.floor_c + EPS:
                self._finish("not_reached", f"already at the floor {c.floor_c:.1f} °C the rating is above "
                             f"{c.target_rating:.0f} ± {c.tolerance:.0f} (mean rating {m:.0f} there)")
                return
        if self.refinements < self.cfg.max_refinements and new_c is not None:
            self.refinements += 1
            self.verifications.append(Verification(self._checked(new_c)))
            return
        passed = [x for x in self.verifications if x.passed]
        if passed:
            best = self._best_verified(passed)
            self.warnings.append(f"refinements exhausted: using {best.temp_c} °C, verified at a mean rating of {best.mean:.0f}")
            self._finish("ok", "", ts_c=best.temp_c)
            return
        lo = "below" if m < self.cfg.target_rating else "above"
        self._finish("failed", f"no temperature was verified: mean rating {m:.0f} at {v.temp_c} °C is {lo} "
                     f"{self.cfg.target_rating:.0f} ± {self.cfg.tolerance:.0f} after {self.refinements} refinement(s)")

    def _finish(self, outcome: Outcome, reason: str, ts_c: float | None = None) -> None:
        self._outcome = outcome
        self._reason = reason
        self._ts_c = ts_c
        self._pending = None

    # ------------------------------------------------------------------ subclass hooks
    def _next_series(self) -> float | None:
        """Return the next series temperature, or None after setting `candidate_c` (or finishing)."""
        raise NotImplementedError

    def _observe(self, temp_c: float, rating: float, stage: Stage) -> None:
        """Take a rating into account (series and verification)."""

    def _after_verification(self, v: Verification) -> float | None:
        """Return the temperature to verify next if `v` is not accepted (snapped to the rules), or None."""
        raise NotImplementedError

    def _accept_c(self) -> float:
        """A passed verification is accepted when the next candidate is at most this far from it."""
        return math.inf

    def _best_verified(self, passed: list[Verification]) -> Verification:
        return min(passed, key=lambda x: abs((x.mean or 0.0) - self.cfg.target_rating))

    def _posterior_summary(self) -> dict[str, Any] | None:
        return None

    def _fit_summary(self) -> dict[str, Any] | None:
        from cpm_session.calibration.legacy import fit_target

        if len({t for t, _ in self.points}) < 2:
            return None
        f = fit_target(self.points, self.cfg.target_rating, min_slope=self.cfg.min_slope_per_c, min_r2=self.cfg.min_r2,
                       lo_c=self.cfg.floor_c, hi_c=self.cap_c)
        return {"slope_per_c": round(f.slope, 4), "intercept": round(f.intercept, 4), "r2": round(f.r2, 4),
                "n_points": f.n, "predicted_c": None if f.target_c is None else round(f.target_c, 3),
                "warnings": list(f.warnings)}

    # ------------------------------------------------------------------ result
    def result(self) -> CalibrationResult:
        """Return what the calibration found (call after `next()` returned None)."""
        if self._outcome is None:
            raise ValueError("calibration: result() before the procedure finished (next() has not returned None)")
        fit = self._fit_summary()
        warnings = list(self.warnings) + ([w for w in fit["warnings"] if w not in self.warnings] if fit else [])
        return CalibrationResult(
            method=self.name, outcome=self._outcome, ts_c=self._ts_c, n_stimuli=len(self.stimuli),
            hottest_c=max((t for t, _, _ in self.stimuli), default=None), warnings=warnings, reason=self._reason,
            stimuli=list(self.stimuli), verifications=list(self.verifications), refinements=self.refinements,
            posterior=self._posterior_summary(), fit=fit)
