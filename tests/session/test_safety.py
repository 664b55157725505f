"""Safety in depth: the thermode cap at three independent layers, emergency stop from every state, the cold
pressor's limits and bath checks, and device-timed heat that ends even when the runner is killed.

Simulated visits run on a virtual clock (tests.helpers.simulate). Tests marked "emulated" run the real
drivers over ptys against the device emulators on a real clock compressed by `speed`; they use a short
protocol (no acclimatization, short rests, 20 s immersion, no questionnaires) so a visit takes seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cpm_session.clock import RealClock
from cpm_session.config.protocol import load_protocol
from cpm_session.config.station import RoleConfig, load_station
from cpm_session.devices.factory import effective_cap
from cpm_session.devices.real import open_real
from cpm_session.devices.tcs2 import TcsThermode
from cpm_session.devices.wire import tcs2 as wire
from cpm_session.errors import DeviceError, DeviceTimeout, ProtocolFileError, SafetyLimitError, StationFileError
from cpm_session.sim.devices import SimThermode
from cpm_session.sim.emulators import EmulatedStation, start_emulated_station
from cpm_session.sim.participant import ParticipantTruth
from cpm_session.sim.world import VisitOutcome, run_visit
from cpm_session.ui.base import RatingPrompt, RatingResult
from cpm_session.ui.headless import HeadlessUI
from tests.conftest import ROOT, SIM_STATION, THERMAL, toml_dumps
from tests.helpers import events, of, simulate, wait_for

NEUTRAL_C = 32.0
SHORT = {"acclimatization": {"duration_s": 0.0, "min_s": 0.0},
         "calibration": {"rest_s": 2.0, "verify_n": 1},
         "test_stimulus": {"interval_s": 12.0},
         "cold_pressor": {"duration_s": 20.0, "max_s": 20.0, "rating_at_s": 10.0, "bath_stable_s": 2.0},
         "questionnaires": {"names": []}}
"""A visit of ~280 session seconds with every phase: ~3 wall s at speed 100."""



def write_short_protocol(folder: Path, **changes: dict[str, Any]) -> Path:
    """Write the short protocol (plus `changes`, table -> {key: value}) to `folder/short.toml`."""
    data = tomllib.loads(THERMAL.read_text(encoding="utf-8"))
    for table, kv in {**SHORT, **changes}.items():
        data[table].update(kv)
    path = folder / "short.toml"
    path.write_text(toml_dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def emulated(tmp_path: Path) -> Iterator[Callable[..., tuple[Path, EmulatedStation]]]:
    """Return a starter of emulated stations (optionally with a station `max_thermode_c`); stop them after."""
    started: list[EmulatedStation] = []

    def start(speed: float, max_thermode_c: float | None = None, **kw: Any) -> tuple[Path, EmulatedStation]:
        path, st = start_emulated_station(tmp_path, speed=speed, **kw)
        started.append(st)
        if max_thermode_c is not None:
            text = path.read_text(encoding="utf-8")
            path.write_text(text.replace("emulated = true", f"emulated = true\nmax_thermode_c = {max_thermode_c}"),
                            encoding="utf-8")
        return path, st

    yield start
    for st in started:
        st.stop()


class HookedUI(HeadlessUI):
    """A headless screen that calls `on_show[screen]()` when that screen is first shown, `on_rate(prompt)` per rating."""

    def __init__(self, clock: Any) -> None:
        super().__init__(clock)
        self.on_show: dict[str, Callable[[], None]] = {}
        self.on_rate: Callable[[RatingPrompt], None] | None = None

    def show(self, screen: str, text: str, countdown_to: float | None = None) -> None:
        super().show(screen, text, countdown_to)
        hook = self.on_show.pop(screen, None)
        if hook is not None:
            hook()

    def rate(self, prompt: RatingPrompt) -> RatingResult:
        if self.on_rate is not None:
            self.on_rate(prompt)
        return super().rate(prompt)


def run_emulated(tmp_path: Path, station_path: Path, speed: float, ui_hooks: Callable[[HookedUI], None] | None = None,
                 truth: ParticipantTruth | None = None, **protocol_changes: dict[str, Any]) -> tuple[VisitOutcome, HookedUI]:
    """Run a short simulated visit through the real drivers on `RealClock(speed)`."""
    clock = RealClock(speed)
    ui = HookedUI(clock)
    if ui_hooks:
        ui_hooks(ui)
    prot = load_protocol(write_short_protocol(tmp_path, **protocol_changes))
    out = run_visit(prot, load_station(station_path), data_dir=tmp_path / "data", participant="P001",
                    visit="baseline", ui=ui, clock=clock, speed=speed, truth=truth)
    return out, ui


def _c_values(received: bytes) -> list[float]:
    """Return every C (target) value the device received, °C."""
    cmds, _ = wire.split_commands(received)
    return [int(c[2:]) / 10 for c in cmds if c[:1] == b"C"]


# ---- the cap, layer by layer ---------------------------------------------------------------------

def test_layer1_protocol_and_station_caps_the_lower_wins(tmp_path: Path, write_protocol: Any) -> None:
    with pytest.raises(ProtocolFileError, match=r"safety\.thermode_cap_c"):
        load_protocol(write_protocol({"safety": {"thermode_cap_c": 50.01}}))
    station = tmp_path / "st46.toml"
    station.write_text(SIM_STATION.read_text(encoding="utf-8").replace('name = "simulation"',
                                                                         'name = "simulation"\nmax_thermode_c = 46.0'))
    st = load_station(station)
    assert effective_cap(49.0, st) == 46.0 and effective_cap(45.0, st) == 45.0
    assert effective_cap(50.5, load_station(SIM_STATION)) == 50.0  # a station never allows more than 50 °C
    bad = tmp_path / "st51.toml"
    bad.write_text(station.read_text(encoding="utf-8").replace("46.0", "51.0"))
    with pytest.raises(StationFileError):
        load_station(bad)
    # a participant whose Pain-60 is above the station cap: nothing is ever asked above 46 °C, and the cap
    # is never taken as the TS: the visit stops without a verified temperature
    out, _, devs = simulate(tmp_path, station=station, truth=ParticipantTruth(pain60_c=48.5))
    assert out.status == "paused_fault" and out.results["pain60_c"] is None
    targets = [e["target_c"] for e in of(events(out.session_dir), "stimulus")]
    assert max(targets) <= 46.0
    header = of(events(out.session_dir), "session_start")[0]
    assert header["thermode_cap_c"] == 46.0
    th = devs.thermode
    assert isinstance(th, SimThermode) and th.cap_c == 46.0
    with pytest.raises(SafetyLimitError):
        th.stimulate(46.1, 10.0, 10.0, 5.0)


def test_layer2_driver_refuses_above_the_effective_cap_and_sends_nothing(emulated: Any) -> None:
    _, st = emulated(10.0)
    emu = st.thermode
    dev = open_real("thermode", RoleConfig(model="tcs2", port=emu.port), cap_c=46.0, neutral_c=NEUTRAL_C,
                    clock=RealClock(10.0))
    assert isinstance(dev, TcsThermode)
    try:
        dev.connect()
        assert b"Om460" in emu.received_bytes() and emu.max_c == 46.0
        emu.clear_received()
        with pytest.raises(SafetyLimitError, match="46"):
            dev.stimulate(46.1, 10.0, 10.0, 5.0)
        time.sleep(0.05)
        assert emu.received_bytes() == b"" and not emu.stimuli
        dev.stimulate(46.0, 10.0, 10.0, 5.0)  # at the cap is allowed
        assert wait_for(lambda: emu.received_bytes().endswith(b"L"))
        assert _c_values(emu.received_bytes()) == [46.0]
    finally:
        dev.close()


def test_layer3_device_om_holds_when_a_host_bypasses_the_driver(emulated: Any) -> None:
    _, st = emulated(10.0)
    emu = st.thermode
    dev = open_real("thermode", RoleConfig(model="tcs2", port=emu.port), cap_c=46.0, neutral_c=NEUTRAL_C,
                    clock=RealClock(10.0))
    dev.connect()  # sets Om = 46.0 and reads it back
    dev.close()
    fd = os.open(emu.port, os.O_RDWR | os.O_NOCTTY)
    try:
        # a buggy or hostile host: raw 50.0 °C at 100 °C/s for 5 s, no driver in between (paced as the
        # manual asks, so the strict emulator reads every character)
        for ch in b"N320S11111C0500V01000R01000D005000L":
            os.write(fd, bytes([ch]))
            time.sleep(0.002)
        assert wait_for(lambda: bool(emu.stimuli))
        peak = 0.0
        while emu.stimulating:
            peak = max(peak, *emu.temps())
            time.sleep(0.005)
        assert emu.stimuli[-1].targets_c == (46.0,) * 5
        assert 45.9 <= max(peak, emu.stimuli[-1].peak_c) <= 46.0
    finally:
        os.close(fd)


def test_station_cap_reaches_the_device_through_a_whole_visit(tmp_path: Path, emulated: Any) -> None:
    speed = 100.0
    path, st = emulated(speed, max_thermode_c=46.0)
    # a participant whose Pain-60 is above the station's 46 °C: stepped up to 46 °C at most, never beyond,
    # and the cap is never taken as the TS (the visit stops without a verified temperature)
    out, _ = run_emulated(tmp_path, path, speed, truth=ParticipantTruth(pain60_c=48.0))
    assert out.status == "paused_fault", out.message
    rx = st.thermode.received_bytes()
    assert b"Om460" in rx and max(_c_values(rx)) <= 46.0
    assert max(s.peak_c for s in st.thermode.stimuli) <= 46.0


# ---- emergency stop from every state -------------------------------------------------------------

@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Return the events of an undisturbed simulated visit (seed 1): when each state happens."""
    out, _, _ = simulate(tmp_path_factory.mktemp("ref"), seed=1)
    return events(out.session_dir)


