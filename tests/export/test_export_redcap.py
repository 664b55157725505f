"""REDCap export of the simulated study (10 participants x 2 visits, real engine, virtual clock).

Checks REDCap's exact dictionary headers and naming rules, the longitudinal set-up files, and that
every value read back from data.csv equals session.json (amendments applied) and the AE log.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest

from cpm_session.cli import main
from cpm_session.export import ExportError
from cpm_session.export.redcap import DICTIONARY_HEADERS, export_redcap, redcap_name
from tests.export.test_export_bids import (
    AE_PARTICIPANTS,
    AMENDED,
    N_PARTICIPANTS,
    VISITS,
    _temp_dir,
    build_study,
    effective,
    sessions,
)

REDCAP_HEADERS = [
    "Variable / Field Name", "Form Name", "Section Header", "Field Type", "Field Label",
    "Choices, Calculations, OR Slider Labels", "Field Note", "Text Validation Type OR Show Slider Number",
    "Text Validation Min", "Text Validation Max", "Identifier?", "Branching Logic (Show field only if...)",
    "Required Field?", "Custom Alignment", "Question Number (surveys only)", "Matrix Group Name",
    "Matrix Ranking?", "Field Annotation",
]
FIELD_TYPES = {"text", "notes", "dropdown", "radio", "checkbox", "yesno", "truefalse", "calc", "descriptive", "slider",
               "file"}
VALIDATIONS = {"", "number", "integer", "date_ymd", "datetime_seconds_ymd"}


@functools.lru_cache(maxsize=1)
def redcap_export() -> Path:
    out = _temp_dir("cpm-redcap-") / "redcap"
    export_redcap(build_study(), out)
    return out


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        r = csv.reader(f)
        header = next(r)
        rows = [dict(zip(header, row, strict=True)) for row in r]
    return header, rows


def dictionary() -> list[dict[str, str]]:
    return read_csv(redcap_export() / "data_dictionary.csv")[1]


def choices(field: dict[str, str]) -> dict[str, str]:
    text = field["Choices, Calculations, OR Slider Labels"]
    out = {}
    for part in text.split(" | "):
        code, label = part.split(", ", 1)
        out[code] = label
    return out


def data_rows() -> list[dict[str, str]]:
    return read_csv(redcap_export() / "data.csv")[1]


def event(visit: str) -> str:
    return f"{visit}_arm_1"


def same(text: str, value: Any) -> bool:
    if value is None or value == "":
        return text == ""
    if isinstance(value, bool):
        return text == ("1" if value else "0")
    if isinstance(value, (int, float)):
        return float(text) == float(value)
    return text == str(value)


# ------------------------------------------------------------------------------------------ dictionary


def test_files_written() -> None:
    assert sorted(p.name for p in redcap_export().iterdir()) == [
        "README.txt", "arms.csv", "data.csv", "data_dictionary.csv", "events.csv", "instrument-designations.csv",
        "repeating-instruments.csv"]


def test_dictionary_has_redcaps_exact_headers_and_rules() -> None:
    header, rows = read_csv(redcap_export() / "data_dictionary.csv")
    assert header == REDCAP_HEADERS == DICTIONARY_HEADERS
    assert rows[0]["Variable / Field Name"] == "record_id"
    names = [r["Variable / Field Name"] for r in rows]
    assert len(names) == len(set(names))
    for r in rows:
        name = r["Variable / Field Name"]
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name) and len(name) <= 26, name
        assert re.fullmatch(r"[a-z][a-z0-9_]*", r["Form Name"]), r["Form Name"]
        assert r["Field Type"] in FIELD_TYPES, r
        assert r["Field Label"], name
        assert r["Text Validation Type OR Show Slider Number"] in VALIDATIONS, r
        if r["Field Type"] in ("dropdown", "radio"):
            assert len(choices(r)) >= 2, name
            assert all(re.fullmatch(r"[A-Za-z0-9_]+", code) for code in choices(r)), name
        else:
            assert r["Choices, Calculations, OR Slider Labels"] == "", name
        for lim in ("Text Validation Min", "Text Validation Max"):
            if r[lim]:
                float(r[lim])
    forms = list(dict.fromkeys(r["Form Name"] for r in rows))
    assert forms == ["cpm_session", "ts_ratings", "fiqr", "hads", "nrs", "adverse_events"]
    complete = {f"{f}_complete" for f in forms}
    assert not complete & set(names)


def test_name_maker_keeps_names_short_unique_and_valid() -> None:
    used: set[str] = set()
    long = "a_very_long_questionnaire_item_identifier_indeed"
    a, b, c = redcap_name(long, used), redcap_name(long, used), redcap_name("9 Item-X", used)
    assert (a, b, c) == ("a_very_long_questionnaire", "a_very_long_questionnair_2", "v_9_item_x")
    assert all(len(n) <= 26 for n in used)


def test_longitudinal_setup_files() -> None:
    out = redcap_export()
    assert read_csv(out / "arms.csv") == (["arm_num", "name"], [{"arm_num": "1", "name": "Arm 1"}])
    assert read_csv(out / "events.csv")[1] == [
        {"event_name": v, "arm_num": "1", "unique_event_name": event(v)} for v in VISITS]
    header, rows = read_csv(out / "instrument-designations.csv")
    assert header == ["arm_num", "unique_event_name", "form"]
    forms = list(dict.fromkeys(r["Form Name"] for r in dictionary()))
    assert rows == [{"arm_num": "1", "unique_event_name": event(v), "form": f} for v in VISITS for f in forms]
    assert read_csv(out / "repeating-instruments.csv")[1] == [
        {"event_name": event(v), "form_name": "adverse_events", "custom_form_label": "[ae_id]"} for v in VISITS]


# ------------------------------------------------------------------------------------------ data


def test_data_columns_follow_the_dictionary() -> None:
    header, _ = read_csv(redcap_export() / "data.csv")
    expected = ["record_id", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance"]
    by_form: dict[str, list[str]] = {}
    for r in dictionary()[1:]:
        by_form.setdefault(r["Form Name"], []).append(r["Variable / Field Name"])
    for form in dict.fromkeys(r["Form Name"] for r in dictionary()):
        expected += by_form.get(form, []) + [f"{form}_complete"]
    assert header == expected


def check_values(out: Path) -> None:
    """Check every data.csv cell against its field's type, validation, choices and limits."""
    fields = {r["Variable / Field Name"]: r for r in read_csv(out / "data_dictionary.csv")[1]}
    for row in read_csv(out / "data.csv")[1]:
        for name, value in row.items():
            if value == "" or name not in fields:
                continue
            f = fields[name]
            v = f["Text Validation Type OR Show Slider Number"]
            if v == "number":
                float(value)
                assert "e" not in value.lower(), (name, value)
            elif v == "integer":
                assert re.fullmatch(r"-?\d+", value), (name, value)
            elif v == "date_ymd":
                dt.date.fromisoformat(value)
            elif v == "datetime_seconds_ymd":
                dt.datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
            if f["Field Type"] in ("dropdown", "radio"):
                assert value in choices(f), (name, value)
            if f["Field Type"] == "yesno":
                assert value in ("0", "1"), (name, value)
            for lim, op in (("Text Validation Min", float.__ge__), ("Text Validation Max", float.__le__)):
                if f[lim]:
                    assert op(float(value), float(f[lim])), (name, value)


