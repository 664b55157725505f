"""Simulated devices with dynamics computed from a Clock: ramps, plateaus, returns, drift, noise.

Temperatures are computed analytically from the time of the last command, so a simulated visit
behaves the same on a virtual clock (tests) and a scaled real clock (demo).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from cpm_session.clock import Clock
from cpm_session.devices.base import Algometer, Bath, DeviceInfo, Thermode, ThermodeReading

SIM_PORT = "sim://"
ZONES = 5


@dataclass(frozen=True)
class _Segment:
    """Temperature course from `t0`: from `start_c` ramp to `target_c`, hold until `t_end`, return to neutral."""

    t0: float
    start_c: float
    target_c: float
    rise_c_per_s: float
    return_c_per_s: float
    t_end: float

    def at(self, t: float, neutral_c: float) -> float:
        if t <= self.t0:
            return self.start_c
        if t < self.t_end:
            up = self.start_c + np.sign(self.target_c - self.start_c) * self.rise_c_per_s * (t - self.t0)
            return float(min(up, self.target_c) if self.target_c >= self.start_c else max(up, self.target_c))
        at_end = self.at(self.t_end - 1e-9, neutral_c) if self.t_end > self.t0 else self.start_c
        back = at_end - np.sign(at_end - neutral_c) * self.return_c_per_s * (t - self.t_end)
        return float(max(back, neutral_c) if at_end >= neutral_c else min(back, neutral_c))

    def at_many(self, ts: np.ndarray, neutral_c: float) -> np.ndarray:
        """Return `at` for every time in `ts` at once (the same course, computed with numpy)."""
        up = self.start_c + np.sign(self.target_c - self.start_c) * self.rise_c_per_s * (ts - self.t0)
        up = np.minimum(up, self.target_c) if self.target_c >= self.start_c else np.maximum(up, self.target_c)
        at_end = self.at(self.t_end - 1e-9, neutral_c) if self.t_end > self.t0 else self.start_c
        back = at_end - np.sign(at_end - neutral_c) * self.return_c_per_s * (ts - self.t_end)
        back = np.maximum(back, neutral_c) if at_end >= neutral_c else np.minimum(back, neutral_c)
        return np.where(ts <= self.t0, self.start_c, np.where(ts < self.t_end, up, back))


TRACE_HZ = 100.0
"""Samples per session second `trace()` returns during and after a stimulus, like the TCS II's stream."""
TRACE_AFTER_S = 10.0
"""Session seconds after the stimulus duration that `trace()` still covers (the return to neutral)."""


