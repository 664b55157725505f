"""Medoc Pathway / TSA-2 thermode driven through Medoc Main Station (MMS) external control over TCP.

MMS is the server; every command opens a new connection, sends one command and reads one response
(as every public implementation does). What MMS does with a stimulus (documented in docs/medoc.md):

- SELECT_TP <code> opens the program mapped to the requested temperature (system state TEST).
  With 'Automatic Start' on, MMS starts the pre-test by itself; otherwise the test state is READY and
  START must be sent (some set-ups need a second START after the pre-test). The pre-test has a
  variable length; a TRIGGER sent before the test state is RUNNING is lost.
- Programs built to wait for a trigger give no heat before TRIGGER: `prepare()` ends there.
- `launch()` sends TRIGGER and accepts it only if MMS answers OK with the test RUNNING; otherwise it
  waits for RUNNING again and retries (`trigger_retries`), then raises MedocTriggerLost. No stimulus is
  assumed delivered unless MMS reported the test running.
- The program itself times the ramp, plateau and return; at its end MMS returns to program selection.
- `abort()` sends ABORT on a new connection at once, without waiting for a command in flight.

Commands are spaced by `command_spacing_s` (MMS misses faster ones, users report connection resets);
refused or reset connections are retried `retries` times. A background thread polls GET_STATUS
(`idle_poll_s` between stimuli, every two spacings during one) so `read()` never waits on the network;
a SAFETY_WARNING or SAFETY_ERROR seen by any command raises MedocSafetyError (a DeviceError: the
session pauses) at the next call.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
import time

from cpm_session.clock import Clock
from cpm_session.config.medoc import MedocSettings
from cpm_session.devices.base import (
    DeviceInfo,
    Thermode,  # noqa: F401
    ThermodeReading,
)
from cpm_session.devices.medoc_link import (
    ACTIVE_POLL_SPACINGS,
    LICENSE_WORDS,  # noqa: F401
    MAX_STARTS,
    MIN_ACTIVE_POLL_S,
    RETRY_BACKOFF_S,  # noqa: F401
    RETURNED_TOLERANCE_C,
    SAFE_MODE_WORDS,  # noqa: F401
    STALE_FACTOR,
    URGENT_RETRY_S,  # noqa: F401
    MedocLink,
    MedocProgramMissing,
    MedocSafeMode,  # noqa: F401
    MedocSafetyError,  # noqa: F401
    MedocTriggerLost,
    _hex,  # noqa: F401
    _NoReply,  # noqa: F401
)
from cpm_session.devices.wire import WireError  # noqa: F401
from cpm_session.devices.wire import medoc as wire
from cpm_session.devices.wire.medoc import Command, ReturnCode, SystemState, TestState
from cpm_session.errors import DeviceDisconnected, DeviceError, DeviceTimeout, SafetyLimitError  # noqa: F401

log = logging.getLogger(__name__)


class MedocThermode(MedocLink):
    """A Medoc thermode behind MMS external control. Construct, then `connect()`; `close()` always."""

    model = "medoc"

    def __init__(self, settings: MedocSettings, *, cap_c: float, neutral_c: float, clock: Clock) -> None:
        super().__init__(cap_c, neutral_c)
        self.s = settings
        self.clock = clock
        self.port = settings.address
        self.host, self.tcp_port = settings.host, settings.port
        self._io = threading.Lock()
        """Held for a normal exchange (one command at a time, spaced); abort() does not take it."""
        self._send_lock = threading.Lock()
        self._last_send = -1e9
        self._last_ok_send = -1e9
        self._aborting = False
        self._latest: ThermodeReading | None = None
        self._latest_wall = -1e9
        self._latest_resp: wire.Response | None = None
        self._fault: DeviceError | None = None
        self._armed = False
        self._launched = False
        self._launch_wall = -1e9
        self._expected_end_clock = -1e9
        self._trace: list[ThermodeReading] = []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._poller: threading.Thread | None = None
        self.info: DeviceInfo | None = None
        self.last_program_code: int | None = None
        """Program code of the last prepared stimulus (the session records it per stimulus)."""
        self.last_program_c: float | None = None
        """Temperature of that program (differs from the request only with `snap = "down"`)."""
        self.last_requested_c: float | None = None
        self.last_trigger_perf: float | None = None
        """`time.perf_counter()` just before the accepted TRIGGER was sent (benchmarks)."""
        self.triggers_sent = 0
        self.snaps: list[tuple[float, float, int]] = []
        """(requested °C, program °C, code) of every snapped stimulus."""
        self.layout_seen: str = ""
        self.length_order_seen: str = ""

    # ---- program map ------------------------------------------------------------------------
    def available_targets_c(self) -> list[float]:
        """Return the mapped program temperatures at or below the cap, ascending."""
        return [t for t in self.s.programs if t <= self.cap_c + 1e-9]

    def program_for(self, target_c: float) -> tuple[float, int]:
        """Return (program temperature, code) for `target_c`: the exact key, or with `snap = "down"` the
        nearest program at or below it. Raises SafetyLimitError above the cap, MedocProgramMissing otherwise."""
        if not math.isfinite(target_c):
            raise SafetyLimitError(f"{self.role} on {self.port}: target {target_c} °C refused")
        self.check_target(target_c)
        key = round(target_c, 2)
        if key in self.s.programs:
            t = key
        elif self.s.snap == "down":
            temps = self.available_targets_c()
            i = bisect.bisect_right(temps, key) - 1
            if i < 0:
                raise MedocProgramMissing(f"no program at or below {target_c:.2f} °C (lowest is "
                                          f"{temps[0] if temps else float('nan'):.2f} °C)", role=self.role,
                                          port=self.port, command="SELECT_TP")
            t = temps[i]
        else:
            near = ", ".join(f"{x:g}" for x in self._neighbours(key))
            raise MedocProgramMissing(f"no MMS program mapped to {target_c:.2f} °C (nearest mapped: {near}); add "
                                      f"it to 'programs' or choose a mapped temperature", role=self.role,
                                      port=self.port, command="SELECT_TP")
        self.check_target(t)
        return t, self.s.programs[t]

    def _neighbours(self, key: float) -> list[float]:
        temps = list(self.s.programs)
        i = bisect.bisect_left(temps, key)
        return temps[max(0, i - 1):i + 1]

    # ---- Thermode ---------------------------------------------------------------------------
    def connect(self) -> DeviceInfo:
        """Ask MMS for its status, abort a test left open, check the programs' baseline, start polling."""
        if self.s.neutral_c is not None and abs(self.s.neutral_c - self.neutral_c) > 0.05:
            raise DeviceError(f"the MMS programs use a baseline of {self.s.neutral_c:.1f} °C (station 'neutral_c') "
                              f"but the protocol's neutral is {self.neutral_c:.1f} °C", role=self.role,
                              port=self.port, command="connect")
        with self._io:
            r = self._exchange(Command.GET_STATUS)
            self._check(r, "GET_STATUS")
            aborted = ""
            if r.in_test:
                a = self._exchange(Command.ABORT)
                aborted = f"aborted a test left open ({r.describe()}) -> {a.describe()}"
                log.warning("%s on %s: %s", self.role, self.port, aborted)
        extra = {"system_state": wire.name_of(SystemState, r.system_state),
                 "test_state": wire.name_of(TestState, r.test_state),
                 "layout": r.layout, "length_order": r.length_order,
                 "temperature_c": "-" if r.temperature_c is None else f"{r.temperature_c:.2f}",
                 "programs": str(len(self.s.programs)),
                 "program_range_c": f"{min(self.s.programs):g}-{max(self.s.programs):g}",
                 "neutral_c": f"{self.neutral_c:.1f}", "snap": self.s.snap}
        if aborted:
            extra["note"] = aborted
        if r.message:
            extra["message"] = r.message
        self.info = DeviceInfo(self.role, self.model, self.port, "Medoc MMS external control", "", extra)
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll_loop, name="medoc-status", daemon=True)
        self._poller.start()
        return self.info

    def status(self) -> wire.Response:
        """Ask MMS for its status now (spaced) and return the response."""
        with self._io:
            return self._exchange(Command.GET_STATUS)

    def prepare(self, target_c: float, rise_c_per_s: float, return_c_per_s: float, duration_s: float) -> None:
        """Select the program mapped to `target_c`, start it and wait until MMS reports the test RUNNING.

        The program must wait for a trigger (no heat until `launch()`); its ramp and plateau are set in
        MMS, not by the arguments (kept for the common interface and the expected end of the stimulus).
        """
        self._raise_fault()
        temp, code = self.program_for(target_c)
        if temp != round(target_c, 2):
            self.snaps.append((target_c, temp, code))
            log.info("%s on %s: %.2f °C snapped down to program %d (%.2f °C)", self.role, self.port, target_c, code,
                     temp)
        with self._io:
            self._armed = False
            self._end_previous()
            r = self._exchange(Command.SELECT_TP, code)
            self._check(r, f"SELECT_TP {code}", program_c=temp)
            self.last_requested_c, self.last_program_c, self.last_program_code = target_c, temp, code
            self._wait_running(r, f"SELECT_TP {code}")
            self._armed = True
            ramp_down = abs(temp - self.neutral_c) / return_c_per_s if return_c_per_s > 0 else 0.0
            self._pending_s = max(0.0, duration_s) + ramp_down

    def launch(self) -> None:
        """Send TRIGGER; accept it only if MMS answers OK with the test RUNNING (else wait and retry)."""
        self._raise_fault()
        if not self._armed:
            raise MedocTriggerLost("launch without a prepared program (call prepare first)", role=self.role,
                                   port=self.port, command="TRIGGER")
        with self._io:
            last = ""
            for attempt in range(self.s.trigger_retries + 1):
                self._wait_spacing()
                self.last_trigger_perf = time.perf_counter()
                r = self._exchange(Command.TRIGGER, spaced=False)
                self.triggers_sent += 1
                if r.return_code in (ReturnCode.SAFETY_WARNING, ReturnCode.SAFETY_ERROR):
                    self._armed = False
                    self._check(r, "TRIGGER")
                if r.ok and r.running:
                    self._armed = False
                    self._launched = True
                    self._trace = [self._latest] if self._latest is not None else []
                    self._launch_wall = time.monotonic()
                    self._expected_end_clock = self.clock.now() + getattr(self, "_pending_s", 0.0)
                    self._wake.set()  # poll the stimulus at once, then every spacing
                    return
                last = r.describe()
                log.warning("%s on %s: TRIGGER not taken (%s), attempt %d", self.role, self.port, last, attempt + 1)
                if attempt < self.s.trigger_retries:
                    self._wait_running(self._exchange(Command.GET_STATUS), "TRIGGER")
            self._armed = False
            raise MedocTriggerLost(f"trigger lost: MMS did not take it after {self.s.trigger_retries + 1} attempt(s); "
                                   "no stimulus was delivered", role=self.role, port=self.port, command="TRIGGER",
                                   reply=last)

    def stimulate(self, target_c: float, rise_c_per_s: float, return_c_per_s: float, duration_s: float) -> None:
        """Prepare and launch at once (`prepare` waits for the pre-test: call it ahead of the onset if you can)."""
        self.prepare(target_c, rise_c_per_s, return_c_per_s, duration_s)
        self.launch()

    def abort(self) -> None:
        """Send ABORT on a new connection at once (no spacing wait, no wait for a command in flight)."""
        self._armed = False
        self._launched = False
        self._aborting = True  # the status poller stands down
        try:
            r = self._exchange(Command.ABORT, spaced=False, urgent=True)
        finally:
            self._aborting = False
        if r.return_code in (ReturnCode.OK, ReturnCode.ILLEGAL_STATE, ReturnCode.ILLEGAL_TEST_STATE):
            return  # ILLEGAL_*: nothing was running
        self._check(r, "ABORT")

    def read(self) -> ThermodeReading:
        """Return the temperature MMS last reported (polled in the background; queried if stale).

        NaN when MMS uses the short (older) response layout, which carries no temperature.
        """
        self._raise_fault()
        stale = max(2.0, STALE_FACTOR * self.s.idle_poll_s)
        latest = self._latest
        if latest is not None and time.monotonic() - self._latest_wall <= stale:
            return latest
        if not self._io.acquire(timeout=self.s.timeout_s):
            if latest is not None:
                return latest
            raise DeviceTimeout("status not available (another command in flight)", role=self.role, port=self.port,
                                command="GET_STATUS")
        try:
            self._exchange(Command.GET_STATUS)
        finally:
            self._io.release()
        self._raise_fault()
        assert self._latest is not None
        return self._latest

    def stimulus_details(self) -> dict[str, object]:
        """Return the MMS program of the stimulus just launched (the session records it per stimulus)."""
        return {"program_code": self.last_program_code, "program_c": self.last_program_c,
                "requested_c": self.last_requested_c}

    def trace(self) -> list[ThermodeReading]:
        """Return the temperatures polled since the last launch (sparse: one per command spacing)."""
        return list(self._trace)

    def error_status(self) -> str:
        """Return '' when MMS reports OK, else the return code and message of its last status."""
        r = self._latest_resp
        if r is None or r.ok:
            return ""
        return wire.return_text(r.return_code) + (f" {r.message!r}" if r.message else "")

    def close(self) -> None:
        """Stop polling; send ABORT if a stimulus was prepared or may still run. Never raises."""
        self._stop.set()
        self._wake.set()
        if self._poller is not None and self._poller is not threading.current_thread():
            self._poller.join(self.s.timeout_s + self.s.command_spacing_s + 1.0)
        busy = self._armed or self._launched or (self._latest_resp is not None and self._latest_resp.in_test)
        if busy:
            try:
                self.abort()
            except Exception:  # noqa: BLE001 - close must not raise
                pass

    def try_program(self, temp_c: float) -> wire.Response:
        """Select the program mapped to `temp_c`, then ABORT it before any trigger (station check).

        Returns the SELECT_TP response; raises the error a refusal stands for (MedocProgramMissing, ...).
        """
        code = self.s.programs[round(temp_c, 2)]
        with self._io:
            self._end_previous()
            r = self._exchange(Command.SELECT_TP, code)
            try:
                self._check(r, f"SELECT_TP {code}", program_c=temp_c)
            finally:
                if r.in_test or r.ok:
                    a = self._exchange(Command.ABORT)
                    deadline = time.monotonic() + self.s.end_timeout_s
                    while a.in_test and time.monotonic() < deadline:
                        a = self._exchange(Command.GET_STATUS)
            return r

    # ---- internals --------------------------------------------------------------------------
    def _end_previous(self) -> None:
        """Wait for a launched test to end; abort one left selected. Called with `_io` held."""
        r = self._exchange(Command.GET_STATUS)
        self._check(r, "GET_STATUS")
        if not r.in_test:
            return
        if self._launched or r.test_state == TestState.RUNNING and self._expected_end_clock > -1e8:
            remaining = max(0.0, self._expected_end_clock - self.clock.now()) / max(self.clock.speed, 1e-9) \
                if math.isfinite(self.clock.speed) else 0.0
            deadline = time.monotonic() + remaining + self.s.end_timeout_s
            while r.in_test and time.monotonic() < deadline:
                r = self._exchange(Command.GET_STATUS)
                self._check(r, "GET_STATUS")
            if not r.in_test:
                return
            raise DeviceError(f"the previous test did not end within {self.s.end_timeout_s:g} s of its expected end",
                              role=self.role, port=self.port, command="GET_STATUS", reply=r.describe())
        a = self._exchange(Command.ABORT)
        log.warning("%s on %s: aborted a test left selected (%s)", self.role, self.port, a.describe())
        deadline = time.monotonic() + self.s.end_timeout_s
        while r.in_test and time.monotonic() < deadline:
            r = self._exchange(Command.GET_STATUS)
        if r.in_test:
            raise DeviceError("MMS stays in a test after ABORT", role=self.role, port=self.port, command="ABORT",
                              reply=r.describe())

    def _wait_running(self, r: wire.Response, cmd_text: str) -> wire.Response:
        """Poll until the test is RUNNING, sending START while MMS waits for it (READY). `_io` held."""
        starts = 0
        seen_test = r.in_test
        deadline = time.monotonic() + self.s.pretest_timeout_s
        while True:
            self._raise_fault()
            if r.running:
                return r
            seen_test = seen_test or r.in_test
            if seen_test and not r.in_test:
                raise DeviceError("MMS left the test before it was RUNNING (stopped on the MMS screen?)",
                                  role=self.role, port=self.port, command=cmd_text, reply=r.describe())
            if r.in_test and r.test_state == TestState.PAUSED:
                raise DeviceError("the test is PAUSED on the MMS screen", role=self.role, port=self.port,
                                  command=cmd_text, reply=r.describe())
            if r.in_test and r.test_state == TestState.READY and starts < MAX_STARTS:
                starts += 1
                r = self._exchange(Command.START)
                self._check(r, "START")
                continue
            if time.monotonic() > deadline:
                raise DeviceTimeout(f"the test did not reach RUNNING within {self.s.pretest_timeout_s:g} s "
                                    "(pre-test too long, or 'Automatic Start' off and START not taken)",
                                    role=self.role, port=self.port, command=cmd_text, reply=r.describe())
            r = self._exchange(Command.GET_STATUS)
            self._check(r, "GET_STATUS")

    def _poll_loop(self) -> None:
        while True:
            lt = self._latest
            active = self._launched or (lt is not None and math.isfinite(lt.mean_c)
                                        and abs(lt.mean_c - self.neutral_c) > RETURNED_TOLERANCE_C)
            interval = max(ACTIVE_POLL_SPACINGS * self.s.command_spacing_s, MIN_ACTIVE_POLL_S) if active \
                else self.s.idle_poll_s
            self._wake.wait(interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            with self._send_lock:
                due = self._last_send + self.s.command_spacing_s - time.monotonic()
            if due > 0:  # not yet: never hold the line while waiting for the spacing
                self._stop.wait(due)
                if self._stop.is_set():
                    return
            if self._armed or self._aborting or not self._io.acquire(blocking=False):
                continue  # armed: keep the line free for TRIGGER; busy: the command in flight reports state
            try:
                self._exchange(Command.GET_STATUS)
            except DeviceError as e:
                log.info("%s on %s: status poll failed: %s", self.role, self.port, e)
                self._latest_wall = -1e9  # let read() query and report the problem
            finally:
                self._io.release()


def open_medoc(role: str, cfg: object, *, cap_c: float, neutral_c: float, clock: Clock,
               max_c: float | None = None) -> MedocThermode:
    """Validate the station's `[thermode]` table and return a MedocThermode (not yet connected)."""
    from cpm_session.config.medoc import medoc_settings

    settings = medoc_settings(cfg, max_c=max_c if max_c is not None else 50.0, path=f"{role} settings")
    return MedocThermode(settings, cap_c=cap_c, neutral_c=neutral_c, clock=clock)
