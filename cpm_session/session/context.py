"""What every phase works with: clock, participant screen, log, devices, waits, staff keys and the e-stop.

Waiting always goes through `Context.wait`, which draws frames, delivers staff keys, samples the devices
and honours pause; nothing sleeps on the wall clock directly. The context cannot tell a simulated device
or participant from a real one: whoever wants to follow the visit (a simulated world, a sync-marker
stream) subscribes to `observers` and sees every logged event and every `notify` signal.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cpm_session.clock import Clock
from cpm_session.config.protocol import Protocol
from cpm_session.config.station import Station
from cpm_session.devices.background import BackgroundReader
from cpm_session.devices.factory import Devices
from cpm_session.devices.thermode_qc import assess_stimulus
from cpm_session.errors import CpmError
from cpm_session.record.folder import SessionFolder
from cpm_session.record.schema import TRACE_COLUMNS
from cpm_session.session.fidelity_watch import FidelityWatch
from cpm_session.session.machine import Machine
from cpm_session.session.sync import Sync
from cpm_session.ui.base import Choice, ParticipantUI

Observer = Callable[[str, dict[str, Any]], None]
"""Called with (event or signal name, its fields incl. session time `t`) after every log append and notify."""

IDLE_SAMPLE_S = 1.0        # device sampling between stimuli
ACTIVE_SAMPLE_S = 0.1      # device sampling during stimuli and the cold pressor
PAUSE_POLL_S = 0.1


class EmergencyStop(Exception):
    """Escape was pressed: unwind the visit (the thermode has already been aborted)."""


class TrialInterrupted(Exception):
    """A pause interrupted a stimulus: the trial is discarded and repeated after the pause."""


class VisitFault(CpmError):
    """The visit cannot go on safely now (bath out of range, device fault); it can be resumed."""


@dataclass(frozen=True)
class SessionSettings:
    """How this visit is run (recorded in the header)."""

    operator: str = ""
    seed: int = 0
    staff: str = "manual"  # label only: who confirms staff steps is whoever presses space
    require_licensed_wording: bool = True


class Context:
    """The running visit's shared state and services (one per run or resume)."""

    def __init__(self, protocol: Protocol, station: Station, *, ui: ParticipantUI, clock: Clock, devices: Devices,
                 cap_c: float, settings: SessionSettings) -> None:
        self.p = protocol
        self.station = station
        self.ui = ui
        self.clock = clock
        self.devices = devices
        self.cap_c = cap_c
        self.settings = settings
        self.operator = settings.operator
        self.folder: SessionFolder | None = None
        self.sync = Sync.open(protocol, station)  # LSL marker stream, when the protocol or station asks
        self.machine = Machine(self.log)
        self.observers: list[Observer] = []
        self.fidelity = FidelityWatch(self)
        """Staff countdown to TS_post and a `deviation` event the moment a [fidelity] limit is exceeded."""
        self.observers.append(self.fidelity)
        self.participant = self.visit = ""
        self.outputs: dict[str, Any] = {}
        self.baseline: dict[str, Any] | None = None
        self.last_abort_t: float | None = None
        self.stim_end = -1.0
        self.in_water_t: float | None = None
        self.withdrawn_t: float | None = None
        self.bath_warned = False
        self.bath_samples: list[tuple[float, float]] = []
        self.continuous_id: str | None = None
        self.write_failed = False
        self.bath_reader: BackgroundReader | None = None
        self.algometer_reader: BackgroundReader | None = None
        self._status_data: dict[str, Any] = {}
        self._next_sample = 0.0
        self._awaiting_step: str | None = None
        self._confirmed = False
        self._pause_requested = False
        self._resume_requested = False
        self._note_requested = False
        self.skip_requested = False
        self.last_pause_s = 0.0

    # ------------------------------------------------------------------ log, signals, status
    @property
    def phase(self) -> str:
        """Return the current visit phase."""
        return self.machine.phase

    def log(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append an event to the session log (no-op before the folder exists) and tell the observers.

        A sync-marker event is first sent to the LSL marker stream, stamped now or at `lsl_at` (a moment taken
        with `sync.now()`, e.g. the launch); that LSL timestamp goes into `lsl_t`."""
        lsl_at = fields.pop("lsl_at", None)
        if self.folder is None:
            return {}
        lsl_t = self.sync.marker(event, self.folder.log.seq, fields, at=lsl_at)
        if lsl_t is not None:
            fields["lsl_t"] = lsl_t
        rec = self.folder.log.append(event, **fields)
        self._tell(event, rec)
        return rec

    def notify(self, signal: str, **fields: Any) -> None:
        """Tell the observers something that is not an event of the record (e.g. a staff step is awaited)."""
        self._tell(signal, {"t": self.clock.now(), **fields})

    def _tell(self, name: str, fields: dict[str, Any]) -> None:
        for obs in list(self.observers):
            obs(name, fields)

    def status(self, **kw: Any) -> None:
        """Update the staff status view."""
        self._status_data.update(kw)
        self._status_data["phase"] = self.phase
        self.ui.set_status(self._status_data)

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
                self.skip_requested = True
            else:
                self.log("key_ignored", key="s", phase=self.phase, reason="skip only applies to acclimatization")
        elif key == "p":
            if self.in_water_t is not None:
                self.log("key_ignored", key="p", phase=self.phase,
                         reason="the cold pressor cannot pause; use w (withdrawal) or Escape")
                self.status(warning="cannot pause during the immersion")
            elif self.machine.state == "paused":
                self._resume_requested = True
            else:
                self._pause_requested = not self._pause_requested
        elif key == "w":
            if self.in_water_t is not None and self.withdrawn_t is None:
                self.withdrawn_t = now
                self.log("withdrawal", t_in_water_s=round(now - self.in_water_t, 3), operator=self.operator)
            else:
                self.log("key_ignored", key="w", phase=self.phase, reason="no hand in the water")
        elif key == "n":
            self._note_requested = True  # the note box opens at the next safe point (no heat, no hand in water)

    def emergency_stop(self, reason: str) -> None:
        """Abort the thermode to neutral at once, stop all timers, and unwind the visit (resumable)."""
        t_key = self.clock.now()
        abort_problem = ""
        try:
            self.devices.thermode.abort()
        except Exception as e:  # noqa: BLE001 - log it; the device-side timer still ends the stimulus
            abort_problem = str(e)
        self.last_abort_t = self.clock.now()
        self.stim_end = -1.0
        self.log("emergency_stop", reason=reason, t_key=round(t_key, 6), t_abort=round(self.last_abort_t, 6),
                 phase=self.phase, operator=self.operator, abort_problem=abort_problem)
        self.ui.show("aborted", self.p.texts.aborted)
        raise EmergencyStop(reason)

    def safe_abort(self) -> None:
        """Send the thermode to neutral; never raises (safe shutdown)."""
        try:
            self.devices.thermode.abort()
        except Exception:  # noqa: BLE001 - safe shutdown must never raise
            pass

    # ------------------------------------------------------------------ devices
    def read_bath(self) -> float:
        """Return the bath temperature: the background reader's latest value, or a direct read."""
        return self.bath_reader.get() if self.bath_reader is not None else self.devices.bath.read_c()

    def start_background_readers(self) -> None:
        """Read a bath (and, in pressure visits, an algometer) whose reads block on a port in background
        threads (real time only), so a slow or silent device never blocks the frame loop that handles Escape."""
        if not math.isfinite(self.clock.speed):
            return
        bath, alg = self.devices.bath, self.devices.algometer
        if bath.blocking_io:
            self.bath_reader = BackgroundReader(bath.read_c, role="bath", port=bath.port,
                                                timeout_s=self.station.bath.timeout_s)
        if alg.blocking_io and self.p.protocol.ts_modality == "pressure":
            self.algometer_reader = BackgroundReader(alg.read_kpa, role="algometer", port=alg.port,
                                                     timeout_s=self.station.algometer.timeout_s, interval_s=0.1)

    def stop_background_readers(self) -> None:
        """Stop the background readers (never raises)."""
        for reader in (self.bath_reader, self.algometer_reader):
            if reader is not None:
                reader.stop()

    def sample(self, now: float) -> None:
        """Record the devices' readings when due (10 Hz during a stimulus or immersion, else 1 Hz)."""
        if self.folder is None or now < self._next_sample:
            return
        active = now < self.stim_end or self.in_water_t is not None
        self._next_sample = now + (ACTIVE_SAMPLE_S if active else IDLE_SAMPLE_S)
        r = self.devices.thermode.read()
        self.folder.devices.write({"t": round(now, 4), "role": "thermode", "quantity": "zone_mean_c",
                                   "value": round(r.mean_c, 2), "unit": "C"})
        bath_c = self.read_bath()
        self.folder.devices.write({"t": round(now, 4), "role": "bath", "quantity": "bath_c",
                                   "value": round(bath_c, 3), "unit": "C"})
        if self.p.protocol.ts_modality == "pressure":
            kpa = self.algometer_reader.get() if self.algometer_reader else self.devices.algometer.read_kpa()
            self.folder.devices.write({"t": round(now, 4), "role": "algometer", "quantity": "pressure_kpa",
                                       "value": round(kpa, 2), "unit": "kPa"})
        self.status(thermode_c=round(r.mean_c, 1), bath_c=round(bath_c, 2))
        if self.in_water_t is not None:
            self.bath_samples.append((now, bath_c))
            self._watch_bath(bath_c)
            self.fidelity.on_bath(now, bath_c)

    def _watch_bath(self, bath_c: float) -> None:
        cp = self.p.cold_pressor
        out = not (cp.bath_min_c <= bath_c <= cp.bath_max_c)
        if out and not self.bath_warned:
            self.bath_warned = True
            self.log("bath_warning", bath_c=round(bath_c, 3), range_c=[cp.bath_min_c, cp.bath_max_c])
            self.status(warning=f"bath {bath_c:.2f} °C out of range during the immersion")
        elif not out:
            self.bath_warned = False

    def stimulus_delivered(self, phase: str, trial: int, target_c: float, launch_t: float, duration_s: float) -> str:
        """Judge what the thermode reports it delivered during the stimulus just ended, keep its trace in
        thermode_trace.csv and log a `stimulus_delivered` QC event; return the QC flags ('' when fine or
        when the thermode keeps no trace)."""
        trace = self.devices.thermode.trace()
        if not trace or self.folder is None:
            return ""
        th = self.p.thermode
        qc = assess_stimulus(trace, target_c=target_c, neutral_c=self.p.safety.neutral_c, launch_t=launch_t,
                             rise_c_per_s=th.rise_c_per_s, duration_s=duration_s)
        stimulus_id = f"{phase}:{trial}"
        table = self.folder.table("thermode_trace.csv", TRACE_COLUMNS)
        width = len(TRACE_COLUMNS) - 3
        ts = np.round([r.t for r in trace], 4).tolist()
        neutral = np.round([r.neutral_c for r in trace], 2).tolist()
        zones = np.round([r.zones_c[:width] for r in trace], 2).tolist()
        table.write_rows([[t, stimulus_id, n, *z] for t, n, z in zip(ts, neutral, zones, strict=True)])
        self.log("stimulus_delivered", phase=phase, trial=trial, stimulus=stimulus_id, **qc.as_event())
        flags = ";".join(qc.flags)
        if flags:
            self.status(warning=f"{phase} {trial}: thermode delivered off target ({flags.replace(';', ', ')})")
        return flags

    # ------------------------------------------------------------------ waiting
    def frame_s(self) -> float:
        """Return the session seconds one frame of the participant screen lasts."""
        return self.ui.frame_s * self.clock.speed if math.isfinite(self.clock.speed) else math.inf

    def wait(self, seconds: float, stop_when: Callable[[], bool] | None = None) -> None:
        """Let `seconds` of session time pass while drawing, sampling devices and handling keys and pause."""
        end = self.clock.now() + seconds
        while True:
            self.ui.tick()
            if self._pause_requested and self.machine.state != "paused":
                self._do_pause()
                end += self.last_pause_s
            now = self.clock.now()
            if self._note_requested and now >= self.stim_end and self.in_water_t is None:
                end += self._take_note()
                now = self.clock.now()
            self.sample(now)
            self.fidelity.tick(now)
            if stop_when is not None and stop_when():
                return
            if now >= end - 1e-9:
                return
            step = min(end - now, max(1e-3, self._next_sample - now), self.frame_s())
            due = self.fidelity.next_due()
            if due is not None and due > now:
                step = min(step, due - now)
            nk = self.ui.next_key_t()
            if nk is not None:
                step = min(step, max(1e-3, nk - now))
            self.clock.sleep(step)

    def wait_until(self, t: float) -> None:
        """Wait until session time `t` (returns at once if it has passed)."""
        self.wait(max(0.0, t - self.clock.now()))

    def _do_pause(self) -> None:
        t0 = self.clock.now()
        stim_active = t0 < self.stim_end
        if stim_active:
            self.devices.thermode.abort()
            self.stim_end = -1.0
        if self.continuous_id is not None:  # the trial is discarded: take the live slider down, keep no samples
            frames = len(self.ui.stop_continuous())
            self.log("continuous_rating_discarded", stimulus=self.continuous_id, frames=frames)
            self.continuous_id = None
        phase = self.phase
        self.machine.go("pause")
        self._resume_requested = False
        self.log("pause", phase=phase, operator=self.operator, stimulus_aborted=stim_active)
        self.ui.show("paused", self.p.texts.paused)
        self.status(next_action="paused: press p to resume")
        while not self._resume_requested:
            self.ui.tick()
            self.sample(self.clock.now())
            self.fidelity.tick(self.clock.now())
            nk = self.ui.next_key_t()
            step = min(PAUSE_POLL_S, self.frame_s())
            if nk is not None:
                step = min(step, max(1e-3, nk - self.clock.now()))
            self.clock.sleep(step)
        self._pause_requested = False
        self.last_pause_s = self.clock.now() - t0
        self.log("resume", phase=phase, paused_s=round(self.last_pause_s, 3), operator=self.operator)
        self.machine.go("resume")
        if stim_active:
            raise TrialInterrupted("stimulus aborted by pause")

    def staff_step(self, step: str) -> None:
        """Wait until the staff confirm `step` with space (whoever presses it: a person or a simulated staff)."""
        self._awaiting_step = step
        self._confirmed = False
        self.status(next_action=f"{step}: press space")
        self.notify("staff_step_awaited", step=step)
        while not self._confirmed:
            self.wait(0.1, stop_when=lambda: self._confirmed)
        self._awaiting_step = None
        self.log("staff_step", step=step, operator=self.operator, auto=self.settings.staff == "auto")
        self._confirmed = False

    # ------------------------------------------------------------------ notes and adverse events
    def _take_note(self) -> float:
        """Open the staff note box (timers are held, like a pause); return the session seconds it took."""
        self._note_requested = False
        t0 = self.clock.now()
        self.status(next_action="typing a note (Enter saves, Escape cancels)")
        text = self.ui.ask_text("Note or adverse event (start with 'AE:' for an adverse event)")
        if text:
            self.record_note(text)
        self.status(next_action="")
        return self.clock.now() - t0

    def record_note(self, text: str) -> None:
        """Log a staff note; 'AE: description; severity=...; serious=...' also records an adverse event."""
        from cpm_session.record.adverse_events import ALLOWED, parse_ae_note, record_adverse_event

        self.log("note", text=text, operator=self.operator, phase=self.phase)
        if self.folder is None:
            return
        fields = parse_ae_note(text, today=dt.date.today())
        if fields is None:
            return
        for key, options in ALLOWED.items():  # ask the staff for what the note did not say
            if key not in fields:
                idx = self.ui.choose(Choice(f"Adverse event – {key.replace('_', ' ')}", list(options), 120.0,
                                            for_staff=True))
                if idx is not None:
                    fields[key] = options[idx]
        participant_dir = self.folder.path.parent
        try:
            rec = record_adverse_event(participant_dir.parent, participant_dir.name, fields,
                                       operator=self.operator or "?", session_dir=self.folder.path,
                                       clock_now=self.clock.now)
            self.log("adverse_event", **{k: v for k, v in rec.items() if k not in ("seq", "t", "wall", "event", "prev")},
                     stored_in_ae_log=True)
        except CpmError as e:
            self.log("adverse_event", **fields, operator=self.operator, stored_in_ae_log=False,
                     problem=f"{e}; complete it with: cpm-session ae add --participant {participant_dir.name} ...")
            self.status(warning=f"adverse event not complete: {e}")
