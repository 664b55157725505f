"""Start-up and whole-visit cost of `cpm-session run --simulate --speed 100`, with the PsychoPy window and headless.

For each mode the command is launched as a fresh process and timed from launch to:
  first phase   : the first `phase_enter` event in events.jsonl (the window is open by then: the engine
                  opens the screen before it connects the devices and enters the first phase)
  session end   : the `session_end` event (the whole visit, ~2360 session s at speed 100)
  exit          : the process exits (result table and session plot written)
and its peak resident memory (`ru_maxrss` of that child, from `os.wait4`).

Run: `.venv/bin/python benchmarks/bench_startup.py [--modes psychopy headless] [--json]`
The PsychoPy mode needs a display: run under `xvfb-run -a -s "-screen 0 1280x800x24"`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SPEED = 100.0
VISIT_LIMIT_S = 30.0
"""Requirement: a simulated visit at speed 100 with the real window takes less than 30 s of wall time."""


def _has_event(log: Path, name: str) -> bool:
    """Return True if a complete line of `log` is an event called `name`."""
    try:
        data = log.read_bytes()
    except OSError:
        return False
    return f'"event": "{name}"'.encode() in data[: data.rfind(b"\n") + 1]


def run(ui: str, speed: float = SPEED) -> dict[str, Any]:
    """Launch one simulated visit with `--ui ui`; return launch -> first phase / session end / exit and peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        cmd = [sys.executable, "-m", "cpm_session", "run", "--participant", "B001", "--visit", "baseline", "--simulate",
               "--speed", f"{speed:g}", "--ui", ui, "--data", str(data), "--no-status"]
        devnull = os.open(os.devnull, os.O_WRONLY)
        t0 = time.perf_counter()
        pid = os.posix_spawn(sys.executable, cmd, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1)])
        os.close(devnull)
        marks: dict[str, float] = {}
        log: Path | None = None
        while True:
            done_pid, status, usage = os.wait4(pid, os.WNOHANG)
            now = time.perf_counter()
            if log is None:
                found = list(data.glob("B001/baseline-*/events.jsonl"))
                log = found[0] if found else None
            if log is not None:
                for name in ("phase_enter", "session_end"):
                    if name not in marks and _has_event(log, name):
                        marks[name] = now - t0
            if done_pid == pid:
                marks["exit"] = now - t0
                break
            time.sleep(0.005)
        code = os.waitstatus_to_exitcode(status)
    if code != 0 or "phase_enter" not in marks:
        raise RuntimeError(f"{ui} visit failed (exit {code}, marks {marks})")
    return {"ui": ui, "speed": speed, "first_phase_s": round(marks["phase_enter"], 3),
            "session_end_s": round(marks.get("session_end", float("nan")), 3), "exit_s": round(marks["exit"], 3),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "limit_s": VISIT_LIMIT_S}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modes", nargs="+", default=["psychopy", "headless"], choices=["psychopy", "headless"])
    p.add_argument("--speed", type=float, default=SPEED)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    res = [run(m, args.speed) for m in args.modes]
    if args.json:
        print(json.dumps(res))
        return
    for r in res:
        print(f"{r['ui']:>9s} at speed {r['speed']:g}: launch -> first phase {r['first_phase_s']:.2f} s, "
              f"-> session end {r['session_end_s']:.2f} s, -> exit {r['exit_s']:.2f} s; peak RSS {r['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
