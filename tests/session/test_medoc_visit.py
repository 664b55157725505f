"""Whole thermal visits through the real Medoc driver against the MMS emulator over TCP (`run --station`)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cpm_session.cli import main
from cpm_session.devices.wire.medoc import Command
from cpm_session.sim.emulators.medoc import MedocEmulator, grid_programs
from tests.helpers import events, of

SPEED = 40.0
SHORT = {
    "acclimatization": {"duration_s": 10.0, "min_s": 0.0},
    "calibration": {"rest_s": 6.0, "start_c": 42.0},
    "test_stimulus": {"interval_s": 15.0},
    "cold_pressor": {"duration_s": 20.0, "rating_at_s": 10.0, "bath_stable_s": 3.0},
    "questionnaires": {"names": []},
}


@pytest.fixture
def emu() -> Iterator[MedocEmulator]:
    # one program every 0.1 °C from 35 to 49 °C; pre-test 1-3 s; the visit runs 40x faster than real time
    e = MedocEmulator(SPEED, programs=grid_programs(35.0, 49.0, 0.1, plateau_s=5.0), pretest_s=(1.0, 3.0)).start()
    yield e
    e.stop()


def write_station(tmp_path: Path, emu: MedocEmulator) -> Path:
    text = ('[station]\nname = "medoc emulated"\nemulated = true\nmax_thermode_c = 49.0\n\n'
            + emu.station_snippet(spacing_s=0.002, snap="down", timeout_s=1.0, neutral_c=32.0)
            + "retries = 2\nidle_poll_s = 0.05\n"
            + '\n[bath]\nmodel = "sim"\n\n[algometer]\nmodel = "sim"\n')
    p = tmp_path / "medoc-station.toml"
    p.write_text(text, encoding="utf-8")
    return p


def _run(tmp_path: Path, protocol: Path, station: Path, pid: str) -> tuple[int, Path]:
    rc = main(["run", "--participant", pid, "--visit", "baseline", "--protocol", str(protocol), "--station",
               str(station), "--simulate", "--ui", "headless", "--speed", str(SPEED), "--data", str(tmp_path / "data"),
               "--sim-truth", "pain60_c=45.5", "--seed", "3"])
    sessions = list((tmp_path / "data" / pid).glob("baseline-*"))
    assert len(sessions) == 1
    return rc, sessions[0]


@pytest.mark.slow
def test_thermal_visit_through_medoc_driver(tmp_path: Path, emu: MedocEmulator, write_protocol) -> None:  # type: ignore[no-untyped-def]
    protocol = write_protocol(SHORT)
    rc, sdir = _run(tmp_path, protocol, write_station(tmp_path, emu), "M001")
    header = json.loads((sdir / "session.json").read_text())
    assert rc == 0, header.get("message")
    assert header["status"] == "completed"
    evs = events(sdir)
    connected = {e["role"]: e for e in of(evs, "device_connected")}
    assert connected["thermode"]["model"] == "medoc" and f"127.0.0.1:{emu.port}" == connected["thermode"]["port"]
    stim = of(evs, "stimulus")
    assert len(emu.stimuli) == len(stim)  # every logged stimulus was triggered on MMS, and no other
    for s, e in zip(stim, emu.stimuli, strict=True):  # each ran the program at or just below the request
        assert 0.0 <= s["target_c"] - e.target_c < 0.1 + 1e-9
    # no trigger was lost or sent in a pre-test
    assert all(r.reply_code == 0 for r in emu.commands(Command.TRIGGER, executed=True))
    r = header["results"]
    assert abs(r["pain60_c"] - 45.5) <= 1.0 and r["cpm_abs"] is not None
    rows = [ln.split(",") for ln in (sdir / "devices.csv").read_text().splitlines()[1:]]
    temps = [float(v) for _, role, q, v, _ in rows if role == "thermode"]
    assert max(temps) > 44.0 and min(temps) < 33.0  # MMS's reported temperatures show the stimuli


@pytest.mark.slow
def test_connection_drop_mid_visit_pauses_then_resume_completes(tmp_path: Path, emu: MedocEmulator,
                                                                write_protocol) -> None:  # type: ignore[no-untyped-def]
    protocol = write_protocol(SHORT)
    station = write_station(tmp_path, emu)
    threading.Timer(3.0, emu.drop).start()  # ~120 s of session time: during calibration
    rc, sdir = _run(tmp_path, protocol, station, "M002")
    assert rc == 3
    evs = events(sdir)
    fault = of(evs, "device_fault")[0]
    assert fault["role"] == "thermode" and fault["port"] == f"127.0.0.1:{emu.port}"
    assert "connection refused" in fault["message"] and "\n" not in fault["message"]
    header = json.loads((sdir / "session.json").read_text())
    assert header["status"] == "paused_fault"
    n_before = len(emu.stimuli)
    emu.restore()
    rc2 = main(["resume", str(sdir), "--ui", "headless", "--speed", str(SPEED)])
    assert rc2 == 0
    assert json.loads((sdir / "session.json").read_text())["status"] == "completed"
    assert len(emu.stimuli) > n_before


@pytest.mark.slow
def test_escape_during_a_stimulus_aborts_on_mms(tmp_path: Path, emu: MedocEmulator, write_protocol) -> None:  # type: ignore[no-untyped-def]
    import time

    from cpm_session.clock import RealClock
    from cpm_session.config.protocol import load_protocol
    from cpm_session.config.station import load_station
    from cpm_session.sim.participant import ParticipantTruth
    from cpm_session.sim.world import run_visit
    from cpm_session.ui.headless import HeadlessUI

    clock = RealClock(SPEED)
    ui = HeadlessUI(clock)
    pressed: list[float] = []

    def watch() -> None:  # the operator presses Escape while MMS runs the second stimulus
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(emu.stimuli) < 2:
            time.sleep(0.001)
        while time.monotonic() < deadline and not emu.stimulating:
            time.sleep(0.001)
        pressed.append(time.perf_counter())
        ui.press("escape", clock.now())

    threading.Thread(target=watch, daemon=True).start()
    out = run_visit(load_protocol(write_protocol(SHORT)), load_station(write_station(tmp_path, emu)),
                    data_dir=tmp_path / "data", participant="M003", visit="baseline", ui=ui, clock=clock,
                    truth=ParticipantTruth(pain60_c=45.5), speed=SPEED, seed=3)
    assert out.status == "aborted"
    evs = events(out.session_dir)
    stop = of(evs, "emergency_stop")[0]
    assert stop["abort_problem"] == ""
    assert emu.stimuli[1].aborted and len(emu.stimuli) == 2  # the running program was aborted, no other started
    aborts = [r for r in emu.commands(Command.ABORT, executed=True) if r.perf >= pressed[0]]
    assert aborts and aborts[0].reply_code == 0
