"""QST.Lab TCS II thermode: fixed-length ASCII commands without terminator, unsolicited temperature lines.

Host → device (no acknowledgement): `Nxxx` neutral, `Sxxxxx` zones, `Csxxx` target, `Vsxxxx` rise,
`Rsxxxx` return (0.1 °C and 0.1 °C/s), `Dsxxxxx` duration in ms (rise + plateau), `L` launch, `A`
abort, `Omxxx` device maximum temperature, `F` mute, `Oa`/`Ob` streaming on, `Oc` reset; queries `?`
(→ `TCS`), `H` (help with `Firmware:`, `Probe ID:`, `Probe TYPE:`), `E` (temperature line), `P`
(parameters), `Q` (error status `xxxxxx`), `K` (buttons `xx`).

Device → host temperature line: `\\r` + neutral as 3 digits + five zones as sign and 3 digits, 0.1 °C,
e.g. `\\r320+320+321+319+320+322`, no line ending. The `P` read-back layout is not in the manual;
`decode_parameters` reads the layout public MATLAB code parses (WhitmireLab/StimControl `p2GUI.m`:
leading CR stripped, split on CR, line 1 `N%d T%d I%d Y%d S%s`, lines 2-6 `C%d V%d R%d D%d`, 0.1 units,
D in ms, no device maximum) and the command-notation layout (`N320 S11111 Om490`, `C1455 V10300 ...`);
anything else is "unknown" and the caller carries on without a read-back check.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from cpm_session.devices.wire import WireError, clean_line, clean_line_or_none

N_ZONES = 5
NEUTRAL_RANGE_C = (20.0, 45.0)
TARGET_RANGE_C = (0.0, 60.0)
RATE_RANGE_C_PER_S = (0.1, 999.9)
DURATION_RANGE_MS = (1, 99999)
MAX_TEMP_RANGE_C = (0.0, 60.0)

LAUNCH = b"L"
ABORT = b"A"
IDENTIFY = b"?"
HELP = b"H"
READ_TEMPERATURES = b"E"
READ_PARAMETERS = b"P"
READ_ERRORS = b"Q"
READ_BUTTONS = b"K"
MUTE = b"F"
STREAM_IDLE_ON = b"Oa"
STREAM_STIMULUS_ON = b"Ob"
RESET = b"Oc"

TEMPERATURE_LINE_LEN = 23
"""Bytes of a temperature line after its leading CR (3 + 5 × 4)."""

_TEMP_LINE = re.compile(rb"(\d{3})([+\- ]\d{3})([+\- ]\d{3})([+\- ]\d{3})([+\- ]\d{3})([+\- ]\d{3})")


def _tenths(value: float, lo: float, hi: float, what: str) -> int:
    if not (isinstance(value, int | float) and math.isfinite(value)) or not (lo <= value <= hi):
        raise ValueError(f"{what} {value!r} outside [{lo}, {hi}]")
    return int(round(value * 10))


def _zone(zone: int) -> int:
    if zone not in range(0, N_ZONES + 1):
        raise ValueError(f"zone {zone!r} must be 0 (all) or 1-{N_ZONES}")
    return zone


def encode_neutral(neutral_c: float) -> bytes:
    """Return `Nxxx` setting the neutral (baseline) temperature `neutral_c`."""
    return b"N%03d" % _tenths(neutral_c, *NEUTRAL_RANGE_C, "neutral °C")


def encode_zones(zones: str) -> bytes:
    """Return `Sxxxxx` enabling the zones flagged '1' in `zones` (five characters of 0/1)."""
    if not re.fullmatch(r"[01]{5}", zones):
        raise ValueError(f"zones {zones!r} must be five characters of 0/1")
    return b"S" + zones.encode("ascii")


def encode_target(target_c: float, zone: int = 0) -> bytes:
    """Return `Csxxx` setting the target temperature of `zone` (0 = all) to `target_c`."""
    return b"C%d%03d" % (_zone(zone), _tenths(target_c, *TARGET_RANGE_C, "target °C"))


def encode_rise_rate(rate_c_per_s: float, zone: int = 0) -> bytes:
    """Return `Vsxxxx` setting the rise rate of `zone` to `rate_c_per_s`."""
    return b"V%d%04d" % (_zone(zone), _tenths(rate_c_per_s, *RATE_RANGE_C_PER_S, "rise °C/s"))


def encode_return_rate(rate_c_per_s: float, zone: int = 0) -> bytes:
    """Return `Rsxxxx` setting the return rate of `zone` to `rate_c_per_s`."""
    return b"R%d%04d" % (_zone(zone), _tenths(rate_c_per_s, *RATE_RANGE_C_PER_S, "return °C/s"))


def encode_duration(duration_s: float, zone: int = 0) -> bytes:
    """Return `Dsxxxxx` setting the stimulus duration of `zone` (rise + plateau) to `duration_s`."""
    if not (isinstance(duration_s, int | float) and math.isfinite(duration_s)):
        raise ValueError(f"duration {duration_s!r} s is not a number")
    ms = int(round(duration_s * 1000))
    if not (DURATION_RANGE_MS[0] <= ms <= DURATION_RANGE_MS[1]):
        raise ValueError(f"duration {duration_s} s outside [0.001, 99.999] s")
    return b"D%d%05d" % (_zone(zone), ms)


def max_temp_tenths(max_c: float) -> int:
    """Return the device maximum in 0.1 °C, rounded down so the device never allows more than `max_c`."""
    if not (math.isfinite(max_c) and MAX_TEMP_RANGE_C[0] <= max_c <= MAX_TEMP_RANGE_C[1]):
        raise ValueError(f"maximum {max_c!r} °C outside {MAX_TEMP_RANGE_C}")
    return int(math.floor(max_c * 10 + 1e-9))


def encode_max_temp(max_c: float) -> bytes:
    """Return `Omxxx` setting the device's own maximum stimulation temperature (rounded down)."""
    return b"Om%03d" % max_temp_tenths(max_c)


