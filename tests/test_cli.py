"""The run command: clear one-line errors, nothing written, for every kind of bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cpm_session.cli import main
from tests.conftest import ROOT, SIM_STATION, THERMAL

BASE = ["run", "--visit", "baseline", "--simulate", "--ui", "headless"]


def _run(tmp_path: Path, *extra: str) -> int:
    return main([*BASE, "--data", str(tmp_path / "data"), *extra])


@pytest.mark.parametrize("pid", ["John Smith", "", "../../etc", "a/b"])
def test_bad_participant_ids(tmp_path: Path, pid: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(tmp_path, "--participant", pid) == 2
    err = capsys.readouterr().err
    assert err.startswith("cpm-session run: error: participant ID") and "Traceback" not in err
    assert not (tmp_path / "data").exists()


def test_bad_protocol_names_file_and_key(tmp_path: Path, write_protocol, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    bad = write_protocol({"safety": {"thermode_cap_c": 51.0}})
    assert _run(tmp_path, "--participant", "P001", "--protocol", str(bad)) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "safety.thermode_cap_c" in err and "51.0" in err
    assert not (tmp_path / "data").exists()


def test_unknown_visit_and_missing_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--participant", "P001", "--visit", "week9", "--simulate", "--ui", "headless",
                 "--data", str(tmp_path)]) == 2
    assert "not in the protocol's visits" in capsys.readouterr().err
    assert _run(tmp_path, "--participant", "P001", "--station", str(tmp_path / "none.toml")) == 2
    assert "cannot read" in capsys.readouterr().err


def test_real_visit_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run", "--participant", "P001", "--visit", "baseline", "--data", str(tmp_path), "--ui", "headless"]
    assert main(args) == 2
    assert "--station FILE is required" in capsys.readouterr().err
    assert main([*args, "--station", str(SIM_STATION)]) == 2
    assert "all simulated" in capsys.readouterr().err
    assert main([*args[:-2], "--station", str(SIM_STATION), "--simulate", "--ui", "headless", "--speed", "0"]) == 2
    assert "--speed 0.0: expected a finite number in [0.01" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_sim_truth_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(tmp_path, "--participant", "P001", "--sim-truth", "pain60=45") == 2
    assert "unknown key 'pain60'" in capsys.readouterr().err
    assert _run(tmp_path, "--participant", "P002", "--sim-truth", "pain60_c=46.5", "--sim-truth", "cpm_effect=0") == 0
    out = capsys.readouterr().out
    assert "Pain-60 temperature" in out and "CPM_abs" in out and "Data written to:" in out


def test_module_entry_point_and_validate() -> None:
    r = subprocess.run([sys.executable, "-m", "cpm_session", "validate", str(THERMAL)], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and "OK" in r.stdout
