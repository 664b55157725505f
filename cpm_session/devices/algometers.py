"""Algometer drivers: Wagner FDX/FPX and Mark-10 Series 5/7 force gauges, converted to kPa with the probe area.

Pressure algometry measures compression; a gauge's sign convention depends on its settings, so the
magnitude of the reading is used.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from cpm_session.devices.base import Algometer, DeviceInfo
from cpm_session.devices.transport import Transport
from cpm_session.devices.wire import mark10, to_kpa, wagner
from cpm_session.errors import DeviceError

ZERO_TOLERANCE_KPA = 5.0
"""A gauge reading within this of zero counts as zeroed."""
POLL_S = 0.05
"""Wagner poller period (wall s): `?` and its reply take ~20 ms at 9600 baud."""
FRESH_S = 0.15
"""A polled reading younger than this is returned by `read_kpa()` without a new query."""


class WagnerAlgometer(Algometer):
    """A Wagner FDX/FPX gauge: `?` + CR LF → `- 23.02 lbf`.

    The gauge has no peak query, so after `connect()` a poller thread asks `?` every `poll_s` (20 Hz
    by default) and the host tracks the peak: a PPT ramp of 50 kPa/s is then resolved to ~2.5 kPa
    whatever rate the engine samples at. Zeroing is the gauge's ZERO key (no published command), so
    `zero()` checks the reading instead. A poller failure (unplugged, silent) is raised by the next call.
    """

    model = "wagner-fdx"

    def __init__(self, conn: Any, *, port: str, probe_area_cm2: float = 1.0, timeout_s: float = 1.0,
                 poll_s: float = POLL_S) -> None:
        if not probe_area_cm2 > 0:
            raise ValueError(f"probe_area_cm2 must be > 0, got {probe_area_cm2}")
        self.port, self.probe_area_cm2, self.poll_s = port, float(probe_area_cm2), poll_s
        self.transport = Transport(conn, role=self.role, port=port, default_timeout_s=timeout_s)
        self._peak = 0.0
        self._latest: float | None = None
        self._latest_wall = -1e9
        self._fault: DeviceError | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    def _read(self) -> float:
        """Ask `?` once; record the reading (kPa magnitude) and the peak."""
        r = self.transport.query(wagner.QUERY, wagner.decode_reading, command="?", first_only=True)
        kpa = abs(to_kpa(r.value, r.unit, self.probe_area_cm2))
        with self._lock:
            self._latest, self._latest_wall = kpa, time.monotonic()
            self._peak = max(self._peak, kpa)
        return kpa

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self._read()
            except DeviceError as e:
                with self._lock:
                    self._fault = e
                if self.transport.fault is not None:
                    return  # the port is gone: nothing more to poll

    def _raise_fault(self) -> None:
        with self._lock:
            fault, self._fault = self._fault, None
        if fault is not None:
            raise fault

    def connect(self) -> DeviceInfo:
        """Take one reading to prove the gauge answers, report its unit, and start the poller."""
        self.transport.start()
        r = self.transport.query(wagner.QUERY, wagner.decode_reading, command="?", first_only=True)
        if self._poller is None and self.poll_s > 0:
            self._poller = threading.Thread(target=self._poll, name="cpm-algometer-poller", daemon=True)
            self._poller.start()
        return DeviceInfo(self.role, self.model, self.port, "Wagner force gauge", "",
                          {"unit": r.unit, "probe_area_cm2": f"{self.probe_area_cm2:g}"})

    def read_kpa(self) -> float:
        """Return the current pressure: the poller's latest reading if fresh, else a new one."""
        self._raise_fault()
        with self._lock:
            latest, age = self._latest, time.monotonic() - self._latest_wall
        if latest is not None and age <= max(FRESH_S, 2 * self.poll_s):
            return latest
        return self._read()

    def peak_kpa(self) -> float:
        """Return the highest pressure seen since `clear_peak()` (including a reading taken now)."""
        self._raise_fault()
        self._read()
        with self._lock:
            return self._peak

    def clear_peak(self) -> None:
        """Forget the host-side peak."""
        with self._lock:
            self._peak = 0.0

    def zero(self) -> None:
        """Check the gauge reads zero; raise DeviceError asking for the ZERO key otherwise."""
        kpa = self._read()
        self.clear_peak()
        if kpa > ZERO_TOLERANCE_KPA:
            raise DeviceError(f"reads {kpa:.1f} kPa with no load: press the gauge's ZERO key",
                              role=self.role, port=self.port, command="?")

    def close(self) -> None:
        """Stop the poller and release the port. Never raises."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(1.0)
        self.transport.close()


class Mark10Algometer(Algometer):
    """A Mark-10 Series 5/7 gauge: `?`, `?C` (or `?PC`) peak compression, `CLR`, `Z`; replies `4.285 N`."""

    model = "mark10"

    def __init__(self, conn: Any, *, port: str, probe_area_cm2: float = 1.0, timeout_s: float = 1.0,
                 peak_command: str = mark10.PEAK_COMPRESSION, default_unit: str = "N") -> None:
        if not probe_area_cm2 > 0:
            raise ValueError(f"probe_area_cm2 must be > 0, got {probe_area_cm2}")
        if peak_command not in (mark10.PEAK_COMPRESSION, mark10.PEAK_COMPRESSION_ALT):
            raise ValueError(f"peak_command must be '?C' or '?PC', got {peak_command!r}")
        self.port, self.probe_area_cm2 = port, float(probe_area_cm2)
        self.peak_command, self.default_unit = peak_command, default_unit
        self.transport = Transport(conn, role=self.role, port=port, default_timeout_s=timeout_s)

    def _query(self, command: str) -> float:
        """Send `command`, return the reading in kPa (magnitude)."""
        r = self.transport.query(mark10.encode(command), mark10.decode_reading, command=command, first_only=True)
        return abs(to_kpa(r.value, r.unit or self.default_unit, self.probe_area_cm2))

    def _command(self, command: str) -> None:
        """Send a setting command; then prove the gauge still answers (`?`), failing on a `*nn` error."""

        def accept(m: bytes) -> mark10.Reading | None:
            code = mark10.decode_error(m)
            if code is not None:
                return mark10.decode_reading(m)  # raises WireError naming the code
            try:
                return mark10.decode_reading(m)
            except DeviceError:
                return None  # an acknowledgement line; keep waiting for the reading

        # one write, one waiter: a `*nn` reply to `command` cannot slip past unseen
        self.transport.query(mark10.encode(command) + mark10.encode(mark10.READ), accept, command=f"{command} then ?")

    def connect(self) -> DeviceInfo:
        """Take one reading to prove the gauge answers."""
        self.transport.start()
        r = self.transport.query(mark10.encode(mark10.READ), mark10.decode_reading, command="?", first_only=True)
        return DeviceInfo(self.role, self.model, self.port, "Mark-10 force gauge", "",
                          {"unit": r.unit or self.default_unit, "probe_area_cm2": f"{self.probe_area_cm2:g}"})

    def read_kpa(self) -> float:
        """Return the current pressure (`?`)."""
        return self._query(mark10.READ)

    def peak_kpa(self) -> float:
        """Return the peak compression since the last clear (`?C` or `?PC`)."""
        return self._query(self.peak_command)

    def clear_peak(self) -> None:
        """Clear the gauge's peaks (`CLR`)."""
        self._command(mark10.CLEAR_PEAKS)

    def zero(self) -> None:
        """Zero (tare) the gauge (`Z`)."""
        self._command(mark10.ZERO)

    def close(self) -> None:
        """Release the port. Never raises."""
        self.transport.close()
