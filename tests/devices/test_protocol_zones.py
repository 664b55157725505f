"""The protocol's `thermode.zones` reaches the TCS II driver (a station's own `zones` wins)."""

from __future__ import annotations

from pathlib import Path

from cpm_session.clock import RealClock
from cpm_session.config.station import load_station
from cpm_session.sim.emulators import start_emulated_station
from cpm_session.sim.world import build_devices


def test_protocol_zones_reach_the_driver_and_the_station_setting_wins(tmp_path: Path) -> None:
    path, st = start_emulated_station(tmp_path)
    try:
        station = load_station(path)
        devs = build_devices(station, cap_c=45.0, neutral_c=32.0, clock=RealClock(), zones="10101")
        try:
            assert devs.thermode.zones == "10101"  # type: ignore[attr-defined]
        finally:
            devs.close()
        text = path.read_text(encoding="utf-8").replace("[thermode]", '[thermode]\nzones = "11100"', 1)
        own = tmp_path / "own.toml"
        own.write_text(text, encoding="utf-8")
        devs = build_devices(load_station(own), cap_c=45.0, neutral_c=32.0, clock=RealClock(), zones="10101")
        try:
            assert devs.thermode.zones == "11100"  # type: ignore[attr-defined]
        finally:
            devs.close()
    finally:
        st.stop()
