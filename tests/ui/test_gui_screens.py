"""Every participant screen in a real window: screenshots checked for content and clipping; staff keys via xdotool."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cpm_session.clock import RealClock
from cpm_session.config.protocol import load_protocol
from cpm_session.ui.base import STAFF_KEYS, Choice, RatingPrompt
from cpm_session.ui.status import StatusView
from tests.conftest import THERMAL
from tests.gui_helpers import SCREENS, Clicker, Screen, answering, content_bbox, display, load_png

pytestmark = pytest.mark.gui
__all__ = ["display"]

EDGE_MARGIN_PX = 6
"""Content closer than this to a window edge counts as clipped."""


@pytest.fixture(scope="module")
def ui(display: str) -> Iterator[Any]:
    from cpm_session.ui.psychopy import PsychoPyUI

    u = PsychoPyUI(load_protocol(THERMAL), RealClock(20.0), fullscreen=False, size=(1280, 800),
                   screenshot_dir=SCREENS, status=StatusView(enabled=False))
    u.open()
    yield u
    u.close()


def screens(ui: Any) -> list[tuple[str, str, float | None]]:
    """(screen name, text, countdown seconds) for every plain screen the engine shows."""
    t = ui.protocol.texts
    return [
        ("welcome", t.welcome, None), ("acclimatization", t.acclimatization, 600.0),
        ("calibration_intro", t.calibration_intro, None), ("cue", t.stimulus_coming, None),
        ("fixation", t.stimulus_on, None), ("rest", t.rest, None),
        ("pressure_instructions", t.pressure_instructions, None), ("cold_prepare", t.cold_pressor_prepare, None),
        ("cold_keep", t.cold_pressor_keep, 60.0), ("cold_out", t.cold_pressor_out, None),
        ("questionnaires_intro", t.questionnaires_intro, None), ("paused", t.paused, None),
        ("aborted", t.aborted, None), ("thanks", t.thanks, None),
        ("long_text", "\n".join(["A very long instruction line that keeps going and going"] * 14), 30.0),
    ]


def staff_view(ui: Any) -> str:
    """Render the UI's staff status view as plain text."""
    from rich.console import Console

    console = Console(file=io.StringIO(), width=110, record=True, color_system=None)
    console.print(ui.status_view.render())
    return console.export_text()


def check_png(path: Path, background: str) -> tuple[int, int, int, int]:
    """Assert a screenshot is 1280x800, not blank, and its content keeps off the edges; return its bbox."""
    img = load_png(path)
    assert img.shape == (800, 1280, 3), path
    assert float(np.var(img)) > 1.0, f"{path.name} is blank"
    box = content_bbox(img, background)
    assert box is not None, f"{path.name} shows nothing but background"
    left, top, right, bottom = box
    assert left >= EDGE_MARGIN_PX and top >= EDGE_MARGIN_PX, f"{path.name} clipped at left/top: {box}"
    assert right <= 1279 - EDGE_MARGIN_PX and bottom <= 799 - EDGE_MARGIN_PX, f"{path.name} clipped at right/bottom: {box}"
    return box


