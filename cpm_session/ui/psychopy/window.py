"""The participant screen: a PsychoPy window (pyglet backend) drawn frame by frame for the session.

The session owns time and logic; `PsychoPyUI` only draws, collects ratings and choices, and hands
every staff key (see `STAFF_KEYS`) to `key_handler` on every frame (keys typed on the keyboard and
keys queued by software with `press()` alike), letting whatever it raises (Escape = emergency stop)
propagate.

Every screen goes through one frame loop, `_frame()`: wait for the frame slot, read input, draw the
current view, overlays and help, flip, note the flip time, deliver staff keys. The rating prompt
(rating.py), the continuous rating (rating.py), multiple choice (choice.py) and the staff's text box
(entry.py) are views drawn through it. Mouse input is taken from the pyglet window's press / drag /
release events (not by polling the button state), so a quick tap on a touch screen is never lost.

psychopy is imported in `open()`, not at import time: importing `psychopy.visual` needs a display.
"""

from __future__ import annotations

import math
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cpm_session.clock import Clock
from cpm_session.config.protocol import Protocol
from cpm_session.errors import SessionError
from cpm_session.ui.base import STAFF_KEYS, Choice, ParticipantUI, RatingPrompt, RatingResult
from cpm_session.ui.psychopy import layout as L
from cpm_session.ui.psychopy.choice import ChoiceScreen
from cpm_session.ui.psychopy.entry import ask_text
from cpm_session.ui.psychopy.rating import ContinuousRating, RatingScreen
from cpm_session.ui.psychopy.stims import Stims
from cpm_session.ui.status import StatusView

MouseEvent = tuple[str, float, float, float]
"""(kind 'press' | 'drag' | 'release', x, y in window px (origin top-left), PsychoPy clock time)."""


@dataclass
class _Screen:
    name: str
    text: str
    countdown_to: float | None


