"""Sync markers for other recorders: a Lab Streaming Layer (LSL) marker stream and the thermode's TTL output.

When the protocol (`[sync] lsl = true`) or the station (`[sync] lsl = true`) asks for it, the session opens
one LSL outlet (type `Markers`, one string channel, irregular rate). `Context.log` pushes a marker for each
event named in `MARKER_EVENTS` *before* the event is written, and writes the marker's LSL timestamp
(`lsl_t`, `pylsl.local_clock()` seconds) into that event, so a recorder's data (LabRecorder XDF, an EEG
amplifier's LSL stream) can be aligned with the session log afterwards: `t_session = t + (lsl - lsl_t)`.

Each marker is a compact JSON object: `{"event": ..., "seq": <the event's seq in events.jsonl>, ...}` with the
event's scalar fields listed in `MARKER_FIELDS` (phase, trial, target, rating, ...). pylsl is imported only
when a stream is asked for, so a visit without sync pays nothing for it.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

from cpm_session.config.protocol import Protocol
from cpm_session.config.station import Station
from cpm_session.errors import CpmError

STREAM_TYPE = "Markers"
MARKER_EVENTS = frozenset({
    "session_start", "session_end", "phase_enter", "phase_exit",
    "stimulus", "stimulus_end", "trial_discarded",
    "rating_prompt", "rating", "continuous_rating", "continuous_rating_discarded", "ppt",
    "cold_pressor_start", "withdrawal", "cold_pressor_end",
    "staff_step", "pause", "resume", "emergency_stop", "device_fault", "visit_fault", "resume_session",
})
"""Events that are also sent as markers: stimulus onset (`stimulus`, with its target) and offset
(`stimulus_end`), rating prompt and answer (a continuous rating: its `rating_prompt` at the onset and its
`continuous_rating` at the end), cold pressor hand in/out, staff steps, pause/resume, Escape."""
MARKER_FIELDS = ("phase", "trial", "attempt", "modality", "target_c", "target_kpa", "duration_s", "onset_t",
                 "end_t", "rating", "missing", "rt_s", "step", "reason", "status", "planned_s", "t_in_water_s",
                 "participant", "visit", "kpa", "stimulus", "continuous", "value", "summary", "frames")
WAIT_POLL_S = 0.05


class SyncError(CpmError):
    """The marker stream asked for cannot be opened."""


@dataclass(frozen=True)
class SyncSettings:
    """What this visit sends to other recorders (protocol and station merged)."""

    lsl: bool = False
    stream_name: str = "cpm-session-markers"
    source_id: str = ""
    wait_for_recorder_s: float = 0.0
    ttl_on_launch: bool = False
    ttl_code: int = 255
    ttl_duration_ms: int = 10


def settings_for(protocol: Protocol, station: Station) -> SyncSettings:
    """Merge the protocol's `[sync]` with the station's: the station's `lsl` (when set) and names win."""
    ps, ss = protocol.sync, station.sync
    lsl = ps.lsl if ss.lsl is None else ss.lsl
    name = ss.stream_name or ps.stream_name
    source = ss.source_id or f"cpm-session:{station.station.name}:{name}"
    return SyncSettings(lsl=lsl, stream_name=name, source_id=source, wait_for_recorder_s=ss.wait_for_recorder_s,
                        ttl_on_launch=ss.ttl_on_launch, ttl_code=ss.ttl_code, ttl_duration_ms=ss.ttl_duration_ms)


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def marker_text(event: str, seq: int | None, fields: dict[str, Any]) -> str:
    """Return the marker string of one event: compact JSON with its name, seq and scalar fields."""
    out: dict[str, Any] = {"event": event}
    if seq is not None:
        out["seq"] = seq
    for k in MARKER_FIELDS:
        v = fields.get(k)
        if v is not None and isinstance(v, (str, int, float, bool)):
            out[k] = _jsonable(v)
    return json.dumps(out, separators=(",", ":"), ensure_ascii=False)


