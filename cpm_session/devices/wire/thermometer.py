"""A plain serial thermometer probe: the host sends a query line, the probe answers one temperature.

Protocol (common to simple USB/RS-232 probes; the query is configurable per station): host sends
`<query>` + CR LF (default `?`), probe answers `3.05`, `+03.05 C` or `3.05 °C` + CR LF.
"""

from __future__ import annotations

import re

from cpm_session.devices.wire import WireError, encode_line, parse_number

DEFAULT_QUERY = "?"
TERMINATOR = b"\r\n"
_READING = re.compile(r"^\s*(?:T\s*=\s*)?([+-]?\s*(?:\d+(?:\.\d*)?|\.\d+))\s*(?:°|deg)?\s*(C)?\s*$", re.IGNORECASE)


def encode_query(query: str = DEFAULT_QUERY) -> bytes:
    """Return the query line."""
    return encode_line(query, TERMINATOR, "thermometer query")


def decode_temperature(msg: bytes) -> float:
    """Decode `3.05`, `+03.05 C`, `T=3.05C` or `3.05 °C` (UTF-8 or Latin-1 degree sign) as °C."""
    try:
        text = msg.decode("utf-8")
    except UnicodeDecodeError:
        text = msg.decode("latin-1")
    m = _READING.match(text.strip("\r\n\x11\x13\x00 "))
    if not m:
        raise WireError("not a temperature reading in °C", msg)
    return parse_number(m.group(1), msg)
