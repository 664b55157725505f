"""TCS II emulator: fixed-length commands, device-timed stimuli with ramps, `Om` cap, temperature stream.

`strict=True` (`cpm-session emulate thermode --strict`) behaves as the public manual and public code
describe a real unit: characters arriving less than 1 ms apart are dropped, `P` answers in the public
layout (no maximum) and replies end with nothing (no CR LF after `Q`, `K`, `P`). Options for tests:
`p_mode` ("public" | "command" | "unknown" | "silent"), `ignore_om` (a unit whose limiter does not
work), `corrupt` (one parameter command, e.g. "C", arrives with a wrong digit), `slow_zone` (a zone with
poor contact that heats at a fraction of the commanded rate).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from cpm_session.devices.wire import tcs2 as wire
from cpm_session.sim.emulators.base import PtyEmulator

POWER_ON_NEUTRAL_C = 30.0
POWER_ON_TARGET_C = 10.0
POWER_ON_DURATION_S = 0.1
POWER_ON_RATE_C_PER_S = 10.0
POWER_ON_ZONES = "00000"
POWER_ON_MAX_C = 60.0
IDLE_STREAM_S = 1.0
"""Device seconds between temperature lines between stimuli (1 Hz)."""
STIMULUS_STREAM_S = 0.01
"""Device seconds between temperature lines during a stimulus (100 Hz)."""
MIN_LINE_INTERVAL_WALL_S = 0.02
"""At high `speed`, send at most 50 lines per wall second."""
NEUTRAL_SLEW_C_PER_S = 5.0
FIRMWARE = "TCS II emulator 1.0"
PROBE_ID = "EMU-0001"
PROBE_TYPE = "T03 (5 zones)"
P_MODES = ("public", "command", "unknown", "silent")
STRICT_CHAR_GAP_S = 0.001
BATTERY = b"19.1234v 040%"
UNKNOWN_P_REPLY = b"\rStimulation parameters\rbaseline 32.0 C, zones 11111\rprofile A (see touch panel)"


@dataclass
class _Zone:
    temp_c: float
    target_c: float = POWER_ON_TARGET_C
    rise: float = POWER_ON_RATE_C_PER_S
    ret: float = POWER_ON_RATE_C_PER_S
    duration_s: float = POWER_ON_DURATION_S


@dataclass
class StimulusRecord:
    """A launched stimulus as the device saw it."""

    launch_t: float
    end_t: float
    targets_c: tuple[float, ...]
    aborted_t: float | None = None
    peak_c: float = field(default=0.0)


class TcsEmulator(PtyEmulator):
    """A TCS II on a pty. Public state (read under `self.lock`): `neutral_c`, `max_c`, `zones`, `temps()`."""

    kind = "thermode"

    def __init__(self, speed: float = 1.0, *, neutral_c: float = POWER_ON_NEUTRAL_C, strict: bool = False,
                 p_mode: str | None = None, ignore_om: bool = False, corrupt: str = "", corrupt_count: int = -1,
                 slow_zone: int | None = None, slow_factor: float = 0.3) -> None:
        super().__init__(speed)
        if p_mode is not None and p_mode not in P_MODES:
            raise ValueError(f"p_mode {p_mode!r}: expected one of {P_MODES}")
        if corrupt and corrupt not in ("N", "S", "C", "V", "R", "D"):
            raise ValueError(f"corrupt {corrupt!r}: expected one of N S C V R D")
        if slow_zone is not None and slow_zone not in range(1, wire.N_ZONES + 1):
            raise ValueError(f"slow_zone {slow_zone!r}: expected 1-{wire.N_ZONES}")
        self.strict = strict
        self.min_char_gap_s = STRICT_CHAR_GAP_S if strict else 0.0
        self.p_mode = p_mode or ("public" if strict else "command")
        self.ignore_om = ignore_om
        self.corrupt, self.corrupt_left = corrupt.encode(), corrupt_count
        self.corrupted: list[tuple[bytes, bytes]] = []
        """(as sent, as taken) for every corrupted command."""
        self.slow_zone, self.slow_factor = slow_zone, slow_factor
        self._buf = b""
        self._power_on(neutral_c)
        self._last_t = self.now()
        self._next_line_wall = 0.0
        self.commands: list[tuple[float, bytes]] = []
        """Every whole command the device accepted, with device time."""
        self.stimuli: list[StimulusRecord] = []

    def _power_on(self, neutral_c: float = POWER_ON_NEUTRAL_C) -> None:
        self.neutral_c = neutral_c
        self.max_c = POWER_ON_MAX_C
        self.zones = POWER_ON_ZONES
        self.muted = False
        self.zone = [_Zone(neutral_c) for _ in range(wire.N_ZONES)]
        self.active: StimulusRecord | None = None
        self.returning = False

    # ---- state ----------------------------------------------------------------------------------
    def temps(self) -> tuple[float, ...]:
        """Return the five zone temperatures (°C)."""
        with self.lock:
            return tuple(z.temp_c for z in self.zone)

    @property
    def stimulating(self) -> bool:
        """Return True while a stimulus runs (launch until its duration ends or abort)."""
        return self.active is not None

    def at_neutral(self, tol_c: float = 0.05) -> bool:
        """Return True if every zone is within `tol_c` of neutral and no stimulus runs."""
        with self.lock:
            return self.active is None and all(abs(z.temp_c - self.neutral_c) <= tol_c for z in self.zone)

    # ---- dynamics -------------------------------------------------------------------------------
    def _advance(self, now: float) -> None:
        dt = max(0.0, now - self._last_t)
        self._last_t = now
        st = self.active
        if st is not None and now >= st.end_t:
            # integrate up to the end of the duration, then return
            self._move_zones(max(0.0, dt - (now - st.end_t)), heading_to_target=True)
            st.peak_c = max(st.peak_c, max(z.temp_c for z in self.zone))
            dt = now - st.end_t
            self.active = None
        if self.active is not None:
            self._move_zones(dt, heading_to_target=True)
            self.active.peak_c = max(self.active.peak_c, max(z.temp_c for z in self.zone))
        else:
            self._move_zones(dt, heading_to_target=False)

    def _move_zones(self, dt: float, *, heading_to_target: bool) -> None:
        for i, z in enumerate(self.zone):
            on = self.zones[i] == "1"
            if heading_to_target and on:
                goal, rate = (z.target_c if self.ignore_om else min(z.target_c, self.max_c)), z.rise
            else:
                goal, rate = self.neutral_c, z.ret if on else NEUTRAL_SLEW_C_PER_S
            if self.slow_zone == i + 1:
                rate *= self.slow_factor
            step = rate * dt
            if abs(goal - z.temp_c) <= step:
                z.temp_c = goal
            else:
                z.temp_c += step if goal > z.temp_c else -step

    def tick(self) -> float:
        """Advance the ramps; stream a temperature line when due; return wall seconds to the next line."""
        now = self.now()
        self._advance(now)
        wall = time.perf_counter()
        interval = (STIMULUS_STREAM_S if self.active is not None else IDLE_STREAM_S) / self.speed
        interval = max(interval, MIN_LINE_INTERVAL_WALL_S)
        if wall >= self._next_line_wall:
            if not self.muted:
                self.send(self._line())
            self._next_line_wall = wall + interval
        return max(0.0, min(self._next_line_wall - wall, interval))

    def _line(self) -> bytes:
        return wire.encode_temperature_line(self.neutral_c, [z.temp_c for z in self.zone])

    # ---- commands -------------------------------------------------------------------------------
    def on_bytes(self, data: bytes) -> None:
        """Cut the host's bytes into commands and execute them."""
        self._advance(self.now())
        cmds, self._buf = wire.split_commands(self._buf + data)
        for c in cmds:
            if not self._take_command():
                continue
            c = self._maybe_corrupt(c)
            self.commands.append((self.now(), c))
            self._execute(c)

    def _maybe_corrupt(self, c: bytes) -> bytes:
        """Return `c` with its last digit changed if it is the command chosen for corruption."""
        if not self.corrupt or c[:1] != self.corrupt or self.corrupt_left == 0 or not c[-1:].isdigit():
            return c
        if self.corrupt == b"S":
            bad = c[:-1] + (b"0" if c[-1:] == b"1" else b"1")
        else:
            bad = c[:-1] + str((int(c[-1:]) + 1) % 10).encode()
        self.corrupt_left -= 1
        self.corrupted.append((c, bad))
        return bad

    def _zone_ix(self, s: int) -> range:
        return range(wire.N_ZONES) if s == 0 else range(s - 1, s)

    def _execute(self, c: bytes) -> None:
        head, arg = c[:1], c[1:]
        now = self.now()
        if head == b"N":
            v = int(arg) / 10
            if wire.NEUTRAL_RANGE_C[0] <= v <= wire.NEUTRAL_RANGE_C[1]:
                self.neutral_c = v
        elif head == b"S":
            self.zones = arg.decode()
        elif head in (b"C", b"V", b"R", b"D"):
            s, v = int(arg[:1]), int(arg[1:])
            if s > wire.N_ZONES:
                return
            for i in self._zone_ix(s):
                z = self.zone[i]
                if head == b"C":
                    z.target_c = v / 10 if self.ignore_om else min(v / 10, self.max_c)  # C is limited to Om
                elif head == b"V" and v > 0:
                    z.rise = v / 10
                elif head == b"R" and v > 0:
                    z.ret = v / 10
                elif head == b"D" and v > 0:
                    z.duration_s = v / 1000
        elif head == b"L":
            dur = max(z.duration_s for z in self.zone)
            cap = 1e9 if self.ignore_om else self.max_c
            self.active = StimulusRecord(now, now + dur, tuple(min(z.target_c, cap) for z in self.zone))
            self.stimuli.append(self.active)
            self._next_line_wall = 0.0
        elif head == b"A":
            if self.active is not None:
                self.active.aborted_t = now
            self.active = None
        elif head == b"F":
            self.muted = True
        elif c in (b"Oa", b"Ob"):
            self.muted = False
        elif c == b"Oc":
            self._power_on()
        elif head == b"O" and arg[:1] == b"m":
            self.max_c = int(arg[1:]) / 10
            if not self.ignore_om:
                for z in self.zone:
                    z.target_c = min(z.target_c, self.max_c)
        elif head == b"?":
            self.send(b"\r\nTCS\r\n")
        elif head == b"E":
            self.send(self._line())
        elif head == b"H":
            self.send(("\r\nTCS II serial commands (emulated)\r\n'H' : this help\r\n'?' : returns 'TCS'\r\n"
                       f"Firmware: {FIRMWARE}\r\nProbe ID: {PROBE_ID}\r\nProbe TYPE: {PROBE_TYPE}\r\n").encode())
        elif head == b"P":
            self._answer_parameters()
        elif head == b"Q":
            self.send(b"\r000000" if self.strict else b"\r\n000000\r\n")
        elif head == b"K":
            self.send(b"\r00" if self.strict else b"\r\n00\r\n")
        elif head == b"B":
            self.send(b"\r" + BATTERY if self.strict else b"\r\n" + BATTERY + b"\r\n")

    def parameters(self) -> wire.Parameters:
        """Return the loaded parameters as `P` shows them."""
        zone = tuple(wire.ZoneParameters(q.target_c, q.rise, q.ret, round(q.duration_s * 1000)) for q in self.zone)
        return wire.Parameters(self.p_mode, self.neutral_c, self.zones, zone,
                               None if self.p_mode == "public" else self.max_c)

    def _answer_parameters(self) -> None:
        if self.p_mode == "silent":
            return
        if self.p_mode == "unknown":
            self.send(UNKNOWN_P_REPLY)
        elif self.p_mode == "public":
            self.send(wire.encode_parameters_public(self.parameters()))
        else:
            self.send(wire.encode_parameters_command(self.parameters()))