def encode_stimulus(neutral_c: float, zones: str, target_c: float, rise_c_per_s: float,
                    return_c_per_s: float, duration_s: float) -> list[bytes]:
    """Return every parameter command of one stimulus, in order N, S, C0, V0, R0, D0 (launch not included)."""
    return [encode_neutral(neutral_c), encode_zones(zones), encode_target(target_c),
            encode_rise_rate(rise_c_per_s), encode_return_rate(return_c_per_s), encode_duration(duration_s)]


# ---- device → host -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Temperatures:
    """One temperature line: neutral and the five zones, °C."""

    neutral_c: float
    zones_c: tuple[float, float, float, float, float]


def is_temperature_line(msg: bytes) -> bool:
    """Return True if `msg` (with or without its leading CR) is exactly one temperature line."""
    body = msg[1:] if msg.startswith(b"\r") else msg
    return len(body) == TEMPERATURE_LINE_LEN and _TEMP_LINE.fullmatch(body) is not None


def decode_temperature_line(msg: bytes) -> Temperatures:
    """Decode `\\r320+320+321+319+320+322` (leading CR optional; a space counts as '+')."""
    body = msg[1:] if msg.startswith(b"\r") else msg
    m = _TEMP_LINE.fullmatch(body) if len(body) == TEMPERATURE_LINE_LEN else None
    if m is None:
        raise WireError("not a TCS temperature line (CR + 3 digits + 5 × sign and 3 digits)", msg)
    neutral = int(m.group(1)) / 10
    zones = tuple(int(g[1:]) / 10 * (-1 if g[:1] == b"-" else 1) for g in m.groups()[1:])
    return Temperatures(neutral, zones)  # type: ignore[arg-type]


def encode_temperature_line(neutral_c: float, zones_c: tuple[float, ...] | list[float]) -> bytes:
    """Return the device's temperature line for `neutral_c` and five zone temperatures (clamped to 3 digits)."""
    if len(zones_c) != N_ZONES:
        raise ValueError(f"need {N_ZONES} zone temperatures, got {len(zones_c)}")
    n = min(999, max(0, int(round(neutral_c * 10))))
    out = b"\r%03d" % n
    for z in zones_c:
        t = max(-999, min(999, int(round(z * 10))))
        out += b"%c%03d" % (b"-"[0] if t < 0 else b"+"[0], abs(t))
    return out


