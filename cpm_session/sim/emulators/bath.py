"""Bath emulators: Julabo and Lauda circulators and a serial thermometer, with drift toward the set point.

The water temperature follows the set point with a first-order lag when the circulator runs, plus a
configurable drift (e.g. melting ice) and noise; `force_temperature()` puts it out of range at once.
Julabo units drop commands sent less than 250 ms (wall) after the previous one, like the real ones,
and count them in `spacing_violations`.
"""

from __future__ import annotations

import random
import time

from cpm_session.devices.transport import split_lines
from cpm_session.sim.emulators.base import PtyEmulator

MIN_SPACING_S = 0.25
SPACING_JITTER_S = 0.05
"""Arrival-time jitter of the emulator thread forgiven before a command counts as too close."""
DEFAULT_START_C = 2.5
SETTLE_TAU_S = 120.0
"""Time constant (device s) with which a running circulator pulls the water to its set point."""

MODELS = ("julabo", "lauda", "serial-thermometer")


class BathEmulator(PtyEmulator):
    """A bath on a pty speaking `model`'s protocol ("julabo", "lauda" or "serial-thermometer")."""

    kind = "bath"

    def __init__(self, speed: float = 1.0, *, model: str = "julabo", start_c: float = DEFAULT_START_C,
                 setpoint_c: float | None = None, drift_c_per_min: float = 0.0, noise_c: float = 0.0,
                 running: bool = True, strict_spacing: bool = True, seed: int = 0,
                 version: str = "JULABO CORIO CD-200F VERSION 1.0 (emulated)") -> None:
        if model not in MODELS:
            raise ValueError(f"bath model must be one of {MODELS}, got {model!r}")
        super().__init__(speed)
        self.model = model
        self.setpoint_c = start_c if setpoint_c is None else setpoint_c
        self.drift_c_per_min, self.noise_c = drift_c_per_min, noise_c
        self.running = running
        self.strict_spacing = strict_spacing and model == "julabo"
        self.version = version
        self._temp = start_c
        self._last_t = self.now()
        self._buf = b""
        self._rng = random.Random(seed)
        self._last_cmd_wall = -1e9
        self.spacing_violations = 0
        self.commands: list[tuple[float, str]] = []

    # ---- model ----------------------------------------------------------------------------------
    def _advance(self) -> None:
        now = self.now()
        dt = now - self._last_t
        self._last_t = now
        if dt <= 0:
            return
        self._temp += self.drift_c_per_min * dt / 60
        if self.running and self.model != "serial-thermometer":
            self._temp += (self.setpoint_c - self._temp) * min(1.0, dt / SETTLE_TAU_S)

    def temperature_c(self) -> float:
        """Return the true water temperature now (without measurement noise)."""
        with self.lock:
            self._advance()
            return self._temp

    def force_temperature(self, temp_c: float, *, hold: bool = True) -> None:
        """Set the water to `temp_c` at once; with `hold` also move the set point so it stays there."""
        with self.lock:
            self._advance()
            self._temp = temp_c
            if hold:
                self.setpoint_c = temp_c
                self.drift_c_per_min = 0.0

    def _measured(self) -> float:
        self._advance()
        return self._temp + (self._rng.gauss(0.0, self.noise_c) if self.noise_c > 0 else 0.0)

    def tick(self) -> float:
        self._advance()
        return 0.05

    # ---- protocol -------------------------------------------------------------------------------
    def on_bytes(self, data: bytes) -> None:
        lines, self._buf = split_lines(self._buf + data)
        for raw in lines:
            wall = time.perf_counter()
            if wall - self._last_cmd_wall < MIN_SPACING_S - SPACING_JITTER_S:
                self.spacing_violations += 1
                if self.strict_spacing:
                    self._last_cmd_wall = wall
                    continue
            self._last_cmd_wall = wall
            if not self._take_command():
                continue
            text = raw.decode("ascii", "replace").strip()
            self.commands.append((self.now(), text))
            reply = self._answer(text)
            if reply is not None:
                self.send(reply.encode("ascii") + b"\r\n")

    def _answer(self, text: str) -> str | None:
        if self.model == "julabo":
            return self._julabo(text)
        if self.model == "lauda":
            return self._lauda(text)
        return self._thermometer(text)

    def _julabo(self, text: str) -> str | None:
        up = text.upper()
        if up == "VERSION":
            return self.version
        if up == "STATUS":
            return "03 REMOTE START" if self.running else "02 REMOTE STOP"
        if up == "IN_PV_00":
            return f"{self._measured():.2f}"
        if up == "IN_SP_00":
            return f"{self.setpoint_c:.2f}"
        if up == "IN_MODE_05":
            return "1" if self.running else "0"
        if up.startswith("OUT_SP_00 "):
            try:
                self._advance()
                self.setpoint_c = float(up.split(" ", 1)[1])
            except ValueError:
                return "-07 VALUE TOO LARGE OR NOT A NUMBER"
            return None
        if up.startswith("OUT_MODE_05 "):
            self._advance()
            self.running = up.endswith("1")
            return None
        return "-08 INVALID COMMAND"

    def _lauda(self, text: str) -> str | None:
        up = text.upper()
        if up == "TYPE":
            return "ECO RE 1050 (emulated)"
        if up == "IN_PV_00":
            return f"{self._measured():06.2f}"
        if up == "IN_SP_00":
            return f"{self.setpoint_c:06.2f}"
        if up.startswith("OUT_SP_00_"):
            try:
                self._advance()
                self.setpoint_c = float(up[len("OUT_SP_00_"):])
            except ValueError:
                return "ERR_6"
            return "OK"
        if up in ("START", "STOP"):
            self.running = up == "START"
            return "OK"
        return "ERR_3"

    def _thermometer(self, text: str) -> str | None:
        if text in ("?", "T", "READ?"):
            v = self._measured()
            return f"{'+' if v >= 0 else '-'}{abs(v):05.2f} C"
        return None
