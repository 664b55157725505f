"""Start-up and memory of `cpm-session run` next to PsychoPy's own floor, and of the headless path.

Side by side, each a fresh process, `--reps` times in alternation (medians reported):
  bare      : benchmarks/bare_psychopy.py: a PsychoPy script opening the same window (1280x800, pyglet) with
              one slider and one text and flipping once; measured to its `flipped` line
  psychopy  : `cpm-session run --simulate --speed 100` to the first frame of its first phase (the first
              `phase_enter` event: the window is open, the welcome screen is drawn from that frame on)
  headless  : `cpm-session run --simulate --ui headless` (virtual clock) to its first `phase_enter`
Each process is killed at that point; its peak resident memory (`ru_maxrss`) and CPU time (user + system)
come from `os.wait4`. Ratios: psychopy / bare (goal: start-up <= 1.2x, memory <= 1.1x); headless < 0.6 s.
With `--visit` a whole simulated visit at speed 100 in the window is also timed (launch -> session end -> exit).

Run: `.venv/bin/python benchmarks/bench_startup.py [--reps 5] [--visit] [--json]` under a display
(`xvfb-run -a -s "-screen 0 1280x800x24"`). The machine's load shows in wall times; CPU times show less of it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BARE = Path(__file__).resolve().with_name("bare_psychopy.py")
SPEED = 100.0
VISIT_LIMIT_S = 30.0
"""Requirement: a simulated visit at speed 100 with the real window takes less than 30 s of wall time."""
GOAL_TIME_RATIO = 1.2
GOAL_RSS_RATIO = 1.1
GOAL_HEADLESS_S = 0.6
POLL_S = 0.002
TIMEOUT_S = 120.0


def _has_event(log: Path, name: str) -> bool:
    """Return True if a complete line of `log` is an event called `name`."""
    try:
        data = log.read_bytes()
    except OSError:
        return False
    return f'"event": "{name}"'.encode() in data[: data.rfind(b"\n") + 1]


def _reap(pid: int) -> tuple[float, float]:
    """Kill `pid` and return (its peak RSS in MB, its CPU seconds)."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _, _, usage = os.wait4(pid, 0)
    return usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def bare() -> dict[str, Any]:
    """Launch the bare PsychoPy script; return launch -> flipped, peak RSS and CPU time."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(BARE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    took = time.perf_counter() - t0
    rss, cpu = _reap(proc.pid)
    proc.returncode = -9  # reaped above
    if line.strip() != "flipped":
        raise RuntimeError(f"bare PsychoPy script failed: {line!r}")
    return {"s": took, "rss_mb": rss, "cpu_s": cpu}


def cpm(ui: str, *, whole_visit: bool = False) -> dict[str, Any]:
    """Launch `cpm-session run --simulate` with `--ui ui`; return launch -> first phase (and, with `whole_visit`,
    -> session end and exit), peak RSS and CPU time."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        cmd = [sys.executable, "-m", "cpm_session", "run", "--participant", "B001", "--visit", "baseline",
               "--simulate", "--ui", ui, "--data", str(data), "--no-status"]
        if ui == "psychopy":
            cmd += ["--speed", f"{SPEED:g}"]
        devnull = os.open(os.devnull, os.O_WRONLY)
        t0 = time.perf_counter()
        pid = os.posix_spawn(sys.executable, cmd, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1)])
        os.close(devnull)
        marks: dict[str, float] = {}
        log: Path | None = None
        usage = None
        while time.perf_counter() - t0 < TIMEOUT_S:
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
            if "phase_enter" in marks and not whole_visit:
                rss, cpu = _reap(pid)
                return {"s": marks["phase_enter"], "rss_mb": rss, "cpu_s": cpu}
            time.sleep(POLL_S)
        else:
            _reap(pid)
            raise RuntimeError(f"{ui} visit timed out (marks {marks})")
        assert usage is not None
        if "phase_enter" not in marks or os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{ui} visit failed (exit {os.waitstatus_to_exitcode(status)}, marks {marks})")
        return {"s": marks["phase_enter"], "session_end_s": marks.get("session_end", float("nan")),
                "exit_s": marks["exit"], "rss_mb": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime}


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]} | {"n": len(runs)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--visit", action="store_true", help="also run one whole simulated visit in the window")
    p.add_argument("--skip-gui", action="store_true", help="headless only (no display needed)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "psychopy": [], "headless": []}
    cpm("headless")  # warm the file cache once (the first launch after an install reads everything from disk)
    for _ in range(args.reps):
        if not args.skip_gui:
            runs["bare"].append(bare())
            runs["psychopy"].append(cpm("psychopy"))
        runs["headless"].append(cpm("headless"))
    res: dict[str, Any] = {k: _median(v) for k, v in runs.items() if v}
    if not args.skip_gui:
        b, c = res["bare"], res["psychopy"]
        res["ratio_time"] = round(c["s"] / b["s"], 3)
        res["ratio_cpu"] = round(c["cpu_s"] / b["cpu_s"], 3)
        res["ratio_rss"] = round(c["rss_mb"] / b["rss_mb"], 3)
        if args.visit:
            res["visit"] = cpm("psychopy", whole_visit=True)
    res["goals"] = {"time_ratio": GOAL_TIME_RATIO, "rss_ratio": GOAL_RSS_RATIO, "headless_s": GOAL_HEADLESS_S,
                    "visit_limit_s": VISIT_LIMIT_S}
    if args.json:
        print(json.dumps(res))
        return 0
    for name, r in res.items():
        if isinstance(r, dict) and "s" in r:
            print(f"{name:>9s}: launch -> first frame {r['s']:.2f} s (CPU {r['cpu_s']:.2f} s), peak RSS "
                  f"{r['rss_mb']:.0f} MB (median of {r.get('n', 1)})")
    if "ratio_time" in res:
        print(f"cpm-session / bare PsychoPy: start-up {res['ratio_time']:.2f}x (goal <= {GOAL_TIME_RATIO}), CPU "
              f"{res['ratio_cpu']:.2f}x, peak RSS {res['ratio_rss']:.2f}x (goal <= {GOAL_RSS_RATIO})")
    print(f"headless start-up {res['headless']['s']:.2f} s (goal < {GOAL_HEADLESS_S})")
    if "visit" in res:
        v = res["visit"]
        print(f"whole visit at speed {SPEED:g}: session end {v['session_end_s']:.1f} s, exit {v['exit_s']:.1f} s, "
              f"peak RSS {v['rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
