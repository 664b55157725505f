"""QST.Lab TCS II thermode driver (device-timed stimuli, unsolicited temperature stream, `Om` hardware cap)."""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from cpm_session.clock import Clock
from cpm_session.devices.base import DeviceInfo, Thermode, ThermodeReading
from cpm_session.devices.transport import Transport
from cpm_session.devices.wire import tcs2 as wire
from cpm_session.errors import DeviceDisconnected, DeviceError, SafetyLimitError

log = logging.getLogger(__name__)

BAUDRATE = 115200
ALL_ZONES = "11111"
STALE_READING_S = 2.5
"""A streamed reading older than this (wall seconds) is replaced by an explicit `E` query."""
HELP_TIMEOUT_S = 2.0
MAX_READBACK_TOLERANCE_C = 0.05
DEFAULT_CHAR_GAP_MS = 1.0
"""The manual: "allow at least 1 ms between each character"."""
MAX_TRACE_SAMPLES = 60000
"""Samples kept since the last launch (10 min at 100 Hz)."""
LIMITER_RISE_C_PER_S = 10.0
LIMITER_RETURN_C_PER_S = 10.0
LIMITER_SETTLE_S = 0.5
"""Session seconds the limiter test keeps streaming after the stimulus duration."""


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
    """Accept `P` output lines until they hold a whole reply of a known layout; keep every line for the log."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.raw: list[bytes] = []

    def __call__(self, msg: bytes) -> wire.Parameters | None:
        if wire.is_temperature_line(msg):
            return None
        self.raw.append(msg)
        text = wire.clean_line_or_none(msg)
        if text:
            self.lines.append(text)
        return wire.decode_parameters(self.lines)

    def accept_tail(self, tail: bytes) -> wire.Parameters | None:
        """Try the lines so far plus an unterminated last line (the public layout ends with nothing)."""
        text = wire.clean_line_or_none(tail)
        if not text or wire.is_temperature_line(tail):
            return None
        got = wire.decode_parameters(self.lines + [text])
        if got is not None:
            self.raw.append(tail)
            self.lines.append(text)
        return got


@dataclass(frozen=True)
class LimiterResult:
    """The outcome of the limiter test on a resting thermode: peak of every streamed zone sample."""

    om_c: float
    target_c: float
    limit_c: float
    peak_c: float | None
    samples: int
    passed: bool
    detail: str


class TcsThermode(Thermode):
    """A TCS II on an open serial connection.

    Every write is paced (`char_gap_ms` between characters, the manual's 1 ms by default).
    `connect()` identifies it (`?`, `H`), turns streaming on (`Oa`, `Ob`), sets neutral, zones and the
    device maximum `Om` (= `cap_c`, rounded down) and reads them back with `P` where its layout is known.
    `prepare()` loads N, S, C0, V0, R0, D0 and verifies them with `P`; `launch()` sends only `L`, so the
    onset does not wait for the ~30 ms paced parameter string. `trace()` returns the stream since `L`.
    """

    model = "tcs2"

    def __init__(self, conn: Any, *, port: str, cap_c: float, neutral_c: float, clock: Clock,
                 zones: str = ALL_ZONES, timeout_s: float = 1.0, char_gap_ms: float = DEFAULT_CHAR_GAP_MS) -> None:
        super().__init__(cap_c, neutral_c)
        wire.encode_zones(zones)  # validate now
        wire.encode_neutral(neutral_c)
        if not (isinstance(char_gap_ms, int | float) and math.isfinite(char_gap_ms) and 0 <= char_gap_ms <= 20):
            raise ValueError(f"char_gap_ms {char_gap_ms!r} outside [0, 20] ms")
        self.port, self.zones, self.timeout_s, self.clock = port, zones, timeout_s, clock
        self._latest: ThermodeReading | None = None
        self._latest_wall = -1e9
        self._lock = threading.Lock()
        self.transport = Transport(conn, role=self.role, port=port, framer=wire.split_stream,
                                   on_message=self._on_message, default_timeout_s=timeout_s,
                                   char_gap_s=char_gap_ms / 1000)
        self.info: DeviceInfo | None = None
        self.device_max_c: float | None = None
        """The maximum sent as `Om` at connect (None before connect)."""
        self.device_max_readback_c: float | None = None
        """The maximum as `P` showed it, when its layout shows one."""
        self.readback_warning = ""
        self.p_layout = ""
        """'public', 'command', 'unknown' or 'silent': how the device answered `P`."""
        self.p_raw = b""
        """The first `P` reply (logged once at connect)."""
        self.last_p_raw = b""
        self._readback = True
        self._prepared: wire.Parameters | None = None
        self._prepared_cmds = ""
        self._trace: list[ThermodeReading] = []
        self._tracing = False
        self.launch_t: float | None = None
        self.readback_mismatches: list[str] = []
        """Every read-back that disagreed (and was re-sent), one line each."""

    # ---- stream ---------------------------------------------------------------------------------
    def _on_message(self, msg: bytes) -> bool:
        if not wire.is_temperature_line(msg):
            return False
        t = wire.decode_temperature_line(msg)
        reading = ThermodeReading(self.clock.now(), t.neutral_c, t.zones_c)
        with self._lock:
            self._latest, self._latest_wall = reading, time.monotonic()
            if self._tracing and len(self._trace) < MAX_TRACE_SAMPLES:
                self._trace.append(reading)
        return True

    # ---- read-back ------------------------------------------------------------------------------
    def _read_parameters(self) -> wire.Parameters | None:
        """Ask `P`; return the parameters, or None (and warn once, read-back off) for an unknown or silent reply."""
        if not self._readback:
            return None
        collector = _ParamCollector()
        try:
            got = self.transport.query(wire.READ_PARAMETERS, collector, command="P", partial_ok=True)
        except DeviceError as e:
            if isinstance(e, DeviceDisconnected) or self.transport.fault is not None:
                raise
            raw = b"\r".join(collector.raw) or (e.reply if isinstance(e.reply, bytes) else b"")
            self._readback = False
            self.p_layout = "unknown" if raw else "silent"
            self.p_raw = raw
            what = f"P reply in an unknown layout: {raw[:200]!r}" if raw else "no reply to P"
            self.readback_warning = (f"{self.role} on {self.port}: {what}; loaded parameters are not read back "
                                     f"(the device maximum is proven by the check-station limiter test)")
            log.warning("%s", self.readback_warning)
            return None
        self.p_layout = got.layout
        self.last_p_raw = b"\r".join(collector.raw)
        if not self.p_raw:
            self.p_raw = self.last_p_raw
        return got

    @staticmethod
    def _differences(want: wire.Parameters, got: wire.Parameters, target_may_read_c: float | None = None) -> list[str]:
        """Return one 'what: sent X, device has Y' item per parameter that differs."""
        out: list[str] = []
        if round(want.neutral_c * 10) != round(got.neutral_c * 10):
            out.append(f"neutral: sent {want.neutral_c:.1f}, device has {got.neutral_c:.1f} °C")
        if want.zones != got.zones:
            out.append(f"zones: sent {want.zones}, device has {got.zones}")
        for i, (w, g) in enumerate(zip(want.zone, got.zone), 1):
            ok_targets = {round(w.target_c * 10)}
            if target_may_read_c is not None:
                ok_targets.add(round(target_may_read_c * 10))
            if round(g.target_c * 10) not in ok_targets:
                out.append(f"zone {i} target: sent {w.target_c:.1f}, device has {g.target_c:.1f} °C")
            if round(w.rise_c_per_s * 10) != round(g.rise_c_per_s * 10):
                out.append(f"zone {i} rise: sent {w.rise_c_per_s:.1f}, device has {g.rise_c_per_s:.1f} °C/s")
            if round(w.return_c_per_s * 10) != round(g.return_c_per_s * 10):
                out.append(f"zone {i} return: sent {w.return_c_per_s:.1f}, device has {g.return_c_per_s:.1f} °C/s")
            if w.duration_ms != g.duration_ms:
                out.append(f"zone {i} duration: sent {w.duration_ms}, device has {g.duration_ms} ms")
        return out

    # ---- Thermode -------------------------------------------------------------------------------
    def connect(self) -> DeviceInfo:
        """Identify the device, set neutral, zones and its own maximum, and read them back where `P` allows."""
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
        setup = wire.encode_neutral(self.neutral_c) + wire.encode_zones(self.zones) + om
        expected_max = wire.max_temp_tenths(self.cap_c) / 10
        for attempt in (1, 2):
            tr.write(setup, command=setup.decode())
            got = self._read_parameters()
            if got is None:
                break
            diff = []
            if round(got.neutral_c * 10) != round(self.neutral_c * 10):
                diff.append(f"neutral: sent {self.neutral_c:.1f}, device has {got.neutral_c:.1f} °C")
            if got.zones != self.zones:
                diff.append(f"zones: sent {self.zones}, device has {got.zones}")
            if got.max_c is not None and (abs(got.max_c - expected_max) > MAX_READBACK_TOLERANCE_C
                                          or got.max_c > self.cap_c):
                diff.append(f"device maximum read back as {got.max_c:.1f} °C, expected {expected_max:.1f} °C")
            if not diff:
                self.device_max_readback_c = got.max_c
                break
            if attempt == 2:
                raise DeviceError("; ".join(diff) + " (after a re-send)", role=self.role, port=self.port,
                                  command=setup.decode(), reply=self.last_p_raw or None)
            self.readback_mismatches.append("; ".join(diff))
        self.device_max_c = expected_max
        status = self.error_status()
        shown = (f"{self.device_max_readback_c:.1f}" if self.device_max_readback_c is not None
                 else f"not shown ({self.p_layout} P layout)")
        extra = {"probe_id": fields.get("probe_id", ""), "probe_type": fields.get("probe_type", ""),
                 "device_max_c": f"{expected_max:.1f}", "device_max_readback": shown,
                 "neutral_c": f"{self.neutral_c:.1f}", "error_status": status or "000000",
                 "p_layout": self.p_layout, "char_gap_ms": f"{self.transport.char_gap_s * 1000:g}"}
        if self.readback_warning:
            extra["readback_warning"] = self.readback_warning
            extra["p_raw"] = repr(self.p_raw[:300])
        self.info = DeviceInfo(self.role, self.model, self.port, identity, fields.get("firmware", ""), extra)
        return self.info

    def _check_stimulus(self, target_c: float) -> None:
        self.check_target(target_c)
        if self.device_max_c is not None and round(target_c * 10) > round(self.device_max_c * 10):
            raise SafetyLimitError(f"{self.role} on {self.port}: target {target_c:.1f} °C refused, "
                                   f"device maximum is {self.device_max_c:.1f} °C")

    def prepare(self, target_c: float, rise_c_per_s: float, return_c_per_s: float, duration_s: float) -> None:
        """Load N, S, C0, V0, R0, D0 (paced) and verify them with `P`; re-send once on a mismatch. No heat.

        Raises SafetyLimitError before anything is sent if `target_c` is above the cap (or the device
        maximum) or a rate or duration is outside the device's range; DeviceError naming what was sent
        and what came back if the read-back disagrees again after the re-send (nothing is then launchable).
        """
        self._check_stimulus(target_c)
        self._load(target_c, rise_c_per_s, return_c_per_s, duration_s)

    def _load(self, target_c: float, rise_c_per_s: float, return_c_per_s: float, duration_s: float,
              target_may_read_c: float | None = None) -> None:
        self._prepared = None
        try:
            cmds = wire.encode_stimulus(self.neutral_c, self.zones, target_c, rise_c_per_s, return_c_per_s,
                                        duration_s)
        except ValueError as e:
            raise SafetyLimitError(f"{self.role} on {self.port}: stimulus refused, nothing sent: {e}") from None
        zone = wire.ZoneParameters(round(target_c * 10) / 10, round(rise_c_per_s * 10) / 10,
                                   round(return_c_per_s * 10) / 10, int(round(duration_s * 1000)))
        want = wire.Parameters("sent", self.neutral_c, self.zones, (zone,) * wire.N_ZONES)
        text = " ".join(c.decode() for c in cmds)
        for attempt in (1, 2):
            self.transport.write(b"".join(cmds), command=text)
            got = self._read_parameters()
            if got is None:
                break
            diff = self._differences(want, got, target_may_read_c)
            if not diff:
                break
            if attempt == 2:
                raise DeviceError("parameters read back differ after a re-send, nothing launched: " + "; ".join(diff),
                                  role=self.role, port=self.port, command=text, reply=self.last_p_raw or None)
            self.readback_mismatches.append("; ".join(diff))
            log.warning("%s on %s: P read-back differs (%s); re-sending %s", self.role, self.port,
                        "; ".join(diff), text)
        self._prepared, self._prepared_cmds = want, text

    def stimulate(self, target_c: float, rise_c_per_s: float, return_c_per_s: float, duration_s: float) -> None:
        """Prepare the stimulus and launch it at once (the onset then waits for the load and read-back)."""
        self.prepare(target_c, rise_c_per_s, return_c_per_s, duration_s)
        self.launch()

    def launch(self) -> None:
        """Send only `L` (not queued behind a query in flight); the device times the prepared stimulus.

        Raises DeviceError (nothing sent) if no stimulus was prepared since the last launch.
        """
        if self._prepared is None:
            raise DeviceError("launch refused: no stimulus prepared (or its read-back failed)", role=self.role,
                              port=self.port, command="L")
        self._launched, self._prepared = self._prepared, None
        with self._lock:
            self._trace = []
            self._tracing = True
            self.launch_t = self.clock.now()
        self.transport.write_now(wire.LAUNCH, command="L", preempt=False)

    _launched: wire.Parameters | None = None

    def stimulus_details(self) -> dict[str, object]:
        """Return what was actually encoded for the stimulus just launched (0.1 °C, 0.1 °C/s, 1 ms steps) and
        the command string sent, so the log records the value the device received, not the one asked for."""
        if self._launched is None:
            return {}
        z = self._launched.zone[0]
        return {"encoded_target_c": z.target_c, "encoded_rise_c_per_s": z.rise_c_per_s,
                "encoded_return_c_per_s": z.return_c_per_s, "encoded_duration_ms": z.duration_ms,
                "zones": self._launched.zones, "commands": self._prepared_cmds}

    def trace(self) -> list[ThermodeReading]:
        """Return every streamed sample since the last `L` (100 Hz during a stimulus, 1 Hz after it)."""
        with self._lock:
            return list(self._trace)

    def limiter_test(self, *, om_c: float, target_c: float, duration_s: float, margin_c: float = 0.3,
                     restore_c: float | None = None) -> LimiterResult:
        """Prove the device maximum on the resting thermode: `Om` = `om_c`, launch `target_c` (above it).

        Streams for `duration_s` plus a short settle, then sets `Om` back to `restore_c` (default the
        cap). Passes if every streamed zone sample stays at or below `om_c` + `margin_c`.
        """
        limit = om_c + margin_c
        restore = self.cap_c if restore_c is None else restore_c
        try:
            self.transport.write(wire.encode_max_temp(om_c), command=wire.encode_max_temp(om_c).decode())
            self.device_max_c = wire.max_temp_tenths(om_c) / 10
            self.check_target(target_c)
            self._load(target_c, LIMITER_RISE_C_PER_S, LIMITER_RETURN_C_PER_S, duration_s, target_may_read_c=om_c)
            self.launch()
            t0 = self.launch_t or self.clock.now()
            while self.clock.now() < t0 + duration_s + LIMITER_SETTLE_S:
                time.sleep(0.02)
            samples = self.trace()
        finally:
            try:
                self.transport.write_now(wire.ABORT, command="A")
            finally:
                om = wire.encode_max_temp(restore)
                self.transport.write(om, command=om.decode())
                self.device_max_c = wire.max_temp_tenths(restore) / 10
        if not samples:
            return LimiterResult(om_c, target_c, limit, None, 0, False,
                                 "no temperatures streamed during the limiter test")
        peak = max(max(r.zones_c) for r in samples)
        ok = peak <= limit + 1e-9
        return LimiterResult(om_c, target_c, limit, peak, len(samples), ok,
                             f"Om {om_c:.1f} °C, target {target_c:.1f} °C: streamed peak {peak:.1f} °C "
                             f"({'≤' if ok else '>'} {limit:.1f} °C, {len(samples)} samples)")

    # ---- trigger output: station [sync] ttl_on_launch (issue 17; a separate method, nothing else changed) ----
    def output_trigger(self, code: int = 255, duration_ms: int = 10) -> None:
        """Pulse the trigger output now: `T` code (001-255) and duration (010-999 ms), then `Oo` (output trigger)."""
        if not (1 <= code <= 255 and 10 <= duration_ms <= 999):
            raise DeviceError(f"trigger code {code} / duration {duration_ms} ms outside 1-255 / 10-999 ms",
                              role=self.role, port=self.port, command="T")
        cmd = f"T{code:03d}{duration_ms:03d}Oo".encode()
        self.transport.write(cmd, command=cmd.decode())

    def abort(self) -> None:
        """Send `A` at once (not queued behind any request in flight; a paced string in progress stops)."""
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
        """Return '' if `Q` reports every zone OK, else the six status digits (complete by length)."""
        codes = self.transport.query(wire.READ_ERRORS, wire.accept_error_status, command="Q", tail_ok=True)
        return "" if not any(codes) else "".join(str(c) for c in codes)

    def buttons(self) -> tuple[bool, bool]:
        """Return the two buttons' states from `K` (complete by length: CR + 2 digits)."""
        return self.transport.query(wire.READ_BUTTONS, wire.accept_buttons, command="K", tail_ok=True)

    def battery(self) -> tuple[float, int]:
        """Return (volts, percent) from `B`."""
        return self.transport.query(b"B", wire.decode_battery, command="B", tail_ok=True)

    def close(self) -> None:
        """Send `A` (return to neutral) if the port is still there, then release it. Never raises."""
        try:
            if self.transport.alive:
                self.transport.write_now(wire.ABORT, command="A")
        except Exception:  # noqa: BLE001 - close must not raise
            pass
        self.transport.close()
