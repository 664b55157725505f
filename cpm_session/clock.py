"""Clocks. The session reads time only through a Clock, so tests run a 20-minute visit in milliseconds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    """Session time in seconds since the clock started."""

    speed: float

    def now(self) -> float:
        """Return session seconds since start."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let `seconds` of session time pass."""
        ...

    def restart(self) -> None:
        """Make now() count from 0 again where the clock can (a real clock, once the window is open)."""
        ...


class RealClock:
    """Wall time scaled by `speed` (1.0 for a real visit; >1 compresses a simulated visit).

    `timer` is the monotonic time source in seconds: `time.perf_counter` by default, PsychoPy's
    `psychopy.clock.getTime` when the participant screen is a PsychoPy window, so stimulus onsets and
    rating times share one time base with the frames."""

    def __init__(self, speed: float = 1.0, timer: Callable[[], float] = time.perf_counter) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = float(speed)
        self._timer = timer
        self._t0 = timer()

    def restart(self) -> None:
        """Make now() count from 0 again (called once the window is open, before the session starts)."""
        self._t0 = self._timer()

    def now(self) -> float:
        """Return session seconds since start."""
        return (self._timer() - self._t0) * self.speed

    def sleep(self, seconds: float) -> None:
        """Sleep `seconds` of session time (seconds / speed of wall time)."""
        if seconds > 0:
            time.sleep(seconds / self.speed)


class VirtualClock:
    """A clock that only moves when someone sleeps on it: instant, deterministic tests."""

    speed = float("inf")

    def __init__(self, start: float = 0.0) -> None:
        self._t = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        """Return the current virtual time."""
        with self._lock:
            return self._t

    def sleep(self, seconds: float) -> None:
        """Advance virtual time by `seconds` at once."""
        if seconds > 0:
            with self._lock:
                self._t += seconds

    def restart(self) -> None:
        """Virtual time does not restart: a test's clock keeps its own origin."""

    def advance(self, seconds: float) -> None:
        """Advance virtual time (alias of sleep, for readability in tests)."""
        self.sleep(seconds)


class OffsetClock:
    """A clock that continues from `offset` (used by resume so session time keeps increasing)."""

    def __init__(self, base: Clock, offset: float) -> None:
        self.base, self.offset, self.speed = base, offset, base.speed

    def now(self) -> float:
        """Return the base clock's time plus the offset."""
        return self.base.now() + self.offset

    def sleep(self, seconds: float) -> None:
        """Sleep on the base clock."""
        self.base.sleep(seconds)

    def restart(self) -> None:
        """Restart the base clock, keeping this clock's time continuous from the offset."""
        before = self.now()
        self.base.restart()
        self.offset = before - self.base.now() if before > self.offset else self.offset