def _when(evs: list[dict[str, Any]], state: str) -> tuple[float, list[tuple[str, float]]]:
    """Return (time of Escape, other keys before it) that catch the visit in `state`."""
    stim = of(evs, "stimulus")
    cal = [s for s in stim if s["phase"] == "calibration"]
    ts = [s for s in stim if s["phase"] == "ts_pre"]
    prompt = [e for e in of(evs, "rating_prompt") if e["phase"] == "calibration"][0]
    if state == "calibration_ramp":
        return cal[2]["onset_t"] + 0.3, []  # 3 °C above neutral, rising at 10 °C/s
    if state == "calibration_plateau":
        return cal[-1]["onset_t"] + cal[-1]["duration_s"] - 0.5, []
    if state == "rating":
        return prompt["t"] + 0.5, []
    if state == "cue":
        return ts[1]["planned_onset_t"] - 1.0, []
    if state == "pause_during_stimulus":
        return ts[0]["onset_t"] + 8.0, [("p", ts[0]["onset_t"] + 1.0)]
    if state == "pause_between_stimuli":
        return ts[0]["planned_onset_t"] + 20.0, [("p", ts[0]["planned_onset_t"] + 15.0)]
    if state == "bath_check":
        return of(evs, "bath_check")[0]["t"] - 3.0, []
    if state == "staff_step":
        return of(evs, "staff_step")[0]["t"] - 1.0, []
    raise ValueError(state)


