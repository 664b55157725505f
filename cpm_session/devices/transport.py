"""One open serial connection per device: a background reader thread, pattern-matched replies, time-outs.

The device driver is handed an open pyserial connection (`serial.serial_for_url`, so `/dev/ttyACM0`,
`COM3`, a pty, `loop://` and `socket://` all work). `Transport` reads it in one thread, cuts the bytes
into messages with a framer (CR/LF lines, or the TCS II stream whose temperature lines have no line
ending), hands every message to an optional stream listener, and offers it to the one waiting request.
A port that vanishes becomes `DeviceDisconnected`; a wrong or missing reply `DeviceError` /
`DeviceTimeout`, each naming role, port, command and what came back.

Paced writes (`char_gap_s` > 0): every character goes out on its own, at least `char_gap_s` after the
previous one (the TCS II scans its port once a millisecond). `write_now` (abort) pre-empts a paced
string in progress: the paced writer stops before its next character and the abort goes out at once
(at most one character gap after the last byte, so the device can still read it).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import serial

from cpm_session.devices.wire import WireError
from cpm_session.errors import DeviceDisconnected, DeviceError, DeviceTimeout

T = TypeVar("T")

READ_POLL_S = 0.02
"""Longest the reader thread blocks in one read, so it notices `close()` promptly."""
READ_CHUNK = 4096
MAX_BUFFER = 65536
"""An unterminated tail longer than this is garbage; it is dropped and reported."""
RECENT_MESSAGES = 16
JOIN_TIMEOUT_S = 1.0
MAX_CHAR_GAP_S = 0.02
SPIN_BELOW_S = 0.0003
"""A paced writer sleeps until this close to a character's due time, then spins (sleep overshoots ~0.1 ms)."""
SENT_LOG = 4096
"""Characters of a paced write remembered with their `perf_counter()` time (tests, benchmarks)."""


class WritePreempted(DeviceError):
    """A paced write was cut short by an abort (`write_now`); the rest of the string was not sent."""


class Framer(Protocol):
    """Cut received bytes into whole messages; return (messages, unconsumed tail)."""

    def __call__(self, buf: bytes) -> tuple[list[bytes], bytes]: ...


def split_lines(buf: bytes) -> tuple[list[bytes], bytes]:
    """Cut `buf` at CR and/or LF; drop empty lines and XON/XOFF; keep the unterminated tail."""
    buf = buf.replace(b"\x11", b"").replace(b"\x13", b"")
    msgs: list[bytes] = []
    start = 0
    for i, b in enumerate(buf):
        if b in (13, 10):
            if i > start:
                msgs.append(buf[start:i])
            start = i + 1
    return msgs, buf[start:]


def _shorten(items: list[bytes] | bytes, limit: int = 200) -> bytes:
    data = b" | ".join(items) if isinstance(items, list) else items
    return data if len(data) <= limit else data[:limit] + b"..."


class _Waiter(Generic[T]):
    def __init__(self, accept: Callable[[bytes], T | None], first_only: bool, partial_ok: bool,
                 tail_ok: bool = False) -> None:
        self.accept, self.first_only, self.partial_ok, self.tail_ok = accept, first_only, partial_ok, tail_ok
        self.event = threading.Event()
        self.result: T | None = None
        self.error: DeviceError | None = None
        self.seen: list[bytes] = []


