"""Run every benchmark, print ONE table of all figures and write it to benchmarks/results.md.

Each benchmark runs as its own process (clean memory figures, no shared state); the ones that open a
PsychoPy window run under `xvfb-run -a -s "-screen 0 1280x800x24"` when no display is set. A benchmark
whose script is missing (another engineer's) or fails is listed as n/a with the reason.

Run: `.venv/bin/python benchmarks/run.py [--quick] [--only onset estop ...]`
(`--quick` uses fewer repetitions for a smoke run; results.md is written only for a full run
unless `--write` is given.)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results.md"
XVFB = ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24"]


@dataclass
class Row:
    """One line of the table."""

    area: str
    figure: str
    value: str
    requirement: str = ""
    verdict: str = ""


class BenchFailed(Exception):
    """A benchmark script failed or is missing."""


def call(script: str, *args: str, gui: bool = False, timeout: float = 1800) -> str:
    """Run `benchmarks/<script> args` and return its stdout; raise BenchFailed with the reason."""
    path = HERE / script
    if not path.exists():
        raise BenchFailed(f"{script} not found")
    cmd = [sys.executable, str(path), *args]
    if gui and not os.environ.get("DISPLAY"):
        if shutil.which("xvfb-run") is None:
            raise BenchFailed("no display and no xvfb-run")
        cmd = [*XVFB, *cmd]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
        raise BenchFailed(f"{script} exit {r.returncode}: {tail[0][:160]}")
    return r.stdout


def last_json(text: str) -> Any:
    """Return the last JSON document printed (single-line or indented)."""
    for start in [m.start() for m in re.finditer(r"^[\[{]", text, re.M)][::-1]:
        try:
            return json.loads(text[start:])
        except json.JSONDecodeError:
            continue
    raise BenchFailed("no JSON in the output")


def ok(cond: bool) -> str:
    """Return the verdict word."""
    return "PASS" if cond else "FAIL"


# ---- one function per benchmark: returns its rows -------------------------------------------------

def onset(quick: bool) -> list[Row]:
    speed, visits = ("50", "1") if quick else ("10", "2")
    r = last_json(call("bench_onset.py", "--speed", speed, "--visits", visits, "--json"))
    where = f"{r['n']} stimuli, {r['visits']} visit(s) over a pty at speed {r['speed']:g}"
    return [Row("timing", f"Stimulus onset error, planned → `L` byte at the thermode ({where})",
                f"median {r['median_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, max {r['max_ms']:.2f} ms (wall)")]


def estop(quick: bool) -> list[Row]:
    r = last_json(call("bench_estop.py", "--n", "20" if quick else "100", "--json"))
    return [Row("safety", f"Emergency stop: Escape key in the engine → `A` byte at the thermode ({r['n']} reps, "
                          "half with a thermode query in flight)",
                f"median {r['median_ms']:.3f} ms, worst {r['max_ms']:.3f} ms", f"< {r['limit_ms']:.0f} ms",
                ok(r["max_ms"] < r["limit_ms"]))]


def serial_latency(quick: bool) -> list[Row]:
    n = "20" if quick else "100"
    out = call("bench_serial_latency.py", "--n", n)
    rows = []
    for line in out.splitlines():
        m = re.match(r"(.+?)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", line.strip())
        if m and "->" in m.group(1):
            rows.append(Row("timing", f"Driver `{m.group(1).strip()}` over a pty ({n} reps)",
                            f"median {float(m.group(2)):.3f} ms, p99 {float(m.group(3)):.3f} ms, "
                            f"max {float(m.group(4)):.3f} ms"))
    if not rows:
        raise BenchFailed("bench_serial_latency.py printed no figures")
    return rows


def tcs2_pacing(quick: bool) -> list[Row]:
    r = last_json(call("bench_tcs2_pacing.py", "--n", "15" if quick else "50", "--json"))
    n = r["n"]
    return [Row("timing", f"TCS II, 1 ms/char pacing, pre-loaded: planned onset → `L` at the strict emulator ({n} reps)",
                f"median {r['preload_median_ms']:.3f} ms, p99 {r['preload_p99_ms']:.3f} ms, "
                f"max {r['preload_max_ms']:.3f} ms"),
            Row("timing", f"TCS II, 1 ms/char pacing, `stimulate()` at the onset (load + `P` + `L`) ({n} reps)",
                f"median {r['at_onset_median_ms']:.1f} ms, p99 {r['at_onset_p99_ms']:.1f} ms"),
            Row("safety", f"TCS II: `abort()` → `A` while a parameter string is being paced ({n} reps)",
                f"median {r['escape_median_ms']:.3f} ms, p99 {r['escape_p99_ms']:.3f} ms, max "
                f"{r['escape_max_ms']:.3f} ms; rest unsent {r['escape_rest_unsent']}/{n}", "< 100 ms",
                ok(r["escape_max_ms"] < 100 and r["escape_rest_unsent"] == n))]


def rating_capture(quick: bool) -> list[Row]:
    r = last_json(call("bench_rating_capture.py", "--n", "5" if quick else "20", "--moves", "10" if quick else "40",
                       gui=True))
    c, shown, ret, cont = r["capture"], r["shown"], r["return"], r["continuous"]
    return [Row("timing", f"Rating capture in the PsychoPy window: mouse release → rating registered ({r['n']} ratings)",
                f"median {c['median_ms']:.1f} ms, p95 {c['p95_ms']:.1f} ms, max {c['max_ms']:.1f} ms"),
            Row("timing", "Rating capture: mouse release → flip of the first frame showing the value",
                f"median {shown['median_ms']:.1f} ms, p95 {shown['p95_ms']:.1f} ms, max {shown['max_ms']:.1f} ms"),
            Row("timing", "Rating capture: Confirm release → rate() returned",
                f"median {ret['median_ms']:.1f} ms, max {ret['max_ms']:.1f} ms; rating error median "
                f"{r['rating_error_points']['median']} points"),
            Row("timing", f"Continuous rating: pointer moved → flip of the first frame whose sample shows it "
                          f"({cont['moves']} moves)",
                f"median {cont['shown']['median_ms']:.1f} ms, p95 {cont['shown']['p95_ms']:.1f} ms, max "
                f"{cont['shown']['max_ms']:.1f} ms; {cont['missed']} missed; frame {cont['frame_ms']:.1f} ms")]


def startup(quick: bool) -> list[Row]:
    r = last_json(call("bench_startup.py", "--json", "--visit", "--reps", "3" if quick else "5", gui=True, timeout=1800))
    g, b, c, h, v = r["goals"], r["bare"], r["psychopy"], r["headless"], r["visit"]
    return [
        Row("start-up", "Bare PsychoPy script (same window, one slider, one text, one flip): launch → flip",
            f"{b['s']:.2f} s (CPU {b['cpu_s']:.2f} s), peak RSS {b['rss_mb']:.0f} MB"),
        Row("start-up", "`cpm-session run --simulate --speed 100`: launch → first frame of the first phase",
            f"{c['s']:.2f} s (CPU {c['cpu_s']:.2f} s), peak RSS {c['rss_mb']:.0f} MB"),
        Row("start-up", "Start-up ratio cpm-session / bare PsychoPy (wall; CPU)",
            f"{r['ratio_time']:.2f}x; {r['ratio_cpu']:.2f}x", f"≤ {g['time_ratio']}x", ok(r["ratio_time"] <= g["time_ratio"])),
        Row("memory", "Peak RSS ratio cpm-session / bare PsychoPy (to the first frame)", f"{r['ratio_rss']:.2f}x",
            f"≤ {g['rss_ratio']}x", ok(r["ratio_rss"] <= g["rss_ratio"])),
        Row("start-up", "Command → first phase, headless", f"{h['s']:.2f} s (CPU {h['cpu_s']:.2f} s)",
            f"< {g['headless_s']} s", ok(h["s"] < g["headless_s"])),
        Row("start-up", "Simulated visit at `--speed 100` with the real PsychoPy window: launch → exit (session end)",
            f"{v['exit_s']:.1f} s ({v['session_end_s']:.1f} s)", f"< {g['visit_limit_s']:.0f} s",
            ok(v["exit_s"] < g["visit_limit_s"])),
        Row("memory", "Peak RSS of a whole visit, PsychoPy window", f"{v['rss_mb']:.0f} MB"),
    ]


def summarize(quick: bool) -> list[Row]:
    n = 1000 if quick else 10_000
    r = last_json(call("bench_summarize.py", "--n", str(n), "--json", timeout=3600))
    t = r["target_s"]
    return [
        Row("analysis", f"`summarize` on {n} sessions with the integrity check, warm cache (in process; as a command)",
            f"{r['warm_s']:.2f} s; {r['warm_cli_s']:.2f} s", f"< {t:.0f} s",
            ok(r["warm_s"] < t and r["warm_cli_s"] < t)),
        Row("analysis", f"`summarize` on {n} sessions, 1 % of them changed since the last run",
            f"{r['warm_changed_s']:.2f} s", f"< {t:.0f} s", ok(r["warm_changed_s"] < t)),
        Row("analysis", f"`summarize` on {n} sessions, cold cache ({r['cpus']} worker processes)", f"{r['cold_s']:.1f} s"),
    ]


def calibration(quick: bool) -> list[Row]:
    r = last_json(call("bench_calibration.py", "--seeds", "2" if quick else "30", "--json"))
    below = f"{len(r['cells_below'])} cells with SD ≤ 8 below 90 % (lowest {r['min_cell_share_sd_le_8']:.0%})"
    noise = ", ".join(f"{k} {v:.1%}" for k, v in r["per_noise"].items())
    return [Row("calibration", f"Verified TS within ±0.5 °C of the true Pain-60 ({r['n']} runs: slope 6-20 × noise SD "
                "4-12 × true 38-49 °C × habituation; per cell in benchmarks/calibration_grid.md)",
                f"{r['share_within']:.1%} ({noise}); {below}", "≥ 95 %, ≥ 90 % per cell with SD ≤ 8",
                ok(r["share_within"] >= r["required"] and not r["cells_below"])),
            Row("calibration", "Highest temperature delivered vs cap", f"{r['max_delivered_c']:.1f} °C (cap {r['cap_c']:.1f})",
                f"≤ {r['cap_c']:.1f} °C", ok(r["max_delivered_c"] <= r["cap_c"])),
            Row("calibration", "Stimuli per calibration (mean, series + verification); mean absolute error",
                f"{r['mean_stimuli']:.1f}; {r['mean_abs_error_c']:.3f} °C", "≤ 10", ok(r["mean_stimuli"] <= 10.0))]


def durability(quick: bool) -> list[Row]:
    r = last_json(call("bench_durability.py", "--kills", "6" if quick else "50", "--json"))
    return [Row("durability", f"kill -9 at random moments then resume ({r['kills']} visits, {r['killed_mid_visit']} "
                              f"killed mid-visit in {len(r['kill_phases'])} phases)",
                f"{r['events_lost']} of {r['events_before_kill']} events lost; {r['resumed_completed']}/"
                f"{r['killed_mid_visit']} completed; {r['verify_failures']} verify failures"
                + (f" (first: {r['verify_problems'][0]})" if r.get("verify_problems") else ""),
                "0 lost, all complete",
                ok(r["events_lost"] == 0 and r["resumed_completed"] == r["killed_mid_visit"]
                   and r["verify_failures"] == 0))]


def longrun(quick: bool) -> list[Row]:
    r = last_json(call("bench_longrun.py", "--visits", "6" if quick else "20", "--json"))
    return [Row("memory", f"{r['visits']} visits back to back in one process: growth after warm-up",
                f"heap {r['heap_growth_mb']:+.2f} MB, RSS {r['rss_growth_mb']:+.1f} MB, fds {r['fds_first']}→{r['fds_last']}",
                f"heap ≤ {r['heap_limit_mb']:g} MB, RSS ≤ {r['rss_limit_mb']:g} MB, fds flat", ok(r["ok"]))]


def medoc(quick: bool) -> list[Row]:
    r = last_json(call("bench_medoc.py", "--n", "10" if quick else "40", "--json"))
    where = f"Medoc over TCP to the MMS emulator, spacing {r['spacing_s']:g} s"

    def fig(k: str) -> str:
        return f"median {r[k]['median_ms']:.1f} ms, p95 {r[k]['p95_ms']:.1f} ms, max {r[k]['max_ms']:.1f} ms"

    return [Row("timing", f"{where}: planned onset → TRIGGER, prepared ahead ({r['onset_prepared']['n']:.0f} reps)",
                fig("onset_prepared")),
            Row("timing", f"{where}: stimulate() (select + pre-test + trigger) → TRIGGER "
                          f"({r['onset_stimulate']['n']:.0f} reps)", fig("onset_stimulate")),
            Row("safety", f"{where}: abort() → ABORT, idle ({r['abort_idle']['n']:.0f} reps; a reset ABORT is "
                          "re-sent when MMS's busy window ends)", fig("abort_idle")),
            Row("safety", f"{where}: abort() → ABORT, command in flight ({r['abort_command_in_flight']['n']:.0f} reps)",
                fig("abort_command_in_flight"))]


def fidelity(quick: bool) -> list[Row]:
    r = last_json(call("bench_fidelity.py", "--reps", "5" if quick else "20", "--json"))
    return [Row("fidelity", f"fidelity block of a whole visit at its end ({r['events']} events, {r['device_rows']} "
                "device rows: read + compute)", f"{r['folder_s'] * 1000:.1f} ms", f"< {r['target_s'] * 1000:.0f} ms",
                ok(r["folder_s"] < r["target_s"])),
            Row("fidelity", f"same with devices.csv ×10 ({r['scaled_rows']} rows)", f"{r['scaled_folder_s'] * 1000:.0f} ms"),
            Row("fidelity", "CS end → TS_post, staff 20 s late (virtual clock)",
                f"{r['cs_to_ts_post_s']} s (scripted {r['cs_to_ts_post_scripted_s']} s)")]


BENCHES: dict[str, Callable[[bool], list[Row]]] = {
    "onset": onset, "estop": estop, "serial": serial_latency, "tcs2": tcs2_pacing, "rating": rating_capture,
    "startup": startup,
    "summarize": summarize, "calibration": calibration, "durability": durability, "longrun": longrun,
    "medoc": medoc,


    "fidelity": fidelity,
}


def table(rows: list[Row]) -> str:
    """Return the rows as a Markdown table."""
    lines = ["| area | figure | value | requirement | verdict |", "|---|---|---|---|---|"]
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines += [f"| {r.area} | {cell(r.figure)} | {cell(r.value)} | {cell(r.requirement or '—')} | {r.verdict or '—'} |"
              for r in rows]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    p.add_argument("--only", nargs="+", choices=list(BENCHES), help="run only these")
    p.add_argument("--write", action="store_true", help="write results.md even for --quick/--only")
    args = p.parse_args()
    rows: list[Row] = []
    t0 = time.perf_counter()
    for name, fn in BENCHES.items():
        if args.only and name not in args.only:
            continue
        t = time.perf_counter()
        try:
            rows += fn(args.quick)
        except (BenchFailed, subprocess.TimeoutExpired, KeyError, ValueError) as e:
            rows.append(Row(name, f"{name} benchmark", f"n/a ({e})"))
        print(f"[{name}: {time.perf_counter() - t:.0f} s]", file=sys.stderr, flush=True)
    head = (f"Benchmarks of cpm-session, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}: "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()} "
            f"{platform.release()}; took {time.perf_counter() - t0:.0f} s{' (quick)' if args.quick else ''}.")
    text = f"# Benchmark results\n\n{head}\n\n{table(rows)}\n"
    print(text)
    if args.write or not (args.quick or args.only):
        RESULTS.write_text(text, encoding="utf-8")
        print(f"written to {RESULTS.relative_to(ROOT)}")
    return 1 if any(r.verdict == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
