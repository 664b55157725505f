"""A simulated participant with explicit ground truth, so tests know the right answer.

Heat pain follows a logistic psychometric function whose 60-point is `pain60_c`; pressure pain a
logistic in kPa rated 10 at `ppt_kpa`. After the conditioning stimulus, test-stimulus pain is reduced
by the fraction `cpm_effect` (negative = facilitation). Ratings have Gaussian noise `noise_sd`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from cpm_session.ui.base import Choice, RatingPrompt


@dataclass(frozen=True)
class ParticipantTruth:
    """The simulated participant's true parameters."""

    pain60_c: float = 45.0
    slope_c: float = 1.2            # logistic scale of heat pain, °C
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

    def expected_heat(self, temp_c: float) -> float:
        """Return the mean rating of a heat stimulus at `temp_c` before conditioning."""
        t50 = self.pain60_c - self.slope_c * math.log(1.5)
        return 100.0 / (1.0 + math.exp(-(temp_c - t50) / self.slope_c))

    def expected_pressure(self, kpa: float) -> float:
        """Return the mean rating of a pressure of `kpa` before conditioning."""
        p50 = self.ppt_kpa + self.pressure_scale_kpa * math.log(9.0)
        return 100.0 / (1.0 + math.exp(-(kpa - p50) / self.pressure_scale_kpa))


@dataclass
class SimParticipant:
    """Answers rating prompts from the truth, the current stimulus and whether they are conditioned."""

    truth: ParticipantTruth
    rng: np.random.Generator
    conditioned: bool = False
    stimulus: tuple[str, float] | None = None  # (modality, intensity) of the stimulus to rate
    log: list[dict[str, float]] = field(default_factory=list)

    def _noisy(self, mean: float) -> float:
        return float(np.clip(round(mean + self.rng.normal(0, self.truth.noise_sd), 1), 0.0, 100.0))

    def respond(self, prompt: RatingPrompt) -> tuple[float | None, float]:
        """Return (rating or None, response time in session seconds) for `prompt`."""
        rt = float(max(0.6, self.rng.normal(self.truth.rt_mean_s, 0.6)))
        if self.truth.miss_prob and self.rng.random() < self.truth.miss_prob:
            return None, prompt.timeout_s
        if prompt.kind == "hand":
            return self._noisy(self.truth.cs_rating), rt
        if self.stimulus is None:
            return self._noisy(0.0), rt
        modality, intensity = self.stimulus
        mean = self.truth.expected_heat(intensity) if modality == "thermal" else self.truth.expected_pressure(intensity)
        if self.conditioned:
            mean *= 1.0 - self.truth.cpm_effect
        value = self._noisy(min(100.0, mean))
        self.log.append({"intensity": intensity, "mean": mean, "rating": value})
        return value, rt

    def ppt_stop_kpa(self) -> float:
        """Return the pressure at which the participant says stop on this trial."""
        return float(max(10.0, self.truth.ppt_kpa * (1.0 + self.rng.normal(0, self.truth.ppt_cv))))

    def choose(self, choice: Choice) -> int | None:
        """Answer a questionnaire item: higher options more likely with higher severity."""
        n = len(choice.options)
        mean = self.truth.severity * (n - 1)
        return int(np.clip(round(mean + self.rng.normal(0, 0.8)), 0, n - 1))
