"""Read a slow device in a background thread, so the engine (and so Escape) never waits on its port.

A bath query takes a round trip (and a silent bath takes its whole time-out); the engine's thread also
draws frames and handles the staff keys, so it must not block on it. `BackgroundReader` polls the
device's blocking read and hands out the latest value at once; a read error is re-raised to the engine
at its next `get()`, and a value older than `stale_s` is an error too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from cpm_session.errors import DeviceError, DeviceTimeout

POLL_S = 0.05
"""Wall seconds between reads. Drivers enforce their own command spacing (Julabo/Lauda 250 ms) and reuse
a reading younger than that, so polling faster only makes sure a fresh reading is taken as soon as the
device allows."""


class BackgroundReader:
    """Poll `read()` every `interval_s` wall seconds in a daemon thread; `get()` never blocks after the first value."""

    def __init__(self, read: Callable[[], float], *, role: str, port: str, timeout_s: float,
                 interval_s: float = POLL_S) -> None:
        self._read = read
        self.role, self.port = role, port
        self.interval_s = interval_s
        self.stale_s = max(2.0, 3 * timeout_s)
        self._lock = threading.Lock()
        self._value: float | None = None
        self._at = 0.0
        self._error: DeviceError | None = None
        self._first = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"{role}-reader", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                v = self._read()
            except DeviceError as e:
                with self._lock:
                    self._error = e
            except Exception as e:  # noqa: BLE001 - any failure of the port is a device error for the engine
                with self._lock:
                    self._error = DeviceError(f"{type(e).__name__}: {e}", role=self.role, port=self.port)
            else:
                with self._lock:
                    self._value, self._at, self._error = v, time.monotonic(), None
            self._first.set()
            self._stop.wait(self.interval_s)

    def get(self) -> float:
        """Return the latest reading; raise the last read's DeviceError, or DeviceTimeout if it is stale."""
        if not self._first.wait(self.stale_s):
            raise DeviceTimeout(f"no reading within {self.stale_s:.1f} s", role=self.role, port=self.port)
        with self._lock:
            value, at, error = self._value, self._at, self._error
        if error is not None:
            raise error
        age = time.monotonic() - at
        if value is None or age > self.stale_s:
            raise DeviceTimeout(f"last reading is {age:.1f} s old", role=self.role, port=self.port)
        return value

    def stop(self) -> None:
        """Stop polling (waits for a read in progress to finish or time out)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=self.stale_s + 1.0)
