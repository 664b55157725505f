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
from cpm_session.integrity import verify_session_report
from tests.conftest import ROOT

N_VISITS = 20
PARALLEL = 2
SPEED = 2000.0
KILL_WINDOW_S = (0.0, 1.2)
"""Wall seconds after the session folder appears within which the kill falls (a visit takes ~1-2 s)."""


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


def _kill_when_due(k: Killed, data: Path) -> None:
    """Wait for the session folder, then SIGKILL `kill_after_s` later and snapshot the log."""
    deadline = time.monotonic() + 30
    while k.folder is None and time.monotonic() < deadline:
        found = sorted((data / k.pid).glob("baseline-*/events.jsonl"))
        if found:
            k.folder = found[0].parent
            break
        time.sleep(0.005)
    assert k.folder is not None, f"{k.pid}: no session folder appeared"
    time.sleep(k.kill_after_s)
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
        for k in sorted(group, key=lambda k: k.kill_after_s):
            _kill_when_due(k, data)
        killed.extend(group)
    assert sum(not k.exited_on_its_own for k in killed) >= N_VISITS * 3 // 4  # most were really killed
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