def test_every_value_is_valid_for_its_field() -> None:
    check_values(redcap_export())


def test_pressure_protocol_study_exports_valid_values(tmp_path: Path) -> None:
    from cpm_session.clock import VirtualClock
    from cpm_session.sim.world import run_simulated_visit

    data = tmp_path / "data"
    for k, visit in enumerate(VISITS):
        run_simulated_visit(data, "P-001", visit, protocol_path="protocols/cpm-pressure.toml", seed=k,
                            clock=VirtualClock())
    export_redcap(data, tmp_path / "out")
    check_values(tmp_path / "out")
    rows = read_csv(tmp_path / "out" / "data.csv")[1]
    for row in rows:
        h = effective(next(data.glob(f"P-001/{row['redcap_event_name'].split('_arm_')[0]}-*")))
        for col in ("ts_modality", "ts_unit", "ppt_kpa", "pain60_c", "ts_pre", "ts_post", "cpm_abs", "cpm_pct"):
            assert same(row[col], h["results"].get(col)), col
    assert [r["ts_unit"] for r in rows] == ["kPa", "kPa"]


def _session_row(pid: str, visit: str) -> dict[str, str]:
    rows = [r for r in data_rows() if r["record_id"] == pid and r["redcap_event_name"] == event(visit)
            and r["redcap_repeat_instrument"] == ""]
    assert len(rows) == 1
    return rows[0]


