"""Bath drivers: Julabo and Lauda circulators, and a plain serial thermometer in a stirred ice bath."""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any, ClassVar

from cpm_session.devices.base import Bath, DeviceInfo
from cpm_session.devices.transport import Transport
from cpm_session.devices.wire import julabo, lauda, thermometer
from cpm_session.errors import DeviceError

SETPOINT_READBACK_TOLERANCE_C = 0.01
"""A set point read back further than this from the one sent fails."""


class _ReuseRecent:
    """Reuse a reading younger than the command spacing instead of stalling the caller behind it.

    Circulators need 250 ms between commands; the engine samples every 0.1 s during the immersion.
    A bath changes by far less than its resolution in 0.3 s, so the last value is returned instead.
    """

    def __init__(self, max_age_s: float) -> None:
        self.max_age_s = max_age_s
        self.value: float | None = None
        self.wall = -1e9

    def get(self) -> float | None:
        fresh = self.value is not None and time.monotonic() - self.wall < self.max_age_s
        return self.value if fresh else None

    def put(self, value: float) -> float:
        self.value, self.wall = value, time.monotonic()
        return value


class _Circulator(Bath):
    """What Julabo and Lauda circulators share: spaced commands, `IN_PV_00`/`IN_SP_00`, set point read back.

    Subclasses set `_wire` (the wire-protocol module) and `_encode` (a command as bytes).
    """

    _wire: ClassVar[ModuleType]

    def __init__(self, conn: Any, *, port: str, timeout_s: float = 1.0) -> None:
        self.port = port
        spacing = self._wire.MIN_COMMAND_INTERVAL_S + self._wire.SPACING_MARGIN_S
        self.transport = Transport(conn, role=self.role, port=port, min_interval_s=spacing,
                                   default_timeout_s=timeout_s)
        self._recent = _ReuseRecent(spacing)

    def _encode(self, command: str) -> bytes:
        raise NotImplementedError

    def _ask(self, command: str, decode: Any) -> Any:
        return self.transport.query(self._encode(command), decode, command=command, first_only=True)

    def read_c(self) -> float:
        """Return the bath temperature (`IN_PV_00`); a reading younger than the command spacing is reused."""
        recent = self._recent.get()
        if recent is not None:
            return recent
        return self._recent.put(float(self._ask(self._wire.READ_TEMPERATURE, self._wire.decode_float)))

    def setpoint_c(self) -> float | None:
        """Return the working set point (`IN_SP_00`)."""
        return float(self._ask(self._wire.READ_SETPOINT, self._wire.decode_float))

    def _read_back(self, setpoint_c: float, command: str) -> float:
        """Return the set point read back; DeviceError if it is not `setpoint_c` (within 0.01 °C)."""
        back = self.setpoint_c()
        if back is None or abs(back - setpoint_c) > SETPOINT_READBACK_TOLERANCE_C:
            raise DeviceError(f"set point read back as {back}, expected {setpoint_c:.2f}",
                              role=self.role, port=self.port, command=command)
        return back

    def close(self) -> None:
        """Release the port (the bath keeps running). Never raises."""
        self.transport.close()


class JulaboBath(_Circulator):
    """A Julabo circulator. `terminator` is CR (classic units) or CR LF (newer units)."""

    model = "julabo"
    _wire: ClassVar[ModuleType] = julabo

    def __init__(self, conn: Any, *, port: str, terminator: bytes = b"\r", timeout_s: float = 1.0) -> None:
        self.terminator = terminator
        super().__init__(conn, port=port, timeout_s=timeout_s)

    def _encode(self, command: str) -> bytes:
        return julabo.encode(command, self.terminator)

    def connect(self) -> DeviceInfo:
        """Identify the unit (`VERSION`) and read its status (`STATUS`); a negative status code fails."""
        self.transport.start()
        version = self._ask(julabo.READ_VERSION, julabo.decode_version)
        status = self._ask(julabo.READ_STATUS, julabo.decode_status)
        return DeviceInfo(self.role, self.model, self.port, version, "",
                          {"status": f"{status.code:02d} {status.text}"})

    def set_setpoint(self, setpoint_c: float) -> float:
        """Send `OUT_SP_00 x.xx` (no reply) and return the set point read back."""
        data = julabo.encode_setpoint(setpoint_c, self.terminator)
        self.transport.write(data, command=data.decode().strip())
        return self._read_back(setpoint_c, data.decode().strip())

    def running(self) -> bool:
        """Return True if the circulator is running (`IN_MODE_05`)."""
        return bool(self._ask(julabo.READ_RUNNING, julabo.decode_running))


class LaudaBath(_Circulator):
    """A Lauda thermostat (9600 baud, CR LF)."""

    model = "lauda"
    _wire: ClassVar[ModuleType] = lauda

    def _encode(self, command: str) -> bytes:
        return lauda.encode(command)

    def connect(self) -> DeviceInfo:
        """Identify the unit (`TYPE`)."""
        self.transport.start()
        return DeviceInfo(self.role, self.model, self.port, self._ask(lauda.READ_TYPE, lauda.decode_type))

    def set_setpoint(self, setpoint_c: float) -> float:
        """Send `OUT_SP_00_xxx.xx`, expect `OK`, and return the set point read back."""
        data = lauda.encode_setpoint(setpoint_c)
        cmd = data.decode().strip()
        def ok(m: bytes) -> bool:
            lauda.decode_ok(m)
            return True

        self.transport.query(data, ok, command=cmd, first_only=True)
        return self._read_back(setpoint_c, cmd)


class SerialThermometer(Bath):
    """A read-only serial thermometer: sends `query` + CR LF, reads one temperature line."""

    model = "serial-thermometer"

    def __init__(self, conn: Any, *, port: str, query: str = thermometer.DEFAULT_QUERY, timeout_s: float = 1.0) -> None:
        self.port, self.query = port, query
        self._data = thermometer.encode_query(query)
        self.transport = Transport(conn, role=self.role, port=port, default_timeout_s=timeout_s)

    def connect(self) -> DeviceInfo:
        """Take one reading to prove the probe answers."""
        self.transport.start()
        t = self.read_c()
        return DeviceInfo(self.role, self.model, self.port, "serial thermometer", "", {"first_reading_c": f"{t:.2f}"})

    def read_c(self) -> float:
        """Return the probe temperature."""
        return float(self.transport.query(self._data, thermometer.decode_temperature, command=self.query,
                                          first_only=True))

    def close(self) -> None:
        """Release the port. Never raises."""
        self.transport.close()
