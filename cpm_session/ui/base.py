"""The interface between the session engine and whatever shows the participant screen.

The engine owns time and logic; a UI only draws, collects ratings and reports key presses.
`HeadlessUI` (no window, for tests and benchmarks) and `PsychoPyUI` (the real window) implement it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

STAFF_KEYS = ("space", "s", "p", "w", "escape", "n", "h")
"""space: confirm staff step; s: skip acclimatization; p: pause/resume; w: early withdrawal;
escape: emergency stop; n: note / adverse event; h: help overlay."""

KeyHandler = Callable[[str], None]
"""Called by the UI for every staff key, from inside tick() and rate() (so Escape works everywhere).
It may raise (e.g. EmergencyStop) to unwind the engine; the UI must let that propagate."""

Responder = Callable[["RatingPrompt"], "tuple[float | None, float]"]
"""Something that answers rating prompts instead of a person at the screen (the simulated participant):
return (rating or None for no answer, response time in session s)."""

Chooser = Callable[["Choice"], "int | None"]
"""Something that answers multiple-choice questions instead of a person (index, or None = no answer)."""

ContinuousSample = tuple[float, float]
"""One frame of a continuous rating: (t from the stimulus onset in session s, slider value)."""


def continuous_source(responder: Responder | None) -> Callable[[float], float] | None:
    """Return the simulated participant's `continuous(t_from_onset) -> value` behind `responder` (the
    responder itself, or the object a bound-method responder belongs to), or None if it has none."""
    for owner in (responder, getattr(responder, "__self__", None)):
        fn = getattr(owner, "continuous", None)
        if callable(fn):
            return fn  # type: ignore[no-any-return]
    return None


@dataclass(frozen=True)
class RatingPrompt:
    """One rating request: texts come from the protocol file."""

    phase: str
    trial: int
    question: str
    anchor_low: str
    anchor_high: str
    confirm: str
    timeout_s: float
    scale_min: float = 0.0
    scale_max: float = 100.0
    kind: str = "heat"  # heat | pressure | hand


@dataclass
class RatingResult:
    """What the participant answered. `value` None means missing (time-out)."""

    value: float | None
    rt_s: float | None
    trace: list[tuple[float, float]] = field(default_factory=list)
    """(session t, marker position) for every frame on which the marker was held or moved (flip times in
    a window)."""
    geometry: dict[str, Any] = field(default_factory=dict)  # slider_px, confirm_px, window_px
    chosen_t: float | None = None
    """Session time at which the UI received the input that chose `value` (the mouse release; for a
    responder, the moment it placed the marker). None when nothing was chosen."""
    chosen_flip_t: float | None = None
    """Session time of the flip of the first frame that showed the chosen value (None if the prompt ended
    before such a frame, or without a window). chosen_flip_t - chosen_t = input -> screen latency."""


@dataclass(frozen=True)
class Choice:
    """A multiple-choice question (questionnaires, staff decisions)."""

    question: str
    options: list[str]
    timeout_s: float | None = None
    for_staff: bool = False
    """A question to the research staff (never answered by a simulated participant's `chooser`)."""
    values: tuple[float, ...] = ()
    """The value each option scores (questionnaire items), in presentation order; empty when not scored."""


class ParticipantUI(ABC):
    """What the engine needs from a participant screen."""

    key_handler: KeyHandler | None = None
    frame_s: float = 1 / 60  # wall seconds per frame (used to pace waits)
    responder: Responder | None = None
    """Set by whoever puts a simulated participant at the screen; None = a person answers."""
    chooser: Chooser | None = None
    """As `responder`, for multiple-choice questions."""
    _pending_keys: list[tuple[float, str]]

    # ------------------------------------------------------------------ keys pressed by software
    def press(self, key: str, at_t: float) -> None:
        """Queue a staff key press at session time `at_t` (a scripted test, or a simulated staff member);
        it reaches `key_handler` from inside the frame loop exactly like a key on the keyboard."""
        if not hasattr(self, "_pending_keys"):
            self._pending_keys = []
        self._pending_keys.append((at_t, key))
        self._pending_keys.sort()

    def next_key_t(self) -> float | None:
        """Return when the next queued key is due (waits shorten themselves to it), or None."""
        pending = getattr(self, "_pending_keys", None)
        return pending[0][0] if pending else None

    def deliver_pending_keys(self, now: float) -> None:
        """Deliver every queued key due at or before session time `now` to `key_handler`."""
        pending = getattr(self, "_pending_keys", None)
        while pending and pending[0][0] <= now + 1e-9:
            _, key = pending.pop(0)
            if self.key_handler:
                self.key_handler(key)

    @abstractmethod
    def open(self) -> None:
        """Open the window (no-op when headless)."""

    @abstractmethod
    def close(self) -> None:
        """Close the window. Never raises."""

    @abstractmethod
    def show(self, screen: str, text: str, countdown_to: float | None = None) -> None:
        """Make `text` the current screen (named `screen`, e.g. 'welcome', 'fixation');
        with `countdown_to` (session time) show a countdown to that moment. Drawn on the next tick."""

    @abstractmethod
    def tick(self) -> None:
        """Draw one frame and deliver pending staff keys to `key_handler`."""

    @abstractmethod
    def rate(self, prompt: RatingPrompt) -> RatingResult:
        """Show the slider until confirmed or `prompt.timeout_s` passes; keys keep flowing to `key_handler`.
        With a `responder` attached (simulated participant) the UI places the marker itself after the
        response time."""

    @abstractmethod
    def choose(self, choice: Choice) -> int | None:
        """Show a multiple-choice question; return the chosen option's index, or None on time-out
        (answered by `chooser` when one is attached)."""

    @abstractmethod
    def start_continuous(self, prompt: RatingPrompt, stimulus_id: str, onset_t: float) -> None:
        """Start a continuous (CoVAS-style) rating of stimulus `stimulus_id`, whose onset was at session
        time `onset_t`: the slider is live (marker at `prompt.scale_min`, no confirm button) and every
        tick() samples it once, until stop_continuous(). Mouse (press / drag) and the left / right
        arrows move it; staff keys keep working. With a `responder` attached the simulated participant
        moves it (its `continuous(t_from_onset)` if it has one, else its prompt answer held)."""

    @abstractmethod
    def stop_continuous(self) -> list[ContinuousSample]:
        """Stop the continuous rating; return one sample per frame (per tick when headless): (frame time
        - onset_t in session s, value). [] when none was running."""

    def prompt_geometry(self, prompt: RatingPrompt) -> dict[str, Any]:
        """Return where the rating prompt will be drawn, before it is shown: {"slider_px": [l, t, r, b],
        "confirm_px": [l, t, r, b], "window_px": [w, h]} in window pixels, origin top-left; slider_px is
        the scale line itself (left end = scale_min, right end = scale_max). The engine logs it in a
        `rating_prompt` event BEFORE calling rate(), so an audit or a test knows where to click."""
        return {}

    def set_status(self, status: dict[str, Any]) -> None:
        """Update the staff status view (phase, next action, temperatures, warnings). Optional."""
        return None

    def ask_text(self, title: str) -> str | None:
        """Ask the staff for a line of free text (note / adverse event). None if not possible."""
        return None

    def screenshot(self, path: str) -> None:
        """Save what the participant sees now as a PNG (no-op when headless)."""
        return None
