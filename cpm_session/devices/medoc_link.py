"""The MMS transport under MedocThermode: constants, Medoc errors and one command per TCP connection.

Split from `cpm_session.devices.medoc`, which re-exports every name here (see its docstring for what
MMS does with a stimulus).
"""

from __future__ import annotations

import math
import socket
import threading
import time

from cpm_session.clock import Clock
from cpm_session.config.medoc import MedocSettings
from cpm_session.devices.base import Thermode, ThermodeReading
from cpm_session.devices.wire import WireError
from cpm_session.devices.wire import medoc as wire
from cpm_session.devices.wire.medoc import Command, ReturnCode
from cpm_session.errors import DeviceDisconnected, DeviceError, DeviceTimeout

MAX_STARTS = 3
"""START commands sent at most while waiting for RUNNING (READY before and after the pre-test)."""
STALE_FACTOR = 3.0
"""A polled status older than this many poll intervals (at least 2 s) is refreshed by a direct query."""
MIN_ACTIVE_POLL_S = 0.05
RETRY_BACKOFF_S = 0.1
URGENT_RETRY_S = 0.01
ACTIVE_POLL_SPACINGS = 2.0
"""During a stimulus the status is polled every this many command spacings (leaves room for ABORT)."""
"""A retry waits at least this many seconds × the attempt number (0.1 s in ilalena's script, 0.3 s CANLab's)."""
RETURNED_TOLERANCE_C = 0.5
"""Poll at the active rate until the reported temperature is this close to neutral again."""
SAFE_MODE_WORDS = ("safe mode", "safemode", "self-test", "self test")
LICENSE_WORDS = ("licen",)


class MedocSafetyError(DeviceError):
    """MMS reported SAFETY_WARNING or SAFETY_ERROR: the session pauses; check the participant and MMS."""


class MedocSafeMode(DeviceError):
    """MMS is in Safe Mode (or not licensed for external control): only GET_STATUS is answered."""


class MedocProgramMissing(DeviceError):
    """No program is mapped to a temperature, or MMS does not know a mapped program code."""


class MedocTriggerLost(DeviceError):
    """TRIGGER was not taken (sent in the pre-test, or MMS left the test): no stimulus was delivered."""


class _NoReply(Exception):
    """The connection closed before any byte of a response came back."""


