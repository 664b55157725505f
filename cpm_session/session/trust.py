"""Checks on what the session reads back from disk before it may drive a device.

A baseline's TS intensity, a killed session's log and station: anyone can edit those files, so nothing
from them reaches the thermode unless it is verified and within the limits in force now.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from cpm_session.config.protocol import Protocol


def _finite(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def baseline_problem(base: dict[str, Any], protocol: Protocol, cap_c: float) -> str:
    """Return why a baseline session's results cannot set this visit's TS intensity ('' if they can).

    The baseline folder must pass verification (hash chain, header and results recomputed from its log),
    and its intensity must be a finite number of the protocol's unit within today's limits."""
    from cpm_session.record.gate import check

    report = check(Path(base["_dir"]))
    if not report.ok:
        return "it fails verification: " + "; ".join(report.problems[:3])
    res = base.get("results") or {}
    value = _finite(res.get("ts_intensity"))
    if value is None:
        return f"its TS intensity {res.get('ts_intensity')!r} is not a finite number"
    modality = protocol.protocol.ts_modality
    unit = "C" if modality == "thermal" else "kPa"
    if res.get("ts_unit") != unit:
        return f"its TS unit {res.get('ts_unit')!r} is not this protocol's {unit!r}"
    if modality == "thermal":
        neutral = protocol.safety.neutral_c
        if not neutral < value <= cap_c:
            return f"its TS intensity {value:.2f} °C is outside ({neutral:.1f}, {cap_c:.1f}] °C (neutral, cap in force)"
        recorded_cap = _finite(base.get("thermode_cap_c"))
        if recorded_cap is not None and value > recorded_cap:
            return f"its TS intensity {value:.2f} °C is above the cap it recorded ({recorded_cap:.1f} °C)"
    elif not 0 < value <= protocol.safety.max_pressure_kpa:
        return f"its TS intensity {value:.1f} kPa is outside (0, {protocol.safety.max_pressure_kpa:.0f}] kPa"
    return ""
