"""Medoc station files (validation of the program map) and `check-station` against the MMS emulator."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cpm_session.cli import main
from cpm_session.config.protocol import load_protocol
from cpm_session.config.station import load_station, parse_station
from cpm_session.devices.wire.medoc import Command
from cpm_session.errors import StationFileError
from cpm_session.sim.emulators.medoc import MedocEmulator, grid_programs
from cpm_session.station_check import check_station

ROOT = Path(__file__).resolve().parents[2]
THERMAL = ROOT / "protocols" / "cpm-thermal.toml"
EXAMPLE = ROOT / "hardware" / "example-lab-medoc.toml"


def station_data(**thermode: Any) -> dict[str, Any]:
    th = {"model": "medoc", "host": "10.0.0.5", "programs": {"40.0": 16, "40.5": 17}, **thermode}
    return {"station": {"name": "t", "max_thermode_c": 48.0}, "thermode": th, "bath": {"model": "sim"},
            "algometer": {"model": "sim"}}


def test_example_station_loads() -> None:
    st = load_station(EXAMPLE)
    assert st.thermode.model == "medoc" and st.thermode.port == "20121"


@pytest.mark.parametrize("change, match", [
    ({"programs": {"40.0": 16, "48.5": 17}}, r"program temperature 48\.5 °C is above the station cap max_thermode_c = 48"),
    ({"programs": {"40.0": 4}}, r"reserved for an MMS action code"),
    ({"programs": {"40.0": 300}}, r"1\.\.255"),
    ({"programs": {"40.0": 16, "41": 16}}, r"program code 16 used for both 40 and 41 °C"),
    ({"programs": {"40": 16, "40.0": 17}}, r"40 °C appears twice"),
    ({"programs": {"hot": 16}}, r"'hot' is not a number"),
    ({"programs": {}}, r"thermode\.programs"),
    ({"port": "COM3"}, r"thermode\.port.*TCP port"),
    ({"port": 70000}, r"thermode\.port"),
    ({"host": "tcp://10.0.0.5"}, r"not a URL"),
    ({"snap": "up"}, r"thermode\.snap"),
    ({"length_order": "middle"}, r"thermode\.length_order"),
    ({"zones": "11111"}, r"thermode\.zones': not a Medoc setting"),
    ({"command_spacing_s": -1}, r"thermode\.command_spacing_s"),
])
def test_bad_medoc_settings_refused_at_load(change: dict[str, Any], match: str) -> None:
    with pytest.raises(StationFileError, match=match):
        parse_station(station_data(**change), "lab.toml")


def test_missing_host_and_default_port() -> None:
    data = station_data()
    del data["thermode"]["host"]
    with pytest.raises(StationFileError, match=r"thermode\.host.*<missing>"):
        parse_station(data)
    assert parse_station(station_data()).thermode.port == ""  # 20121 is filled in by the Medoc settings


@pytest.fixture
def emu() -> Iterator[MedocEmulator]:
    e = MedocEmulator(20.0, programs=grid_programs(40.0, 44.0, 1.0), pretest_s=(0.5, 2.0)).start()
    yield e
    e.stop()


def write_station(tmp_path: Path, emu: MedocEmulator, extra: str = "") -> Path:
    text = ('[station]\nname = "medoc test"\nemulated = true\n\n' + emu.station_snippet(spacing_s=0.02) + extra
            + '\n[bath]\nmodel = "sim"\n\n[algometer]\nmodel = "sim"\n')
    tomllib.loads(text)
    p = tmp_path / "medoc.toml"
    p.write_text(text, encoding="utf-8")
    return p


def run_check(path: Path) -> tuple[Any, list[str]]:
    out: list[str] = []
    rep = check_station(load_station(path), load_protocol(THERMAL), bath_window_s=0.2, neutral_wait_s=1.0,
                        emit=out.append)
    return rep, out


def test_check_station_passes_and_selects_every_program(tmp_path: Path, emu: MedocEmulator) -> None:
    rep, out = run_check(write_station(tmp_path, emu))
    assert rep.ok, out
    text = "\n".join(out)
    assert "OK   thermode: programs selectable: 5 of 5 mapped programs selected and aborted" in text
    assert "OK   thermode: MMS state: system READY" in text and "at neutral: MMS reports 32.00 °C" in text
    selected = [r.parameter for r in emu.commands(Command.SELECT_TP, executed=True)]
    assert sorted(selected) == sorted(emu.programs)
    assert not emu.stimuli and emu.state == "listening"  # no trigger, every program aborted


def test_check_station_names_a_program_missing_in_mms(tmp_path: Path, emu: MedocEmulator) -> None:
    del emu.programs[18]  # 42 °C mapped in the station, not in MMS
    rep, out = run_check(write_station(tmp_path, _with_station_programs(emu)))
    assert not rep.ok
    fail = [ln for ln in out if ln.startswith("FAIL thermode: program 42")]
    assert fail and "does not know program code 18" in fail[0] and "\n" not in fail[0]


def _with_station_programs(emu: MedocEmulator) -> MedocEmulator:
    class View:  # the station snippet of the full grid while MMS lacks one program
        host, port = emu.host, emu.port
        programs = grid_programs(40.0, 44.0, 1.0)
        station_snippet = MedocEmulator.station_snippet
    return View()  # type: ignore[return-value]


def test_check_station_safe_mode_and_not_licensed(tmp_path: Path, emu: MedocEmulator) -> None:
    path = write_station(tmp_path, emu)
    emu.safe_mode = True
    rep, out = run_check(path)
    assert not rep.ok
    assert any(ln.startswith("FAIL thermode: external control:") and "Safe Mode" in ln for ln in out), out
    emu.safe_mode, emu.not_licensed = False, True
    rep, out = run_check(path)
    assert not rep.ok
    line = next(ln for ln in out if ln.startswith("FAIL thermode"))
    assert "without a response" in line and "licensed" in line and f"127.0.0.1:{emu.port}" in line


def test_check_station_cli_refused(tmp_path: Path, emu: MedocEmulator, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_station(tmp_path, emu)
    emu.stop()
    rc = main(["check-station", str(path), "--protocol", str(THERMAL)])
    out = capsys.readouterr().out
    assert rc != 0 and "connection refused" in out and "Traceback" not in out
