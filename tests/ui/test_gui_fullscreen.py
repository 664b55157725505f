"""Fullscreen: the window fills the screen and the layout (and its logged geometry) follows the real size."""

from __future__ import annotations

import pytest

from cpm_session.clock import RealClock
from cpm_session.config.protocol import load_protocol
from cpm_session.ui.base import RatingPrompt
from cpm_session.ui.status import StatusView
from tests.conftest import THERMAL
from tests.gui_helpers import ARTIFACTS, content_bbox, display, load_png, xdo

pytestmark = pytest.mark.gui
__all__ = ["display"]


def test_fullscreen_window_fills_the_screen(display: str) -> None:
    from cpm_session.ui.psychopy import PsychoPyUI

    screen_w, screen_h = (int(v) for v in xdo("getdisplaygeometry").split())
    protocol = load_protocol(THERMAL)
    ui = PsychoPyUI(protocol, RealClock(1.0), fullscreen=True, status=StatusView(enabled=False))
    ui.show("welcome", protocol.texts.welcome)  # before open(): laid out when the window opens
    ui.open()
    try:
        assert list(ui.win.size) == [screen_w, screen_h]
        t = protocol.texts
        prompt = RatingPrompt("x", 1, t.rate_heat, t.anchor_low, t.anchor_high, t.confirm, 5.0)
        geom = ui.prompt_geometry(prompt)
        assert geom["window_px"] == [screen_w, screen_h]
        left, _, right, _ = geom["slider_px"]
        assert right - left == pytest.approx(min(screen_h, 0.72 * screen_w), abs=0.2)
        assert left + right == pytest.approx(screen_w, abs=0.2)  # centred
        ui.clock = RealClock(50.0)
        ui.responder = lambda p: (20.0, 1.0)
        assert ui.rate(prompt).value == 20.0
        ui.responder = None
        ui.show("welcome", t.welcome)  # unchanged since before open()
        ui.tick()
        shot = ARTIFACTS / "fullscreen_welcome.png"
        ui.screenshot(str(shot))
        img = load_png(shot)
        assert img.shape[:2] == (screen_h, screen_w)
        box = content_bbox(img, protocol.screen.background)
        assert box is not None and box[0] > 5 and box[2] < screen_w - 5
    finally:
        ui.close()
