"""Medoc Main Station emulator: the external-control TCP protocol on a local port, with a thermode model.

One connection per command, like MMS: read one command, answer, close. The model follows the MMS
workflow: listening (system READY, test IDLE) -> SELECT_TP -> TEST with test READY (manual start) or
straight into the pre-test (automatic start) -> pre-test of variable length (test IDLE) -> RUNNING,
waiting for TRIGGER -> ramp to the program's temperature, plateau, return -> listening again.

Faults to inject: a TRIGGER in the pre-test is lost (answered ILLEGAL_TEST_STATE, or OK like a silent
loss), commands arriving within `spacing_s` of the last
taken command are reset unexecuted (MMS busy), `inject(return_code)` for the next
responses, `safe_mode`, `not_licensed` (close without a response), `drop()` / `restore()` to refuse
connections mid-visit, `reset_next(n)`, both response layouts and both length byte orders.
Device time = wall time × `speed` (a host on `RealClock(speed)` agrees with it).
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Self

from cpm_session.devices.wire import WireError
from cpm_session.devices.wire import medoc as wire
from cpm_session.devices.wire.medoc import Command, ReturnCode, SystemState, TestState

LISTENING, SELECTED, PRETEST, ARMED, STIMULUS, PAUSED = "listening", "selected", "pretest", "armed", "stimulus", "paused"


@dataclass
class Program:
    """One MMS Ramp & Hold program waiting for a trigger."""

    target_c: float
    plateau_s: float = 5.0
    rise_c_per_s: float = 10.0
    return_c_per_s: float = 10.0


@dataclass
class Received:
    """One command as the emulator saw it."""

    perf: float
    command: int
    parameter: int | None
    executed: bool
    reply_code: int | None = None
    state_after: str = ""


@dataclass
class StimulusRecord:
    """A triggered program as the emulator ran it (device seconds)."""

    code: int
    target_c: float
    trigger_t: float
    trigger_perf: float
    end_t: float | None = None
    aborted: bool = False
    peak_c: float = field(default=0.0)


class MedocEmulator:
    """A Medoc Main Station in external-control mode on `host:port` (port 0 picks a free one)."""

    kind = "thermode"

    def __init__(self, speed: float = 1.0, *, programs: Mapping[int, float | Program] | None = None,
                 host: str = "127.0.0.1", port: int = 0, baseline_c: float = 32.0,
                 pretest_s: tuple[float, float] = (1.0, 3.0), auto_start: bool = True, start_twice: bool = False,
                 spacing_s: float = 0.0, layout: Literal["full", "short"] = "full",
                 length_order: wire.LengthOrder = "little", lost_trigger_reply: Literal["illegal", "ok"] = "illegal",
                 seed: int = 0) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = float(speed)
        self.programs: dict[int, Program] = {
            c: (p if isinstance(p, Program) else Program(float(p))) for c, p in (programs or {}).items()}
        self.baseline_c = baseline_c
        self.pretest_s, self.auto_start, self.start_twice = pretest_s, auto_start, start_twice
        self.spacing_s, self.layout, self.length_order = spacing_s, layout, length_order
        self.lost_trigger_reply = lost_trigger_reply
        self.rng = random.Random(seed)
        self.lock = threading.RLock()
        self.received: list[Received] = []
        self.stimuli: list[StimulusRecord] = []
        self.safe_mode = False
        self.not_licensed = False
        self.dropped = False
        self._inject: list[tuple[int, Command | None, str]] = []
        self._reset_next = 0
        self._last_arrival = -1e9
        self._t0 = time.perf_counter()
        self.state = LISTENING
        self.program: int | None = None
        self._state_t = 0.0
        self._pretest_end = 0.0
        self._started_once = False
        self._temp_c = baseline_c
        self._temp_t = 0.0
        self._ramp_from = baseline_c
        self._test_start = 0.0
        self.host = host
        self._sock: socket.socket | None = socket.create_server((host, port))
        self.port = self._sock.getsockname()[1]
        self._sock.settimeout(0.05)
        self._running = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- lifecycle ------------------------------------------------------------------------
    @property
    def address(self) -> str:
        """Return `host:port`."""
        return f"{self.host}:{self.port}"

    def now(self) -> float:
        """Return device seconds since start (wall × speed)."""
        return (time.perf_counter() - self._t0) * self.speed

    def start(self) -> Self:
        """Accept connections in a background thread; return self."""
        if self._thread is None:
            self._running.set()
            self._thread = threading.Thread(target=self._serve, name="emulator-medoc", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._running.clear()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(2.0)
        with self.lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- faults ---------------------------------------------------------------------------
    def inject(self, return_code: int, *, n: int = 1, command: Command | None = None, message: str = "") -> None:
        """Answer the next `n` commands (of `command`, or any) with `return_code` (SAFETY_ERROR also ends the test)."""
        with self.lock:
            self._inject += [(return_code, command, message)] * n

    def reset_next(self, n: int = 1) -> None:
        """Reset the next `n` connections without executing their command."""
        with self.lock:
            self._reset_next += n

    def drop(self) -> None:
        """Stop listening: connections are refused (MMS closed, network down) until `restore()`.

        A running test goes on, as on the real station when the network fails."""
        with self.lock:
            self.dropped = True
            sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # stop listening now, even while accept() waits in the thread
            except OSError:
                pass
            sock.close()
            time.sleep(0.06)  # the serving thread leaves accept() within its 50 ms time-out

    def restore(self) -> None:
        """Listen on the same port again after `drop()`."""
        with self.lock:
            if self._sock is None:
                self._sock = socket.create_server((self.host, self.port))
                self._sock.settimeout(0.05)
            self.dropped = False

    # ---- model ----------------------------------------------------------------------------
    def _advance(self) -> None:
        now = self.now()
        if self.state == PRETEST and now >= self._pretest_end:
            self._set(SELECTED if self.start_twice and not self._started_once else ARMED, now)
            self._started_once = True
        if self.state == STIMULUS:
            assert self.program is not None
            p, st = self.programs[self.program], self.stimuli[-1]
            rise_s = abs(p.target_c - self._ramp_from) / p.rise_c_per_s
            if now >= st.trigger_t + rise_s + p.plateau_s:
                st.end_t = st.trigger_t + rise_s + p.plateau_s
                st.peak_c = max(st.peak_c, p.target_c)
                self._temp_c, self._temp_t = p.target_c, st.end_t
                self._set(LISTENING, st.end_t)
        self._temp_c, self._temp_t = self._temp_at(now), now
        if self.state == STIMULUS and self.stimuli:
            self.stimuli[-1].peak_c = max(self.stimuli[-1].peak_c, self._temp_c)

    def _temp_at(self, now: float) -> float:
        dt = max(0.0, now - self._temp_t)
        if self.state == STIMULUS and self.program is not None:
            p = self.programs[self.program]
            goal, rate = p.target_c, p.rise_c_per_s
        else:
            p2 = self.programs.get(self.program or -1)
            goal, rate = self.baseline_c, (p2.return_c_per_s if p2 else 10.0)
        step = rate * dt
        if abs(goal - self._temp_c) <= step:
            return goal
        return self._temp_c + (step if goal > self._temp_c else -step)

    def _set(self, state: str, t: float) -> None:
        self.state, self._state_t = state, t

    def temperature_c(self) -> float:
        """Return the thermode temperature now (°C)."""
        with self.lock:
            self._advance()
            return self._temp_c

    def states(self) -> tuple[int, int]:
        """Return (system state, test state) as MMS would report them."""
        return {LISTENING: (SystemState.READY, TestState.IDLE), SELECTED: (SystemState.TEST, TestState.READY),
                PRETEST: (SystemState.TEST, TestState.IDLE), ARMED: (SystemState.TEST, TestState.RUNNING),
                STIMULUS: (SystemState.TEST, TestState.RUNNING),
                PAUSED: (SystemState.TEST, TestState.PAUSED)}[self.state]

    @property
    def stimulating(self) -> bool:
        """Return True while a triggered program runs."""
        with self.lock:
            self._advance()
            return self.state == STIMULUS

    def _begin_pretest(self, now: float) -> None:
        lo, hi = self.pretest_s
        self._pretest_end = now + self.rng.uniform(lo, hi)
        self._set(PRETEST, now)

    def _end_test(self, now: float, aborted: bool) -> None:
        if self.state == STIMULUS and self.stimuli:
            self.stimuli[-1].end_t, self.stimuli[-1].aborted = now, aborted
        self._set(LISTENING, now)

    def execute(self, cmd: int, param: int | None, perf: float) -> tuple[int, str]:
        """Run one command on the model; return (return code, message)."""
        now = self.now()
        self._advance()
        if self.safe_mode and cmd != Command.GET_STATUS:
            return ReturnCode.ILLEGAL_STATE, "TSA is in Safe Mode: run a system Self-Test in MMS"
        st = self.state
        if cmd == Command.GET_STATUS:
            return ReturnCode.OK, ""
        if cmd == Command.SELECT_TP:
            if st != LISTENING:
                return ReturnCode.ILLEGAL_STATE, ""
            if param not in self.programs:
                return ReturnCode.ILLEGAL_ARG, ""
            self.program, self._started_once = param, False
            self._test_start = now
            if self.auto_start:
                self._begin_pretest(now)
            else:
                self._set(SELECTED, now)
            return ReturnCode.OK, ""
        if cmd == Command.START:
            if st != SELECTED:
                return ReturnCode.ILLEGAL_TEST_STATE, ""
            if self._started_once:
                self._set(ARMED, now)
            else:
                self._begin_pretest(now)
            return ReturnCode.OK, ""
        if cmd == Command.TRIGGER:
            if st != ARMED:
                return (ReturnCode.OK if self.lost_trigger_reply == "ok" else ReturnCode.ILLEGAL_TEST_STATE), ""
            assert self.program is not None
            self._ramp_from = self._temp_c
            self.stimuli.append(StimulusRecord(self.program, self.programs[self.program].target_c, now, perf))
            self._set(STIMULUS, now)
            return ReturnCode.OK, ""
        if cmd in (Command.ABORT, Command.STOP):
            if st == LISTENING:
                return ReturnCode.ILLEGAL_STATE, ""
            self._end_test(now, aborted=True)
            return ReturnCode.OK, ""
        if cmd == Command.PAUSE:
            if st == STIMULUS:
                self._set(PAUSED, now)
                return ReturnCode.OK, ""
            return ReturnCode.ILLEGAL_TEST_STATE, ""
        return ReturnCode.ILLEGAL_TEST_STATE, ""  # YES/NO/VAS...: not emulated beyond a refusal

    def response(self, cmd: int, stamp: int, code: int, message: str) -> bytes:
        """Return the response bytes for the current state."""
        sys_state, test_state = self.states()
        test_ms = int((self.now() - self._test_start) * 1000) if self.state != LISTENING else 0
        return wire.encode_response(command=cmd, system_state=sys_state, test_state=test_state, return_code=code,
                                    test_time_ms=max(0, test_ms), timestamp=stamp, temperature_c=self._temp_c,
                                    message=message, layout=self.layout, length_order=self.length_order)

    # ---- server ---------------------------------------------------------------------------
    def _serve(self) -> None:
        while self._running.is_set():
            sock = self._sock
            if self.dropped or sock is None:
                time.sleep(0.01)
                continue
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self.dropped:
                    continue
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(2.0)
            data = _read_command(conn)
            perf = time.perf_counter()
            if data is None:
                conn.close()
                return
            try:
                stamp, cmd, param = wire.decode_command(data)
            except WireError:
                conn.close()
                return
            with self.lock:
                too_soon = perf - self._last_arrival < self.spacing_s  # MMS still busy with the last command
                if self._reset_next > 0 or too_soon or self.dropped:
                    self._reset_next = max(0, self._reset_next - 1)
                    self.received.append(Received(perf, cmd, param, False, None, self.state))
                    _reset(conn)
                    return
                self._last_arrival = perf  # only a command MMS takes keeps it busy
                if self.not_licensed:
                    self.received.append(Received(perf, cmd, param, False, None, self.state))
                    conn.close()
                    return
                forced = next((i for i, (_, c, _) in enumerate(self._inject) if c is None or c == cmd), None)
                if forced is not None:
                    code, _, message = self._inject.pop(forced)
                    if code == ReturnCode.SAFETY_ERROR:
                        self._advance()
                        self._end_test(self.now(), aborted=True)
                else:
                    code, message = self.execute(cmd, param, perf)
                self.received.append(Received(perf, cmd, param, True, code, self.state))
                reply = self.response(cmd, stamp, code, message)
            conn.sendall(reply)
            conn.close()
        except OSError:
            try:
                conn.close()
            except OSError:
                pass

    # ---- inspection -----------------------------------------------------------------------
    def commands(self, command: Command | None = None, *, executed: bool | None = None) -> list[Received]:
        """Return the received commands (of one kind; only executed or only reset ones)."""
        with self.lock:
            return [r for r in self.received if (command is None or r.command == command)
                    and (executed is None or r.executed == executed)]

    def station_snippet(self, *, spacing_s: float = 0.3, snap: str = "off", timeout_s: float = 2.0,
                        neutral_c: float | None = None) -> str:
        """Return the `[thermode]` table of a station that talks to this emulator."""
        progs = ", ".join(f'"{p.target_c:.2f}" = {c}' for c, p in sorted(self.programs.items(),
                                                                        key=lambda kv: kv[1].target_c))
        lines = ["[thermode]", 'model = "medoc"', f'host = "{self.host}"', f"port = {self.port}",
                 f"timeout_s = {timeout_s}", f"command_spacing_s = {spacing_s}", f'snap = "{snap}"',
                 f"programs = {{ {progs} }}"]
        if neutral_c is not None:
            lines.append(f"neutral_c = {neutral_c}")
        return "\n".join(lines) + "\n"


def grid_programs(lo_c: float, hi_c: float, step_c: float = 0.5, *, first_code: int = 16,
                  plateau_s: float = 5.0, rise_c_per_s: float = 10.0, return_c_per_s: float = 10.0) -> dict[int, Program]:
    """Return one Ramp & Hold program per `step_c` from `lo_c` to `hi_c`, codes from `first_code` up."""
    out: dict[int, Program] = {}
    n = int(round((hi_c - lo_c) / step_c)) + 1
    if first_code + n - 1 > 255:
        raise ValueError(f"{n} programs do not fit in 8-bit codes from {first_code}")
    for i in range(n):
        out[first_code + i] = Program(round(lo_c + i * step_c, 2), plateau_s, rise_c_per_s, return_c_per_s)
    return out


def _read_command(conn: socket.socket) -> bytes | None:
    buf = b""
    while len(buf) < wire.HEADER:
        chunk = conn.recv(64)
        if not chunk:
            return None
        buf += chunk
    try:
        n, _ = wire.body_length(buf[:wire.HEADER])
    except WireError:
        return None
    while len(buf) < wire.HEADER + n:
        chunk = conn.recv(64)
        if not chunk:
            return None
        buf += chunk
    return buf[:wire.HEADER + n]


def _reset(conn: socket.socket) -> None:
    """Close with RST (SO_LINGER 0): the host sees ConnectionResetError, as users report from MMS."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
    except OSError:
        pass
