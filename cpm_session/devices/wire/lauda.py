"""Lauda thermostats: text commands ended by CR LF, 9600 baud 8N1; replies end with CR LF.

`IN_PV_00` → bath temperature (`003.05` or `3.05`), `IN_SP_00` → set point, `OUT_SP_00_003.00`
sets it and answers `OK`, `TYPE` → the unit type. Errors: `ERR_n`. Leave 250 ms between commands.
"""

from __future__ import annotations

import math
import re

from cpm_session.devices.wire import WireError, encode_line, parse_number, printable_text, reply_text

MIN_COMMAND_INTERVAL_S = 0.25
SPACING_MARGIN_S = 0.03
SERIAL = {"baudrate": 9600, "bytesize": 8, "parity": "N", "stopbits": 1, "rtscts": False}
TERMINATOR = b"\r\n"

READ_TEMPERATURE = "IN_PV_00"
READ_SETPOINT = "IN_SP_00"
READ_TYPE = "TYPE"
SETPOINT_RANGE_C = (-99.99, 300.0)
_ERR = re.compile(r"^ERR_?(\d+)$", re.IGNORECASE)


def encode(command: str) -> bytes:
    """Return `command` as bytes with CR LF."""
    return encode_line(command, TERMINATOR, "Lauda command")


def encode_setpoint(setpoint_c: float) -> bytes:
    """Return `OUT_SP_00_003.00` setting the set point to `setpoint_c` (answer: `OK`)."""
    if not (math.isfinite(setpoint_c) and SETPOINT_RANGE_C[0] <= setpoint_c <= SETPOINT_RANGE_C[1]):
        raise ValueError(f"set point {setpoint_c!r} °C outside {SETPOINT_RANGE_C}")
    sign = "-" if setpoint_c < 0 else ""
    return encode(f"OUT_SP_00_{sign}{abs(setpoint_c):06.2f}")


def _reply(msg: bytes) -> str:
    """Return the cleaned reply; `ERR_n` raises WireError."""
    return reply_text(msg, _ERR, "Lauda error ERR_{}")


def decode_float(msg: bytes) -> float:
    """Decode a numeric reply (`003.05`, `-1.20`); `ERR_n` raises WireError."""
    return parse_number(_reply(msg), msg)


def decode_ok(msg: bytes) -> None:
    """Accept `OK`; `ERR_n` or anything else raises WireError."""
    text = _reply(msg)
    if text.upper() != "OK":
        raise WireError("expected OK", msg)


def decode_type(msg: bytes) -> str:
    """Decode the `TYPE` reply (printable text)."""
    return printable_text(_reply(msg), msg, "type")
