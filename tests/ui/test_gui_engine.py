"""End to end: simulated visits run by the engine in the real PsychoPy window, with staff keys and clicks via xdotool."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, THERMAL, toml_dumps
from tests.gui_helpers import ARTIFACTS, Clicker, Screen, centre, display, slider_x

pytestmark = pytest.mark.gui
__all__ = ["display"]

SPEED = 20.0
"""Session seconds per wall second in these visits."""


def short_protocol(tmp_path: Path, **changes: dict[str, Any]) -> Path:
    """Write a copy of the thermal protocol with short durations (plus `changes`); return its path."""
    import tomllib

    data = tomllib.loads(THERMAL.read_text(encoding="utf-8"))
    short: dict[str, dict[str, Any]] = {
        "acclimatization": {"duration_s": 20.0, "min_s": 20.0, "max_s": 30.0},
        "calibration": {"stimulus_s": 1.0, "rest_s": 2.0, "verify_n": 1},
        "test_stimulus": {"duration_s": 1.0, "interval_s": 3.0},
        "cold_pressor": {"duration_s": 30.0, "max_s": 30.0, "rating_at_s": 10.0, "bath_stable_s": 1.0},
        "questionnaires": {"names": ["nrs"]},
        # 60 session s = 3 wall s: a loaded CI machine can stall a process for a second (= 20 session s)
        "ratings": {"timeout_s": 60.0},
        "screen": {"fullscreen": False},
    }
    for table, kv in {**short, **changes}.items():
        data[table].update(kv)
    path = tmp_path / "short.toml"
    path.write_text(toml_dumps(data), encoding="utf-8")
    return path


def events_of(data_dir: Path) -> list[dict[str, Any]]:
    """Read the events logged so far by the (single) session under `data_dir`."""
    logs = list(data_dir.glob("*/*/events.jsonl"))
    if not logs:
        return []
    out = []
    for line in logs[0].read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line being written right now
    return out


def wait_event(data_dir: Path, pred: Callable[[dict[str, Any]], bool], timeout_s: float = 20.0) -> dict[str, Any]:
    """Poll the event log until an event matching `pred` appears; return it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for ev in events_of(data_dir):
            if pred(ev):
                return ev
        time.sleep(0.03)
    raise AssertionError(f"no matching event within {timeout_s} s; last: {events_of(data_dir)[-3:]}")


def run(protocol_path: Path, data_dir: Path, script: Callable[[], Any], shots: Path | None = None,
        **kw: Any) -> tuple[Any, Any, Any]:
    """Run a simulated visit in a PsychoPy window while `script` drives it; return (outcome, devices, script value)."""
    from cpm_session.clock import RealClock
    from cpm_session.config.protocol import load_protocol
    from cpm_session.config.station import load_station
    from cpm_session.devices.factory import effective_cap
    from cpm_session.sim.world import build_devices as open_devices
    from cpm_session.sim.world import run_visit
    from cpm_session.ui.psychopy import PsychoPyUI
    from cpm_session.ui.status import StatusView

    protocol = load_protocol(protocol_path)
    station = load_station(ROOT / "hardware" / "sim.toml")
    clock = RealClock(SPEED)
    devices = open_devices(station, cap_c=effective_cap(protocol.safety.thermode_cap_c, station),
                           neutral_c=protocol.safety.neutral_c, clock=clock, seed=0)
    ui = PsychoPyUI(protocol, clock, fullscreen=False, size=(1280, 800), screenshot_dir=shots,
                    status=StatusView(enabled=False))
    clicker = Clicker(script)
    clicker.start()
    outcome = run_visit(protocol, station, data_dir=data_dir, participant="P901", visit="baseline", ui=ui,
                        clock=clock, simulate=True, seed=3, staff="auto", operator="GUI", speed=SPEED,
                        devices=devices, **kw)
    return outcome, devices, clicker.result()


