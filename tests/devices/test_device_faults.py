"""Faults over real ptys: unplugged cable, garbage, partial replies, silence, ignored commands, error replies."""

from __future__ import annotations

import threading
import time

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from cpm_session.clock import RealClock
from cpm_session.config.station import RoleConfig
from cpm_session.devices.real import open_real
from cpm_session.devices.transport import Transport, split_lines
from cpm_session.devices.wire import julabo
from cpm_session.errors import DeviceDisconnected, DeviceError, DeviceTimeout
from cpm_session.sim.emulators import AlgometerEmulator, BathEmulator, TcsEmulator
from tests.helpers import wait_for

CAP_C, NEUTRAL_C = 49.0, 32.0



def open_on(role, emu, **cfg):
    """Open the real driver for `role` (RoleConfig fields in `cfg`) on the emulator's pty, on the wall clock."""
    return open_real(role, RoleConfig(port=emu.port, **cfg), cap_c=CAP_C, neutral_c=NEUTRAL_C, clock=RealClock())


def reply_late(emu, data, after_s):
    """Silence the emulator and have `data` arrive `after_s` later instead of its own replies."""
    emu.set_silent(True)
    time.sleep(0.3)  # past the bath's 280 ms command spacing, so the next query goes out at once
    threading.Timer(after_s, lambda: emu.inject_garbage(data)).start()


def connected_tcs(speed=10.0, timeout_s=0.3):
    emu = TcsEmulator(speed=speed).start()
    dev = open_real("thermode", RoleConfig(model="tcs2", port=emu.port, timeout_s=timeout_s), cap_c=CAP_C,
                    neutral_c=NEUTRAL_C, clock=RealClock(speed))
    dev.connect()
    return emu, dev


def test_unplug_during_stimulus_raises_disconnected():
    emu, dev = connected_tcs()
    try:
        dev.stimulate(45.0, 10.0, 10.0, 20.0)
        assert wait_for(lambda: emu.stimulating)
        emu.unplug()
        assert wait_for(lambda: dev.transport.fault is not None, timeout=2.0)
        calls = [(lambda: dev.stimulate(44.0, 10.0, 10.0, 2.0), "N320 S11111 C0440 V00100 R00100 D002000"),
                 (dev.abort, "A"), (dev.error_status, "Q")]
        for call, command in calls:
            with pytest.raises(DeviceDisconnected) as ei:
                call()
            e = ei.value
            assert (e.role, e.port, e.command) == ("thermode", emu.port, command)
            assert "port vanished" in str(e) and emu.port in str(e)
        dev.close()  # never raises, even with the port gone
    finally:
        emu.stop()


def test_unplug_while_waiting_for_a_reply_ends_the_wait_at_once():
    emu, dev = connected_tcs(timeout_s=5.0)
    try:
        emu.ignore_next(1)
        t0 = time.monotonic()
        threading.Timer(0.2, emu.unplug).start()
        with pytest.raises(DeviceDisconnected) as ei:
            dev.transport.query(b"Q", lambda m: None, command="Q", timeout_s=5.0)
        assert time.monotonic() - t0 < 1.5 and ei.value.command == "Q"
    finally:
        dev.close()
        emu.stop()


def test_silence_is_a_timeout_naming_role_port_command():
    emu, dev = connected_tcs()
    try:
        emu.set_silent(True)
        time.sleep(0.05)
        with pytest.raises(DeviceTimeout) as ei:
            dev.error_status()
        e = ei.value
        assert (e.role, e.port, e.command) == ("thermode", emu.port, "Q")
        assert "nothing came back" in str(e)
    finally:
        dev.close()
        emu.stop()


def test_stale_stream_makes_read_ask_and_time_out():
    emu, dev = connected_tcs()
    try:
        emu.set_silent(True)
        dev._latest_wall -= 10.0  # pretend the last streamed line is old
        with pytest.raises(DeviceTimeout, match="command 'E'"):
            dev.read()
    finally:
        dev.close()
        emu.stop()