STATES = ["calibration_ramp", "calibration_plateau", "rating", "cue", "pause_during_stimulus",
          "pause_between_stimuli", "bath_check", "staff_step"]


@pytest.mark.parametrize("state", STATES)
def test_escape_from_every_state_returns_to_neutral(tmp_path: Path, reference: list[dict[str, Any]], state: str) -> None:
    t_esc, keys = _when(reference, state)
    out, _, devs = simulate(tmp_path, seed=1, keys=[*keys, ("escape", t_esc)])
    th = devs.thermode
    assert isinstance(th, SimThermode)
    evs = events(out.session_dir)
    stop = of(evs, "emergency_stop")[0]
    assert out.status == "aborted" and of(evs, "session_end")[0]["status"] == "aborted"
    assert stop["t_key"] == pytest.approx(t_esc, abs=0.1) and stop["t_abort"] - stop["t_key"] <= 0.1
    assert th.temperature_at(stop["t_abort"] + 0.1) == pytest.approx(NEUTRAL_C, abs=0.05)
    assert not [c for c in th.commands if c[1] == "launch" and c[0] > stop["t_abort"]]  # nothing heats after
    assert "cpm-session resume" in out.message
    if state.startswith("calibration_"):
        assert th.temperature_at(t_esc - 0.01) > NEUTRAL_C + 2  # it really was heating
    if state.startswith("pause"):
        assert of(evs, "pause") and not of(evs, "resume") and stop["phase"] in ("ts_pre", "calibration")
    if state == "pause_during_stimulus":
        assert of(evs, "pause")[0]["stimulus_aborted"] is True


