"""The session engine: a declarative phase machine driven by a Clock, writing every event as it happens.

Phases and the transitions between them are listed once, in `PHASES` and `TRANSITIONS`. Each phase is a
method `_phase_<name>` that runs to completion and returns its output (stored in its `phase_exit`
event, which is what `resume` reads back). Waiting always goes through `_wait`, which draws frames,
delivers staff keys, samples the devices and honours pause; nothing sleeps on the wall clock directly.

Whatever happens (exception, Escape, Ctrl-C, device fault) `run` sends the thermode to neutral and
closes the log in its `finally`.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import math
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cpm_session import __version__
from cpm_session.calibration import fit_target, make_procedure, refine
from cpm_session.clock import Clock
from cpm_session.config.protocol import Protocol, load_protocol
from cpm_session.config.station import Station, load_station
from cpm_session.devices.background import BackgroundReader
from cpm_session.devices.factory import Devices, effective_cap, open_devices
from cpm_session.errors import CpmError, DeviceError, SafetyLimitError, SessionError
from cpm_session.ids import validate_participant_id, validate_visit
from cpm_session.record.folder import RATING_COLUMNS, SessionFolder, iso, read_events, utc_now, write_json_atomic
from cpm_session.resources import resolve
from cpm_session.ui.base import Choice, ParticipantUI, RatingPrompt

if TYPE_CHECKING:  # simulation code stays out of the runtime import path of a real visit
    from cpm_session.sim.participant import ParticipantTruth, SimParticipant

# ---------------------------------------------------------------------------------------------------
# The machine, declared once.
PHASES: tuple[str, ...] = ("welcome", "acclimatization", "calibration", "ts_pre", "cold_pressor", "ts_post",
                           "control", "questionnaires", "done")
TRANSITIONS: dict[tuple[str, str], str] = {
    **{(a, "next"): b for a, b in zip(PHASES, PHASES[1:])},
    ("acclimatization", "skip"): "calibration",
    **{(p, "pause"): "paused" for p in PHASES[:-1]},
    ("paused", "resume"): "<previous>",
    **{(p, "abort"): "aborted" for p in (*PHASES[:-1], "paused")},
    **{(p, "fault"): "fault" for p in (*PHASES[:-1], "paused")},
}
RESTART_FROM = {"ts_pre": "ts_pre", "cold_pressor": "ts_pre", "ts_post": "ts_pre"}
"""A CPM block interrupted anywhere restarts at TS_pre: the cold pressor is never resumed mid-immersion."""

# Timing constants (session seconds) that are mechanics, not protocol: the protocol file has the rest.
CUE_S = 2.0                # "stimulus coming" cue before each stimulus
IDLE_SAMPLE_S = 1.0        # device sampling between stimuli
ACTIVE_SAMPLE_S = 0.1      # device sampling during stimuli and the cold pressor
STAFF_AUTO_S = 2.0         # simulated staff takes this long to confirm a step
WELCOME_S = 5.0
BATH_RECHECK_S = 10.0
BATH_MAX_WAIT_S = 600.0
PPT_REST_S = 10.0
INSTRUCTION_S = 5.0


class EmergencyStop(Exception):
    """Escape was pressed: unwind the visit (the thermode has already been aborted)."""


class TrialInterrupted(Exception):
    """A pause interrupted a stimulus: the trial is discarded and repeated after the pause."""


class VisitFault(CpmError):
    """The visit cannot go on safely now (bath out of range, device fault); it can be resumed."""


@dataclass
class VisitOutcome:
    """What a run ended with."""

    session_dir: Path
    status: str
    results: dict[str, Any] = field(default_factory=dict)
    message: str = ""


class OffsetClock:
    """A clock that continues from `offset` (used by resume so session time keeps increasing)."""

    def __init__(self, base: Clock, offset: float) -> None:
        self.base, self.offset, self.speed = base, offset, base.speed

    def now(self) -> float:
        return self.base.now() + self.offset

    def sleep(self, seconds: float) -> None:
        self.base.sleep(seconds)


def cpm_values(ts_pre: float | None, ts_post: float | None, threshold_abs: float) -> dict[str, Any]:
    """Return CPM_abs = TS_pre − TS_post, CPM_pct = CPM_abs / TS_pre × 100 (positive = inhibition) and category."""
    if ts_pre is None or ts_post is None:
        return {"cpm_abs": None, "cpm_pct": None, "cpm_pct_note": "TS_pre or TS_post missing",
                "cpm_category": None, "inhibition": None}
    cpm_abs = round(ts_pre - ts_post, 4)
    note = ""
    if ts_pre == 0:
        cpm_pct = None
        note = "undefined: TS_pre is 0"
    else:
        cpm_pct = round(cpm_abs / ts_pre * 100.0, 4)
    category = "inhibition" if cpm_abs > threshold_abs else "facilitation" if cpm_abs < -threshold_abs else "none"
    return {"cpm_abs": cpm_abs, "cpm_pct": cpm_pct, "cpm_pct_note": note, "cpm_category": category,
            "inhibition": category == "inhibition"}


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(float(np.mean(vals)), 4) if vals else None


def find_baseline(data_dir: Path, participant: str, baseline_visit: str) -> dict[str, Any] | None:
    """Return the header (with `_dir`) of the participant's latest completed baseline session, or None."""
    best = None
    for sj in sorted((data_dir / participant).glob(f"{baseline_visit}-*/session.json")):
        try:
            header = json.loads(sj.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if header.get("status") == "completed" and (header.get("results") or {}).get("ts_intensity") is not None:
            header["_dir"] = str(sj.parent)
            best = header
    return best


class Engine:
    """Runs one visit (or resumes one) against a station, a participant screen and a clock."""

    def __init__(self, protocol: Protocol, station: Station, *, ui: ParticipantUI, clock: Clock,
                 participant: SimParticipant | None = None, staff: str = "manual", operator: str = "",
                 seed: int = 0, devices: Devices | None = None) -> None:
        self.p = protocol
        self.station = station
        self.ui = ui
        self.clock = clock
        self.sim = participant
        self.staff = staff
        self.operator = operator
        self.seed = seed
        if participant is not None:
            ui.responder, ui.chooser = participant.respond, participant.choose
        self.cap_c = effective_cap(protocol.safety.thermode_cap_c, station)
        self.devices = devices
        self.folder: SessionFolder | None = None
        self.phase = "init"
        self.paused = False
        self._pause_requested = False
        self._confirmed = False
        self._awaiting_step: str | None = None
        self._stim_end = -1.0
        self._next_sample = 0.0
        self._in_water_t: float | None = None
        self._withdrawn_t: float | None = None
        self._scheduled: list[tuple[float, str]] = []
        self._status_data: dict[str, Any] = {}
        self._bath_warned = False
        self.outputs: dict[str, Any] = {}
        self.last_abort_t: float | None = None
        self.visit = self.participant = ""

    # ------------------------------------------------------------------ logging and status
    def log(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append an event to the session log (no-op before the folder exists)."""
        if self.folder is None:
            return {}
        return self.folder.log.append(event, **fields)

    def _status(self, **kw: Any) -> None:
        self._status_data.update(kw)
        self._status_data["phase"] = self.phase
        self.ui.set_status(self._status_data)

    def _transition(self, trigger: str, to: str | None = None) -> None:
        target = TRANSITIONS.get((self.phase, trigger))
        if target is None and to is None:
            raise SessionError(f"no transition '{trigger}' from phase '{self.phase}'")
        target = to or target
        self.log("transition", **{"from": self.phase, "to": target, "trigger": trigger})

    # ------------------------------------------------------------------ staff keys
    def handle_key(self, key: str) -> None:
        """React to a staff key at once (called by the UI from inside its frame loop)."""
        now = self.clock.now()
        if key == "escape":
            self.emergency_stop("escape key")
        elif key == "space":
            if self._awaiting_step:
                self._confirmed = True
        elif key == "s":
            if self.phase == "acclimatization":
                self._skip_requested = True
            else:
                self.log("key_ignored", key="s", phase=self.phase, reason="skip only applies to acclimatization")
        elif key == "p":
            if self.phase == "cold_pressor" and self._in_water_t is not None:
                self.log("key_ignored", key="p", phase=self.phase,
                         reason="the cold pressor cannot pause; use w (withdrawal) or Escape")
                self._status(warning="cannot pause during the immersion")
            else:
                self._pause_requested = not self._pause_requested if not self.paused else False
                if self.paused:
                    self._resume_requested = True
        elif key == "w":
            if self._in_water_t is not None and self._withdrawn_t is None:
                self._withdrawn_t = now
                self.log("withdrawal", t_in_water_s=round(now - self._in_water_t, 3), operator=self.operator)
            else:
                self.log("key_ignored", key="w", phase=self.phase, reason="no hand in the water")
        elif key == "n":
            self._note_requested = True  # the note box opens at the next safe point (no heat, no hand in water)
        elif key == "h":
            pass  # the UI shows its help overlay itself

    def _take_note(self) -> float:
        """Open the staff note box (timers are held, like a pause); return the session seconds it took."""
        self._note_requested = False
        t0 = self.clock.now()
        self._status(next_action="typing a note (Enter saves, Escape cancels)")
        text = self.ui.ask_text("Note or adverse event (start with 'AE:' for an adverse event)")
        if text:
            self._record_note(text)
        self._status(next_action="")
        return self.clock.now() - t0

    def _record_note(self, text: str) -> None:
        """Log a staff note; 'AE: description; severity=...; serious=...' also records an adverse event."""
        self.log("note", text=text, operator=self.operator, phase=self.phase)
        if not text.strip().upper().startswith("AE:") or self.folder is None:
            return
        from cpm_session.record.adverse_events import ALLOWED, record_adverse_event

        parts = [p.strip() for p in text.strip()[3:].split(";")]
        fields: dict[str, Any] = {"description": parts[0] or "(no description)", "onset_date": dt.date.today().isoformat()}
        for p in parts[1:]:
            key, _, val = p.partition("=")
            key = {"action": "action_taken"}.get(key.strip().lower(), key.strip().lower())
            if key in ALLOWED or key == "onset_date":
                fields[key] = val.strip()
        for key, options in ALLOWED.items():  # ask the staff for what the note did not say
            if key not in fields:
                idx = self.ui.choose(Choice(f"Adverse event – {key.replace('_', ' ')}", list(options), 120.0))
                if idx is not None:
                    fields[key] = options[idx]
        try:
            rec = record_adverse_event(self.folder.path.parent.parent, self.folder.path.parent.name, fields,
                                       operator=self.operator or "?", session_dir=self.folder.path,
                                       clock_now=self.clock.now)
            self.log("adverse_event", **{k: v for k, v in rec.items() if k not in ("seq", "t", "wall", "event", "prev")},
                     stored_in_ae_log=True)
        except CpmError as e:
            self.log("adverse_event", **fields, operator=self.operator, stored_in_ae_log=False,
                     problem=f"{e}; complete it with: cpm-session ae add --participant {self.folder.path.parent.name} ...")
            self._status(warning=f"adverse event not complete: {e}")

    def emergency_stop(self, reason: str) -> None:
        """Abort the thermode to neutral at once, stop all timers, and unwind the visit (resumable)."""
        t_key = self.clock.now()
        abort_problem = ""
        if self.devices is not None:
            try:
                self.devices.thermode.abort()
            except Exception as e:  # noqa: BLE001 - log it; the device-side timer still ends the stimulus
                abort_problem = str(e)
        self.last_abort_t = self.clock.now()
        self._stim_end = -1.0
        self.log("emergency_stop", reason=reason, t_key=round(t_key, 6), t_abort=round(self.last_abort_t, 6),
                 phase=self.phase, operator=self.operator, abort_problem=abort_problem)
        self.ui.show("aborted", self.p.texts.aborted)
        raise EmergencyStop(reason)

    # ------------------------------------------------------------------ waiting
    def _sample(self, now: float) -> None:
        if self.devices is None or self.folder is None or now < self._next_sample:
            return
        active = now < self._stim_end or self._in_water_t is not None
        self._next_sample = now + (ACTIVE_SAMPLE_S if active else IDLE_SAMPLE_S)
        r = self.devices.thermode.read()
        self.folder.devices.write({"t": round(now, 4), "role": "thermode", "quantity": "zone_mean_c",
                                   "value": round(r.mean_c, 2), "unit": "C"})
        bath_c = self._read_bath()
        self.folder.devices.write({"t": round(now, 4), "role": "bath", "quantity": "bath_c",
                                   "value": round(bath_c, 3), "unit": "C"})
        if self.p.protocol.ts_modality == "pressure":
            kpa = self._algometer_reader.get() if self._algometer_reader else self.devices.algometer.read_kpa()
            self.folder.devices.write({"t": round(now, 4), "role": "algometer", "quantity": "pressure_kpa",
                                       "value": round(kpa, 2), "unit": "kPa"})
        self._status(thermode_c=round(r.mean_c, 1), bath_c=round(bath_c, 2))
        if self._in_water_t is not None:
            cp = self.p.cold_pressor
            out = not (cp.bath_min_c <= bath_c <= cp.bath_max_c)
            if out and not self._bath_warned:
                self._bath_warned = True
                self.log("bath_warning", bath_c=round(bath_c, 3), range_c=[cp.bath_min_c, cp.bath_max_c])
                self._status(warning=f"bath {bath_c:.2f} °C out of range during the immersion")
            elif not out:
                self._bath_warned = False

    def _frame_s(self) -> float:
        return self.ui.frame_s * self.clock.speed if math.isfinite(self.clock.speed) else math.inf

    def _wait(self, seconds: float, stop_when: Callable[[], bool] | None = None) -> None:
        """Let `seconds` of session time pass while drawing, sampling devices and handling keys and pause."""
        end = self.clock.now() + seconds
        while True:
            self.ui.tick()
            if self._pause_requested and not self.paused:
                self._do_pause()
                end += self._last_pause_s
            now = self.clock.now()
            if self._note_requested and now >= self._stim_end and self._in_water_t is None:
                end += self._take_note()
                now = self.clock.now()
            self._sample(now)
            self._run_scheduled(now)
            if stop_when is not None and stop_when():
                return
            if now >= end - 1e-9:
                return
            step = min(end - now, max(1e-3, self._next_sample - now), self._frame_s())
            if self._scheduled:
                step = min(step, max(1e-3, self._scheduled[0][0] - now))
            nk = getattr(self.ui, "next_key_t", lambda: None)()
            if nk is not None:
                step = min(step, max(1e-3, nk - now))
            self.clock.sleep(step)

    def _run_scheduled(self, now: float) -> None:
        while self._scheduled and self._scheduled[0][0] <= now + 1e-9:
            _, key = self._scheduled.pop(0)
            self.handle_key(key)

    def _do_pause(self) -> None:
        t0 = self.clock.now()
        stim_active = t0 < self._stim_end
        if stim_active and self.devices is not None:
            self.devices.thermode.abort()
            self._stim_end = -1.0
        self._transition("pause", "paused")
        self.log("pause", phase=self.phase, operator=self.operator, stimulus_aborted=stim_active)
        self.paused = True
        self._resume_requested = False
        self.ui.show("paused", self.p.texts.paused)
        self._status(next_action="paused: press p to resume")
        while not self._resume_requested:
            self.ui.tick()
            self._sample(self.clock.now())
            self.clock.sleep(min(0.1, self._frame_s()) if math.isfinite(self._frame_s()) else 0.1)
            nk = getattr(self.ui, "next_key_t", lambda: None)()
            if nk is None and self.staff == "auto" and self.sim is not None:
                self._resume_requested = True  # unattended run: nothing could ever resume it
        self.paused = False
        self._pause_requested = False
        self._last_pause_s = self.clock.now() - t0
        self.log("resume", phase=self.phase, paused_s=round(self._last_pause_s, 3), operator=self.operator)
        self._transition("resume", self.phase)
        if stim_active:
            raise TrialInterrupted("stimulus aborted by pause")

    _last_pause_s = 0.0
    _write_failed = False
    _bath_reader: BackgroundReader | None = None
    _algometer_reader: BackgroundReader | None = None
    _note_requested = False
    _resume_requested = False
    _skip_requested = False

    def _staff_step(self, step: str) -> None:
        """Wait for the staff to confirm `step` with space (or confirm it after a moment with --staff auto)."""
        self._awaiting_step = step
        self._confirmed = False
        self._status(next_action=f"{step}: press space")
        if self.staff == "auto":
            self._wait(STAFF_AUTO_S, stop_when=lambda: self._confirmed)
        else:
            while not self._confirmed:
                self._wait(0.1, stop_when=lambda: self._confirmed)
        self._awaiting_step = None
        self.log("staff_step", step=step, operator=self.operator, auto=self.staff == "auto" and not self._confirmed)
        self._confirmed = False

    # ------------------------------------------------------------------ stimuli and ratings
    def _rating(self, phase: str, trial: int, kind: str, intensity: float | None, unit: str, onset_t: float | None,
                planned_t: float | None, attempt: int = 1, timeout_s: float | None = None, flag: str = "") -> float | None:
        t = self.p.texts
        question = {"heat": t.rate_heat, "pressure": t.rate_pressure, "hand": t.rate_hand}[kind]
        r = self.p.ratings
        prompt = RatingPrompt(phase, trial, question, t.anchor_low, t.anchor_high, t.confirm,
                              timeout_s if timeout_s is not None else r.timeout_s, r.scale_min, r.scale_max, kind)
        geom = self.ui.prompt_geometry(prompt)
        self.log("rating_prompt", phase=phase, trial=trial, attempt=attempt, question=question,
                 slider_px=geom.get("slider_px"), confirm_px=geom.get("confirm_px"), window_px=geom.get("window_px"))
        shown_t = self.clock.now()
        result = self.ui.rate(prompt)
        site = self.p.cold_pressor.site if kind == "hand" else (
            self.p.calibration.site if phase in ("calibration", "verification", "ppt") else self.p.test_stimulus.site)
        row = {"phase": phase, "trial": trial, "attempt": attempt, "site": site,
               "intensity": None if intensity is None else round(intensity, 3), "intensity_unit": unit,
               "rating": result.value, "rt_s": None if result.rt_s is None else round(result.rt_s, 4),
               "onset_t": None if onset_t is None else round(onset_t, 4),
               "planned_onset_t": None if planned_t is None else round(planned_t, 4),
               "missing": result.value is None, "flag": flag}
        trace = [[round(a, 4), round(b, 2)] for a, b in result.trace]
        self.log("rating", **row, prompt_t=round(shown_t, 4), trace=trace)
        assert self.folder is not None
        self.folder.ratings.write({k: ("" if v is None else v) for k, v in row.items()})
        self._status(last_rating=result.value)
        return result.value

    def _heat(self, target_c: float, plateau_s: float, phase: str, trial: int, planned_t: float) -> tuple[float, float]:
        """Deliver one device-timed heat stimulus; return (onset time, time it is back at neutral)."""
        assert self.devices is not None
        th = self.p.thermode
        if target_c > self.cap_c:
            raise SafetyLimitError(f"engine refused {target_c:.2f} °C: cap is {self.cap_c:.1f} °C")
        rise_s = abs(target_c - self.p.safety.neutral_c) / th.rise_c_per_s
        duration_s = rise_s + plateau_s  # device duration counts from launch: rise plus plateau
        if self.sim:
            self.sim.stimulus = ("thermal", target_c)
        self.devices.thermode.stimulate(target_c, th.rise_c_per_s, th.return_c_per_s, duration_s)
        onset = self.clock.now()
        back_s = duration_s + abs(target_c - self.p.safety.neutral_c) / th.return_c_per_s
        self._stim_end = onset + back_s
        self.log("stimulus", phase=phase, trial=trial, modality="thermal", target_c=round(target_c, 3),
                 duration_s=round(duration_s, 4), plateau_s=plateau_s, planned_onset_t=round(planned_t, 6),
                 onset_t=round(onset, 6), onset_error_s=round(onset - planned_t, 6))
        return onset, onset + back_s

    def _pressure(self, target_kpa: float, hold_s: float, phase: str, trial: int, planned_t: float) -> tuple[float, float]:
        """Have the examiner apply `target_kpa` for `hold_s` (simulated examiner presses the sim algometer)."""
        assert self.devices is not None
        if target_kpa > self.p.safety.max_pressure_kpa:
            raise SafetyLimitError(f"pressure {target_kpa:.0f} kPa above the protocol limit {self.p.safety.max_pressure_kpa:.0f} kPa")
        if self.sim:
            self.sim.stimulus = ("pressure", target_kpa)
        alg = self.devices.algometer
        alg.clear_peak()
        took = hold_s
        press = getattr(alg, "press", None)  # a simulated algometer: the simulated examiner presses it
        if press is not None and self.sim is not None and self.staff == "auto":
            took = press(self.p.calibration.ppt_ramp_kpa_per_s, target_kpa, hold_s)
        onset = self.clock.now()
        self._stim_end = onset + took
        self.log("stimulus", phase=phase, trial=trial, modality="pressure", target_kpa=round(target_kpa, 2),
                 duration_s=round(took, 4), planned_onset_t=round(planned_t, 6), onset_t=round(onset, 6),
                 onset_error_s=round(onset - planned_t, 6))
        return onset, onset + took

    def _ts_trial(self, phase: str, trial: int, planned_t: float, intensity: float, *,
                  plateau_s: float | None = None, modality: str | None = None) -> float | None:
        """Cue, deliver one stimulus at `planned_t`, fixate, then ask for its rating; repeat a missing one.

        Defaults are the protocol's test stimulus (its modality and duration); calibration passes its own."""
        plateau = self.p.test_stimulus.duration_s if plateau_s is None else plateau_s
        thermal = (modality or self.p.protocol.ts_modality) == "thermal"
        value = None
        for attempt in range(1, self.p.ratings.max_attempts + 1):
            while True:
                try:
                    self.ui.show("cue", self.p.texts.stimulus_coming)
                    self._wait(max(0.0, planned_t - self.clock.now()))
                    deliver = self._heat if thermal else self._pressure
                    onset, back = deliver(intensity, plateau, phase, trial, planned_t)
                    self.ui.show("fixation", self.p.texts.stimulus_on)
                    self._wait(max(0.0, back - self.clock.now()))
                    self._stim_end = -1.0
                    break
                except TrialInterrupted:
                    self.log("trial_discarded", phase=phase, trial=trial, reason="paused during the stimulus")
                    planned_t = self.clock.now() + CUE_S
            value = self._rating(phase, trial, "heat" if thermal else "pressure", intensity,
                                 "C" if thermal else "kPa", onset, planned_t, attempt=attempt)
            if value is not None or not self.p.ratings.repeat_missing:
                break
            planned_t = self.clock.now() + CUE_S
        return value

    # ------------------------------------------------------------------ phases
    def _phase_welcome(self) -> dict[str, Any]:
        self.ui.show("welcome", self.p.texts.welcome)
        self._wait(WELCOME_S)
        return {}

    def _phase_acclimatization(self) -> dict[str, Any]:
        a = self.p.acclimatization
        t0 = self.clock.now()
        self._skip_requested = False
        self.ui.show("acclimatization", self.p.texts.acclimatization, countdown_to=t0 + a.duration_s)
        self._status(next_action="acclimatization (s skips)")
        self._wait(a.duration_s, stop_when=lambda: self._skip_requested)
        elapsed = self.clock.now() - t0
        if self._skip_requested:
            remaining = a.duration_s - elapsed
            self._transition("skip", "calibration")
            self.log("deviation", kind="acclimatization_skipped", remaining_s=round(remaining, 3),
                     elapsed_s=round(elapsed, 3), below_minimum=elapsed < a.min_s, operator=self.operator,
                     detail=f"acclimatization skipped with {remaining:.0f} s remaining")
        return {"elapsed_s": round(elapsed, 3), "skipped": self._skip_requested}

    def _phase_calibration(self) -> dict[str, Any]:
        if self.visit != self.p.protocol.baseline_visit:
            return self._intensity_from_baseline()
        if self.p.protocol.ts_modality == "pressure":
            return self._calibrate_pressure()
        return self._calibrate_heat()

    def _intensity_from_baseline(self) -> dict[str, Any]:
        base = self.baseline
        if base is None:
            raise SessionError("no baseline")  # checked before the session starts
        res = base["results"]
        out = {"ts_intensity": res["ts_intensity"], "ts_unit": res["ts_unit"], "pain60_c": res.get("pain60_c"),
               "ppt_kpa": res.get("ppt_kpa"), "source": "baseline", "baseline_session": base["_dir"]}
        self.log("baseline_intensity", **out, baseline_protocol_sha256=base.get("protocol_sha256"))
        return out

    def _calibrate_heat(self) -> dict[str, Any]:
        c = self.p.calibration
        self.ui.show("calibration_intro", self.p.texts.calibration_intro)
        self._staff_step("thermode placed on the " + c.site)
        proc = make_procedure(c.method, start_c=c.start_c, step_c=c.step_c, stop_rating=c.stop_rating,
                              target=c.target_rating, cap_c=self.cap_c, trials=c.staircase_trials)
        trial = 0
        while (temp := proc.next_c()) is not None:
            trial += 1
            proc.add(temp, self._cal_stimulus("calibration", trial, temp))
        points = list(proc.points)
        fit = fit_target(points, c.target_rating, min_slope=c.min_slope_per_c, min_r2=c.min_r2,
                         lo_c=c.start_c - 4 * c.step_c, hi_c=self.cap_c)
        self.log("calibration_fit", method=proc.name, stage="series", **fit.as_dict(), points=points)
        outcome = "ok"
        max_rating = max((r for _, r in points), default=0.0)
        if fit.target_c is None or max_rating < c.target_rating - c.tolerance:
            if max_rating < c.target_rating - c.tolerance and (proc.reached_cap or fit.target_c is None or fit.target_c >= self.cap_c):
                outcome = "not_reached"
            else:
                outcome = "failed_quality"
            temp = self._staff_decision(outcome, fit.warnings, max_rating)
        else:
            temp = round(fit.target_c, 2)
        for w in fit.warnings:
            self._status(warning=w)
        refinements = 0
        verify: list[float] = []
        if outcome == "ok":
            for _ in range(c.max_refinements + 1):
                verify = []
                for _k in range(c.verify_n):
                    trial += 1
                    r = self._cal_stimulus("verification", trial, temp)
                    if r is not None:
                        verify.append(r)
                        points.append((temp, r))
                if not verify or abs(float(np.mean(verify)) - c.target_rating) <= c.tolerance or refinements >= c.max_refinements:
                    break
                refinements += 1
                temp = refine(temp, float(np.mean(verify)), c.target_rating, max(fit.slope, c.min_slope_per_c), self.cap_c)
                self.log("calibration_refine", new_c=temp, verify_mean=round(float(np.mean(verify)), 3))
            final = fit_target(points, c.target_rating, min_slope=c.min_slope_per_c, min_r2=c.min_r2,
                               lo_c=c.start_c - 4 * c.step_c, hi_c=self.cap_c)
            if final.target_c is not None:
                temp = round(final.target_c, 2)
            self.log("calibration_fit", method=proc.name, stage="final", **final.as_dict(), points=points)
            fit = final
        temp = min(temp, self.cap_c)
        out = {"ts_intensity": temp, "ts_unit": "C", "pain60_c": temp, "method": proc.name, "n_stimuli": trial,
               "outcome": outcome, "slope": round(fit.slope, 4), "intercept": round(fit.intercept, 4),
               "r2": round(fit.r2, 4), "warnings": fit.warnings, "refinements": refinements,
               "verification_ratings": verify, "source": "calibration"}
        self.log("calibration_result", **out)
        return out

    def _staff_decision(self, outcome: str, warnings: list[str], max_rating: float) -> float:
        """Tell the staff calibration did not find the target; use the cap (space) or stop (Escape)."""
        msg = (f"calibration: rating {self.p.calibration.target_rating:.0f} not reached below the cap "
               f"(max rating {max_rating:.0f}); space = use the cap {self.cap_c:.1f} °C, Escape = stop"
               if outcome == "not_reached" else "calibration quality: " + "; ".join(warnings) +
               f"; space = use the cap {self.cap_c:.1f} °C, Escape = stop")
        self._status(warning=msg)
        self.log("calibration_problem", outcome=outcome, warnings=warnings, max_rating=max_rating)
        self._staff_step("decide: use the cap")
        self.log("deviation", kind="calibration_" + outcome, detail=msg, chosen_c=self.cap_c, operator=self.operator)
        return self.cap_c

    def _cal_stimulus(self, phase: str, trial: int, temp: float) -> float | None:
        c = self.p.calibration
        planned = self.clock.now() + CUE_S
        r = self._ts_trial(phase, trial, planned, temp, plateau_s=c.stimulus_s, modality="thermal")
        self.ui.show("rest", self.p.texts.rest)
        self._wait(c.rest_s)
        return r

    def _calibrate_pressure(self) -> dict[str, Any]:
        c = self.p.calibration
        assert self.devices is not None
        self.ui.show("pressure_instructions", self.p.texts.pressure_instructions)
        self._staff_step("algometer ready at the " + c.site)
        values = []
        for i in range(1, c.ppt_measurements + 1):
            alg = self.devices.algometer
            alg.clear_peak()
            self._status(next_action=f"PPT {i}/{c.ppt_measurements}: press at ~{c.ppt_ramp_kpa_per_s:.0f} kPa/s until STOP")
            t0 = self.clock.now()
            press = getattr(alg, "press", None)
            if press is not None and self.sim and self.staff == "auto":
                took = press(c.ppt_ramp_kpa_per_s, self.sim.ppt_stop_kpa(), 0.0)
                self._wait(took + 0.5)
            else:
                self._staff_step(f"PPT {i}: participant said stop")
            kpa = round(alg.peak_kpa(), 2)
            values.append(kpa)
            self.log("ppt", trial=i, kpa=kpa, t_start=round(t0, 4))
            assert self.folder is not None
            self.folder.ratings.write({"phase": "ppt", "trial": i, "attempt": 1, "site": c.site, "intensity": kpa,
                                       "intensity_unit": "kPa", "rating": "", "rt_s": "", "onset_t": round(t0, 4),
                                       "planned_onset_t": "", "missing": False, "flag": ""})
            self._wait(PPT_REST_S)
        ppt = round(float(np.mean(values)), 3)
        ts_kpa = round(min(ppt * c.ts_pressure_factor, self.p.safety.max_pressure_kpa), 3)
        out = {"ts_intensity": ts_kpa, "ts_unit": "kPa", "ppt_kpa": ppt, "ppt_values_kpa": values,
               "method": "ppt_mean", "n_stimuli": len(values), "outcome": "ok", "source": "calibration",
               "ts_pressure_factor": c.ts_pressure_factor}
        self.log("calibration_result", **out)
        return out

    def _ts_block(self, phase: str, repeats: int, first_delay_s: float) -> dict[str, Any]:
        intensity = self.outputs["calibration"]["ts_intensity"]
        ts = self.p.test_stimulus
        t0 = self.clock.now() + max(first_delay_s, CUE_S)
        ratings = []
        for i in range(repeats):
            ratings.append(self._ts_trial(phase, i + 1, t0 + i * ts.interval_s, intensity))
        return {"ratings": ratings, "mean": _mean(ratings), "intensity": intensity}

    def _phase_ts_pre(self) -> dict[str, Any]:
        if self.sim:
            self.sim.conditioned = False
        self._staff_step("thermode placed on the " + self.p.test_stimulus.site
                         if self.p.protocol.ts_modality == "thermal" else "algometer at the " + self.p.test_stimulus.site)
        return self._ts_block("ts_pre", self.p.test_stimulus.pre_repeats, CUE_S)

    def _check_bath(self, lo: float, hi: float) -> tuple[bool, list[float]]:
        assert self.devices is not None
        cp = self.p.cold_pressor
        samples: list[float] = []
        end = self.clock.now() + cp.bath_stable_s
        while True:
            samples.append(self._read_bath())
            if self.clock.now() >= end:
                break
            self._wait(min(1.0, max(0.0, end - self.clock.now())))
        ok = all(lo <= s <= hi for s in samples)
        self.log("bath_check", ok=ok, min_c=round(min(samples), 3), max_c=round(max(samples), 3),
                 range_c=[lo, hi], n=len(samples))
        return ok, samples

    def _immersion(self, phase: str, lo: float, hi: float, duration_s: float, monitored: bool) -> dict[str, Any]:
        cp = self.p.cold_pressor
        self.ui.show("cold_prepare", self.p.texts.cold_pressor_prepare)
        if monitored:
            waited = 0.0
            ok, _ = self._check_bath(lo, hi)
            while not ok:
                self._status(warning=f"bath out of {lo}-{hi} °C: cold pressor blocked")
                if waited >= BATH_MAX_WAIT_S:
                    raise VisitFault(f"bath temperature out of {lo}-{hi} °C for {waited:.0f} s: cold pressor not started")
                self._wait(BATH_RECHECK_S)
                waited += BATH_RECHECK_S + cp.bath_stable_s
                ok, _ = self._check_bath(lo, hi)
        self._staff_step("hand is in the water" if monitored else "hand is in the control water")
        t0 = self.clock.now()
        self._in_water_t = t0
        self._withdrawn_t = None
        self._bath_warned = False
        duration_s = min(duration_s, cp.max_s)
        self.log("cold_pressor_start" if monitored else "control_immersion_start", planned_s=duration_s,
                 bath_c=round(self._read_bath(), 3) if (monitored and self.devices) else None)
        if self.sim and self.sim.truth.withdrawal_s is not None and self.sim.truth.withdrawal_s < duration_s and monitored:
            self._scheduled.append((t0 + self.sim.truth.withdrawal_s, "w"))
            self._scheduled.sort()
        if self.sim and monitored:
            self.sim.conditioned = True
        self.ui.show("cold_keep", self.p.texts.cold_pressor_keep, countdown_to=t0 + duration_s)
        rating: float | None = None
        flag = ""
        try:
            self._wait(cp.rating_at_s, stop_when=lambda: self._withdrawn_t is not None)
            early = self._withdrawn_t is not None
            flag = "early_withdrawal" if early else ""
            remaining = t0 + duration_s - self.clock.now()
            timeout = self.p.ratings.timeout_s if early else max(1.0, min(self.p.ratings.timeout_s, remaining))
            rating = self._rating("cs" if monitored else "control_cs", 1, "hand", None, "", t0, t0 + cp.rating_at_s,
                                  timeout_s=timeout, flag=flag)
            if rating is None:
                flag = flag or "missing"
            elif rating < cp.min_cs_rating and not early:
                flag = "not_noxious"
                self.log("deviation", kind="cs_not_noxious", detail=f"hand rating {rating} below {cp.min_cs_rating}")
            if not early:
                self._wait(max(0.0, t0 + duration_s - self.clock.now()), stop_when=lambda: self._withdrawn_t is not None)
        finally:
            end = self._withdrawn_t if self._withdrawn_t is not None else self.clock.now()
            self._in_water_t = None
            self._scheduled = [s for s in self._scheduled if s[1] != "w"]
        withdrawn = self._withdrawn_t is not None
        self.ui.show("cold_out", self.p.texts.cold_pressor_out)
        self.log("cold_pressor_end" if monitored else "control_immersion_end", duration_s=round(end - t0, 4),
                 withdrawn=withdrawn, withdrawal_s=round(self._withdrawn_t - t0, 4) if withdrawn and self._withdrawn_t else None)
        self._staff_step("hand is out")
        out: dict[str, Any] = {"cs_rating_30s": rating, "cs_rating_flag": flag, "immersion_s": round(end - t0, 4),
                               "withdrawal_s": round(self._withdrawn_t - t0, 4) if withdrawn and self._withdrawn_t else None,
                               "start_t": round(t0, 4), "end_t": round(end, 4)}
        if monitored and self.folder is not None:
            out.update(self._bath_stats(t0, end))
        return out

    def _bath_stats(self, t0: float, t1: float) -> dict[str, Any]:
        assert self.folder is not None
        self.folder.devices._f.flush()
        import pandas as pd

        df = pd.read_csv(self.folder.path / "devices.csv")
        sel = df[(df["quantity"] == "bath_c") & (df["t"] >= t0) & (df["t"] <= t1)]["value"]
        if sel.empty:
            return {"bath_mean_c": None, "bath_min_c": None, "bath_max_c": None}
        return {"bath_mean_c": round(float(sel.mean()), 3), "bath_min_c": round(float(sel.min()), 3),
                "bath_max_c": round(float(sel.max()), 3)}

    def _phase_cold_pressor(self) -> dict[str, Any]:
        cp = self.p.cold_pressor
        return self._immersion("cold_pressor", cp.bath_min_c, cp.bath_max_c, cp.duration_s, monitored=True)

    def _phase_ts_post(self) -> dict[str, Any]:
        return self._ts_block("ts_post", self.p.test_stimulus.post_repeats, self.p.test_stimulus.post_delay_s)

    def _phase_control(self) -> dict[str, Any]:
        cc = self.p.control_conditioning
        if not cc.enabled:
            return {"enabled": False}
        if self.sim:
            self.sim.conditioned = False
        self.log("deviation", kind="info", detail="control water is not monitored by the bath device")
        self._wait(self.p.test_stimulus.interval_s)
        pre = self._ts_block("control_ts_pre", self.p.test_stimulus.pre_repeats, CUE_S)
        imm = self._immersion("control", cc.bath_min_c, cc.bath_max_c, cc.duration_s, monitored=False)
        post = self._ts_block("control_ts_post", self.p.test_stimulus.post_repeats, self.p.test_stimulus.post_delay_s)
        return {"enabled": True, "ts_pre": pre, "immersion": imm, "ts_post": post}

    def _phase_questionnaires(self) -> dict[str, Any]:
        names = self.p.questionnaires.names
        if not names:
            return {}
        from cpm_session.config import questionnaires as qmod

        self.ui.show("questionnaires_intro", self.p.texts.questionnaires_intro)
        self._wait(INSTRUCTION_S)
        results: dict[str, Any] = {}
        entered_by = self.p.questionnaires.entry
        for q in self._preflight_questionnaires():
            name = q.name
            answers: dict[str, Any] = {}
            for item in q.items:
                idx = self.ui.choose(qmod.item_choice(q, item, self.p.ratings.timeout_s * 3))
                answers[item.id] = qmod.value_of_choice(item, idx)
            res = qmod.questionnaire_result(q, answers, entered_by)
            self.log("questionnaire", name=name, **res)
            results[name] = res
        return results

    def _preflight_questionnaires(self) -> list[Any]:
        """Load every questionnaire of the protocol (a real participant needs the licensed wording files)."""
        from cpm_session.config import questionnaires as qmod

        return [qmod.load_questionnaire(n, require_wording=self.sim is None) for n in self.p.questionnaires.names]

    def _phase_done(self) -> dict[str, Any]:
        self.ui.show("thanks", self.p.texts.thanks)
        self._wait(2.0)
        return {}

    # ------------------------------------------------------------------ results
    def results(self) -> dict[str, Any]:
        """Combine the phase outputs into the session's results (positive CPM = inhibition)."""
        cal = self.outputs.get("calibration", {})
        pre = self.outputs.get("ts_pre", {})
        post = self.outputs.get("ts_post", {})
        cs = self.outputs.get("cold_pressor", {})
        res: dict[str, Any] = {
            "ts_modality": self.p.protocol.ts_modality, "ts_intensity": cal.get("ts_intensity"),
            "ts_unit": cal.get("ts_unit"), "pain60_c": cal.get("pain60_c"), "ppt_kpa": cal.get("ppt_kpa"),
            "ts_pre_ratings": pre.get("ratings", []), "ts_post_ratings": post.get("ratings", []),
            "ts_pre": pre.get("mean"), "ts_post": post.get("mean"),
            "cs_rating_30s": cs.get("cs_rating_30s"), "cs_rating_flag": cs.get("cs_rating_flag"),
            "withdrawal_s": cs.get("withdrawal_s"), "bath_mean_c": cs.get("bath_mean_c"),
            "bath_min_c": cs.get("bath_min_c"), "bath_max_c": cs.get("bath_max_c"),
            "calibration": {k: v for k, v in cal.items() if k not in ("ts_intensity", "ts_unit")},
            "sign_convention": "positive CPM = inhibition",
        }
        res.update(cpm_values(res["ts_pre"], res["ts_post"], self.p.analysis.cpm_threshold_abs))
        ctl = self.outputs.get("control", {})
        if ctl.get("enabled"):
            c = cpm_values(ctl["ts_pre"]["mean"], ctl["ts_post"]["mean"], self.p.analysis.cpm_threshold_abs)
            net = None if c["cpm_abs"] is None or res["cpm_abs"] is None else round(res["cpm_abs"] - c["cpm_abs"], 4)
            res["control"] = {"ts_pre": ctl["ts_pre"]["mean"], "ts_post": ctl["ts_post"]["mean"],
                              "cpm_abs": c["cpm_abs"], "net_cpm_abs": net}
        return res

    # ------------------------------------------------------------------ the visit
    def _plan(self) -> list[str]:
        return [p for p in PHASES if p != "control" or self.p.control_conditioning.enabled]

    def start(self, *, data_dir: Path, participant: str, visit: str, simulate: bool, speed: float | None,
              override_reason: str = "", start_utc: dt.datetime | None = None) -> VisitOutcome:
        """Create the session folder and run the visit from the beginning."""
        validate_participant_id(participant)
        validate_visit(visit, self.p.protocol.visits)
        self._preflight_questionnaires()  # a missing wording file stops us before anything is written
        self.visit, self.participant = visit, participant
        self.baseline = None
        deviation = None
        if visit != self.p.protocol.baseline_visit:
            self.baseline = find_baseline(Path(data_dir), participant, self.p.protocol.baseline_visit)
            if self.baseline is None:
                raise SessionError(f"participant {participant} has no completed '{self.p.protocol.baseline_visit}' "
                                   f"session in {data_dir}: visit '{visit}' needs its calibrated TS intensity")
            if self.baseline.get("protocol_sha256") != self.p.sha256:
                if not override_reason.strip():
                    raise SessionError(
                        f"protocol file {self.p.path} (sha256 {self.p.sha256[:12]}…) differs from the baseline's "
                        f"({str(self.baseline.get('protocol_sha256'))[:12]}…, {self.baseline.get('protocol')}); "
                        "use the same file, or override with --override-reason \"...\"")
                deviation = {"kind": "protocol_mismatch", "detail": override_reason.strip(),
                             "baseline_protocol_sha256": self.baseline.get("protocol_sha256")}
        header = {
            "software": "cpm-session", "software_version": __version__, "python": platform.python_version(),
            "protocol": self.p.path, "protocol_sha256": self.p.sha256, "protocol_name": self.p.protocol.name,
            "protocol_version": self.p.protocol.version, "station": self.station.path,
            "station_name": self.station.station.name, "operator": self.operator, "seed": self.seed,
            "simulate": simulate, "speed": speed, "staff": self.staff, "thermode_cap_c": self.cap_c,
            "sign_convention": "positive CPM = inhibition",
        }
        if self.sim is not None:
            header["sim_truth"] = dataclasses.asdict(self.sim.truth)
        self._open_ui()
        self.folder = SessionFolder.create(data_dir, participant, visit, header, self.clock.now, start=start_utc)
        self.log("session_start", **header, participant=participant, visit=visit)
        if deviation:
            self.log("deviation", **deviation, operator=self.operator)
        return self._run(set())

    def _run(self, done: set[str]) -> VisitOutcome:
        assert self.folder is not None
        status, message = "aborted", ""
        self.ui.key_handler = self.handle_key
        try:
            self.ui.open()
            if self.devices is None:
                self.devices = open_devices(self.station, cap_c=self.cap_c, neutral_c=self.p.safety.neutral_c,
                                            clock=self.clock, seed=self.seed)
            for d in self.devices.all():
                info = d.connect()
                self.log("device_connected", role=info.role, model=info.model, port=info.port,
                         identity=info.identity, firmware=info.firmware, extra=info.extra)
            self._start_background_readers()
            for phase in self._plan():
                if phase in done:
                    continue
                self._enter(phase)
                out = getattr(self, f"_phase_{phase}")()
                self.outputs[phase] = out
                self.log("phase_exit", phase=phase, status="completed", output=out)
                if phase == "questionnaires":
                    self.folder.update_header(questionnaires=out)
            status = "completed"
        except EmergencyStop as e:
            status, message = "aborted", f"emergency stop ({e}); resume with: cpm-session resume {self.folder.path}"
            self._transition("abort", "aborted")
        except (DeviceError, VisitFault) as e:
            status, message = "paused_fault", f"{e}; fix it, then: cpm-session resume {self.folder.path}"
            self._safe_abort()
            role = getattr(e, "role", "")
            self.log("device_fault" if isinstance(e, DeviceError) else "visit_fault", message=str(e), role=role,
                     port=getattr(e, "port", ""), phase=self.phase)
            self._transition("fault", "fault")
            self._status(warning=str(e))
        except OSError as e:  # the data folder failed (disk full, removed, read-only): stop, heat off first
            self._safe_abort()
            self._write_failed = True
            status, message = "aborted", (
                f"visit stopped: cannot write the session data in {self.folder.path} ({e.strerror or e}); "
                "the thermode was sent to neutral; what was written is kept. Free space, then: "
                f"cpm-session resume {self.folder.path}")
        except BaseException as e:
            self._safe_abort()
            self.log("crash", error=f"{type(e).__name__}: {e}", phase=self.phase)
            status, message = "aborted", f"{type(e).__name__}: {e}"
            self._finish(status)
            raise
        finally:
            self._safe_abort()
            for reader in (self._bath_reader, self._algometer_reader):
                if reader is not None:
                    reader.stop()
            if self.devices is not None:
                self.devices.close()
            self.ui.close()
        return self._finish(status, message)

    def _start_background_readers(self) -> None:
        """Read a real bath (and, in pressure visits, a real algometer) in background threads (real time
        only), so a slow or silent device never blocks the frame loop that handles Escape."""
        assert self.devices is not None
        if not math.isfinite(self.clock.speed):
            return
        bath, alg = self.devices.bath, self.devices.algometer
        if bath.model != "sim":
            self._bath_reader = BackgroundReader(bath.read_c, role="bath", port=bath.port,
                                                 timeout_s=self.station.bath.timeout_s)
        if alg.model != "sim" and self.p.protocol.ts_modality == "pressure":
            self._algometer_reader = BackgroundReader(alg.read_kpa, role="algometer", port=alg.port,
                                                      timeout_s=self.station.algometer.timeout_s, interval_s=0.1)

    def _read_bath(self) -> float:
        """Return the bath temperature: the background reader's latest value, or a direct read."""
        assert self.devices is not None
        return self._bath_reader.get() if self._bath_reader is not None else self.devices.bath.read_c()

    def _open_ui(self) -> None:
        """Open the participant screen first (it can take seconds), then start session time at 0."""
        self.ui.open()
        self._status(participant=self.participant, visit=self.visit, operator=self.operator,
                     bath_range=[self.p.cold_pressor.bath_min_c, self.p.cold_pressor.bath_max_c])
        restart = getattr(self.clock, "restart", None) or getattr(getattr(self.clock, "base", None), "restart", None)
        if restart is not None:
            restart()

    def _enter(self, phase: str) -> None:
        prev = self.phase
        self.phase = phase
        if prev in PHASES:
            self.log("transition", **{"from": prev, "to": phase, "trigger": "next"})
        self.log("phase_enter", phase=phase)
        self._status(next_action="")

    def _safe_abort(self) -> None:
        if self.devices is not None:
            try:
                self.devices.thermode.abort()
            except Exception:  # noqa: BLE001 - safe shutdown must never raise
                pass

    def _finish(self, status: str, message: str = "") -> VisitOutcome:
        assert self.folder is not None
        res = self.results()
        try:
            if status == "completed":
                self.log("results", **res)
            self.log("session_end", status=status, message=message)
            self.folder.update_header(status=status, end_utc=iso(utc_now()), results=res, message=message)
        except OSError as e:
            if not self._write_failed:  # the end of a visit could not be recorded: it is not complete on disk
                status = "aborted"
                message = (f"{message}; " if message else "") + (
                    f"cannot write the session data in {self.folder.path} ({e.strerror or e}); free space, then: "
                    f"cpm-session resume {self.folder.path}")
        finally:
            self.folder.close()
        return VisitOutcome(self.folder.path, status, res, message)

    # ------------------------------------------------------------------ resume
    def _catch_up_ratings(self, events: list[dict[str, Any]]) -> None:
        """Append the ratings.csv rows of logged rating/ppt events the table lacks (killed between log and row)."""
        assert self.folder is not None
        with open(self.folder.path / "ratings.csv", newline="", encoding="utf-8") as f:
            n_rows = sum(1 for _ in csv.DictReader(f))
        missing = [e for e in events if e.get("event") in ("rating", "ppt")][n_rows:]
        for ev in missing:
            if ev["event"] == "ppt":
                row = {"phase": "ppt", "trial": ev.get("trial"), "attempt": 1, "site": self.p.calibration.site,
                       "intensity": ev.get("kpa"), "intensity_unit": "kPa", "onset_t": ev.get("t_start"),
                       "missing": False}
            else:
                row = {k: ev.get(k) for k in RATING_COLUMNS}
            self.folder.ratings.write({k: "" if row.get(k) is None else row[k] for k in RATING_COLUMNS})
        if missing:
            self.log("ratings_table_caught_up", rows=len(missing), from_seq=[e.get("seq") for e in missing])

    def resume(self, session_dir: Path, header: dict[str, Any], events: list[dict[str, Any]], reason: str = "") -> VisitOutcome:
        """Continue an interrupted session in the same folder from a safe point; record the gap."""
        self.visit, self.participant = header["visit"], header["participant"]
        self.baseline = None
        if self.visit != self.p.protocol.baseline_visit:
            self.baseline = find_baseline(session_dir.parent.parent, header["participant"], self.p.protocol.baseline_visit)
        completed: dict[str, Any] = {}
        for ev in events:
            if ev.get("event") == "phase_exit" and ev.get("status") == "completed":
                completed[ev["phase"]] = ev.get("output", {})
            if ev.get("event") == "resume_session":
                completed = {k: v for k, v in completed.items() if k in ev.get("kept_phases", [])}
        plan = self._plan()
        restart = next((p for p in plan if p not in completed), "done")
        restart = RESTART_FROM.get(restart, restart)
        keep = plan[: plan.index(restart)]
        self.outputs = {k: completed[k] for k in keep if k in completed}
        last = events[-1] if events else {}
        try:
            last_wall = dt.datetime.fromisoformat(str(last.get("wall", "")).replace("Z", "+00:00"))
            gap_s = (utc_now() - last_wall).total_seconds()
        except ValueError:
            gap_s = None
        if gap_s is not None and gap_s > self.p.resume.max_gap_s and not reason.strip():
            raise SessionError(f"{session_dir} was interrupted {gap_s / 3600:.1f} h ago, more than the protocol's "
                               f"resume.max_gap_s ({self.p.resume.max_gap_s / 3600:.1f} h); start a new session, "
                               "or resume with --override-reason \"...\"")
        self._preflight_questionnaires()
        self._open_ui()
        self.folder = SessionFolder(session_dir, self.clock.now)
        self.phase = "resumed"
        self.log("resume_session", gap_wall_s=None if gap_s is None else round(gap_s, 3),
                 previous_status=header.get("status"), last_event=last.get("event"), last_seq=last.get("seq"),
                 restart_phase=restart, kept_phases=keep, operator=self.operator, reason=reason)
        self._catch_up_ratings(events)
        gaps = list(header.get("resumed", []))
        gaps.append({"at_utc": iso(utc_now()), "gap_wall_s": gap_s, "restart_phase": restart})
        self.folder.update_header(status="running", resumed=gaps)
        return self._run(set(keep))


# -------------------------------------------------------------------------------------------------
# Convenience entry points.
def run_visit(protocol: Protocol, station: Station, *, data_dir: str | Path, participant: str, visit: str,
              ui: ParticipantUI | None = None, clock: Clock | None = None, simulate: bool = True, seed: int = 0,
              staff: str = "auto", operator: str = "SIM", truth: ParticipantTruth | None = None,
              speed: float | None = None, override_reason: str = "", devices: Devices | None = None) -> VisitOutcome:
    """Run one visit. With `simulate`, a simulated participant with `truth` answers every prompt."""
    from cpm_session.clock import VirtualClock
    from cpm_session.sim.participant import ParticipantTruth, SimParticipant
    from cpm_session.ui.headless import HeadlessUI

    clock = clock or VirtualClock()
    ui = ui or HeadlessUI(clock)
    sim = SimParticipant(truth or ParticipantTruth(), np.random.default_rng(seed)) if simulate else None
    eng = Engine(protocol, station, ui=ui, clock=clock, participant=sim, staff=staff, operator=operator, seed=seed,
                 devices=devices)
    return eng.start(data_dir=Path(data_dir), participant=participant, visit=visit, simulate=simulate, speed=speed,
                     override_reason=override_reason)


def run_simulated_visit(data_dir: str | Path, participant: str, visit: str, *,
                        protocol_path: str | Path = "protocols/cpm-thermal.toml", seed: int = 0,
                        truth: ParticipantTruth | None = None, clock: Clock | None = None, operator: str = "SIM",
                        station_path: str | Path = "hardware/sim.toml") -> Path:
    """Run a headless simulated visit on a virtual clock; return the session folder."""
    protocol = load_protocol(resolve(protocol_path))
    station = load_station(resolve(station_path))
    return run_visit(protocol, station, data_dir=data_dir, participant=participant, visit=visit, seed=seed,
                     truth=truth, clock=clock, operator=operator).session_dir


def load_session(session_dir: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Return (session.json header, events) of a session folder; tolerate a torn last log line."""
    d = Path(session_dir)
    if not (d / "events.jsonl").exists():
        raise SessionError(f"{d} is not a session folder (no events.jsonl)")
    events, _problem = read_events(d / "events.jsonl")
    try:
        header = json.loads((d / "session.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        start = next((e for e in events if e.get("event") == "session_start"), None)
        if start is None:
            raise SessionError(f"{d}: neither session.json nor a session_start event can be read") from None
        header = {k: v for k, v in start.items() if k not in ("seq", "t", "wall", "event", "prev")}
        header["status"] = "running"
        write_json_atomic(d / "session.json", header)
    return header, events


def resume_visit(session_dir: str | Path, *, ui: ParticipantUI | None = None, clock: Clock | None = None,
                 staff: str | None = None, operator: str | None = None, truth: ParticipantTruth | None = None,
                 protocol_path: str | Path | None = None, override_reason: str = "") -> VisitOutcome:
    """Resume an interrupted (killed, aborted or faulted) session in its own folder."""
    from cpm_session.clock import VirtualClock
    from cpm_session.sim.participant import ParticipantTruth, SimParticipant
    from cpm_session.ui.headless import HeadlessUI

    d = Path(session_dir)
    header, events = load_session(d)
    if header.get("status") == "completed":
        raise SessionError(f"{d} is already completed; nothing to resume")
    protocol = load_protocol(protocol_path or header["protocol"])
    if protocol.sha256 != header.get("protocol_sha256") and not override_reason.strip():
        raise SessionError(f"protocol file {protocol.path} changed since the session started "
                           f"(sha256 {protocol.sha256[:12]}… vs {str(header.get('protocol_sha256'))[:12]}…); "
                           "restore it or give --override-reason")
    if not protocol.resume.allowed:
        raise SessionError(f"protocol {protocol.path} does not allow resuming ([resume] allowed = false)")
    station = load_station(header["station"])
    last_t = float(events[-1]["t"]) if events else 0.0
    base_clock = clock or VirtualClock()
    clk = OffsetClock(base_clock, last_t + 1.0 - base_clock.now())
    ui = ui or HeadlessUI(clk)
    simulate = bool(header.get("simulate"))
    n_resumes = sum(1 for e in events if e.get("event") == "resume_session")
    seed = int(header.get("seed") or 0)
    if truth is None and header.get("sim_truth"):
        truth = ParticipantTruth(**header["sim_truth"])
    sim = SimParticipant(truth or ParticipantTruth(), np.random.default_rng(seed + 7919 * (n_resumes + 1))) if simulate else None
    eng = Engine(protocol, station, ui=ui, clock=clk, participant=sim,
                 staff=staff or header.get("staff", "manual"), operator=operator or header.get("operator", ""), seed=seed)
    return eng.resume(d, header, events, reason=override_reason)
