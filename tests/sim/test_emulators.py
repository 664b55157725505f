"""Emulator dynamics (deterministic, on a controlled device clock) and their behaviour on a real pty."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import serial

from cpm_session.clock import RealClock
from cpm_session.config.station import load_station
from cpm_session.devices.wire import tcs2 as w
from cpm_session.sim.emulators import AlgometerEmulator, BathEmulator, TcsEmulator, start_emulated_station


class FakeTime:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def controlled(emu):
    """Drive the emulator's device clock by hand (its thread is not started)."""
    ft = FakeTime()
    emu.now = ft
    emu._last_t = 0.0
    return ft


@pytest.fixture
def tcs():
    emu = TcsEmulator()
    ft = controlled(emu)
    yield emu, ft
    emu.stop()


def feed(emu, data: bytes) -> None:
    emu.on_bytes(data)


def test_tcs_ramps_holds_and_returns_on_its_own(tcs):
    emu, ft = tcs
    feed(emu, b"N320S11111C0450V00100R00200D003000")
    ft.t = 1.0
    feed(emu, b"L")
    ft.t = 1.5
    emu._advance(ft.t)
    assert emu.temps()[0] == pytest.approx(37.0)  # 32 + 10 °C/s × 0.5 s
    ft.t = 3.0
    emu._advance(ft.t)
    assert emu.temps() == (45.0,) * 5  # reached at 2.3 s, holding
    assert emu.stimulating
    ft.t = 4.25  # duration 3 s ends at 4.0: then back at 20 °C/s
    emu._advance(ft.t)
    assert not emu.stimulating and emu.temps()[0] == pytest.approx(40.0)
    ft.t = 5.0
    emu._advance(ft.t)
    assert emu.at_neutral()
    assert emu.stimuli[-1].peak_c == pytest.approx(45.0)


def test_tcs_short_duration_never_reaches_target(tcs):
    emu, ft = tcs
    feed(emu, b"N320")
    ft.t = 1.0
    emu._advance(ft.t)  # settled at the new neutral
    feed(emu, b"S11111C0450V00100R00100D000500L")  # 0.5 s at 10 °C/s: only 37 °C
    for t in (1.25, 1.5, 1.75):
        ft.t = t
        emu._advance(t)
    assert emu.stimuli[-1].peak_c == pytest.approx(37.0)


def test_tcs_enforces_its_own_maximum(tcs):
    emu, ft = tcs
    feed(emu, b"Om400N320S11111C0450V01000R01000D002000L")
    ft.t = 1.5
    emu._advance(ft.t)
    assert emu.max_c == 40.0 and emu.temps() == (40.0,) * 5


def test_tcs_power_on_defaults_and_reset(tcs):
    emu, ft = tcs
    assert (emu.neutral_c, emu.max_c, emu.zones) == (30.0, 60.0, "00000")
    feed(emu, b"C0450L")  # zones off at power-on: nothing heats
    ft.t = 1.0
    emu._advance(ft.t)
    assert emu.temps() == (30.0,) * 5
    feed(emu, b"Om450S11111Oc")
    assert (emu.max_c, emu.zones) == (60.0, "00000")  # Oc clears Om: the driver must set it at every connect


def test_tcs_abort_returns_to_neutral_at_return_rate(tcs):
    emu, ft = tcs
    feed(emu, b"N320S10000C0450V01000R00100D009000L")
    ft.t = 2.0
    emu._advance(ft.t)
    assert emu.temps()[0] == 45.0 and emu.temps()[1] == 32.0  # only zone 1 active
    feed(emu, b"A")
    ft.t = 2.5
    emu._advance(ft.t)
    assert not emu.stimulating and emu.temps()[0] == pytest.approx(40.0)
    assert emu.stimuli[-1].aborted_t == 2.0


def test_tcs_replies_on_a_real_pty():
    emu = TcsEmulator(speed=1.0).start()
    try:
        with serial.serial_for_url(emu.port, baudrate=115200, timeout=0.5) as s:
            s.write(b"?")
            time.sleep(0.1)
            s.write(b"E")
            time.sleep(0.1)
            data = s.read(s.in_waiting)
            msgs, _ = w.split_stream(data)
            assert b"TCS" in msgs
            temps = [w.decode_temperature_line(m) for m in msgs if w.is_temperature_line(m)]
            assert temps and temps[-1].neutral_c == 30.0
    finally:
        emu.stop()


def count_lines(emu, seconds: float) -> int:
    with serial.serial_for_url(emu.port, baudrate=115200, timeout=0.05) as s:
        s.reset_input_buffer()
        time.sleep(seconds)
        data = s.read(s.in_waiting)
    return sum(1 for m in w.split_stream(data)[0] if w.is_temperature_line(m))


def test_stream_rates_idle_and_capped_during_stimulus():
    emu = TcsEmulator(speed=1.0).start()
    try:
        assert 1 <= count_lines(emu, 1.2) <= 2  # ~1 Hz between stimuli
    finally:
        emu.stop()
    emu = TcsEmulator(speed=5.0).start()
    try:
        with serial.serial_for_url(emu.port, baudrate=115200, timeout=0.05) as s:
            s.write(b"S11111C0400V00100R00100D020000L")
            s.reset_input_buffer()
            time.sleep(0.5)
            data = s.read(s.in_waiting)
        n = sum(1 for m in w.split_stream(data)[0] if w.is_temperature_line(m))
        assert 15 <= n <= 27  # 100 Hz × speed 5 would be 250 lines; capped at 50 per wall second
    finally:
        emu.stop()


