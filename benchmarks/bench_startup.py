"""Start-up and whole-visit cost of `cpm-session run --simulate --speed 100`, with the PsychoPy window and headless,
beside the floor: a bare PsychoPy script.

`bare`: a fresh Python process imports PsychoPy, opens the same window as the protocol's `[screen]`
(1280x800, same colours, pyglet), makes one Slider and one TextStim, draws them, flips once and exits;
timed from launch to that flip (the script reports `time.perf_counter()`, the system-wide monotonic
clock the benchmark also reads), with its peak resident memory. The issue-17 goal is reported as the
ratios psychopy/bare: start-up (launch -> first phase) within 1.2x, peak memory within 1.1x.

For each cpm-session mode the command is launched as a fresh process and timed from launch to:
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
import statistics
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


BARE_SCRIPT = """
import sys, time
from psychopy import visual
win = visual.Window(size=[1280, 800], fullscr=False, units="height", color="#1E1E1E", colorSpace="hex",
                    winType="pyglet", allowGUI=True, checkTiming=False, waitBlanking=True)
slider = visual.Slider(win, ticks=(0, 100), labels=["no pain", "worst pain imaginable"], granularity=0,
                       style="rating", size=(1.0, 0.05), units="height", readOnly=True)
text = visual.TextStim(win, text="How painful was the heat on your forearm?", pos=(0, 0.27), height=0.05)
slider.draw()
text.draw()
win.flip()
flipped = time.perf_counter()
with open(sys.argv[1], "w") as f:
    f.write(repr(flipped))
win.close()
"""
"""The floor: the same window with one slider and one text, flipped once."""


def run_bare() -> dict[str, Any]:
    """Launch the bare PsychoPy script; return launch -> first flip and its peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        mark = Path(tmp) / "flipped"
        devnull = os.open(os.devnull, os.O_WRONLY)
        t0 = time.perf_counter()
        pid = os.posix_spawn(sys.executable, [sys.executable, "-c", BARE_SCRIPT, str(mark)], os.environ,
                             file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)])
        os.close(devnull)
        _, status, usage = os.wait4(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0 or not mark.exists():
            raise RuntimeError(f"the bare PsychoPy script failed (exit {code})")
        flipped = float(mark.read_text())
    return {"ui": "bare", "first_frame_s": round(flipped - t0, 3), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


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


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the first run with every numeric figure replaced by its median over `runs` (and `reps`)."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, float) and key not in ("speed", "limit_s"):
            out[key] = round(statistics.median(r[key] for r in runs), 3)
    out["reps"] = len(runs)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modes", nargs="+", default=["bare", "psychopy", "headless"], choices=["bare", "psychopy", "headless"])
    p.add_argument("--speed", type=float, default=SPEED)
    p.add_argument("--reps", type=int, default=1,
                   help="run the modes this many times, interleaved, and report each figure's median (a shared "
                        "machine's load changes from minute to minute; interleaving keeps the ratios fair)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in args.modes}
    for _ in range(max(1, args.reps)):
        for m in args.modes:
            runs[m].append(run_bare() if m == "bare" else run(m, args.speed))
    res = [median_run(runs[m]) for m in args.modes]
    bare = next((r for r in res if r["ui"] == "bare"), None)
    window = next((r for r in res if r["ui"] == "psychopy"), None)
    if bare and window:
        window["startup_ratio"] = round(window["first_phase_s"] / bare["first_frame_s"], 2)
        window["memory_ratio"] = round(window["peak_rss_mb"] / bare["peak_rss_mb"], 2)
    if args.json:
        print(json.dumps(res))
        return
    for r in res:
        if r["ui"] == "bare":
            print(f"     bare PsychoPy script: launch -> first flip {r['first_frame_s']:.2f} s; peak RSS "
                  f"{r['peak_rss_mb']:.0f} MB")
            continue
        print(f"{r['ui']:>9s} at speed {r['speed']:g}: launch -> first phase {r['first_phase_s']:.2f} s, "
              f"-> session end {r['session_end_s']:.2f} s, -> exit {r['exit_s']:.2f} s; peak RSS {r['peak_rss_mb']:.0f} MB"
              + (f" (x{r['startup_ratio']:.2f} / x{r['memory_ratio']:.2f} of the bare script)" if "startup_ratio" in r else ""))


if __name__ == "__main__":
    main()
