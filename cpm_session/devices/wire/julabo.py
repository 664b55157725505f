"""Julabo circulators: text commands ended by CR (classic) or CR LF (newer units); replies end with CR LF.

`IN_PV_00` → `3.05` (bath temperature), `IN_SP_00` → set point, `OUT_SP_00 3.00` sets it (no reply),
`IN_MODE_05` → `0`/`1` (stopped/running), `OUT_MODE_05 1` starts, `VERSION` → identity text,
`STATUS` → `03 REMOTE START`. Errors are negative codes: `-08 INVALID COMMAND`. Serial: classic units
4800 baud 7E1 with RTS/CTS, newer 9600 8N1. Leave at least 250 ms between commands.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from cpm_session.devices.wire import WireError, encode_line, parse_number, printable_text, reply_text

MIN_COMMAND_INTERVAL_S = 0.25
"""The unit's requirement: at least this long between two commands."""
SPACING_MARGIN_S = 0.03
"""Added by the driver so USB-serial latency jitter cannot squeeze two commands closer than the minimum."""
CLASSIC_SERIAL = {"baudrate": 4800, "bytesize": 7, "parity": "E", "stopbits": 1, "rtscts": True}
MODERN_SERIAL = {"baudrate": 9600, "bytesize": 8, "parity": "N", "stopbits": 1, "rtscts": False}
TERMINATORS = {"cr": b"\r", "crlf": b"\r\n"}

READ_TEMPERATURE = "IN_PV_00"
READ_SETPOINT = "IN_SP_00"
READ_RUNNING = "IN_MODE_05"
READ_VERSION = "VERSION"
READ_STATUS = "STATUS"
SETPOINT_RANGE_C = (-99.0, 300.0)

_ERROR = re.compile(r"^-(\d{2,3})\s+(\S.*)$")
_STATUS = re.compile(r"^(-?\d{2,3})\s+(\S.*)$")


def encode(command: str, terminator: bytes = b"\r") -> bytes:
    """Return `command` as bytes with the unit's terminator."""
    return encode_line(command, terminator, "Julabo command")


def encode_setpoint(setpoint_c: float, terminator: bytes = b"\r") -> bytes:
    """Return `OUT_SP_00 3.00` setting the working set point to `setpoint_c`."""
    if not (math.isfinite(setpoint_c) and SETPOINT_RANGE_C[0] <= setpoint_c <= SETPOINT_RANGE_C[1]):
        raise ValueError(f"set point {setpoint_c!r} °C outside {SETPOINT_RANGE_C}")
    return encode(f"OUT_SP_00 {setpoint_c:.2f}", terminator)


def encode_start(running: bool, terminator: bytes = b"\r") -> bytes:
    """Return `OUT_MODE_05 1` (start) or `OUT_MODE_05 0` (stop)."""
    return encode(f"OUT_MODE_05 {1 if running else 0}", terminator)


def _reply(msg: bytes) -> str:
    """Return the cleaned reply; a negative code (`-08 INVALID COMMAND`) raises WireError."""
    return reply_text(msg, _ERROR, "Julabo error -{} {}")


def decode_float(msg: bytes) -> float:
    """Decode a numeric reply (`3.05`, `-1.20`); `-08 INVALID COMMAND` raises WireError."""
    return parse_number(_reply(msg), msg)


@dataclass(frozen=True)
class Status:
    """The `STATUS` reply: code (negative = error) and text."""

    code: int
    text: str


def decode_status(msg: bytes) -> Status:
    """Decode `03 REMOTE START`; a negative code (`-08 INVALID COMMAND`) raises WireError."""
    text = _reply(msg)
    m = _STATUS.match(text)
    if not m:
        raise WireError("status must be a code and a text, e.g. '03 REMOTE START'", msg)
    return Status(int(m.group(1)), m.group(2))


def decode_running(msg: bytes) -> bool:
    """Decode the `IN_MODE_05` reply: `1` running, `0` stopped."""
    text = _reply(msg)
    if text not in ("0", "1"):
        raise WireError("running state must be 0 or 1", msg)
    return text == "1"


def decode_version(msg: bytes) -> str:
    """Decode the `VERSION` reply (any printable text naming the unit)."""
    return printable_text(_reply(msg), msg, "version")
