"""The rating scale, choices and staff text entry in a real PsychoPy window, clicked with xdotool."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from cpm_session.clock import RealClock
from cpm_session.config.protocol import load_protocol
from cpm_session.ui.base import Choice, RatingPrompt
from cpm_session.ui.status import StatusView
from tests.conftest import THERMAL
from tests.gui_helpers import (
    ARTIFACTS,
    Clicker,
    Screen,
    answering,
    centre,
    content_bbox,
    display,
    load_png,
    slider_x,
    wait_screen,
    xdo,
)

pytestmark = pytest.mark.gui
__all__ = ["display"]  # the session fixture, imported so pytest sees it
SHOTS = ARTIFACTS / "screens_rating"
"""This module's own screenshots (test_gui_screens owns screens/; under xdist both run at once)."""


@pytest.fixture(scope="module")
def ui(display: str) -> Iterator[Any]:
    from cpm_session.ui.psychopy import PsychoPyUI

    protocol = load_protocol(THERMAL)
    u = PsychoPyUI(protocol, RealClock(1.0), fullscreen=False, size=(1280, 800), screenshot_dir=SHOTS,
                   status=StatusView(enabled=False))
    u.open()
    u.show("welcome", protocol.texts.welcome)
    u.tick()
    yield u
    u.close()


@pytest.fixture(scope="module")
def screen(ui: Any) -> Screen:
    return Screen()


def prompt(ui: Any, timeout_s: float = 10.0, kind: str = "heat") -> RatingPrompt:
    t = ui.protocol.texts
    return RatingPrompt("ts_pre", 1, t.rate_heat, t.anchor_low, t.anchor_high, t.confirm, timeout_s, kind=kind)


def run_rating(ui: Any, p: RatingPrompt, script: Any) -> tuple[Any, Any]:
    """Run ui.rate(p) in this thread while `script(geometry)` clicks in another, once the prompt is on
    screen (the geometry is the one the session logs: prompt_geometry()); return (result, script value)."""
    geometry = ui.prompt_geometry(p)
    clicker = Clicker(lambda: (wait_screen(ui, f"rating_{p.kind}"), script(geometry))[1])
    clicker.start()
    result = ui.rate(p)
    return result, clicker.result()


def test_geometry_is_the_scale_line_in_window_px(ui: Any) -> None:
    geom = ui.prompt_geometry(prompt(ui))
    assert geom["window_px"] == [1280, 800]
    left, top, right, bottom = geom["slider_px"]
    # the line is 1.0 height unit long, centred: 800 px from x=240 to x=1040, 4 px thick around y=400
    assert (left, right) == (240.0, 1040.0)
    assert top < 400 < bottom and bottom - top == pytest.approx(4.0)
    cl, ct, cr, cb = geom["confirm_px"]
    assert cl < 640 < cr and ct > bottom


@pytest.mark.parametrize("fraction", [0.0, 0.13, 0.5, 0.77, 1.0])
def test_click_at_a_fraction_of_the_scale_records_that_rating(ui: Any, screen: Screen, fraction: float) -> None:
    def script(geom: dict[str, Any]) -> None:
        # confirm is disabled before the first click: pressing it must not end the prompt
        screen.press_release(*centre(geom["confirm_px"]))
        time.sleep(0.15)
        screen.press_release(*slider_x(geom, fraction))
        time.sleep(0.1)
        screen.press_release(*centre(geom["confirm_px"]))

    t0 = time.perf_counter()
    result, _ = run_rating(ui, prompt(ui), script)
    elapsed = time.perf_counter() - t0
    assert result.value is not None
    assert result.value == pytest.approx(100 * fraction, abs=1.0)
    assert 0.1 < result.rt_s < elapsed  # the disabled-confirm click came first, so rt > 0.1 s
    assert result.geometry["slider_px"] == [240.0, 398.0, 1040.0, 402.0]


def test_confirm_button_is_grey_until_a_value_is_chosen(ui: Any) -> None:
    """The first frame (no value) and the first answered frame were saved by the screenshot dir."""
    with answering(ui, lambda p: (50.0, 0.3)):
        ui.rate(prompt(ui))  # makes sure both screens were shown (if run alone)
    ui.flush_screenshots()
    geom = ui.prompt_geometry(prompt(ui))
    x, y = (int(v) for v in centre(geom["confirm_px"]))
    before = load_png(SHOTS / "rating_heat.png")
    after = load_png(SHOTS / "rating_heat_answered.png")
    assert tuple(before[y, x - 100]) == (0x4A, 0x4A, 0x4A)  # DISABLED_FILL, away from the label
    assert tuple(after[y, x - 100]) == (0x3C, 0x8C, 0xE7)  # the protocol's accent colour
    # no marker before the first click: the scale row only holds the line and the two end ticks
    lt = geom["slider_px"]
    row_before = before[int(lt[1]) - 12: int(lt[3]) + 12, int(lt[0]) + 10: int(lt[2]) - 10]
    assert content_bbox(row_before, "#F0F0F0", tol=40) is not None  # the white line is there
    assert not ((row_before[..., 2] > 200) & (row_before[..., 0] < 100)).any()  # but no blue marker