class PsychoPyUI(ParticipantUI):
    """Draw the participant screen in a PsychoPy window and collect ratings and choices.

    `fullscreen` and `size` default to the protocol's `[screen]` values. `screenshot_dir`: save one PNG
    per distinct screen name the first time it is drawn. `status`: the staff status view fed by
    `set_status` (default: a `StatusView` that is live only in a terminal). `max_fps`: see
    layout.DEFAULT_MAX_FPS (None = pace by flip() alone).
    """

    def __init__(self, protocol: Protocol, clock: Clock, *, fullscreen: bool | None = None,
                 size: tuple[int, int] | None = None, screenshot_dir: Path | str | None = None,
                 status: StatusView | None = None, max_fps: float | None = L.DEFAULT_MAX_FPS,
                 screen_index: int = 0) -> None:
        self.protocol = protocol
        self.clock = clock
        self.fullscreen = protocol.screen.fullscreen if fullscreen is None else bool(fullscreen)
        self.size = tuple(size) if size is not None else (int(protocol.screen.size[0]), int(protocol.screen.size[1]))
        self.screenshot_dir = Path(screenshot_dir) if screenshot_dir is not None else None
        self.status_view = status if status is not None else StatusView()
        if self.status_view.clock is None:
            self.status_view.clock = clock
        self.max_fps = max_fps
        self.screen_index = screen_index
        self.key_handler = None
        self.win: Any = None
        self.stims: Stims = None  # type: ignore[assignment]  # built by open()
        self.help_visible = False
        self.screens_saved: dict[str, Path] = {}
        self._pending_keys = []
        self._screen = _Screen("blank", "", None)
        self._screen_laid_out = False
        self._active_view: Callable[[], None] = self._draw_screen
        self._active_name = "blank"
        self._overlays: list[Callable[[], None]] = []
        self._mouse: deque[MouseEvent] = deque(maxlen=L.MOUSE_QUEUE_MAX)
        self._last_pace = 0.0
        self._flip_time = 0.0  # PsychoPy clock time of the last flip
        self._continuous: ContinuousRating | None = None
        self._warm_jobs: deque[Callable[[], None]] = deque()
        self._help_stims: list[Any] | None = None  # built when first shown, or by a warm-up job
        self._shot_queue: queue.Queue[tuple[Any, Path] | None] = queue.Queue()
        self._shot_thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------------
    def open(self) -> None:
        """Open the window (fullscreen or `size`), build the reusable stimuli, start the status view."""
        if self.win is not None:
            return
        try:
            from psychopy import core, event, logging, visual
        except Exception as e:  # no display, missing GL: say so in one line
            raise SessionError(f"cannot open the participant window: {type(e).__name__}: {e}. "
                               "Is a display available (DISPLAY set, or run under xvfb-run)?") from None
        logging.console.setLevel(logging.ERROR)
        self._core, self._event = core, event
        try:
            self.win = visual.Window(
                size=list(self.size), fullscr=self.fullscreen, screen=self.screen_index, units="height",
                color=self.protocol.screen.background, colorSpace="hex", winType="pyglet",
                allowGUI=not self.fullscreen, title=L.WINDOW_TITLE, checkTiming=False, waitBlanking=True)
        except Exception as e:
            raise SessionError(f"cannot open the participant window: {type(e).__name__}: {e}") from None
        self.win.mouseVisible = True
        handle = self.win.winHandle
        handle.push_handlers(on_mouse_press=self._on_mouse_press, on_mouse_release=self._on_mouse_release,
                             on_mouse_drag=self._on_mouse_drag)
        self._px_scale = float(self.win.size[0]) / max(1, handle.width)
        self.stims = st = Stims(self.win, visual, self.protocol)
        th = self.protocol.screen.text_height
        self._main = st.text("", pos=(0, 0), height=th)
        self._countdown = st.text("", pos=(0, L.COUNTDOWN_Y), height=th * L.COUNTDOWN_SCALE, color=st.accent, bold=True)
        self._help_stims = None
        self._cross = st.cross()
        self._warm_up_rating()  # now: a rating or a continuous rating may come first (a resumed visit)
        self._warm_jobs = deque([self._warm_up_help])
        if self._screen.text:  # show() was called before open(): lay that screen out now
            self.show(self._screen.name, self._screen.text, self._screen.countdown_to)
        self._last_pace = time.perf_counter()
        self.frame_s = 1.0 / (self.max_fps or 60.0)
        self.status_view.start()
        # first frame: paint the background so the participant never sees garbage
        self._flip_time = self.win.flip() or core.getTime()

    def _warm_up_rating(self) -> None:
        """Build and draw the rating screen once off-screen, so the first prompt appears without a delay
        (the slider's labels load fonts: ~0.5-1 s, which at 20x speed would be 10-20 session s)."""
        t, r = self.protocol.texts, self.protocol.ratings
        prompt = RatingPrompt("warm_up", 0, t.rate_heat, t.anchor_low, t.anchor_high, t.confirm, r.timeout_s,
                              r.scale_min, r.scale_max)
        button = self.stims.confirm_button(t.confirm)
        for stim in (self.stims.question(t.rate_heat), self.stims.slider(prompt), button.rect, button.label,
                     *self._cross):
            stim.draw()
        self.win.clearBuffer()

    def _warm_up_help(self) -> None:
        for stim in self._help():
            stim.draw()
        self.win.clearBuffer()

    def _warm_up_step(self) -> None:
        """Run one pending warm-up job (the help overlay), if the current screen is one during which no
        stimulus can run (layout.WARM_UP_SCREENS): the window opens and shows the first screen sooner, and
        the time is spent where a late frame costs nothing. Whatever is not warmed up is built when first
        needed."""
        if self._warm_jobs and self._screen.name in L.WARM_UP_SCREENS:
            self._warm_jobs.popleft()()

    def close(self) -> None:
        """Close the window, finish writing screenshots and stop the status view. Never raises."""
        try:
            if self._continuous is not None:
                self.stop_continuous()
            self.status_view.stop()
            if self._shot_thread is not None:
                self._shot_queue.put(None)
                self._shot_thread.join(L.SHOT_WRITER_JOIN_S)
                self._shot_thread = None
        except Exception:
            pass
        win, self.win = self.win, None
        if win is not None:
            try:
                win.close()
            except Exception:
                pass

    def __enter__(self) -> PsychoPyUI:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_open(self) -> None:
        if self.win is None:
            raise SessionError("the participant window is not open (call open() first)")

    # --- time and geometry ------------------------------------------------------------------------
    def session_time(self, psychopy_t: float) -> float:
        """Convert a PsychoPy clock time (`core.getTime()`: flip times, mouse events) to session seconds."""
        now_s, now_p = self.clock.now(), self._core.getTime()
        speed = self.clock.speed
        return now_s - (now_p - psychopy_t) * speed if math.isfinite(speed) else now_s

    def units_to_px(self, x: float, y: float) -> tuple[float, float]:
        """Convert a point in height units (origin centre, y up) to window px (origin top-left, y down)."""
        return L.units_to_px(self.win.size, x, y)

    def _advance_virtual(self) -> None:
        """With a virtual clock (speed inf), let one frame of session time pass so time-outs can happen."""
        if not math.isfinite(self.clock.speed):
            self.clock.sleep(self.frame_s)

    # --- pyglet mouse events (dispatched inside flip / getKeys / dispatch_events) -------------------
    def _event_px(self, x: float, y: float) -> tuple[float, float]:
        s = self._px_scale
        return x * s, float(self.win.size[1]) - y * s

    def _on_mouse_press(self, x: float, y: float, button: int, modifiers: int) -> None:
        if button == 1:
            self._mouse.append(("press", *self._event_px(x, y), self._core.getTime()))

    def _on_mouse_release(self, x: float, y: float, button: int, modifiers: int) -> None:
        if button == 1:
            self._mouse.append(("release", *self._event_px(x, y), self._core.getTime()))

    def _on_mouse_drag(self, x: float, y: float, dx: float, dy: float, buttons: int, modifiers: int) -> None:
        if buttons & 1:
            self._mouse.append(("drag", *self._event_px(x, y), self._core.getTime()))

    def _take_mouse(self) -> list[MouseEvent]:
        """Return (and forget) the mouse events received since the last call, oldest first."""
        events = list(self._mouse)
        self._mouse.clear()
        return events

    # --- the frame loop ---------------------------------------------------------------------------
    def _frame(self, draw: Callable[[], None], name: str, *, before: Callable[[], None] | None = None,
               on_flip: Callable[[float], None] | None = None, staff_keys: bool = True) -> float:
        """Draw one frame of view `draw` (screenshot name `name`) and deliver staff keys.

        Order: wait for the frame slot (see _pace), `before()` (read input: it then shows on this very
        frame), draw the view, overlays and help, flip, `on_flip(flip time on the PsychoPy clock)`,
        then keys: keyboard staff keys (unless `staff_keys` is False: typed text) and queued software
        keys. Return the wall seconds spent inside `key_handler` (a pause, a note), so callers can
        extend their time-outs by it."""
        self._active_view, self._active_name = draw, name
        self._pace()
        if before is not None:
            before()
        draw()
        for overlay in self._overlays:
            overlay()
        shot = name
        if self.help_visible:
            self._draw_help()
            shot = "help"
        self._autoshot(shot)
        flipped = self.win.flip()
        self._flip_time = float(flipped) if flipped is not None else self._core.getTime()
        if on_flip is not None:
            on_flip(self._flip_time)
        return self._deliver_keys(staff_keys)

    def _pace(self) -> None:
        """Stand in for vsync when flip() does not block (Xvfb): keep at most about `max_fps` frames per second.

        The wait ends PACE_MARGIN_S early, so on a display with vsync (where flip() itself blocks until
        the refresh) it never makes a flip miss its refresh."""
        if self.max_fps:
            wait = 1.0 / self.max_fps - L.PACE_MARGIN_S - (time.perf_counter() - self._last_pace)
            if wait > 0:
                time.sleep(wait)
        self._last_pace = time.perf_counter()

    def _deliver_keys(self, staff_keys: bool = True) -> float:
        typed = self._event.getKeys()  # take every key (one not in keyList would stay in PsychoPy's buffer)
        keys = [k for k in typed if k in STAFF_KEYS] if staff_keys else []
        due = self.next_key_t()
        if not keys and (due is None or due > self.clock.now() + 1e-9):
            return 0.0
        t0 = time.perf_counter()
        for key in keys:
            self._staff_key(key)
        self.deliver_pending_keys(self.clock.now())
        return time.perf_counter() - t0

    def deliver_pending_keys(self, now: float) -> None:
        """Deliver every queued software key due at or before session time `now`, exactly as a key typed on
        the keyboard ('h' also toggles the help overlay)."""
        while (due := self.next_key_t()) is not None and due <= now + 1e-9:
            _, key = self._pending_keys.pop(0)
            self._staff_key(key)

    def _staff_key(self, key: str) -> None:
        if key == "h":
            self.help_visible = not self.help_visible
        if self.key_handler is not None:
            self.key_handler(key)  # may raise (EmergencyStop): let it unwind the caller

    def _end_view(self) -> None:
        """Go back to the plain screen (in the window and in the staff view) after a rating or a choice."""
        self._active_view, self._active_name = self._draw_screen, self._screen.name
        self.status_view.update({"screen": self._screen.name})
        self.status_view.set_countdown(self._screen.name, self._screen.countdown_to)

    # --- screenshots ------------------------------------------------------------------------------
    def _autoshot(self, name: str) -> None:
        """Capture the back buffer the first time screen `name` is drawn; a thread writes the PNG, so a
        screenshot costs ~10 ms of frame time instead of the ~150 ms a PNG encode takes."""
        if self.screenshot_dir is None or name in self.screens_saved:
            return
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "screen"
        path = self.screenshot_dir / f"{safe}.png"
        self.screens_saved[name] = path
        try:
            image = self.win.getMovieFrame(buffer="back")
        except Exception:
            return
        finally:
            self.win.movieFrames = []
        if self._shot_thread is None:
            self._shot_thread = threading.Thread(target=self._write_shots, name="screenshots", daemon=True)
            self._shot_thread.start()
        self._shot_queue.put((image, path))

    def _write_shots(self) -> None:
        while True:
            item = self._shot_queue.get()
            if item is None:  # close(): stop
                self._shot_queue.task_done()
                return
            image, path = item
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                image.save(str(path))
            except Exception:  # a failed screenshot must never disturb the session
                pass
            finally:
                self._shot_queue.task_done()

    def flush_screenshots(self) -> None:
        """Wait until every automatic screenshot has been written."""
        self._shot_queue.join()

    def screenshot(self, path: str) -> None:
        """Save what the participant sees now (current view, overlays, help) as a PNG at `path`."""
        self._require_open()
        self._active_view()
        for overlay in self._overlays:
            overlay()
        if self.help_visible:
            self._draw_help()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.win.getMovieFrame(buffer="back")
        self.win.saveMovieFrames(str(path))
        self.win.clearBuffer()

    # --- plain screens ----------------------------------------------------------------------------
    def show(self, screen: str, text: str, countdown_to: float | None = None) -> None:
        """Make `text` the current screen named `screen` (its look: layout.SCREEN_STYLES[screen]);
        with `countdown_to` (session s) add a countdown."""
        new = _Screen(screen, text, countdown_to)
        if new == self._screen and self._screen_laid_out:
            return  # a session may call show() every frame: laying text out again costs milliseconds
        if self._continuous is None:  # else the staff view keeps saying "continuous_..." (what is drawn)
            self.status_view.update({"screen": screen})
        self.status_view.set_countdown(screen, countdown_to)
        self._screen = new
        self._screen_laid_out = self.win is not None
        if self.win is None:
            return
        style = L.style_for(screen)
        m = self._main
        if m.text != text:
            m.text = text
        m.height = self.protocol.screen.text_height * style.scale
        m.color = self.stims.accent if style.role == "accent" else self.stims.fg
        m.bold = style.bold
        m.pos = (0, L.TEXT_Y_WITH_COUNTDOWN if countdown_to is not None else 0)
        self.stims.fit(m, L.MAX_TEXT_H_WITH_COUNTDOWN if countdown_to is not None else L.MAX_TEXT_H)

    def _draw_screen(self) -> None:
        sc = self._screen
        if sc.text.strip() == "+":  # a fixation cross drawn exactly at the centre (a glyph sits off-centre)
            for bar in self._cross:
                bar.draw()
        elif sc.text:
            self._main.draw()
        self._draw_countdown()

    def _draw_countdown(self) -> None:
        """Draw the current screen's countdown (m:ss to `countdown_to`), if it has one."""
        until = self._screen.countdown_to
        if until is None:
            return
        left = max(0, math.ceil(until - self.clock.now()))
        text = f"{left // 60}:{left % 60:02d}"
        if self._countdown.text != text:
            self._countdown.text = text
        self._countdown.draw()

    def _help(self) -> list[Any]:
        if self._help_stims is None:
            self._help_stims = self.stims.help_overlay()
        return self._help_stims

    def _draw_help(self) -> None:
        for stim in self._help():
            stim.draw()

    def tick(self) -> None:
        """Draw one frame: the current screen, or the live slider while a continuous rating runs; deliver
        pending staff keys to `key_handler`."""
        self._require_open()
        if self._continuous is not None:
            self._continuous.frame()
            return
        self._frame(self._draw_screen, self._screen.name)
        # clicks on a plain screen mean nothing; drop them so they cannot land in a rating that is
        # waiting outside this tick (e.g. a pause entered from inside rate())
        self._mouse.clear()
        self._warm_up_step()

    # --- ratings, choices, text -------------------------------------------------------------------
    def prompt_geometry(self, prompt: RatingPrompt) -> dict[str, Any]:
        """Return where the rating scale and confirm button will be, in window px (origin top-left).

        `slider_px` is the scale line itself: its left end is scale_min, its right end scale_max. The
        continuous rating draws the same scale at the same place (without the confirm button)."""
        self._require_open()
        return L.rating_geometry(self.win.size)

    def rate(self, prompt: RatingPrompt) -> RatingResult:
        """Show the scale until the participant confirms or `prompt.timeout_s` (session s) passes
        (see rating.RatingScreen); answered by `responder` when one is attached."""
        self._require_open()
        return RatingScreen(self, prompt).run()

    def start_continuous(self, prompt: RatingPrompt, stimulus_id: str, onset_t: float) -> None:
        """Make the slider live from now on: every tick() draws it and samples its value at the frame's
        flip time (see rating.ContinuousRating), until stop_continuous()."""
        self._require_open()
        if self._continuous is not None:
            raise SessionError(f"a continuous rating (stimulus {self._continuous.stimulus_id}) is still running: "
                               f"stop it before starting one for stimulus {stimulus_id}")
        self._continuous = ContinuousRating(self, prompt, stimulus_id, onset_t)

    def stop_continuous(self) -> list[tuple[float, float]]:
        """Stop the continuous rating; return its samples, one per frame: (flip time - onset_t in session s,
        value). Returns [] when none runs."""
        running, self._continuous = self._continuous, None
        if running is None:
            return []
        running.close()
        self._end_view()
        return list(running.samples)

    def choice_geometry(self, choice: Choice) -> list[list[float]]:
        """Return each option button's box in window px (l, t, r, b; origin top-left)."""
        self._require_open()
        return [list(b.box_px) for b in self.stims.choice_buttons(list(choice.options))[0]]

    def choose(self, choice: Choice) -> int | None:
        """Show `choice.question` with one button per option (see choice.ChoiceScreen); answered by
        `chooser` when one is attached."""
        self._require_open()
        return ChoiceScreen(self, choice).run()

    def ask_text(self, title: str) -> str | None:
        """Let the staff type a line over the current screen (see entry.ask_text)."""
        self._require_open()
        return ask_text(self, title)

    def set_status(self, status: dict[str, Any]) -> None:
        """Forward `status` to the staff status view."""
        self.status_view.update(status)
