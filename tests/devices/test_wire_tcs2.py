"""TCS II wire protocol: byte-exact commands and replies, and parsers that never raise anything but DeviceError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpm_session.devices.wire import WireError
from cpm_session.devices.wire import tcs2 as w
from cpm_session.errors import DeviceError


@pytest.mark.parametrize("call, expected", [
    (lambda: w.encode_neutral(32.0), b"N320"),
    (lambda: w.encode_neutral(30.5), b"N305"),
    (lambda: w.encode_zones("11111"), b"S11111"),
    (lambda: w.encode_zones("10100"), b"S10100"),
    (lambda: w.encode_target(45.5), b"C0455"),
    (lambda: w.encode_target(8.0, zone=3), b"C3080"),
    (lambda: w.encode_rise_rate(30.0), b"V00300"),
    (lambda: w.encode_rise_rate(0.1, zone=5), b"V50001"),
    (lambda: w.encode_return_rate(75.0), b"R00750"),
    (lambda: w.encode_duration(2.0), b"D002000"),
    (lambda: w.encode_duration(0.001), b"D000001"),
    (lambda: w.encode_duration(99.999, zone=1), b"D199999"),
    (lambda: w.encode_max_temp(49.0), b"Om490"),
    (lambda: w.encode_max_temp(48.97), b"Om489"),  # rounded down: never allow more than asked
])
def test_encoders_byte_exact(call, expected):
    assert call() == expected


def test_encode_stimulus_order_and_bytes():
    assert w.encode_stimulus(32.0, "11111", 45.5, 30.0, 40.0, 5.0) == [
        b"N320", b"S11111", b"C0455", b"V00300", b"R00400", b"D005000"]


def test_fixed_commands():
    assert (w.LAUNCH, w.ABORT, w.IDENTIFY, w.HELP, w.READ_TEMPERATURES, w.READ_PARAMETERS, w.READ_ERRORS,
            w.MUTE, w.RESET, w.STREAM_IDLE_ON, w.STREAM_STIMULUS_ON) == (
        b"L", b"A", b"?", b"H", b"E", b"P", b"Q", b"F", b"Oc", b"Oa", b"Ob")


@pytest.mark.parametrize("call", [
    lambda: w.encode_neutral(19.9), lambda: w.encode_neutral(45.1), lambda: w.encode_neutral(float("nan")),
    lambda: w.encode_zones("1111"), lambda: w.encode_zones("11112"), lambda: w.encode_target(60.1),
    lambda: w.encode_target(-0.1), lambda: w.encode_target(40.0, zone=6), lambda: w.encode_rise_rate(0.0),
    lambda: w.encode_rise_rate(1000.0), lambda: w.encode_duration(0.0), lambda: w.encode_duration(100.0),
    lambda: w.encode_duration(float("inf")), lambda: w.encode_max_temp(61.0),
])
def test_encoders_refuse_out_of_range(call):
    with pytest.raises(ValueError):
        call()


def test_temperature_line_decode():
    t = w.decode_temperature_line(b"\r320+320+321+319+320+322")
    assert t.neutral_c == 32.0 and t.zones_c == (32.0, 32.1, 31.9, 32.0, 32.2)
    t = w.decode_temperature_line(b"300-005+455 450+000+001")  # no CR, negative zone, space as plus
    assert t.zones_c == (-0.5, 45.5, 45.0, 0.0, 0.1)


@pytest.mark.parametrize("bad", [b"", b"\r320+320+321+319+320", b"\r320+320+321+319+320+32x",
                                 b"\r320+320+321+319+320+3222", b"TCS", b"\r32.+320+321+319+320+322"])
def test_temperature_line_malformed(bad):
    assert not w.is_temperature_line(bad)
    with pytest.raises(WireError):
        w.decode_temperature_line(bad)


def test_encode_temperature_line_roundtrip():
    line = w.encode_temperature_line(32.0, (32.0, 45.55, -1.0, 0.0, 99.9))
    assert line == b"\r320+320+456-010+000+999"
    assert len(line) == 1 + w.TEMPERATURE_LINE_LEN


def test_split_stream_positions_and_glued_text():
    msgs, tail = w.split_stream(b"\r320+320+321+319+320+322\r320+320+321+319+320+323TCS\r\nFirmware: 2\r\n\r320+3")
    assert msgs == [b"320+320+321+319+320+322", b"320+320+321+319+320+323", b"TCS", b"Firmware: 2"]
    assert tail == b"320+3"
    # a complete temperature line at the very end is returned at once (it has no terminator)
    msgs, tail = w.split_stream(b"\r320+320+321+319+320+322")
    assert msgs == [b"320+320+321+319+320+322"] and tail == b""


def test_identity_help_params_status_buttons():
    assert w.decode_identity(b"TCS") == "TCS"
    with pytest.raises(WireError):
        w.decode_identity(b"XYZ")
    assert w.decode_help_field(b"Firmware: 1.4.2") == ("firmware", "1.4.2")
    assert w.decode_help_field(b"Probe ID: 0042") == ("probe_id", "0042")
    assert w.decode_help_field(b"Probe TYPE: T03") == ("probe_type", "T03")
    assert w.decode_help_field(b"'H' : this help") is None
    assert w.decode_max_temp(b"N320 S11111 Om490") == 49.0
    assert w.decode_max_temp(b"Max temperature: 48.5") == 48.5
    assert w.decode_max_temp(b"C1450 V10300") is None
    assert w.decode_neutral_param(b"N320 S11111 Om490") == 32.0
    assert w.decode_neutral_param(b"Om490") is None
    assert w.decode_error_status(b"000000") == (0, 0, 0, 0, 0, 0)
    assert w.decode_error_status(b"\r010000") == (0, 1, 0, 0, 0, 0)
    with pytest.raises(WireError):
        w.decode_error_status(b"00000")
    assert w.decode_buttons(b"\r10") == (True, False)
    with pytest.raises(WireError):
        w.decode_buttons(b"12")


def test_split_commands_device_side():
    cmds, tail = w.split_commands(b"N320S11111C0455V00300R00300D002000LAOm490OaObOcFE?HPQK\r\nN3")
    assert cmds == [b"N320", b"S11111", b"C0455", b"V00300", b"R00300", b"D002000", b"L", b"A", b"Om490",
                    b"Oa", b"Ob", b"Oc", b"F", b"E", b"?", b"H", b"P", b"Q", b"K"]
    assert tail == b"N3"
    cmds, tail = w.split_commands(b"NxyzL")  # malformed N dropped, L kept
    assert cmds == [b"L"] and tail == b""


DECODERS = [w.decode_temperature_line, w.decode_identity, w.decode_error_status, w.decode_buttons]
LENIENT = [w.decode_help_field, w.decode_max_temp, w.decode_neutral_param, w.is_temperature_line]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_give_value_or_device_error(data):
    for dec in DECODERS:
        try:
            dec(data)
        except DeviceError:
            pass
    for dec in LENIENT:
        dec(data)  # never raises


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_split_stream_and_commands_total(data):
    msgs, tail = w.split_stream(data)
    assert data.endswith(tail)
    assert all(b"\r" not in m and b"\n" not in m and m for m in msgs)
    cmds, rest = w.split_commands(data)
    assert data.endswith(rest)
    assert all(c[:1] in b"NSCVRDTZYLAFE?HKQPBGO" for c in cmds)


# ---- P read-back layouts (issue 13) ----------------------------------------------------------------

PUBLIC_P = (b"\rN320 T255300 I0 Y0000 S11111\rC455 V0300 R0400 D05000\rC455 V0300 R0400 D05000"
            b"\rC455 V0300 R0400 D05000\rC455 V0300 R0400 D05000\rC450 V0300 R0400 D05000")


def test_public_p_layout_as_p2gui_reads_it():
    p = w.decode_parameters(w.parameter_lines(PUBLIC_P))
    assert p is not None and p.layout == "public" and p.max_c is None
    assert (p.neutral_c, p.zones) == (32.0, "11111")
    assert p.zone[0] == w.ZoneParameters(45.5, 30.0, 40.0, 5000) and p.zone[4].target_c == 45.0
    # sscanf's %d takes any number of digits and spaces are optional
    loose = b"\rN320T1I2Y3S10101\rC455V300R400D5000" * 1 + b"\rC455 V300 R400 D5000" * 4
    q = w.decode_parameters(w.parameter_lines(loose))
    assert q is not None and q.zones == "10101" and q.zone[1].duration_ms == 5000
    assert w.encode_parameters_public(p)[:1] == b"\r" and not w.encode_parameters_public(p).endswith(b"\r")


def test_command_p_layout_with_and_without_maximum():
    base = b"\r\nN320 S11111 Om490\r\n" + b"".join(b"C%d455 V%d0300 R%d0400 D%d05000\r\n" % (i, i, i, i)
                                                  for i in range(1, 6))
    p = w.decode_parameters(w.parameter_lines(base))
    assert p is not None and p.layout == "command" and p.max_c == 49.0 and p.zone[2].rise_c_per_s == 30.0
    q = w.decode_parameters(w.parameter_lines(base.replace(b" Om490", b"") + b"max temp: 48.5\r\n"))
    assert q is not None and q.max_c == 48.5


@pytest.mark.parametrize("raw", [b"", b"\rStimulation parameters\rbaseline 32.0", PUBLIC_P.rsplit(b"\r", 1)[0],
                                 b"\rN320 T1 I2 Y3 S11111\rgarbage", b"\r\nN320 S11111\r\nC1455 V10300\r\n"])
def test_unknown_or_incomplete_p_is_none(raw):
    assert w.decode_parameters(w.parameter_lines(raw)) is None


def test_fixed_length_accepts():
    assert w.accept_error_status(b"00000") is None and w.accept_error_status(b"\r000100") == (0, 0, 0, 1, 0, 0)
    assert w.accept_buttons(b"1") is None and w.accept_buttons(b"10") == (True, False)
    assert w.accept_buttons(b"32") is None and w.decode_battery(b"19.12") is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_parameter_decoding_is_total(data):
    w.decode_parameters(w.parameter_lines(data))
    w.accept_error_status(data)
    w.accept_buttons(data)
    w.decode_battery(data)
