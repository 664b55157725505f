"""kill -9 at a random moment of a visit, then `cpm-session resume`: every visit completes, no event is lost.

Each visit runs as its own `cpm-session run --simulate --ui headless --speed 2000` process (about one wall
second of visit after start-up) and is SIGKILLed at a random moment once its session folder exists. The
log's bytes are snapshotted right after the kill; `cpm-session resume DIR --ui headless` (virtual clock)
then finishes it in the same folder. The resumed log must start with every complete line of the
snapshot, byte for byte, and `verify` must pass.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from cpm_session import cli
from cpm_session.record.integrity import verify_session_report
from tests.conftest import ROOT

N_VISITS = 20
PARALLEL = 2
SPEED = 2000.0
KILL_WINDOW_S = (0.0, 0.9)
"""Wall seconds after the session folder appears within which the kill falls (a visit takes ~1.2 s)."""


@dataclass
class Killed:
    """One killed visit."""

    pid: str
    proc: subprocess.Popen[bytes]
    kill_after_s: float
    folder: Path | None = None
    snapshot: bytes = b""
    exited_on_its_own: bool = False


def _start(data: Path, i: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "cpm_session", "run", "--participant", f"K{i:03d}", "--visit",
                             "baseline", "--simulate", "--ui", "headless", "--speed", str(SPEED), "--seed", str(i),
                             "--data", str(data), "--no-status"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _wait_folder(k: Killed, data: Path) -> float:
    """Wait for the visit's session folder; return the `perf_counter` time it was first seen."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = sorted((data / k.pid).glob("baseline-*/events.jsonl"))
        if found:
            k.folder = found[0].parent
            return time.perf_counter()
        time.sleep(0.002)
    raise AssertionError(f"{k.pid}: no session folder appeared")


def _kill_at(k: Killed, at: float) -> None:
    """SIGKILL at `perf_counter` time `at` and snapshot the log."""
    assert k.folder is not None
    time.sleep(max(0.0, at - time.perf_counter()))
    if k.proc.poll() is None:
        k.proc.send_signal(signal.SIGKILL)
    k.proc.wait(10)
    k.exited_on_its_own = k.proc.returncode != -signal.SIGKILL
    k.snapshot = (k.folder / "events.jsonl").read_bytes()


def _resume(folder: Path) -> tuple[int, str]:
    """Run `cpm-session resume FOLDER --ui headless` in this process; return (exit code, what it printed)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cli.main(["resume", str(folder), "--ui", "headless", "--no-status"])
    return code, out.getvalue()


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(20261125)
    data = tmp_path / "data"
    killed: list[Killed] = []
    for batch in range(0, N_VISITS, PARALLEL):
        group = [Killed(f"K{i:03d}", _start(data, i), rng.uniform(*KILL_WINDOW_S))
                 for i in range(batch, min(batch + PARALLEL, N_VISITS))]
        due = [(_wait_folder(k, data) + k.kill_after_s, i) for i, k in enumerate(group)]  # from each one's start
        for at, i in sorted(due):
            _kill_at(group[i], at)
        killed.extend(group)
    mid_visit = [k for k in killed if k.folder and b'"event": "session_end"' not in k.snapshot]
    assert len(mid_visit) >= N_VISITS // 2, len(mid_visit)  # most were really killed mid-visit
    for k in killed:
        assert k.folder is not None
        if json.loads((k.folder / "session.json").read_text())["status"] == "completed":
            # finished before the kill landed (killed while printing the result, or exited): nothing to resume
            assert k.snapshot.endswith(b"\n") and json.loads(k.snapshot.splitlines()[-1])["event"] == "session_end"
            code, text = _resume(k.folder)
            assert code == 2 and "already completed" in text
            continue
        assert not k.exited_on_its_own
        complete = k.snapshot[: k.snapshot.rfind(b"\n") + 1]
        code, text = _resume(k.folder)
        assert code == 0, (k.pid, text[-2000:])
        after = (k.folder / "events.jsonl").read_bytes()
        assert after.startswith(complete), f"{k.pid}: events recorded before the kill changed or were lost"
        torn = k.snapshot[len(complete):]
        if torn:
            assert torn in (k.folder / "events.torn").read_bytes()  # a half-written line is kept aside
        header = json.loads((k.folder / "session.json").read_text())
        assert header["status"] == "completed" and header["results"]["cpm_abs"] is not None, k.pid
        resumed = [json.loads(line) for line in after[len(complete):].splitlines()]
        assert resumed[0]["event"] == "resume_session" and resumed[-1]["event"] == "session_end"
        report = verify_session_report(k.folder)
        assert report.ok, (k.pid, report.problems)


KILL_BEFORE_ROW = """
import os, signal, sys
import cpm_session.record.folder as dl
from cpm_session.sim.world import run_simulated_visit
orig, n = dl.CsvAppender.write, [0]
def write(self, row):
    if 'rating' in row:  # a ratings.csv row: die after its log event, before the row (the narrowest window)
        n[0] += 1
        if n[0] == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)
    orig(self, row)
dl.CsvAppender.write = write
run_simulated_visit(sys.argv[1], "P001", "baseline", protocol_path=sys.argv[3])
"""


@pytest.mark.parametrize(("protocol", "row", "event"), [("cpm-thermal.toml", 6, "rating"), ("cpm-pressure.toml", 2, "ppt")])
def test_killed_between_a_rating_event_and_its_table_row_resumes_to_a_consistent_table(
        tmp_path: Path, protocol: str, row: int, event: str) -> None:
    r = subprocess.run([sys.executable, "-c", KILL_BEFORE_ROW, str(tmp_path), str(row),
                        str(ROOT / "protocols" / protocol)], cwd=ROOT, timeout=120)
    assert r.returncode == -signal.SIGKILL
    folder = next(tmp_path.glob("P001/baseline-*"))
    logged = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in logged].count(event) == row
    assert len((folder / "ratings.csv").read_text().splitlines()) == 1 + row - 1  # the table lags the log by one
    code, text = _resume(folder)
    assert code == 0, text[-2000:]
    report = verify_session_report(folder)
    assert report.ok, report.problems
    rows = (folder / "ratings.csv").read_text().splitlines()
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert len(rows) - 1 == sum(e["event"] in ("rating", "ppt") for e in events)
