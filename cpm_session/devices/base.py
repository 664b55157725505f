"""The interfaces every thermode, bath and algometer implements, real or simulated.

Units are in the names: `_c` degrees Celsius, `_s` seconds, `_kpa` kilopascal. Limits are enforced
before anything is written to a device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from cpm_session.limits import ABSOLUTE_MAX_C, ABSOLUTE_MIN_C, check_cap, check_target

__all__ = ["ABSOLUTE_MAX_C", "ABSOLUTE_MIN_C", "check_cap"]


@dataclass(frozen=True)
class DeviceInfo:
    """What a device says about itself at connect."""

    role: str
    model: str
    port: str
    identity: str
    firmware: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ThermodeReading:
    """One temperature sample: neutral set-point and the five zone temperatures, at session time `t`."""

    t: float
    neutral_c: float
    zones_c: tuple[float, ...]

    @property
    def mean_c(self) -> float:
        """Return the mean of the zone temperatures."""
        return sum(self.zones_c) / len(self.zones_c)


class Device(ABC):
    """Common part of every device."""

    role: str = "?"
    model: str = "?"
    port: str = "?"
    blocking_io: bool = True
    """True when a read can block on a port (the session then reads it in a background thread)."""

    @abstractmethod
    def connect(self) -> DeviceInfo:
        """Open the session with the device, configure it and return its identity."""

    @abstractmethod
    def close(self) -> None:
        """Leave the device safe and release the port. Never raises."""


class Thermode(Device):
    """A contact heat thermode whose stimuli are timed by the device itself."""

    role = "thermode"

    def __init__(self, cap_c: float, neutral_c: float) -> None:
        check_cap(cap_c)
        self.cap_c = float(cap_c)
        self.neutral_c = float(neutral_c)

    def check_target(self, target_c: float) -> None:
        """Raise SafetyLimitError unless `target_c` is within [0, cap_c]."""
        check_target(target_c, self.cap_c, who=f"{self.role} on {self.port}")

    readback_warning: str = ""
    """Empty, or why the loaded parameters could not be read back (unknown or silent `P`); show it to staff."""

    @abstractmethod
    def prepare(self, target_c: float, rise_c_per_s: float, return_c_per_s: float, duration_s: float) -> None:
        """Load every stimulus parameter and verify it on the device where it can be read back; no heat.

        `duration_s` counts from launch (rise plus plateau); the device returns to neutral on its own.
        Raises SafetyLimitError (nothing sent) if `target_c` is above the cap or a value is out of range,
        DeviceError (naming what was sent and what came back) if the read-back disagrees twice.
        """

    def stimulus_details(self) -> dict[str, object]:
        """Return what the session should record about the stimulus just launched (e.g. the encoded target,
        a program code)."""
        return {}

    @abstractmethod
    def launch(self) -> None:
        """Start the prepared stimulus (the TCS II: one `L` byte). Raises DeviceError if nothing is prepared."""

    def stimulate(self, target_c: float, rise_c_per_s: float, return_c_per_s: float, duration_s: float) -> None:
        """Prepare the stimulus and launch it at once; return once the launch is sent."""
        self.prepare(target_c, rise_c_per_s, return_c_per_s, duration_s)
        self.launch()

    @abstractmethod
    def trace(self) -> list[ThermodeReading]:
        """Return the temperature samples (neutral + five zones, session time) since the last launch."""

    def available_targets_c(self) -> list[float] | None:
        """Return the only targets the device can deliver, or None when any target in 0.1 °C steps works."""
        return None

    @abstractmethod
    def abort(self) -> None:
        """Return to neutral at once, even while another command is in flight."""

    @abstractmethod
    def read(self) -> ThermodeReading:
        """Return the latest temperature reading."""

    def error_status(self) -> str:
        """Return the device's error status text ('' when fine)."""
        return ""



class Bath(Device):
    """A cold-water bath (circulator or plain thermometer)."""

    role = "bath"

    @abstractmethod
    def read_c(self) -> float:
        """Return the actual bath temperature."""

    def setpoint_c(self) -> float | None:
        """Return the set point, or None for a read-only thermometer."""
        return None


class Algometer(Device):
    """A digital pressure algometer; forces are converted to kPa with the probe area."""

    role = "algometer"

    @abstractmethod
    def read_kpa(self) -> float:
        """Return the current pressure."""

    @abstractmethod
    def peak_kpa(self) -> float:
        """Return the peak pressure since the last clear."""

    @abstractmethod
    def clear_peak(self) -> None:
        """Reset the peak."""

    @abstractmethod
    def zero(self) -> None:
        """Tare the gauge."""