def split_stream(buf: bytes) -> tuple[list[bytes], bytes]:
    """Cut received bytes into messages: temperature lines (by position) and CR/LF-ended text lines.

    A temperature line has no terminator, so one that is complete at the end of `buf` is returned at
    once; text glued to a temperature line is split off. Returns (messages, unconsumed tail).
    """
    msgs: list[bytes] = []
    i, n = 0, len(buf)
    while i < n:
        c = buf[i:i + 1]
        if c in (b"\r", b"\n"):
            i += 1
            continue
        if _TEMP_LINE.match(buf, i) and i + TEMPERATURE_LINE_LEN <= n:
            msgs.append(buf[i:i + TEMPERATURE_LINE_LEN])
            i += TEMPERATURE_LINE_LEN
            continue
        j = i
        while j < n and buf[j:j + 1] not in (b"\r", b"\n"):
            j += 1
        if j == n:
            if n - i < TEMPERATURE_LINE_LEN and re.fullmatch(rb"\d{1,3}([+\- ]\d{0,3}){0,5}", buf[i:n]):
                return msgs, buf[i:]  # maybe the start of a temperature line
            return msgs, buf[i:]
        msgs.append(buf[i:j])
        i = j
    return msgs, b""


def decode_identity(msg: bytes) -> str:
    """Return the identity text if `msg` is the reply to `?` (it contains `TCS`), else raise WireError."""
    text = clean_line(msg)
    if "TCS" not in text:
        raise WireError("identity reply does not contain 'TCS'", msg)
    return text


_HELP_FIELD = re.compile(r"^\s*(Firmware|Probe ID|Probe TYPE)\s*:\s*(.*?)\s*$", re.IGNORECASE)


def decode_help_field(msg: bytes) -> tuple[str, str] | None:
    """Return ('firmware'|'probe_id'|'probe_type', value) for a help line carrying one, else None."""
    text = clean_line_or_none(msg)
    if text is None:
        return None
    m = _HELP_FIELD.match(text)
    if not m:
        return None
    key = m.group(1).lower().replace(" ", "_")
    return key, m.group(2)


_OM = re.compile(r"\bOm\s*(\d{3})\b")
_MAX_TEXT = re.compile(r"\bmax\w*(?:\s+temp\w*)?\s*[:=]?\s*(\d{1,2}\.\d)\b", re.IGNORECASE)
_N = re.compile(r"(?<![A-Za-z])N\s*(\d{3})\b")


def decode_max_temp(msg: bytes) -> float | None:
    """Return the device maximum (°C) if the parameter line `msg` carries it (`Om490` or `max temp: 49.0`)."""
    text = clean_line_or_none(msg)
    if text is None:
        return None
    m = _OM.search(text)
    if m:
        return int(m.group(1)) / 10
    m = _MAX_TEXT.search(text)
    if m:
        return float(m.group(1))
    return None


def decode_neutral_param(msg: bytes) -> float | None:
    """Return the neutral temperature (°C) if the parameter line `msg` carries `Nxxx`, else None."""
    text = clean_line_or_none(msg)
    if text is None:
        return None
    m = _N.search(text)
    return int(m.group(1)) / 10 if m else None


@dataclass(frozen=True)
class ZoneParameters:
    """One zone's stimulus parameters as the device shows them: °C, °C/s, ms."""

    target_c: float
    rise_c_per_s: float
    return_c_per_s: float
    duration_ms: int


@dataclass(frozen=True)
class Parameters:
    """The device's loaded parameters (the reply to `P`). `max_c` is None when the layout does not show it."""

    layout: str  # "public" | "command"
    neutral_c: float
    zones: str
    zone: tuple[ZoneParameters, ...]
    max_c: float | None = None