def test_a_quick_tap_is_not_lost(ui: Any, screen: Screen) -> None:
    """A press and release within one frame (a touch-screen tap) still counts: events, not polling."""
    def script(geom: dict[str, Any]) -> None:
        screen.move(*slider_x(geom, 0.42))
        xdo("click", 1)
        time.sleep(0.1)
        screen.press_release(*centre(geom["confirm_px"]), hold_s=0.0)

    result, _ = run_rating(ui, prompt(ui), script)
    assert result.value == pytest.approx(42, abs=1.0)


def test_drag_is_traced_every_frame_and_the_release_is_the_rating(ui: Any, screen: Screen) -> None:
    def script(geom: dict[str, Any]) -> None:
        x0, y = slider_x(geom, 0.2)
        x1, _ = slider_x(geom, 0.8)
        screen.drag(x0, x1, y, steps=15, step_s=0.03)
        time.sleep(0.1)
        screen.press_release(*centre(geom["confirm_px"]))

    result, _ = run_rating(ui, prompt(ui), script)
    assert result.value == pytest.approx(80, abs=1.0)
    values = [v for _, v in result.trace]
    times = [t for t, _ in result.trace]
    assert len(values) >= 15  # about 0.5 s of dragging at 60 frames/s
    assert values[0] == pytest.approx(20, abs=1.0) and values[-1] == pytest.approx(80, abs=1.0)
    assert all(b >= a - 1e-9 for a, b in zip(values, values[1:], strict=False))  # moved left to right
    assert all(b >= a for a, b in zip(times, times[1:], strict=False))
    assert len({round(v) for v in values}) >= 8  # intermediate positions were sampled, not just the ends


def test_time_out_gives_none_even_with_an_unconfirmed_value(ui: Any, screen: Screen) -> None:
    ui.clock = RealClock(10.0)  # 6 session s = 0.6 wall s
    try:
        t0 = time.perf_counter()
        result = ui.rate(prompt(ui, timeout_s=6.0))
        assert result.value is None and result.rt_s is None
        assert 0.55 < time.perf_counter() - t0 < 1.5

        def script(geom: dict[str, Any]) -> None:
            screen.press_release(*slider_x(geom, 0.6))

        result, _ = run_rating(ui, prompt(ui, timeout_s=8.0), script)
        assert result.value is None
        assert result.trace and result.trace[-1][1] == pytest.approx(60, abs=1.0)
    finally:
        ui.clock = RealClock(1.0)


def test_responder_places_the_marker_after_its_response_time(ui: Any) -> None:
    ui.clock = RealClock(5.0)
    seen: list[str] = []

    def responder(p: RatingPrompt) -> tuple[float, float]:
        seen.append(ui.status_view.state["screen"])  # asked once the prompt is on screen
        return 37.5, 2.0  # 2 session s = 0.4 wall s

    ui.show("welcome", ui.protocol.texts.welcome)
    try:
        t0 = time.perf_counter()
        with answering(ui, responder):
            result = ui.rate(prompt(ui))
        assert seen == ["rating_heat (ts_pre #1)"]  # the staff view shows the prompt while it is up ...
        assert ui.status_view.state["screen"] == "welcome"  # ... and the plain screen again after
        assert result.value == 37.5
        assert result.rt_s == pytest.approx(2.0, abs=0.3)
        assert time.perf_counter() - t0 < 1.5
        with answering(ui, lambda p: (None, 3.0)):
            result = ui.rate(prompt(ui, timeout_s=3.0))
        assert result.value is None
    finally:
        ui.clock = RealClock(1.0)


def test_a_pause_inside_a_rating_does_not_eat_the_answer_time(ui: Any, screen: Screen) -> None:
    """A key handler that blocks (a pause screen, a note) extends the time-out by as long as it took; clicks
    made on the pause screen do not count for the rating."""
    paused: list[float] = []

    def handler(key: str) -> None:
        if key == "p":
            t0 = time.perf_counter()
            ui.show("paused", ui.protocol.texts.paused)
            while time.perf_counter() - t0 < 1.0:  # the engine's pause loop: frames until resumed
                ui.tick()
            paused.append(time.perf_counter() - t0)

    def script(geom: dict[str, Any]) -> None:
        screen.key("p")
        time.sleep(0.3)
        screen.press_release(*slider_x(geom, 0.9))  # on the pause screen: ignored
        time.sleep(0.9)
        screen.press_release(*slider_x(geom, 0.25))
        time.sleep(0.1)
        screen.press_release(*centre(geom["confirm_px"]))

    ui.clock = RealClock(10.0)  # time-out 8 session s = 0.8 wall s: shorter than the pause
    ui.key_handler = handler
    try:
        result, _ = run_rating(ui, prompt(ui, timeout_s=8.0), script)
    finally:
        ui.key_handler = None
        ui.clock = RealClock(1.0)
        ui.show("welcome", ui.protocol.texts.welcome)
    assert paused and paused[0] >= 1.0
    assert result.value == pytest.approx(25, abs=1.0)
    assert all(v < 50 for _, v in result.trace)  # the click at 0.9 on the pause screen left no trace


