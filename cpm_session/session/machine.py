"""The visit's state machine, declared once: states, and the transitions a trigger may cause.

Callers never say where to go: `Machine.go(trigger)` looks the transition up and raises for an
undeclared one. Pause is a state of its own: `ts_pre --pause--> paused --resume--> ts_pre`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cpm_session.errors import SessionError

PHASES: tuple[str, ...] = ("welcome", "acclimatization", "calibration", "ts_pre", "cold_pressor", "ts_post",
                           "control", "questionnaires", "done")
"""The phases of a visit, in order (`control` only when the protocol enables the control immersion)."""

END_STATES = ("completed", "aborted", "fault")
PREVIOUS = "<previous>"
"""Target of `resume`: the phase that was paused."""

RESTART_FROM = {"ts_pre": "ts_pre", "cold_pressor": "ts_pre", "ts_post": "ts_pre"}
"""A CPM block interrupted anywhere restarts at TS_pre: the cold pressor is never resumed mid-immersion."""

_RUNNING = (*PHASES, "paused")
TRANSITIONS: dict[tuple[str, str], str] = {
    ("init", "start"): "welcome",
    **{("init", f"restart:{p}"): p for p in PHASES},
    **{(a, "next"): b for a, b in zip(PHASES, PHASES[1:], strict=False)},
    ("acclimatization", "skip"): "calibration",
    ("ts_post", "no_control"): "questionnaires",
    ("done", "finish"): "completed",
    **{(p, "pause"): "paused" for p in PHASES[:-1]},
    ("paused", "resume"): PREVIOUS,
    **{(p, "abort"): "aborted" for p in ("init", *_RUNNING)},
    **{(p, "fault"): "fault" for p in ("init", *_RUNNING)},
}
"""(state, trigger) -> next state. Nothing else may change the state."""


class Machine:
    """Holds the current state; `go(trigger)` moves it along a declared transition and logs it."""

    def __init__(self, log: Callable[..., Any], state: str = "init") -> None:
        self._log = log
        self.state = state
        self._paused_from: str | None = None

    @property
    def phase(self) -> str:
        """Return the visit phase (the paused phase while paused)."""
        return self._paused_from if self.state == "paused" and self._paused_from else self.state

    def can(self, trigger: str) -> bool:
        """Return True if `trigger` is declared from the current state."""
        return (self.state, trigger) in TRANSITIONS

    def go(self, trigger: str) -> str:
        """Follow the transition declared for `trigger` from the current state; log it; return the new state.

        Raises SessionError for an undeclared transition (nothing is logged then)."""
        target = TRANSITIONS.get((self.state, trigger))
        if target is None:
            raise SessionError(f"no transition '{trigger}' from state '{self.state}'")
        if target == PREVIOUS:
            target = self._paused_from or "init"
        if target == "paused":
            self._paused_from = self.state
        elif self.state == "paused":
            self._paused_from = None
        self._log("transition", **{"from": self.state, "to": target, "trigger": trigger})
        self.state = target
        return target
