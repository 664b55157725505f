"""Adaptive Bayesian Pain-60 calibration: a grid posterior over the participant's rating curve.

Model of one rating y of a heat stimulus at T °C (0-100 scale):
    mu(T) = 100 / (1 + exp(-(T - t50) / s)),  s = 24 / slope,  t50 = pain60 - s ln 1.5
so mu(pain60) = 60 and d mu / dT = `slope` rating points per °C there;
    y = clip(mu + e, 0, 100),  e ~ Normal(0, sd)  with probability 1 - LAPSE, else uniform on 0-100.
A rating at the ends of the scale is censored (0: P(mu + e <= 0.5); 100: P(mu + e >= 99.5)).
The posterior is held on a grid pain60 x slope x sd (numpy, log space; ~28 000 points, updated in
well under a millisecond per rating).

Next temperature: the one, among the temperatures allowed now (floor .. ceiling, the available grid when
given), that minimises the expected posterior variance of pain60 after its rating (ratings binned
in 5-point bins, expectation over a weighted sample of the posterior). To keep the order unpredictable
the procedure draws at random among the temperatures whose expected gain is within NEAR_BEST of the best
(never one that the posterior says is more likely than not rated above COMFORT_MAX).

The series stops when the 95 % credible interval of pain60, as it will be after the `verify_n`
verification stimuli at the posterior median (the verification ratings enter the posterior too), is
within ± `ci_halfwidth_c`; when the rating at the cap is surely below target - tolerance (or at the
floor surely above target + tolerance): `not_reached`; or after `max_stimuli` series stimuli. The
candidate TS is the posterior median (snapped to the rules); after its verification the posterior is
updated and a candidate that moved more than half the CI half-width is re-verified (`max_refinements`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.special import ndtr

from cpm_session.calibration.base import EPS, ProcedureBase, Stage, Verification, on_grid

LAPSE = 0.03
"""Probability that a rating has nothing to do with the stimulus (a slip of the mouse): keeps one wild rating
from dragging the posterior."""
P60_STEP_C = 0.1
P60_MARGIN_C = 4.0
"""The pain60 grid spans [floor - margin, cap + margin] in P60_STEP_C steps: the procedure can say 'below the
floor' or 'above the cap' with confidence."""
SLOPES = np.geomspace(2.5, 45.0, 14)
"""Rating points per °C at Pain-60 (log-spaced; prior uniform in log slope)."""
NOISE_SDS = np.geomspace(2.0, 30.0, 8)
"""Rating noise SD, points (log-spaced; prior uniform in log SD)."""
CANDIDATE_STEP_C = 0.5
N_PARTICLES = 200
NEAR_BEST = 0.10
"""Candidates whose expected variance reduction is within this fraction of the best one are equally good."""
BIN_EDGES = np.concatenate(([-np.inf, 0.5], np.arange(10.0, 91.0, 10.0), [99.5, np.inf]))
"""Rating bins of the design's expectation: the two censored ends and 10-point bins between."""
COMFORT_MAX = 80.0
"""A temperature whose mean rating is more likely than not above this is not chosen for information."""
CENSOR_LO, CENSOR_HI = 0.5, 99.5
SURE = 0.95


def _curve(p60: np.ndarray, slope: np.ndarray, temp_c: float | np.ndarray) -> np.ndarray:
    """Return mu(T) for broadcastable arrays of pain60, slope and temperature."""
    s = 24.0 / slope
    t50 = p60 - s * math.log(1.5)
    z = np.clip((temp_c - t50) / s, -60.0, 60.0)
    return 100.0 / (1.0 + np.exp(-z))


