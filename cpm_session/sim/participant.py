"""A simulated participant with explicit ground truth, so tests know the right answer.

Heat pain follows a logistic psychometric function whose 60-point is `pain60_c` and whose steepness
at that point is `slope_per_c` rating points per °C; below an optional heat-pain threshold
`threshold_c` every heat stimulus is rated 0. Repeated heat stimuli change the mean rating by
`habituation_pts` points each (negative = habituation, positive = sensitization), saturating at
`habituation_max_pts`. Pressure pain is a logistic in kPa rated 10 at `ppt_kpa`. After the
conditioning stimulus, test-stimulus pain is reduced by the fraction `cpm_effect` (negative =
facilitation). Ratings have Gaussian noise `noise_sd`, clipped to the 0-100 scale.

The participant rates the stimulus it is told was DELIVERED: the session (or a simulated device) sets
`stimulus = ("thermal", plateau_c)` or calls `feel_delivered(plateau_c)` before asking for a rating.
Questionnaire items are answered by the values the options score (`questionnaires.simulate_value`),
never by their position on screen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cpm_session.ui.base import Choice, RatingPrompt

LOGISTIC_SLOPE_AT_60 = 24.0
"""d(rating)/dT at the 60-point of a 0-100 logistic with scale s °C is 100 x 0.6 x 0.4 / s = 24 / s."""


@dataclass(frozen=True)
class ParticipantTruth:
    """The simulated participant's true parameters."""

    pain60_c: float = 45.0
    slope_per_c: float = 20.0       # steepness of the heat-pain curve at Pain-60, rating points per °C
    noise_sd: float = 4.0           # rating noise, points on 0-100
    cpm_effect: float = 0.30        # TS_post = TS_pre * (1 - cpm_effect) in expectation
    cs_rating: float = 65.0         # hand pain in the water at 30 s
    ppt_kpa: float = 300.0          # true pressure pain threshold
    ppt_cv: float = 0.06            # trial-to-trial variation of the PPT
    pressure_scale_kpa: float = 40.0
    withdrawal_s: float | None = None  # pulls the hand out of the water at this time (None = stays)
    rt_mean_s: float = 2.5
    miss_prob: float = 0.0          # probability of not answering a rating in time
    severity: float = 0.5           # questionnaire severity 0..1
    threshold_c: float | None = None  # heat-pain threshold: heat below it is rated 0 (None: the logistic alone)
    habituation_pts: float = 0.0    # mean heat rating change per previous heat stimulus, points (<0 habituation)
    habituation_max_pts: float = 10.0  # the accumulated change saturates at this magnitude, points
    slope_c: float | None = None    # old parameter: logistic scale in °C; when set, slope_per_c = 24 / slope_c

    def __post_init__(self) -> None:
        for name in ("pain60_c", "slope_per_c", "noise_sd", "habituation_pts", "habituation_max_pts"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v)):
                raise ValueError(f"ParticipantTruth.{name}: expected a finite number, found {v!r}")
        if self.slope_per_c <= 0 or (self.slope_c is not None and not self.slope_c > 0):
            raise ValueError(f"ParticipantTruth: slope must be > 0 (slope_per_c {self.slope_per_c}, slope_c {self.slope_c})")
        if self.noise_sd < 0 or self.habituation_max_pts < 0:
            raise ValueError("ParticipantTruth: noise_sd and habituation_max_pts must be >= 0")

    @property
    def heat_slope_per_c(self) -> float:
        """Return the steepness of the heat-pain curve at Pain-60, rating points per °C."""
        return LOGISTIC_SLOPE_AT_60 / self.slope_c if self.slope_c else self.slope_per_c

    def habituation(self, n_previous: int) -> float:
        """Return the change of the mean heat rating after `n_previous` heat stimuli, points."""
        return float(np.clip(self.habituation_pts * n_previous, -self.habituation_max_pts, self.habituation_max_pts))

    def expected_heat(self, temp_c: float, n_previous: int = 0) -> float:
        """Return the mean rating of a heat stimulus at `temp_c` before conditioning, after `n_previous` heat stimuli."""
        if self.threshold_c is not None and temp_c < self.threshold_c:
            return 0.0
        scale = LOGISTIC_SLOPE_AT_60 / self.heat_slope_per_c
        t50 = self.pain60_c - scale * math.log(1.5)
        z = -(temp_c - t50) / scale
        base = 0.0 if z > 700 else 100.0 / (1.0 + math.exp(z))
        return float(np.clip(base + self.habituation(n_previous), 0.0, 100.0))

    def pain60_after(self, n_previous: int = 0) -> float:
        """Return the temperature rated 60 on average after `n_previous` heat stimuli (habituation moves it), °C."""
        lo, hi = self.pain60_c - 30.0, self.pain60_c + 30.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.expected_heat(mid, n_previous) < 60.0 else (lo, mid)
        return round((lo + hi) / 2, 4)

    def expected_pressure(self, kpa: float) -> float:
        """Return the mean rating of a pressure of `kpa` before conditioning."""
        p50 = self.ppt_kpa + self.pressure_scale_kpa * math.log(9.0)
        return 100.0 / (1.0 + math.exp(-(kpa - p50) / self.pressure_scale_kpa))