def test_garbage_instead_of_a_reply_is_a_device_error_with_what_came_back():
    with BathEmulator(model="julabo") as emu:
        dev = open_on("bath", emu, model="julabo", timeout_s=0.5)
        dev.connect()
        reply_late(emu, b"#$%!\r\n", after_s=0.35)
        with pytest.raises(DeviceError) as ei:
            dev.read_c()
        e = ei.value
        assert not isinstance(e, DeviceTimeout)
        assert e.command == "IN_PV_00" and e.reply == b"#$%!" and "not a number" in str(e)
        dev.close()


def test_partial_reply_is_a_timeout_showing_the_fragment():
    with BathEmulator(model="julabo") as emu:
        dev = open_on("bath", emu, model="julabo", timeout_s=0.4)
        dev.connect()
        reply_late(emu, b"3.0", after_s=0.3)
        with pytest.raises(DeviceTimeout, match="incomplete reply") as ei:
            dev.read_c()
        assert ei.value.reply == b"3.0"
        dev.close()


def test_ignored_command_is_a_timeout():
    with AlgometerEmulator(model="mark10", auto_press=False) as emu:
        dev = open_on("algometer", emu, model="mark10", timeout_s=0.3)
        dev.connect()
        emu.ignore_next(1)
        with pytest.raises(DeviceTimeout, match="command '\\?C'"):
            dev.peak_kpa()
        assert dev.read_kpa() == pytest.approx(0.0)  # the next command works again
        dev.close()


def test_device_error_replies_are_reported():
    with BathEmulator(model="julabo") as emu:
        dev = open_on("bath", emu, model="julabo")
        dev.connect()
        with pytest.raises(DeviceError, match="-08 INVALID COMMAND") as ei:
            dev._ask("IN_XX_99", julabo.decode_float)
        assert ei.value.command == "IN_XX_99"
        dev.close()
    with AlgometerEmulator(model="mark10", auto_press=False) as emu:
        dev = open_on("algometer", emu, model="mark10")
        dev.connect()
        with pytest.raises(DeviceError, match=r"\*10 \(illegal command\)"):
            dev._command("XYZ")
        dev.close()


def test_bath_forced_out_of_range_is_read_as_such():
    with BathEmulator(model="lauda", start_c=2.5) as emu:
        dev = open_on("bath", emu, model="lauda")
        dev.connect()
        emu.force_temperature(9.5)
        assert dev.read_c() == pytest.approx(9.5, abs=0.01)
        dev.close()


def test_abort_on_a_vanished_port_is_disconnected_not_a_hang():
    emu, dev = connected_tcs()
    emu.unplug()
    wait_for(lambda: dev.transport.fault is not None)
    t0 = time.monotonic()
    with pytest.raises(DeviceDisconnected):
        dev.abort()
    assert time.monotonic() - t0 < 0.5
    dev.close()
    emu.stop()


def test_transport_on_loop_url_matches_replies_by_pattern():
    conn = serial.serial_for_url("loop://", timeout=0.05)
    tr = Transport(conn, role="bath", port="loop://", default_timeout_s=0.5)
    tr.start()
    try:
        # loop:// echoes what is written: the reply is the echo; a first_only query sees it first
        assert tr.query(b"3.25\r\n", lambda m: float(m), command="echo", first_only=True) == 3.25
        with pytest.raises(DeviceError, match="unexpected reply"):
            tr.query(b"abc\r\n", lambda m: None, command="x", first_only=True)
    finally:
        tr.close()
    with pytest.raises(DeviceError, match="closed"):
        tr.write(b"x")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_line_framer_is_total(data):
    msgs, tail = split_lines(data)
    assert all(m and b"\r" not in m and b"\n" not in m for m in msgs)
    assert b"\r" not in tail and b"\n" not in tail


def test_wagner_poller_failure_surfaces_on_the_next_call():
    emu = AlgometerEmulator(model="wagner-fdx", auto_press=False).start()
    dev = open_on("algometer", emu, model="wagner-fdx", timeout_s=0.3)
    try:
        dev.connect()
        emu.unplug()
        assert wait_for(lambda: dev.transport.fault is not None)
        time.sleep(0.1)
        with pytest.raises(DeviceDisconnected) as ei:
            dev.read_kpa()
        assert (ei.value.role, ei.value.port, ei.value.command) == ("algometer", emu.port, "?")
    finally:
        dev.close()
        emu.stop()
