"""Temperatures on a thermode's program grid (a Medoc station offers only the temperatures it has programs for).

Pure functions for the session layer: the calibration asks `snap()` for every temperature it wants when
`thermode.available_targets_c()` is not None, and logs `note()` when the grid changed it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Literal

Mode = Literal["nearest", "down"]


def snap(temp_c: float, grid: Sequence[float], *, mode: Mode = "nearest") -> float:
    """Return the grid temperature to use for `temp_c`.

    `nearest`: the closest grid point (a tie goes to the lower one); `down`: the highest point at or below
    `temp_c`, else the lowest point. Raises ValueError for an empty grid or a non-finite temperature.
    """
    if not math.isfinite(temp_c):
        raise ValueError(f"temperature {temp_c} is not a number")
    pts = sorted(float(g) for g in grid)
    if not pts:
        raise ValueError("the thermode offers no program temperature at or below the cap")
    key = round(temp_c, 2)
    i = bisect.bisect_right(pts, key + 1e-9)
    below = pts[i - 1] if i > 0 else None
    above = pts[i] if i < len(pts) else None
    if below is None:
        assert above is not None
        return above
    if mode == "down" or above is None:
        return below
    return below if key - below <= above - key + 1e-9 else above


def note(requested_c: float, chosen_c: float) -> str:
    """Return the session note for a temperature the grid changed ('' if unchanged)."""
    if abs(requested_c - chosen_c) < 0.005:
        return ""
    return f"{requested_c:.2f} °C is not on the thermode's program grid: {chosen_c:.2f} °C used"
