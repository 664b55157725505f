"""A device emulator on a pseudo-terminal: the host opens `emulator.port` like any serial port.

One thread per emulator reads the master side with `select`, records every received byte with its
`time.perf_counter()` timestamp, lets the device model answer, and advances the model's dynamics.
Device time is wall time since start × `speed`, so a host on `RealClock(speed)` agrees with it.
Fault hooks: `inject_garbage`, `set_silent`, `ignore_next`, `unplug`.

Strict character timing (`min_char_gap_s` > 0, the TCS II's "at least 1 ms between characters"): a
chunk of k characters read within less than (k - 1) × gap of the last moment the port was known empty
must contain characters that arrived closer than the gap; all but its first are dropped (counted in
`dropped_chars`). The rule never drops characters of a correctly paced host, however late the
emulator thread runs (it only judges what it can prove), and the thread polls every 2 ms so an
unpaced string is caught.
"""

from __future__ import annotations

import errno
import os
import select
import threading
import time
import tty
from typing import Self

IDLE_WAKE_S = 0.05
"""Longest the emulator thread sleeps when nothing is scheduled (wall seconds)."""
STRICT_POLL_S = 0.002
"""Longest the emulator thread sleeps in strict character-timing mode."""


class PtyEmulator:
    """Base class: a pty, a thread, byte recording and fault injection. Subclasses implement the device."""

    kind = "device"

    def __init__(self, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = float(speed)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        self.received: list[tuple[float, bytes]] = []
        """Every chunk received from the host, with its `time.perf_counter()` arrival time."""
        self.sent: list[tuple[float, bytes]] = []
        self._rx_lock = threading.Lock()
        self._silent = False
        self._ignore = 0
        self.unplugged = False
        self._running = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.perf_counter()
        self.lock = threading.RLock()
        """Guards the device model; hold it when reading model state from another thread."""
        self.min_char_gap_s = 0.0
        """Strict mode: characters closer than this (wall seconds) are dropped (0 = off)."""
        self.dropped_chars = 0
        self.dropped: list[tuple[float, bytes]] = []
        """Chunks in which characters were dropped for arriving too close, with their arrival time."""

    # ---- time -----------------------------------------------------------------------------------
    def now(self) -> float:
        """Return device seconds since the emulator was created (wall × speed)."""
        return (time.perf_counter() - self._t0) * self.speed

    # ---- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Self:
        """Start the emulator thread; return self."""
        if self._thread is None:
            self._running.set()
            self._thread = threading.Thread(target=self._loop, name=f"emulator-{self.kind}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and close the pty."""
        self._running.clear()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(2.0)
        self._close_fds()

    def _close_fds(self) -> None:
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self._master = self._slave = -1

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- faults ---------------------------------------------------------------------------------
    def inject_garbage(self, data: bytes = b"\x00\xff#!garbage\xfe") -> None:
        """Send `data` to the host as if the device had babbled."""
        self._write(data, force=True)

    def set_silent(self, silent: bool = True) -> None:
        """Stop (or resume) sending anything: replies and streams are dropped."""
        self._silent = silent

    def ignore_next(self, n: int = 1) -> None:
        """Ignore the next `n` commands (no reply, no effect)."""
        self._ignore += n

    def unplug(self) -> None:
        """Close the pty as a pulled USB cable would: the host's next read or write fails."""
        self.unplugged = True
        self._running.clear()
        self._close_fds()

    # ---- bytes ----------------------------------------------------------------------------------
    def received_bytes(self) -> bytes:
        """Return everything received so far, concatenated."""
        with self._rx_lock:
            return b"".join(d for _, d in self.received)

    def clear_received(self) -> None:
        """Forget recorded bytes."""
        with self._rx_lock:
            self.received.clear()

    def received_chars(self) -> list[tuple[float, bytes]]:
        """Return every received character with the `perf_counter` time of the read that brought it."""
        with self._rx_lock:
            return [(t, d[i:i + 1]) for t, d in self.received for i in range(len(d))]

    def first_arrival(self, byte: bytes, after: float) -> float | None:
        """Return the `perf_counter` time the first `byte` arrived at or after `after`, else None."""
        with self._rx_lock:
            for t, d in self.received:
                if t >= after and byte in d:
                    return t
        return None

    def _write(self, data: bytes, force: bool = False) -> None:
        if self.unplugged or (self._silent and not force) or self._master < 0:
            return
        view = memoryview(data)
        deadline = time.monotonic() + 0.2
        while view:
            try:
                n = os.write(self._master, view)
                view = view[n:]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return  # nobody reads: drop, as a device's buffer would overflow
                time.sleep(0.001)
            except OSError:
                return
        self.sent.append((time.perf_counter(), data))
        if len(self.sent) > 10000:
            del self.sent[:5000]

    def send(self, data: bytes) -> None:
        """Send a reply or stream line (dropped while silent or unplugged)."""
        self._write(data)

    def _take_command(self) -> bool:
        """Return False if this command must be ignored (fault injection)."""
        if self._ignore > 0:
            self._ignore -= 1
            return False
        return True

    # ---- device model hooks ---------------------------------------------------------------------
    def on_bytes(self, data: bytes) -> None:
        """Handle bytes from the host (subclasses)."""

    def tick(self) -> float:
        """Advance the model; return wall seconds until the next scheduled action (subclasses)."""
        return IDLE_WAKE_S

    def _strict_filter(self, data: bytes, t_read: float, t_empty: float) -> bytes:
        """Return `data` without the characters that provably arrived closer than `min_char_gap_s`."""
        k = len(data)
        if self.min_char_gap_s <= 0 or k < 2 or t_read - t_empty >= (k - 1) * self.min_char_gap_s:
            return data
        self.dropped_chars += k - 1
        self.dropped.append((t_read, data))
        if len(self.dropped) > 1000:
            del self.dropped[:500]
        return data[:1]

    def _loop(self) -> None:
        wait = 0.0
        t_empty = time.perf_counter()  # last moment the port was known to hold no unread byte
        while self._running.is_set():
            cap = STRICT_POLL_S if self.min_char_gap_s > 0 else IDLE_WAKE_S
            t_sel = time.perf_counter()
            try:
                r, _, _ = select.select([self._master], [], [], max(0.0, min(wait, cap)))
            except (OSError, ValueError):
                return
            if not r:
                t_empty = t_sel
            else:
                t_before = time.perf_counter()
                try:
                    data = os.read(self._master, 4096)
                except BlockingIOError:
                    data = b""
                except OSError as e:
                    if e.errno == errno.EIO:
                        data = b""
                        time.sleep(0.01)
                    else:
                        return
                if data:
                    stamp = time.perf_counter()
                    with self._rx_lock:
                        self.received.append((stamp, data))
                    data = self._strict_filter(data, stamp, t_empty)
                    with self.lock:
                        self.on_bytes(data)
                t_empty = t_before
            with self.lock:
                wait = self.tick()
