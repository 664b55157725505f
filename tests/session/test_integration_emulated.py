"""A whole visit through the real serial drivers against the pty emulators (no simulated device objects)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cpm_session.cli import main
from cpm_session.sim.emulators import start_emulated_station
from tests.conftest import PRESSURE
from tests.helpers import events, of

SPEED = 40.0
SHORT = {
    "acclimatization": {"duration_s": 10.0, "min_s": 0.0},
    "calibration": {"rest_s": 6.0, "start_c": 42.0},
    "test_stimulus": {"interval_s": 15.0},
    "cold_pressor": {"duration_s": 20.0, "rating_at_s": 10.0, "bath_stable_s": 3.0},
    "questionnaires": {"names": []},
}


def _run(tmp_path: Path, protocol: Path, station: Path, pid: str) -> tuple[int, Path]:
    rc = main(["run", "--participant", pid, "--visit", "baseline", "--protocol", str(protocol), "--station",
               str(station), "--simulate", "--ui", "headless", "--speed", str(SPEED), "--data", str(tmp_path / "data"),
               "--sim-truth", "pain60_c=45.5", "--seed", "3"])
    sessions = list((tmp_path / "data" / pid).glob("baseline-*"))
    assert len(sessions) == 1
    return rc, sessions[0]


@pytest.mark.slow
def test_thermal_visit_against_emulators(tmp_path: Path, write_protocol) -> None:  # type: ignore[no-untyped-def]
    protocol = write_protocol(SHORT)
    station_path, station = start_emulated_station(tmp_path, speed=SPEED, bath_model="serial-thermometer")
    try:
        rc, sdir = _run(tmp_path, protocol, station_path, "E001")
        emu_stimuli = list(station.thermode.stimuli)
        received = b"".join(chunk for _, chunk in station.thermode.received)
    finally:
        station.stop()
    assert rc == 0
    header = json.loads((sdir / "session.json").read_text())
    assert header["status"] == "completed" and header["station_name"] == "emulated"
    evs = events(sdir)
    connected = {e["role"]: e for e in of(evs, "device_connected")}
    assert connected["thermode"]["model"] == "tcs2" and "/dev/pts/" in connected["thermode"]["port"]
    stim = of(evs, "stimulus")
    assert len(emu_stimuli) == len(stim)  # every stimulus the engine logged reached the device, and no other
    for e, got in zip(stim, emu_stimuli, strict=True):  # the log records what was encoded, as the device received it
        assert e["encoded_target_c"] == round(e["target_c"], 1) and f"C0{round(e['target_c'] * 10):03d}" in e["commands"]
        assert all(abs(t - e["encoded_target_c"]) < 1e-9 for t in got.targets_c)
    assert b"Om490" in received  # the device-side maximum was set at connect
    r = header["results"]
    assert abs(r["pain60_c"] - 45.5) <= 1.0
    assert r["cpm_abs"] is not None and r["cpm_abs"] > 0
    # the thermode samples came from the emulator's stream and show the heat stimuli
    rows = [ln.split(",") for ln in (sdir / "devices.csv").read_text().splitlines()[1:]]
    temps = [float(v) for _, role, q, v, _ in rows if role == "thermode"]
    assert max(temps) > 44.0 and min(temps) < 33.0


@pytest.mark.slow
def test_pressure_visit_against_emulators(tmp_path: Path, write_protocol) -> None:  # type: ignore[no-untyped-def]
    protocol = write_protocol(SHORT, base=PRESSURE)
    station_path, station = start_emulated_station(tmp_path, speed=SPEED, bath_model="serial-thermometer")
    try:
        rc, sdir = _run(tmp_path, protocol, station_path, "E002")
    finally:
        station.stop()
    header = json.loads((sdir / "session.json").read_text())
    assert rc == 0 and header["status"] == "completed"
    r = header["results"]
    assert r["ts_modality"] == "pressure" and r["ppt_kpa"] > 0 and len(of(events(sdir), "ppt")) == 3


@pytest.mark.slow
def test_unplugged_thermode_pauses_safely_and_resumes(tmp_path: Path, write_protocol) -> None:  # type: ignore[no-untyped-def]
    import threading

    protocol = write_protocol(SHORT)
    station_path, station = start_emulated_station(tmp_path, speed=SPEED, bath_model="serial-thermometer")
    threading.Timer(3.0, station.thermode.unplug).start()  # ~120 s of session time: during calibration
    try:
        rc, sdir = _run(tmp_path, protocol, station_path, "E003")
    finally:
        station.stop()
    assert rc == 3
    evs = events(sdir)
    fault = of(evs, "device_fault")[0]
    assert fault["role"] == "thermode" and "/dev/pts/" in fault["port"]
    header = json.loads((sdir / "session.json").read_text())
    assert header["status"] == "paused_fault" and "resume" in header["message"]
    before = (sdir / "events.jsonl").read_bytes()
    first_station = station_path.read_bytes()
    # the device is back (new emulators, same station file path): resume completes from a safe point
    station_path2, station2 = start_emulated_station(tmp_path, speed=SPEED, bath_model="serial-thermometer")
    assert station_path2 == station_path
    try:
        resume = ["resume", str(sdir), "--ui", "headless", "--speed", str(SPEED)]
        if station_path.read_bytes() != first_station:
            # another test took the freed pty numbers, so the new emulators' ports differ: the station file
            # changed, and resume refuses it until a reason is given (as it would for a re-wired station)
            assert main(resume) == 2
            resume += ["--override-reason", "emulator ptys renumbered after the unplug"]
        rc2 = main(resume)
    finally:
        station2.stop()
    assert rc2 == 0
    after = (sdir / "events.jsonl").read_bytes()
    assert after.startswith(before)  # nothing recorded before the fault was lost or changed
    evs2 = events(sdir)
    res = of(evs2, "resume_session")[0]
    assert res["restart_phase"] == "calibration" and res["previous_status"] == "paused_fault"
    assert json.loads((sdir / "session.json").read_text())["status"] == "completed"