def test_device_fault_during_heat_aborts_the_thermode(tmp_path: Path, reference: list[dict[str, Any]]) -> None:
    """The bath stops answering while the heat is on: the visit pauses on the fault and the heat stops at once."""
    stim = [s for s in of(reference, "stimulus") if s["phase"] == "calibration"][3]
    t_fault = stim["onset_t"] + 1.0
    out_holder: dict[str, Any] = {}

    def bath_dies(devs: Any, clock_now: Callable[[], float]) -> None:
        orig = devs.bath.read_c

        def read_c() -> float:
            if clock_now() >= t_fault:
                raise DeviceTimeout("no reply within 1.0 s", role="bath", port="sim", command="IN_PV_00")
            return float(orig())
        devs.bath.read_c = read_c
        out_holder["ok"] = True

    out, devs = _simulate_with(tmp_path, bath_dies)
    th = devs.thermode
    assert isinstance(th, SimThermode) and out_holder["ok"]
    evs = events(out.session_dir)
    fault = of(evs, "device_fault")[0]
    assert out.status == "paused_fault" and fault["role"] == "bath" and "no reply" in fault["message"]
    abort = next(c for c in th.commands if c[1] == "abort")
    assert t_fault <= abort[0] <= t_fault + 0.1 + 1e-6
    assert th.temperature_at(abort[0] - 1e-3) > NEUTRAL_C + 5
    assert th.temperature_at(abort[0] + 0.1) == pytest.approx(NEUTRAL_C, abs=0.05)
    assert "cpm-session resume" in out.message


def _simulate_with(tmp_path: Path, patch: Callable[[Any, Callable[[], float]], None]) -> tuple[VisitOutcome, Any]:
    """Run a simulated visit (seed 1) after `patch(devices, clock.now)`."""
    from cpm_session.clock import VirtualClock
    from cpm_session.sim.world import build_devices as open_devices

    prot, st = load_protocol(THERMAL), load_station(SIM_STATION)
    clock = VirtualClock()
    devs = open_devices(st, cap_c=effective_cap(prot.safety.thermode_cap_c, st), neutral_c=prot.safety.neutral_c,
                        clock=clock, seed=1)
    patch(devs, clock.now)
    out = run_visit(prot, st, data_dir=tmp_path, participant="P001", visit="baseline", ui=HeadlessUI(clock),
                    clock=clock, seed=1, devices=devs)
    return out, devs


def test_escape_during_a_hung_bath_still_stops_the_heat(tmp_path: Path, emulated: Any) -> None:
    """The bath goes silent during a heat stimulus and Escape is pressed: `A` reaches the thermode at once,
    well inside the bath's time-out, because the bath is read in a background thread (the engine's thread,
    which handles the keys, never waits on the bath's port)."""
    speed, timeout_s = 5.0, 1.0
    path, st = emulated(speed, timeout_s=timeout_s)
    marks: dict[str, float] = {}

    def hooks(ui: HookedUI) -> None:
        def heat_on() -> None:  # the first 'fixation' screen: a calibration stimulus has just launched
            time.sleep(1.0 / speed)  # let it heat for 1 session s
            st.bath.set_silent(True)
            marks["silent"] = time.perf_counter()
            ui.press("escape", ui.clock.now() + 0.2)
        ui.on_show["fixation"] = heat_on

    out, _ = run_emulated(tmp_path, path, speed, hooks)
    emu = st.thermode
    assert out.status in ("aborted", "paused_fault")
    t_a = emu.first_arrival(b"A", marks["silent"])
    # Escape is pressed 0.2 session s (0.04 wall s) after the bath fell silent: A must not wait for its time-out
    assert t_a is not None and t_a - marks["silent"] <= 0.04 + 0.1 < timeout_s
    assert emu.stimuli[0].aborted_t is not None and emu.stimuli[0].peak_c > NEUTRAL_C + 5
    assert wait_for(emu.at_neutral, timeout=2.0)


