"""kill -9 durability: SIGKILL simulated visits at random moments, resume each, count events lost (must be 0).

Each visit is `cpm-session run --simulate --ui headless --speed 2000` in its own process, killed at a random
moment after its session folder appears; the log is snapshotted at once, then `cpm-session resume DIR
--ui headless` (virtual clock, in this process) finishes it. An event is lost when a complete line of the
snapshot is not, byte for byte, at the same place in the resumed log. Also counted: sessions completed,
`verify` failures, and the phase each kill landed in.

Run: `.venv/bin/python benchmarks/bench_durability.py [--kills 50] [--json]`
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPEED = 2000.0
PARALLEL = 2
KILL_WINDOW_S = (0.0, 0.9)
"""Wall seconds after the session folder appears within which the kill falls (a visit takes ~1.2 s)."""


def _start(data: Path, pid: str, seed: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "cpm_session", "run", "--participant", pid, "--visit", "baseline",
                             "--simulate", "--ui", "headless", "--speed", str(SPEED), "--seed", str(seed),
                             "--data", str(data), "--no-status"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _wait_folder(data: Path, pid: str) -> tuple[Path, float]:
    """Return the visit's session folder and the `perf_counter` time it was first seen."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = sorted((data / pid).glob("baseline-*/events.jsonl"))
        if found:
            return found[0].parent, time.perf_counter()
        time.sleep(0.002)
    raise RuntimeError(f"{pid}: no session folder")


def _kill(proc: subprocess.Popen[bytes], folder: Path, at: float) -> bytes:
    """SIGKILL `proc` at `perf_counter` time `at` (unless it has exited); return the log's bytes right after."""
    time.sleep(max(0.0, at - time.perf_counter()))
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    return (folder / "events.jsonl").read_bytes()


def _last_phase(log: bytes) -> str:
    phase = "before the first phase"
    for line in log.splitlines():
        if b'"event": "phase_enter"' in line:
            try:
                phase = json.loads(line)["phase"]
            except ValueError:
                pass
    return phase


def run(kills: int, seed: int = 1, keep: Path | None = None) -> dict[str, Any]:
    """Kill and resume `kills` visits; return the counts (copy folders failing `verify` into `keep`)."""
    from cpm_session import cli
    from cpm_session.record.integrity import verify_session_report

    rng = random.Random(seed)
    res: dict[str, Any] = {"kills": kills, "killed_mid_visit": 0, "finished_before_kill": 0, "resumed_completed": 0,
                           "events_lost": 0, "events_before_kill": 0, "torn_tails": 0, "verify_failures": 0,
                           "resume_failures": 0}
    phases: Counter[str] = Counter()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        for batch in range(0, kills, PARALLEL):
            group = [(f"D{i:04d}", rng.uniform(*KILL_WINDOW_S)) for i in range(batch, min(batch + PARALLEL, kills))]
            procs = {pid: _start(data, pid, int(pid[1:])) for pid, _ in group}
            due = []
            for pid, after in group:  # every kill counts from its own folder's appearance
                folder, seen = _wait_folder(data, pid)
                due.append((seen + after, pid, folder))
            for at, pid, folder in sorted(due):
                snap = _kill(procs[pid], folder, at)
                header = json.loads((folder / "session.json").read_text(encoding="utf-8"))
                if header.get("status") == "completed":
                    res["finished_before_kill"] += 1
                    continue
                res["killed_mid_visit"] += 1
                phases[_last_phase(snap)] += 1
                complete = snap[: snap.rfind(b"\n") + 1]
                res["events_before_kill"] += complete.count(b"\n")
                res["torn_tails"] += len(snap) > len(complete)
                out = io.StringIO()
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                    code = cli.main(["resume", str(folder), "--ui", "headless", "--no-status"])
                after_log = (folder / "events.jsonl").read_bytes()
                kept = 0
                for a, b in zip(complete.splitlines(), after_log.splitlines()):
                    if a != b:
                        break
                    kept += 1
                res["events_lost"] += complete.count(b"\n") - kept
                if code != 0:
                    res["resume_failures"] += 1
                elif json.loads((folder / "session.json").read_text(encoding="utf-8"))["status"] == "completed":
                    res["resumed_completed"] += 1
                report = verify_session_report(folder)
                if not report.ok:
                    res["verify_failures"] += 1
                    res.setdefault("verify_problems", []).append(f"{folder.name} killed in {_last_phase(snap)}: "
                                                                 f"{report.problems[0]}")
                    if keep is not None:
                        shutil.copytree(folder, keep / pid)
    res["kill_phases"] = dict(phases)
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=50)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", type=Path, default=None, help="copy session folders that fail verify here")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    r = run(args.kills, args.seed, args.keep)
    if args.json:
        print(json.dumps(r))
        return
    print(f"{r['kills']} visits, SIGKILL at random moments ({r['wall_s']} s): {r['killed_mid_visit']} killed mid-visit "
          f"({r['finished_before_kill']} had finished), {r['resumed_completed']} completed after resume, "
          f"{r['events_lost']} of {r['events_before_kill']} pre-kill events lost, {r['torn_tails']} torn tails kept, "
          f"{r['verify_failures']} verify failures, {r['resume_failures']} resume failures")
    print(f"  kills by phase: {r['kill_phases']}")
    for problem in r.get("verify_problems", []):
        print(f"  verify: {problem}")


if __name__ == "__main__":
    main()
