"""Shared builders for the trust and hostile-input tests: one simulated data folder, copied per test."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from cpm_session.clock import VirtualClock
from cpm_session.record.folder import line_hash

ROOT = Path(__file__).resolve().parents[1]
SIM_STATION = ROOT / "hardware" / "sim.toml"


def build_data(root: Path, *, aborted: bool = True, station_text: str | None = None) -> Path:
    """Write a data folder with P001's completed baseline and (optionally) an aborted post visit of P002 that
    was stopped with Escape in the cold pressor (resumable). Return the data folder."""
    from cpm_session.config.protocol import load_protocol
    from cpm_session.config.station import load_station
    from cpm_session.sim.world import run_simulated_visit, run_visit
    from cpm_session.ui.headless import HeadlessUI

    data = root / "data"
    station = root / "station.toml"
    station.write_text(station_text if station_text is not None else SIM_STATION.read_text())
    run_simulated_visit(data, "P001", "baseline", seed=1, clock=VirtualClock(), station_path=station)
    if aborted:
        run_simulated_visit(data, "P002", "baseline", seed=2, clock=VirtualClock(), station_path=station)
        clock = VirtualClock()
        ui = HeadlessUI(clock)
        ui.press("escape", 758.0)  # in ts_post, after the cold pressor
        out = run_visit(load_protocol(ROOT / "protocols" / "cpm-thermal.toml"), load_station(station), data_dir=data,
                        participant="P002", visit="post", ui=ui, clock=clock, seed=3)
        assert out.status == "aborted", out.message
    return data


def copy_data(src: Path, dst_root: Path) -> Path:
    """Copy a whole data folder (sessions, AE logs and the ledger) and the station file beside it."""
    dst = dst_root / "data"
    shutil.copytree(src, dst, symlinks=True)
    return dst


def session(data: Path, pid: str, visit: str) -> Path:
    """Return the session folder of `pid`'s `visit`."""
    return next((data / pid).glob(f"{visit}-*"))


def header(s: Path) -> dict[str, Any]:
    """Return session.json."""
    return json.loads((s / "session.json").read_text(encoding="utf-8"))


def write_header(s: Path, h: Any) -> None:
    """Overwrite session.json (as an editor would)."""
    (s / "session.json").write_text(json.dumps(h, indent=2), encoding="utf-8")


def log_lines(s: Path) -> list[bytes]:
    """Return the log's lines."""
    return (s / "events.jsonl").read_bytes().rstrip(b"\n").split(b"\n")


def rechain(s: Path, events: list[dict[str, Any]], *, fix_header: bool = True) -> None:
    """Rewrite the log from `events` with a valid hash chain (what a careful forger does), and the header."""
    prev = "0" * 64
    out = []
    for i, e in enumerate(events):
        e = dict(e, seq=i, prev=prev)
        line = json.dumps(e, ensure_ascii=False, allow_nan=False).encode("utf-8")
        out.append(line)
        prev = line_hash(line)
    (s / "events.jsonl").write_bytes(b"\n".join(out) + b"\n")
    if fix_header:
        h = header(s)
        h["log_events"], h["log_final_sha256"] = len(out), prev
        write_header(s, h)


def events_of(s: Path) -> list[dict[str, Any]]:
    """Return the log's events."""
    return [json.loads(x) for x in log_lines(s)]


def snapshot(root: Path) -> dict[str, str]:
    """Return {relative path: sha256 or '<dir>' or '<link>'} of everything below `root`."""
    snap: dict[str, str] = {}
    if not root.exists():
        return snap
    for dirpath, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                snap[rel] = "<link>"
            elif p.is_dir():
                snap[rel] = "<dir>"
            else:
                try:
                    snap[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
                except OSError:
                    snap[rel] = "<unreadable>"
    return snap
