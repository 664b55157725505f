"""The simulated world around a session: simulated devices, a simulated participant, a simulated staff.

The session never knows it is simulated. The world builds the simulated devices of a station, attaches
the simulated participant to the participant screen (it answers prompts there), and follows the visit as
an observer: it tells the participant what was delivered and whether the hand is conditioned, presses
the staff keys a staff member would press (space for staff steps, w for an early withdrawal, p to end a
pause nobody else will end) and works the simulated algometer as an examiner would.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cpm_session.clock import Clock, VirtualClock
from cpm_session.config.protocol import Protocol, load_protocol
from cpm_session.config.station import RoleConfig, Station, load_station
from cpm_session.devices.base import Algometer, Bath, Thermode
from cpm_session.devices.factory import Devices, effective_cap, open_devices
from cpm_session.record.reader import load_session
from cpm_session.resources import DEFAULT_PROTOCOL, SIM_STATION, resolve
from cpm_session.session import (
    SessionSettings,
    VisitOutcome,
    continue_visit,
    load_for_resume,
    resume_clock,
    start_visit,
)
from cpm_session.sim.devices import SimAlgometer, SimBath, SimThermode
from cpm_session.sim.participant import ParticipantTruth, SimParticipant
from cpm_session.ui.base import ParticipantUI
from cpm_session.ui.headless import HeadlessUI

STAFF_AUTO_S = 2.0
"""The simulated staff confirms a staff step this long (session s) after it is asked for."""
PPT_SETTLE_S = 0.5
RESUME_SEED_STRIDE = 7919


def _extra(cfg: RoleConfig, key: str, default: float) -> float:
    return float((cfg.model_extra or {}).get(key, default))


def sim_device_factory(clock: Clock, cap_c: float, neutral_c: float, seed: int = 0) -> Any:
    """Return a factory that builds the simulated device of a station role (for devices.factory.open_devices)."""
    rng = np.random.default_rng(seed + 1000)

    def make(role: str, cfg: RoleConfig) -> Thermode | Bath | Algometer:
        if role == "thermode":
            return SimThermode(clock, cap_c, neutral_c, rng=rng)
        if role == "bath":
            return SimBath(clock, temperature_c=_extra(cfg, "temperature_c", 2.5),
                           drift_c_per_min=_extra(cfg, "drift_c_per_min", 0.01),
                           noise_c=_extra(cfg, "noise_c", 0.03), rng=rng)
        return SimAlgometer(clock, probe_area_cm2=_extra(cfg, "probe_area_cm2", 1.0), rng=rng)

    return make


def build_devices(station: Station, *, cap_c: float, neutral_c: float, clock: Clock, seed: int = 0,
                  zones: str | None = None) -> Devices:
    """Create the station's devices: simulated ones for `model = "sim"`, real drivers otherwise."""
    return open_devices(station, cap_c=cap_c, neutral_c=neutral_c, clock=clock,
                        sim_factory=sim_device_factory(clock, cap_c, neutral_c, seed), zones=zones)


@dataclass
class SimWorld:
    """Follows a visit as an observer and plays the simulated participant and staff."""

    ui: ParticipantUI
    devices: Devices
    participant: SimParticipant | None = None
    staff_auto: bool = True
    _ppt_until: float | None = field(default=None, init=False)

    def attach(self) -> SimWorld:
        """Put the simulated participant at the screen (if there is one)."""
        if self.participant is not None:
            self.ui.responder, self.ui.chooser = self.participant.respond, self.participant.choose
        return self

    def __call__(self, name: str, ev: dict[str, Any]) -> None:
        """Observe one event or signal of the session."""
        t = float(ev.get("t", 0.0))
        sim = self.participant
        if name == "phase_enter" and ev.get("phase") in ("ts_pre", "control") and sim is not None:
            sim.conditioned = False
        elif name == "stimulus":
            self._stimulus(ev)
        elif name == "stimulus_delivered" and sim is not None and ev.get("plateau_mean_c") is not None:
            sim.stimulus = ("thermal", float(ev["plateau_mean_c"]))  # rate what the thermode delivered
        elif name == "cold_pressor_start" and sim is not None:
            sim.conditioned = True
            w = sim.truth.withdrawal_s
            if w is not None and w < float(ev.get("planned_s") or 0.0):
                self.ui.press("w", t + w)
        elif name == "ppt_started" and sim is not None and self.staff_auto:
            took = self._press(float(ev["ramp_kpa_per_s"]), sim.ppt_stop_kpa(), 0.0)
            self._ppt_until = t + took
        elif name == "staff_step_awaited" and self.staff_auto:
            if self._ppt_until is not None:  # the examiner presses space when the participant says stop
                self.ui.press("space", self._ppt_until)
                self._ppt_until = None
            else:
                self.ui.press("space", t + STAFF_AUTO_S)
        elif name == "pause" and self.staff_auto and self.ui.next_key_t() is None:
            self.ui.press("p", t)  # nobody else could ever end this pause

    def _stimulus(self, ev: dict[str, Any]) -> None:
        sim = self.participant
        if ev.get("modality") == "thermal":
            if sim is not None:
                sim.stimulus = ("thermal", float(ev["target_c"]))
        elif ev.get("modality") == "pressure":
            target = float(ev["target_kpa"])
            if sim is not None:
                sim.stimulus = ("pressure", target)
            if self.staff_auto:
                self._press(float(ev.get("ramp_kpa_per_s") or 40.0), target, float(ev.get("hold_s") or 0.0))

    def _press(self, ramp: float, stop_kpa: float, hold_s: float) -> float:
        alg = self.devices.algometer
        if isinstance(alg, SimAlgometer):
            return alg.press(ramp, stop_kpa, hold_s)
        return stop_kpa / ramp + hold_s