_P_PUBLIC_HEAD = re.compile(r"N\s*(\d+)\s*T\s*(\d+)\s*I\s*(\d+)\s*Y\s*(\d+)\s*S\s*([01]{5})")
_P_PUBLIC_ZONE = re.compile(r"C\s*(\d{1,3})\s*V\s*(\d{1,4})\s*R\s*(\d{1,4})\s*D\s*(\d{1,5})")
_P_CMD_HEAD = re.compile(r"N(\d{3})\s+S([01]{5})(?:\s+Om(\d{3}))?")
_P_CMD_ZONE = re.compile(r"C([1-5])(\d{3})\s+V\1(\d{4})\s+R\1(\d{4})\s+D\1(\d{5})")


def parameter_lines(raw: bytes) -> list[str]:
    """Return the non-empty text lines of a `P` reply (leading CR stripped, split on CR/LF), stream lines removed."""
    out: list[str] = []
    for part in re.split(rb"[\r\n]+", raw):
        if not part or is_temperature_line(part):
            continue
        text = clean_line_or_none(part)
        if text:
            out.append(text)
    return out


def decode_parameters(lines: list[str]) -> Parameters | None:
    """Return the parameters in `lines` (public or command layout, see the module doc), or None if unknown.

    Needs the head line and five zone lines; extra lines (help text, a `max ...` line) are ignored.
    """
    for i, line in enumerate(lines):
        m = _P_PUBLIC_HEAD.fullmatch(line)
        if m:
            zs = [_P_PUBLIC_ZONE.fullmatch(x) for x in lines[i + 1:i + 1 + N_ZONES]]
            if len(zs) < N_ZONES or not all(zs):
                return None
            zone = tuple(ZoneParameters(int(z.group(1)) / 10, int(z.group(2)) / 10, int(z.group(3)) / 10,
                                        int(z.group(4))) for z in zs if z)
            return Parameters("public", int(m.group(1)) / 10, m.group(5), zone, None)
        m = _P_CMD_HEAD.fullmatch(line)
        if m:
            found: dict[int, ZoneParameters] = {}
            max_c = int(m.group(3)) / 10 if m.group(3) else None
            for x in lines[i + 1:]:
                z = _P_CMD_ZONE.fullmatch(x)
                if z:
                    found[int(z.group(1))] = ZoneParameters(int(z.group(2)) / 10, int(z.group(3)) / 10,
                                                            int(z.group(4)) / 10, int(z.group(5)))
                elif max_c is None and decode_max_temp(x.encode()) is not None:
                    max_c = decode_max_temp(x.encode())
            if sorted(found) != list(range(1, N_ZONES + 1)):
                return None
            return Parameters("command", int(m.group(1)) / 10, m.group(2),
                              tuple(found[k] for k in range(1, N_ZONES + 1)), max_c)
    return None


def parameters_complete(lines: list[str]) -> bool:
    """Return True once `lines` hold a whole `P` reply of a known layout."""
    return decode_parameters(lines) is not None


def encode_parameters_public(p: Parameters, trigger: str = "255300", y: int = 0) -> bytes:
    """Return a `P` reply in the public layout (device side: emulator, tests): CR-led lines, no terminator."""
    lines = [f"N{round(p.neutral_c * 10):03d} T{trigger} I0 Y{y:04d} S{p.zones}"]
    lines += [f"C{round(z.target_c * 10):03d} V{round(z.rise_c_per_s * 10):04d} R{round(z.return_c_per_s * 10):04d} "
              f"D{z.duration_ms:05d}" for z in p.zone]
    return ("\r" + "\r".join(lines)).encode("ascii")


def encode_parameters_command(p: Parameters) -> bytes:
    """Return a `P` reply in command notation (device side), CR LF separated, with `Om` when `max_c` is set."""
    head = f"N{round(p.neutral_c * 10):03d} S{p.zones}" + (f" Om{round(p.max_c * 10):03d}" if p.max_c is not None else "")
    lines = [head] + [f"C{i}{round(z.target_c * 10):03d} V{i}{round(z.rise_c_per_s * 10):04d} "
                      f"R{i}{round(z.return_c_per_s * 10):04d} D{i}{z.duration_ms:05d}"
                      for i, z in enumerate(p.zone, 1)]
    return ("\r\n" + "\r\n".join(lines) + "\r\n").encode("ascii")


