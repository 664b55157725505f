"""`check-station` against emulated stations: pass, and one failure per requirement."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpm_session.cli import main
from cpm_session.config.protocol import load_protocol
from cpm_session.config.station import load_station, parse_station
from cpm_session.sim.emulators import start_emulated_station
from cpm_session.station_check import check_station

ROOT = Path(__file__).resolve().parents[2]
THERMAL = ROOT / "protocols" / "cpm-thermal.toml"


@pytest.fixture
def station(tmp_path):
    path, st = start_emulated_station(tmp_path, speed=5.0, auto_press=False, thermode_neutral_c=32.0)
    yield path, st
    st.stop()


def run_check(path, lines=None, **kw):
    out = [] if lines is None else lines
    rep = check_station(load_station(path), load_protocol(THERMAL), bath_window_s=0.5, neutral_wait_s=2.0,
                        emit=out.append, **kw)
    return rep, out


def test_ready_station_passes_and_shows_identity(station):
    path, st = station
    rep, out = run_check(path)
    assert rep.ok, out
    text = "\n".join(out)
    assert "TCS, firmware TCS II emulator 1.0" in text and "device_max_c 49.0" in text
    assert "device_max_readback not shown (public P layout)" in text  # the strict emulator: public P layout
    assert "JULABO" in text and "Mark-10" in text
    names = {(c.role, c.name): c.ok for c in rep.checks}
    assert ("thermode", "device maximum") not in names  # nothing to read back; the limiter test proves it
    assert names[("thermode", "limiter")] and names[("thermode", "at neutral")]
    assert names[("bath", "in range")] and names[("bath", "stable")] and names[("algometer", "zeroed")]
    assert out[-1] == "station check: PASS"
    assert st.thermode.max_c == 49.0  # Om set from the protocol cap


def test_bath_out_of_range_fails(station):
    path, st = station
    st.bath.force_temperature(6.0)
    rep, out = run_check(path)
    assert not rep.ok
    bad = [c for c in rep.checks if c.ok is False]
    assert [(c.role, c.name) for c in bad] == [("bath", "in range")]
    assert bad[0].detail.startswith(("5.9", "6.0")) and "protocol range 1.0-4.0 °C" in bad[0].detail


def test_unstable_bath_fails(station):
    path, st = station
    st.bath.noise_c = 0.5
    rep, _ = run_check(path)
    assert ("bath", "stable") in [(c.role, c.name) for c in rep.checks if c.ok is False]


def test_unzeroed_algometer_fails(station):
    path, st = station
    st.algometer.offset_kpa = 40.0
    rep, out = run_check(path)
    assert [(c.role, c.name) for c in rep.checks if c.ok is False] == [("algometer", "zeroed")], out


def test_thermode_not_at_neutral_fails(station):
    path, st = station
    original = st.thermode._execute

    def stuck(c: bytes) -> None:  # a probe that cannot follow its neutral set point
        original(c)
        if c.startswith(b"N"):
            st.thermode.neutral_c = 30.0

    st.thermode._execute = stuck
    rep, _ = run_check(path)
    failed = [(c.role, c.name) for c in rep.checks if c.ok is False]
    assert ("thermode", "device") in failed  # the neutral read-back already refuses it


def test_silent_device_fails_with_a_clear_line_and_others_still_checked(station):
    path, st = station
    st.bath.set_silent(True)
    rep, out = run_check(path)
    assert any(ln.startswith("FAIL bath: bath on ") and "no reply" in ln and "VERSION" in ln for ln in out)
    assert {c.role for c in rep.checks if c.ok} >= {"thermode", "algometer"}


def test_sim_roles_are_reported_not_checked():
    st = parse_station({"thermode": {"model": "sim"}, "bath": {"model": "sim"}, "algometer": {"model": "sim"}})
    out: list[str] = []
    rep = check_station(st, None, emit=out.append)
    assert rep.ok and all(c.ok is None for c in rep.checks)
    assert out[:3] == ["SIM  thermode: simulated, not checked", "SIM  bath: simulated, not checked",
                       "SIM  algometer: simulated, not checked"]


def test_cli_exit_codes(station, capsys):
    path, st = station
    assert main(["check-station", str(path), "--protocol", str(THERMAL), "--bath-window", "0.5"]) == 0
    assert "station check: PASS" in capsys.readouterr().out
    st.bath.force_temperature(9.0)
    assert main(["check-station", str(path), "--protocol", str(THERMAL), "--bath-window", "0.5"]) == 1
    assert "FAIL bath: in range" in capsys.readouterr().out


def test_cli_without_protocol_checks_against_runs_default_protocol(station, capsys):
    """Without --protocol the check uses the protocol `run` would use: an 8 °C bath fails its 1-4 °C range."""
    path, st = station
    st.bath.force_temperature(8.0)
    assert main(["check-station", str(path), "--bath-window", "0.5"]) == 1
    out = capsys.readouterr().out
    assert "protocol: protocols/cpm-thermal.toml (the default of `cpm-session run`" in out
    assert "FAIL bath: in range" in out and "protocol range 1.0-4.0 °C" in out
    st.bath.force_temperature(2.5)
    assert main(["check-station", str(path), "--bath-window", "0.5"]) == 0
    assert "station check: PASS" in capsys.readouterr().out


def test_example_lab_station_is_valid():
    st = load_station(ROOT / "hardware" / "example-lab.toml")
    assert (st.thermode.model, st.bath.model, st.algometer.model) == ("tcs2", "julabo", "wagner-fdx")
    assert st.thermode.port.startswith("/dev/tty")


def test_second_example_station_is_valid_and_opens_real_drivers_for_its_models():
    from cpm_session.devices.real import serial_settings

    st = load_station(ROOT / "hardware" / "example-lab-lauda-mark10.toml")
    assert (st.bath.model, st.algometer.model) == ("lauda", "mark10")
    assert serial_settings(st.bath)["baudrate"] == 9600 and serial_settings(st.algometer)["baudrate"] == 115200
