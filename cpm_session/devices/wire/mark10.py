"""Mark-10 Series 5/7 force gauges: commands ended by CR (or CR LF), replies ended by CR LF.

`?` current reading, `?C` / `?PC` peak compression (firmware-dependent spelling), `?T` peak tension,
`CLR` clear peaks, `Z` zero. Readings: value, space, unit: `4.285 N`, `-18.78 lbF`. Errors: `*10`
(illegal command) and other `*nn` codes. 115200 or 9600 baud by setting.
"""

from __future__ import annotations

import re

from cpm_session.devices.wire import (
    GaugeReading,
    WireError,
    clean_line,
    clean_line_or_none,
    decode_gauge_reading,
    encode_line,
)

TERMINATOR = b"\r\n"
READ = "?"
PEAK_COMPRESSION = "?C"
PEAK_COMPRESSION_ALT = "?PC"
PEAK_TENSION = "?T"
CLEAR_PEAKS = "CLR"
ZERO = "Z"
DEFAULT_BAUDRATE = 115200
ERROR_TEXT = {10: "illegal command", 11: "invalid parameter", 21: "gauge busy"}

_ERROR = re.compile(r"^\*(\d{1,3})$")
_READING = re.compile(r"^([+-]?)\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]+)?$")


Reading = GaugeReading
"""A gauge reading in the gauge's own unit ('' when the gauge is set to omit units)."""


def encode(command: str) -> bytes:
    """Return `command` + CR LF."""
    return encode_line(command, TERMINATOR, "Mark-10 command")


def decode_error(msg: bytes) -> int | None:
    """Return the error code if `msg` is an error reply (`*10`), else None."""
    text = clean_line_or_none(msg)
    m = _ERROR.match(text) if text is not None else None
    return int(m.group(1)) if m else None


def decode_reading(msg: bytes) -> Reading:
    """Decode `4.285 N` or `-18.78 lbF`; `*10` raises WireError naming the error."""
    text = clean_line(msg)
    code = decode_error(msg)
    if code is not None:
        raise WireError(f"Mark-10 error *{code} ({ERROR_TEXT.get(code, 'unknown error')})", msg)
    return decode_gauge_reading(text, _READING, msg, "not a Mark-10 reading (value, unit)")


def encode_reading(value: float, unit: str = "N") -> bytes:
    """Return the gauge's reply for `value` (device side, for the emulator): `4.285 N` + CR LF."""
    return f"{value:.3f} {unit}\r\n".encode("ascii")