class MarkerStream:
    """One LSL marker outlet (string channel, irregular rate)."""

    def __init__(self, name: str, source_id: str, meta: dict[str, str] | None = None) -> None:
        try:
            import pylsl
        except Exception as e:  # noqa: BLE001 - ImportError, or liblsl missing (RuntimeError)
            raise SyncError(f"sync: LSL marker stream '{name}' asked for, but pylsl/liblsl cannot be loaded "
                            f"({type(e).__name__}: {e}); install pylsl or set [sync] lsl = false") from None
        self._lsl = pylsl
        self.name, self.source_id = name, source_id
        info = pylsl.StreamInfo(name, STREAM_TYPE, 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, source_id)
        desc = info.desc()
        for k, v in (meta or {}).items():
            desc.append_child_value(k, str(v))
        try:
            self.outlet: Any = pylsl.StreamOutlet(info)
        except Exception as e:  # noqa: BLE001 - one line for the user, not a traceback
            raise SyncError(f"sync: cannot open LSL marker stream '{name}' ({type(e).__name__}: {e})") from None

    def now(self) -> float:
        """Return the LSL clock now (`pylsl.local_clock()` seconds)."""
        return float(self._lsl.local_clock())

    def push(self, text: str, at: float | None = None) -> float:
        """Send one marker stamped `at` (LSL seconds; default now); return its timestamp."""
        ts = float(self._lsl.local_clock()) if at is None else at
        self.outlet.push_sample([text], ts)
        return ts

    def wait_for_recorder(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` wall seconds for an inlet (a recorder) to connect; return whether one did."""
        end = time.monotonic() + timeout_s
        while True:
            if self.outlet.have_consumers():
                return True
            left = end - time.monotonic()
            if left <= 0:
                return False
            self.outlet.wait_for_consumers(min(WAIT_POLL_S, left))

    def close(self) -> None:
        """Destroy the outlet (idempotent, never raises)."""
        self.outlet = None  # pylsl destroys the outlet with its last reference


class Sync:
    """The visit's link to other recorders; a disabled one does nothing and costs nothing."""

    def __init__(self, settings: SyncSettings, stream: MarkerStream | None = None) -> None:
        self.settings = settings
        self.stream = stream
        self.recorder_connected: bool | None = None

    @classmethod
    def open(cls, protocol: Protocol, station: Station) -> Sync:
        """Open the marker stream if the protocol or the station asks for one."""
        s = settings_for(protocol, station)
        stream = None
        if s.lsl:
            from cpm_session import __version__

            stream = MarkerStream(s.stream_name, s.source_id, {
                "software": f"cpm-session {__version__}", "protocol": protocol.protocol.name,
                "protocol_sha256": protocol.sha256, "station": station.station.name,
                "fields": "JSON: event, seq (events.jsonl), " + ", ".join(MARKER_FIELDS)})
        return cls(s, stream)

    @property
    def enabled(self) -> bool:
        """Return True if markers are sent."""
        return self.stream is not None and self.stream.outlet is not None

    def now(self) -> float | None:
        """Return the LSL clock now (None without a marker stream): stamp a moment before logging it."""
        return self.stream.now() if self.enabled and self.stream is not None else None

    def marker(self, event: str, seq: int | None, fields: dict[str, Any], at: float | None = None) -> float | None:
        """Send the marker of `event` if it is one, stamped `at` (LSL s, from `now()`; default: now); return
        its LSL timestamp (None = not sent)."""
        if self.stream is None or event not in MARKER_EVENTS or self.stream.outlet is None:
            return None
        return round(self.stream.push(marker_text(event, seq, fields), at), 6)

    def wait_for_recorder(self) -> bool | None:
        """Hold the start until a recorder connects (`wait_for_recorder_s`); return whether one did (None = no wait)."""
        if not self.enabled or self.settings.wait_for_recorder_s <= 0:
            return None
        assert self.stream is not None
        self.recorder_connected = self.stream.wait_for_recorder(self.settings.wait_for_recorder_s)
        return self.recorder_connected

    def header(self) -> dict[str, Any]:
        """Return what the session header records about sync."""
        out: dict[str, Any] = asdict(self.settings)
        out["recorder_connected"] = self.recorder_connected
        return out

    def ttl_after_launch(self, thermode: Any) -> dict[str, Any]:
        """Have the thermode output its trigger pulse now (station `ttl_on_launch`); return fields for the
        stimulus event (`ttl`: sent or not, and why not). Never raises: a missed TTL must not stop a visit."""
        if not self.settings.ttl_on_launch:
            return {}
        fn = getattr(thermode, "output_trigger", None)
        if fn is None:
            return {"ttl": False, "ttl_problem": f"thermode model '{getattr(thermode, 'model', '?')}' has no trigger output"}
        try:
            fn(self.settings.ttl_code, self.settings.ttl_duration_ms)
        except Exception as e:  # noqa: BLE001 - logged with the stimulus; the heat itself is device-timed
            return {"ttl": False, "ttl_problem": f"{type(e).__name__}: {e}"}
        return {"ttl": True, "ttl_code": self.settings.ttl_code}

    def close(self) -> None:
        """Close the marker stream (idempotent)."""
        if self.stream is not None:
            self.stream.close()


def disabled() -> Sync:
    """Return a Sync that sends nothing."""
    return Sync(SyncSettings())
