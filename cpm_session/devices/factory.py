"""Build the devices of a station: simulators for `model = "sim"`, real drivers otherwise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cpm_session import limits
from cpm_session.clock import Clock
from cpm_session.config.station import RoleConfig, Station
from cpm_session.devices.base import Algometer, Bath, Thermode


@dataclass
class Devices:
    """The three roles of a station."""

    thermode: Thermode
    bath: Bath
    algometer: Algometer

    def all(self) -> list[Thermode | Bath | Algometer]:
        """Return the devices, thermode first."""
        return [self.thermode, self.bath, self.algometer]

    def close(self) -> None:
        """Close every device (thermode first, so heat stops first). Never raises."""
        for d in self.all():
            try:
                d.close()
            except Exception:  # noqa: BLE001 - closing must go on for the others
                pass


def _extra(cfg: RoleConfig, key: str, default: float) -> float:
    extra = cfg.model_extra or {}
    return float(extra.get(key, default))


def effective_cap(protocol_cap_c: float, station: Station, neutral_c: float | None = None) -> float:
    """Return the cap in force for this station (see limits.effective_cap)."""
    return limits.effective_cap(protocol_cap_c, station.station.max_thermode_c, neutral_c)


def open_devices(station: Station, *, cap_c: float, neutral_c: float, clock: Clock, seed: int = 0) -> Devices:
    """Create (not yet connect) the station's devices."""
    rng = np.random.default_rng(seed + 1000)

    def make(role: str, cfg: RoleConfig):  # type: ignore[no-untyped-def]
        if cfg.model == "sim":
            from cpm_session.sim.devices import SimAlgometer, SimBath, SimThermode  # only when a station asks

            if role == "thermode":
                return SimThermode(clock, cap_c, neutral_c, rng=rng)
            if role == "bath":
                return SimBath(clock, temperature_c=_extra(cfg, "temperature_c", 2.5),
                               drift_c_per_min=_extra(cfg, "drift_c_per_min", 0.01),
                               noise_c=_extra(cfg, "noise_c", 0.03), rng=rng)
            return SimAlgometer(clock, probe_area_cm2=_extra(cfg, "probe_area_cm2", 1.0), rng=rng)
        from cpm_session.devices.real import open_real  # real drivers only when a station asks for them

        return open_real(role, cfg, cap_c=cap_c, neutral_c=neutral_c, clock=clock)

    opened: list[object] = []
    try:
        th = make("thermode", station.thermode)
        opened.append(th)
        ba = make("bath", station.bath)
        opened.append(ba)
        al = make("algometer", station.algometer)
    except BaseException:
        for d in opened:
            try:
                d.close()  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001
                pass
        raise
    return Devices(th, ba, al)
