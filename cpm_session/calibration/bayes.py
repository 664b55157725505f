"""Adaptive Bayesian Pain-60 calibration: a grid posterior over the participant's rating curve.

Model of one rating y of a heat stimulus at T °C (0-100 scale):
    mu(T) = 100 / (1 + exp(-(T - t50) / s)),  s = 24 / slope,  t50 = pain60 - s ln 1.5
so mu(pain60) = 60 and d mu / dT = `slope` rating points per °C there;
    y = clip(mu + drift x n + e, 0, 100),  e ~ Normal(0, sd)  with probability 1 - LAPSE, else uniform on 0-100,
where n is the number of heat stimuli before this one and `drift` (rating points per stimulus) is
habituation (< 0) or sensitization (> 0).
A rating at the ends of the scale is censored (0: P(mu + e <= 0.5); 100: P(mu + e >= 99.5)).
The posterior is held on a grid pain60 x slope x sd x drift (numpy, log space; ~117 000 points, a few
milliseconds per rating). The quantity estimated is the Pain-60 the participant has NOW (at the stimulus
count when the TS will be used: after the verification stimuli), i.e. habituation during the
calibration is followed rather than averaged.

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
SLOPES = np.geomspace(2.5, 45.0, 12)
"""Rating points per °C at Pain-60 (log-spaced; prior uniform in log slope)."""
NOISE_SDS = np.geomspace(2.0, 30.0, 7)
"""Rating noise SD, points (log-spaced; prior uniform in log SD)."""
DRIFTS = np.array([-1.0, -0.5, 0.0, 0.5])
"""Rating change per previous heat stimulus, points (habituation < 0 < sensitization)."""
DRIFT_PRIOR = np.array([0.1, 0.3, 0.45, 0.15])
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
        shape = (self.p60.size, SLOPES.size, NOISE_SDS.size, DRIFTS.size)
        self.logpost = np.broadcast_to(np.log(DRIFT_PRIOR)[None, None, None, :], shape).copy()
        self._curves: dict[float, np.ndarray] = {}
        self._w: np.ndarray | None = None
        self._w_akd: np.ndarray | None = None
        self._cdf: np.ndarray | None = None
        self.n_series = 0
        self._sample_var = 0.0
        self._too_hot = np.zeros(0, dtype=bool)

    # ------------------------------------------------------------------ model
    def _curve_at(self, temp_c: float) -> np.ndarray:
        """Return mu(T) without drift on the pain60 x slope grid (cached per temperature)."""
        key = round(temp_c, 3)
        c = self._curves.get(key)
        if c is None:
            c = self._curves[key] = _curve(self.p60[:, None], SLOPES[None, :], temp_c)
        return c

    def _mu(self, temp_c: float, n_previous: int) -> np.ndarray:
        """Return the mean rating at `temp_c` after `n_previous` stimuli on the pain60 x slope x drift grid."""
        return np.clip(self._curve_at(temp_c)[:, :, None] + DRIFTS[None, None, :] * n_previous, 0.0, 100.0)

    def p60_now(self, n_previous: int) -> np.ndarray:
        """Return, on the pain60 x slope x drift grid, the temperature rated 60 after `n_previous` stimuli."""
        y = np.clip(self.cfg.target_rating - DRIFTS * n_previous, 0.5, 99.5)[None, None, :]
        s = (24.0 / SLOPES)[None, :, None]
        return np.asarray(self.p60[:, None, None] + s * (np.log(y / (100.0 - y)) - math.log(1.5)))

    def _n_target(self) -> int:
        """Return the stimulus count at which the TS will be used: after this calibration's verification."""
        pending = self.cfg.verify_n if self.stage == "series" else 0
        return len(self.stimuli) + pending

    # ------------------------------------------------------------------ posterior
    def _observe(self, temp_c: float, rating: float, stage: Stage) -> None:
        if stage == "series":
            self.n_series += 1
        mu = self._mu(temp_c, len(self.stimuli) - 1)[:, :, None, :]
        sd = NOISE_SDS[None, None, :, None]
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
        self._w = self._w_akd = self._cdf = None

    def weights(self) -> np.ndarray:
        """Return the normalised posterior on the grid (pain60 x slope x sd x drift)."""
        if self._w is None:
            w = np.exp(self.logpost)
            self._w = w / w.sum()
        return self._w

    def weights_akd(self) -> np.ndarray:
        """Return the posterior marginalised over the rating noise (pain60 x slope x drift)."""
        if self._w_akd is None:
            self._w_akd = self.weights().sum(axis=2)
        return self._w_akd

    def quantiles(self, qs: tuple[float, ...] = (0.025, 0.5, 0.975), n_previous: int | None = None) -> list[float]:
        """Return posterior quantiles of the Pain-60 after `n_previous` stimuli (default: when the TS is used), °C."""
        n = self._n_target() if n_previous is None else n_previous
        w = self.weights_akd().ravel()
        v = self.p60_now(n).ravel()
        order = np.argsort(v, kind="stable")
        v, w = v[order], w[order]
        cdf = np.cumsum(w)
        return [float(np.interp(q, cdf - w / 2, v)) for q in qs]

    def _mean_sd(self, n_previous: int) -> tuple[float, float]:
        w = self.weights_akd()
        v = self.p60_now(n_previous)
        mean = float((w * v).sum())
        return mean, float(math.sqrt(max(0.0, (w * (v - mean) ** 2).sum())))

    def _sample(self, n: int) -> tuple[np.ndarray, ...]:
        if self._cdf is None:
            self._cdf = np.cumsum(self.weights().ravel())
        idx = np.minimum(np.searchsorted(self._cdf, self.rng.random(n) * self._cdf[-1]), self._cdf.size - 1)
        i, j, k, d = np.unravel_index(idx, self.logpost.shape)
        return self.p60[i], SLOPES[j], NOISE_SDS[k], DRIFTS[d]

    def prob_rating_below(self, temp_c: float, level: float) -> float:
        """Return the posterior probability that the mean rating at `temp_c` (now) is below `level`."""
        mu = self._mu(temp_c, len(self.stimuli))
        w = self.weights_akd()
        return float(w[mu < level].sum())

    def _means(self) -> tuple[float, float, float]:
        w = self.weights()
        return (float((w.sum(axis=(0, 2, 3)) * SLOPES).sum()), float((w.sum(axis=(0, 1, 3)) * NOISE_SDS).sum()),
                float((w.sum(axis=(0, 1, 2)) * DRIFTS).sum()))

    # ------------------------------------------------------------------ design
    def _candidates(self) -> np.ndarray:
        allowed = self.allowed()
        if allowed is not None:
            return np.array(allowed, dtype=float)
        lo, hi = self.cfg.floor_c, self.ceiling_c()
        grid = [on_grid(float(t), lo, hi) for t in np.arange(lo, hi + EPS, CANDIDATE_STEP_C)] + [on_grid(hi, lo, hi)]
        return np.array(sorted(set(grid)), dtype=float)

    def expected_variance(self, temps: np.ndarray) -> np.ndarray:
        """Return the expected posterior variance of the Pain-60 (when the TS is used) after one rating at each
        of `temps` delivered next (°C²)."""
        a, k, sd, d = self._sample(N_PARTICLES)
        n_now = len(self.stimuli)
        s = 24.0 / k
        y = np.clip(self.cfg.target_rating - d * self._n_target(), 0.5, 99.5)
        v = a + s * (np.log(y / (100.0 - y)) - math.log(1.5))                  # target quantity per particle
        mu = np.clip(_curve(a[None, :], k[None, :], temps[:, None]) + d[None, :] * n_now, 0.0, 100.0)  # C x K
        z = (BIN_EDGES[None, None, :] - mu[:, :, None]) / sd[None, :, None]    # C x K x (B+1)
        cdf = ndtr(z)
        p = np.diff(cdf, axis=2) * (1.0 - LAPSE) + LAPSE * np.diff(np.clip(BIN_EDGES, 0, 100)) / 100.0
        m = p.sum(axis=1)                                                      # C x B (times K)
        s1 = np.einsum("ckb,k->cb", p, v)
        s2 = np.einsum("ckb,k->cb", p, v * v)
        ev = (s2 - s1 * s1 / np.maximum(m, 1e-300)).sum(axis=1) / v.size
        self._sample_var = float(v.var())
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
        """Return the predicted 95 % CI half-width of the Pain-60 after `verify_n` ratings at the median."""
        half = (hi - lo) / 2
        var_now = max((half / 1.96) ** 2, 1e-12)
        w_ks = self.weights().sum(axis=(0, 3))                                  # slope x sd
        info = self.cfg.verify_n * (SLOPES[:, None] / NOISE_SDS[None, :]) ** 2  # per rating near Pain-60
        var_after = float((w_ks / (1.0 / var_now + info)).sum())  # averaged over the posterior: no plug-in optimism
        return 1.96 * math.sqrt(var_after)

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
        _, med, _ = self.quantiles(n_previous=len(self.stimuli))
        return self.snap(med)

    def _accept_c(self) -> float:
        step = CANDIDATE_STEP_C / 2 if self.targets is None else 0.0
        return max(self.cfg.ci_halfwidth_c / 2, step)

    def _best_verified(self, passed: list[Verification]) -> Verification:
        _, med, _ = self.quantiles(n_previous=len(self.stimuli))
        return min(passed, key=lambda x: abs(x.temp_c - med))

    def _posterior_summary(self) -> dict[str, Any]:
        n = len(self.stimuli)
        lo, med, hi = self.quantiles(n_previous=n)
        mean, sd = self._mean_sd(n)
        slope, noise, drift = self._means()
        _, med0, _ = self.quantiles(n_previous=0)
        return {"pain60_mean_c": round(mean, 3), "pain60_median_c": round(med, 3), "pain60_sd_c": round(sd, 3),
                "pain60_ci95_c": [round(lo, 3), round(hi, 3)], "pain60_at_first_stimulus_median_c": round(med0, 3),
                "slope_per_c_mean": round(slope, 3), "noise_sd_mean": round(noise, 3),
                "drift_per_stimulus_mean": round(drift, 3), "n_ratings": len(self.points)}