_BATTERY = re.compile(r"(\d{1,2}\.\d+)\s*[vV]\s+(\d{1,3})\s*%")


def decode_battery(msg: bytes) -> tuple[float, int] | None:
    """Return (volts, percent) from the `B` reply (`\\r19.1234v 040%`), None while incomplete."""
    text = clean_line_or_none(msg)
    m = _BATTERY.fullmatch(text) if text else None
    return (float(m.group(1)), int(m.group(2))) if m else None


def accept_error_status(msg: bytes) -> tuple[int, ...] | None:
    """Return the `Q` status once `msg` is exactly six digits (complete by length), else None."""
    body = msg[1:] if msg.startswith(b"\r") else msg
    body = body.strip(b"\r\n")
    if len(body) == 6 and body.isdigit():
        return tuple(b - 48 for b in body)
    return None


def accept_buttons(msg: bytes) -> tuple[bool, bool] | None:
    """Return the `K` state once `msg` is exactly two digits 0/1 (complete by length), else None."""
    body = msg.strip(b"\r\n")
    if len(body) == 2 and re.fullmatch(rb"[01]{2}", body):
        return body[:1] == b"1", body[1:] == b"1"
    return None


def decode_error_status(msg: bytes) -> tuple[int, ...]:
    """Decode the `Q` reply: six digits (neutral + zones 1-5), 0 = OK."""
    text = clean_line(msg)
    if not re.fullmatch(r"\d{6}", text):
        raise WireError("error status must be six digits", msg)
    return tuple(int(c) for c in text)


def decode_buttons(msg: bytes) -> tuple[bool, bool]:
    """Decode the `K` reply: two digits ('stim', 'resp'), 1 = pressed."""
    text = clean_line(msg)
    if not re.fullmatch(r"[01]{2}", text):
        raise WireError("button state must be two digits 0/1", msg)
    return text[0] == "1", text[1] == "1"


# ---- device side: cutting the host's command stream (used by the emulator and tests) ----------

_ARG_LEN = {b"N": 3, b"S": 5, b"C": 4, b"V": 5, b"R": 5, b"D": 6, b"T": 6, b"Z": 6, b"Y": 4,
            b"L": 0, b"A": 0, b"F": 0, b"E": 0, b"?": 0, b"H": 0, b"K": 0, b"Q": 0, b"P": 0,
            b"B": 0, b"G": 0}
_O_ARG_LEN = {b"a": 0, b"b": 0, b"c": 0, b"d": 0, b"e": 0, b"g": 0, b"l": 0, b"o": 0, b"m": 3}


def split_commands(buf: bytes) -> tuple[list[bytes], bytes]:
    """Cut a host byte stream into whole commands, as the device does (unknown or malformed bytes dropped).

    Returns (commands, incomplete tail to keep for the next bytes).
    """
    cmds: list[bytes] = []
    i, n = 0, len(buf)
    while i < n:
        c = buf[i:i + 1]
        if c == b"O":
            if i + 1 >= n:
                return cmds, buf[i:]
            sub = buf[i + 1:i + 2]
            if sub not in _O_ARG_LEN:
                i += 1
                continue
            need = 2 + _O_ARG_LEN[sub]
        elif c in _ARG_LEN:
            need = 1 + _ARG_LEN[c]
        else:
            i += 1  # CR, LF, garbage: ignored like the device does
            continue
        arg_start = i + (2 if c == b"O" else 1)
        avail = buf[arg_start:min(n, i + need)]
        if not avail.isdigit() and avail:
            i += 1  # malformed argument: drop the command letter
            continue
        if i + need > n:
            return cmds, buf[i:]
        cmds.append(buf[i:i + need])
        i += need
    return cmds, b""
