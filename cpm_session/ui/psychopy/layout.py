"""Where things go on the participant screen, how they look, and window px <-> PsychoPy 'height' units.

Pure: no PsychoPy import, so the geometry and the style table can be checked without a display.

Layout uses PsychoPy 'height' units: the window is 1 unit tall, x runs over ±aspect/2, y over ±0.5
(origin at the centre, y up). Window px have their origin at the top-left corner, y down; that is
what xdotool, screenshots and the logged `rating_prompt` geometry use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

# --- window -------------------------------------------------------------------------------------
WINDOW_TITLE = "cpm-session participant"
"""Window caption; tests find the window with `xdotool search --name`."""
FONT = "Noto Sans"
"""Shipped with PsychoPy (assets/fonts), so text looks the same on every lab computer."""
FONT_FILES = ("NotoSans-Regular.ttf", "NotoSans-Bold.ttf")
MOUSE_QUEUE_MAX = 2000
"""Mouse events kept between frames (a drag makes one per motion; older ones are dropped)."""
SHOT_WRITER_JOIN_S = 10.0
"""close() waits at most this long for pending screenshots."""
DEFAULT_MAX_FPS = 60.0
"""Frame cap for when flip() does not wait for the refresh (no vsync, e.g. Xvfb): without it the frame
loop spins at 100 % CPU and starves the device threads. With vsync, flip() is the pacer."""
PACE_MARGIN_S = 0.004

WARM_UP_SCREENS = frozenset({"welcome", "acclimatization", "calibration_intro", "pressure_instructions",
                             "questionnaires_intro"})
"""Screens shown while no stimulus can run: after one of their frames the window may spend a while
building stimuli needed later (the rating scale's fonts, the help overlay), instead of at open()."""

# --- plain screens ------------------------------------------------------------------------------
TEXT_WRAP_FRACTION = 0.88      # wrap main text at this fraction of the window width
TEXT_Y_WITH_COUNTDOWN = 0.15   # main text moves up when a countdown is shown
MAX_TEXT_H = 0.9               # long texts shrink to fit this height (height units) ...
MAX_TEXT_H_WITH_COUNTDOWN = 0.6
MAX_QUESTION_H = 0.3           # ... and questions above a scale or buttons to this
FIT_ITERATIONS = 4
FIT_MIN_HEIGHT = 0.025         # ... but never below this (20 px at 800 px): legible beats complete
COUNTDOWN_Y = -0.27
COUNTDOWN_SCALE = 1.8          # countdown height = text_height * this
FIXATION_SCALE = 2.6           # a fixation text other than '+' is this * text_height tall
FIXATION_SIZE = 0.09           # the '+' fixation cross: arm length and ...
FIXATION_LINE = 0.012          # ... thickness (height units)

# --- rating scale -------------------------------------------------------------------------------
QUESTION_Y = 0.27
SLIDER_Y = 0.0
SLIDER_WIDTH = 1.0             # scale line length in height units (shrunk on narrow windows)
SLIDER_MAX_FRACTION = 0.72     # ... to at most this fraction of the window width
SLIDER_HEIGHT = 0.05           # Slider size[1]: marker diameter; the line is 1/10 of it
SLIDER_LINE_FRACTION = 0.1
SLIDER_HIT_HALF_HEIGHT = 0.05  # a press within ±this of the line (and ±5 % beyond its ends) hits the scale
SLIDER_HIT_PAD_FRACTION = 0.05
CONTINUOUS_HIT_HALF_HEIGHT = 0.15  # continuous rating: a press this close to the line grabs the marker
CONTINUOUS_KEY_STEP_FRACTION = 0.005
"""Continuous rating: a held left/right arrow moves the marker this fraction of the scale per frame
(0.5 points of 0-100 per frame: 30 points/s at 60 Hz); a tap shorter than a frame still moves one step."""
LABEL_SCALE = 0.6              # anchor label height = text_height * this
LABEL_WRAP = 0.4
CONFIRM_Y = -0.33
CONFIRM_SIZE = (0.34, 0.1)
CONFIRM_TEXT_SCALE = 0.8
DISABLED_FILL = "#4A4A4A"
DISABLED_TEXT = "#8C8C8C"
BUTTON_TEXT = "#FFFFFF"
RESPONDER_SHOW_S = 0.25        # a simulated answer stays visible this long (session s, at least 2 frames)
MIN_SHOW_FRAMES = 2

# --- multiple choice ----------------------------------------------------------------------------
CHOICE_TOP = 0.13              # option buttons fill [CHOICE_BOTTOM, CHOICE_TOP]
CHOICE_BOTTOM = -0.44
CHOICE_QUESTION_Y = CHOICE_TOP + 0.17
CHOICE_ROW_MAX_LABEL = 3       # options whose first word is this short (e.g. "0 (no pain)", "1".."10") ...
CHOICE_ROW_MIN_OPTIONS = 3     # ... and at least this many are laid out as a row of number buttons
CHOICE_ROW_BUTTON_MAX = 0.14
CHOICE_ROW_Y_SHIFT = 0.08
CHOICE_LIST_BUTTON_H = 0.1
CHOICE_LIST_BUTTON_W = 1.1
CHOICE_CAPTION_SCALE = 0.45    # "(no pain)" under its number button: height = text_height * this
CHOICE_CAPTION_WRAP = 0.26
CHOICE_CAPTION_MAX_H = 0.12
CHOICE_GAP = 0.02
CHOICE_FEEDBACK_S = 0.25       # the chosen option is highlighted this long (wall s) before returning
CHOICE_RESPONDER_DELAY_S = 0.5  # a simulated participant answers after this (session s)

# --- staff overlays -----------------------------------------------------------------------------
HELP_WIDTH = 1.25
HELP_FILL = "#101010"
HELP_TEXT_SCALE = 0.55         # help text height = text_height * this
ENTRY_BOX = (1.3, 0.34)
ENTRY_FILL = "#101010"


# --- screen styles ------------------------------------------------------------------------------
class Style(NamedTuple):
    """How a plain screen's text looks: letter height (x the protocol's text_height), colour, weight."""

    scale: float = 1.0
    role: str = "text"  # "text" (the protocol's text colour) | "accent" (its accent colour)
    bold: bool = False


BODY = Style()
"""Instructions and other running text."""

SCREEN_STYLES: dict[str, Style] = {
    # instructions
    "welcome": BODY,
    "acclimatization": BODY,
    "calibration_intro": BODY,
    "pressure_instructions": BODY,
    "cold_prepare": BODY,
    "questionnaires_intro": BODY,
    # around a stimulus
    "cue": Style(1.4, "accent", True),            # "a stimulus is coming"
    "fixation": Style(FIXATION_SCALE, "text", False),
    "rest": Style(1.3, "text", False),
    # cold pressor
    "cold_keep": Style(1.3, "accent", True),
    "cold_out": Style(1.7, "accent", True),
    # session states
    "paused": Style(1.6, "text", True),
    "aborted": Style(1.2, "accent", True),
    "thanks": Style(1.2, "text", True),
}
"""Screen NAME (the `screen` argument of show()) -> style. A name not listed is shown as BODY text."""


def style_for(screen: str) -> Style:
    """Return the style of the screen named `screen` (BODY for a name not in SCREEN_STYLES)."""
    return SCREEN_STYLES.get(screen, BODY)


# --- geometry -----------------------------------------------------------------------------------
Box = list[float]
"""[left, top, right, bottom] in window px, origin top-left."""


def units_to_px(size: Sequence[float], x: float, y: float) -> tuple[float, float]:
    """Convert a point in height units (origin centre, y up) to window px (origin top-left, y down)."""
    w, h = float(size[0]), float(size[1])
    return w / 2 + x * h, h / 2 - y * h


def box_px(size: Sequence[float], cx: float, cy: float, w: float, h: float) -> Box:
    """Return the window-px box of a `w` x `h` rectangle centred on (cx, cy) in height units."""
    left, top = units_to_px(size, cx - w / 2, cy + h / 2)
    right, bottom = units_to_px(size, cx + w / 2, cy - h / 2)
    return [round(left, 1), round(top, 1), round(right, 1), round(bottom, 1)]


def inside(box: Sequence[float], x: float, y: float, pad_x: float = 0.0, pad_y: float = 0.0) -> bool:
    """Return True if window px (x, y) lies in `box` grown by `pad_x`, `pad_y`."""
    return box[0] - pad_x <= x <= box[2] + pad_x and box[1] - pad_y <= y <= box[3] + pad_y


def aspect(size: Sequence[float]) -> float:
    """Window width / height."""
    return float(size[0]) / float(size[1])


def slider_width(size: Sequence[float]) -> float:
    """Length of the scale line in height units: SLIDER_WIDTH, shrunk on narrow windows."""
    return min(SLIDER_WIDTH, aspect(size) * SLIDER_MAX_FRACTION)


def rating_geometry(size: Sequence[float]) -> dict[str, Any]:
    """Return where the rating scale and its confirm button are drawn in a window of `size` px:
    {"slider_px": the scale line itself (left end = scale_min, right end = scale_max), "confirm_px",
    "window_px": [w, h]}."""
    return {
        "slider_px": box_px(size, 0, SLIDER_Y, slider_width(size), SLIDER_HEIGHT * SLIDER_LINE_FRACTION),
        "confirm_px": box_px(size, 0, CONFIRM_Y, *CONFIRM_SIZE),
        "window_px": [int(size[0]), int(size[1])],
    }


@dataclass(frozen=True)
class ScaleMap:
    """The scale line in window px and the values at its ends: turns a pointer position into a rating
    exactly as PsychoPy's Slider maps `pos ± size/2`."""

    line: tuple[float, float, float, float]  # l, t, r, b (window px)
    lo: float
    hi: float
    hit_half_height_px: float

    @classmethod
    def for_window(cls, size: Sequence[float], lo: float, hi: float,
                   hit_half_height: float = SLIDER_HIT_HALF_HEIGHT) -> ScaleMap:
        """The scale of a rating prompt in a window of `size` px; a press within ±`hit_half_height`
        (height units) of the line hits it."""
        left, top, right, bottom = rating_geometry(size)["slider_px"]
        return cls((left, top, right, bottom), float(lo), float(hi), hit_half_height * float(size[1]))

    def value_at(self, x_px: float) -> float:
        """Return the scale value under window x `x_px` (clamped to the scale)."""
        left, _, right, _ = self.line
        frac = min(1.0, max(0.0, (x_px - left) / (right - left)))
        return self.lo + frac * (self.hi - self.lo)

    def hits(self, x_px: float, y_px: float) -> bool:
        """Return True if a press at window px (x, y) grabs the scale (±5 % beyond its ends)."""
        left, top, right, bottom = self.line
        pad_x = (right - left) * SLIDER_HIT_PAD_FRACTION
        return left - pad_x <= x_px <= right + pad_x and abs(y_px - (top + bottom) / 2) <= self.hit_half_height_px

    def clamp(self, value: float) -> float:
        """Return `value` limited to the scale."""
        return min(self.hi, max(self.lo, float(value)))


# --- multiple-choice layout ---------------------------------------------------------------------
def split_option(label: str) -> tuple[str, str]:
    """Split "10 (worst pain imaginable)" into ("10", "worst pain imaginable")."""
    head, _, rest = label.strip().partition(" ")
    return head, rest.strip().removeprefix("(").removesuffix(")").strip()


def is_row(options: Sequence[str]) -> bool:
    """Lay out as a row of number buttons (an NRS: "0 (no pain)", "1", ..., "10 (worst ...)")?"""
    parts = [split_option(o) for o in options]
    bare = sum(1 for _, caption in parts if not caption)
    return len(options) >= CHOICE_ROW_MIN_OPTIONS and all(len(h) <= CHOICE_ROW_MAX_LABEL for h, _ in parts) \
        and bare * 2 >= len(options)


class ButtonSpec(NamedTuple):
    """One option button: centre and size in height units, its label, an optional caption below it."""

    x: float
    y: float
    w: float
    h: float
    label: str
    caption: str


def choice_layout(options: Sequence[str], size: Sequence[float]) -> list[ButtonSpec]:
    """Place one button per option: a row of number buttons (an NRS) or a column of labelled buttons."""
    n = len(options)
    width_total = aspect(size) * TEXT_WRAP_FRACTION
    if is_row(options):
        bw = min(CHOICE_ROW_BUTTON_MAX, width_total / n - CHOICE_GAP)
        bh = min(CHOICE_ROW_BUTTON_MAX, bw * 1.1)
        y = (CHOICE_TOP + CHOICE_BOTTOM) / 2 + CHOICE_ROW_Y_SHIFT
        x0 = -(n * (bw + CHOICE_GAP) - CHOICE_GAP) / 2 + bw / 2
        return [ButtonSpec(x0 + i * (bw + CHOICE_GAP), y, bw, bh, *split_option(o)) for i, o in enumerate(options)]
    bh = min(CHOICE_LIST_BUTTON_H, (CHOICE_TOP - CHOICE_BOTTOM) / n - CHOICE_GAP)
    bw = min(CHOICE_LIST_BUTTON_W, width_total)
    y0 = CHOICE_TOP - bh / 2
    return [ButtonSpec(0.0, y0 - i * (bh + CHOICE_GAP), bw, bh, o, "") for i, o in enumerate(options)]
