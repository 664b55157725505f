"""A read-only or full data folder: the visit refuses to start, or stops safely with the thermode at neutral.

Read-only and disk-full folders are real file systems where the test may mount them (a read-only
tmpfs, a 64 KiB tmpfs, as root); a monkeypatched writer raising ENOSPC after N events covers the same
path everywhere else.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cpm_session.record.folder as datalog
from cpm_session.record.folder import read_events
from cpm_session.record.integrity import check_chain
from cpm_session.sim.devices import SimThermode
from tests.conftest import ROOT
from tests.helpers import of, simulate

CPM = [sys.executable, "-m", "cpm_session"]
TINY_FS = "64k"
"""Size of the 'full disk': room for the header and the first events of a visit, not for the visit."""


def _mount_tmpfs(path: Path, options: str) -> bool:
    """Mount a tmpfs at `path` with `options`; return False if this machine does not let us."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def readonly_dir(tmp_path: Path) -> Iterator[Path]:
    """Return a data folder nobody can write: a read-only tmpfs (root) or a chmod 555 folder."""
    d = tmp_path / "ro"
    if _mount_tmpfs(d, "ro,size=16k"):
        try:
            yield d
        finally:
            _umount(d)
        return
    d.mkdir()
    d.chmod(0o555)
    try:
        if os.access(d, os.W_OK):
            pytest.skip("cannot make a read-only folder here (root without mount)")
        yield d
    finally:
        d.chmod(0o755)


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """Return a folder on a 64 KiB tmpfs (skip where mounting is not allowed)."""
    d = tmp_path / "tiny"
    if not _mount_tmpfs(d, f"size={TINY_FS}"):
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield d
    finally:
        _umount(d)


def test_read_only_data_folder_refuses_to_start_without_traceback(readonly_dir: Path) -> None:
    r = subprocess.run([*CPM, "run", "--participant", "P001", "--visit", "baseline", "--simulate", "--ui", "headless",
                        "--data", str(readonly_dir), "--no-status"], capture_output=True, text=True, cwd=ROOT,
                       timeout=60)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cpm-session run: error: cannot create session folder")
    assert str(readonly_dir) in err[0] and ("Read-only" in err[0] or "Permission denied" in err[0])
    assert not any(readonly_dir.iterdir())