def test_escape_during_a_rating_sends_abort_past_a_command_in_flight(tmp_path: Path, emulated: Any) -> None:
    speed = 20.0
    path, st = emulated(speed)
    emu = st.thermode
    marks: dict[str, float] = {}
    blocker: list[threading.Thread] = []

    def hooks(ui: HookedUI) -> None:
        def arm(prompt: RatingPrompt) -> None:
            if "armed" in marks:
                return
            marks["armed"] = 1.0
            ui.press("escape", ui.clock.now() + 1.0)
            engine_key = ui.key_handler
            assert engine_key is not None
            dev = engine_key.__self__.devices.thermode  # type: ignore[attr-defined]

            def key(k: str) -> None:
                if k == "escape":
                    emu.ignore_next(1)  # the device will not answer: the query holds the request lock
                    th = threading.Thread(target=_blocked_query, args=(dev,))
                    th.start()
                    blocker.append(th)
                    assert wait_for(lambda: not dev.transport._txn.acquire(blocking=False), timeout=1.0)
                    marks["t_key"] = time.perf_counter()
                engine_key(k)
            ui.key_handler = key
        ui.on_rate = arm

    out, _ = run_emulated(tmp_path, path, speed, hooks)
    for th in blocker:
        th.join(3.0)
    assert out.status == "aborted" and blocker and not blocker[0].is_alive()
    t_a = emu.first_arrival(b"A", marks["t_key"])
    assert t_a is not None and t_a - marks["t_key"] < 0.1
    evs = events(out.session_dir)
    assert of(evs, "emergency_stop")[0]["phase"] == "calibration" and of(evs, "rating_prompt")


def _blocked_query(dev: Any) -> None:
    try:
        dev.transport.query(b"Q", lambda m: None, command="Q", timeout_s=1.0)
    except DeviceError:
        pass


# ---- the cold pressor ----------------------------------------------------------------------------

def test_cold_pressor_longer_than_its_maximum_is_refused(write_protocol: Any) -> None:
    with pytest.raises(ProtocolFileError, match="max_s"):
        load_protocol(write_protocol({"cold_pressor": {"duration_s": 61.0, "max_s": 60.0}}))


def test_pause_cannot_stretch_the_immersion(tmp_path: Path, reference: list[dict[str, Any]]) -> None:
    t_in = of(reference, "cold_pressor_start")[0]["t"]
    out, ui, _ = simulate(tmp_path, seed=1, keys=[("p", t_in + 20.0), ("p", t_in + 40.0)])
    evs = events(out.session_dir)
    assert [e["key"] for e in of(evs, "key_ignored")] == ["p", "p"] and not of(evs, "pause")
    end = of(evs, "cold_pressor_end")[0]
    assert end["duration_s"] <= 60.0 + 1e-6
    told_out = next(t for t, screen, _ in ui.shown if screen == "cold_out" and t > t_in)
    assert told_out - t_in <= 60.0 + 1e-6


def test_early_withdrawal_is_honoured_at_once(tmp_path: Path, reference: list[dict[str, Any]]) -> None:
    t_in = of(reference, "cold_pressor_start")[0]["t"]
    t_w = t_in + 7.3
    out, ui, _ = simulate(tmp_path, seed=1, keys=[("w", t_w)])
    evs = events(out.session_dir)
    w = of(evs, "withdrawal")[0]
    assert w["t"] == pytest.approx(t_w, abs=0.01) and w["t_in_water_s"] == pytest.approx(7.3, abs=0.01)
    end = of(evs, "cold_pressor_end")[0]
    assert end["withdrawn"] and end["duration_s"] == pytest.approx(7.3, abs=0.01)
    prompt = [e for e in of(evs, "rating_prompt") if e["phase"] == "cs"][0]
    assert prompt["t"] - t_w <= 0.1  # the hand rating is asked at once, not at 30 s
    assert of(evs, "rating")[-1]["phase"] != "cs" and out.results["cs_rating_flag"] == "early_withdrawal"
    assert not [t for t, screen, _ in ui.shown if screen == "cold_keep" and t > t_w]


