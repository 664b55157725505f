"""Medoc Main Station (MMS) external control over TCP: byte-exact commands and responses. No I/O.

Sources: the TSA 2 External Control addendum (ilalena/TSA-external-control, Table 2-5), its MATLAB
`formatcommand.m` / `formatresponse.m`, cosanlab/pymedoc `devices.py` and canlab/CANLab_PsychoPy_Toolbox
`medocControl.py`.

Command (host -> MMS)::

    length  u32  bytes that follow the length field (5, or 9 with a parameter)
                 little-endian in pymedoc and the MATLAB code, big-endian in the two Python scripts
    stamp   u32  Unix time, little-endian (MMS echoes it in the response)
    command u8   0 GET_STATUS ... 14 KEYUP
    param   u32  little-endian, only for SELECT_TP (program code), T_UP/T_DOWN (°C × 100) and the
                 rating commands (COVAS, VAS, SPECIFY_NEXT)

Response (MMS -> host), every field little-endian after the length::

    length u32 | stamp u32 | command u8 | system state u8 | test state u8 | return code u16 | test time u32 (ms)
    [full layout: temperature i16 (°C × 100) | CoVAS u8 | yes u8 | no u8 | TTL u8 | message (length - 19 bytes)]

Older MMS versions stop after the test time (length 13; pymedoc) and may append a message there.
"""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass
from typing import Literal

from cpm_session.config.medoc import DEFAULT_PORT, RESERVED_PROGRAM_CODES, check_program_code
from cpm_session.devices.wire import WireError

__all__ = ["DEFAULT_PORT", "RESERVED_PROGRAM_CODES", "check_program_code"]

LengthOrder = Literal["little", "big"]
Layout = Literal["auto", "full", "short"]

SHORT_BODY = 13
"""Response length (after the length field) of the older layout: stamp .. test time."""
FULL_BODY = 19
"""Response length of the full layout without a message: stamp .. TTL."""
MAX_BODY = 4096
"""Longest response body accepted (a message of a few kilobytes at most)."""
HEADER = 4


class Command(enum.IntEnum):
    """Command codes (addendum Table 1; 0 and 1 from the public code)."""

    GET_STATUS = 0
    SELECT_TP = 1
    START = 2
    PAUSE = 3
    TRIGGER = 4
    STOP = 5
    ABORT = 6
    YES = 7
    NO = 8
    COVAS = 9
    VAS = 10
    SPECIFY_NEXT = 11
    T_UP = 12
    T_DOWN = 13
    KEYUP = 14


WITH_PARAMETER = frozenset({Command.SELECT_TP, Command.COVAS, Command.VAS, Command.SPECIFY_NEXT,
                            Command.T_UP, Command.T_DOWN})
NEEDS_PARAMETER = frozenset({Command.SELECT_TP, Command.T_UP, Command.T_DOWN})


class SystemState(enum.IntEnum):
    """MMS system state (addendum Table 3)."""

    IDLE = 0
    READY = 1
    TEST = 2


class TestState(enum.IntEnum):
    """MMS test state (addendum Table 4)."""

    __test__ = False  # not a pytest class

    IDLE = 0
    RUNNING = 1
    PAUSED = 2
    READY = 3


class ReturnCode(enum.IntEnum):
    """MMS return codes (addendum Table 5)."""

    OK = 0x0000
    ILLEGAL_ARG = 0x0001
    ILLEGAL_STATE = 0x0002
    ILLEGAL_TEST_STATE = 0x0003
    DEVICE_COMM_ERROR = 0x1000
    SAFETY_WARNING = 0x2000
    WAITING_MANUAL_OPERATION = 0x3000
    SAFETY_ERROR = 0x4000


RETURN_TEXT = {
    ReturnCode.OK: "OK",
    ReturnCode.ILLEGAL_ARG: "illegal argument",
    ReturnCode.ILLEGAL_STATE: "illegal state for this command",
    ReturnCode.ILLEGAL_TEST_STATE: "illegal test state for this command",
    ReturnCode.DEVICE_COMM_ERROR: "MMS cannot communicate with the thermode",
    ReturnCode.SAFETY_WARNING: "safety warning (test continues)",
    ReturnCode.WAITING_MANUAL_OPERATION: "waiting for a manual operation on the MMS screen",
    ReturnCode.SAFETY_ERROR: "safety error (MMS goes to IDLE)",
}


