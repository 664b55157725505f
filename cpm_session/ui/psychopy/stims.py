"""The PsychoPy stimuli of the participant screen, built once per window and reused frame after frame.

Colours and texts come from the protocol (`[screen]`, `[texts]`), so a translated protocol file
translates the screen. Only the window module creates a `Stims`, once the window is open (importing
`psychopy.visual` needs a display).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cpm_session.config.protocol import Protocol
from cpm_session.ui.base import RatingPrompt
from cpm_session.ui.help import help_lines
from cpm_session.ui.psychopy import layout as L


@dataclass
class Button:
    """A clickable box: its rectangle and label stimuli and where it is in window px."""

    rect: Any
    label: Any
    box_px: L.Box


class Stims:
    """Make (and cache) the texts, slider, buttons and overlays drawn in `win`."""

    def __init__(self, win: Any, visual: Any, protocol: Protocol) -> None:
        self.win = win
        self.visual = visual
        self.protocol = protocol
        fonts = Path(visual.__file__).parent.parent / "assets" / "fonts"
        self.fontfiles = [str(fonts / f) for f in L.FONT_FILES if (fonts / f).exists()]
        self._sliders: dict[tuple[Any, ...], Any] = {}
        self._cache: dict[str, Any] = {}

    # --- basics ---------------------------------------------------------------------------------
    @property
    def fg(self) -> str:
        return self.protocol.screen.text_color

    @property
    def accent(self) -> str:
        return self.protocol.screen.accent_color

    @property
    def text_height(self) -> float:
        return self.protocol.screen.text_height

    @property
    def size(self) -> tuple[int, int]:
        return int(self.win.size[0]), int(self.win.size[1])

    def box_px(self, cx: float, cy: float, w: float, h: float) -> L.Box:
        """Window-px box of a rectangle centred on (cx, cy), in height units."""
        return L.box_px(self.size, cx, cy, w, h)

    def text(self, text: str, *, pos: tuple[float, float], height: float, color: str | None = None,
             bold: bool = False, align: str = "center", anchor: str = "center", anchor_v: str = "center",
             wrap: float | None = None) -> Any:
        """Make a TextStim in the shipped font (wrapped at TEXT_WRAP_FRACTION of the width by default)."""
        return self.visual.TextStim(
            self.win, text=text, pos=pos, height=height, color=color or self.fg, colorSpace="hex", font=L.FONT,
            fontFiles=self.fontfiles, bold=bold, alignText=align, anchorHoriz=anchor, anchorVert=anchor_v,
            wrapWidth=wrap if wrap is not None else L.aspect(self.size) * L.TEXT_WRAP_FRACTION, autoLog=False)

    def rect(self, *, width: float, height: float, pos: tuple[float, float] = (0, 0), fill: str | None,
             line: str | None = None, line_width: float = 1.0) -> Any:
        """Make a Rect (hex colours; None = not drawn)."""
        return self.visual.Rect(self.win, width=width, height=height, pos=pos, fillColor=fill, lineColor=line,
                                lineWidth=line_width, colorSpace="hex", autoLog=False)

    def fit(self, stim: Any, max_height: float) -> None:
        """Shrink `stim`'s letter height until its wrapped text is at most `max_height` (height units) tall."""
        h_px = float(self.win.size[1])
        for _ in range(L.FIT_ITERATIONS):
            if getattr(stim, "_needSetText", False):  # lay the text out now (TextStim defers it to draw())
                stim._setTextShaders(stim.text)
                stim._needSetText = False
            text_h = float(stim.boundingBox[1]) / h_px
            if text_h <= max_height or stim.height <= L.FIT_MIN_HEIGHT:
                return
            stim.height = max(L.FIT_MIN_HEIGHT, stim.height * max(0.5, max_height / text_h * 0.97))

    # --- plain screens and overlays -------------------------------------------------------------
    def cross(self) -> list[Any]:
        """The '+' fixation cross, drawn exactly at the centre (a glyph sits off-centre)."""
        return [self.rect(width=w, height=h, fill=self.fg)
                for w, h in ((L.FIXATION_SIZE, L.FIXATION_LINE), (L.FIXATION_LINE, L.FIXATION_SIZE))]

    def help_overlay(self) -> list[Any]:
        """The staff key help: an opaque box, a title, and aligned key / description columns."""
        th = self.text_height * L.HELP_TEXT_SCALE
        lines = help_lines()
        w = L.HELP_WIDTH
        step = th * 1.55
        h = 0.09 + len(lines) * step + 0.06
        left = -w / 2 + 0.05
        y0 = h / 2 - 0.06
        stims: list[Any] = [
            self.rect(width=w, height=h, fill=L.HELP_FILL, line=self.accent, line_width=3),
            self.text("Staff keys (h: hide)", pos=(0, y0), height=th * 1.2, color=self.accent, bold=True, wrap=w),
        ]
        for i, (label, text) in enumerate(lines):
            y = y0 - 0.09 - i * step
            stims.append(self.text(label, pos=(left, y), height=th, bold=True, align="left", anchor="left", wrap=0.2))
            stims.append(self.text(text, pos=(left + 0.14, y), height=th, align="left", anchor="left", wrap=w - 0.22))
        return stims

    # --- rating ---------------------------------------------------------------------------------
    def slider(self, prompt: RatingPrompt) -> Any:
        """The (cached) read-only Slider for `prompt`'s anchors and scale, with no marker shown.

        It only draws: input comes from the window's mouse events (see rating.py)."""
        key = (prompt.anchor_low, prompt.anchor_high, prompt.scale_min, prompt.scale_max, self.size)
        slider = self._sliders.get(key)
        if slider is None:
            slider = self.visual.Slider(
                self.win, ticks=(prompt.scale_min, prompt.scale_max), labels=[prompt.anchor_low, prompt.anchor_high],
                granularity=0, style="rating", pos=(0, L.SLIDER_Y), size=(L.slider_width(self.size), L.SLIDER_HEIGHT),
                units="height", readOnly=True, labelColor=self.fg, markerColor=self.accent, lineColor=self.fg,
                colorSpace="hex", font=L.FONT, labelHeight=self.text_height * L.LABEL_SCALE,
                labelWrapWidth=L.LABEL_WRAP, autoLog=False)
            self._sliders[key] = slider
        slider.markerPos = None
        return slider

    def confirm_button(self, text: str) -> Button:
        """The (cached) confirm button under the scale, labelled `text`, drawn disabled."""
        btn = self._cache.get("confirm")
        if btn is None:
            rect = self.rect(width=L.CONFIRM_SIZE[0], height=L.CONFIRM_SIZE[1], pos=(0, L.CONFIRM_Y),
                             fill=L.DISABLED_FILL)
            label = self.text(text, pos=(0, L.CONFIRM_Y), height=self.text_height * L.CONFIRM_TEXT_SCALE,
                              color=L.DISABLED_TEXT, bold=True)
            btn = Button(rect, label, self.box_px(0, L.CONFIRM_Y, *L.CONFIRM_SIZE))
            self._cache["confirm"] = btn
        if btn.label.text != text:
            btn.label.text = text
        return btn

    def set_enabled(self, button: Button, enabled: bool) -> None:
        """Colour `button` as enabled (accent) or disabled (grey)."""
        button.rect.fillColor = self.accent if enabled else L.DISABLED_FILL
        button.label.color = L.BUTTON_TEXT if enabled else L.DISABLED_TEXT

    def question(self, text: str, y: float = L.QUESTION_Y) -> Any:
        """The (cached) question text above a scale or buttons, shrunk to MAX_QUESTION_H."""
        q = self._cache.get("question")
        if q is None:
            q = self.text(text, pos=(0, y), height=self.text_height)
            self._cache["question"] = q
        if q.text != text or q.height != self.text_height:
            q.text = text
            q.height = self.text_height
            self.fit(q, L.MAX_QUESTION_H)
        q.pos = (0, y)
        return q

    # --- multiple choice ------------------------------------------------------------------------
    def choice_buttons(self, options: list[str]) -> tuple[list[Button], list[Any]]:
        """One button per option (see layout.choice_layout) and the captions under number buttons."""
        th = self.text_height
        half_w = L.aspect(self.size) / 2
        row = L.is_row(options)
        buttons: list[Button] = []
        captions: list[Any] = []
        for spec in L.choice_layout(options, self.size):
            rect = self.rect(width=spec.w, height=spec.h, pos=(spec.x, spec.y), fill=L.DISABLED_FILL, line=self.fg,
                             line_width=2)
            if row:
                label = self.text(spec.label, pos=(spec.x, spec.y), height=min(th, spec.h * 0.5), wrap=spec.w)
            else:
                label = self.text(spec.label, pos=(spec.x, spec.y), height=min(th * 0.8, spec.h * 0.6),
                                  wrap=spec.w * 0.95)
                self.fit(label, spec.h * 0.95)
            buttons.append(Button(rect, label, self.box_px(spec.x, spec.y, spec.w, spec.h)))
            if spec.caption:
                wrap = max(spec.w, min(L.CHOICE_CAPTION_WRAP, 2 * (half_w - abs(spec.x)) - 0.04))
                cap = self.text(spec.caption, pos=(spec.x, spec.y - spec.h / 2 - 0.025),
                                height=th * L.CHOICE_CAPTION_SCALE, wrap=wrap, anchor_v="top")
                self.fit(cap, L.CHOICE_CAPTION_MAX_H)
                captions.append(cap)
        return buttons, captions
