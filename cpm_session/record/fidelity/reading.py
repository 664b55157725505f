"""Reading what fidelity is measured from: devices.csv rows, numbers of the log, the entries of the block
and the log split into the segment of each phase's last attempt."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cpm_session.record.derive import as_number
from cpm_session.record.fidelity.requirements import ENDS_SEGMENT, DeviceRow


# ------------------------------------------------------------------------------------------ reading
def read_device_rows(devices_csv: str | Path) -> list[DeviceRow]:
    """Return the (t, role, quantity, value) rows of a devices.csv with finite numbers (others skipped)."""
    rows: list[DeviceRow] = []
    try:
        with open(devices_csv, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            head = next(reader, None)
            if head is None:
                return rows
            try:
                it, ir, iq, iv = (head.index(c) for c in ("t", "role", "quantity", "value"))
            except ValueError:
                return rows
            need = max(it, ir, iq, iv)
            for r in reader:
                if len(r) <= need:
                    continue
                try:
                    t, v = float(r[it]), float(r[iv])
                except ValueError:
                    continue
                if math.isfinite(t) and math.isfinite(v):
                    rows.append((t, r[ir], r[iq], v))
    except (OSError, UnicodeDecodeError, csv.Error):
        return rows
    return rows


_num = as_number  # a finite float or None (record.derive owns the rule)


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(x, nd)


# ------------------------------------------------------------------------------------------ entries
def _entry(planned: Any, actual: Any, deviation: Any, ok: bool | None, *, value: Any = None,
           limit: Any = None, unit: str = "", status: str | None = None, reason: str = "",
           **extra: Any) -> dict[str, Any]:
    st = status or ("ok" if ok else "deviation")
    e: dict[str, Any] = {"planned": planned, "actual": actual, "deviation": deviation,
                         "within_limits": ok if st in ("ok", "deviation") else (True if st == "info" else None),
                         "status": st, "value": actual if value is None else value, "limit": limit, "unit": unit}
    if reason:
        e["reason"] = reason
    e.update(extra)
    return e


def _missing(planned: Any, reason: str, *, limit: Any = None, unit: str = "") -> dict[str, Any]:
    return _entry(planned, None, None, None, status="not_measured", reason=reason, limit=limit, unit=unit)


def _na(reason: str, planned: Any = None) -> dict[str, Any]:
    return _entry(planned, None, None, None, status="not_applicable", reason=reason)


def _info(actual: Any, **extra: Any) -> dict[str, Any]:
    return _entry(0, actual, actual, True, status="info", **extra)


# ------------------------------------------------------------------------------------------ log segments
class _Log:
    """The log split into the segment of each phase's last attempt."""

    def __init__(self, events: Sequence[Mapping[str, Any]]) -> None:
        self.events = list(events)
        self.last_enter: dict[str, int] = {}
        for i, e in enumerate(self.events):
            if e.get("event") == "phase_enter":
                self.last_enter[str(e.get("phase"))] = i

    def segment(self, phase: str) -> list[Mapping[str, Any]]:
        """Return the events of the last attempt of `phase` (from its phase_enter to the next segment end)."""
        i = self.last_enter.get(phase)
        if i is None:
            return []
        out = [self.events[i]]
        for e in self.events[i + 1:]:
            if e.get("event") in ENDS_SEGMENT:
                break
            out.append(e)
        return out

    def exit_output(self, phase: str) -> Mapping[str, Any] | None:
        """Return the output of the completed last attempt of `phase`, or None."""
        seg_start = self.last_enter.get(phase)
        if seg_start is None:
            return None
        for e in self.events[seg_start + 1:]:
            if e.get("event") == "phase_exit" and e.get("phase") == phase:
                out = e.get("output")
                return out if isinstance(out, Mapping) else {}
            if e.get("event") in ENDS_SEGMENT:
                return None
        return None

    def ended_in(self) -> str:
        """Return the phase the session was in when its log ends."""
        phase = ""
        for e in self.events:
            if e.get("event") == "phase_enter":
                phase = str(e.get("phase"))
        return phase or "before the first phase"


def _t(e: Mapping[str, Any]) -> float:
    return _num(e.get("t")) or 0.0


def _of(events: Iterable[Mapping[str, Any]], name: str, **match: Any) -> list[Mapping[str, Any]]:
    return [e for e in events if e.get("event") == name and all(e.get(k) == v for k, v in match.items())]

