"""Real drivers over real pseudo-terminals against the emulators: exact bytes, read-back, abort, kill safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import serial

from cpm_session.clock import RealClock
from cpm_session.config.station import RoleConfig
from cpm_session.devices.real import open_real, serial_settings
from cpm_session.devices.tcs2 import TcsThermode
from cpm_session.errors import DeviceError, SafetyLimitError, StationFileError
from cpm_session.sim.emulators import AlgometerEmulator, BathEmulator, TcsEmulator
from tests.helpers import wait_for

CAP_C, NEUTRAL_C = 49.0, 32.0


def open_on(role, emu, **cfg):
    """Open the real driver for `role` (RoleConfig fields in `cfg`) on the emulator's pty, on the wall clock."""
    return open_real(role, RoleConfig(port=emu.port, **cfg), cap_c=CAP_C, neutral_c=NEUTRAL_C, clock=RealClock())



@pytest.fixture
def tcs():
    emu = TcsEmulator(speed=10.0, strict=True).start()
    dev = open_real("thermode", RoleConfig(model="tcs2", port=emu.port), cap_c=CAP_C, neutral_c=NEUTRAL_C,
                    clock=RealClock(10.0))
    yield emu, dev
    dev.close()
    emu.stop()


def test_connect_sets_om_and_reads_it_back(tcs):
    emu, dev = tcs
    info = dev.connect()
    assert info.identity == "TCS" and info.firmware == "TCS II emulator 1.0"
    assert info.extra["device_max_c"] == "49.0" and info.extra["probe_id"] == "EMU-0001"
    assert info.extra["p_layout"] == "public" and info.extra["device_max_readback"].startswith("not shown")
    assert emu.max_c == 49.0 and emu.neutral_c == 32.0 and emu.zones == "11111"
    assert emu.received_bytes() == b"?HOaObN320S11111Om490PQ" and emu.dropped_chars == 0


def test_connect_fails_when_om_is_not_taken(tcs):
    emu, dev = tcs
    original = emu._execute

    def ignore_om(c: bytes) -> None:
        if not c.startswith(b"Om"):
            original(c)

    emu._execute = ignore_om  # a device that silently drops Om (power-on maximum 60.0 stays)
    emu.p_mode = "command"  # a P layout that shows the maximum
    with pytest.raises(DeviceError, match="maximum read back as 60.0 °C, expected 49.0 °C .after a re-send"):
        dev.connect()
    assert emu.received_bytes() == b"?HOaObN320S11111Om490PN320S11111Om490P"  # re-sent once, then refused


def test_stimulate_sends_exact_bytes_then_device_times_it(tcs):
    emu, dev = tcs
    dev.connect()
    emu.clear_received()
    dev.stimulate(45.5, 30.0, 40.0, 5.0)
    assert wait_for(lambda: emu.received_bytes().endswith(b"L"))
    assert emu.received_bytes() == b"N320S11111C0455V00300R00400D005000PL"  # loaded, read back, launched
    assert wait_for(lambda: emu.stimulating)
    assert emu.stimuli[-1].targets_c == (45.5,) * 5


def test_cap_refusal_sends_nothing(tcs):
    emu, dev = tcs
    dev.connect()
    emu.clear_received()
    for bad in (49.1, 55.0, -1.0):
        with pytest.raises(SafetyLimitError):
            dev.stimulate(bad, 30.0, 30.0, 2.0)
    for rise, ret, dur in ((0.0, 30.0, 2.0), (30.0, 1000.0, 2.0), (30.0, 30.0, 120.0)):
        with pytest.raises(SafetyLimitError, match="nothing sent"):
            dev.stimulate(45.0, rise, ret, dur)
    time.sleep(0.1)
    assert emu.received_bytes() == b""
    assert not emu.stimuli


def test_read_returns_streamed_temperature_with_session_time(tcs):
    emu, dev = tcs
    dev.connect()
    dev.stimulate(40.0, 10.0, 10.0, 3.0)
    assert wait_for(lambda: dev.read().mean_c > 35.0, timeout=2.0)
    r = dev.read()
    assert r.neutral_c == 32.0 and len(r.zones_c) == 5
    assert 0 < r.t <= dev.clock.now()
    assert abs(r.mean_c - emu.temps()[0]) < 1.5  # the stream lags the device by at most one line


