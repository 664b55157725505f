"""The staff status view: what it shows, and that it never gets in the way (no terminal, disabled, bad input)."""

from __future__ import annotations

import io

from rich.console import Console

from cpm_session.ui.base import STAFF_KEYS
from cpm_session.ui.help import STAFF_KEY_HELP, help_lines, help_text
from cpm_session.ui.status import StatusView


def rendered(view: StatusView, width: int = 110) -> str:
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    console.print(view.render())
    return console.export_text()


def test_it_shows_phase_action_countdowns_readings_rating_and_keys() -> None:
    view = StatusView(enabled=False)
    view.update({"participant": "P001", "visit": "baseline", "operator": "AB", "simulate": True, "t": 754.2,
                 "speed": 20, "phase": "cold_pressor", "next_action": "hand out: press space",
                 "countdowns": {"immersion left": 31.2}, "thermode_c": 32.04, "thermode_target_c": 32,
                 "bath_c": 2.49, "last_rating": {"phase": "cs", "trial": 1, "value": 64.6}, "fw": "1.2"})
    text = rendered(view)
    for needle in ("P001 / baseline / AB  [SIMULATED]", "12:35  (x20)", "cold_pressor", "hand out: press space",
                   "immersion left", "0:32", "32.0 °C  (target 32.0 °C)", "2.5 °C", "cs #1: 65", "fw", "1.2"):
        assert needle in text, needle
    for label, description in help_lines():
        assert label in text and description in text
    assert "WARNING" not in text


def test_warnings_bath_out_of_range_and_device_silence_are_shown() -> None:
    view = StatusView(enabled=False)
    view.update({"bath_c": 5.3, "bath_range": [1.0, 4.0], "warnings": ["thermode not responding (3 s)"]})
    assert view.warnings() == ["thermode not responding (3 s)", "bath 5.3 °C outside 1.0–4.0 °C"]
    view.update({"warning": "cannot pause during the immersion", "warnings": []})
    assert view.warnings() == ["cannot pause during the immersion", "bath 5.3 °C outside 1.0–4.0 °C"]
    text = rendered(view)
    assert "WARNING: cannot pause during the immersion" in text and "WARNING: bath 5.3" in text
    view.update({"bath_c": 2.5, "warning": ""})
    assert view.warnings() == []


def test_no_terminal_no_live_panel_and_nothing_breaks() -> None:
    out = io.StringIO()
    view = StatusView(console=Console(file=out))  # a file, not a terminal
    view.start()
    assert not view.live
    view.update({"phase": "welcome"})
    view.update("not a dict")  # type: ignore[arg-type]
    view.update({"t": "soon", "thermode_c": "n/a", "countdowns": {"x": None}, "bath_range": "bad", "bath_c": 3})
    rendered(view)
    view.stop()
    view.stop()
    assert out.getvalue() == ""


def test_disabled_view_never_starts_even_in_a_terminal() -> None:
    view = StatusView(enabled=False, console=Console(file=io.StringIO(), force_terminal=True))
    with view:
        assert not view.live
        view.update({"phase": "x"})
    assert view.state["phase"] == "x"


def test_live_panel_runs_in_a_terminal_and_stops_cleanly() -> None:
    out = io.StringIO()
    view = StatusView(console=Console(file=out, force_terminal=True, width=100), refresh_per_second=20)
    with view:
        assert view.live
        view.update({"phase": "ts_pre", "next_action": "wait"})
    assert not view.live
    assert "ts_pre" in out.getvalue()


def test_live_countdown_and_what_the_participant_sees() -> None:
    from cpm_session.clock import VirtualClock

    clock = VirtualClock(100.0)
    view = StatusView(enabled=False, clock=clock)
    view.update({"screen": "cold_keep"})
    view.set_countdown("cold_keep", 160.0)
    assert "cold_keep ends in  1:00" in rendered(view)
    clock.advance(30.5)
    text = rendered(view)
    assert "participant sees  cold_keep" in text and "cold_keep ends in  0:30" in text
    view.set_countdown(None, None)
    assert "ends in" not in rendered(view)


def test_help_covers_exactly_the_staff_keys() -> None:
    assert tuple(STAFF_KEY_HELP) == STAFF_KEYS
    assert [label for label, _ in help_lines()] == ["Space", "S", "P", "W", "Esc", "N", "H"]
    assert help_text().splitlines()[4].startswith("Esc    EMERGENCY STOP")
