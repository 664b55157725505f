"""Build the devices of a station: simulators for `model = "sim"`, real drivers otherwise."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cpm_session import limits
from cpm_session.clock import Clock
from cpm_session.config.station import RoleConfig, Station
from cpm_session.devices.base import Algometer, Bath, Thermode
from cpm_session.errors import StationFileError


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


def effective_cap(protocol_cap_c: float, station: Station, neutral_c: float | None = None) -> float:
    """Return the cap in force for this station (see limits.effective_cap)."""
    return limits.effective_cap(protocol_cap_c, station.station.max_thermode_c, neutral_c)


SimFactory = Callable[[str, RoleConfig], "Thermode | Bath | Algometer"]
"""Builds the simulated device of a role (given by the simulation, which the device layer never imports)."""


def open_devices(station: Station, *, cap_c: float, neutral_c: float, clock: Clock,
                 sim_factory: SimFactory | None = None, zones: str | None = None) -> Devices:
    """Create (not yet connect) the station's devices; `model = "sim"` roles come from `sim_factory`."""

    def make(role: str, cfg: RoleConfig) -> Thermode | Bath | Algometer:
        if cfg.model == "sim":
            if sim_factory is None:
                raise StationFileError(f"{station.path}: key '{role}.model': 'sim' needs a simulation "
                                       "(run with --simulate or --pilot), found a real visit")
            return sim_factory(role, cfg)
        from cpm_session.devices.real import open_real  # real drivers only when a station asks for them

        return open_real(role, cfg, cap_c=cap_c, neutral_c=neutral_c, clock=clock, zones=zones)  # type: ignore[return-value]

    opened: list[Thermode | Bath | Algometer] = []
    try:
        th = make("thermode", station.thermode)
        opened.append(th)
        ba = make("bath", station.bath)
        opened.append(ba)
        al = make("algometer", station.algometer)
    except BaseException:
        for d in opened:
            try:
                d.close()
            except Exception:  # noqa: BLE001
                pass
        raise
    assert isinstance(th, Thermode) and isinstance(ba, Bath) and isinstance(al, Algometer)
    return Devices(th, ba, al)
