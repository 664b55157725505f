"""Wagner FDX wire protocol and the force → kPa conversion."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpm_session.devices.wire import WireError, from_kpa, to_kpa
from cpm_session.devices.wire import wagner as wg
from cpm_session.errors import DeviceError


def test_command_bytes():
    assert wg.QUERY == b"?\r\n"
    assert wg.START_STREAM == b"CB\r" and wg.STOP_STREAM == b"CE\r"


@pytest.mark.parametrize("reply, value, unit", [
    (b"- 23.02 lbf\r\n", -23.02, "lbf"), (b"  23.02 lbf", 23.02, "lbf"), (b"+1.5 N", 1.5, "N"),
    (b"-0.85 kgf", -0.85, "kgf"), (b"120 gf", 120.0, "gf"), (b"3.2 ozf", 3.2, "ozf"), (b"250.0 kPa", 250.0, "kPa"),
])
def test_readings(reply, value, unit):
    r = wg.decode_reading(reply)
    assert r.value == pytest.approx(value) and r.unit == unit


@pytest.mark.parametrize("bad", [b"", b"23.02", b"- lbf", b"23.02 furlongs", b"--23 lbf", b"\xff lbf"])
def test_malformed(bad):
    with pytest.raises(WireError):
        wg.decode_reading(bad)


def test_encode_reading_device_side():
    assert wg.encode_reading(-23.02) == b"- 23.02 lbf\r\n"
    assert wg.encode_reading(5.0, "N") == b"  5.00 N\r\n"


@pytest.mark.parametrize("value, unit, area, kpa", [
    (1.0, "N", 1.0, 10.0),             # 1 N on 1 cm² = 10 kPa
    (10.0, "N", 0.5, 200.0),
    (1.0, "kgf", 1.0, 98.0665),
    (1.0, "lbf", 1.0, 44.482216152605),
    (1000.0, "gf", 1.0, 98.0665),
    (16.0, "ozf", 1.0, 44.482216152605),
    (300.0, "kPa", 1.0, 300.0),
    (1.0, "lbF", 1.0, 44.482216152605),
])
def test_to_kpa(value, unit, area, kpa):
    assert to_kpa(value, unit, area) == pytest.approx(kpa)
    assert from_kpa(kpa, unit, area) == pytest.approx(value)


def test_to_kpa_refuses():
    with pytest.raises(WireError):
        to_kpa(1.0, "furlong", 1.0)
    with pytest.raises(ValueError):
        to_kpa(1.0, "N", 0.0)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=48))
def test_any_bytes(data):
    try:
        wg.decode_reading(data)
    except DeviceError:
        pass


@pytest.mark.parametrize(("reply", "detail"), [(b"- 23.02 furlong\r\n", "unknown unit 'furlong'"),
                                               (b"23.02\r\n", "not a Wagner reading (sign, value, unit)")])
def test_bad_readings_name_the_reason(reply: bytes, detail: str) -> None:
    with pytest.raises(WireError) as exc:
        wg.decode_reading(reply)
    assert exc.value.detail == detail
