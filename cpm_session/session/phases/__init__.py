"""The visit's phases: each is a function `run(ctx) -> (output, trigger)`; the output goes into the
phase's `phase_exit` event (which is what resume reads back), the trigger decides the next state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cpm_session.session.context import Context
from cpm_session.session.phases import calibration, cold_pressor, questionnaires, simple, ts

PhaseRunner = Callable[[Context], tuple[dict[str, Any], str]]

RUNNERS: dict[str, PhaseRunner] = {
    "welcome": simple.welcome,
    "acclimatization": simple.acclimatization,
    "calibration": calibration.run,
    "ts_pre": ts.ts_pre,
    "cold_pressor": cold_pressor.run,
    "ts_post": ts.ts_post,
    "control": cold_pressor.control,
    "questionnaires": questionnaires.run,
    "done": simple.done,
}
