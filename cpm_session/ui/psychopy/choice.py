"""Multiple-choice questions in the PsychoPy window (questionnaire items, staff decisions)."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from cpm_session.ui.base import Choice
from cpm_session.ui.psychopy import layout as L

if TYPE_CHECKING:
    from cpm_session.ui.psychopy.window import PsychoPyUI


class ChoiceScreen:
    """`choice.question` above one clickable button per option (a row of number buttons for an NRS, else
    a column of labelled buttons).

    A click is a press and release on the same button; the chosen button is highlighted for
    CHOICE_FEEDBACK_S before returning its index. Return None when `choice.timeout_s` (session s) passes.
    With a `chooser` attached to the UI, its answer is shown after CHOICE_RESPONDER_DELAY_S; a None
    answer waits for the time-out (or returns None at once when there is none)."""

    def __init__(self, ui: PsychoPyUI, choice: Choice) -> None:
        self.ui = ui
        self.choice = choice
        self.options = list(choice.options)
        if not self.options:
            raise ValueError("a Choice needs at least one option")
        self.question = ui.stims.question(choice.question, y=L.CHOICE_QUESTION_Y)
        self.buttons, self.captions = ui.stims.choice_buttons(self.options)
        self.name = "choice_row" if L.is_row(self.options) else "choice_list"
        self.armed: int | None = None
        self.chosen: int | None = None

    def draw(self) -> None:
        st = self.ui.stims
        self.question.draw()
        for i, b in enumerate(self.buttons):
            b.rect.fillColor = st.accent if i in (self.armed, self.chosen) else L.DISABLED_FILL
            b.rect.draw()
            b.label.draw()
        for cap in self.captions:
            cap.draw()

    def _read_mouse(self) -> None:
        for kind, x, y, _t in self.ui._take_mouse():
            if self.chosen is not None:
                return
            hit = next((i for i, b in enumerate(self.buttons) if L.inside(b.box_px, x, y)), None)
            if kind == "press":
                self.armed = hit
            elif kind == "release":
                if hit is not None and hit == self.armed:
                    self.chosen = hit
                self.armed = None

    def run(self) -> int | None:
        """Show the question; return the chosen option's index, or None on time-out."""
        ui, choice = self.ui, self.choice
        clock = ui.clock
        start = clock.now()
        deadline = start + choice.timeout_s if choice.timeout_s is not None else math.inf
        planned: int | None = None
        plan_at = math.inf
        if ui.chooser is not None and not choice.for_staff:
            planned = ui.chooser(choice)
            if planned is None and choice.timeout_s is None:
                return None
            if planned is not None:
                if not 0 <= planned < len(self.options):
                    raise ValueError(f"the chooser chose option {planned}, but there are {len(self.options)} options")
                plan_at = start + L.CHOICE_RESPONDER_DELAY_S
        # a simulated answer is highlighted for CHOICE_FEEDBACK_S of session time (at least 2 frames)
        sim_feedback_s = min(L.CHOICE_FEEDBACK_S, max(2 / 60, L.CHOICE_FEEDBACK_S / clock.speed))
        ui._mouse.clear()
        chosen_wall: float | None = None
        ui.status_view.update({"screen": f"{self.name}: {choice.question[:60]}"})
        ui.status_view.set_countdown("answer time-out" if math.isfinite(deadline) else None, deadline)
        try:
            while True:
                now = clock.now()
                self._read_mouse()
                if self.chosen is None and planned is not None and now >= plan_at:
                    self.chosen = planned
                if self.chosen is not None:
                    feedback_s = sim_feedback_s if self.chosen == planned else L.CHOICE_FEEDBACK_S
                    if chosen_wall is None:
                        chosen_wall = time.perf_counter()
                    elif time.perf_counter() - chosen_wall >= feedback_s:
                        return int(self.chosen)
                elif now >= deadline:
                    return None
                handler_wall = ui._frame(self.draw, self.name)
                if handler_wall > 0 and math.isfinite(deadline) and math.isfinite(clock.speed):
                    deadline += handler_wall * clock.speed
                ui._advance_virtual()
        finally:
            ui._end_view()