class BayesProcedure(ProcedureBase):
    """Grid-posterior adaptive calibration (issue 15's default method)."""

    name = "bayes"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cfg = self.cfg
        self.p60 = np.arange(cfg.floor_c - P60_MARGIN_C, self.cap_c + P60_MARGIN_C + EPS, P60_STEP_C)
        self.logpost = np.zeros((self.p60.size, SLOPES.size, NOISE_SDS.size))
        self._p60_3 = self.p60[:, None, None]
        self._slope_3 = SLOPES[None, :, None]
        self._sd_3 = NOISE_SDS[None, None, :]
        self.n_series = 0
        self._sample_var = 0.0
        self._too_hot = np.zeros(0, dtype=bool)

    # ------------------------------------------------------------------ posterior
    def _observe(self, temp_c: float, rating: float, stage: Stage) -> None:
        if stage == "series":
            self.n_series += 1
        mu = _curve(self.p60[:, None], SLOPES[None, :], temp_c)[:, :, None]
        sd = self._sd_3
        if rating <= CENSOR_LO:
            lik = ndtr((CENSOR_LO - mu) / sd)
            lapse = LAPSE * CENSOR_LO / 100.0
        elif rating >= CENSOR_HI:
            lik = ndtr((mu - CENSOR_HI) / sd)
            lapse = LAPSE * (100.0 - CENSOR_HI) / 100.0
        else:
            lik = np.exp(-0.5 * ((rating - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
            lapse = LAPSE / 100.0
        self.logpost += np.log((1.0 - LAPSE) * lik + lapse)
        self.logpost -= self.logpost.max()

    def weights(self) -> np.ndarray:
        """Return the normalised posterior on the grid (pain60 x slope x sd)."""
        w = np.exp(self.logpost)
        return w / w.sum()

    def marginal_p60(self) -> np.ndarray:
        """Return the posterior of pain60 on `self.p60`."""
        return self.weights().sum(axis=(1, 2))

    def quantiles(self, qs: tuple[float, ...] = (0.025, 0.5, 0.975)) -> list[float]:
        """Return posterior quantiles of pain60, °C (interpolated on the grid)."""
        m = self.marginal_p60()
        cdf = np.cumsum(m)
        return [float(np.interp(q, cdf - m / 2, self.p60)) for q in qs]

    def _mean_sd(self) -> tuple[float, float]:
        m = self.marginal_p60()
        mean = float((m * self.p60).sum())
        return mean, float(math.sqrt(max(0.0, (m * (self.p60 - mean) ** 2).sum())))

    def _sample(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        w = self.weights().ravel()
        idx = self.rng.choice(w.size, size=n, p=w)
        i, j, k = np.unravel_index(idx, self.logpost.shape)
        return self.p60[i], SLOPES[j], NOISE_SDS[k]

    def prob_rating_below(self, temp_c: float, level: float) -> float:
        """Return the posterior probability that the mean rating at `temp_c` is below `level`."""
        mu = _curve(self.p60[:, None], SLOPES[None, :], temp_c)
        w = self.weights().sum(axis=2)
        return float(w[mu < level].sum())

    # ------------------------------------------------------------------ design
    def _candidates(self) -> np.ndarray:
        allowed = self.allowed()
        if allowed is not None:
            return np.array(allowed, dtype=float)
        lo, hi = self.cfg.floor_c, self.ceiling_c()
        grid = [on_grid(t, lo, hi) for t in np.arange(lo, hi + EPS, CANDIDATE_STEP_C)] + [on_grid(hi, lo, hi)]
        return np.array(sorted(set(grid)), dtype=float)

    def expected_variance(self, temps: np.ndarray) -> np.ndarray:
        """Return the expected posterior variance of pain60 after one rating at each of `temps` (°C²)."""
        a, k, sd = self._sample(N_PARTICLES)
        mu = _curve(a[None, :], k[None, :], temps[:, None])                    # C x K
        z = (BIN_EDGES[None, None, :] - mu[:, :, None]) / sd[None, :, None]    # C x K x (B+1)
        cdf = ndtr(z)
        p = np.diff(cdf, axis=2) * (1.0 - LAPSE) + LAPSE * np.diff(np.clip(BIN_EDGES, 0, 100)) / 100.0
        m = p.sum(axis=1)                                                      # C x B (times K)
        s1 = np.einsum("ckb,k->cb", p, a)
        s2 = np.einsum("ckb,k->cb", p, a * a)
        ev = (s2 - s1 * s1 / np.maximum(m, 1e-300)).sum(axis=1) / a.size
        self._sample_var = float(a.var())
        self._too_hot = (mu > COMFORT_MAX).mean(axis=1) > 0.5
        return np.asarray(ev)

    def _next_series(self) -> float | None:
        cfg = self.cfg
        if not self.points:
            return self.snap(cfg.start_c)
        if self._not_reached():
            return None
        lo, med, hi = self.quantiles()
        if self._ci_after_verification(lo, hi) <= cfg.ci_halfwidth_c + EPS or self.n_series >= cfg.max_stimuli:
            self._choose_candidate(med)
            return None
        cands = self._candidates()
        if cands.size == 1:
            return float(cands[0])
        ev = self.expected_variance(cands)
        if not self._too_hot.all():
            ev = np.where(self._too_hot, np.inf, ev)
        else:  # every allowed temperature is probably rated above COMFORT_MAX: the coolest one
            ev = np.where(np.arange(ev.size) == 0, ev, np.inf)
        best = float(ev.min())
        near = np.flatnonzero(ev <= best + NEAR_BEST * max(0.0, self._sample_var - best) + EPS)
        last = self.points[-1][0]
        fresh = [i for i in near if abs(cands[i] - last) > EPS] or list(near)
        return float(cands[int(self.rng.choice(fresh))])

    def _ci_after_verification(self, lo: float, hi: float) -> float:
        """Return the predicted 95 % CI half-width of pain60 after `verify_n` ratings at the median."""
        half = (hi - lo) / 2
        w = self.weights()
        slope = float((w.sum(axis=(0, 2)) * SLOPES).sum())
        sd = float((w.sum(axis=(0, 1)) * NOISE_SDS).sum())
        var_now = (half / 1.96) ** 2
        info = self.cfg.verify_n * (slope / sd) ** 2
        return 1.96 * math.sqrt(1.0 / (1.0 / max(var_now, 1e-12) + info))

    def _not_reached(self) -> bool:
        c = self.cfg
        if self.prob_rating_below(self.cap_c, c.target_rating - c.tolerance) >= SURE:
            self._finish("not_reached", f"rating {c.target_rating:.0f} ± {c.tolerance:.0f} is not reached at the cap "
                         f"{self.cap_c:.1f} °C (hottest stimulus {max(t for t, _ in self.points):.1f} °C)")
            return True
        if 1.0 - self.prob_rating_below(c.floor_c, c.target_rating + c.tolerance) >= SURE:
            self._finish("not_reached", f"already at the floor {c.floor_c:.1f} °C the rating is above "
                         f"{c.target_rating:.0f} ± {c.tolerance:.0f} (coolest stimulus {min(t for t, _ in self.points):.1f} °C)")
            return True
        return False

    def _choose_candidate(self, median_c: float) -> None:
        cand = self.snap(median_c)
        if cand is None:
            self._finish("failed", "no allowed temperature near the estimated Pain-60")
            return
        self.candidate_c = cand

    # ------------------------------------------------------------------ verification
    def _after_verification(self, v: Verification) -> float | None:
        _, med, _ = self.quantiles()
        return self.snap(med)

    def _accept_c(self) -> float:
        step = CANDIDATE_STEP_C if self.targets is None else 0.0
        return max(self.cfg.ci_halfwidth_c / 2, step)

    def _best_verified(self, passed: list[Verification]) -> Verification:
        _, med, _ = self.quantiles()
        return min(passed, key=lambda x: abs(x.temp_c - med))

    def _posterior_summary(self) -> dict[str, Any]:
        lo, med, hi = self.quantiles()
        mean, sd = self._mean_sd()
        w = self.weights()
        return {"pain60_mean_c": round(mean, 3), "pain60_median_c": round(med, 3), "pain60_sd_c": round(sd, 3),
                "pain60_ci95_c": [round(lo, 3), round(hi, 3)],
                "slope_per_c_mean": round(float((w.sum(axis=(0, 2)) * SLOPES).sum()), 3),
                "noise_sd_mean": round(float((w.sum(axis=(0, 1)) * NOISE_SDS).sum()), 3),
                "n_ratings": len(self.points)}