def test_abort_goes_out_while_a_query_is_in_flight(tcs):
    emu, dev = tcs
    dev.connect()
    dev.stimulate(45.0, 5.0, 10.0, 30.0)  # a long stimulus: 30 device s = 3 wall s
    assert wait_for(lambda: emu.stimulating)
    emu.ignore_next(1)  # the device will not answer the next query: it stays in flight for 2 s
    holder = threading.Thread(target=lambda: pytest.raises(DeviceError, dev.transport.query, b"Q",
                                                           lambda m: None, command="Q", timeout_s=2.0))
    holder.start()
    time.sleep(0.05)
    assert dev.transport._txn.acquire(blocking=False) is False  # the query holds the request lock
    t0 = time.perf_counter()
    dev.abort()
    assert wait_for(lambda: emu.first_arrival(b"A", t0) is not None, timeout=1.0)
    latency = emu.first_arrival(b"A", t0) - t0
    assert holder.is_alive() and latency < 0.1
    assert wait_for(lambda: not emu.stimulating) and emu.stimuli[-1].aborted_t is not None
    assert wait_for(lambda: emu.at_neutral(), timeout=3.0)
    holder.join()


HOST_SCRIPT = textwrap.dedent("""
    import sys, time
    from cpm_session.clock import RealClock
    from cpm_session.devices.real import open_real
    from cpm_session.config.station import RoleConfig
    dev = open_real("thermode", RoleConfig(model="tcs2", port=sys.argv[1]), cap_c=49.0, neutral_c=32.0,
                    clock=RealClock(float(sys.argv[2])))
    dev.connect()
    dev.stimulate(46.0, 20.0, 20.0, 4.0)
    print("launched", flush=True)
    time.sleep(60)
""")