def name_of(enum_cls: type[enum.IntEnum], value: int) -> str:
    """Return the member name of `value`, or `unknown(<value>)`."""
    try:
        return enum_cls(value).name
    except ValueError:
        return f"unknown({value})"


def return_text(code: int) -> str:
    """Return a readable text for a return code, `unknown return code 0x....` if not documented."""
    try:
        return f"{ReturnCode(code).name} ({RETURN_TEXT[ReturnCode(code)]})"
    except ValueError:
        return f"unknown return code 0x{code:04x}"


def _u32(value: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"{what} must be an integer in 0..4294967295, got {value!r}")
    return value


def encode_command(command: int, parameter: int | None = None, *, timestamp: int,
                   length_order: LengthOrder = "little") -> bytes:
    """Return the bytes of one command: length, time stamp, command code and (if given) the parameter.

    `parameter` is sent for the commands that take one and required for SELECT_TP, T_UP and T_DOWN
    (unlike the public scripts, a parameter of 0 is still sent). Raises ValueError on a bad argument.
    """
    cmd = Command(command)
    if cmd in NEEDS_PARAMETER and parameter is None:
        raise ValueError(f"{cmd.name} needs a parameter")
    if parameter is not None and cmd not in WITH_PARAMETER:
        raise ValueError(f"{cmd.name} takes no parameter")
    body = struct.pack("<IB", _u32(timestamp, "timestamp"), int(cmd))
    if parameter is not None:
        body += struct.pack("<I", _u32(parameter, "parameter"))
    return encode_length(len(body), length_order) + body


def encode_select(program_code: int, *, timestamp: int, length_order: LengthOrder = "little") -> bytes:
    """Return SELECT_TP for an 8-bit program code (1..255, not one of the reserved action codes 2..14)."""
    check_program_code(program_code)
    return encode_command(Command.SELECT_TP, program_code, timestamp=timestamp, length_order=length_order)


def encode_temperature_step(command: int, step_c: float, *, timestamp: int,
                            length_order: LengthOrder = "little") -> bytes:
    """Return T_UP or T_DOWN by `step_c` °C (sent as °C × 100; VAS-search programs only)."""
    cmd = Command(command)
    if cmd not in (Command.T_UP, Command.T_DOWN):
        raise ValueError(f"{cmd.name} is not a temperature step")
    if not (math.isfinite(step_c) and 0 < step_c <= 50):
        raise ValueError(f"temperature step must be in (0, 50] °C, got {step_c}")
    return encode_command(cmd, round(step_c * 100), timestamp=timestamp, length_order=length_order)


def encode_length(n: int, order: LengthOrder) -> bytes:
    """Return the 4-byte length field in `order`."""
    if order not in ("little", "big"):
        raise ValueError(f"length byte order must be 'little' or 'big', got {order!r}")
    return int(n).to_bytes(4, order)


def body_length(prefix: bytes, order: LengthOrder | Literal["auto"] = "auto") -> tuple[int, LengthOrder]:
    """Return (body length, byte order) from the first 4 bytes of a message.

    With `order="auto"` the order is the one that gives a plausible length (1..MAX_BODY): responses are
    a few dozen bytes, so exactly one order fits. Raises WireError if none (or both) do.
    """
    if len(prefix) < HEADER:
        raise WireError(f"length field incomplete ({len(prefix)} of 4 bytes)", bytes(prefix))
    head = bytes(prefix[:HEADER])
    orders: tuple[LengthOrder, ...] = ("little", "big") if order == "auto" else (order,)  # type: ignore[assignment]
    fits = [(int.from_bytes(head, o), o) for o in orders if 1 <= int.from_bytes(head, o) <= MAX_BODY]
    if len(fits) != 1:
        raise WireError(f"length field {head.hex(' ')} is not a plausible length in "
                        f"{'either byte order' if order == 'auto' else order + '-endian order'}", head)
    return fits[0]


