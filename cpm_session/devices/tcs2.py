"""QST.Lab TCS II thermode driver (device-timed stimuli, unsolicited temperature stream, `Om` hardware cap)."""

from __future__ import annotations

import threading
import time
from typing import Any

from cpm_session.clock import Clock
from cpm_session.devices.base import DeviceInfo, Thermode, ThermodeReading
from cpm_session.devices.transport import Transport
from cpm_session.devices.wire import tcs2 as wire
from cpm_session.errors import DeviceError, SafetyLimitError

BAUDRATE = 115200
ALL_ZONES = "11111"
STALE_READING_S = 2.5
"""A streamed reading older than this (wall seconds) is replaced by an explicit `E` query."""
HELP_TIMEOUT_S = 2.0
MAX_READBACK_TOLERANCE_C = 0.05


class _HelpCollector:
    """Accept help lines until `Probe TYPE:` arrives; keep the fields seen."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}

    def __call__(self, msg: bytes) -> dict[str, str] | None:
        f = wire.decode_help_field(msg)
        if f is None:
            return None
        self.fields[f[0]] = f[1]
        return dict(self.fields) if f[0] == "probe_type" else None


class _ParamCollector:
    """Accept `P` output lines until both the device maximum and the neutral temperature were seen."""

    def __init__(self) -> None:
        self.max_c: float | None = None
        self.neutral_c: float | None = None

    def __call__(self, msg: bytes) -> tuple[float, float | None] | None:
        if wire.is_temperature_line(msg):
            return None
        m = wire.decode_max_temp(msg)
        n = wire.decode_neutral_param(msg)
        if m is not None:
            self.max_c = m
        if n is not None:
            self.neutral_c = n
        if self.max_c is not None and self.neutral_c is not None:
            return self.max_c, self.neutral_c
        return None


class TcsThermode(Thermode):
    """A TCS II on an open serial connection.

    `connect()` identifies it (`?`, `H`), turns streaming on (`Oa`, `Ob`), sets neutral, zones and the
    device maximum `Om` (= `cap_c`, rounded down) and reads both back with `P`.
    `stimulate()` sends N, S, C0, V0, R0, D0 and L in one write; the device times the stimulus.
    """

    model = "tcs2"

    def __init__(self, conn: Any, *, port: str, cap_c: float, neutral_c: float, clock: Clock,
                 zones: str = ALL_ZONES, timeout_s: float = 1.0) -> None:
        super().__init__(cap_c, neutral_c)
        wire.encode_zones(zones)  # validate now
        wire.encode_neutral(neutral_c)
        self.port, self.zones, self.timeout_s, self.clock = port, zones, timeout_s, clock
        self._latest: ThermodeReading | None = None
        self._latest_wall = -1e9
        self._lock = threading.Lock()
        self.transport = Transport(conn, role=self.role, port=port, framer=wire.split_stream,
                                   on_message=self._on_message, default_timeout_s=timeout_s)
        self.info: DeviceInfo | None = None
        self.device_max_c: float | None = None

    # ---- stream ---------------------------------------------------------------------------------
    def _on_message(self, msg: bytes) -> bool:
        if not wire.is_temperature_line(msg):
            return False
        t = wire.decode_temperature_line(msg)
        reading = ThermodeReading(self.clock.now(), t.neutral_c, t.zones_c)
        with self._lock:
            self._latest, self._latest_wall = reading, time.monotonic()
        return True

    # ---- Thermode -------------------------------------------------------------------------------
    def connect(self) -> DeviceInfo:
        """Identify the device, set neutral, zones and its own maximum, and read them back."""
        tr = self.transport
        tr.start()
        identity = tr.query(wire.IDENTIFY, lambda m: wire.decode_identity(m) if b"TCS" in m else None,
                            command="?", partial_ok=True)
        try:
            fields = tr.query(wire.HELP, _HelpCollector(), command="H", timeout_s=max(HELP_TIMEOUT_S, self.timeout_s))
        except DeviceError as e:
            if tr.fault is not None:
                raise
            fields = {"firmware": f"unknown ({e.__class__.__name__})"}
        tr.write(wire.STREAM_IDLE_ON + wire.STREAM_STIMULUS_ON, command="Oa Ob")
        om = wire.encode_max_temp(self.cap_c)
        tr.write(wire.encode_neutral(self.neutral_c) + wire.encode_zones(self.zones) + om,
                 command=f"N S {om.decode()}")
        max_c, neutral_back = tr.query(wire.READ_PARAMETERS, _ParamCollector(), command="P")
        expected_max = wire.max_temp_tenths(self.cap_c) / 10
        if abs(max_c - expected_max) > MAX_READBACK_TOLERANCE_C or max_c > self.cap_c:
            raise DeviceError(f"device maximum read back as {max_c:.1f} °C, expected {expected_max:.1f} °C",
                              role=self.role, port=self.port, command=om.decode())
        if neutral_back is not None and abs(neutral_back - self.neutral_c) > MAX_READBACK_TOLERANCE_C:
            raise DeviceError(f"neutral read back as {neutral_back:.1f} °C, expected {self.neutral_c:.1f} °C",
                              role=self.role, port=self.port, command="N")
        self.device_max_c = max_c
        status = self.error_status()
        self.info = DeviceInfo(self.role, self.model, self.port, identity, fields.get("firmware", ""),
                               {"probe_id": fields.get("probe_id", ""), "probe_type": fields.get("probe_type", ""),
                                "device_max_c": f"{max_c:.1f}", "neutral_c": f"{self.neutral_c:.1f}",
                                "error_status": status or "000000"})
        return self.info

    def stimulate(self, target_c: float, rise_c_per_s: float, return_c_per_s: float, duration_s: float) -> None:
        """Send every parameter (N, S, C0, V0, R0, D0) and `L` in one write; the device times the stimulus.

        Raises SafetyLimitError before anything is encoded or sent if `target_c` is above the cap (or
        the device maximum read back at connect) or a rate or duration is outside the device's range.
        """
        self.check_target(target_c)
        if self.device_max_c is not None and round(target_c * 10) > round(self.device_max_c * 10):
            raise SafetyLimitError(f"{self.role} on {self.port}: target {target_c:.1f} °C refused, "
                                   f"device maximum is {self.device_max_c:.1f} °C")
        try:
            cmds = wire.encode_stimulus(self.neutral_c, self.zones, target_c, rise_c_per_s, return_c_per_s,
                                        duration_s)
        except ValueError as e:
            raise SafetyLimitError(f"{self.role} on {self.port}: stimulus refused, nothing sent: {e}") from None
        self.transport.write(b"".join(cmds) + wire.LAUNCH, command=" ".join(c.decode() for c in cmds) + " L")

    # ---- trigger output: station [sync] ttl_on_launch (issue 17; a separate method, nothing else changed) ----
    def output_trigger(self, code: int = 255, duration_ms: int = 10) -> None:
        """Pulse the trigger output now: `T` code (001-255) and duration (010-999 ms), then `Oo` (output trigger)."""
        if not (1 <= code <= 255 and 10 <= duration_ms <= 999):
            raise DeviceError(f"trigger code {code} / duration {duration_ms} ms outside 1-255 / 10-999 ms",
                              role=self.role, port=self.port, command="T")
        cmd = f"T{code:03d}{duration_ms:03d}Oo".encode()
        self.transport.write(cmd, command=cmd.decode())

    def abort(self) -> None:
        """Send `A` at once (not queued behind any request in flight)."""
        self.transport.write_now(wire.ABORT, command="A")

    def read(self) -> ThermodeReading:
        """Return the latest streamed temperatures; ask with `E` if the stream is stale or muted."""
        with self._lock:
            latest, age = self._latest, time.monotonic() - self._latest_wall
        if latest is not None and age <= STALE_READING_S and self.transport.alive:
            return latest

        def accept(m: bytes) -> ThermodeReading | None:
            if not wire.is_temperature_line(m):
                return None
            t = wire.decode_temperature_line(m)
            return ThermodeReading(self.clock.now(), t.neutral_c, t.zones_c)

        return self.transport.query(wire.READ_TEMPERATURES, accept, command="E")

    def error_status(self) -> str:
        """Return '' if `Q` reports every zone OK, else the six status digits."""
        codes = self.transport.query(
            wire.READ_ERRORS,
            lambda m: None if wire.is_temperature_line(m) or not m.strip().isdigit() else wire.decode_error_status(m),
            command="Q")
        return "" if not any(codes) else "".join(str(c) for c in codes)

    def close(self) -> None:
        """Send `A` (return to neutral) if the port is still there, then release it. Never raises."""
        try:
            if self.transport.alive:
                self.transport.write_now(wire.ABORT, command="A")
        except Exception:  # noqa: BLE001 - close must not raise
            pass
        self.transport.close()
