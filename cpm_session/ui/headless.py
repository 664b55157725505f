"""A participant 'screen' with no window: for tests, benchmarks and unattended simulation.

Ratings come from a responder (the simulated participant); staff keys can be scripted at session
times with `press(key, at_t)`, so every staff path is testable on a virtual clock.
"""

from __future__ import annotations

from typing import Any

from cpm_session.clock import Clock
from cpm_session.errors import SessionError
from cpm_session.ui.base import (
    Choice,
    ContinuousSample,
    ParticipantUI,
    RatingPrompt,
    RatingResult,
    Responder,
    continuous_source,
)

RATING_POLL_S = 0.1
"""Session seconds between key checks while a headless rating is pending."""


class HeadlessUI(ParticipantUI):
    """Records what would be shown; answers through responders; delivers scripted keys."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.shown: list[tuple[float, str, str]] = []
        self.status: dict[str, Any] = {}
        self.texts: list[str] = []  # answers for ask_text, consumed in order
        self._pending_keys: list[tuple[float, str]] = []
        self.opened = False
        self._continuous: _Continuous | None = None

    def open(self) -> None:
        self.opened = True

    def close(self) -> None:
        self.opened = False

    def show(self, screen: str, text: str, countdown_to: float | None = None) -> None:
        if not self.shown or self.shown[-1][1] != screen:
            self.shown.append((self.clock.now(), screen, text))

    def tick(self) -> None:
        if self._continuous is not None:
            self._continuous.sample(self.clock.now())
        self.deliver_pending_keys(self.clock.now())

    def rate(self, prompt: RatingPrompt) -> RatingResult:
        self.show("rating", prompt.question)
        t0 = self.clock.now()
        value, rt = self.responder(prompt) if self.responder else (None, prompt.timeout_s)
        if value is None or rt >= prompt.timeout_s:
            value, rt = None, prompt.timeout_s
        end = t0 + rt
        while self.clock.now() < end - 1e-9:
            self.tick()
            step = end - self.clock.now()
            nk = self.next_key_t()
            if nk is not None and nk > self.clock.now():
                step = min(step, nk - self.clock.now())
            self.clock.sleep(min(step, RATING_POLL_S) if nk is not None else step)
        self.tick()
        trace = [(t0, value)] if value is not None else []
        return RatingResult(value, rt if value is not None else None, trace, self.prompt_geometry(prompt))

    def prompt_geometry(self, prompt: RatingPrompt) -> dict[str, Any]:
        return {"slider_px": None, "confirm_px": None, "window_px": None}

    def choose(self, choice: Choice) -> int | None:
        self.show("question", choice.question)
        self.clock.sleep(1.0)
        self.tick()
        return self.chooser(choice) if self.chooser and not choice.for_staff else None

    def start_continuous(self, prompt: RatingPrompt, stimulus_id: str, onset_t: float) -> None:
        """Sample the responder at every tick() from now on (see _Continuous) until stop_continuous()."""
        if self._continuous is not None:
            raise SessionError(f"a continuous rating (stimulus {self._continuous.stimulus_id}) is still running: "
                               f"stop it before starting one for stimulus {stimulus_id}")
        self.show(f"continuous_{prompt.kind}", prompt.question)
        self._continuous = _Continuous(prompt, stimulus_id, float(onset_t), self.responder)

    def stop_continuous(self) -> list[ContinuousSample]:
        running, self._continuous = self._continuous, None
        return [] if running is None else running.samples

    def set_status(self, status: dict[str, Any]) -> None:
        self.status = dict(status)

    def ask_text(self, title: str) -> str | None:
        return self.texts.pop(0) if self.texts else None


class _Continuous:
    """A headless continuous rating: one sample per tick of the simulated participant's `continuous(t)`,
    or of its prompt answer held (the scale minimum when there is no participant or no answer)."""

    def __init__(self, prompt: RatingPrompt, stimulus_id: str, onset_t: float, responder: Responder | None) -> None:
        self.stimulus_id = stimulus_id
        self.onset_t = onset_t
        self.lo, self.hi = float(prompt.scale_min), float(prompt.scale_max)
        self.follow = continuous_source(responder)
        self.hold = self.lo
        if self.follow is None and responder is not None:
            answer, _ = responder(prompt)
            if answer is not None:
                self.hold = min(self.hi, max(self.lo, float(answer)))
        self.samples: list[ContinuousSample] = []

    def sample(self, now: float) -> None:
        t = now - self.onset_t
        if self.samples and self.samples[-1][0] >= t:
            return  # ticks without time passing between them: one sample per instant
        value = self.hold if self.follow is None else min(self.hi, max(self.lo, float(self.follow(t))))
        self.samples.append((t, value))