def make_participant(truth: ParticipantTruth | None, seed: int) -> SimParticipant:
    """Return a simulated participant with `truth` and its own random stream."""
    return SimParticipant(truth or ParticipantTruth(), np.random.default_rng(seed))


def run_visit(protocol: Protocol, station: Station, *, data_dir: str | Path, participant: str, visit: str,
              ui: ParticipantUI | None = None, clock: Clock | None = None, simulate: bool = True, seed: int = 0,
              staff: str = "auto", operator: str = "SIM", truth: ParticipantTruth | None = None,
              speed: float | None = None, override_reason: str = "", devices: Devices | None = None,
              pilot: bool = False, start_utc: Any = None) -> VisitOutcome:
    """Run one visit in the simulated world. With `simulate`, a simulated participant with `truth` answers
    every prompt; without it (pilot mode) a person at the screen does, with simulated devices."""
    clock = clock or VirtualClock()
    ui = ui or HeadlessUI(clock)
    cap = effective_cap(protocol.safety.thermode_cap_c, station, protocol.safety.neutral_c)
    devices = devices or build_devices(station, cap_c=cap, neutral_c=protocol.safety.neutral_c, clock=clock, seed=seed,
                                       zones=protocol.thermode.zones)
    sim = make_participant(truth, seed) if simulate else None
    world = SimWorld(ui, devices, sim, staff_auto=staff == "auto").attach()
    settings = SessionSettings(operator=operator, seed=seed, staff=staff, require_licensed_wording=sim is None)
    extra: dict[str, Any] = {"sim_truth": dataclasses.asdict(sim.truth)} if sim is not None else {}
    if pilot:
        extra["pilot"] = True
    return start_visit(protocol, station, ui=ui, clock=clock, devices=devices, data_dir=data_dir,
                       participant=participant, visit=visit, settings=settings, simulate=simulate, speed=speed,
                       override_reason=override_reason, observers=[world], extra_header=extra, start_utc=start_utc)


def run_simulated_visit(data_dir: str | Path, participant: str, visit: str, *,
                        protocol_path: str | Path = DEFAULT_PROTOCOL, seed: int = 0,
                        truth: ParticipantTruth | None = None, clock: Clock | None = None, operator: str = "SIM",
                        station_path: str | Path = SIM_STATION) -> Path:
    """Run a headless simulated visit on a virtual clock; return the session folder."""
    protocol = load_protocol(resolve(protocol_path))
    station = load_station(resolve(station_path))
    return run_visit(protocol, station, data_dir=data_dir, participant=participant, visit=visit, seed=seed,
                     truth=truth, clock=clock, operator=operator).session_dir


def resume_visit(session_dir: str | Path, *, ui: ParticipantUI | None = None, clock: Clock | None = None,
                 staff: str | None = None, operator: str | None = None, truth: ParticipantTruth | None = None,
                 protocol_path: str | Path | None = None, override_reason: str = "",
                 make_ui: Any = None) -> VisitOutcome:
    """Resume an interrupted session; a simulated one gets its simulated participant and devices back."""
    inp = load_for_resume(session_dir, protocol_path=protocol_path, override_reason=override_reason)
    header = inp.header
    base = clock or VirtualClock()
    clk = resume_clock(inp, base)
    ui = ui or (make_ui(inp.protocol, clk) if make_ui else HeadlessUI(clk))
    seed = int(header.get("seed") or 0) if isinstance(header.get("seed"), int) else 0
    simulate = header.get("simulate") is True
    devices = build_devices(inp.station, cap_c=inp.cap_c, neutral_c=inp.protocol.safety.neutral_c, clock=clk,
                            seed=seed, zones=inp.protocol.thermode.zones)
    sim = None
    if simulate:
        if truth is None and isinstance(header.get("sim_truth"), dict):
            truth = ParticipantTruth(**header["sim_truth"])
        n_resumes = sum(1 for e in inp.events if e.get("event") == "resume_session")
        sim = make_participant(truth, seed + RESUME_SEED_STRIDE * (n_resumes + 1))
    staff = staff or str(header.get("staff") or "manual")
    world = SimWorld(ui, devices, sim, staff_auto=staff == "auto").attach()
    settings = SessionSettings(operator=operator or str(header.get("operator") or ""), seed=seed, staff=staff,
                               require_licensed_wording=sim is None)
    return continue_visit(inp, ui=ui, clock=clk, devices=devices, settings=settings,
                          override_reason=override_reason, observers=[world])


__all__ = ["SimWorld", "build_devices", "load_session", "resume_visit", "run_simulated_visit", "run_visit"]
