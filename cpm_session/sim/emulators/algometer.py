"""Algometer emulators: Wagner FDX and Mark-10 gauges whose force ramps over simulated press cycles.

A press cycle (device time): rest at zero for `rest_s`, ramp at `ramp_kpa_per_s` up to `stop_kpa`
(the participant says stop), release. `auto_press` repeats cycles; `press()` starts one now.
"""

from __future__ import annotations

from cpm_session.devices.transport import split_lines
from cpm_session.devices.wire import from_kpa, mark10, wagner
from cpm_session.sim.emulators.base import PtyEmulator

MODELS = ("wagner-fdx", "mark10")
DEFAULT_REST_S = 6.0
DEFAULT_RAMP_KPA_PER_S = 40.0
DEFAULT_STOP_KPA = 420.0
RELEASE_S = 0.5


class AlgometerEmulator(PtyEmulator):
    """A force gauge on a pty; it reports force in `unit` for a probe of `probe_area_cm2`."""

    kind = "algometer"

    def __init__(self, speed: float = 1.0, *, model: str = "mark10", unit: str | None = None,
                 probe_area_cm2: float = 1.0, auto_press: bool = True, rest_s: float = DEFAULT_REST_S,
                 ramp_kpa_per_s: float = DEFAULT_RAMP_KPA_PER_S, stop_kpa: float = DEFAULT_STOP_KPA,
                 preload_kpa: float = 0.0) -> None:
        if model not in MODELS:
            raise ValueError(f"algometer model must be one of {MODELS}, got {model!r}")
        super().__init__(speed)
        self.model = model
        self.unit = unit or ("lbf" if model == "wagner-fdx" else "N")
        self.probe_area_cm2 = probe_area_cm2
        self.auto_press, self.rest_s = auto_press, rest_s
        self.ramp_kpa_per_s, self.stop_kpa = ramp_kpa_per_s, stop_kpa
        self.offset_kpa = preload_kpa
        """What the gauge shows with no load until zeroed (`Z`)."""
        self._press_start: float | None = self.now() + rest_s if auto_press else None
        self._peak_kpa = 0.0
        self._buf = b""
        self.commands: list[tuple[float, str]] = []

    # ---- model ----------------------------------------------------------------------------------
    def press(self, ramp_kpa_per_s: float | None = None, stop_kpa: float | None = None) -> None:
        """Start a press cycle now."""
        with self.lock:
            if ramp_kpa_per_s is not None:
                self.ramp_kpa_per_s = ramp_kpa_per_s
            if stop_kpa is not None:
                self.stop_kpa = stop_kpa
            self._press_start = self.now()

    def load_kpa(self, t: float | None = None) -> float:
        """Return the true pressure on the probe at device time `t` (now by default)."""
        t = self.now() if t is None else t
        start = self._press_start
        if start is None or t < start:
            return 0.0
        ramp_s = self.stop_kpa / self.ramp_kpa_per_s
        x = t - start
        if x <= ramp_s:
            return self.ramp_kpa_per_s * x
        if x <= ramp_s + RELEASE_S:
            return self.stop_kpa * (1 - (x - ramp_s) / RELEASE_S)
        if self.auto_press:
            self._press_start = start + ramp_s + RELEASE_S + self.rest_s
            return self.load_kpa(t)
        self._press_start = None
        return 0.0

    def shown_kpa(self) -> float:
        """Return what the gauge displays (load plus any un-zeroed offset), tracking the peak."""
        v = self.load_kpa() + self.offset_kpa
        self._peak_kpa = max(self._peak_kpa, v)
        return v

    def tick(self) -> float:
        self.shown_kpa()
        return 0.02

    # ---- protocol -------------------------------------------------------------------------------
    def _reading(self, kpa: float) -> bytes:
        value = from_kpa(kpa, self.unit, self.probe_area_cm2)
        if self.model == "wagner-fdx":
            return wagner.encode_reading(-value, self.unit)  # Wagner shows compression as negative
        return mark10.encode_reading(value, self.unit)

    def on_bytes(self, data: bytes) -> None:
        lines, self._buf = split_lines(self._buf + data)
        for raw in lines:
            if not self._take_command():
                continue
            text = raw.decode("ascii", "replace").strip()
            self.commands.append((self.now(), text))
            if self.model == "wagner-fdx":
                self._wagner(text)
            else:
                self._mark10(text)

    def _wagner(self, text: str) -> None:
        if text == "?":
            self.send(self._reading(self.shown_kpa()))

    def _mark10(self, text: str) -> None:
        up = text.upper()
        if up == "?":
            self.send(self._reading(self.shown_kpa()))
        elif up in ("?C", "?PC"):
            self.shown_kpa()
            self.send(self._reading(self._peak_kpa))
        elif up == "CLR":
            self._peak_kpa = 0.0
            self.shown_kpa()
        elif up == "Z":
            self.offset_kpa -= self.shown_kpa()
            self._peak_kpa = 0.0
        else:
            self.send(b"*10\r\n")
