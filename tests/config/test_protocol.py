"""Protocol files: the shipped ones load; every class of error names file, key, expected and found."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpm_session.cli import main
from cpm_session.config.protocol import load_protocol, parse_protocol
from cpm_session.errors import ProtocolFileError
from tests.conftest import PRESSURE, THERMAL, toml_dumps


def test_shipped_protocols_load() -> None:
    t = load_protocol(THERMAL)
    assert t.protocol.ts_modality == "thermal"
    assert t.acclimatization.duration_s == 600 and t.acclimatization.min_s == 600 and t.acclimatization.max_s == 900
    assert t.test_stimulus.duration_s == 5 and t.test_stimulus.pre_repeats == 3 and t.test_stimulus.interval_s == 30
    assert (t.cold_pressor.bath_min_c, t.cold_pressor.bath_max_c, t.cold_pressor.duration_s, t.cold_pressor.rating_at_s) == (1, 4, 60, 30)
    assert t.safety.thermode_cap_c <= 50
    assert len(t.sha256) == 64
    assert load_protocol(PRESSURE).protocol.ts_modality == "pressure"


def _err(tmp_path: Path, data: dict) -> ProtocolFileError:
    p = tmp_path / "bad.toml"
    p.write_text(toml_dumps(data), encoding="utf-8")
    with pytest.raises(ProtocolFileError) as ei:
        load_protocol(p)
    assert str(p) in str(ei.value)
    return ei.value


def test_missing_key(tmp_path: Path, protocol_data: dict) -> None:
    del protocol_data["cold_pressor"]["duration_s"]
    e = _err(tmp_path, protocol_data)
    assert e.key == "cold_pressor.duration_s" and "present" in e.expected and e.found == "<missing>"


def test_wrong_type(tmp_path: Path, protocol_data: dict) -> None:
    protocol_data["test_stimulus"]["pre_repeats"] = "three"
    e = _err(tmp_path, protocol_data)
    assert e.key == "test_stimulus.pre_repeats" and "integer" in e.expected and e.found == "three"


def test_out_of_range(tmp_path: Path, protocol_data: dict) -> None:
    protocol_data["test_stimulus"]["pre_repeats"] = 0
    e = _err(tmp_path, protocol_data)
    assert e.key == "test_stimulus.pre_repeats" and "greater than or equal to 1" in e.expected and e.found == 0


def test_unknown_key(tmp_path: Path, protocol_data: dict) -> None:
    protocol_data["cold_pressor"]["durration_s"] = 60.0
    e = _err(tmp_path, protocol_data)
    assert e.key == "cold_pressor.durration_s" and "unknown" in e.expected


@pytest.mark.parametrize("cap", [50.1, 55.0, 120.0])
def test_cap_above_50_refused(tmp_path: Path, protocol_data: dict, cap: float) -> None:
    protocol_data["safety"]["thermode_cap_c"] = cap
    e = _err(tmp_path, protocol_data)
    assert e.key == "safety.thermode_cap_c" and "50" in e.expected and e.found == cap


def test_cross_field_rules(tmp_path: Path, protocol_data: dict) -> None:
    protocol_data["cold_pressor"]["bath_min_c"] = 5.0
    e = _err(tmp_path, protocol_data)
    assert e.key == "cold_pressor" and "bath_min_c" in e.expected
    protocol_data["cold_pressor"]["bath_min_c"] = 1.0
    protocol_data["calibration"]["start_c"] = 49.5
    e = _err(tmp_path, protocol_data)
    assert e.key == "calibration.start_c"


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "x.toml"
    p.write_text("[protocol\nname=", encoding="utf-8")
    with pytest.raises(ProtocolFileError, match="valid UTF-8 TOML"):
        load_protocol(p)
    with pytest.raises(ProtocolFileError, match="readable file"):
        load_protocol(tmp_path / "nope.toml")


def test_validate_command(tmp_path: Path, protocol_data: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(THERMAL), str(PRESSURE)]) == 0
    protocol_data["safety"]["thermode_cap_c"] = 52.0
    bad = tmp_path / "bad.toml"
    bad.write_text(toml_dumps(protocol_data), encoding="utf-8")
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "BAD" in out and "safety.thermode_cap_c" in out and "52.0" in out


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["protocol", "safety", "cold_pressor", "x", "texts"]),
                       st.one_of(st.integers(), st.text(max_size=5), st.dictionaries(st.text(max_size=8), st.integers()))))
def test_any_document_gives_protocol_or_clear_error(doc: dict) -> None:
    try:
        parse_protocol(doc, "fuzz.toml")
    except ProtocolFileError as e:
        assert "fuzz.toml" in str(e) and "key" in str(e)


def test_shipped_calibration_settings() -> None:
    c = load_protocol(THERMAL).calibration
    assert c.method == "bayes" and c.floor_c == 35.0 and c.start_c == 40.0 and c.max_step_up_c == 3.0
    assert c.ci_halfwidth_c == 0.5 and c.verify_n >= 1 and c.max_stimuli >= 10
    assert load_protocol(PRESSURE).calibration.method == "bayes"


@pytest.mark.parametrize("key,value,expected", [
    ("method", "psi", "'bayes', 'ascending' or 'staircase'"),
    ("floor_c", 25.0, "greater than or equal to 30"),
    ("floor_c", float("nan"), "finite number"),
    ("max_step_up_c", 0.0, "greater than 0"),
    ("max_step_up_c", 8.0, "less than or equal to 5"),
    ("max_stimuli", 2, "greater than or equal to 3"),
    ("max_stimuli", 100, "less than or equal to 40"),
    ("ci_halfwidth_c", float("inf"), "finite number"),
    ("verify_n", 0, "greater than or equal to 1"),
    ("max_stimuli", 12.5, "integer"),
])
def test_calibration_keys_are_bounded(tmp_path: Path, protocol_data: dict, key: str, value: object, expected: str) -> None:
    protocol_data["calibration"][key] = value
    e = _err(tmp_path, protocol_data)
    assert e.key == f"calibration.{key}" and expected in e.expected, (e.key, e.expected)


def test_calibration_cross_rules(tmp_path: Path, protocol_data: dict) -> None:
    protocol_data["calibration"]["floor_c"] = 41.0  # above start_c 40
    e = _err(tmp_path, protocol_data)
    assert e.key == "calibration" and "start_c 40.0 must be >= floor_c 41.0" in e.expected
    protocol_data["calibration"]["floor_c"] = 35.0
    protocol_data["calibration"]["tolerance"] = 45.0
    e = _err(tmp_path, protocol_data)
    assert e.key == "calibration" and "tolerance" in e.expected
    protocol_data["calibration"]["tolerance"] = 10.0
    protocol_data["calibration"]["floor_c"] = 32.0
    protocol_data["safety"]["neutral_c"] = 33.0
    e = _err(tmp_path, protocol_data)
    assert e.key == "calibration.floor_c" and "neutral_c" in e.expected


def test_calibration_keys_missing_are_named(tmp_path: Path, protocol_data: dict) -> None:
    del protocol_data["calibration"]["floor_c"]
    e = _err(tmp_path, protocol_data)
    assert e.key == "calibration.floor_c" and e.found == "<missing>"
