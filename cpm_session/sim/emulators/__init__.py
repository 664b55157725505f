"""Device emulators that speak the real serial protocols on pseudo-terminals.

Start one from the command line (`cpm-session emulate thermode|bath|algometer`) or a whole station
in-process for tests::

    path, station = start_emulated_station(tmp_path, speed=10.0)
    try:
        ...  # load_station(path); the engine runs against station.thermode / .bath / .algometer
    finally:
        station.stop()

Emulators are test and demonstration tools: real-hardware code never imports this package.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cpm_session.sim.emulators.algometer import AlgometerEmulator
from cpm_session.sim.emulators.base import PtyEmulator
from cpm_session.sim.emulators.bath import BathEmulator
from cpm_session.sim.emulators.tcs2 import TcsEmulator

__all__ = ["AlgometerEmulator", "BathEmulator", "EmulatedStation", "PtyEmulator", "TcsEmulator",
           "role_snippet", "start_emulated_station"]

STATION_FILE = "emulated-station.toml"


def role_snippet(role: str, emulator: PtyEmulator, *, timeout_s: float = 1.0) -> str:
    """Return the station-file table for `role` pointing at `emulator`'s pty."""
    lines = [f"[{role}]"]
    if isinstance(emulator, TcsEmulator):
        lines += ['model = "tcs2"']
    elif isinstance(emulator, BathEmulator):
        lines += [f'model = "{emulator.model}"']
        if emulator.model == "julabo":
            lines += ['variant = "modern"', 'terminator = "cr"']
    elif isinstance(emulator, AlgometerEmulator):
        lines += [f'model = "{emulator.model}"', f"probe_area_cm2 = {emulator.probe_area_cm2}"]
    lines += [f'port = "{emulator.port}"', f"timeout_s = {timeout_s}"]
    return "\n".join(lines) + "\n"


@dataclass
class EmulatedStation:
    """Three running emulators and the station file that points at them."""

    path: Path
    thermode: TcsEmulator
    bath: BathEmulator
    algometer: AlgometerEmulator

    def all(self) -> list[PtyEmulator]:
        """Return the three emulators."""
        return [self.thermode, self.bath, self.algometer]

    def stop(self) -> None:
        """Stop every emulator and close its pty."""
        for e in self.all():
            e.stop()

    def __enter__(self) -> EmulatedStation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_emulated_station(tmpdir: str | Path, speed: float = 1.0, *, bath_model: str = "julabo",
                           algometer_model: str = "mark10", bath_c: float = 2.5,
                           bath_drift_c_per_min: float = 0.0, bath_noise_c: float = 0.02,
                           auto_press: bool = True, probe_area_cm2: float = 1.0,
                           thermode_neutral_c: float = 30.0, timeout_s: float = 1.0,
                           name: str = "emulated", strict: bool = True,
                           thermode_options: dict[str, Any] | None = None) -> tuple[Path, EmulatedStation]:
    """Start a TCS II, a bath and an algometer emulator in background threads and write a station file.

    Returns (path of `<tmpdir>/emulated-station.toml` with `[station] emulated = true`, handles).
    Every emulator runs at `speed` (device time = wall × speed), like a host on `RealClock(speed)`.
    Call `handles.stop()` when done (or use it as a context manager). `strict` starts the TCS II
    emulator as a unit that follows the public manual (1 ms per character, public `P` layout, replies
    without terminator); `thermode_options` are further TcsEmulator options (p_mode, ignore_om, ...).
    """
    th = TcsEmulator(speed, neutral_c=thermode_neutral_c, strict=strict, **(thermode_options or {})).start()
    try:
        ba = BathEmulator(speed, model=bath_model, start_c=bath_c, drift_c_per_min=bath_drift_c_per_min,
                          noise_c=bath_noise_c).start()
        try:
            al = AlgometerEmulator(speed, model=algometer_model, probe_area_cm2=probe_area_cm2,
                                   auto_press=auto_press).start()
        except BaseException:
            ba.stop()
            raise
    except BaseException:
        th.stop()
        raise
    text = (f'# Written by cpm_session.sim.emulators.start_emulated_station (speed {speed:g}).\n'
            f'[station]\nname = "{name}"\nemulated = true\n\n'
            + role_snippet("thermode", th, timeout_s=timeout_s) + "\n"
            + role_snippet("bath", ba, timeout_s=timeout_s) + "\n"
            + role_snippet("algometer", al, timeout_s=timeout_s))
    path = Path(tmpdir) / STATION_FILE
    path.write_text(text, encoding="utf-8")
    return path, EmulatedStation(path, th, ba, al)
