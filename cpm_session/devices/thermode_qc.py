"""Quality control of one delivered thermode stimulus, from its streamed trace (pure: no I/O, no clock).

`assess()` takes the samples since launch (`Thermode.trace()`), the commanded target and neutral and
the stimulus timing, and returns what was delivered: the peak of any zone, the plateau mean, the time to
reach the target, and flags:

- `plateau_off_target`: the plateau mean (mean over zones and plateau samples) is more than
  `tolerance_c` from the target (poor contact, a slow probe, a limiter below the target);
- `zone_overshoot`: any zone went past the target by more than `tolerance_c`;
- `never_reached`: the zone mean never came within `tolerance_c` of the target;
- `no_trace`: no samples at all (stream muted or lost), nothing else can be judged.

Heat and cold stimuli are both handled: "past the target" means above it for heat, below it for cold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cpm_session.devices.base import ThermodeReading

TOLERANCE_C = 0.5
"""Plateau mean farther than this from the target, or a zone beyond it by more, is flagged."""
FLAGS = ("plateau_off_target", "zone_overshoot", "never_reached", "no_trace")


@dataclass(frozen=True)
class StimulusQC:
    """What one stimulus delivered, judged against what was commanded."""

    target_c: float
    peak_c: float | None
    """Hottest zone sample (coldest, for a cold stimulus)."""
    plateau_mean_c: float | None
    """Mean of the zone means over the plateau samples; None if the plateau has no sample."""
    time_to_target_s: float | None
    """Seconds from launch until the zone mean first came within tolerance of the target; None if never."""
    samples: int
    plateau_samples: int
    flags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """Return True when nothing was flagged."""
        return not self.flags

    def as_event(self) -> dict[str, object]:
        """Return the fields as a flat dict for an event log (rounded to 0.01)."""
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 2)

        return {"target_c": r(self.target_c), "peak_c": r(self.peak_c), "plateau_mean_c": r(self.plateau_mean_c),
                "time_to_target_s": r(self.time_to_target_s), "samples": self.samples,
                "plateau_samples": self.plateau_samples, "flags": list(self.flags)}


def plateau_window(launch_t: float, neutral_c: float, target_c: float, rise_c_per_s: float,
                   duration_s: float) -> tuple[float, float]:
    """Return (start, end) session times of the plateau: after the commanded rise, until the duration ends.

    The start is never later than the end (a short duration with a slow rise has an empty plateau).
    """
    rise_s = abs(target_c - neutral_c) / rise_c_per_s if rise_c_per_s > 0 else duration_s
    end = launch_t + duration_s
    return min(launch_t + rise_s, end), end


def assess(trace: Sequence[ThermodeReading], *, target_c: float, neutral_c: float, launch_t: float,
           plateau_start_t: float, plateau_end_t: float, tolerance_c: float = TOLERANCE_C) -> StimulusQC:
    """Judge one stimulus from its trace; see the module doc for the flags."""
    samples = [r for r in trace if r.t >= launch_t - 1e-9]
    if not samples:
        return StimulusQC(target_c, None, None, None, 0, 0, ("no_trace",))
    heat = target_c >= neutral_c
    sign = 1.0 if heat else -1.0
    peak = max(max(r.zones_c) for r in samples) if heat else min(min(r.zones_c) for r in samples)
    reached = [r.t for r in samples if sign * (r.mean_c - target_c) >= -tolerance_c]
    ttt = reached[0] - launch_t if reached else None
    plateau = [r for r in samples if plateau_start_t - 1e-9 <= r.t <= plateau_end_t + 1e-9]
    pmean = sum(r.mean_c for r in plateau) / len(plateau) if plateau else None
    flags: list[str] = []
    if pmean is not None and abs(pmean - target_c) > tolerance_c:
        flags.append("plateau_off_target")
    if sign * (peak - target_c) > tolerance_c:
        flags.append("zone_overshoot")
    if ttt is None:
        flags.append("never_reached")
    return StimulusQC(target_c, peak, pmean, ttt, len(samples), len(plateau), tuple(flags))


def assess_stimulus(trace: Sequence[ThermodeReading], *, target_c: float, neutral_c: float, launch_t: float,
                    rise_c_per_s: float, duration_s: float, tolerance_c: float = TOLERANCE_C) -> StimulusQC:
    """Judge one stimulus from its commanded parameters: the plateau runs from the end of the rise to the duration."""
    p0, p1 = plateau_window(launch_t, neutral_c, target_c, rise_c_per_s, duration_s)
    return assess(trace, target_c=target_c, neutral_c=neutral_c, launch_t=launch_t, plateau_start_t=p0,
                  plateau_end_t=p1, tolerance_c=tolerance_c)


TRACE_COLUMNS = ("t", "stimulus", "neutral_c", "zone1_c", "zone2_c", "zone3_c", "zone4_c", "zone5_c")
"""Columns of a session's `thermode_trace.csv`: session time, stimulus id, neutral and the five zones."""


def trace_rows(stimulus: str, trace: Sequence[ThermodeReading]) -> list[list[object]]:
    """Return `trace` as rows under TRACE_COLUMNS (time to 0.1 ms, temperatures to 0.01 °C)."""
    return [[round(r.t, 4), stimulus, round(r.neutral_c, 2), *(round(z, 2) for z in r.zones_c)] for r in trace]
