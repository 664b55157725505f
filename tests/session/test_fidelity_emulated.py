"""An emulated real-time visit (real drivers over ptys against the device emulators, a real clock, a staff
member who confirms "hand is out" late): the CS end -> TS_post interval in session.json is within 1 s of
the truth measured outside the session (the emulator's own clock when the participant screen said "take
your hand out", and when the thermode received the TS_post launch)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from cpm_session.clock import RealClock
from cpm_session.config.protocol import load_protocol
from cpm_session.config.station import load_station
from cpm_session.session import SessionSettings, start_visit
from cpm_session.sim.emulators import TcsEmulator, start_emulated_station
from cpm_session.sim.participant import ParticipantTruth
from cpm_session.sim.world import SimWorld, build_devices, make_participant
from cpm_session.ui.headless import HeadlessUI
from tests.helpers import events, of
from tests.record.test_fidelity import Staff

SPEED = 10.0
LATE_S = 18.0
SHORT = {
    "acclimatization": {"duration_s": 10.0, "min_s": 0.0},
    "calibration": {"rest_s": 6.0, "start_c": 44.0, "verify_n": 1},
    "test_stimulus": {"interval_s": 15.0},
    "cold_pressor": {"duration_s": 20.0, "rating_at_s": 10.0, "bath_stable_s": 3.0},
    "questionnaires": {"names": []},
}


class TruthUI(HeadlessUI):
    """A headless screen that notes the thermode emulator's own clock when the participant is told to take
    the hand out (the moment the conditioning stimulus ends for the participant)."""

    def __init__(self, clock: RealClock, thermode: TcsEmulator) -> None:
        super().__init__(clock)
        self.thermode = thermode
        self.hand_out_device_t: list[float] = []

    def show(self, screen: str, text: str, countdown_to: float | None = None) -> None:
        if screen == "cold_out":
            self.hand_out_device_t.append(self.thermode.now())
        super().show(screen, text, countdown_to)


@pytest.mark.slow
def test_cs_end_to_ts_post_within_1_s_of_the_truth(tmp_path: Path, write_protocol: Any) -> None:
    protocol = load_protocol(write_protocol(SHORT))
    station_path, emu = start_emulated_station(tmp_path, speed=SPEED, bath_model="serial-thermometer")
    try:
        station = load_station(station_path)
        clock = RealClock(SPEED)
        ui = TruthUI(clock, emu.thermode)
        cap = min(protocol.safety.thermode_cap_c, station.station.max_thermode_c)
        devs = build_devices(station, cap_c=cap, neutral_c=protocol.safety.neutral_c, clock=clock, seed=3)
        truth = ParticipantTruth(pain60_c=45.5)
        world = SimWorld(ui, devs, make_participant(truth, 3), staff_auto=False).attach()
        out = start_visit(protocol, station, ui=ui, clock=clock, devices=devs, data_dir=tmp_path / "data",
                          participant="E101", visit="baseline",
                          settings=SessionSettings(operator="TS", seed=3, staff="manual", require_licensed_wording=False),
                          simulate=True, speed=SPEED, observers=[world, Staff(ui, {"hand is out": LATE_S})],
                          extra_header={"sim_truth": dataclasses.asdict(truth)})
        launches = [s.launch_t for s in emu.thermode.stimuli]
    finally:
        emu.stop()
    assert out.status == "completed", out.message
    sdir = out.session_dir
    assert of(events(sdir), "device_connected")[0]["model"] == "tcs2"
    assert len(ui.hand_out_device_t) == 1
    hand_out = ui.hand_out_device_t[0]
    ts_post_launch = min(t for t in launches if t > hand_out)  # the device saw the TS_post launch here
    truth_s = ts_post_launch - hand_out
    res = json.loads((sdir / "session.json").read_text(encoding="utf-8"))["results"]["fidelity"]
    e = res["requirements"]["cs_end_to_ts_post_s"]
    print(f"CS end -> TS_post: measured {e['actual']:.3f} s, truth {truth_s:.3f} s "
          f"(error {e['actual'] - truth_s:+.3f} s)")
    assert abs(e["actual"] - truth_s) < 1.0
    assert e["actual"] == pytest.approx(LATE_S + 2.0, abs=1.0)  # the staff's delay + the cue
    assert e["within_limits"] is False and "cs_end_to_ts_post_s" in res["outside_limits"]
    late = [d for d in of(events(sdir), "deviation") if d["kind"] == "fidelity_cs_end_to_ts_post_s"]
    assert len(late) == 1 and late[0]["t"] < e["ts_post_onset_t"]
