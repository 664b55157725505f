"""Pilot mode: a person at the screen with simulated devices; pilot data never reach summaries or exports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cpm_session.cli import main
from cpm_session.clock import VirtualClock
from cpm_session.config.protocol import load_protocol
from cpm_session.config.station import load_station
from cpm_session.errors import InvalidIdError
from cpm_session.ids import validate_participant_id
from cpm_session.record.folder import iter_session_dirs, pilot_dir
from cpm_session.sim.synth import write_session
from cpm_session.sim.world import run_visit
from cpm_session.ui.headless import HeadlessUI
from tests.conftest import SIM_STATION

PILOT = ["run", "--participant", "P001", "--visit", "baseline", "--pilot"]


def test_pilot_option_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert main([*PILOT, "--simulate", "--data", str(data)]) == 2
    assert "--pilot and --simulate exclude each other" in capsys.readouterr().err
    assert main([*PILOT, "--ui", "headless", "--data", str(data)]) == 2
    assert "--pilot needs the participant window" in capsys.readouterr().err
    assert main([*PILOT, "--station", "hardware/example-lab.toml", "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert "--pilot runs on simulated devices" in err and "Traceback" not in err
    assert main([*PILOT, "--sim-truth", "pain60_c=45", "--data", str(data)]) == 2
    assert "--sim-truth needs --simulate" in capsys.readouterr().err
    assert not data.exists()


def test_sim_station_without_simulate_names_pilot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--participant", "P001", "--visit", "baseline", "--station", str(SIM_STATION),
                 "--data", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "all simulated" in err and "--pilot" in err


def test_pilot_is_a_reserved_participant_id() -> None:
    for pid in ("pilot", "PILOT", "Pilot"):
        with pytest.raises(InvalidIdError, match="reserved"):
            validate_participant_id(pid)
    assert validate_participant_id("pilot-01") == "pilot-01"


def test_missing_licensed_wording_names_both_ways_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A person at the screen (pilot or real) needs the licensed FIQR wording: the one-line error says to add the
    file or to remove the questionnaire from the protocol's [questionnaires] names, naming that protocol file."""
    data = tmp_path / "data"
    assert main([*PILOT, "--data", str(data), "--no-status"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "questionnaire 'fiqr'" in err and "fiqr.items.toml" in err
    assert 'remove "fiqr" from `names` in the [questionnaires] table of the protocol file' in err
    assert "protocols/cpm-thermal.toml" in err
    assert not data.exists()  # stopped before the window opened or anything was written


def test_pilot_visit_goes_to_the_pilot_folder_and_is_never_summarized(tmp_path: Path, write_protocol) -> None:  # type: ignore[no-untyped-def]
    from cpm_session.analysis.summarize import summarize
    from cpm_session.export import collect_study

    data = tmp_path / "data"
    study = write_session(data, "P001", "baseline", seed=1)
    write_session(data, "P002", "baseline", seed=2)
    # a pilot run: no simulated participant; the headless screen stands in for the person (answers 42 each time)
    clock = VirtualClock()
    ui = HeadlessUI(clock)
    ui.responder = lambda prompt: (42.0, 1.5)
    nrs_only = load_protocol(write_protocol({"questionnaires": {"names": ["nrs"]}}))
    o = run_visit(nrs_only, load_station(SIM_STATION), data_dir=pilot_dir(data), participant="P001",
                  visit="baseline", ui=ui, clock=clock, simulate=False, pilot=True, staff="auto", operator="PI")
    assert o.session_dir.parent.parent == data / "pilot"
    hdr = json.loads((o.session_dir / "session.json").read_text(encoding="utf-8"))
    assert hdr["pilot"] is True and hdr["simulate"] is False and "sim_truth" not in hdr
    # also the hidden cache folder of summarize is no study data
    (data / ".cache" / "x").mkdir(parents=True)
    (data / ".cache" / "x" / "session.json").write_text("{}", encoding="utf-8")
    dirs = list(iter_session_dirs(data))
    assert sorted(p.parent.name for p in dirs) == ["P001", "P002"] and study in dirs
    table = summarize(data).table
    assert sorted(table["participant"]) == ["P001", "P002"]
    assert not any(Path(p).is_relative_to(data / "pilot") for p in table["path"])
    st = collect_study(data)
    assert sorted(s.path.parent.name for s in st.sessions) == ["P001", "P002"]
    assert list(iter_session_dirs(data / "pilot")) == [o.session_dir]  # pilot data can still be read on purpose
