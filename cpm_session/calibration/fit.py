"""Least-squares fit of rating on temperature and the bounded refinement step, used by the ascending and
staircase procedures (`classic.py`) and as the Bayesian procedure's quality report.

`fit_target` predicts the temperature rated `target` from the rising part of the curve and says what is
wrong with a poor fit; `refine` moves a temperature that verified off target by at most 2 °C, never above
the cap."""

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


def refine(current_c: float, mean_rating: float, target: float, slope: float, cap_c: float) -> float:
    """Return a corrected temperature after a verification that was off target (bounded step, never above cap)."""
    step = (target - mean_rating) / slope if slope > 0 else 0.0
    step = float(np.clip(step, -MAX_REFINE_STEP_C, MAX_REFINE_STEP_C))
    return round(min(cap_c, current_c + step), 2)
