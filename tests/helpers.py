"""Test helpers: run simulated visits and read their logs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cpm_session.clock import VirtualClock
from cpm_session.config.protocol import Protocol, load_protocol
from cpm_session.config.station import Station, load_station
from cpm_session.devices.factory import Devices
from cpm_session.sim.participant import ParticipantTruth
from cpm_session.sim.world import VisitOutcome, run_visit
from cpm_session.sim.world import build_devices as open_devices
from cpm_session.ui.headless import HeadlessUI
from tests.conftest import SIM_STATION, THERMAL


def events(session_dir: Path) -> list[dict[str, Any]]:
    """Return the session's events."""
    return [json.loads(line) for line in (session_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()]


def of(evs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """Return the events called `name`."""
    return [e for e in evs if e["event"] == name]


def simulate(tmp: Path, *, pid: str = "P001", visit: str = "baseline", seed: int = 0,
             truth: ParticipantTruth | None = None, protocol: Protocol | Path = THERMAL,
             station: Station | Path = SIM_STATION, keys: list[tuple[str, float]] | None = None,
             staff: str = "auto", override_reason: str = "", bath_offset_c: float = 0.0,
             bath_offset_at: float | None = None) -> tuple[VisitOutcome, HeadlessUI, Devices]:
    """Run one headless visit on a virtual clock with scripted staff keys; return outcome, UI and devices."""
    prot = protocol if isinstance(protocol, Protocol) else load_protocol(protocol)
    st = station if isinstance(station, Station) else load_station(station)
    clock = VirtualClock()
    ui = HeadlessUI(clock)
    for key, at in keys or []:
        ui.press(key, at)
    devs = open_devices(st, cap_c=min(prot.safety.thermode_cap_c, st.station.max_thermode_c),
                        neutral_c=prot.safety.neutral_c, clock=clock, seed=seed)
    if bath_offset_c:
        if bath_offset_at is None:
            devs.bath.offset_c = bath_offset_c  # type: ignore[attr-defined]
        else:
            orig = devs.bath.read_c

            def read_c() -> float:
                return orig() + (bath_offset_c if clock.now() >= bath_offset_at else 0.0)
            devs.bath.read_c = read_c  # type: ignore[method-assign]
    out = run_visit(prot, st, data_dir=tmp, participant=pid, visit=visit, ui=ui, clock=clock, seed=seed,
                    truth=truth, staff=staff, override_reason=override_reason, devices=devs)
    return out, ui, devs


def wait_for(pred: Callable[[], bool], timeout: float = 3.0, step: float = 0.002) -> bool:
    """Poll `pred` until it is true or `timeout` wall seconds pass; return its last value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()
