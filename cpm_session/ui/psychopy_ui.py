"""The participant screen: a PsychoPy window (pyglet backend) drawn frame by frame for the engine.

The engine owns time and logic; this class only draws, collects ratings and choices, and hands
every staff key (see `STAFF_KEYS`) to `key_handler` on every frame, letting whatever it raises
(Escape = emergency stop) propagate.

Layout uses PsychoPy 'height' units: the window is 1 unit tall, x runs over ±aspect/2, y over ±0.5.
Colours and texts come from the protocol (`[screen]`, `[texts]`), so a translated protocol file
translates the screen. Mouse input is taken from the pyglet window's press / drag / release events
(not by polling the button state), so a quick tap on a touch screen is never lost; the rating is the
scale position of the release, mapped exactly as PsychoPy's Slider maps `pos ± size/2`.

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
from cpm_session.ui.base import STAFF_KEYS, Choice, ParticipantUI, RatingPrompt, RatingResult, Responder
from cpm_session.ui.help import help_lines
from cpm_session.ui.status import StatusView

# --- constants (one place) ----------------------------------------------------------------------
WINDOW_TITLE = "cpm-session participant"
"""Window caption; tests find the window with `xdotool search --name`."""
FONT = "Noto Sans"
"""Shipped with PsychoPy (assets/fonts), so text looks the same on every lab computer."""
MOUSE_QUEUE_MAX = 2000
"""Mouse events kept between frames (a drag makes one per motion; older ones are dropped)."""
SHOT_WRITER_JOIN_S = 10.0
"""close() waits at most this long for pending screenshots."""
DEFAULT_MAX_FPS = 60.0
"""Frame cap for when flip() does not wait for the refresh (no vsync, e.g. Xvfb): without it the frame
loop spins at 100 % CPU and starves the device threads. With vsync, flip() is the pacer."""
PACE_MARGIN_S = 0.004

TEXT_WRAP_FRACTION = 0.88      # wrap main text at this fraction of the window width
TEXT_Y_WITH_COUNTDOWN = 0.15   # main text moves up when a countdown is shown
MAX_TEXT_H = 0.9               # long texts shrink to fit this height (height units) ...
MAX_TEXT_H_WITH_COUNTDOWN = 0.6
MAX_QUESTION_H = 0.3           # ... and questions above a scale or buttons to this
FIT_ITERATIONS = 4
FIT_MIN_HEIGHT = 0.025          # ... but never below this (20 px at 800 px): legible beats complete
COUNTDOWN_Y = -0.27
COUNTDOWN_SCALE = 1.8          # countdown height = text_height * this
FIXATION_SCALE = 2.6           # a fixation text other than '+' is this * text_height tall
FIXATION_SIZE = 0.09           # the '+' fixation cross: arm length and ...
FIXATION_LINE = 0.012          # ... thickness (height units)

QUESTION_Y = 0.27
SLIDER_Y = 0.0
SLIDER_WIDTH = 1.0             # scale line length in height units (shrunk on narrow windows)
SLIDER_MAX_FRACTION = 0.72     # ... to at most this fraction of the window width
SLIDER_HEIGHT = 0.05           # Slider size[1]: marker diameter; the line is 1/10 of it
SLIDER_HIT_HALF_HEIGHT = 0.05  # a press within ±this of the line (and ±5 % beyond its ends) hits the scale
SLIDER_HIT_PAD_FRACTION = 0.05
LABEL_SCALE = 0.6              # anchor label height = text_height * this
CONFIRM_Y = -0.33
CONFIRM_SIZE = (0.34, 0.1)
DISABLED_FILL = "#4A4A4A"
DISABLED_TEXT = "#8C8C8C"
BUTTON_TEXT = "#FFFFFF"
RESPONDER_SHOW_S = 0.25        # a simulated answer stays visible this long (session s, at least 2 frames)
MIN_SHOW_FRAMES = 2

CHOICE_TOP = 0.13              # option buttons fill [CHOICE_BOTTOM, CHOICE_TOP]
CHOICE_BOTTOM = -0.44
CHOICE_ROW_MAX_LABEL = 3       # options whose first word is this short (e.g. "0 (no pain)", "1".."10") ...
CHOICE_ROW_MIN_OPTIONS = 3     # ... and at least this many are laid out as a row of number buttons
CHOICE_ROW_BUTTON_MAX = 0.14
CHOICE_CAPTION_SCALE = 0.45    # "(no pain)" under its number button: height = text_height * this
CHOICE_CAPTION_WRAP = 0.26
CHOICE_GAP = 0.02
CHOICE_FEEDBACK_S = 0.25       # the chosen option is highlighted this long (wall s) before returning
CHOICE_RESPONDER_DELAY_S = 0.5 # a simulated participant answers after this (session s)

HELP_WIDTH = 1.25
HELP_FILL = "#101010"
HELP_TEXT_SCALE = 0.55         # help text height = text_height * this
ENTRY_BOX = (1.3, 0.34)

# Screen styles: (height scale, colour role 'text' | 'accent', bold). Looked up by screen name, or by
# which protocol text the screen shows, so an engine's own screen names still get the right look.
SCREEN_STYLES: dict[str, tuple[float, str, bool]] = {
    "fixation": (FIXATION_SCALE, "text", False),
    "stimulus_on": (FIXATION_SCALE, "text", False),
    "stimulus_coming": (1.4, "accent", True),
    "cold_pressor_keep": (1.3, "accent", True),
    "cold_pressor_out": (1.7, "accent", True),
    "paused": (1.6, "text", True),
    "aborted": (1.2, "accent", True),
    "thanks": (1.2, "text", True),
    "rest": (1.3, "text", False),
}


@dataclass
class _Screen:
    name: str
    text: str
    countdown_to: float | None


@dataclass
class _Button:
    rect: Any
    label: Any
    box_px: list[float]  # l, t, r, b in window px, origin top-left


class PsychoPyUI(ParticipantUI):
    """Draw the participant screen in a PsychoPy window and collect ratings and choices.

    `fullscreen` and `size` default to the protocol's `[screen]` values. `screenshot_dir`: save one PNG
    per distinct screen name the first time it is drawn. `status`: the staff status view fed by
    `set_status` (default: a `StatusView` that is live only in a terminal). `max_fps`: see DEFAULT_MAX_FPS
    (None = pace by flip() alone). `on_prompt(prompt, geometry)`, if set, is called once the rating
    prompt is on screen, before any answer (the engine can log `rating_prompt` then).
    """

    def __init__(self, protocol: Protocol, clock: Clock, *, fullscreen: bool | None = None,
                 size: tuple[int, int] | None = None, screenshot_dir: Path | str | None = None,
                 status: StatusView | None = None, max_fps: float | None = DEFAULT_MAX_FPS,
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
        self.on_prompt: Callable[[RatingPrompt, dict[str, Any]], None] | None = None
        self.win: Any = None
        self.help_visible = False
        self.screens_saved: dict[str, Path] = {}
        self._screen = _Screen("blank", "", None)
        self._screen_laid_out = False
        self._active_view: Callable[[], None] = self._draw_screen
        self._active_name = "blank"
        self._overlays: list[Callable[[], None]] = []
        self._mouse: deque[tuple[str, float, float, float]] = deque(maxlen=MOUSE_QUEUE_MAX)
        self._last_flip = 0.0
        self._slider_cache: dict[tuple[Any, ...], Any] = {}
        self._shot_queue: queue.Queue[tuple[Any, Path] | None] = queue.Queue()
        self._shot_thread: threading.Thread | None = None
        self.last_capture: dict[str, float] = {}  # PsychoPy clock times of the last rating's release and return
        self._text_cache: dict[str, Any] = {}

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
        self._core, self._event, self._visual = core, event, visual
        try:
            self.win = visual.Window(
                size=list(self.size), fullscr=self.fullscreen, screen=self.screen_index, units="height",
                color=self.protocol.screen.background, colorSpace="hex", winType="pyglet",
                allowGUI=not self.fullscreen, title=WINDOW_TITLE, checkTiming=False, waitBlanking=True)
        except Exception as e:
            raise SessionError(f"cannot open the participant window: {type(e).__name__}: {e}") from None
        self.win.mouseVisible = True
        handle = self.win.winHandle
        handle.push_handlers(on_mouse_press=self._on_mouse_press, on_mouse_release=self._on_mouse_release,
                             on_mouse_drag=self._on_mouse_drag)
        self._px_scale = float(self.win.size[0]) / max(1, handle.width)
        self._fontfiles = [str(Path(visual.__file__).parent.parent / "assets" / "fonts" / f)
                           for f in ("NotoSans-Regular.ttf", "NotoSans-Bold.ttf")]
        self._fontfiles = [f for f in self._fontfiles if Path(f).exists()]
        th = self.protocol.screen.text_height
        self._main = self._text("", pos=(0, 0), height=th)
        self._countdown = self._text("", pos=(0, COUNTDOWN_Y), height=th * COUNTDOWN_SCALE, color=self._accent, bold=True)
        self._help_stims = self._build_help()
        self._cross = [visual.Rect(self.win, width=w, height=h, pos=(0, 0), fillColor=self._fg, lineColor=None,
                                   colorSpace="hex", autoLog=False)
                       for w, h in ((FIXATION_SIZE, FIXATION_LINE), (FIXATION_LINE, FIXATION_SIZE))]
        self._warm_up()
        if self._screen.text:  # show() was called before open(): lay that screen out now
            self.show(self._screen.name, self._screen.text, self._screen.countdown_to)
        self._last_flip = time.perf_counter()
        self.frame_s = 1.0 / (self.max_fps or 60.0)
        self.status_view.start()
        # first frame: paint the background so the participant never sees garbage
        self.win.flip()

    def _warm_up(self) -> None:
        """Build and draw the rating screen once off-screen, so the first prompt appears without a delay
        (the slider's labels load fonts: ~0.5 s, which at 20x speed would be 10 session s)."""
        t, r = self.protocol.texts, self.protocol.ratings
        prompt = RatingPrompt("warm_up", 0, t.rate_heat, t.anchor_low, t.anchor_high, t.confirm, r.timeout_s,
                              r.scale_min, r.scale_max)
        button = self._confirm_button(t.confirm)
        for stim in (self._question(t.rate_heat), self._get_slider(prompt), button.rect, button.label,
                     *self._help_stims, *self._cross):
            stim.draw()
        self.win.clearBuffer()

    def close(self) -> None:
        """Close the window, finish writing screenshots and stop the status view. Never raises."""
        try:
            self.status_view.stop()
            if self._shot_thread is not None:
                self._shot_queue.put(None)
                self._shot_thread.join(SHOT_WRITER_JOIN_S)
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

    # --- helpers ----------------------------------------------------------------------------------
    @property
    def _accent(self) -> str:
        return self.protocol.screen.accent_color

    @property
    def _fg(self) -> str:
        return self.protocol.screen.text_color

    @property
    def _aspect(self) -> float:
        w, h = self.win.size
        return float(w) / float(h)

    def _text(self, text: str, *, pos: tuple[float, float], height: float, color: str | None = None,
              bold: bool = False, align: str = "center", anchor: str = "center", anchor_v: str = "center",
              wrap: float | None = None) -> Any:
        return self._visual.TextStim(
            self.win, text=text, pos=pos, height=height, color=color or self._fg, colorSpace="hex", font=FONT,
            fontFiles=self._fontfiles, bold=bold, alignText=align, anchorHoriz=anchor, anchorVert=anchor_v,
            wrapWidth=wrap if wrap is not None else self._aspect * TEXT_WRAP_FRACTION, autoLog=False)

    def _build_help(self) -> list[Any]:
        """Build the help overlay: an opaque box, a title, and aligned key / description columns."""
        th = self.protocol.screen.text_height * HELP_TEXT_SCALE
        lines = help_lines()
        w = HELP_WIDTH
        step = th * 1.55
        h = 0.09 + len(lines) * step + 0.06
        left = -w / 2 + 0.05
        y0 = h / 2 - 0.06
        stims: list[Any] = [
            self._visual.Rect(self.win, width=w, height=h, fillColor=HELP_FILL, lineColor=self._accent, lineWidth=3,
                              colorSpace="hex", autoLog=False),
            self._text("Staff keys (h: hide)", pos=(0, y0), height=th * 1.2, color=self._accent, bold=True, wrap=w),
        ]
        for i, (label, text) in enumerate(lines):
            y = y0 - 0.09 - i * step
            stims.append(self._text(label, pos=(left, y), height=th, bold=True, align="left", anchor="left", wrap=0.2))
            stims.append(self._text(text, pos=(left + 0.14, y), height=th, align="left", anchor="left", wrap=w - 0.22))
        return stims

    def _draw_help(self) -> None:
        for stim in self._help_stims:
            stim.draw()

    def _fit(self, stim: Any, max_height: float) -> None:
        """Shrink `stim`'s letter height until its wrapped text is at most `max_height` (height units) tall."""
        h_px = float(self.win.size[1])
        for _ in range(FIT_ITERATIONS):
            if getattr(stim, "_needSetText", False):  # lay the text out now (TextStim defers it to draw())
                stim._setTextShaders(stim.text)
                stim._needSetText = False
            text_h = float(stim.boundingBox[1]) / h_px
            if text_h <= max_height or stim.height <= FIT_MIN_HEIGHT:
                return
            stim.height = max(FIT_MIN_HEIGHT, stim.height * max(0.5, max_height / text_h * 0.97))

    def _require_open(self) -> None:
        if self.win is None:
            raise SessionError("the participant window is not open (call open() first)")

    def units_to_px(self, x: float, y: float) -> tuple[float, float]:
        """Convert a point in height units (origin centre, y up) to window px (origin top-left, y down)."""
        w, h = self.win.size
        return float(w) / 2 + x * float(h), float(h) / 2 - y * float(h)

    def _box_px(self, cx: float, cy: float, w: float, h: float) -> list[float]:
        left, t = self.units_to_px(cx - w / 2, cy + h / 2)
        r, b = self.units_to_px(cx + w / 2, cy - h / 2)
        return [round(left, 1), round(t, 1), round(r, 1), round(b, 1)]

    @staticmethod
    def _inside(box: list[float], x: float, y: float, pad_x: float = 0.0, pad_y: float = 0.0) -> bool:
        return box[0] - pad_x <= x <= box[2] + pad_x and box[1] - pad_y <= y <= box[3] + pad_y

    def _advance_virtual(self) -> None:
        """With a virtual clock (speed inf), let one frame of session time pass so time-outs can happen."""
        if not math.isfinite(getattr(self.clock, "speed", 1.0)):
            self.clock.sleep(self.frame_s)

    # --- pyglet mouse events (dispatched inside flip / getKeys) -------------------------------------
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

    # --- frames -----------------------------------------------------------------------------------
    def _frame(self, draw: Callable[[], None], name: str) -> float:
        """Draw one frame (view, overlays, help), flip, then deliver staff keys.

        Return the wall seconds spent inside `key_handler` (a pause, a note), so callers can extend
        their time-outs by it."""
        self._active_view, self._active_name = draw, name
        draw()
        for overlay in self._overlays:
            overlay()
        shot = name
        if self.help_visible:
            self._draw_help()
            shot = "help"
        self._autoshot(shot)
        self._pace()
        self.win.flip()
        return self._deliver_keys()

    def _pace(self) -> None:
        """Stand in for vsync when flip() does not block (Xvfb): keep at most about `max_fps` frames per second.

        The wait ends PACE_MARGIN_S early, so on a display with vsync (where flip() itself blocks until
        the refresh) it never makes a flip miss its refresh."""
        if self.max_fps:
            wait = 1.0 / self.max_fps - PACE_MARGIN_S - (time.perf_counter() - self._last_flip)
            if wait > 0:
                time.sleep(wait)
        self._last_flip = time.perf_counter()

    def _deliver_keys(self) -> float:
        # take every key (a key not in keyList would stay in PsychoPy's buffer for ever), keep staff keys
        keys = [k for k in self._event.getKeys() if k in STAFF_KEYS]
        if not keys:
            return 0.0
        t0 = time.perf_counter()
        for key in keys:
            if key == "h":
                self.help_visible = not self.help_visible
            if self.key_handler is not None:
                self.key_handler(key)  # may raise (EmergencyStop): let it unwind the caller
        return time.perf_counter() - t0

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

    # --- plain screens ----------------------------------------------------------------------------
    def _style(self, name: str, text: str) -> tuple[float, str, bool]:
        if name in SCREEN_STYLES:
            return SCREEN_STYLES[name]
        for field_name, value in self.protocol.texts.model_dump().items():
            if value == text and field_name in SCREEN_STYLES:
                return SCREEN_STYLES[field_name]
        return (1.0, "text", False)

    def show(self, screen: str, text: str, countdown_to: float | None = None) -> None:
        """Make `text` the current screen named `screen`; with `countdown_to` (session s) add a countdown."""
        new = _Screen(screen, text, countdown_to)
        if new == self._screen and self._screen_laid_out:
            return  # an engine may call show() every frame: laying text out again costs milliseconds
        self.status_view.update({"screen": screen})
        self.status_view.set_countdown(screen, countdown_to)
        self._screen = new
        self._screen_laid_out = self.win is not None
        if self.win is None:
            return
        scale, role, bold = self._style(screen, text)
        th = self.protocol.screen.text_height
        m = self._main
        if m.text != text:
            m.text = text
        m.height = th * scale
        m.color = self._accent if role == "accent" else self._fg
        m.bold = bold
        m.pos = (0, TEXT_Y_WITH_COUNTDOWN if countdown_to is not None else 0)
        self._fit(m, MAX_TEXT_H_WITH_COUNTDOWN if countdown_to is not None else MAX_TEXT_H)

    def _restore_status(self) -> None:
        """Point the staff view back at the plain screen after a rating or a choice."""
        self.status_view.update({"screen": self._screen.name})
        self.status_view.set_countdown(self._screen.name, self._screen.countdown_to)

    def _draw_screen(self) -> None:
        sc = self._screen
        if sc.text.strip() == "+":  # a fixation cross drawn exactly at the centre (a glyph sits off-centre)
            for bar in self._cross:
                bar.draw()
        elif sc.text:
            self._main.draw()
        if sc.countdown_to is not None:
            left = max(0, math.ceil(sc.countdown_to - self.clock.now()))
            text = f"{left // 60}:{left % 60:02d}"
            if self._countdown.text != text:
                self._countdown.text = text
            self._countdown.draw()

    def tick(self) -> None:
        """Draw the current screen for one frame and deliver pending staff keys to `key_handler`."""
        self._require_open()
        self._frame(self._draw_screen, self._screen.name)
        # clicks on a plain screen mean nothing; drop them so they cannot land in a rating that is
        # waiting outside this tick (e.g. a pause entered from inside rate())
        self._mouse.clear()

    # --- rating -----------------------------------------------------------------------------------
    def _slider_width(self) -> float:
        return min(SLIDER_WIDTH, self._aspect * SLIDER_MAX_FRACTION)

    def _get_slider(self, prompt: RatingPrompt) -> Any:
        key = (prompt.anchor_low, prompt.anchor_high, prompt.scale_min, prompt.scale_max, tuple(self.win.size))
        slider = self._slider_cache.get(key)
        if slider is None:
            th = self.protocol.screen.text_height
            slider = self._visual.Slider(
                self.win, ticks=(prompt.scale_min, prompt.scale_max), labels=[prompt.anchor_low, prompt.anchor_high],
                granularity=0, style="rating", pos=(0, SLIDER_Y), size=(self._slider_width(), SLIDER_HEIGHT),
                units="height", readOnly=True, labelColor=self._fg, markerColor=self._accent, lineColor=self._fg,
                colorSpace="hex", font=FONT, labelHeight=th * LABEL_SCALE, labelWrapWidth=0.4, autoLog=False)
            self._slider_cache[key] = slider
        slider.markerPos = None
        return slider

    def prompt_geometry(self, prompt: RatingPrompt) -> dict[str, Any]:
        """Return where the rating scale and confirm button will be, in window px (origin top-left).

        `slider_px` is the scale line itself: its left end is scale_min, its right end scale_max."""
        self._require_open()
        w = self._slider_width()
        line_h = SLIDER_HEIGHT * 0.1
        return {
            "slider_px": self._box_px(0, SLIDER_Y, w, line_h),
            "confirm_px": self._box_px(0, CONFIRM_Y, *CONFIRM_SIZE),
            "window_px": [int(self.win.size[0]), int(self.win.size[1])],
        }

    def _confirm_button(self, text: str) -> _Button:
        btn = self._text_cache.get("confirm")
        if btn is None:
            th = self.protocol.screen.text_height
            rect = self._visual.Rect(self.win, width=CONFIRM_SIZE[0], height=CONFIRM_SIZE[1], pos=(0, CONFIRM_Y),
                                     fillColor=DISABLED_FILL, lineColor=None, colorSpace="hex", autoLog=False)
            label = self._text(text, pos=(0, CONFIRM_Y), height=th * 0.8, color=DISABLED_TEXT, bold=True)
            btn = _Button(rect, label, self._box_px(0, CONFIRM_Y, *CONFIRM_SIZE))
            self._text_cache["confirm"] = btn
        if btn.label.text != text:
            btn.label.text = text
        return btn

    def _question(self, text: str, y: float = QUESTION_Y) -> Any:
        q = self._text_cache.get("question")
        if q is None:
            q = self._text(text, pos=(0, y), height=self.protocol.screen.text_height)
            self._text_cache["question"] = q
        if q.text != text or q.height != self.protocol.screen.text_height:
            q.text = text
            q.height = self.protocol.screen.text_height
            self._fit(q, MAX_QUESTION_H)
        q.pos = (0, y)
        return q

    def rate(self, prompt: RatingPrompt, responder: Responder | None) -> RatingResult:
        """Show the 0-100 scale until the participant confirms or `prompt.timeout_s` (session s) passes.

        No marker is shown until the first press (no anchoring); the confirm button stays grey until a
        value is chosen. `rt_s` runs from the first frame of the prompt to the release that chose the final
        value (as PsychoPy's Slider.rt), measured with PsychoPy's clock and converted to session seconds. While the participant drags, the marker
        position is sampled every frame into `trace` as (session t, value). A time-out (confirmed or not)
        returns value None. With a `responder`, wait its response time while drawing frames, place the
        marker at its value, show it for RESPONDER_SHOW_S and confirm; value None waits for the time-out."""
        self._require_open()
        slider = self._get_slider(prompt)
        question = self._question(prompt.question)
        button = self._confirm_button(prompt.confirm)
        geometry = self.prompt_geometry(prompt)
        line = geometry["slider_px"]
        line_w = line[2] - line[0]
        line_cy = (line[1] + line[3]) / 2
        pad_x = line_w * SLIDER_HIT_PAD_FRACTION
        h_px = float(self.win.size[1])
        lo, hi = float(prompt.scale_min), float(prompt.scale_max)

        def value_at(x_px: float) -> float:
            frac = min(1.0, max(0.0, (x_px - line[0]) / line_w))
            return lo + frac * (hi - lo)

        def on_scale(x_px: float, y_px: float) -> bool:
            return line[0] - pad_x <= x_px <= line[2] + pad_x and abs(y_px - line_cy) <= SLIDER_HIT_HALF_HEIGHT * h_px

        state: dict[str, Any] = {"marker": None, "value": None}

        def draw() -> None:
            enabled = state["value"] is not None
            button.rect.fillColor = self._accent if enabled else DISABLED_FILL
            button.label.color = BUTTON_TEXT if enabled else DISABLED_TEXT
            slider.markerPos = state["marker"]
            question.draw()
            slider.draw()
            button.rect.draw()
            button.label.draw()

        onset: list[float] = []
        self.win.callOnFlip(lambda: onset.append(self._core.getTime()))
        self._mouse.clear()
        trace: list[tuple[float, float]] = []
        dragging = False
        armed = False
        chosen_at: float | None = None  # PsychoPy clock time of the release that chose the value
        chosen_t = 0.0  # ... and its session time
        confirmed = False
        plan_value: float | None = None
        plan_at = math.inf
        show_until = math.inf
        show_frames = 0
        name = f"rating_{prompt.kind}"
        speed = getattr(self.clock, "speed", 1.0)
        try:
            self._frame(draw, name)  # the prompt is on screen from this flip on (rt starts here)
            start = self.clock.now()
            deadline = start + prompt.timeout_s
            self.status_view.update({"screen": f"{name} ({prompt.phase} #{prompt.trial})"})
            self.status_view.set_countdown("rating time-out", deadline)
            if self.on_prompt is not None:
                self.on_prompt(prompt, geometry)
            if responder is not None:
                plan_value, plan_rt = responder(prompt)
                if plan_value is not None:
                    plan_value = min(hi, max(lo, float(plan_value)))
                    plan_at = start + max(0.0, float(plan_rt))
            while True:
                self._advance_virtual()
                now = self.clock.now()
                # --- mouse events since the last frame, in order
                while self._mouse:
                    kind, x, y, t = self._mouse.popleft()
                    if kind == "press":
                        if on_scale(x, y):
                            dragging = True
                            state["marker"] = value_at(x)
                        elif self._inside(button.box_px, x, y):
                            armed = True
                    elif kind == "drag" and dragging:
                        state["marker"] = value_at(x)
                    elif kind == "release":
                        if dragging:
                            dragging = False
                            state["marker"] = state["value"] = value_at(x)
                            chosen_at, chosen_t = t, now
                            trace.append((now, state["value"]))
                        elif armed:
                            armed = False
                            if state["value"] is not None and self._inside(button.box_px, x, y):
                                confirmed = True
                if dragging and state["marker"] is not None:
                    trace.append((now, state["marker"]))
                # --- simulated participant
                if plan_value is not None and state["value"] is None and now >= plan_at:
                    state["marker"] = state["value"] = plan_value
                    chosen_at, chosen_t = self._core.getTime(), now
                    trace.append((now, plan_value))
                    show_until = now + RESPONDER_SHOW_S
                    show_frames = 0
                if plan_value is not None and state["value"] is not None and now >= show_until \
                        and show_frames >= MIN_SHOW_FRAMES:
                    confirmed = True
                if confirmed and chosen_at is not None:
                    if math.isfinite(speed) and onset:
                        rt = (chosen_at - onset[0]) * speed  # PsychoPy clock, wall s -> session s
                    else:
                        rt = chosen_t - start
                    self.last_capture = {"released": chosen_at, "returned": self._core.getTime()}
                    return RatingResult(value=float(state["value"]), rt_s=round(rt, 4), trace=trace, geometry=geometry)
                if now >= deadline:
                    return RatingResult(value=None, rt_s=None, trace=trace, geometry=geometry)
                shot = name if state["value"] is None else f"{name}_answered"
                handler_wall = self._frame(draw, shot)
                show_frames += 1
                if handler_wall > 0 and math.isfinite(speed):
                    deadline += handler_wall * speed  # a pause or a note does not eat the answer time
                    self.status_view.set_countdown("rating time-out", deadline)
        finally:
            self._active_view, self._active_name = self._draw_screen, self._screen.name
            self._restore_status()

    # --- multiple choice --------------------------------------------------------------------------
    @staticmethod
    def _split_option(label: str) -> tuple[str, str]:
        """Split "10 (worst pain imaginable)" into ("10", "worst pain imaginable")."""
        head, _, rest = label.strip().partition(" ")
        return head, rest.strip().removeprefix("(").removesuffix(")").strip()

    def _is_row(self, options: list[str]) -> bool:
        """Lay out as a row of number buttons (an NRS: "0 (no pain)", "1", ..., "10 (worst ...)")?"""
        parts = [self._split_option(o) for o in options]
        bare = sum(1 for _, caption in parts if not caption)
        return len(options) >= CHOICE_ROW_MIN_OPTIONS and all(len(h) <= CHOICE_ROW_MAX_LABEL for h, _ in parts) \
            and bare * 2 >= len(options)

    def _choice_buttons(self, options: list[str]) -> tuple[list[_Button], list[Any]]:
        """Build one button per option (a row of numbers, or a column of labels) and any captions."""
        n = len(options)
        th = self.protocol.screen.text_height
        avail_h = CHOICE_TOP - CHOICE_BOTTOM
        half_w = self._aspect / 2
        width_total = self._aspect * TEXT_WRAP_FRACTION
        buttons: list[_Button] = []
        captions: list[Any] = []
        if self._is_row(options):
            bw = min(CHOICE_ROW_BUTTON_MAX, width_total / n - CHOICE_GAP)
            bh = min(CHOICE_ROW_BUTTON_MAX, bw * 1.1)
            y = (CHOICE_TOP + CHOICE_BOTTOM) / 2 + 0.08
            x0 = -(n * (bw + CHOICE_GAP) - CHOICE_GAP) / 2 + bw / 2
            for i, option in enumerate(options):
                x = x0 + i * (bw + CHOICE_GAP)
                head, caption = self._split_option(option)
                rect = self._visual.Rect(self.win, width=bw, height=bh, pos=(x, y), fillColor=DISABLED_FILL,
                                         lineColor=self._fg, lineWidth=2, colorSpace="hex", autoLog=False)
                label = self._text(head, pos=(x, y), height=min(th, bh * 0.5), wrap=bw)
                buttons.append(_Button(rect, label, self._box_px(x, y, bw, bh)))
                if caption:
                    wrap = max(bw, min(CHOICE_CAPTION_WRAP, 2 * (half_w - abs(x)) - 0.04))
                    cap = self._text(caption, pos=(x, y - bh / 2 - 0.025), height=th * CHOICE_CAPTION_SCALE, wrap=wrap,
                                     anchor_v="top")
                    self._fit(cap, 0.12)
                    captions.append(cap)
            return buttons, captions
        bh = min(0.1, avail_h / n - CHOICE_GAP)
        bw = min(1.1, width_total)
        y0 = CHOICE_TOP - bh / 2
        for i, text in enumerate(options):
            y = y0 - i * (bh + CHOICE_GAP)
            rect = self._visual.Rect(self.win, width=bw, height=bh, pos=(0, y), fillColor=DISABLED_FILL,
                                     lineColor=self._fg, lineWidth=2, colorSpace="hex", autoLog=False)
            label = self._text(text, pos=(0, y), height=min(th * 0.8, bh * 0.6), wrap=bw * 0.95)
            self._fit(label, bh * 0.95)
            buttons.append(_Button(rect, label, self._box_px(0, y, bw, bh)))
        return buttons, captions

    def choice_geometry(self, choice: Choice) -> list[list[float]]:
        """Return each option button's box in window px (l, t, r, b; origin top-left)."""
        self._require_open()
        return [b.box_px for b in self._choice_buttons(list(choice.options))[0]]

    def choose(self, choice: Choice, responder: Callable[[Choice], int | None] | None) -> int | None:
        """Show `choice.question` with one clickable button per option; return the clicked index.

        A click is a press and release on the same button. Return None when `choice.timeout_s`
        (session s) passes. With a `responder`, its answer is shown after CHOICE_RESPONDER_DELAY_S;
        a None answer waits for the time-out (or returns None at once when there is none)."""
        self._require_open()
        options = list(choice.options)
        if not options:
            raise ValueError("a Choice needs at least one option")
        question = self._question(choice.question, y=CHOICE_TOP + 0.17)
        buttons, captions = self._choice_buttons(options)
        layout_name = "choice_row" if self._is_row(options) else "choice_list"
        state: dict[str, Any] = {"armed": None, "chosen": None}

        def draw() -> None:
            question.draw()
            for i, b in enumerate(buttons):
                hot = i in (state["armed"], state["chosen"])
                b.rect.fillColor = self._accent if hot else DISABLED_FILL
                b.rect.draw()
                b.label.draw()
            for cap in captions:
                cap.draw()

        start = self.clock.now()
        deadline = start + choice.timeout_s if choice.timeout_s is not None else math.inf
        planned: int | None = None
        plan_at = math.inf
        if responder is not None:
            planned = responder(choice)
            if planned is None and choice.timeout_s is None:
                return None
            if planned is not None:
                if not 0 <= planned < len(options):
                    raise ValueError(f"responder chose option {planned}, but there are {len(options)} options")
                plan_at = start + CHOICE_RESPONDER_DELAY_S
        self._mouse.clear()
        chosen_wall: float | None = None
        self.status_view.update({"screen": f"{layout_name}: {choice.question[:60]}"})
        self.status_view.set_countdown("answer time-out" if math.isfinite(deadline) else None, deadline)
        try:
            while True:
                now = self.clock.now()
                while self._mouse and state["chosen"] is None:
                    kind, x, y, _t = self._mouse.popleft()
                    hit = next((i for i, b in enumerate(buttons) if self._inside(b.box_px, x, y)), None)
                    if kind == "press":
                        state["armed"] = hit
                    elif kind == "release":
                        if hit is not None and hit == state["armed"]:
                            state["chosen"] = hit
                        state["armed"] = None
                if state["chosen"] is None and planned is not None and now >= plan_at:
                    state["chosen"] = planned
                if state["chosen"] is not None:
                    if chosen_wall is None:
                        chosen_wall = time.perf_counter()
                    elif time.perf_counter() - chosen_wall >= (CHOICE_FEEDBACK_S if planned is None or state["chosen"] != planned
                                                               else min(CHOICE_FEEDBACK_S, max(2 / 60, CHOICE_FEEDBACK_S / self.clock.speed))):
                        return int(state["chosen"])
                elif now >= deadline:
                    return None
                handler_wall = self._frame(draw, layout_name)
                speed = getattr(self.clock, "speed", 1.0)
                if handler_wall > 0 and math.isfinite(deadline) and math.isfinite(speed):
                    deadline += handler_wall * speed
                self._advance_virtual()
        finally:
            self._active_view, self._active_name = self._draw_screen, self._screen.name
            self._restore_status()

    # --- staff text entry -------------------------------------------------------------------------
    def ask_text(self, title: str) -> str | None:
        """Let the staff type a line (note / adverse event) over the current screen.

        Enter saves, Escape cancels (returns None), Backspace deletes. While typing, keys are text:
        they are NOT delivered to `key_handler` (so 's' does not skip). Returns the stripped text, or
        None when cancelled or empty."""
        self._require_open()
        from pyglet.window import key as pkey

        buf: list[str] = []
        done: dict[str, bool] = {}

        def on_text(text: str) -> None:
            buf.extend(ch for ch in text if ch.isprintable())

        def on_text_motion(motion: int) -> None:
            if motion == pkey.MOTION_BACKSPACE and buf:
                buf.pop()

        def on_key_press(symbol: int, modifiers: int) -> bool | None:
            if symbol in (pkey.RETURN, pkey.ENTER):
                done["ok"] = True
                return True
            if symbol == pkey.ESCAPE:
                done["ok"] = False
                return True
            return None

        th = self.protocol.screen.text_height
        box = self._visual.Rect(self.win, width=ENTRY_BOX[0], height=ENTRY_BOX[1], fillColor="#101010",
                                lineColor=self._accent, lineWidth=3, colorSpace="hex", autoLog=False)
        head = self._text(title, pos=(0, 0.11), height=th * 0.6, color=self._accent, bold=True, wrap=ENTRY_BOX[0] * 0.9)
        body = self._text("_", pos=(0, 0.0), height=th * 0.55, wrap=ENTRY_BOX[0] * 0.9)
        hint = self._text("Enter = save    Esc = cancel    (staff only)", pos=(0, -0.12), height=th * 0.4,
                          color=DISABLED_TEXT, wrap=ENTRY_BOX[0] * 0.9)

        def overlay() -> None:
            text = "".join(buf) + "_"
            if body.text != text:
                body.text = text
            box.draw()
            head.draw()
            body.draw()
            hint.draw()

        handle = self.win.winHandle
        self._event.clearEvents()
        handle.push_handlers(on_text=on_text, on_text_motion=on_text_motion, on_key_press=on_key_press)
        self._overlays.append(overlay)
        view, name = self._active_view, self._active_name
        try:
            while "ok" not in done:
                view()
                overlay()
                self._autoshot("ask_text")
                self._pace()
                self.win.flip()
                self._event.getKeys()  # typed keys are text, not staff keys
        finally:
            self._overlays.remove(overlay)
            handle.remove_handlers(on_text=on_text, on_text_motion=on_text_motion, on_key_press=on_key_press)
            self._event.clearEvents()
            self._mouse.clear()
            self._active_view, self._active_name = view, name
        text = "".join(buf).strip()
        return text if done["ok"] and text else None

    # --- screenshots and status -------------------------------------------------------------------
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

    def set_status(self, status: dict[str, Any]) -> None:
        """Forward `status` to the staff status view."""
        self.status_view.update(status)
