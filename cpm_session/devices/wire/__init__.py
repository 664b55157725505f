"""Wire protocols: pure functions that turn requests into bytes and reply bytes into values.

Nothing here does I/O. Every decoder either returns a value or raises `WireError` (a DeviceError),
whatever bytes it is given; the transport adds role, port and command to the message.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from cpm_session.errors import DeviceError

XON, XOFF = b"\x11", b"\x13"


class WireError(DeviceError):
    """A reply that is malformed, or a device's own error reply. `detail` is the bare reason."""

    def __init__(self, detail: str, reply: bytes | str | None = None) -> None:
        self.detail = detail
        super().__init__(detail, reply=reply)


def clean_line(msg: bytes) -> str:
    """Return `msg` as text without XON/XOFF, NULs and surrounding white space; refuse non-ASCII."""
    raw = msg.replace(XON, b"").replace(XOFF, b"").replace(b"\x00", b"")
    try:
        return raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise WireError("reply is not ASCII text", msg) from None


def clean_line_or_none(msg: bytes) -> str | None:
    """Return `msg` as `clean_line` does, or None when it is not ASCII text (a line that carries nothing)."""
    try:
        return clean_line(msg)
    except WireError:
        return None


def reply_text(msg: bytes, error: re.Pattern[str], message: str) -> str:
    """Return the cleaned reply `msg`; raise WireError if it is the device's error reply.

    A reply matching `error` raises ``WireError(message.format(*groups))``: Julabo's `-08 INVALID COMMAND`
    with message ``"Julabo error -{} {}"`` becomes "Julabo error -08 INVALID COMMAND".
    """
    text = clean_line(msg)
    m = error.match(text)
    if m:
        raise WireError(message.format(*m.groups()), msg)
    return text


def printable_text(text: str, msg: bytes, what: str) -> str:
    """Return `text` if it is non-empty printable text (an identity reply), else raise WireError naming `what`."""
    if not text or not text.isprintable():
        raise WireError(f"empty or unprintable {what}", msg)
    return text


def encode_line(command: str, terminator: bytes, what: str) -> bytes:
    """Return `command` as ASCII bytes plus `terminator`; ValueError (naming `what`) if empty, non-ASCII or multi-line."""
    if not command or not command.isascii() or any(c in command for c in "\r\n"):
        raise ValueError(f"bad {what} {command!r}")
    return command.encode("ascii") + terminator


_FLOAT = re.compile(r"^[+-]?\s*(\d+(\.\d*)?|\.\d+)$")


def parse_number(text: str, msg: bytes | str) -> float:
    """Return `text` as a finite float (an optional sign may be followed by spaces), else raise WireError."""
    t = text.strip()
    if not _FLOAT.match(t):
        raise WireError("not a number", msg)
    value = float(t.replace(" ", ""))
    if not math.isfinite(value):  # pragma: no cover - the regex admits only digits
        raise WireError("not a finite number", msg)
    return value


@dataclass(frozen=True)
class GaugeReading:
    """A force/pressure gauge reading in the gauge's own unit ('' when the gauge is set to omit units)."""

    value: float
    unit: str


def decode_gauge_reading(text: str, pattern: re.Pattern[str], msg: bytes, not_a_reading: str) -> GaugeReading:
    """Decode a gauge reading `text` with `pattern`, whose groups are sign, digits and unit (unit optional).

    No match raises WireError(`not_a_reading`); a unit this program does not convert raises WireError.
    """
    m = pattern.match(text)
    if not m:
        raise WireError(not_a_reading, msg)
    unit = m.group(3) or ""
    if unit and not is_known_unit(unit):
        raise WireError(f"unknown unit {unit!r}", msg)
    value = parse_number(m.group(2), msg)
    return GaugeReading(-value if m.group(1) == "-" else value, unit)


# ---- force units (algometers) -------------------------------------------------------------

NEWTONS_PER_UNIT: dict[str, float] = {
    "n": 1.0,
    "kn": 1000.0,
    "mn": 0.001,
    "lbf": 4.4482216152605,
    "lb": 4.4482216152605,
    "kgf": 9.80665,
    "kg": 9.80665,
    "gf": 0.00980665,
    "g": 0.00980665,
    "ozf": 0.27801385095378125,
    "oz": 0.27801385095378125,
}
"""Newtons per displayed unit (keys lower case: gauges print `lbF`, `lbf`, `kgF`...)."""

PRESSURE_UNITS_KPA: dict[str, float] = {"kpa": 1.0, "pa": 0.001, "mpa": 1000.0}
"""kPa per displayed pressure unit (pressure-reading gauges such as the Wagner FPX)."""

KPA_PER_N_PER_CM2 = 10.0
"""1 N on 1 cm² is 10 kPa."""


def is_known_unit(unit: str) -> bool:
    """Return True if `unit` is a force or pressure unit this program converts."""
    u = unit.lower()
    return u in NEWTONS_PER_UNIT or u in PRESSURE_UNITS_KPA


def to_kpa(value: float, unit: str, probe_area_cm2: float) -> float:
    """Convert a gauge reading (`value` in `unit`) to kPa on a probe of `probe_area_cm2`.

    Forces are converted to newtons and divided by the area (1 N on 1 cm² = 10 kPa); pressure units
    are converted directly. Raises WireError for an unknown unit and ValueError for a bad area.
    """
    if not probe_area_cm2 > 0:
        raise ValueError(f"probe area must be > 0 cm², got {probe_area_cm2}")
    u = unit.lower()
    if u in PRESSURE_UNITS_KPA:
        return value * PRESSURE_UNITS_KPA[u]
    if u in NEWTONS_PER_UNIT:
        return value * NEWTONS_PER_UNIT[u] / probe_area_cm2 * KPA_PER_N_PER_CM2
    raise WireError(f"unknown unit {unit!r}", unit)


def from_kpa(kpa: float, unit: str, probe_area_cm2: float) -> float:
    """Return the value a gauge displaying `unit` shows for `kpa` on a probe of `probe_area_cm2`."""
    return kpa / to_kpa(1.0, unit, probe_area_cm2)
