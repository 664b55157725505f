"""Medoc MMS external control: byte-exact commands (both length byte orders) and both response layouts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpm_session.devices.wire import WireError
from cpm_session.devices.wire import medoc as w
from cpm_session.devices.wire.medoc import Command
from cpm_session.errors import DeviceError

TS = 0x5F8D_1A2B  # a fixed Unix time stamp: bytes 2b 1a 8d 5f little-endian


@pytest.mark.parametrize("code", [c for c in Command if c not in w.WITH_PARAMETER])
def test_every_command_without_parameter_both_orders(code: Command) -> None:
    little = w.encode_command(code, timestamp=TS)
    big = w.encode_command(code, timestamp=TS, length_order="big")
    assert little == b"\x05\x00\x00\x00" + b"\x2b\x1a\x8d\x5f" + bytes([code])
    assert big == b"\x00\x00\x00\x05" + b"\x2b\x1a\x8d\x5f" + bytes([code])


@pytest.mark.parametrize("code, param, tail", [
    (Command.SELECT_TP, 33, b"\x01\x21\x00\x00\x00"),
    (Command.SELECT_TP, 0b10000001, b"\x01\x81\x00\x00\x00"),
    (Command.COVAS, 55, b"\x09\x37\x00\x00\x00"),
    (Command.VAS, 4, b"\x0a\x04\x00\x00\x00"),
    (Command.SPECIFY_NEXT, 2, b"\x0b\x02\x00\x00\x00"),
    (Command.T_UP, 500, b"\x0c\xf4\x01\x00\x00"),
    (Command.T_DOWN, 1000, b"\x0d\xe8\x03\x00\x00"),
])
def test_commands_with_parameter_little_endian_parameter(code: Command, param: int, tail: bytes) -> None:
    assert w.encode_command(code, param, timestamp=TS) == b"\x09\x00\x00\x00\x2b\x1a\x8d\x5f" + tail
    assert w.encode_command(code, param, timestamp=TS, length_order="big") == b"\x00\x00\x00\x09\x2b\x1a\x8d\x5f" + tail


def test_pymedoc_and_matlab_bytes_match() -> None:
    # pymedoc _format_command(1, 100) at time 0x01020304: sizes, time and protocol each LSB first
    assert w.encode_select(100, timestamp=0x01020304) == bytes([9, 0, 0, 0, 4, 3, 2, 1, 1, 100, 0, 0, 0])
    # the Python scripts (ilalena, CANLab) put the length big-endian, the rest little-endian via htonl
    assert w.encode_select(0b00011100, timestamp=0x01020304, length_order="big") == bytes(
        [0, 0, 0, 9, 4, 3, 2, 1, 1, 0x1C, 0, 0, 0])


def test_temperature_steps_and_bad_arguments() -> None:
    assert w.encode_temperature_step(Command.T_UP, 5.0, timestamp=TS)[-4:] == (500).to_bytes(4, "little")
    for bad in (lambda: w.encode_command(Command.SELECT_TP, timestamp=TS),
                lambda: w.encode_command(Command.TRIGGER, 1, timestamp=TS),
                lambda: w.encode_command(Command.SELECT_TP, -1, timestamp=TS),
                lambda: w.encode_command(99, timestamp=TS),
                lambda: w.encode_select(4, timestamp=TS),      # reserved action code (TRIGGER's word)
                lambda: w.encode_select(256, timestamp=TS),
                lambda: w.encode_temperature_step(Command.TRIGGER, 1.0, timestamp=TS),
                lambda: w.encode_command(Command.GET_STATUS, timestamp=TS, length_order="middle")):  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            bad()


FULL = bytes.fromhex(
    "17000000"      # length 23 = 19 + 4-byte message
    "2b1a8d5f"      # time stamp echoed
    "04"            # TRIGGER
    "02" "01"       # system TEST, test RUNNING
    "0000"          # OK
    "e8030000"      # test time 1000 ms
    "9411"          # 4500 = 45.00 °C
    "32" "01" "00" "01"   # CoVAS 50, yes 1, no 0, TTL 1
) + b"done"
SHORT = bytes.fromhex("0d000000" "2b1a8d5f" "00" "01" "00" "0000" "00000000")


def test_decode_full_layout_byte_exact() -> None:
    r = w.decode_response(FULL)
    assert (r.length, r.timestamp, r.command, r.system_state, r.test_state, r.return_code, r.test_time_ms) == (
        23, TS, 4, 2, 1, 0, 1000)
    assert (r.layout, r.temperature_c, r.covas, r.yes, r.no, r.ttl, r.message) == ("full", 45.0, 50, 1, 0, 1, "done")
    assert r.running and r.ok and r.length_order == "little"
    big = bytes.fromhex("00000017") + FULL[4:]
    assert w.decode_response(big) == w.decode_response(FULL).__class__(**{**r.__dict__, "length_order": "big"})


def test_decode_short_layout_older_mms() -> None:
    r = w.decode_response(SHORT)
    assert (r.layout, r.command, r.system_state, r.test_state, r.temperature_c, r.message) == (
        "short", 0, 1, 0, None, "")
    with_msg = (17).to_bytes(4, "little") + SHORT[4:] + b"ABCD"  # pymedoc: a message after the test time
    assert w.decode_response(with_msg).message == "ABCD" and w.decode_response(with_msg).layout == "short"
    # layout forced short reads the temperature bytes as message text
    assert w.decode_response(FULL, layout="short").layout == "short"
    with pytest.raises(WireError, match="too short for the full layout"):
        w.decode_response(with_msg, layout="full")


def test_negative_temperature_and_safety_code() -> None:
    raw = w.encode_response(command=0, system_state=2, test_state=1, return_code=0x4000, temperature_c=-5.25,
                            message="Safety error")
    r = w.decode_response(raw)
    assert r.temperature_c == -5.25 and r.return_code == w.ReturnCode.SAFETY_ERROR and r.message == "Safety error"
    assert "SAFETY_ERROR" in r.describe()


@pytest.mark.parametrize("order", ["little", "big"])
@pytest.mark.parametrize("layout", ["full", "short"])
def test_encode_decode_round_trip(order: str, layout: str) -> None:
    raw = w.encode_response(command=1, system_state=2, test_state=3, return_code=1, test_time_ms=123456,
                            timestamp=TS, temperature_c=32.5, message="x", layout=layout,  # type: ignore[arg-type]
                            length_order=order)  # type: ignore[arg-type]
    r = w.decode_response(raw)
    assert (r.command, r.system_state, r.test_state, r.return_code, r.test_time_ms, r.layout, r.length_order) == (
        1, 2, 3, 1, 123456, layout, order)
    cmd = w.encode_command(Command.SELECT_TP, 77, timestamp=TS, length_order=order)  # type: ignore[arg-type]
    assert w.decode_command(cmd) == (TS, 1, 77)


@pytest.mark.parametrize("bad, why", [
    (b"", "incomplete"),
    (b"\x00\x00\x00\x00" + b"\x00" * 13, "plausible"),
    (b"\x13\x00\x00\x00" + b"\x00" * 10, "says 19"),
    ((9).to_bytes(4, "little") + b"\x00" * 9, "too short for any known layout"),
    ((13).to_bytes(4, "little") + b"\x00" * 4 + b"\x63" + b"\x00" * 8, "unknown command 99"),
])
def test_unknown_layouts_raise_wire_error(bad: bytes, why: str) -> None:
    with pytest.raises(WireError, match=why):
        w.decode_response(bad)


def test_return_texts() -> None:
    assert w.return_text(0x3000).startswith("WAITING_MANUAL_OPERATION")
    assert w.return_text(0x1234) == "unknown return code 0x1234"
    assert w.name_of(w.TestState, 9) == "unknown(9)"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_decoder_raises_only_device_error(data: bytes) -> None:
    try:
        w.decode_response(data)
    except DeviceError:
        pass