@dataclass(frozen=True)
class Response:
    """One decoded MMS response. `temperature_c` etc. are None in the short (older) layout."""

    length: int
    timestamp: int
    command: int
    system_state: int
    test_state: int
    return_code: int
    test_time_ms: int
    layout: Literal["full", "short"]
    length_order: LengthOrder
    temperature_c: float | None = None
    covas: int | None = None
    yes: int | None = None
    no: int | None = None
    ttl: int | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        """Return True if the return code is OK."""
        return self.return_code == ReturnCode.OK

    @property
    def running(self) -> bool:
        """Return True if MMS reports a test and the test RUNNING."""
        return self.system_state == SystemState.TEST and self.test_state == TestState.RUNNING

    @property
    def in_test(self) -> bool:
        """Return True if MMS reports the TEST system state (a program selected or running)."""
        return self.system_state == SystemState.TEST

    def describe(self) -> str:
        """Return a one-line summary: command, states, return code, temperature, message."""
        parts = [f"{name_of(Command, self.command)}: system {name_of(SystemState, self.system_state)}, "
                 f"test {name_of(TestState, self.test_state)}, {return_text(self.return_code)}"]
        if self.temperature_c is not None:
            parts.append(f"{self.temperature_c:.2f} °C")
        if self.message:
            parts.append(f"message {self.message!r}")
        return ", ".join(parts)


def _text(raw: bytes) -> str:
    return raw.replace(b"\x00", b"").decode("latin-1").strip()


def decode_response(data: bytes, *, length_order: LengthOrder | Literal["auto"] = "auto",
                    layout: Layout = "auto") -> Response:
    """Decode one complete response; raise WireError for anything else (never another exception).

    `layout="auto"`: a body of 13-18 bytes is the short layout (a message may follow the test time),
    19 or more the full layout. `"short"` reads everything after the test time as the message.
    """
    data = bytes(data)
    n, order = body_length(data, length_order)
    if len(data) != HEADER + n:
        raise WireError(f"response length field says {n} bytes after it, {len(data) - HEADER} came", data)
    if n < SHORT_BODY:
        raise WireError(f"response too short for any known layout ({n} bytes after the length, at least "
                        f"{SHORT_BODY} expected)", data)
    stamp, cmd, sys_state, test_state, rc, test_ms = struct.unpack_from("<IBBBHI", data, HEADER)
    if cmd not in Command.__members__.values():
        raise WireError(f"response names unknown command {cmd}", data)
    if layout not in ("auto", "full", "short"):
        raise WireError(f"unknown response layout {layout!r}", data)
    if layout == "short" or (layout == "auto" and n < FULL_BODY):
        return Response(n, stamp, cmd, sys_state, test_state, rc, test_ms, "short", order,
                        message=_text(data[HEADER + SHORT_BODY:]))
    if n < FULL_BODY:
        raise WireError(f"response of {n} bytes after the length is too short for the full layout "
                        f"({FULL_BODY}); set layout = \"short\" for an older MMS", data)
    temp, covas, yes, no, ttl = struct.unpack_from("<hBBBB", data, HEADER + SHORT_BODY)
    return Response(n, stamp, cmd, sys_state, test_state, rc, test_ms, "full", order, temp / 100.0, covas, yes,
                    no, ttl, _text(data[HEADER + FULL_BODY:]))


def encode_response(*, command: int, system_state: int, test_state: int, return_code: int = 0,
                    test_time_ms: int = 0, timestamp: int = 0, temperature_c: float | None = 0.0,
                    covas: int = 0, yes: int = 0, no: int = 0, ttl: int = 0, message: str = "",
                    layout: Literal["full", "short"] = "full", length_order: LengthOrder = "little") -> bytes:
    """Return the bytes MMS sends (used by the emulator and the tests)."""
    body = struct.pack("<IBBBHI", _u32(timestamp, "timestamp"), command, system_state, test_state, return_code,
                       _u32(test_time_ms, "test time"))
    if layout == "full":
        body += struct.pack("<hBBBB", round((temperature_c or 0.0) * 100), covas, yes, no, ttl)
    body += message.encode("latin-1", "replace")
    return encode_length(len(body), length_order) + body


def decode_command(data: bytes, *, length_order: LengthOrder | Literal["auto"] = "auto") -> tuple[int, int, int | None]:
    """Decode a command as MMS receives it: return (timestamp, command code, parameter or None).

    Raises WireError on a bad length or an unknown command (the emulator's view of the host's bytes).
    """
    data = bytes(data)
    n, _ = body_length(data, length_order)
    if len(data) != HEADER + n or n not in (5, 9):
        raise WireError(f"command body of {len(data) - HEADER} bytes (length field {n}); 5 or 9 expected", data)
    stamp, cmd = struct.unpack_from("<IB", data, HEADER)
    if cmd not in Command.__members__.values():
        raise WireError(f"unknown command code {cmd}", data)
    param = struct.unpack_from("<I", data, HEADER + 5)[0] if n == 9 else None
    return stamp, cmd, param