def test_full_visit_in_the_window_with_skip(display: str, tmp_path: Path) -> None:
    """A whole simulated visit at 20x in the real window; 's' skips acclimatization (a deviation is logged)."""
    data = tmp_path / "data"
    shots = ARTIFACTS / "screens_visit"

    def script() -> None:
        wait_event(data, lambda e: e["event"] == "phase_enter" and e["phase"] == "acclimatization")
        Screen().key("s")

    t0 = time.perf_counter()
    outcome, _, _ = run(short_protocol(tmp_path), data, script, shots=shots)
    wall = time.perf_counter() - t0
    assert outcome.status == "completed", outcome.message
    events = events_of(data)
    # the staff's skip is the one deviation a person caused; the fidelity watch may add timing ones at 20x
    dev = [e for e in events if e["event"] == "deviation" and not str(e["kind"]).startswith("fidelity_")]
    assert len(dev) == 1 and dev[0]["kind"] == "acclimatization_skipped" and dev[0]["operator"] == "GUI"
    accl = next(e for e in events if e["event"] == "phase_exit" and e["phase"] == "acclimatization")
    assert accl["output"]["skipped"] is True and accl["output"]["elapsed_s"] < 20.0
    prompts = [e for e in events if e["event"] == "rating_prompt"]
    ratings = [e for e in events if e["event"] == "rating"]
    assert prompts and len(prompts) == len(ratings)
    assert all(p["slider_px"] == [240.0, 398.0, 1040.0, 402.0] and p["window_px"] == [1280, 800] for p in prompts)
    missing = [(e["t"], e["event"], e.get("phase"), e.get("trial"), e.get("rating")) for e in events
               if e["event"] in ("rating_prompt", "rating")]
    assert all(r["rating"] is not None for r in ratings), [m for m in missing if m[1] == "rating" and m[4] is None]
    assert outcome.results["cpm_abs"] is not None
    for name in ("welcome", "acclimatization", "cue", "fixation", "rating_heat_answered", "cold_keep", "cold_out",
                 "rating_hand_answered", "choice_row", "thanks"):  # NRS 0-10: a row of number buttons
        assert (shots / f"{name}.png").exists(), name
    assert wall < 40


def test_click_the_logged_slider_then_escape_stops_the_thermode(display: str, tmp_path: Path) -> None:
    """Click from the `slider_px` of a logged `rating_prompt`: the logged rating matches. Then Escape during a
    heat stimulus: `emergency_stop` is logged and the simulated thermode is at neutral within 100 ms."""
    from cpm_session.sim.participant import ParticipantTruth

    data = tmp_path / "data"
    fraction = 0.3

    def script() -> dict[str, Any]:
        screen = None
        wait_event(data, lambda e: e["event"] == "phase_enter" and e["phase"] == "acclimatization")
        screen = Screen()
        screen.key("s")
        prompt = wait_event(data, lambda e: e["event"] == "rating_prompt")
        geom = {"slider_px": prompt["slider_px"]}
        time.sleep(0.1)
        screen.press_release(*slider_x(geom, fraction))
        time.sleep(0.1)
        screen.press_release(*centre(prompt["confirm_px"]))
        rating = wait_event(data, lambda e: e["event"] == "rating")
        stim = wait_event(data, lambda e: e["event"] == "stimulus" and e["seq"] > rating["seq"])
        time.sleep(0.5 / SPEED)  # half a session second into the stimulus (the thermode is heating)
        screen.key("Escape")
        return {"prompt": prompt, "rating": rating, "stimulus": stim}

    slow = ParticipantTruth(rt_mean_s=45.0)  # the simulated participant would answer after ~45 s: the click wins
    outcome, devices, seen = run(
        short_protocol(tmp_path, acclimatization={"duration_s": 600.0, "min_s": 600.0, "max_s": 900.0},
                       ratings={"timeout_s": 90.0}),
        data, script, truth=slow)
    assert outcome.status == "aborted"
    events = events_of(data)
    assert any(e["event"] == "deviation" and e["kind"] == "acclimatization_skipped" for e in events)
    rating = seen["rating"]
    assert rating["rating"] == pytest.approx(100 * fraction, abs=1.0)
    assert rating["phase"] == seen["prompt"]["phase"] and rating["trial"] == seen["prompt"]["trial"]
    assert 0 < rating["rt_s"] < 45.0
    stop = next(e for e in events if e["event"] == "emergency_stop")
    assert stop["reason"] == "escape key" and stop["abort_problem"] == ""
    assert stop["t_abort"] - stop["t_key"] <= 0.1
    th = devices.thermode
    neutral = th.neutral_c
    assert th.temperature_at(stop["t_key"] + 0.1) == pytest.approx(neutral, abs=0.5)
    aborts = [t for t, cmd, _ in th.commands if cmd == "abort" and t >= stop["t_key"]]
    assert aborts and aborts[0] - stop["t_key"] <= 0.1
    end = events[-1]
    assert end["event"] == "session_end" and end["status"] == "aborted"
