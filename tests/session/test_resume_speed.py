"""`cpm-session resume` of a simulated session runs at the session's recorded --speed unless told otherwise."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from cpm_session.cli import main
from cpm_session.clock import VirtualClock
from cpm_session.config.protocol import load_protocol
from cpm_session.config.station import load_station
from cpm_session.sim.world import run_visit
from cpm_session.ui.headless import HeadlessUI
from tests.conftest import SIM_STATION
from tests.helpers import events, of
from tests.ui.test_gui_engine import short_protocol


def _wall(e: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(e["wall"].replace("Z", "+00:00")).timestamp()


def interrupted(tmp_path: Path, pid: str, speed: float) -> Path:
    """Run a short simulated visit recorded at `speed` and stop it with Escape early on; return its folder."""
    prot = load_protocol(short_protocol(tmp_path, cold_pressor={"duration_s": 20.0, "max_s": 20.0,
                                                                "rating_at_s": 10.0, "bath_stable_s": 1.0}))
    clock = VirtualClock()
    ui = HeadlessUI(clock)
    ui.press("escape", 5.0)
    o = run_visit(prot, load_station(SIM_STATION), data_dir=tmp_path / "data", participant=pid, visit="baseline",
                  ui=ui, clock=clock, seed=4, speed=speed)
    assert o.status == "aborted"
    return o.session_dir


def speed_of_resumed_part(session_dir: Path) -> float:
    evs = events(session_dir)
    start = of(evs, "resume_session")[-1]
    end = evs[-1]
    assert end["event"] == "session_end" and end["status"] == "completed"
    return (end["t"] - start["t"]) / (_wall(end) - _wall(start))


def test_resume_keeps_the_recorded_speed(tmp_path: Path) -> None:
    d = interrupted(tmp_path, "R001", speed=60.0)
    assert main(["resume", str(d), "--ui", "headless", "--no-status"]) == 0
    assert abs(speed_of_resumed_part(d) / 60.0 - 1.0) < 0.15


def test_resume_speed_can_be_overridden(tmp_path: Path) -> None:
    d = interrupted(tmp_path, "R002", speed=60.0)
    assert main(["resume", str(d), "--ui", "headless", "--no-status", "--speed", "120"]) == 0
    assert abs(speed_of_resumed_part(d) / 120.0 - 1.0) < 0.15
