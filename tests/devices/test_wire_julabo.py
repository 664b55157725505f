"""Julabo wire protocol: byte-exact commands, replies, error replies, malformed replies."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpm_session.devices.wire import WireError
from cpm_session.devices.wire import julabo as j
from cpm_session.errors import DeviceError


def test_commands_byte_exact():
    assert j.encode(j.READ_TEMPERATURE) == b"IN_PV_00\r"
    assert j.encode(j.READ_SETPOINT, b"\r\n") == b"IN_SP_00\r\n"
    assert j.encode(j.READ_RUNNING) == b"IN_MODE_05\r"
    assert j.encode(j.READ_VERSION) == b"VERSION\r"
    assert j.encode(j.READ_STATUS) == b"STATUS\r"
    assert j.encode_setpoint(3.0) == b"OUT_SP_00 3.00\r"
    assert j.encode_setpoint(-1.25, b"\r\n") == b"OUT_SP_00 -1.25\r\n"
    assert j.encode_start(True) == b"OUT_MODE_05 1\r"
    assert j.encode_start(False) == b"OUT_MODE_05 0\r"


def test_serial_settings_and_spacing():
    assert j.CLASSIC_SERIAL == {"baudrate": 4800, "bytesize": 7, "parity": "E", "stopbits": 1, "rtscts": True}
    assert j.MODERN_SERIAL["baudrate"] == 9600 and j.MODERN_SERIAL["bytesize"] == 8
    assert j.MIN_COMMAND_INTERVAL_S == 0.25


@pytest.mark.parametrize("bad", ["", "IN_PV_00\r", "ÄÖ", "A\nB"])
def test_encode_refuses_bad_commands(bad):
    with pytest.raises(ValueError):
        j.encode(bad)


def test_encode_setpoint_range():
    with pytest.raises(ValueError):
        j.encode_setpoint(float("nan"))
    with pytest.raises(ValueError):
        j.encode_setpoint(1000.0)


@pytest.mark.parametrize("reply, value", [(b"3.05\r\n", 3.05), (b"  -1.20", -1.2), (b"\x113.00\x13", 3.0),
                                          (b"25", 25.0)])
def test_decode_float(reply, value):
    assert j.decode_float(reply) == pytest.approx(value)


@pytest.mark.parametrize("reply", [b"-08 INVALID COMMAND\r\n", b"-07 VALUE TOO LARGE"])
def test_error_replies(reply):
    with pytest.raises(WireError, match="Julabo error -0"):
        j.decode_float(reply)
    with pytest.raises(WireError):
        j.decode_status(reply)


@pytest.mark.parametrize("bad", [b"", b"3.0.5", b"abc", b"3,05", b"\xff\xfe", b"nan", b"inf"])
def test_malformed_numbers(bad):
    with pytest.raises(WireError):
        j.decode_float(bad)


def test_status_mode_version():
    s = j.decode_status(b"03 REMOTE START\r\n")
    assert (s.code, s.text) == (3, "REMOTE START")
    with pytest.raises(WireError):
        j.decode_status(b"REMOTE")
    assert j.decode_running(b"1") is True and j.decode_running(b"0") is False
    with pytest.raises(WireError):
        j.decode_running(b"2")
    assert j.decode_version(b"JULABO CORIO CD-200F VERSION 1.0") == "JULABO CORIO CD-200F VERSION 1.0"
    with pytest.raises(WireError):
        j.decode_version(b"")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=48))
def test_any_bytes_give_value_or_device_error(data):
    for dec in (j.decode_float, j.decode_status, j.decode_running, j.decode_version):
        try:
            dec(data)
        except DeviceError:
            pass


@pytest.mark.parametrize(("reply", "detail"), [
    (b"-08 INVALID COMMAND\r\n", "Julabo error -08 INVALID COMMAND"),
    (b"\x00\x00\r\n", "empty or unprintable version"),
])
def test_version_reply_errors_name_the_reason(reply: bytes, detail: str) -> None:
    with pytest.raises(WireError) as exc:
        j.decode_version(reply)
    assert exc.value.detail == detail
    with pytest.raises(ValueError, match="bad Julabo command"):
        j.encode("IN_PV_00\r")