class SimThermode(Thermode):
    """A five-zone thermode whose stimuli are timed by the (simulated) device.

    A zone fault models poor contact or a slow probe: `fault_zone` (1-5) heats at `fault_rate_factor`
    of the commanded rate and reaches only `fault_gain` of the step from neutral to the target.
    `temperature_at` and `trace` report what the zones deliver, not what was commanded.
    """

    model = "sim"
    port = SIM_PORT
    blocking_io = False

    def __init__(self, clock: Clock, cap_c: float, neutral_c: float, *, noise_c: float = 0.02,
                 rng: np.random.Generator | None = None, fault_zone: int | None = None,
                 fault_gain: float = 1.0, fault_rate_factor: float = 1.0) -> None:
        super().__init__(cap_c, neutral_c)
        if fault_zone is not None and fault_zone not in range(1, ZONES + 1):
            raise ValueError(f"fault_zone {fault_zone!r}: expected 1-{ZONES}")
        if not (0 < fault_gain <= 1.5 and 0 < fault_rate_factor <= 1.5):
            raise ValueError("fault_gain and fault_rate_factor must be in (0, 1.5]")
        self.clock = clock
        self.noise_c = noise_c
        self.rng = rng or np.random.default_rng(0)
        self.fault_zone, self.fault_gain, self.fault_rate_factor = fault_zone, fault_gain, fault_rate_factor
        self._seg: _Segment | None = None
        self._zone_seg: list[_Segment | None] = [None] * ZONES
        self._lock = threading.Lock()
        self.commands: list[tuple[float, str, dict[str, float]]] = []  # (t, command, params) for tests
        self.device_max_c = cap_c
        self.connected = False
        self._prepared: dict[str, float] | None = None
        self._launch_t: float | None = None
        self._trace_seed = 0

    def connect(self) -> DeviceInfo:
        """Set the device-side maximum to the cap and report identity."""
        self.device_max_c = self.cap_c
        self.connected = True
        self.commands.append((self.clock.now(), "connect", {"max_c": self.cap_c, "neutral_c": self.neutral_c}))
        return DeviceInfo("thermode", self.model, self.port, "SIM-TCS", "sim-1.0", {"max_c": f"{self.device_max_c:.1f}"})

    def _now_c(self, t: float) -> float:
        return self._seg.at(t, self.neutral_c) if self._seg else self.neutral_c

    def _zone_c(self, i: int, t: float) -> float:
        seg = self._zone_seg[i]
        return seg.at(t, self.neutral_c) if seg else self._now_c(t)

    def prepare(self, target_c: float, rise_c_per_s: float, return_c_per_s: float, duration_s: float) -> None:
        """Check and keep the stimulus parameters (nothing heats until `launch`)."""
        self.check_target(target_c)
        for what, v, lo, hi in (("rise", rise_c_per_s, 0.1, 999.9), ("return", return_c_per_s, 0.1, 999.9),
                                ("duration", duration_s, 0.001, 99.999)):
            if not (math.isfinite(v) and lo <= v <= hi):
                from cpm_session.errors import SafetyLimitError

                raise SafetyLimitError(f"thermode on {self.port}: stimulus refused, nothing sent: {what} {v!r} "
                                       f"outside [{lo}, {hi}]")
        with self._lock:
            self._prepared = {"target_c": min(target_c, self.device_max_c), "rise_c_per_s": rise_c_per_s,
                              "return_c_per_s": return_c_per_s, "duration_s": duration_s}
            self.commands.append((self.clock.now(), "prepare", dict(self._prepared)))

    def stimulate(self, target_c: float, rise_c_per_s: float, return_c_per_s: float, duration_s: float) -> None:
        """Prepare the stimulus and launch it at once (the onset then waits for the load and read-back)."""
        self.prepare(target_c, rise_c_per_s, return_c_per_s, duration_s)
        self.launch()

    def launch(self) -> None:
        """Start the prepared stimulus now: ramp, hold until its duration ends, return on its own."""
        from cpm_session.errors import DeviceError

        with self._lock:
            p = self._prepared
            if p is None:
                raise DeviceError("launch refused: no stimulus prepared", role=self.role, port=self.port,
                                  command="launch")
            self._prepared = None
            t = self.clock.now()
            start = [self._zone_c(i, t) for i in range(ZONES)]
            self._seg = _Segment(t, self._now_c(t), p["target_c"], p["rise_c_per_s"], p["return_c_per_s"],
                                 t + p["duration_s"])
            for i in range(ZONES):
                rise, gain = p["rise_c_per_s"], 1.0
                if self.fault_zone == i + 1:
                    rise, gain = rise * self.fault_rate_factor, self.fault_gain
                self._zone_seg[i] = _Segment(t, start[i], self.neutral_c + gain * (p["target_c"] - self.neutral_c),
                                             rise, p["return_c_per_s"], t + p["duration_s"])
            self._launch_t = t
            self._trace_seed += 1
            self.commands.append((t, "launch", {"target_c": p["target_c"], "duration_s": p["duration_s"]}))

    def abort(self) -> None:
        """Return to neutral at once (fast return from the current temperature)."""
        with self._lock:
            t = self.clock.now()
            cur = self._now_c(t)
            # a real TCS returns at its maximum speed on abort; model 300 °C/s (back within ~50 ms)
            self._seg = _Segment(t, cur, cur, 300.0, 300.0, t)
            for i in range(ZONES):
                z = self._zone_c(i, t)
                self._zone_seg[i] = _Segment(t, z, z, 300.0, 300.0, t)
            self._prepared = None
            self.commands.append((t, "abort", {}))

    def temperature_at(self, t: float) -> float:
        """Return the noiseless mean temperature the zones deliver at session time `t`."""
        return sum(self._zone_c(i, t) for i in range(ZONES)) / ZONES

    def read(self) -> ThermodeReading:
        """Return the current temperatures with a little sensor noise."""
        t = self.clock.now()
        noise = self.rng.normal(0, self.noise_c, size=ZONES)  # the same draws as one call per zone
        zones = tuple(np.round([self._zone_c(i, t) for i in range(ZONES)] + noise, 1).tolist())
        return ThermodeReading(t, self.neutral_c, zones)

    def trace(self) -> list[ThermodeReading]:
        """Return 100 Hz samples (0.1 °C resolution, sensor noise) from the last launch until now."""
        with self._lock:
            t0, seg = self._launch_t, self._seg
        if t0 is None or seg is None:
            return []
        end = min(self.clock.now(), seg.t_end + TRACE_AFTER_S)
        n = int(max(0.0, end - t0) * TRACE_HZ) + 1
        rng = np.random.default_rng([self._trace_seed, 7])  # the same samples on every call
        noise = rng.normal(0, self.noise_c, size=(n, ZONES))
        ts = t0 + np.arange(n) / TRACE_HZ
        zones = np.empty((n, ZONES))
        for i in range(ZONES):
            zs = self._zone_seg[i] or self._seg
            zones[:, i] = zs.at_many(ts, self.neutral_c) if zs else self.neutral_c
        zones = np.round(zones + noise, 1)
        return [ThermodeReading(float(t), self.neutral_c, tuple(z)) for t, z in zip(ts.tolist(), zones.tolist(),
                                                                                     strict=True)]

    def close(self) -> None:
        """Abort any stimulus."""
        self.abort()
        self.connected = False


