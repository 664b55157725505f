"""Serial thermometer wire protocol."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpm_session.devices.wire import WireError
from cpm_session.devices.wire import thermometer as th
from cpm_session.errors import DeviceError


def test_query_bytes():
    assert th.encode_query() == b"?\r\n"
    assert th.encode_query("READ?") == b"READ?\r\n"
    with pytest.raises(ValueError):
        th.encode_query("")


@pytest.mark.parametrize("reply, value", [
    (b"3.05\r\n", 3.05), (b"+03.05 C", 3.05), (b"-00.40 C\r\n", -0.4), (b"T=2.5C", 2.5),
    ("3.05 °C".encode(), 3.05), ("3.05 °C".encode("latin-1"), 3.05), (b"\x113.1\x13", 3.1),
])
def test_readings(reply, value):
    assert th.decode_temperature(reply) == pytest.approx(value)


@pytest.mark.parametrize("bad", [b"", b"3.05 F", b"ERR", b"3..0", b"\xff\xfe", b"1 2"])
def test_malformed(bad):
    with pytest.raises(WireError):
        th.decode_temperature(bad)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=48))
def test_any_bytes(data):
    try:
        th.decode_temperature(data)
    except DeviceError:
        pass
