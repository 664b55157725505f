"""Mark-10 wire protocol: commands, readings, `*10` errors, malformed replies."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpm_session.devices.wire import WireError
from cpm_session.devices.wire import mark10 as m
from cpm_session.errors import DeviceError


def test_command_bytes():
    assert m.encode(m.READ) == b"?\r\n"
    assert m.encode(m.PEAK_COMPRESSION) == b"?C\r\n"
    assert m.encode(m.PEAK_COMPRESSION_ALT) == b"?PC\r\n"
    assert m.encode(m.CLEAR_PEAKS) == b"CLR\r\n"
    assert m.encode(m.ZERO) == b"Z\r\n"
    with pytest.raises(ValueError):
        m.encode("Z\r")


@pytest.mark.parametrize("reply, value, unit", [
    (b"4.285 N\r\n", 4.285, "N"), (b"-18.78 lbF", -18.78, "lbF"), (b"0.512 kgF", 0.512, "kgF"),
    (b"512 gF", 512.0, "gF"), (b"12.5 ozF", 12.5, "ozF"), (b"1.250 kN", 1.25, "kN"), (b"4.285", 4.285, ""),
])
def test_readings(reply, value, unit):
    r = m.decode_reading(reply)
    assert r.value == pytest.approx(value) and r.unit == unit


@pytest.mark.parametrize("reply, code", [(b"*10\r\n", 10), (b"*11", 11), (b"*99", 99)])
def test_error_replies(reply, code):
    assert m.decode_error(reply) == code
    with pytest.raises(WireError, match=rf"\*{code}"):
        m.decode_reading(reply)


@pytest.mark.parametrize("bad", [b"", b"N", b"4.285 parsecs", b"4.2.85 N", b"\xfe", b"R"])
def test_malformed(bad):
    assert m.decode_error(bad) is None
    with pytest.raises(WireError):
        m.decode_reading(bad)


def test_encode_reading_device_side():
    assert m.encode_reading(4.285) == b"4.285 N\r\n"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=48))
def test_any_bytes(data):
    m.decode_error(data)
    try:
        m.decode_reading(data)
    except DeviceError:
        pass


@pytest.mark.parametrize(("reply", "expected"), [(b"12.5\r\n", m.Reading(12.5, "")), (b"- 1.5 kgF\r\n", m.Reading(-1.5, "kgF"))])
def test_reading_without_unit_and_with_spaced_sign(reply: bytes, expected: m.Reading) -> None:
    assert m.decode_reading(reply) == expected


def test_bad_readings_name_the_reason() -> None:
    with pytest.raises(WireError) as exc:
        m.decode_reading(b"4.285 stone\r\n")
    assert exc.value.detail == "unknown unit 'stone'"
    with pytest.raises(WireError) as exc:
        m.decode_reading(b"N 4.285\r\n")
    assert exc.value.detail == "not a Mark-10 reading (value, unit)"
    assert m.decode_error(b"\xff*10\r\n") is None  # not text: not an error reply