@dataclass
class SimParticipant:
    """Answers rating prompts from the truth, the delivered stimulus and whether they are conditioned."""

    truth: ParticipantTruth
    rng: np.random.Generator
    conditioned: bool = False
    stimulus: tuple[str, float] | None = None  # (modality, delivered intensity) of the stimulus to rate
    log: list[dict[str, float]] = field(default_factory=list)
    heat_delivered: int = 0  # heat stimuli felt so far (counted when `stimulus` is set to a thermal one)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "stimulus" and value is not None and value[0] == "thermal":
            object.__setattr__(self, "heat_delivered", getattr(self, "heat_delivered", 0) + 1)
        object.__setattr__(self, name, value)

    def feel_delivered(self, plateau_c: float) -> None:
        """Feel a heat stimulus whose plateau the thermode DELIVERED at `plateau_c` °C (rated at the next prompt)."""
        self.stimulus = ("thermal", float(plateau_c))

    def _noisy(self, mean: float) -> float:
        return float(np.clip(round(mean + self.rng.normal(0, self.truth.noise_sd), 1), 0.0, 100.0))

    def rate_stimulus(self) -> float | None:
        """Return the rating of the current stimulus (None: missed), without a prompt (benchmarks, tests)."""
        if self.truth.miss_prob and self.rng.random() < self.truth.miss_prob:
            return None
        if self.stimulus is None:
            return self._noisy(0.0)
        modality, intensity = self.stimulus
        if modality == "thermal":
            mean = self.truth.expected_heat(intensity, max(0, self.heat_delivered - 1))
        else:
            mean = self.truth.expected_pressure(intensity)
        if self.conditioned:
            mean *= 1.0 - self.truth.cpm_effect
        value = self._noisy(min(100.0, mean))
        self.log.append({"intensity": intensity, "mean": mean, "rating": value})
        return value

    def respond(self, prompt: RatingPrompt) -> tuple[float | None, float]:
        """Return (rating or None, response time in session seconds) for `prompt`."""
        rt = float(max(0.6, self.rng.normal(self.truth.rt_mean_s, 0.6)))
        if prompt.kind == "hand":
            if self.truth.miss_prob and self.rng.random() < self.truth.miss_prob:
                return None, prompt.timeout_s
            return self._noisy(self.truth.cs_rating), rt
        value = self.rate_stimulus()
        return (value, rt) if value is not None else (None, prompt.timeout_s)

    def ppt_stop_kpa(self) -> float:
        """Return the pressure at which the participant says stop on this trial."""
        return float(max(10.0, self.truth.ppt_kpa * (1.0 + self.rng.normal(0, self.truth.ppt_cv))))

    def choose(self, choice: Choice) -> int | None:
        """Answer a multiple-choice prompt.

        A questionnaire item (a `Choice` whose `values` carry each option's score) is answered
        by value with `questionnaires.simulate_value` at the truth's severity, whatever the order of the
        options on screen. Any other choice: later options more likely with higher severity."""
        values = getattr(choice, "values", ())
        if values and len(values) == len(choice.options):
            from cpm_session.config.questionnaires import simulate_value

            picked = simulate_value(tuple(values), self.rng, float(np.clip(self.truth.severity, 0.0, 1.0)))
            return list(values).index(picked)
        n = len(choice.options)
        mean = self.truth.severity * (n - 1)
        return int(np.clip(round(mean + self.rng.normal(0, 0.8)), 0, n - 1))
