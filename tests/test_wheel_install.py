"""The wheel carries the protocols, station examples and questionnaires: installed into a fresh
virtualenv outside the repository, it validates the packaged protocol and runs a simulated visit from
any working directory."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r


def test_wheel_in_a_fresh_venv_runs_from_any_directory(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(ROOT)],
         cwd=tmp_path)
    wheel = next(dist.glob("cpm_session-*.whl"))
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    py = venv / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], cwd=tmp_path)
    # the dependencies (PsychoPy, pandas, ...) come from the project's environment, not the repository
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp_path).stdout.strip())
    (site / "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    where = _run([str(py), "-c", "import cpm_session, cpm_session.resources as r; print(cpm_session.__file__); "
                  "print(r.resource_dir('protocols'))"], cwd=elsewhere).stdout.split()
    assert all(str(venv) in w for w in where), where  # the installed copy, not the repository
    exe = venv / "bin" / "cpm-session"
    out = _run([str(exe), "validate", "protocols/cpm-thermal.toml", "hardware/sim.toml"], cwd=elsewhere).stdout
    assert "OK" in out or "ok" in out.lower()
    out = _run([str(exe), "run", "--simulate", "--ui", "headless", "--participant", "P001", "--visit", "baseline",
                "--data", "data"], cwd=elsewhere).stdout
    assert "CPM_abs" in out
    assert list((elsewhere / "data" / "P001").glob("baseline-*/session.json"))
