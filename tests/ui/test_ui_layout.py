"""Participant-screen layout without a window: geometry, the scale mapping, and the style of every screen."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpm_session.ui.psychopy import layout as L
from tests.conftest import PRESSURE
from tests.helpers import simulate


def test_rating_geometry_is_the_scale_line_in_window_px() -> None:
    geom = L.rating_geometry((1280, 800))
    assert geom["slider_px"] == [240.0, 398.0, 1040.0, 402.0]  # 1 height unit long, centred, 4 px thick
    assert geom["window_px"] == [1280, 800]
    left, top, right, bottom = geom["confirm_px"]
    assert left < 640 < right and top > 402
    narrow = L.rating_geometry((600, 800))["slider_px"]
    assert narrow[2] - narrow[0] == pytest.approx(0.72 * 600, abs=0.2)  # shrunk to 72 % of a narrow window


def test_scale_map_is_psychopys_slider_mapping() -> None:
    scale = L.ScaleMap.for_window((1280, 800), 0, 100)
    assert [scale.value_at(x) for x in (200, 240, 440, 640, 1040, 1100)] == [0, 0, 25, 50, 100, 100]
    assert scale.hits(640, 400) and scale.hits(205, 420) and not scale.hits(640, 445) and not scale.hits(190, 400)
    assert L.ScaleMap.for_window((1280, 800), 0, 100, L.CONTINUOUS_HIT_HALF_HEIGHT).hits(640, 500)


def test_styles_are_chosen_by_screen_name_not_by_text() -> None:
    assert L.style_for("cue") == L.Style(1.4, "accent", True)
    assert L.style_for("cold_out") == L.Style(1.7, "accent", True)
    assert L.style_for("fixation").scale == L.FIXATION_SCALE
    assert L.style_for("anything else") == L.BODY


def test_every_screen_a_visit_shows_has_a_style(tmp_path: Path) -> None:
    """Simulated visits (thermal with a pause, thermal stopped by Escape, pressure) show only screens
    listed in SCREEN_STYLES."""
    shown: set[str] = set()
    for name, kw in (("pause", {"keys": [("p", 700.0), ("p", 705.0)]}), ("stop", {"keys": [("escape", 300.0)]}),
                     ("pressure", {"protocol": PRESSURE})):
        _, ui, _ = simulate(tmp_path / name, **kw)  # type: ignore[arg-type]
        shown |= {screen for _, screen, _ in ui.shown}
    shown -= {"rating", "question"}  # the headless names of rate() and choose()
    assert {"welcome", "cue", "fixation", "cold_keep", "paused", "aborted", "pressure_instructions"} <= shown
    assert shown <= set(L.SCREEN_STYLES), shown - set(L.SCREEN_STYLES)