def test_every_screen_is_saved_non_blank_and_unclipped(ui: Any) -> None:
    bg = ui.protocol.screen.background
    for name, text, countdown in screens(ui):
        ui.show(name, text, countdown_to=None if countdown is None else ui.clock.now() + countdown)
        ui.tick()
        ui.tick()
    t = ui.protocol.texts
    with answering(ui, lambda p: (55.0, 2.0)):
        for kind, question in (("heat", t.rate_heat), ("hand", t.rate_hand), ("pressure", t.rate_pressure)):
            ui.rate(RatingPrompt("x", 1, question, t.anchor_low, t.anchor_high, t.confirm, 30.0, kind=kind))
    with answering(ui, chooser=lambda c: 2):
        ui.choose(Choice("Over the past week, how often did you feel tense or 'wound up'?",
                         ["Most of the time", "A lot of the time", "From time to time, occasionally", "Not at all"],
                         20))
    with answering(ui, chooser=lambda c: 4):
        ui.choose(Choice("Pain in the last 24 hours (0 = none, 10 = worst)", [str(i) for i in range(11)], 20))
    ui.help_visible = True
    ui.tick()
    ui.help_visible = False
    ui.show("acclimatization", t.acclimatization, countdown_to=ui.clock.now() + 600)
    assert ui.status_view.state["screen"] == "acclimatization"  # the staff view follows the screen ...
    found = re.search(r"acclimatization ends in\s+(\d+):(\d\d)", staff_view(ui))
    assert found and 540 <= int(found[1]) * 60 + int(found[2]) <= 600, staff_view(ui)  # 600 session s, minus < 3 wall s
    ui.show("welcome", t.welcome)
    assert ui.status_view.state["screen"] == "welcome"  # ... and drops the countdown with it
    assert "ends in" not in staff_view(ui)
    ui.screenshot(str(SCREENS / "manual_welcome.png"))

    expected = [n for n, _, _ in screens(ui)] + ["rating_heat", "rating_heat_answered", "rating_hand_answered",
                                                 "rating_pressure_answered", "choice_list", "choice_row", "help"]
    ui.flush_screenshots()
    missing = [n for n in expected if n not in ui.screens_saved]
    assert not missing, f"no screenshot of {missing}"
    boxes = {n: check_png(ui.screens_saved[n], bg) for n in expected}
    boxes["manual_welcome"] = check_png(SCREENS / "manual_welcome.png", bg)
    assert boxes["manual_welcome"] == boxes["welcome"]
    # the 14-line text was shrunk to fit above its countdown
    assert boxes["long_text"][1] >= EDGE_MARGIN_PX
    # the fixation cross is centred
    left, tp, r, b = boxes["fixation"]
    assert abs((left + r) / 2 - 639.5) <= 1 and abs((tp + b) / 2 - 399.5) <= 1
    # the countdown is drawn in the accent colour below the text, without touching it (even for long text)
    for name in ("acclimatization", "cold_keep", "long_text"):
        img = load_png(ui.screens_saved[name]).astype(int)
        accent_rows = np.nonzero((np.abs(img - [0x3C, 0x8C, 0xE7]).max(axis=2) < 40).any(axis=1))[0]
        text_rows = np.nonzero((np.abs(img - [0xF0, 0xF0, 0xF0]).max(axis=2) < 40).any(axis=1))[0]
        if name == "cold_keep":  # its text is in the accent colour too: the countdown is the lower block
            gaps = np.nonzero(np.diff(accent_rows) > 20)[0]
            assert len(gaps) == 1, name
            continue
        assert len(accent_rows) and len(text_rows), name
        assert accent_rows.min() > text_rows.max() + 10, name
        assert accent_rows.min() > 400, name


def test_staff_keys_reach_the_handler_and_h_toggles_help(ui: Any) -> None:
    screen = Screen()
    got: list[str] = []
    ui.key_handler = got.append
    ui.show("welcome", ui.protocol.texts.welcome)
    try:
        clicker = Clicker(lambda: screen.key("space", "s", "p", "w", "n", "h", "x", "Escape"))
        clicker.start()
        deadline = time.monotonic() + 10
        while len(got) < 7 and time.monotonic() < deadline:
            ui.tick()
        clicker.result()
    finally:
        ui.key_handler = None
    assert got == ["space", "s", "p", "w", "n", "h", "escape"]  # 'x' is not a staff key
    assert set(got) == set(STAFF_KEYS)
    assert ui.help_visible
    ui.help_visible = False


class Stop(Exception):
    pass


def test_an_exception_from_the_handler_unwinds_tick_and_rate(ui: Any) -> None:
    """Escape = emergency stop: whatever the handler raises must leave tick() and rate() at once."""
    screen = Screen()

    def handler(key: str) -> None:
        if key == "escape":
            raise Stop(key)

    ui.key_handler = handler
    try:
        clicker = Clicker(lambda: (time.sleep(0.2), screen.key("Escape")))
        clicker.start()
        with pytest.raises(Stop):
            for _ in range(600):
                ui.tick()
        clicker.result()
        t = ui.protocol.texts
        prompt = RatingPrompt("x", 1, t.rate_heat, t.anchor_low, t.anchor_high, t.confirm, 200.0)
        clicker = Clicker(lambda: (time.sleep(0.3), screen.key("Escape")))
        clicker.start()
        t0 = time.perf_counter()
        with pytest.raises(Stop):
            ui.rate(prompt)  # 200 session s = 10 wall s unless Escape unwinds it
        assert time.perf_counter() - t0 < 3
        clicker.result()
    finally:
        ui.key_handler = None
