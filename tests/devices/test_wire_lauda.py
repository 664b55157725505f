"""Lauda wire protocol: byte-exact commands, OK / ERR_n replies, malformed replies."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpm_session.devices.wire import WireError
from cpm_session.devices.wire import lauda as la
from cpm_session.errors import DeviceError


def test_commands_byte_exact():
    assert la.encode(la.READ_TEMPERATURE) == b"IN_PV_00\r\n"
    assert la.encode(la.READ_SETPOINT) == b"IN_SP_00\r\n"
    assert la.encode(la.READ_TYPE) == b"TYPE\r\n"
    assert la.encode_setpoint(3.0) == b"OUT_SP_00_003.00\r\n"
    assert la.encode_setpoint(12.5) == b"OUT_SP_00_012.50\r\n"
    assert la.encode_setpoint(-2.0) == b"OUT_SP_00_-002.00\r\n"
    assert la.SERIAL["baudrate"] == 9600 and la.MIN_COMMAND_INTERVAL_S == 0.25


def test_replies():
    assert la.decode_float(b"003.05\r\n") == pytest.approx(3.05)
    assert la.decode_float(b"-1.5") == -1.5
    la.decode_ok(b"OK\r\n")
    assert la.decode_type(b"ECO RE 1050") == "ECO RE 1050"


@pytest.mark.parametrize("reply", [b"ERR_3", b"ERR_6\r\n", b"err_2"])
def test_error_replies(reply):
    for dec in (la.decode_float, la.decode_ok, la.decode_type):
        with pytest.raises(WireError, match="ERR_"):
            dec(reply)


@pytest.mark.parametrize("bad", [b"", b"O K", b"3.0.5", b"\xff"])
def test_malformed(bad):
    with pytest.raises(WireError):
        la.decode_float(bad)
    with pytest.raises(WireError):
        la.decode_ok(bad)


def test_encode_refuses():
    with pytest.raises(ValueError):
        la.encode("A\r")
    with pytest.raises(ValueError):
        la.encode_setpoint(500.0)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=48))
def test_any_bytes_give_value_or_device_error(data):
    for dec in (la.decode_float, la.decode_ok, la.decode_type):
        try:
            dec(data)
        except DeviceError:
            pass


@pytest.mark.parametrize(("reply", "detail"), [(b"ERR_3\r\n", "Lauda error ERR_3"), (b"err7\r\n", "Lauda error ERR_7"),
                                               (b"\r\n", "empty or unprintable type")])
def test_type_reply_errors_name_the_reason(reply: bytes, detail: str) -> None:
    with pytest.raises(WireError) as exc:
        la.decode_type(reply)
    assert exc.value.detail == detail