class SimBath(Bath):
    """A cold-water bath that drifts slowly with sensor noise; can be forced out of range."""

    model = "sim"
    port = SIM_PORT
    blocking_io = False

    def __init__(self, clock: Clock, *, temperature_c: float = 2.5, drift_c_per_min: float = 0.05,
                 noise_c: float = 0.03, setpoint_c: float | None = 2.5, wander_c: float = 0.15,
                 wander_period_s: float = 300.0, rng: np.random.Generator | None = None) -> None:
        self.clock = clock
        self.t0_c = temperature_c
        self.drift = drift_c_per_min
        self.noise_c = noise_c
        self._setpoint = setpoint_c
        self.rng = rng or np.random.default_rng(1)
        self.wander_c, self.wander_period_s = wander_c, wander_period_s
        self.offset_c = 0.0  # tests: force out of range

    def connect(self) -> DeviceInfo:
        """Report identity."""
        return DeviceInfo("bath", self.model, self.port, "SIM-BATH", "sim-1.0")

    def read_c(self) -> float:
        """Return the bath temperature now."""
        t = self.clock.now()
        wander = self.wander_c * math.sin(2 * math.pi * t / self.wander_period_s)  # thermostat cycling
        return float(self.t0_c + self.drift * t / 60.0 + wander + self.offset_c + self.rng.normal(0, self.noise_c))

    def setpoint_c(self) -> float | None:
        """Return the set point."""
        return self._setpoint

    def close(self) -> None:
        """Nothing to release."""


class SimAlgometer(Algometer):
    """A pressure algometer; the simulated examiner presses with `press()` (force ramps, then releases)."""

    model = "sim"
    port = SIM_PORT
    blocking_io = False

    def __init__(self, clock: Clock, *, probe_area_cm2: float = 1.0, noise_kpa: float = 1.0,
                 rng: np.random.Generator | None = None) -> None:
        self.clock = clock
        self.probe_area_cm2 = probe_area_cm2
        self.noise_kpa = noise_kpa
        self.rng = rng or np.random.default_rng(2)
        self._press: tuple[float, float, float, float] | None = None  # t0, rate, stop_kpa, hold_s
        self._clear_t = 0.0
        self._zero_kpa = 0.0

    def connect(self) -> DeviceInfo:
        """Report identity."""
        return DeviceInfo("algometer", self.model, self.port, "SIM-ALGO", "sim-1.0")

    def press(self, rate_kpa_per_s: float, stop_kpa: float, hold_s: float = 0.0) -> float:
        """Start a press: ramp at `rate_kpa_per_s` to `stop_kpa`, hold `hold_s`, release. Return seconds it takes."""
        self._press = (self.clock.now(), rate_kpa_per_s, stop_kpa, hold_s)
        return stop_kpa / rate_kpa_per_s + hold_s

    def _pressure(self, t: float) -> float:
        if not self._press:
            return 0.0
        t0, rate, stop, hold = self._press
        if t < t0:
            return 0.0
        t_peak = t0 + stop / rate
        if t <= t_peak:
            return rate * (t - t0)
        return stop if t <= t_peak + hold else 0.0

    def read_kpa(self) -> float:
        """Return the current pressure."""
        return max(0.0, self._pressure(self.clock.now()) + float(self.rng.normal(0, self.noise_kpa)) - self._zero_kpa)

    def peak_kpa(self) -> float:
        """Return the peak pressure since the last clear."""
        if not self._press:
            return 0.0
        t0, rate, stop, _ = self._press
        if t0 < self._clear_t:
            return 0.0
        t = self.clock.now()
        return float(min(stop, rate * max(0.0, t - t0)))

    def clear_peak(self) -> None:
        """Reset the peak."""
        self._clear_t = self.clock.now()
        self._press = None

    def zero(self) -> None:
        """Tare."""
        self._zero_kpa = 0.0

    def close(self) -> None:
        """Nothing to release."""
