"""The pre-issue-15 calibration series (kept only until the session layer calls `make_procedure(method, cfg, ...)`).

`fit_target` and `refine` are still used by the new ascending and staircase procedures (`classic.py`).
The classes below are what `engine.py` drives today; they may test at the cap and are superseded by
`cpm_session.calibration.classic` and `cpm_session.calibration.bayes`. Delete them after the wiring.

- `AscendingSeries`: from `start_c` in `step_c` steps until a rating reaches `stop_rating` or the cap.
- `Staircase`: an up-down staircase on the target rating with step halving at reversals.
Both then fit rating on temperature (least squares on the rising part) to predict the temperature
rated `target_rating`; the engine verifies it with `verify_n` stimuli and refines when off.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FIT_LOW, FIT_HIGH = 20.0, 95.0
"""Ratings used for the fit: the informative, rising part of the curve (ratings near 0 are clipped by
the scale, so with noisy raters the few non-zero ones near the floor would flatten the line)."""
LOCAL_WINDOW_C = 2.0
"""After a first prediction, the line is refitted on the points within this distance of it, where the
psychometric curve is close to straight (when at least 3 distinct temperatures lie there)."""
JUMP_POINTS = 25.0
"""A drop of more than this between successively hotter stimuli counts as 'jumping around'."""
MAX_REFINE_STEP_C = 2.0
MAX_MISSED = 3
"""A calibration with this many unanswered stimuli stops: the staff must check the participant."""


@dataclass
class Fit:
    """A straight-line fit of rating on temperature and the temperature it predicts for the target."""

    slope: float
    intercept: float
    r2: float
    n: int
    target_c: float | None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """Return a JSON-ready dict."""
        return {"slope_per_c": round(self.slope, 4), "intercept": round(self.intercept, 4), "r2": round(self.r2, 4),
                "n_points": self.n, "predicted_c": None if self.target_c is None else round(self.target_c, 3),
                "warnings": list(self.warnings)}


def fit_target(points: list[tuple[float, float]], target: float, *, min_slope: float, min_r2: float,
               lo_c: float, hi_c: float) -> Fit:
    """Fit rating = a + b·T on the informative points; return the temperature rated `target`, clamped to [lo_c, hi_c]."""
    warnings: list[str] = []
    if not points:
        return Fit(0.0, 0.0, 0.0, 0, None, ["no stimuli rated"])
    ratings = [r for _, r in points]
    if all(r == 0 for r in ratings):
        warnings.append("every rating was 0: check the thermode contact and that the participant understood the scale")
    by_t = sorted(points)
    for (t1, r1), (t2, r2) in zip(by_t, by_t[1:]):
        if t2 > t1 and r1 - r2 > JUMP_POINTS:
            warnings.append(f"ratings jump around: {r1:.0f} at {t1:.1f} °C but {r2:.0f} at {t2:.1f} °C")
            break
    use = [(t, r) for t, r in points if FIT_LOW <= r <= FIT_HIGH]
    if len({t for t, _ in use}) < 2:
        use = by_t[-3:]
    x = np.array([t for t, _ in use])
    y = np.array([r for _, r in use])
    if len(set(x.tolist())) < 2:
        return Fit(0.0, float(y.mean()), 0.0, len(use), None, warnings + ["too few distinct temperatures to fit"])
    b, a = np.polyfit(x, y, 1)
    pred = a + b * x
    ss_res = float(((y - pred) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0
    if b < min_slope:
        warnings.append(f"flat or negative slope ({b:.1f} points/°C, expected at least {min_slope})")
        return Fit(float(b), float(a), r2, len(use), None, warnings)
    if r2 < min_r2:
        warnings.append(f"poor fit (R² {r2:.2f}, expected at least {min_r2})")
    t_target = float(np.clip((target - a) / b, lo_c, hi_c))
    near = [(t, r) for t, r in use if abs(t - t_target) <= LOCAL_WINDOW_C]
    if len({t for t, _ in near}) >= 3:
        bl, al = np.polyfit([t for t, _ in near], [r for _, r in near], 1)
        if bl >= min_slope:
            b, a = bl, al
            t_target = float(np.clip((target - a) / b, lo_c, hi_c))
    return Fit(float(b), float(a), float(r2), len(use), t_target, warnings)


class AscendingSeries:
    """Ascending series: start_c, start_c + step_c, ... until a rating reaches stop_rating or the cap."""

    name = "ascending"

    def __init__(self, start_c: float, step_c: float, stop_rating: float, cap_c: float) -> None:
        self.start_c, self.step_c, self.stop_rating, self.cap_c = start_c, step_c, stop_rating, cap_c
        self.points: list[tuple[float, float]] = []
        self.missed: list[float] = []
        self.reached_cap = False

    def next_c(self) -> float | None:
        """Return the next temperature to deliver, or None when the series is over."""
        if self.points and self.points[-1][1] >= self.stop_rating:
            return None
        if len(self.missed) >= MAX_MISSED:
            return None
        t = round(self.start_c + self.step_c * (len(self.points) + len(self.missed)), 2)
        if t > self.cap_c + 1e-9:
            if self.points and self.points[-1][0] < self.cap_c - 1e-9:
                return self.cap_c  # one last stimulus exactly at the cap
            self.reached_cap = True
            return None
        return t

    def add(self, temp_c: float, rating: float | None) -> None:
        """Record a rated stimulus (None: no rating; the series moves on)."""
        if rating is None:
            self.missed.append(temp_c)
        else:
            self.points.append((temp_c, rating))


class Staircase:
    """Up-down staircase on the target rating: step up when rated below, down when above; halve at reversals."""

    name = "staircase"
    MIN_STEP_C = 0.25

    def __init__(self, start_c: float, step_c: float, target: float, cap_c: float, trials: int) -> None:
        self.t = start_c
        self.step = step_c * 2
        self.target, self.cap_c, self.trials = target, cap_c, trials
        self.points: list[tuple[float, float]] = []
        self.missed: list[float] = []
        self._last_dir = 0
        self.reversals = 0
        self.reached_cap = False
        self.floor_c = start_c - 4 * step_c

    def next_c(self) -> float | None:
        """Return the next temperature, or None after `trials` stimuli."""
        if len(self.points) + len(self.missed) >= self.trials or len(self.missed) >= MAX_MISSED:
            return None
        return round(float(np.clip(self.t, self.floor_c, self.cap_c)), 2)

    def add(self, temp_c: float, rating: float | None) -> None:
        """Record a rated stimulus and move the staircase (a missing rating repeats the temperature)."""
        if rating is None:
            self.missed.append(temp_c)
            return
        self.points.append((temp_c, rating))
        direction = 1 if rating < self.target else -1
        if self._last_dir and direction != self._last_dir:
            self.reversals += 1
            self.step = max(self.MIN_STEP_C, self.step / 2)
        self._last_dir = direction
        self.t = temp_c + direction * self.step
        if self.t > self.cap_c:
            self.reached_cap = True


def make_procedure(method: str, *, start_c: float, step_c: float, stop_rating: float, target: float,
                   cap_c: float, trials: int) -> AscendingSeries | Staircase:
    """Return the calibration procedure named in the protocol file."""
    if method == "ascending":
        return AscendingSeries(start_c, step_c, stop_rating, cap_c)
    if method == "staircase":
        return Staircase(start_c, step_c, target, cap_c, trials)
    raise ValueError(f"unknown calibration method {method!r}")


def refine(current_c: float, mean_rating: float, target: float, slope: float, cap_c: float) -> float:
    """Return a corrected temperature after a verification that was off target (bounded step, never above cap)."""
    step = (target - mean_rating) / slope if slope > 0 else 0.0
    step = float(np.clip(step, -MAX_REFINE_STEP_C, MAX_REFINE_STEP_C))
    return round(min(cap_c, current_c + step), 2)
