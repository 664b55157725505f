"""`cpm-session run --pilot` in the real window: a person's clicks (xdotool) are the ratings; data go to pilot/."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.gui_helpers import Screen, centre, display, slider_x
from tests.ui.test_gui_engine import events_of, short_protocol, wait_event

pytestmark = pytest.mark.gui
__all__ = ["display"]

SPEED = 10.0
FRACTIONS = (0.25, 0.8, 0.55)


def test_pilot_run_records_the_clicks_and_writes_only_to_pilot(display: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    pilot = data / "pilot"
    proto = short_protocol(tmp_path, ratings={"timeout_s": 120.0})
    cmd = [sys.executable, "-m", "cpm_session", "run", "--pilot", "--participant", "P900", "--visit", "baseline",
           "--protocol", str(proto), "--data", str(data), "--speed", f"{SPEED:g}",
           "--no-status", "--operator", "PI"]
    env = {**os.environ, "DISPLAY": display, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_event(pilot, lambda e: e["event"] == "phase_enter" and e["phase"] == "acclimatization", timeout_s=60)
        screen = Screen()
        screen.key("s")  # the staff skip the acclimatization...
        wait_event(pilot, lambda e: e["event"] == "phase_enter" and e["phase"] == "calibration", timeout_s=30)
        time.sleep(0.2)
        screen.key("space")  # ...and confirm "thermode placed" (staff steps are manual in a pilot run)
        clicked: list[dict[str, Any]] = []
        last_seq = -1
        for f in FRACTIONS:
            prompt = wait_event(pilot, lambda e, s=last_seq: e["event"] == "rating_prompt" and e["seq"] > s,
                                timeout_s=60)
            time.sleep(0.15)
            screen.press_release(*slider_x({"slider_px": prompt["slider_px"]}, f))
            time.sleep(0.15)
            screen.press_release(*centre(prompt["confirm_px"]))
            rating = wait_event(pilot, lambda e, s=prompt["seq"]: e["event"] == "rating" and e["seq"] > s, timeout_s=30)
            clicked.append({"fraction": f, "prompt": prompt, "rating": rating})
            last_seq = rating["seq"]
        screen.key("Escape")
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3, (out, err)  # aborted by Escape, resumable
    assert "Traceback" not in err
    for c in clicked:
        assert c["rating"]["rating"] == pytest.approx(100 * c["fraction"], abs=1.0), c
        assert c["rating"]["phase"] == c["prompt"]["phase"] and c["rating"]["rt_s"] > 0
    events = events_of(pilot)
    assert events[0]["event"] == "session_start" and events[0]["pilot"] is True and events[0]["simulate"] is False
    assert events[0]["operator"] == "PI" and "sim_truth" not in events[0]
    assert any(e["event"] == "emergency_stop" for e in events)
    steps = [e for e in events if e["event"] == "staff_step"]
    assert steps and steps[0]["auto"] is False and steps[0]["operator"] == "PI"
    # nothing in the normal data folder: only pilot/ (and the session plot inside the pilot session)
    assert sorted(p.name for p in data.iterdir()) == ["pilot"]
    assert sorted(p.name for p in pilot.iterdir()) == ["P900", "ledger.jsonl"]  # the pilot folder's own ledger
    assert str(pilot / "P900") in out
    from cpm_session.analysis.summarize import summarize

    assert summarize(data).table.empty