class Transport:
    """A serial connection with a reader thread. Requests are serialized; `write_now` is never blocked by one.

    `framer` cuts bytes into messages; `on_message(msg) -> bool` sees every message first and returns
    True for stream items (not garbage). `min_interval_s` is the least wall time between two writes
    (Julabo/Lauda need 250 ms), measured with `time.monotonic`. `char_gap_s` is the least time between
    two characters (0 = write strings whole).
    """

    def __init__(self, conn: Any, *, role: str, port: str, framer: Framer = split_lines,
                 on_message: Callable[[bytes], bool] | None = None, min_interval_s: float = 0.0,
                 default_timeout_s: float = 1.0, char_gap_s: float = 0.0) -> None:
        if not (math.isfinite(char_gap_s) and 0.0 <= char_gap_s <= MAX_CHAR_GAP_S):
            raise ValueError(f"character gap {char_gap_s!r} s outside [0, {MAX_CHAR_GAP_S}] s")
        self.char_gap_s = float(char_gap_s)
        self._last_char_t = -1e9               # perf_counter() of the last character written
        self._preempt_gen = 0                  # bumped by write_now: a paced write in progress stops
        self.sent_chars: deque[tuple[float, bytes]] = deque(maxlen=SENT_LOG)
        self.conn, self.role, self.port = conn, role, port
        self._framer, self._on_message = framer, on_message
        self.min_interval_s, self.default_timeout_s = min_interval_s, default_timeout_s
        self._txn = threading.RLock()          # one request/reply at a time
        self._io = threading.Lock()            # held only around conn.write()
        self._state = threading.Lock()         # guards _waiter, _buf, _fault
        self._waiter: _Waiter[Any] | None = None
        self._buf = b""
        self._fault: DeviceDisconnected | None = None
        self._fault_reason = ""
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        # a unit may still be digesting the previous program's last command: space the first one too
        self._last_write = time.monotonic() if min_interval_s > 0 else -1e9
        self._current_command = "(none)"
        self.recent: deque[bytes] = deque(maxlen=RECENT_MESSAGES)
        self.bytes_in = 0

    # ---- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the reader thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._read_loop, name=f"cpm-{self.role}-reader", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the reader and close the port. Never raises."""
        self._closing.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(JOIN_TIMEOUT_S)
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001 - closing a vanished port may fail; nothing to do
            pass

    @property
    def alive(self) -> bool:
        """Return False once the port has vanished or the transport is closed."""
        return self._fault is None and not self._closing.is_set()

    @property
    def fault(self) -> DeviceDisconnected | None:
        """Return the disconnection that stopped the reader, if any."""
        return self._fault

    # ---- errors ---------------------------------------------------------------------------------
    def _disconnected(self, command: str, why: object) -> DeviceDisconnected:
        return DeviceDisconnected(f"port vanished ({why})", role=self.role, port=self.port, command=command)

    def _check_open(self, command: str) -> None:
        if self._fault is not None:
            raise self._disconnected(command, self._fault_reason or "earlier fault")
        if self._closing.is_set():
            raise DeviceError("connection is closed", role=self.role, port=self.port, command=command)

    # ---- writing --------------------------------------------------------------------------------
    def _raw_write(self, data: bytes, command: str) -> None:
        if self.char_gap_s > 0:
            self._paced_write(data, command, preemptible=True)
            return
        self._check_open(command)
        try:
            with self._io:
                n = self.conn.write(data)
                self.conn.flush()
        except (serial.SerialException, OSError, TypeError, AttributeError) as e:
            raise self._disconnected(command, e) from None
        if n is not None and n != len(data):
            raise DeviceError(f"wrote {n} of {len(data)} bytes", role=self.role, port=self.port, command=command)

    def _wait_gap(self) -> None:
        """Wait until `char_gap_s` has passed since the last character (sleep, then spin the last bit)."""
        while True:
            left = self._last_char_t + self.char_gap_s - time.perf_counter()
            if left <= 0:
                return
            if left > SPIN_BELOW_S:
                time.sleep(left - SPIN_BELOW_S / 2)

    def _put_char(self, ch: bytes, command: str) -> None:
        """Write one character once its gap has passed; caller holds `_io`."""
        self._wait_gap()
        try:
            n = self.conn.write(ch)
            self.conn.flush()
        except (serial.SerialException, OSError, TypeError, AttributeError) as e:
            raise self._disconnected(command, e) from None
        t = time.perf_counter()
        self._last_char_t = t
        self.sent_chars.append((t, ch))
        if n is not None and n != 1:
            raise DeviceError("wrote 0 of 1 byte", role=self.role, port=self.port, command=command)

    def _paced_write(self, data: bytes, command: str, *, preemptible: bool) -> None:
        """Write `data` one character at a time, `char_gap_s` apart; stop if `write_now` pre-empts it."""
        gen = self._preempt_gen
        for i in range(len(data)):
            self._check_open(command)
            if preemptible and self._preempt_gen != gen:
                raise WritePreempted(f"write cut short by an abort after {i} of {len(data)} bytes",
                                     role=self.role, port=self.port, command=command)
            # sleep outside the lock, so an abort never waits behind a paced string
            left = self._last_char_t + self.char_gap_s - time.perf_counter()
            if left > SPIN_BELOW_S:
                time.sleep(left - SPIN_BELOW_S / 2)
            with self._io:
                if preemptible and self._preempt_gen != gen:
                    raise WritePreempted(f"write cut short by an abort after {i} of {len(data)} bytes",
                                         role=self.role, port=self.port, command=command)
                self._put_char(data[i:i + 1], command)

    def _spaced_write(self, data: bytes, command: str) -> None:
        wait = self._last_write + self.min_interval_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        try:
            self._raw_write(data, command)
        finally:
            self._last_write = time.monotonic()

    def write(self, data: bytes, *, command: str | None = None) -> None:
        """Send `data` (no reply expected), respecting the command spacing and any request in progress."""
        cmd = command or data.decode("ascii", "replace").strip()
        with self._txn:
            self._current_command = cmd
            self._spaced_write(data, cmd)

    def write_now(self, data: bytes, *, command: str | None = None, preempt: bool = True) -> None:
        """Send `data` at once, even while another request waits for its reply (for abort).

        A paced string in progress is pre-empted (unless `preempt` is False): it stops before its next
        character (raising WritePreempted in its own thread) and `data` goes out now, only `char_gap_s`
        after the last byte.
        """
        cmd = command or data.decode("ascii", "replace").strip()
        if self.char_gap_s <= 0:
            self._raw_write(data, cmd)
            return
        if preempt:
            self._preempt_gen += 1
        with self._io:
            self._check_open(cmd)
            for i in range(len(data)):
                self._put_char(data[i:i + 1], cmd)

    # ---- requests -------------------------------------------------------------------------------
    def query(self, data: bytes, accept: Callable[[bytes], T | None], *, command: str | None = None,
              timeout_s: float | None = None, first_only: bool = False, partial_ok: bool = False,
              tail_ok: bool = False) -> T:
        """Send `data` and return the first message `accept` turns into a value.

        `accept(msg)` returns the value, None for "not my reply" (stream lines, echoes), or raises
        WireError for a reply that is malformed or a device error. With `first_only` the first
        message must be the reply. With `partial_ok` an unterminated tail is offered too, once the
        line goes quiet. With `tail_ok` an unterminated tail is offered after every chunk (fixed-length
        replies that end with nothing: `accept` must return None until the tail is complete; if
        `accept` has an `accept_tail` attribute that is called for tails instead). Raises DeviceTimeout (silence or an incomplete reply), DeviceError (wrong
        reply), DeviceDisconnected (port gone).
        """
        cmd = command or data.decode("ascii", "replace").strip()
        timeout = self.default_timeout_s if timeout_s is None else timeout_s
        with self._txn:
            self._current_command = cmd
            waiter: _Waiter[T] = _Waiter(accept, first_only, partial_ok, tail_ok)
            with self._state:
                self._check_open(cmd)
                self._waiter = waiter
            try:
                self._spaced_write(data, cmd)
                got = waiter.event.wait(timeout)
            finally:
                with self._state:
                    self._waiter = None
                    tail = self._buf
            if waiter.error is not None:
                e = waiter.error
                if isinstance(e, DeviceDisconnected):
                    raise self._disconnected(cmd, self._fault_reason) from None
                detail = e.detail if isinstance(e, WireError) else str(e)
                raise DeviceError(detail, role=self.role, port=self.port, command=cmd, reply=e.reply) from None
            if got:
                return waiter.result  # type: ignore[return-value]
            if waiter.seen:
                raise DeviceError(f"no valid reply within {timeout:g} s", role=self.role, port=self.port,
                                  command=cmd, reply=_shorten(waiter.seen + ([tail] if tail else [])))
            if tail:
                raise DeviceTimeout(f"incomplete reply within {timeout:g} s", role=self.role, port=self.port,
                                    command=cmd, reply=_shorten(tail))
            raise DeviceTimeout(f"no reply within {timeout:g} s (nothing came back)", role=self.role,
                                port=self.port, command=cmd)

    # ---- reader thread --------------------------------------------------------------------------
    def _offer(self, waiter: _Waiter[Any], msg: bytes, stream_item: bool) -> bool:
        try:
            value = waiter.accept(msg)
        except DeviceError as e:
            waiter.error = e
            waiter.event.set()
            return True
        except Exception as e:  # noqa: BLE001 - a parser bug must not kill the reader
            waiter.error = DeviceError(f"cannot parse reply: {e}", reply=msg)
            waiter.event.set()
            return True
        if value is not None:
            waiter.result = value
            waiter.event.set()
            return True
        if waiter.first_only:
            waiter.error = WireError("unexpected reply", msg)
            waiter.event.set()
            return True
        if not stream_item:
            waiter.seen.append(msg)
        return False

    def _dispatch(self, msg: bytes) -> None:
        self.recent.append(msg)
        stream_item = False
        if self._on_message is not None:
            try:
                stream_item = bool(self._on_message(msg))
            except Exception:  # noqa: BLE001 - listener errors must not kill the reader
                stream_item = False
        with self._state:
            waiter = self._waiter
        if waiter is not None and not waiter.event.is_set():
            self._offer(waiter, msg, stream_item)

    def _read_loop(self) -> None:
        try:
            self.conn.timeout = READ_POLL_S
        except Exception:  # noqa: BLE001 - some URL handlers have a fixed time-out
            pass
        while not self._closing.is_set():
            try:
                n = getattr(self.conn, "in_waiting", 0) or 1
                chunk = self.conn.read(min(max(n, 1), READ_CHUNK))
            except (serial.SerialException, OSError, TypeError, AttributeError, ValueError) as e:
                if self._closing.is_set():
                    return
                self._die(e)
                return
            if chunk:
                self.bytes_in += len(chunk)
                with self._state:
                    msgs, self._buf = self._framer(self._buf + chunk)
                    dropped = b""
                    if len(self._buf) > MAX_BUFFER:
                        dropped, self._buf = self._buf, b""
                for m in msgs:
                    self._dispatch(m)
                if dropped:
                    self._dispatch(dropped[:RECENT_MESSAGES * 16])
                self._offer_tail(by_length=True)
            else:
                self._offer_tail(by_length=False)

    def _offer_tail(self, *, by_length: bool) -> None:
        """Offer the unterminated tail to the waiter: after each chunk (`tail_ok`) or once quiet (`partial_ok`)."""
        with self._state:
            waiter, tail = self._waiter, self._buf
        if waiter is None or not tail or waiter.event.is_set():
            return
        if not (waiter.tail_ok or (waiter.partial_ok and not by_length)):
            return
        if waiter.tail_ok or hasattr(waiter.accept, "accept_tail"):
            accept = getattr(waiter.accept, "accept_tail", waiter.accept)
            try:
                value = accept(tail)
            except Exception:  # noqa: BLE001 - an incomplete tail may not parse yet
                value = None
            if value is None:
                return
            waiter.result = value
            with self._state:
                if self._buf == tail:
                    self._buf = b""
            waiter.event.set()
            return
        if self._offer(waiter, tail, False) and waiter.error is None:
            with self._state:
                if self._buf == tail:
                    self._buf = b""
        elif tail in waiter.seen:
            waiter.seen.remove(tail)

    def _die(self, why: object) -> None:
        fault = DeviceDisconnected(f"{why}", role=self.role, port=self.port, command=self._current_command)
        with self._state:
            self._fault_reason = str(why)
            self._fault = fault
            waiter = self._waiter
        if waiter is not None:
            waiter.error = fault
            waiter.event.set()