def test_session_values_round_trip_session_json() -> None:
    assert len([r for r in data_rows() if r["redcap_repeat_instrument"] == ""]) == N_PARTICIPANTS * len(VISITS)
    fields = {r["Variable / Field Name"]: r for r in dictionary()}
    direct = {"session_status": "status", "protocol_name": "protocol_name", "protocol_sha256": "protocol_sha256",
              "session_operator": "operator", "simulated": "simulate"}
    results = ["ts_modality", "ts_intensity", "ts_unit", "pain60_c", "ppt_kpa", "ts_pre", "ts_post", "cpm_abs",
               "cpm_pct", "cpm_category", "inhibition", "cs_rating_30s", "cs_rating_flag", "withdrawal_s",
               "bath_mean_c", "bath_min_c", "bath_max_c"]
    calib = {"calib_method": "method", "calib_n_stimuli": "n_stimuli", "calib_slope": "slope",
             "calib_intercept": "intercept", "calib_r2": "r2", "calib_outcome": "outcome"}
    n = 0
    for s in sessions():
        pid, visit = s.parent.name, s.name.split("-")[0]
        h = effective(s)
        row = _session_row(pid, visit)
        assert row["session_folder"] == s.name and row["integrity"] == "verified"
        assert row["session_start"] == dt.datetime.fromisoformat(h["start_utc"].replace("Z", "+00:00")).strftime(
            "%Y-%m-%d %H:%M:%S")
        assert row["station"] == h.get("station_name", h.get("station"))
        for col, key in direct.items():
            assert same(row[col], h.get(key)), (s, col)
        for col in results:
            assert same(row[col], h["results"].get(col)), (s, col, row[col], h["results"].get(col))
        for col, key in calib.items():
            assert same(row[col], h["results"]["calibration"].get(key)), (s, col)
        for k, v in enumerate(h["results"]["ts_pre_ratings"], start=1):
            assert same(row[f"ts_pre_{k}"], v)
        for k, v in enumerate(h["results"]["ts_post_ratings"], start=1):
            assert same(row[f"ts_post_{k}"], v)
        for qname, q in h["questionnaires"].items():
            assert row[f"{qname}_entered_by"] == q["entered_by"]
            for item, v in q["answers"].items():
                col = item if item.startswith(qname) else f"{qname}_{item}"
                assert same(row[col], v), (s, col)
                if fields[col]["Field Type"] == "radio":
                    assert str(v) in choices(fields[col])
            for sc, v in q["scores"].items():
                assert same(row[f"{qname}_{sc}_score"], v), (s, sc)
            assert row[f"{qname}_complete"] == "2"
        n += 1
    assert n == N_PARTICIPANTS * len(VISITS)


def test_adverse_events_are_a_repeating_instrument_matching_the_log() -> None:
    from cpm_session.record.adverse_events import list_adverse_events

    fields = {r["Variable / Field Name"]: r for r in dictionary()}
    ae_rows = [r for r in data_rows() if r["redcap_repeat_instrument"] == "adverse_events"]
    aes = list_adverse_events(build_study())
    assert len(ae_rows) == len(aes) == 3
    for row, ae in zip(ae_rows, aes, strict=True):
        assert row["record_id"] == ae["participant"]
        mine = [a for a in aes if a["participant"] == ae["participant"]]
        assert row["redcap_repeat_instance"] == str(mine.index(ae) + 1)
        assert row["redcap_event_name"] == event(ae["visit"] or "baseline")
        assert row["ae_id"] == ae["ae_id"] and row["ae_description"] == ae["description"]
        assert row["ae_onset_date"] == ae["onset_date"]
        for key in ("severity", "relatedness", "action_taken", "outcome"):
            assert choices(fields[f"ae_{key}"])[row[f"ae_{key}"]] == ae[key], key
        assert row["ae_serious"] == ("1" if ae["serious"] in (True, "yes") else "0")
        assert row["ae_operator"] == ae["operator"] and row["ae_updates"] == str(ae["updates"])
        assert row["ae_updated_by"] == (ae["updated_by"] or "")
        assert row["adverse_events_complete"] == "2"
        assert row["ts_pre"] == "" and row["cpm_session_complete"] == ""
    assert {r["record_id"] for r in ae_rows} == set(AE_PARTICIPANTS)
    first = next(r for r in ae_rows if r["record_id"] == AE_PARTICIPANTS[0] and r["ae_id"] == "AE001")
    assert choices(fields["ae_outcome"])[first["ae_outcome"]] == "recovered", "the update is exported"


def test_amendment_shows_with_its_reason() -> None:
    pid, visit, field, value, reason = AMENDED
    s = next((build_study() / pid).glob(f"{visit}-*"))
    original = json.loads((s / "session.json").read_text())["results"]["cs_rating_30s"]
    row = _session_row(pid, visit)
    assert float(row["cs_rating_30s"]) == value
    assert f"{field}: {json.dumps(original)} -> {json.dumps(value)} (reason: {reason}; by QA at " in row["amendments"]
    assert sum(r["amendments"] != "" for r in data_rows()) == 1