def test_speed_agrees_with_real_clock():
    clock = RealClock(20.0)
    emu = TcsEmulator(speed=20.0)
    try:
        time.sleep(0.2)
        assert emu.now() == pytest.approx(clock.now(), abs=0.2)
    finally:
        emu.stop()


def test_every_received_byte_is_time_stamped():
    emu = TcsEmulator().start()
    try:
        with serial.serial_for_url(emu.port, timeout=0.1) as s:
            t0 = time.perf_counter()
            s.write(b"N320")
            time.sleep(0.05)
            s.write(b"L")
            time.sleep(0.05)
        assert emu.received_bytes() == b"N320L"
        ta, tb = emu.first_arrival(b"N", t0), emu.first_arrival(b"L", t0)
        assert ta is not None and tb is not None and t0 <= ta < tb < t0 + 0.5
    finally:
        emu.stop()


def test_bath_drifts_settles_and_can_be_forced():
    emu = BathEmulator(model="serial-thermometer", start_c=1.0, drift_c_per_min=0.6)
    ft = controlled(emu)
    ft.t = 60.0
    assert emu.temperature_c() == pytest.approx(1.6)
    emu.force_temperature(7.0)
    ft.t = 120.0
    assert emu.temperature_c() == pytest.approx(7.0)
    emu.stop()
    emu = BathEmulator(model="julabo", start_c=10.0, setpoint_c=2.0)
    ft = controlled(emu)
    for t in range(1, 1201):
        ft.t = float(t)
        emu.temperature_c()
    assert emu.temperature_c() == pytest.approx(2.0, abs=0.01)  # ten time constants later
    emu.stop()


def test_julabo_emulator_answers_and_drops_too_fast_commands():
    emu = BathEmulator(model="julabo", start_c=3.05).start()
    try:
        with serial.serial_for_url(emu.port, timeout=0.5) as s:
            time.sleep(0.3)
            s.write(b"IN_PV_00\r")
            assert s.readline() == b"3.05\r\n"
            s.write(b"IN_SP_00\r")  # < 250 ms after the previous one: dropped
            assert s.readline() == b""
            time.sleep(0.3)
            s.write(b"NONSENSE\r")
            assert s.readline() == b"-08 INVALID COMMAND\r\n"
        assert emu.spacing_violations == 1
    finally:
        emu.stop()


def test_algometer_press_cycle_and_zero():
    emu = AlgometerEmulator(model="mark10", rest_s=2.0, ramp_kpa_per_s=50.0, stop_kpa=300.0, preload_kpa=12.0)
    ft = controlled(emu)
    emu._press_start = emu.rest_s  # first press after the rest, on the controlled clock
    assert emu.load_kpa(1.0) == 0.0
    assert emu.load_kpa(4.0) == pytest.approx(100.0)  # 2 s into the ramp
    assert emu.load_kpa(8.0) == pytest.approx(300.0)
    assert emu.load_kpa(8.25) == pytest.approx(150.0)  # releasing
    assert emu.load_kpa(9.0) == 0.0
    assert emu.load_kpa(11.5) == pytest.approx(50.0)  # the next cycle started at 10.5
    ft.t = 0.5
    assert emu.shown_kpa() == pytest.approx(12.0)
    emu.on_bytes(b"Z\r\n")
    assert emu.shown_kpa() == pytest.approx(0.0)
    emu.stop()


def test_start_emulated_station_writes_a_loadable_station(tmp_path):
    path, st = start_emulated_station(tmp_path, speed=5.0, bath_model="lauda", algometer_model="wagner-fdx")
    with st:
        station = load_station(path)
        assert station.station.emulated is True
        assert (station.thermode.model, station.bath.model, station.algometer.model) == ("tcs2", "lauda", "wagner-fdx")
        assert station.thermode.port == st.thermode.port and os.path.exists(st.thermode.port)
        assert (station.algometer.model_extra or {})["probe_area_cm2"] == 1.0
        assert all(e.speed == 5.0 for e in st.all())


def test_emulate_command_prints_port_and_stops_on_ctrl_c():
    proc = subprocess.Popen([sys.executable, "-m", "cpm_session", "emulate", "bath", "--model", "lauda", "--speed", "2",
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("bath emulator (lauda, speed 2) on /dev/")
        port = first.rsplit(" ", 1)[1].strip()
        lines = []
        while not lines or not lines[-1].startswith("Press Ctrl-C"):
            lines.append(proc.stdout.readline())
        assert any('model = "lauda"' in ln for ln in lines) and any(port in ln for ln in lines)
        with serial.serial_for_url(port, timeout=1.0) as s:
            s.write(b"TYPE\r\n")
            assert s.readline() == b"ECO RE 1050 (emulated)\r\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_emulate_command_rejects_a_wrong_model(capsys):
    from cpm_session.cli import main

    assert main(["emulate", "thermode", "--model", "julabo"]) == 2
    assert "expected one of ['tcs2']" in capsys.readouterr().err
