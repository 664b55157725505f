"""TTL on launch (station [sync] ttl_on_launch): the TCS II gets `T` code/duration and `Oo` right after `L`."""

from __future__ import annotations

import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from cpm_session.clock import RealClock, VirtualClock
from cpm_session.config.protocol import load_protocol
from cpm_session.config.station import RoleConfig, parse_station
from cpm_session.devices.real import open_real
from cpm_session.errors import DeviceError
from cpm_session.sim.devices import SimThermode
from cpm_session.sim.emulators import TcsEmulator
from cpm_session.sim.world import build_devices, run_visit
from tests.conftest import SIM_STATION, THERMAL
from tests.helpers import events, of, wait_for

CAP_C, NEUTRAL_C = 49.0, 32.0


def ttl_station(**sync: Any):  # type: ignore[no-untyped-def]
    data = tomllib.loads(SIM_STATION.read_text(encoding="utf-8"))
    data["sync"] = sync
    return parse_station(data, "ttl-station.toml")


@pytest.fixture
def tcs():
    emu = TcsEmulator(speed=10.0).start()
    dev = open_real("thermode", RoleConfig(model="tcs2", port=emu.port), cap_c=CAP_C, neutral_c=NEUTRAL_C,
                    clock=RealClock(10.0))
    yield emu, dev
    dev.close()
    emu.stop()


def test_trigger_bytes_follow_the_launch_over_a_pty(tcs) -> None:
    emu, dev = tcs
    dev.connect()
    emu.clear_received()
    dev.prepare(45.0, 10.0, 10.0, 2.0)
    dev.launch()
    dev.output_trigger(7, 50)
    assert wait_for(lambda: emu.received_bytes().endswith(b"Oo"))
    got = emu.received_bytes()
    assert got.endswith(b"L" + b"T007050Oo"), got
    assert [c for _, c in emu.commands[-3:]] == [b"L", b"T007050", b"Oo"]


def test_trigger_out_of_range_sends_nothing(tcs) -> None:
    emu, dev = tcs
    dev.connect()
    emu.clear_received()
    for code, ms in ((0, 10), (256, 10), (255, 5), (255, 1000)):
        with pytest.raises(DeviceError, match="trigger code"):
            dev.output_trigger(code, ms)
    time.sleep(0.05)
    assert emu.received_bytes() == b""


class TriggerThermode(SimThermode):
    """A simulated thermode with a trigger output that records when it fired."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.triggers: list[tuple[float, int, int]] = []
        self.launches: list[float] = []

    def launch(self) -> None:
        super().launch()
        self.launches.append(self.clock.now())

    def output_trigger(self, code: int = 255, duration_ms: int = 10) -> None:
        self.triggers.append((self.clock.now(), code, duration_ms))


def test_session_pulses_the_trigger_at_every_launch(tmp_path: Path) -> None:
    prot = load_protocol(THERMAL)
    st = ttl_station(ttl_on_launch=True, ttl_code=9, ttl_duration_ms=20)
    clock = VirtualClock()
    devs = build_devices(st, cap_c=CAP_C, neutral_c=NEUTRAL_C, clock=clock, seed=0)
    th = TriggerThermode(clock, CAP_C, NEUTRAL_C)
    devs.thermode = th
    o = run_visit(prot, st, data_dir=tmp_path, participant="T001", visit="baseline", clock=clock, devices=devs)
    assert o.status == "completed"
    stims = [e for e in of(events(o.session_dir), "stimulus") if e["modality"] == "thermal"]
    assert stims and all(e["ttl"] is True and e["ttl_code"] == 9 for e in stims)
    assert [t for t, _, _ in th.triggers] == th.launches
    assert {(c, ms) for _, c, ms in th.triggers} == {(9, 20)}


def test_thermode_without_trigger_output_is_logged_not_fatal(tmp_path: Path) -> None:
    o = run_visit(load_protocol(THERMAL), ttl_station(ttl_on_launch=True), data_dir=tmp_path, participant="T002",
                  visit="baseline", clock=VirtualClock())
    assert o.status == "completed"
    stims = of(events(o.session_dir), "stimulus")
    assert stims and all(e["ttl"] is False and "no trigger output" in e["ttl_problem"] for e in stims)
