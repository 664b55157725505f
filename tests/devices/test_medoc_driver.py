"""The Medoc driver against the MMS emulator over real TCP on localhost."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cpm_session.clock import RealClock
from cpm_session.config.medoc import MedocSettings
from cpm_session.devices.medoc import (
    MedocProgramMissing,
    MedocSafeMode,
    MedocSafetyError,
    MedocThermode,
    MedocTriggerLost,
)
from cpm_session.devices.wire.medoc import Command, ReturnCode
from cpm_session.errors import DeviceDisconnected, DeviceError, SafetyLimitError
from cpm_session.sim.emulators.medoc import MedocEmulator, grid_programs

SPEED = 20.0


def make(emu: MedocEmulator, **kw: Any) -> MedocThermode:
    programs = {p.target_c: c for c, p in emu.programs.items()}
    s = MedocSettings(host=emu.host, port=emu.port, command_spacing_s=kw.pop("spacing", 0.02),
                      programs=kw.pop("programs", programs), timeout_s=kw.pop("timeout_s", 1.0), **kw)
    return MedocThermode(s, cap_c=kw.get("cap_c", 49.0), neutral_c=32.0, clock=RealClock(SPEED))


@pytest.fixture
def emu() -> Iterator[MedocEmulator]:
    e = MedocEmulator(SPEED, programs=grid_programs(40.0, 48.0, 0.5), pretest_s=(2.0, 6.0), spacing_s=0.01).start()
    yield e
    e.stop()


def test_select_start_trigger_sequence_and_heat(emu: MedocEmulator) -> None:
    th = make(emu)
    info = th.connect()
    try:
        assert info.extra["system_state"] == "READY" and info.extra["layout"] == "full"
        th.prepare(45.0, 10.0, 10.0, 6.0)
        assert emu.state == "armed" and not emu.stimuli  # RUNNING, waiting for the trigger: no heat yet
        assert th.last_program_code == 26 and th.last_program_c == 45.0
        th.launch()
        assert len(emu.stimuli) == 1 and emu.stimuli[0].target_c == 45.0
        seq = [r.command for r in emu.commands(executed=True) if r.command != Command.GET_STATUS]
        assert seq == [Command.SELECT_TP, Command.TRIGGER]  # automatic start: no START needed
        sel = emu.commands(Command.SELECT_TP)[0]
        assert sel.parameter == 26
        # the trigger reached the device only after the pre-test was over
        assert emu.commands(Command.TRIGGER)[0].state_after == "stimulus"
        deadline = time.monotonic() + 3
        while th.read().mean_c < 44.9 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert th.read().mean_c == pytest.approx(45.0, abs=0.01)
        assert any(r.mean_c > 40 for r in th.trace())
    finally:
        th.close()


def test_manual_start_and_start_twice(emu: MedocEmulator) -> None:
    emu.auto_start, emu.start_twice = False, True
    th = make(emu)
    th.connect()
    try:
        th.stimulate(42.0, 10, 10, 5)
        starts = emu.commands(Command.START, executed=True)
        assert len(starts) == 2 and all(r.reply_code == ReturnCode.OK for r in starts)
        assert emu.stimuli[-1].target_c == 42.0
    finally:
        th.close()


def test_trigger_sent_in_pretest_is_detected_and_retried(emu: MedocEmulator) -> None:
    th = make(emu)
    th.connect()
    try:
        th.prepare(44.0, 10, 10, 5)
        # MMS went back into a pre-test (e.g. the operator restarted it): the next TRIGGER is lost
        with emu.lock:
            emu._begin_pretest(emu.now())
        th.launch()
        trig = emu.commands(Command.TRIGGER)
        assert [r.reply_code for r in trig] == [ReturnCode.ILLEGAL_TEST_STATE, ReturnCode.OK]
        assert len(emu.stimuli) == 1
    finally:
        th.close()


def test_silent_lost_trigger_seen_from_state(emu: MedocEmulator) -> None:
    emu.lost_trigger_reply = "ok"
    th = make(emu, trigger_retries=0)
    th.connect()
    try:
        th.prepare(44.0, 10, 10, 5)
        with emu.lock:
            emu._begin_pretest(emu.now())
            emu.pretest_s = (1e6, 1e6)
            emu._pretest_end = 1e9
        with pytest.raises(MedocTriggerLost, match=r"thermode on 127\.0\.0\.1:\d+: trigger lost.*TRIGGER"):
            th.launch()
        assert not emu.stimuli  # nothing assumed delivered
    finally:
        th.close()


def test_abort_goes_out_at_once_even_while_a_command_is_in_flight(emu: MedocEmulator) -> None:
    th = make(emu, spacing=0.2)
    th.connect()
    try:
        th.stimulate(46.0, 10, 10, 5)
        assert emu.stimulating
        time.sleep(0.05)  # past the emulator's own 10 ms spacing: abort must not add the driver's 200 ms
        with th._io:  # another command holds the line
            t0 = time.perf_counter()
            th.abort()
            dt = time.perf_counter() - t0
        assert dt < 0.15, dt  # no spacing wait, no wait for the lock
        assert not emu.stimulating and emu.stimuli[-1].aborted
    finally:
        th.close()


def test_commands_too_close_are_reset_and_retried(emu: MedocEmulator) -> None:
    emu.spacing_s = 0.15
    th = make(emu, spacing=0.0, retries=5)  # a station with a spacing below what MMS needs
    th.connect()
    try:
        th.prepare(41.0, 10, 10, 5)
        th.launch()
        assert emu.commands(executed=False), "the emulator should have reset some commands"
        assert len(emu.stimuli) == 1
    finally:
        th.close()


def test_missing_program_and_cap_and_snap(emu: MedocEmulator) -> None:
    th = make(emu)
    with pytest.raises(MedocProgramMissing, match=r"no MMS program mapped to 45\.30 °C.*45, 45\.5"):
        th.program_for(45.3)
    with pytest.raises(SafetyLimitError):
        th.program_for(49.5)
    snap = make(emu, snap="down")
    assert snap.program_for(45.3) == (45.0, 26)
    assert snap.available_targets_c()[0] == 40.0 and snap.available_targets_c()[-1] == 48.0
    capped = MedocThermode(snap.s, cap_c=44.0, neutral_c=32.0, clock=RealClock(SPEED))
    assert capped.available_targets_c()[-1] == 44.0
    with pytest.raises(SafetyLimitError):
        capped.program_for(45.0)
    # a code mapped in the station but unknown to MMS
    bad = make(emu, programs={**{p.target_c: c for c, p in emu.programs.items()}, 49.0: 200})
    bad.connect()
    try:
        with pytest.raises(MedocProgramMissing, match=r"does not know program code 200 \(mapped to 49 °C\)"):
            bad.prepare(49.0, 10, 10, 5)
    finally:
        bad.close()


def test_safety_error_pauses(emu: MedocEmulator) -> None:
    th = make(emu)
    th.connect()
    try:
        th.stimulate(45.0, 10, 10, 5)
        emu.inject(ReturnCode.SAFETY_ERROR, command=Command.GET_STATUS, message="Over temperature")
        deadline = time.monotonic() + 3
        with pytest.raises(MedocSafetyError, match="SAFETY_ERROR") as ei:
            while time.monotonic() < deadline:
                th.read()
                time.sleep(0.02)
        assert isinstance(ei.value, DeviceError) and "Over temperature" in str(ei.value)
        assert not emu.stimulating
    finally:
        th.close()


@pytest.mark.parametrize("code, match", [
    (ReturnCode.DEVICE_COMM_ERROR, "cannot communicate with the thermode"),
    (ReturnCode.WAITING_MANUAL_OPERATION, "manual operation"),
    (ReturnCode.SAFETY_WARNING, "SAFETY_WARNING"),
])
def test_return_codes_map_to_clear_errors(emu: MedocEmulator, code: int, match: str) -> None:
    th = make(emu)
    th.connect()
    try:
        emu.inject(code, command=Command.SELECT_TP)
        with pytest.raises(DeviceError, match=match):
            th.prepare(42.0, 10, 10, 5)
    finally:
        th.close()


def test_refused_connection_is_one_clear_line() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there
    th = MedocThermode(MedocSettings(host="127.0.0.1", port=port, command_spacing_s=0.01, retries=2,
                                     programs={40.0: 20}), cap_c=49, neutral_c=32, clock=RealClock())
    with pytest.raises(DeviceDisconnected) as ei:
        th.connect()
    msg = str(ei.value)
    assert "\n" not in msg and f"127.0.0.1:{port}" in msg and "connection refused" in msg and "GET_STATUS" in msg


def test_safe_mode_and_not_licensed(emu: MedocEmulator) -> None:
    emu.safe_mode = True
    th = make(emu)
    th.connect()  # GET_STATUS is still answered in Safe Mode
    try:
        with pytest.raises(MedocSafeMode, match="Safe Mode"):
            th.prepare(42.0, 10, 10, 5)
    finally:
        th.close()
    emu.safe_mode, emu.not_licensed = False, True
    th2 = make(emu, retries=1)
    with pytest.raises(DeviceDisconnected, match="without a response.*licensed"):
        th2.connect()


def test_connection_drop_then_restore(emu: MedocEmulator) -> None:
    th = make(emu, retries=1, idle_poll_s=0.05)
    th.connect()
    try:
        emu.drop()
        time.sleep(0.3)
        with pytest.raises(DeviceDisconnected, match="connection refused"):
            th.read()
        with pytest.raises(DeviceDisconnected):
            th.prepare(42.0, 10, 10, 5)
        emu.restore()
        th.stimulate(42.0, 10, 10, 5)
        assert emu.stimuli[-1].target_c == 42.0
    finally:
        th.close()


@pytest.mark.parametrize("layout, order", [("short", "big"), ("full", "big"), ("short", "little")])
def test_both_layouts_and_length_orders(layout: str, order: str) -> None:
    emu = MedocEmulator(SPEED, programs=grid_programs(40, 44, 1.0), pretest_s=(0.5, 1.0), layout=layout,  # type: ignore[arg-type]
                        length_order=order).start()  # type: ignore[arg-type]
    try:
        th = make(emu, length_order=order)
        info = th.connect()
        assert info.extra["layout"] == layout and info.extra["length_order"] == order
        th.stimulate(43.0, 10, 10, 5)
        assert emu.stimuli[-1].target_c == 43.0
        r = th.read()
        assert (r.mean_c != r.mean_c) if layout == "short" else r.mean_c >= 32.0  # NaN: no temperature field
        th.close()
    finally:
        emu.stop()


def test_baseline_mismatch_refused(emu: MedocEmulator) -> None:
    th = make(emu, neutral_c=30.0)
    with pytest.raises(DeviceError, match=r"baseline of 30\.0 °C.*neutral is 32\.0 °C"):
        th.connect()


def test_test_left_open_is_aborted_at_connect(emu: MedocEmulator) -> None:
    first = make(emu)
    first.connect()
    first.prepare(42.0, 10, 10, 5)
    first._stop.set()  # a crashed program: no close()
    second = make(emu)
    info = second.connect()
    try:
        assert "aborted a test left open" in info.extra["note"] and emu.state == "listening"
    finally:
        second.close()
