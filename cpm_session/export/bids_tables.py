"""BIDS export, part 2: the per-session tables, ``_beh.tsv`` (one row per rating) and the
``_physio.tsv.gz`` device traces (split out of `bids.py`, which re-exports them)."""

from __future__ import annotations

import gzip
import statistics
from pathlib import Path
from typing import Any

from cpm_session import __version__
from cpm_session.export import SessionData
from cpm_session.export.bids_columns import (
    BEH_COLUMNS,
    BIDS_UNITS,
    FLAG_LEVELS,
    MAX_GRID_FILL,
    NA,
    PHASE_LEVELS,
    QUANTITY_DESCRIPTIONS,
    SAMPLING_TOLERANCE,
    TASK,
    bool_cell,
    cell,
)

# ----------------------------------------------------------------------------------------------- beh


def _durations(events: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    out: dict[tuple[str, str], Any] = {}
    for ev in events:
        if ev.get("event") == "stimulus":
            out[(str(ev.get("phase")), str(ev.get("trial")))] = ev.get("duration_s")
    return out


def beh_table(s: SessionData) -> tuple[list[str], list[list[str]], dict[str, Any]]:
    """Return (columns, rows, sidecar) of a session's ``_beh.tsv``: one row per ratings.csv row."""
    durations = _durations(s.events)
    known_sources = {src for _, src, _ in BEH_COLUMNS if src}
    extra = [c for c in (list(s.ratings[0].keys()) if s.ratings else []) if c not in known_sources]
    columns = [name for name, _, _ in BEH_COLUMNS] + extra
    rows: list[list[str]] = []
    flags: set[str] = set()
    phases: set[str] = set()
    for r in s.ratings:
        row = []
        for name, src, _ in BEH_COLUMNS:
            if name == "stimulus_duration":
                row.append(cell(durations.get((r.get("phase", ""), r.get("trial", "")))))
            elif name == "missing":
                row.append(bool_cell(r.get("missing") or ""))
            else:
                row.append(cell(r.get(src or "", "")))
        row += [cell(r.get(c, "")) for c in extra]
        flags.add(r.get("flag") or "")
        phases.add(r.get("phase") or "")
        rows.append(row)
    sidecar: dict[str, Any] = {
        "TaskName": TASK,
        "TaskDescription": "Conditioned Pain Modulation: a test stimulus rated 0-100 before and after a cold-water "
                           "hand immersion (conditioning stimulus); CPM = TS_pre - TS_post, positive = inhibition.",
        "Instructions": "Rate each stimulus on the 0-100 slider (0 = no pain, 100 = worst pain imaginable).",
        "SoftwareName": "cpm-session",
        "SoftwareVersion": str(s.header.get("software_version") or __version__),
    }
    for name, _, desc in BEH_COLUMNS:
        d = dict(desc)
        if name == "trial_type":
            d["Levels"] = {p: PHASE_LEVELS.get(p, f"Phase '{p}' as recorded") for p in sorted(phases - {""})}
        if name == "flag":
            d["Levels"] = {f: FLAG_LEVELS.get(f, f"Flag '{f}' as recorded by the engine") for f in sorted(flags - {""})}
            if not d["Levels"]:
                del d["Levels"]
        sidecar[name] = d
    for c in extra:
        sidecar[c] = {"LongName": c, "Description": f"Column '{c}' of the session's ratings.csv, as recorded."}
    return columns, rows, sidecar


# ----------------------------------------------------------------------------------------------- physio


def _grid(tf: list[float]) -> tuple[float, list[int]] | None:
    """Place irregular sample times on a regular grid at the finest interval; return (dt, slot of each
    sample; -1 for a sample that found no free slot within half an interval) or None when the grid would
    be mostly empty."""
    dts = [round(b - a, 6) for a, b in zip(tf, tf[1:], strict=False)]
    fine = min(d for d in dts if d > 0)
    slots: list[int] = []
    taken: set[int] = set()
    for t in tf:
        x = (t - tf[0]) / fine
        for cand in (round(x), int(x) + 1, int(x)):
            if cand not in taken and abs(x - cand) <= 0.5 + 1e-6:
                taken.add(cand)
                slots.append(cand)
                break
        else:
            slots.append(-1)
    last = max(slots)
    if last + 1 > MAX_GRID_FILL * len(tf):
        return None
    return fine, slots


def device_traces(s: SessionData) -> dict[str, tuple[list[str], list[list[str]], dict[str, Any]]]:
    """Return per device role (columns, rows, sidecar) for ``_recording-<role>_physio``.

    Columns are ``time`` (exact session seconds of the sample) and one per quantity the role reported.
    Regularly sampled traces (the usual 1 Hz) are written as they are. A trace whose rate changes (an
    algometer sampled faster during ramps) is laid on a regular grid at its finest interval, each
    sample in the row nearest its time and n/a rows in between, so SamplingFrequency holds; the time
    column still gives each sample's exact time. StartTime is the first sample's session time.
    """
    by_role: dict[str, dict[str, dict[str, str]]] = {}
    units: dict[tuple[str, str], str] = {}
    for r in s.devices:
        role, q = r.get("role") or "", r.get("quantity") or ""
        by_role.setdefault(role, {}).setdefault(r.get("t") or "", {})[q] = r.get("value") or ""
        units[(role, q)] = r.get("unit") or ""
    out: dict[str, tuple[list[str], list[list[str]], dict[str, Any]]] = {}
    for role, samples in sorted(by_role.items()):
        try:
            times = sorted(samples, key=float)
        except ValueError:
            continue
        if len(times) < 2:
            continue
        quantities = sorted({q for v in samples.values() for q in v})
        tf = [float(t) for t in times]
        dts = [b - a for a, b in zip(tf, tf[1:], strict=False)]
        dt = statistics.median(dts)
        if dt <= 0:
            continue
        rows = [[t] + [cell(samples[t].get(q)) for q in quantities] for t in times]
        note = ""
        if not all(abs(d - dt) <= SAMPLING_TOLERANCE * dt for d in dts):
            grid = _grid(tf)
            if grid is None:
                note = ("; sampling is irregular: one row per sample, the time column holds its exact session "
                        "time and SamplingFrequency is the median rate")
            else:
                dt, slots = grid
                gridded = [[NA] * (1 + len(quantities)) for _ in range(slots[-1] + 1)]
                dropped = 0
                for slot, row in zip(slots, rows, strict=True):
                    if slot < 0:
                        dropped += 1
                    else:
                        gridded[slot] = row
                rows = gridded
                note = (f"; the device's sampling rate varies, so samples sit on a regular {dt:g} s grid in the "
                        f"row nearest their time (n/a rows where there was no sample); the time column holds "
                        f"each sample's exact session time"
                        + (f"; {dropped} sample(s) closer than half an interval to another were left out "
                           "(all are in sourcedata devices.csv)" if dropped else ""))
        sidecar: dict[str, Any] = {
            "TaskName": TASK,
            "PhysioType": "generic",
            "SamplingFrequency": round(1.0 / dt, 9),
            "StartTime": tf[0],
            "Columns": ["time"] + quantities,
            "Description": f"{role} readings from the session's devices.csv{note}",
            "time": {"LongName": "Sample time", "Units": "s", "Description":
                     "Exact session time of the sample (the clock of onset in the _beh.tsv file); n/a in grid "
                     "rows without a sample."},
        }
        for q in quantities:
            unit = units.get((role, q), "")
            sidecar[q] = {"LongName": q, "Description": QUANTITY_DESCRIPTIONS.get(q, f"{q} reported by the {role}"),
                          "Units": BIDS_UNITS.get(unit, unit)}
        out[role] = (sidecar["Columns"], rows, sidecar)
    return out


def write_physio(path: Path, rows: list[list[str]]) -> None:
    """Write a header-less, gzip-compressed TSV (mtime 0, so identical data gives identical bytes)."""
    data = ("\n".join("\t".join(r) for r in rows) + "\n").encode("utf-8")
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(data)