def test_killed_host_cannot_leave_heat_on():
    speed = 4.0
    with TcsEmulator(speed=speed) as emu:
        proc = subprocess.Popen([sys.executable, "-c", HOST_SCRIPT, emu.port, str(speed)], stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "launched"
        assert wait_for(lambda: emu.stimulating, timeout=2.0)
        os.kill(proc.pid, signal.SIGKILL)  # no close(), no abort: the host is gone
        proc.wait(5)
        launch = emu.stimuli[-1].launch_t
        assert wait_for(lambda: max(emu.temps()) > 40.0, timeout=2.0)
        # duration 4 s (rise + plateau), then 14 °C back at 20 °C/s: neutral by launch + 4.7 device s
        assert wait_for(lambda: emu.at_neutral(), timeout=(4.0 + 0.7 + 0.5) / speed + 1.0)
        assert emu.now() - launch <= 4.0 + 0.7 + 0.5 + 1.0 * speed
        assert not any(c == b"A" for _, c in emu.commands)  # it came back on its own, not by abort


def test_close_sends_abort(tcs):
    emu, dev = tcs
    dev.connect()
    dev.stimulate(44.0, 5.0, 10.0, 30.0)
    assert wait_for(lambda: emu.stimulating)
    dev.close()
    assert wait_for(lambda: not emu.stimulating) and emu.stimuli[-1].aborted_t is not None


# ---- baths --------------------------------------------------------------------------------------

@pytest.mark.parametrize("terminator, wire_end", [("cr", b"\r"), ("crlf", b"\r\n")])
def test_julabo_driver_spacing_and_setpoint(terminator, wire_end):
    with BathEmulator(speed=1.0, model="julabo", start_c=2.5, strict_spacing=True) as emu:
        dev = open_on("bath", emu, model="julabo", terminator=terminator)
        info = dev.connect()
        assert info.identity.startswith("JULABO") and info.extra["status"] == "03 REMOTE START"
        assert dev.read_c() == pytest.approx(2.5, abs=0.01)
        t0 = time.monotonic()
        assert dev.read_c() == pytest.approx(2.5, abs=0.01)  # reused: no second IN_PV_00, no 250 ms stall
        assert time.monotonic() - t0 < 0.05
        assert dev.set_setpoint(3.0) == 3.0
        assert dev.running() is True
        dev.close()
        assert emu.received_bytes() == wire_end.join(
            [b"VERSION", b"STATUS", b"IN_PV_00", b"OUT_SP_00 3.00", b"IN_SP_00", b"IN_MODE_05"]) + wire_end
        stamps = [t for t, _ in emu.received]
        assert len(stamps) == 6 and min(b - a for a, b in zip(stamps, stamps[1:], strict=False)) >= 0.25 - 0.05  # host spaces 280 ms; arrival stamps jitter
        assert emu.spacing_violations == 0


def test_julabo_classic_serial_settings():
    with BathEmulator(model="julabo") as emu:
        cfg = RoleConfig(model="julabo", port=emu.port, variant="classic")
        assert serial_settings(cfg) == {"baudrate": 4800, "bytesize": 7, "parity": "E", "stopbits": 1, "rtscts": True}
        dev = open_real("bath", cfg, cap_c=CAP_C, neutral_c=NEUTRAL_C, clock=RealClock())
        conn = dev.transport.conn
        assert (conn.baudrate, conn.bytesize, conn.parity, conn.rtscts) == (4800, serial.SEVENBITS, "E", True)
        dev.close()
        with pytest.raises(StationFileError, match="variant"):
            open_on("bath", emu, model="julabo", variant="vintage")


def test_lauda_driver():
    with BathEmulator(model="lauda", start_c=3.2) as emu:
        dev = open_on("bath", emu, model="lauda")
        assert dev.transport.conn.baudrate == 9600
        assert dev.connect().identity == "ECO RE 1050 (emulated)"
        assert dev.read_c() == pytest.approx(3.2, abs=0.01)
        assert dev.set_setpoint(2.0) == 2.0
        dev.close()
        assert emu.received_bytes() == b"TYPE\r\nIN_PV_00\r\nOUT_SP_00_002.00\r\nIN_SP_00\r\n"


def test_set_point_not_taken_is_a_device_error_naming_the_command():
    with BathEmulator(model="julabo", start_c=3.0) as emu:
        dev = open_on("bath", emu, model="julabo")
        dev.connect()
        emu.ignore_next(1)  # OUT_SP_00 is dropped; IN_SP_00 still answers 3.00
        with pytest.raises(DeviceError, match=r"set point read back as 3\.0, expected 5\.00") as ei:
            dev.set_setpoint(5.0)
        assert (ei.value.role, ei.value.port, ei.value.command) == ("bath", emu.port, "OUT_SP_00 5.00")
        assert dev.set_setpoint(3.005) == 3.0  # within 0.01 °C of what was sent: accepted
        dev.close()


def test_serial_thermometer_driver():
    with BathEmulator(model="serial-thermometer", start_c=-0.4) as emu:
        dev = open_on("bath", emu, model="serial-thermometer")
        dev.connect()
        assert dev.read_c() == pytest.approx(-0.4, abs=0.01)
        assert dev.setpoint_c() is None
        dev.close()
        assert emu.received_bytes() == b"?\r\n?\r\n"


# ---- algometers ---------------------------------------------------------------------------------

def test_wagner_reads_lbf_as_kpa_with_probe_area():
    with AlgometerEmulator(speed=1.0, model="wagner-fdx", probe_area_cm2=0.5, auto_press=False) as emu:
        dev = open_on("algometer", emu, model="wagner-fdx", probe_area_cm2=0.5)
        assert dev.connect().extra["unit"] == "lbf"
        dev.zero()  # no load: passes
        emu.press(ramp_kpa_per_s=100.0, stop_kpa=10000.0)
        time.sleep(0.5)
        kpa = dev.read_kpa()
        assert 40.0 < kpa < 80.0  # ~50 kPa after 0.5 s at 100 kPa/s, sent as negative lbf for 0.5 cm²
        assert dev.peak_kpa() >= kpa
        dev.clear_peak()
        emu.press(ramp_kpa_per_s=300.0, stop_kpa=150.0)
        time.sleep(1.2)  # ramp 0.5 s, release 0.5 s: the host reads nothing meanwhile, the poller does
        assert dev.peak_kpa() == pytest.approx(150.0, abs=16.0)
        dev.close()
        assert emu.received_bytes().startswith(b"?\r\n")
        assert set(emu.received_bytes().split(b"\r\n")) == {b"?", b""}
        assert len(emu.commands) > 20  # polled at ~20 Hz


def test_wagner_zero_refuses_a_loaded_gauge():
    with AlgometerEmulator(model="wagner-fdx", auto_press=False, preload_kpa=50.0) as emu:
        dev = open_on("algometer", emu, model="wagner-fdx")
        dev.connect()
        with pytest.raises(DeviceError, match="ZERO key"):
            dev.zero()
        dev.close()


@pytest.mark.parametrize("peak_command", ["?C", "?PC"])
def test_mark10_zero_peak_clear(peak_command):
    with AlgometerEmulator(speed=1.0, model="mark10", auto_press=False, preload_kpa=30.0) as emu:
        dev = open_on("algometer", emu, model="mark10", peak_command=peak_command)
        assert dev.transport.conn.baudrate == 115200
        dev.connect()
        assert dev.read_kpa() == pytest.approx(30.0, abs=0.1)
        dev.zero()
        assert dev.read_kpa() == pytest.approx(0.0, abs=0.1)
        emu.press(ramp_kpa_per_s=200.0, stop_kpa=100.0)
        time.sleep(0.8)  # ramp 0.5 s, release 0.5 s
        assert dev.peak_kpa() == pytest.approx(100.0, abs=5.0)
        dev.clear_peak()
        assert dev.peak_kpa() < 100.0
        dev.close()
        sent = emu.received_bytes()
        assert sent.startswith(b"?\r\n?\r\nZ\r\n?\r\n?\r\n" + peak_command.encode() + b"\r\nCLR\r\n?\r\n")


def test_open_real_refuses_unknown_model_and_missing_port():
    with pytest.raises(StationFileError):
        open_real("thermode", RoleConfig(model="julabo", port="loop://"), cap_c=CAP_C, neutral_c=NEUTRAL_C,
                  clock=RealClock())
    from cpm_session.errors import DeviceDisconnected

    with pytest.raises(DeviceDisconnected, match="cannot open port"):
        open_real("thermode", RoleConfig(model="tcs2", port="/dev/does-not-exist"), cap_c=CAP_C,
                  neutral_c=NEUTRAL_C, clock=RealClock())


def test_thermode_driver_validates_before_opening_anything():
    with pytest.raises(SafetyLimitError):
        TcsThermode(None, port="x", cap_c=55.0, neutral_c=32.0, clock=RealClock())
    with pytest.raises(StationFileError, match="zones"):
        open_real("thermode", RoleConfig(model="tcs2", port="loop://", zones="111"), cap_c=CAP_C,
                  neutral_c=NEUTRAL_C, clock=RealClock())


def test_identity_without_line_ending_is_accepted_once_the_line_goes_quiet():
    emu = TcsEmulator(speed=1.0).start()
    original = emu._execute

    def terse(c: bytes) -> None:
        if c == b"?":
            emu.send(b"TCS")  # no CR LF, and the stream is muted: nothing terminates it
        else:
            original(c)

    emu._execute = terse
    emu.muted = True
    try:
        dev = open_on("thermode", emu, model="tcs2")
        t0 = time.monotonic()
        assert dev.connect().identity == "TCS"
        assert time.monotonic() - t0 < 0.8
        dev.close()
    finally:
        emu.stop()


def test_real_driver_path_never_imports_emulators():
    code = ("import sys; import cpm_session.devices.real as r; import cpm_session.devices.tcs2, "
            "cpm_session.devices.baths, cpm_session.devices.algometers, cpm_session.station_check; "
            "bad = [m for m in sys.modules if m.startswith('cpm_session.sim.emulators')]; assert not bad, bad")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
