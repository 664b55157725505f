"""Continuous (CoVAS-style) rating in a real PsychoPy window: a drag through a known path, driven with
xdotool during a "stimulus", is found in the per-frame samples; arrows and staff keys work meanwhile."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cpm_session.clock import RealClock
from cpm_session.config.protocol import load_protocol
from cpm_session.ui.base import RatingPrompt
from cpm_session.ui.status import StatusView
from tests.conftest import THERMAL
from tests.gui_helpers import ARTIFACTS, Clicker, Screen, answering, display, slider_x, wait_screen, xdo

pytestmark = pytest.mark.gui
__all__ = ["display"]
SHOTS = ARTIFACTS / "screens_continuous"

PATH = [0.10, 0.35, 0.62, 0.90, 0.55, 0.20, 0.75, 0.05]
"""Positions along the scale (fractions) the pointer visits, holding each for HOLD_S."""
HOLD_S = 0.2


@pytest.fixture(scope="module")
def ui(display: str) -> Iterator[Any]:
    from cpm_session.ui.psychopy import PsychoPyUI

    protocol = load_protocol(THERMAL)
    u = PsychoPyUI(protocol, RealClock(1.0), fullscreen=False, size=(1280, 800), screenshot_dir=SHOTS,
                   status=StatusView(enabled=False))
    u.open()
    u.show("fixation", protocol.texts.stimulus_on)
    u.tick()
    yield u
    u.close()


@pytest.fixture(scope="module")
def screen(ui: Any) -> Screen:
    return Screen()


def prompt(ui: Any) -> RatingPrompt:
    t = ui.protocol.texts
    return RatingPrompt("ts_pre", 1, t.rate_heat, t.anchor_low, t.anchor_high, t.confirm, 10.0)


def during_stimulus(ui: Any, script: Any, stimulus_id: str = "ts_pre-1") -> tuple[list[tuple[float, float]], Any, float]:
    """Start a continuous rating now (the stimulus onset), tick until `script` (run in a thread) is done,
    stop it; return (samples, script value, onset session time)."""
    onset = ui.clock.now()
    ui.start_continuous(prompt(ui), stimulus_id, onset)
    clicker = Clicker(script)
    clicker.start()
    try:
        deadline = time.monotonic() + 30
        while clicker.is_alive() and time.monotonic() < deadline:
            ui.tick()
        for _ in range(3):
            ui.tick()
    finally:
        samples = ui.stop_continuous()
    return samples, clicker.result(), onset


def test_a_dragged_path_is_found_in_the_samples_within_one_frame(ui: Any, screen: Screen) -> None:
    geom = ui.prompt_geometry(prompt(ui))
    clock = ui.clock

    def script() -> list[tuple[float, float, float]]:
        wait_screen(ui, "continuous_heat")
        moves = []  # (session t before the move, t once the pointer is there, value there)
        x, y = slider_x(geom, PATH[0])
        screen.move(x, y)
        t0 = clock.now()
        xdo("mousedown", 1)
        moves.append((t0, clock.now(), 100 * PATH[0]))
        time.sleep(HOLD_S)
        for fraction in PATH[1:]:
            sx, sy = screen.to_screen(*slider_x(geom, fraction))
            t0 = clock.now()
            xdo("mousemove", "--sync", sx, sy)
            moves.append((t0, clock.now(), 100 * fraction))
            time.sleep(HOLD_S)
        xdo("mouseup", 1)
        time.sleep(0.1)
        return moves

    samples, moves, onset = during_stimulus(ui, script)
    times = [t for t, _ in samples]
    assert all(b > a for a, b in zip(times, times[1:]))  # one sample per frame, in flip order
    frame = statistics.median(b - a for a, b in zip(times, times[1:]))
    assert 1 / 100 < frame < 1 / 40, frame  # ~60-80 frames/s (flip does not wait for vsync under Xvfb)
    assert samples[0][1] == 0.0 and samples[0][0] < 0.1  # the marker starts at the scale minimum, from onset
    late = []
    for i, (_before, after, value) in enumerate(moves):
        after = after - onset
        nxt = moves[i + 1][0] - onset if i + 1 < len(moves) else times[-1] + 1
        after_move = [(t, v) for t, v in samples if after < t < nxt]
        shown = [k for k, (_, v) in enumerate(after_move) if abs(v - value) <= 1.0]
        assert shown, f"{value:.0f} never shown after the move at t={after:.3f}: {moves=} {after_move=} {samples=}"
        # within one frame: at most one frame flipped after the pointer got there still shows the old place
        assert shown[0] <= 1, (value, after_move[:3])
        late.append(after_move[shown[0]][0] - after)
        # ... and it stays there, within 1 point, until the next move
        assert all(abs(v - value) <= 1.0 for _, v in after_move[shown[0]:]), value
    print(f"move -> first frame showing it: median {statistics.median(late) * 1000:.1f} ms, "
          f"max {max(late) * 1000:.1f} ms; frame {frame * 1000:.1f} ms")
    ui.flush_screenshots()
    assert (SHOTS / "continuous_heat.png").exists()


def test_arrows_move_the_marker_one_step_per_frame_and_staff_keys_still_work(ui: Any, screen: Screen) -> None:
    keys: list[str] = []
    ui.key_handler = keys.append

    def script() -> None:
        wait_screen(ui, "continuous_heat")
        xdo("windowfocus", screen.wid)
        xdo("keydown", "Right")
        time.sleep(0.5)
        xdo("keyup", "Right")
        time.sleep(0.2)
        xdo("key", "Left")  # a tap: one step
        time.sleep(0.2)
        xdo("key", "p")  # a staff key during the continuous rating
        ui.press("w", ui.clock.now())  # a key pressed by software (a simulated staff member)
        time.sleep(0.2)
        screen.press_release(640, 80)  # a click far from the scale does not grab the marker
        time.sleep(0.2)

    try:
        samples, _, _ = during_stimulus(ui, script, "cs-1")
    finally:
        ui.key_handler = None
    # the marker starts at the scale minimum (0); a key held down before the first sampled frame has already
    # moved it one step by then, so the steps are counted from 0, not from the first sample
    values = [0.0] + [v for _, v in samples]
    steps = [round(b - a, 6) for a, b in zip(values, values[1:]) if b != a]
    assert steps.count(-0.5) == 1 and set(steps) == {0.5, -0.5}, steps  # 0.5 points (of 0-100) per frame
    rise = steps.count(0.5) * 0.5
    assert 0.5 * 60 * 0.5 * 0.6 <= rise <= 0.5 * 60 * 0.5 * 1.4  # ~0.5 s held at ~60 frames/s
    assert values[-1] == pytest.approx(rise - 0.5)
    assert keys == ["p", "w"]


def test_a_simulated_participant_moves_the_slider(ui: Any) -> None:
    class Sim:
        def respond(self, p: RatingPrompt) -> tuple[float, float]:
            return 40.0, 1.0

        def continuous(self, t: float) -> float:
            return 200.0 * t  # rises 200 points/s: clamped at 100

    sim = Sim()
    with answering(ui, sim.respond):
        samples, _, _ = during_stimulus(ui, lambda: time.sleep(0.8))
    assert samples[0][1] < 10 and samples[-1][1] == 100.0
    # each frame shows where the participant was while it was drawn: at most ~3 frames before its flip
    off = [(t, v) for t, v in samples if not min(100.0, 200.0 * (t - 0.05)) - 1e-6 <= v <= min(100.0, 200.0 * t) + 1e-6]
    assert not off, off
    values = [v for _, v in samples]
    assert all(b >= a for a, b in zip(values, values[1:]))
    with answering(ui, lambda p: (40.0, 1.0)):  # no continuous(): its prompt answer is held
        samples, _, _ = during_stimulus(ui, lambda: time.sleep(0.2))
    assert {v for _, v in samples} == {40.0}
    assert ui.status_view.state["screen"] == "fixation"  # the plain screen is back after stop_continuous()