@pytest.mark.parametrize("options, pick", [
    (["Not at all", "A little", "Moderately", "Quite a bit", "Extremely"], 3),
    ([str(i) for i in range(11)], 7),
])
def test_choice_buttons_are_clickable(ui: Any, screen: Screen, options: list[str], pick: int) -> None:
    choice = Choice("How much did pain interfere with your sleep?", options, timeout_s=20)
    boxes = ui.choice_geometry(choice)
    assert len(boxes) == len(options)
    assert all(0 <= b[0] < b[2] <= 1280 and 0 <= b[1] < b[3] <= 800 for b in boxes)
    clicker = Clicker(lambda: (time.sleep(0.3), screen.press_release(*centre(boxes[pick]))))
    clicker.start()
    assert ui.choose(choice) == pick
    clicker.result()


def test_choice_times_out_and_takes_a_responder(ui: Any) -> None:
    ui.clock = RealClock(20.0)
    try:
        assert ui.choose(Choice("Q?", ["a", "b"], timeout_s=10)) is None
        with answering(ui, chooser=lambda c: 1):
            assert ui.choose(Choice("Q?", ["yes", "no"], timeout_s=10)) == 1
        with answering(ui, chooser=lambda c: None):
            assert ui.choose(Choice("Q?", ["yes", "no"], timeout_s=None)) is None
        with answering(ui, chooser=lambda c: 5), pytest.raises(ValueError, match="option 5"):
            ui.choose(Choice("Q?", ["yes", "no"]))
    finally:
        ui.clock = RealClock(1.0)


def test_staff_note_is_typed_into_the_window(ui: Any, screen: Screen) -> None:
    """'n' reaches the key handler, which opens ask_text; typed keys are text, not staff keys."""
    got: list[Any] = []
    keys: list[str] = []

    def handler(key: str) -> None:
        keys.append(key)
        if key == "n":
            got.append(ui.ask_text("Note or adverse event"))

    ui.key_handler = handler
    try:
        clicker = Clicker(lambda: (screen.key("n"), time.sleep(0.2), screen.type("AE: red skin, sp"),
                                   screen.key("BackSpace", "BackSpace", "Return"), time.sleep(0.2),
                                   screen.key("n"), time.sleep(0.2), screen.type("xyz"), screen.key("Escape")))
        clicker.start()
        deadline = time.monotonic() + 15
        while len(got) < 2 and time.monotonic() < deadline:
            ui.tick()
        clicker.result()
    finally:
        ui.key_handler = None
    assert got == ["AE: red skin,", None]
    assert keys == ["n", "n"]  # 's', 'p', Escape typed into the entry never reached the handler


def test_keys_pressed_by_software_reach_the_handler_from_every_frame_loop(ui: Any, screen: Screen) -> None:
    """press(key, at_t) (a scripted test, a simulated staff member) is delivered like a typed key, from
    tick(), rate(), choose() and the staff's text box alike; 'h' toggles the help overlay."""
    got: list[tuple[str, str]] = []
    ui.key_handler = lambda key: got.append((key, str(ui.status_view.state.get("screen"))))
    clock = ui.clock
    try:
        ui.show("welcome", ui.protocol.texts.welcome)
        ui.press("space", clock.now())
        ui.tick()
        assert got == [("space", "welcome")]
        ui.press("s", clock.now() + 0.3)
        with answering(ui, lambda p: (70.0, 0.6)):
            assert ui.rate(prompt(ui)).value == 70.0
        ui.press("w", clock.now() + 0.2)
        with answering(ui, chooser=lambda c: 1):
            assert ui.choose(Choice("Q?", ["a", "b"], timeout_s=10)) == 1
        ui.press("h", clock.now() + 0.2)
        clicker = Clicker(lambda: (time.sleep(0.6), screen.type("ok"), screen.key("Return")))
        clicker.start()
        assert ui.ask_text("Note") == "ok"
        clicker.result()
    finally:
        ui.key_handler = None
    assert [k for k, _ in got] == ["space", "s", "w", "h"]
    assert got[1][1].startswith("rating_heat") and got[2][1].startswith("choice_list")
    assert ui.help_visible
    ui.help_visible = False