def test_emulated_bath_out_of_range_blocks_the_immersion(tmp_path: Path, emulated: Any) -> None:
    speed = 100.0
    path, st = emulated(speed)

    def hooks(ui: HookedUI) -> None:
        # out of range from the first TS_pre rating on: > 250 ms wall before the bath check, so the check
        # reads the bath afresh (the driver reuses a reading younger than the 250 ms command spacing)
        ui.on_rate = lambda prompt: st.bath.force_temperature(8.0) if prompt.phase == "ts_pre" else None

    out, _ = run_emulated(tmp_path, path, speed, hooks)
    evs = events(out.session_dir)
    assert out.status == "paused_fault" and "bath" in out.message and "resume" in out.message
    assert not of(evs, "cold_pressor_start") and not [e for e in of(evs, "staff_step") if "water" in e["step"]]
    checks = of(evs, "bath_check")
    assert len(checks) > 10 and all(not c["ok"] and c["min_c"] > 7.0 for c in checks)
    assert wait_for(st.thermode.at_neutral, timeout=2.0)


def test_emulated_bath_drifting_out_during_the_immersion_warns(tmp_path: Path, emulated: Any) -> None:
    speed = 25.0  # a 20 s immersion is 0.8 wall s: room for the bath's 250 ms command spacing under load
    path, st = emulated(speed)

    def hooks(ui: HookedUI) -> None:
        ui.on_show["cold_keep"] = lambda: st.bath.force_temperature(6.0)

    out, _ = run_emulated(tmp_path, path, speed, hooks)
    evs = events(out.session_dir)
    start = of(evs, "cold_pressor_start")[0]
    warn = of(evs, "bath_warning")
    assert out.status == "completed" and warn and warn[0]["bath_c"] > 4.0
    end = of(evs, "cold_pressor_end")[0]
    assert start["t"] <= warn[0]["t"] <= start["t"] + end["duration_s"]  # while the hand is in the water
    assert out.results["bath_max_c"] > 4.0


# ---- device-timed heat: the runner dies, the heat still ends ------------------------------------

def test_killed_runner_mid_stimulus_the_thermode_returns_to_neutral_on_its_own(tmp_path: Path, emulated: Any) -> None:
    speed = 10.0
    path, st = emulated(speed)
    emu = st.thermode
    proto = write_short_protocol(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "cpm_session", "run", "--participant", "P001", "--visit", "baseline",
                             "--protocol", str(proto), "--station", str(path), "--simulate", "--ui", "headless",
                             "--speed", str(speed), "--data", str(tmp_path / "data"), "--no-status"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if not wait_for(lambda: emu.stimulating, timeout=30.0):
            proc.kill()
            pytest.fail(f"no stimulus started; runner said: {proc.communicate(timeout=5)[1][-2000:]!r}")
        time.sleep(0.1)  # 1 session s into the stimulus: ramping up
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        killed = emu.now()
    finally:
        if proc.poll() is None:
            proc.kill()
    stim = emu.stimuli[-1]
    assert max(emu.temps()) > NEUTRAL_C + 1 and stim.aborted_t is None
    back_by = stim.end_t + (max(stim.targets_c) - NEUTRAL_C) / 10.0  # duration, then return at 10 °C/s
    assert wait_for(emu.at_neutral, timeout=(back_by - killed) / speed + 0.5)
    assert emu.now() <= back_by + 0.5 * speed  # back within the stimulus' own duration and return
    assert not [c for t, c in emu.commands if c == b"A" and t >= stim.launch_t]  # on its own, not by abort