def test_refuses_a_non_empty_output_folder(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("")
    with pytest.raises(ExportError, match="not empty"):
        export_redcap(build_study(), tmp_path / "out")
    assert main(["export", "redcap", str(build_study()), str(tmp_path / "out")]) == 2
    assert main(["export", "redcap", str(build_study()), str(tmp_path / "new")]) == 0
    assert (tmp_path / "new" / "data.csv").read_bytes() == (redcap_export() / "data.csv").read_bytes()


def test_repeated_visit_fills_the_event_with_the_last_completed_session(tmp_path: Path) -> None:
    import shutil

    from cpm_session.clock import VirtualClock
    from cpm_session.sim.world import run_simulated_visit

    data = tmp_path / "data"
    shutil.copytree(build_study() / "FM-000", data / "FM-000")
    shutil.copy2(build_study() / "ledger.jsonl", data / "ledger.jsonl")
    first = next((data / "FM-000").glob("post-*"))
    second = run_simulated_visit(data, "FM-000", "post", seed=77, clock=VirtualClock())
    export_redcap(data, tmp_path / "out")
    rows = [r for r in read_csv(tmp_path / "out" / "data.csv")[1] if r["redcap_event_name"] == "post_arm_1"]
    assert len(rows) == 1
    assert rows[0]["session_folder"] == second.name
    assert rows[0]["other_attempts"] == f"{first.name} (completed, verified)"
    h = effective(second)
    assert same(rows[0]["cpm_abs"], h["results"]["cpm_abs"])


def test_licensed_questionnaire_wording_never_leaves_the_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from cpm_session.config import questionnaires
    from cpm_session.export.bids import export_bids

    real = questionnaires.load_questionnaire

    def licensed(name: str, **kw: Any) -> Any:
        q = real(name, **kw)
        if name != "hads":
            return q
        items = [dataclasses.replace(it, text=f"SECRET item text {it.id}",
                                     options=[dataclasses.replace(o, label=f"SECRET option {o.value}")
                                              for o in it.options]) for it in q.items]
        return dataclasses.replace(q, items=items, wording_source="local file questionnaires/local/hads.toml")

    monkeypatch.setattr(questionnaires, "load_questionnaire", licensed)
    export_redcap(build_study(), tmp_path / "redcap")
    export_bids(build_study(), tmp_path / "bids")
    for p in list((tmp_path / "redcap").rglob("*")) + list((tmp_path / "bids").rglob("*.json")):
        if p.is_file():
            assert "SECRET" not in p.read_text(encoding="utf-8"), p
    fields = {r["Variable / Field Name"]: r for r in read_csv(tmp_path / "redcap" / "data_dictionary.csv")[1]}
    assert fields["hads_q1"]["Field Label"] == "hads item q1"
    assert set(choices(fields["hads_q1"]).values()) == set(choices(fields["hads_q1"]))  # labels are the values
    nrs = fields["nrs_pain_now"]
    assert "pain" in nrs["Field Label"].lower() and nrs["Field Label"] != "nrs item pain_now"  # free wording stays


@pytest.mark.parametrize(("folder", "visit"), [("baseline-20260101T090000Z", "baseline"),
                                               ("follow-up-20260101T090000Z", "follow-up")])
def test_visit_falls_back_to_the_folder_name_without_its_stamp(folder: str, visit: str) -> None:
    from cpm_session.export import SessionData

    s = SessionData(Path("data") / "FM-001" / folder, {}, {}, [], [], [])
    assert (s.participant, s.visit) == ("FM-001", visit)  # visit names may contain '-' (ids.VISIT_PATTERN)


def test_adverse_event_of_a_visit_without_an_exported_session_is_placed_by_date() -> None:
    from cpm_session.export.redcap import _ae_event, event_name

    starts = [("2026-01-05", event_name("baseline")), ("2026-02-20", event_name("post"))]
    assert _ae_event({"visit": "post", "onset_date": "2026-01-10"}, starts) == event_name("post")
    # a visit with no session in the export (e.g. refused as unverified): the event must still exist
    assert _ae_event({"visit": "week8", "onset_date": "2026-03-01"}, starts) == event_name("post")
    assert _ae_event({"visit": "week8", "onset_date": "2026-01-10"}, starts) == event_name("baseline")
    assert _ae_event({"onset_date": "2025-12-01"}, starts) == event_name("baseline")
