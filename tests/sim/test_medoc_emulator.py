"""The MMS emulator seen from raw TCP bytes: one command per connection, states, faults, both layouts."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from cpm_session.devices.wire import medoc as w
from cpm_session.devices.wire.medoc import Command, ReturnCode, SystemState, TestState
from cpm_session.sim.emulators.medoc import MedocEmulator, Program

SPEED = 10.0


def send(emu: MedocEmulator, raw: bytes) -> bytes:
    """Open a connection, send `raw`, read until MMS closes; return what came back."""
    with socket.create_connection((emu.host, emu.port), timeout=2.0) as s:
        s.sendall(raw)
        out = b""
        while chunk := s.recv(4096):
            out += chunk
        return out


def cmd(emu: MedocEmulator, code: Command, param: int | None = None, order: w.LengthOrder = "little") -> w.Response:
    return w.decode_response(send(emu, w.encode_command(code, param, timestamp=0x01020304, length_order=order)))


@pytest.fixture
def emu() -> Iterator[MedocEmulator]:
    e = MedocEmulator(SPEED, programs={20: Program(44.0, plateau_s=2.0)}, pretest_s=(2.0, 2.0)).start()
    yield e
    e.stop()


def test_status_bytes_echo_stamp_and_close(emu: MedocEmulator) -> None:
    raw = send(emu, bytes.fromhex("05000000" "04030201" "00"))
    assert raw == bytes.fromhex("13000000" "04030201" "00" "01" "00" "0000" "00000000" "800c" "00000000")
    # 0x0c80 = 3200 = 32.00 °C; the server closed the connection after one response


def test_big_endian_length_accepted(emu: MedocEmulator) -> None:
    r = cmd(emu, Command.GET_STATUS, order="big")
    assert r.ok and r.system_state == SystemState.READY


def test_workflow_states_pretest_lost_trigger_then_heat(emu: MedocEmulator) -> None:
    assert cmd(emu, Command.SELECT_TP, 99).return_code == ReturnCode.ILLEGAL_ARG
    r = cmd(emu, Command.SELECT_TP, 20)
    assert r.ok and (r.system_state, r.test_state) == (SystemState.TEST, TestState.IDLE)  # pre-test
    lost = cmd(emu, Command.TRIGGER)
    assert lost.return_code == ReturnCode.ILLEGAL_TEST_STATE and not emu.stimuli
    time.sleep(2.0 / SPEED + 0.02)
    r = cmd(emu, Command.GET_STATUS)
    assert r.running and r.temperature_c == 32.0  # waiting for the trigger: no heat
    t = cmd(emu, Command.TRIGGER)
    assert t.ok and t.running and len(emu.stimuli) == 1
    time.sleep(0.6 / SPEED)  # 0.6 s device time: rising at 10 °C/s
    r = cmd(emu, Command.GET_STATUS)
    assert 35.0 < (r.temperature_c or 0) <= 44.0 and r.test_time_ms > 0
    time.sleep((1.2 + 2.0) / SPEED + 0.05)  # rise + plateau over: back to listening
    r = cmd(emu, Command.GET_STATUS)
    assert (r.system_state, r.test_state) == (SystemState.READY, TestState.IDLE)
    assert emu.stimuli[0].peak_c == 44.0 and not emu.stimuli[0].aborted


def test_too_fast_commands_are_reset(emu: MedocEmulator) -> None:
    emu.spacing_s = 0.2
    assert cmd(emu, Command.GET_STATUS).ok
    with pytest.raises(ConnectionResetError):
        send(emu, w.encode_command(Command.GET_STATUS, timestamp=1))
    assert [r.executed for r in emu.received] == [True, False]
    time.sleep(0.21)
    assert cmd(emu, Command.GET_STATUS).ok


def test_injected_codes_short_layout_and_safe_mode(emu: MedocEmulator) -> None:
    emu.inject(ReturnCode.WAITING_MANUAL_OPERATION, message="press Start")
    r = cmd(emu, Command.GET_STATUS)
    assert r.return_code == 0x3000 and r.message == "press Start"
    emu.layout, emu.length_order = "short", "big"
    raw = send(emu, w.encode_command(Command.GET_STATUS, timestamp=7))
    assert raw[:4] == b"\x00\x00\x00\x0d" and len(raw) == 17
    emu.layout, emu.safe_mode = "full", True
    assert cmd(emu, Command.GET_STATUS).ok
    r = cmd(emu, Command.SELECT_TP, 20)
    assert r.return_code == ReturnCode.ILLEGAL_STATE and "Safe Mode" in r.message


def test_not_licensed_and_drop(emu: MedocEmulator) -> None:
    emu.not_licensed = True
    assert send(emu, w.encode_command(Command.GET_STATUS, timestamp=1)) == b""
    emu.not_licensed = False
    emu.drop()
    with pytest.raises(ConnectionRefusedError):
        send(emu, w.encode_command(Command.GET_STATUS, timestamp=1))
    emu.restore()
    assert cmd(emu, Command.GET_STATUS).ok


def test_cli_emulate_medoc_prints_a_station_table() -> None:
    p = subprocess.Popen([sys.executable, "-m", "cpm_session", "emulate", "medoc", "--tcp-port", "0", "--quiet",
                          "--programs", "40:42:1"], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        lines = [p.stdout.readline() for _ in range(12)]
    finally:
        p.terminate()
        p.wait(5)
    text = "".join(lines)
    assert 'model = "medoc"' in text and 'programs = { "40.00" = 16, "41.00" = 17, "42.00" = 18 }' in text
