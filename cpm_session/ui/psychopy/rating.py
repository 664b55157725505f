"""Ratings in the PsychoPy window: the prompt with a confirm button, and the continuous (CoVAS) slider.

Both draw PsychoPy's Slider read-only and take input from the window's own mouse events (press, drag,
release), mapped to the scale exactly as the Slider maps `pos ± size/2` (layout.ScaleMap). Times come
from the window's flips (the PsychoPy clock), converted to session seconds through the UI's clock.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from cpm_session.ui.base import ContinuousSample, RatingPrompt, RatingResult, continuous_source
from cpm_session.ui.psychopy import layout as L

if TYPE_CHECKING:
    from cpm_session.ui.psychopy.window import PsychoPyUI


class RatingScreen:
    """One rating prompt: the 0-100 scale until the participant confirms or `prompt.timeout_s` passes.

    No marker is shown until the first press (no anchoring); the confirm button stays grey until a
    value is chosen. `rt_s` runs from the flip of the prompt's first frame to the release that chose the
    final value (as PsychoPy's Slider.rt), on PsychoPy's clock, converted to session seconds. While the
    participant drags, the marker is sampled every frame into `trace` as (session flip time, value). A
    time-out (confirmed or not) returns value None. With a `responder` attached to the UI, wait its
    response time while drawing frames, place the marker at its value, show it for RESPONDER_SHOW_S and
    confirm; its value None waits for the time-out. A press on the scale by a person wins over it.
    """

    def __init__(self, ui: PsychoPyUI, prompt: RatingPrompt) -> None:
        self.ui = ui
        self.prompt = prompt
        st = ui.stims
        self.slider = st.slider(prompt)
        self.question = st.question(prompt.question)
        self.button = st.confirm_button(prompt.confirm)
        self.geometry = ui.prompt_geometry(prompt)
        self.scale = L.ScaleMap.for_window(ui.win.size, prompt.scale_min, prompt.scale_max)
        self.name = f"rating_{prompt.kind}"
        self.marker: float | None = None
        self.value: float | None = None
        self.dragging = False
        self.armed = False
        self.confirmed = False
        self.chosen_at: float | None = None  # PsychoPy clock time of the input that chose the value ...
        self.chosen_s = 0.0  # ... and its session time
        self.chosen_flip: float | None = None  # PsychoPy clock time of the first flip showing it
        self.trace: list[tuple[float, float]] = []
        self._moved = False

    def draw(self) -> None:
        st = self.ui.stims
        st.set_enabled(self.button, self.value is not None)
        self.slider.markerPos = self.marker
        self.question.draw()
        self.slider.draw()
        self.button.rect.draw()
        self.button.label.draw()

    def _choose(self, value: float, at: float, now: float) -> None:
        self.marker = self.value = value
        self.chosen_at, self.chosen_s, self.chosen_flip = at, now, None
        self._moved = True

    def _read_mouse(self, now: float) -> None:
        """Apply the mouse events received since the last frame, in order."""
        for kind, x, y, t in self.ui._take_mouse():
            if kind == "press":
                if self.scale.hits(x, y):
                    self.dragging = True
                    self.marker = self.scale.value_at(x)
                    self._moved = True
                elif L.inside(self.button.box_px, x, y):
                    self.armed = True
            elif kind == "drag" and self.dragging:
                self.marker = self.scale.value_at(x)
                self._moved = True
            elif kind == "release":
                if self.dragging:
                    self.dragging = False
                    self._choose(self.scale.value_at(x), t, now)
                elif self.armed:
                    self.armed = False
                    if self.value is not None and L.inside(self.button.box_px, x, y):
                        self.confirmed = True

    def _on_flip(self, flip_t: float) -> None:
        if (self._moved or self.dragging) and self.marker is not None:
            self.trace.append((self.ui.session_time(flip_t), self.marker))
        self._moved = False
        if self.value is not None and self.chosen_flip is None:
            self.chosen_flip = flip_t

    def _latest_input(self) -> None:
        """Right before drawing: take the input that arrived while waiting for the frame slot, so a release
        shows on this frame (the confirm is acted on at the top of the next loop)."""
        self.ui.win.winHandle.dispatch_events()
        self._read_mouse(self.ui.clock.now())

    def _frame(self) -> float:
        name = self.name if self.value is None else f"{self.name}_answered"
        return self.ui._frame(self.draw, name, before=self._latest_input, on_flip=self._on_flip)

    def _result(self, value: float | None, rt_s: float | None) -> RatingResult:
        ui = self.ui
        chosen_t = chosen_flip_t = None
        if value is not None and self.chosen_at is not None:
            finite = math.isfinite(ui.clock.speed)
            chosen_t = round(ui.session_time(self.chosen_at) if finite else self.chosen_s, 4)
            if self.chosen_flip is not None:
                chosen_flip_t = round(ui.session_time(self.chosen_flip), 4)
        return RatingResult(value=value, rt_s=rt_s, trace=self.trace, geometry=self.geometry, chosen_t=chosen_t,
                            chosen_flip_t=chosen_flip_t)

    def run(self) -> RatingResult:
        """Show the prompt; return the participant's (or the responder's) answer."""
        ui, prompt = self.ui, self.prompt
        lo, hi = float(prompt.scale_min), float(prompt.scale_max)
        speed = ui.clock.speed
        ui._mouse.clear()
        plan_value: float | None = None
        plan_at = show_until = math.inf
        show_frames = 0
        try:
            self._frame()  # the prompt is on screen from this flip on (rt starts here)
            onset = ui._flip_time
            start = ui.clock.now()
            deadline = start + prompt.timeout_s
            ui.status_view.update({"screen": f"{self.name} ({prompt.phase} #{prompt.trial})"})
            ui.status_view.set_countdown("rating time-out", deadline)
            if ui.responder is not None:
                answer, answer_rt = ui.responder(prompt)
                if answer is not None:
                    plan_value = min(hi, max(lo, float(answer)))
                    plan_at = start + max(0.0, float(answer_rt))
            while True:
                ui._advance_virtual()
                now = ui.clock.now()
                self._read_mouse(now)
                if plan_value is not None and self.value is None and now >= plan_at:  # the simulated participant
                    self._choose(plan_value, ui._core.getTime(), now)
                    show_until, show_frames = now + L.RESPONDER_SHOW_S, 0
                if plan_value is not None and self.value is not None and now >= show_until \
                        and show_frames >= L.MIN_SHOW_FRAMES:
                    self.confirmed = True
                if self.confirmed and self.chosen_at is not None:
                    rt = (self.chosen_at - onset) * speed if math.isfinite(speed) else self.chosen_s - start
                    return self._result(float(self.value), round(rt, 4))  # type: ignore[arg-type]
                if now >= deadline:
                    if self._moved and self.marker is not None:
                        self.trace.append((now, self.marker))
                    return self._result(None, None)
                handler_wall = self._frame()
                show_frames += 1
                if handler_wall > 0 and math.isfinite(speed):
                    deadline += handler_wall * speed  # a pause or a note does not eat the answer time
                    ui.status_view.set_countdown("rating time-out", deadline)
        finally:
            ui._end_view()


class ContinuousRating:
    """A live slider sampled once per frame, from start_continuous() until stop_continuous().

    Each frame: read input (right after the frame slot opens, so it shows on this very frame), draw the
    question, the scale with its marker and the current screen's countdown, flip, and store
    (flip time - `onset_t`, value) in session seconds. The marker starts at `scale_min` and is always
    shown. A press within CONTINUOUS_HIT_HALF_HEIGHT of the line grabs it, a drag moves it, and a held
    left / right arrow moves it by CONTINUOUS_KEY_STEP_FRACTION of the scale per frame (a tap: one
    step). With a `responder` attached, the simulated participant moves it (its `continuous(t)` if it
    has one, else its prompt answer held) until a person touches the mouse or the arrows.
    """

    def __init__(self, ui: PsychoPyUI, prompt: RatingPrompt, stimulus_id: str, onset_t: float) -> None:
        from pyglet.window import key as pkey

        self.ui = ui
        self.prompt = prompt
        self.stimulus_id = stimulus_id
        self.onset_t = float(onset_t)
        st = ui.stims
        self.slider = st.slider(prompt)
        self.question = st.question(prompt.question)
        self.scale = L.ScaleMap.for_window(ui.win.size, prompt.scale_min, prompt.scale_max,
                                           L.CONTINUOUS_HIT_HALF_HEIGHT)
        self.step = (self.scale.hi - self.scale.lo) * L.CONTINUOUS_KEY_STEP_FRACTION
        self.value = self.scale.lo
        self.samples: list[ContinuousSample] = []
        self.name = f"continuous_{prompt.kind}"
        self.dragging = False
        self.by_person = False
        self._keys = {pkey.LEFT: -1, pkey.RIGHT: +1}
        self._held: set[int] = set()
        self._tapped: set[int] = set()
        self.follow = continuous_source(ui.responder)
        self.hold: float | None = None
        if self.follow is None and ui.responder is not None:
            answer, _ = ui.responder(prompt)
            self.hold = None if answer is None else self.scale.clamp(answer)
        ui._mouse.clear()
        ui.win.winHandle.push_handlers(on_key_press=self._on_key_press, on_key_release=self._on_key_release)
        ui.status_view.update({"screen": f"{self.name} (stimulus {stimulus_id})"})

    def close(self) -> None:
        """Stop listening to the arrow keys. Never raises."""
        try:
            self.ui.win.winHandle.remove_handlers(on_key_press=self._on_key_press,
                                                  on_key_release=self._on_key_release)
        except Exception:
            pass

    def _on_key_press(self, symbol: int, modifiers: int) -> None:
        if symbol in self._keys:
            self._held.add(symbol)
            self._tapped.add(symbol)
        # returns None: PsychoPy's own handler still sees the key (staff keys keep working)

    def _on_key_release(self, symbol: int, modifiers: int) -> None:
        self._held.discard(symbol)

    def _read_input(self) -> None:
        ui = self.ui
        ui.win.winHandle.dispatch_events()  # events up to now, so this frame shows them
        for kind, x, y, _t in ui._take_mouse():
            if kind == "press" and self.scale.hits(x, y):
                self.dragging = self.by_person = True
                self.value = self.scale.value_at(x)
            elif kind in ("drag", "release") and self.dragging:
                self.value = self.scale.value_at(x)
                self.dragging = kind == "drag"
        direction = sum(d for k, d in self._keys.items() if k in self._held or k in self._tapped)
        self._tapped.clear()
        if direction:
            self.by_person = True
            self.value = self.scale.clamp(self.value + direction * self.step)
        if not self.by_person:
            if self.follow is not None:
                self.value = self.scale.clamp(self.follow(ui.clock.now() - self.onset_t))
            elif self.hold is not None:
                self.value = self.hold

    def draw(self) -> None:
        self.slider.markerPos = self.value
        self.question.draw()
        self.slider.draw()
        self.ui._draw_countdown()

    def _on_flip(self, flip_t: float) -> None:
        self.samples.append((self.ui.session_time(flip_t) - self.onset_t, self.value))

    def frame(self) -> None:
        """Draw one frame of the live slider and sample it (called by tick())."""
        self.ui._frame(self.draw, self.name, before=self._read_input, on_flip=self._on_flip)