class MedocLink(Thermode):
    """The transport half of MedocThermode (which sets these attributes in its `__init__`): spaced,
    retried exchanges with MMS, the latest status and the pending safety fault."""

    s: MedocSettings
    clock: Clock
    host: str
    tcp_port: int
    _send_lock: threading.Lock
    _last_send: float
    _last_ok_send: float
    _latest: ThermodeReading | None
    _latest_wall: float
    _latest_resp: wire.Response | None
    _fault: DeviceError | None
    _launched: bool
    _trace: list[ThermodeReading]
    layout_seen: str
    length_order_seen: str

    # ---- transport --------------------------------------------------------------------------
    def _roundtrip(self, data: bytes, cmd_text: str) -> wire.Response:
        """One connection: send `data`, read one complete response, close. Raises OSError/_NoReply/WireError."""
        with socket.create_connection((self.host, self.tcp_port), timeout=self.s.timeout_s) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._send_lock:
                self._last_send = time.monotonic()
            sock.sendall(data)
            buf = b""
            need: int | None = None
            while need is None or len(buf) < need:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                buf += chunk
                if need is None and len(buf) >= wire.HEADER:
                    n, _ = wire.body_length(buf[:wire.HEADER])
                    need = wire.HEADER + n
        if not buf:
            raise _NoReply()
        if need is None or len(buf) < need:
            raise WireError(f"connection closed after {len(buf)} bytes of a response", buf)
        return wire.decode_response(buf[:need], layout=self.s.layout)

    def _wait_spacing(self) -> None:
        with self._send_lock:
            wait = self._last_send + self.s.command_spacing_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def _exchange(self, cmd: Command, param: int | None = None, *, spaced: bool = True,
                  urgent: bool = False) -> wire.Response:
        """Send one command (spaced after the previous one unless `spaced` is False) and return the response.

        Refused, reset or reply-less connections are retried `retries` times (each retry spaced).
        """
        text = cmd.name + ("" if param is None else f" {param}")
        attempts = self.s.retries + 1
        last = ""
        for attempt in range(attempts):
            if urgent and attempt > 0:  # ABORT: retry as soon as MMS's window after the last answered command ends
                with self._send_lock:
                    wait = self._last_ok_send + self.s.command_spacing_s - time.monotonic()
                time.sleep(max(URGENT_RETRY_S, wait))
            elif spaced or attempt > 0:
                self._wait_spacing()
                if attempt > 0:
                    time.sleep(max(0.0, RETRY_BACKOFF_S * attempt - self.s.command_spacing_s))
            data = wire.encode_command(cmd, param, timestamp=int(time.time()) & 0xFFFFFFFF,
                                       length_order=self.s.length_order)
            try:
                r = self._roundtrip(data, text)
            except ConnectionRefusedError:
                last = "refused"
                continue
            except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
                last = "reset"
                continue
            except _NoReply:
                last = "noreply"
                continue
            except TimeoutError:
                if cmd in (Command.GET_STATUS, Command.ABORT):
                    last = "timeout"
                    continue
                raise DeviceTimeout(f"no response within {self.s.timeout_s:g} s", role=self.role, port=self.port,
                                    command=text) from None
            except WireError as e:
                raise DeviceError(f"response in an unknown layout: {e.detail}", role=self.role, port=self.port,
                                  command=text, reply=_hex(e.reply)) from None
            except OSError as e:
                raise DeviceDisconnected(f"cannot reach MMS ({e.strerror or e})", role=self.role, port=self.port,
                                         command=text) from None
            with self._send_lock:
                self._last_ok_send = max(self._last_ok_send, self._last_send)
            self.layout_seen, self.length_order_seen = r.layout, r.length_order
            if r.command != cmd:
                raise DeviceError(f"response is for command {wire.name_of(Command, r.command)}", role=self.role,
                                  port=self.port, command=text, reply=r.describe())
            self._note_status(r)
            return r
        why = {"refused": "connection refused: MMS is not running or External Control is off "
                          "(Settings > External Control > Use External Control)",
               "reset": "connection reset by MMS (commands too close together? raise command_spacing_s)",
               "noreply": "MMS closed the connection without a response (External Control not licensed, "
                          "or not enabled)",
               "timeout": f"no response within {self.s.timeout_s:g} s"}[last]
        exc = DeviceTimeout if last == "timeout" else DeviceDisconnected
        raise exc(f"{why}; {attempts} attempt(s)", role=self.role, port=self.port, command=text)

    def _note_status(self, r: wire.Response) -> None:
        """Keep the latest status and temperature; record a safety code as the pending fault."""
        temp = r.temperature_c if r.temperature_c is not None else math.nan
        reading = ThermodeReading(self.clock.now(), self.neutral_c, (temp,))
        self._latest, self._latest_wall, self._latest_resp = reading, time.monotonic(), r
        if self._launched:
            self._trace.append(reading)
            if not r.in_test:
                self._launched = False
        if r.return_code in (ReturnCode.SAFETY_WARNING, ReturnCode.SAFETY_ERROR) and self._fault is None:
            self._fault = MedocSafetyError(f"MMS reported {wire.return_text(r.return_code)}; the session pauses: "
                                           "check the participant's skin and the MMS screen",
                                           role=self.role, port=self.port, command=wire.name_of(Command, r.command),
                                           reply=r.describe())

    def _raise_fault(self) -> None:
        f = self._fault
        if f is not None:
            self._fault = None
            raise f

    def _check(self, r: wire.Response, cmd_text: str, *, program_c: float | None = None) -> None:
        """Raise the error a non-OK response stands for."""
        self._raise_fault()
        if r.ok:
            return
        rc, msg = r.return_code, r.message.lower()
        if any(w in msg for w in SAFE_MODE_WORDS):
            raise MedocSafeMode("MMS is in Safe Mode: it takes no command but GET_STATUS; resolve the problem in "
                                "MMS and run a system Self-Test", role=self.role, port=self.port, command=cmd_text,
                                reply=r.describe())
        if any(w in msg for w in LICENSE_WORDS):
            raise MedocSafeMode("MMS is not licensed for External Control", role=self.role, port=self.port,
                                command=cmd_text, reply=r.describe())
        if rc == ReturnCode.ILLEGAL_ARG and r.command == Command.SELECT_TP:
            raise MedocProgramMissing(f"MMS does not know program code {cmd_text.split()[-1]}"
                                      + (f" (mapped to {program_c:g} °C)" if program_c is not None else "")
                                      + ": add it to MMS's external-control program list (Settings > External "
                                      "Control) or fix 'programs'", role=self.role, port=self.port,
                                      command=cmd_text, reply=r.describe())
        raise DeviceError(f"MMS refused the command: {wire.return_text(rc)}", role=self.role, port=self.port,
                          command=cmd_text, reply=r.describe())


def _hex(b: bytes | str | None) -> str:
    if isinstance(b, bytes):
        return b[:64].hex(" ") + (" ..." if len(b) > 64 else "")
    return str(b)
