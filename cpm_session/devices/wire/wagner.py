"""Wagner Instruments FDX/FPX force (pressure) gauges over RS-232/USB.

Host sends `?` + CR LF; the gauge answers its displayed reading: sign, value, unit, e.g.
`- 23.02 lbf` (the sign may be absent or a space). FDIX continuous output is started with `CB`
and stopped with `CE` (CR-ended). Zeroing is done with the gauge's ZERO key (no published command).
"""

from __future__ import annotations

import re

from cpm_session.devices.wire import GaugeReading, clean_line, decode_gauge_reading

QUERY = b"?\r\n"
START_STREAM = b"CB\r"
STOP_STREAM = b"CE\r"
DEFAULT_BAUDRATE = 9600

_READING = re.compile(r"^([+-]?)\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z/]+)$")


Reading = GaugeReading
"""A gauge reading in the gauge's own unit."""


def decode_reading(msg: bytes) -> Reading:
    """Decode `- 23.02 lbf`, `23.02 lbf` or `+1.5 N`; an unknown unit raises WireError."""
    return decode_gauge_reading(clean_line(msg), _READING, msg, "not a Wagner reading (sign, value, unit)")


def encode_reading(value: float, unit: str = "lbf") -> bytes:
    """Return the gauge's reply for `value` (device side, for the emulator): `- 23.02 lbf` + CR LF."""
    sign = "-" if value < 0 else " "
    return f"{sign} {abs(value):.2f} {unit}\r\n".encode("ascii")