class _FullAfter:
    """A log file that takes `n` more writes, then fails with ENOSPC like a full disk."""

    def __init__(self, f: Any, n: int) -> None:
        self._f, self.n = f, n

    def write(self, data: bytes) -> int:
        if self.n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.n -= 1
        return int(self._f.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def _fill_after(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    orig = datalog.SessionFolder.__init__

    def init(self: datalog.SessionFolder, *a: Any, **k: Any) -> None:
        orig(self, *a, **k)
        self.log._f = _FullAfter(self.log._f, n)  # type: ignore[assignment]

    monkeypatch.setattr(datalog.SessionFolder, "__init__", init)


def _assert_stopped_safely(out: Any, thermode: SimThermode, n_written: int | None = None) -> list[dict[str, Any]]:
    assert out.status == "aborted"
    assert "No space left on device" in out.message and "thermode" in out.message
    assert str(out.session_dir) in out.message
    assert thermode.commands[-1][1] == "abort"
    assert thermode.temperature_at(thermode.clock.now() + 0.2) == pytest.approx(thermode.neutral_c, abs=0.05)
    evs, _problem = read_events(out.session_dir / "events.jsonl")  # whatever was written reads back
    if n_written is not None:
        assert len(evs) == n_written
    _, _, problems = check_chain(out.session_dir / "events.jsonl")
    assert not [p for p in problems if "torn" not in p], problems  # intact chain (a torn tail at most)
    return evs


@pytest.mark.parametrize("n_events", [3, 40, 70])
def test_disk_full_mid_visit_stops_safely(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n_events: int) -> None:
    _fill_after(monkeypatch, n_events)
    out, _, devs = simulate(tmp_path)
    th = devs.thermode
    assert isinstance(th, SimThermode)
    evs = _assert_stopped_safely(out, th, n_written=n_events)
    assert evs[0]["event"] == "session_start" and [e["seq"] for e in evs] == list(range(n_events))


def test_disk_full_during_a_heat_stimulus_aborts_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the disk fills 1 s into the first calibration stimulus: the next device sample cannot be written
    ref, _, _ = simulate(tmp_path / "ref")
    ref_evs, _ = read_events(ref.session_dir / "events.jsonl")
    first = next(e for e in ref_evs if e["event"] == "stimulus")
    full_at = first["onset_t"] + 1.0
    clocks: list[Any] = []
    orig_init, orig_write = datalog.SessionFolder.__init__, datalog.CsvAppender.write

    def init(self: datalog.SessionFolder, path: Path, clock_now: Any, fsync: bool = True) -> None:
        orig_init(self, path, clock_now, fsync)
        clocks.append(clock_now)

    def write(self: datalog.CsvAppender, row: dict[str, Any]) -> None:
        if clocks and clocks[0]() >= full_at:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        orig_write(self, row)

    monkeypatch.setattr(datalog.SessionFolder, "__init__", init)
    monkeypatch.setattr(datalog.CsvAppender, "write", write)
    out, _, devs = simulate(tmp_path / "full")
    th = devs.thermode
    assert isinstance(th, SimThermode)
    evs = _assert_stopped_safely(out, th)
    assert of(evs, "stimulus")[-1]["seq"] == first["seq"]
    launch = [c for c in th.commands if c[1] == "launch"][-1]
    abort = next(c for c in th.commands if c[1] == "abort" and c[0] >= launch[0])
    assert th.temperature_at(abort[0] - 1e-3) > th.neutral_c + 5  # it was hot when the disk filled
    assert full_at <= abort[0] <= full_at + 0.1 + 1e-6  # aborted at the first failed sample (0.1 s sampling)


def test_disk_full_on_a_real_tiny_file_system(tiny_fs: Path) -> None:
    out, _, devs = simulate(tiny_fs)
    th = devs.thermode
    assert isinstance(th, SimThermode)
    assert out.status == "aborted" and "No space left on device" in out.message
    assert th.commands[-1][1] == "abort"
    assert th.temperature_at(th.clock.now() + 0.2) == pytest.approx(th.neutral_c, abs=0.05)
    evs, _ = read_events(out.session_dir / "events.jsonl")
    assert evs and evs[0]["event"] == "session_start"
    _, _, problems = check_chain(out.session_dir / "events.jsonl")
    assert not [p for p in problems if "torn" not in p], problems


def test_disk_full_via_the_command_line_is_a_message_not_a_traceback(tiny_fs: Path) -> None:
    r = subprocess.run([*CPM, "run", "--participant", "P001", "--visit", "baseline", "--simulate", "--ui", "headless",
                        "--data", str(tiny_fs), "--no-status"], capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 3, (r.stdout[-2000:], r.stderr[-2000:])
    assert "Traceback" not in r.stdout + r.stderr
    text = " ".join(r.stdout.split())
    assert "No space left on device" in text and "thermode was sent to neutral" in text
    assert "cpm-session resume" in text


def test_after_the_disk_is_freed_the_visit_resumes_and_verifies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cpm_session.record.integrity import verify_session_report
    from cpm_session.sim.world import resume_visit

    _fill_after(monkeypatch, 40)
    out, _, _ = simulate(tmp_path)
    assert out.status == "aborted"
    before = (out.session_dir / "events.jsonl").read_bytes()
    monkeypatch.undo()  # space again
    done = resume_visit(out.session_dir)
    assert done.status == "completed" and done.results["cpm_abs"] is not None
    assert (out.session_dir / "events.jsonl").read_bytes().startswith(before)
    report = verify_session_report(out.session_dir)
    assert report.ok, report.problems
