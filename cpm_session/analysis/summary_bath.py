"""Cold-pressor immersions from the event log and bath temperatures from devices.csv.

Split from `cpm_session.analysis.summarize`, which re-exports every name here.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

_BATH_ROW = re.compile(rb"^([^,\n]*),[^,\n]*,bath_c,([^,\n]*)", re.M)
"""A devices.csv row (t, role, quantity, value, ...) whose quantity is bath_c: captures t and value."""


# ---------------------------------------------------------------------------------------------- devices.csv
ENDS_IMMERSION = ("cold_pressor_end", "emergency_stop", "session_end", "device_fault")


def immersions(events: list[dict[str, Any]]) -> list[tuple[float, float | None]]:
    """Return (start, end) session times of every cold-pressor immersion; an interrupted one ends at the
    stop that interrupted it, and one still going when the log ends has end None."""
    out: list[tuple[float, float | None]] = []
    start: float | None = None
    for e in events:
        kind = e.get("event")
        if kind == "cold_pressor_start":
            start = float(e["t"])
        elif kind in ENDS_IMMERSION and start is not None:
            out.append((start, float(e["t"])))
            start = None
    if start is not None:
        out.append((start, None))
    return out


def bath_stats(devices_csv: Path, t0: float, t1: float | None) -> tuple[float | None, float | None, float | None, int]:
    """Return (mean, min, max, n) of `bath_c` samples (°C) in devices.csv with t0 <= t < t1 (t1 None = to the end)."""
    try:
        raw = devices_csv.read_bytes()
    except OSError:
        return None, None, None, 0
    nl = raw.find(b"\n")
    if nl < 0:
        return None, None, None, 0
    cols = raw[:nl].decode("utf-8").strip().split(",")
    try:
        it, iq, iv = cols.index("t"), cols.index("quantity"), cols.index("value")
    except ValueError:
        return None, None, None, 0
    hi = math.inf if t1 is None else t1
    vals: list[float] = []
    if cols[:4] == ["t", "role", "quantity", "value"]:  # the documented order: one C-level regex scan
        for t_b, v_b in _BATH_ROW.findall(raw, nl + 1):
            try:
                t = float(t_b)
                if t0 <= t < hi:
                    vals.append(float(v_b))
            except ValueError:
                continue
    else:
        key = b"bath_c"
        for line in raw[nl + 1:].split(b"\n"):
            if key not in line:
                continue
            parts = line.split(b",")
            try:
                if parts[iq].strip() != key:
                    continue
                t = float(parts[it])
                if t0 <= t < hi:
                    vals.append(float(parts[iv]))
            except (IndexError, ValueError):
                continue
    if not vals:
        return None, None, None, 0
    return sum(vals) / len(vals), min(vals), max(vals), len(vals)
