"""BIDS export of a simulated study (10 participants x 2 visits, real engine, virtual clock).

Every file name, every column description and every value is checked against the session folders,
and the dataset is run through the official BIDS validator when it is installed.
"""

from __future__ import annotations

import atexit
import csv
import functools
import gzip
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from cpm_session.cli import main
from cpm_session.clock import VirtualClock
from cpm_session.export import ExportError
from cpm_session.export.bids import export_bids
from cpm_session.record.amend import amend_session, apply_amendments
from cpm_session.record.folder import read_events

N_PARTICIPANTS = 10
VISITS = ("baseline", "post")
AMENDED = ("FM-003", "baseline", "results.cs_rating_30s", 12.5, "CRF shows 12.5; the slider value was a mis-click")
"""(participant, visit, field, new value, reason) of the amendment every export must show."""
AE_PARTICIPANTS = ("FM-001", "FM-004")


def _temp_dir(prefix: str) -> Path:
    """Return a new temporary folder that is removed when the test process exits."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@functools.lru_cache(maxsize=1)
def build_study() -> Path:
    """Run the simulated study once per test process; return its data folder (do not modify it)."""
    from cpm_session.record.adverse_events import record_adverse_event, update_adverse_event
    from cpm_session.sim.world import run_simulated_visit

    root = _temp_dir("cpm-study-")
    data = root / "data"
    for i in range(N_PARTICIPANTS):
        for k, visit in enumerate(VISITS):
            run_simulated_visit(data, f"FM-{i:03d}", visit, seed=2 * i + k, clock=VirtualClock())
    pid, visit, field, value, reason = AMENDED
    session = next((data / pid).glob(f"{visit}-*"))
    amend_session(session, field, value, reason, "QA")
    for n, pid in enumerate(AE_PARTICIPANTS):
        session = next((data / pid).glob("post-*"))
        rec = record_adverse_event(data, pid, {
            "description": "Redness of the forearm after the heat stimuli", "onset_date": "2026-01-1" + str(n),
            "severity": "mild", "serious": False, "relatedness": "probable", "action_taken": "none",
            "outcome": "recovering"}, operator="AB", session_dir=session)
        update_adverse_event(data, pid, rec["ae_id"], {"outcome": "recovered"}, operator="CD")
    record_adverse_event(data, AE_PARTICIPANTS[0], {
        "description": "Dizziness", "onset_date": "2026-01-20", "severity": "moderate", "serious": True,
        "relatedness": "not related", "action_taken": "other", "outcome": "unknown"}, operator="AB")
    return data


@functools.lru_cache(maxsize=1)
def bids_export() -> Path:
    out = _temp_dir("cpm-bids-") / "bids"
    export_bids(build_study(), out)
    return out


def sessions() -> list[Path]:
    return sorted(p for p in build_study().glob("*/*") if p.is_dir())


def effective(session: Path) -> dict[str, Any]:
    header = json.loads((session / "session.json").read_text())
    return apply_amendments(header, read_events(session / "events.jsonl")[0])


def read_tsv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n") and "\r" not in text, path
    lines = text.rstrip("\n").split("\n")
    cols = lines[0].split("\t")
    rows = [dict(zip(cols, line.split("\t"), strict=True)) for line in lines[1:]]
    return cols, rows


def label(pid: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", pid)


def same(text: str, value: Any) -> bool:
    """True when a TSV cell holds `value` (n/a for None/empty, numbers compared exactly as floats)."""
    if value is None or value == "":
        return text == "n/a"
    if isinstance(value, bool):
        return text == ("true" if value else "false")
    if isinstance(value, (int, float)):
        return float(text) == float(value)
    return text == str(value)


def roles(session: Path) -> set[str]:
    with open(session / "devices.csv", newline="") as f:
        return {r["role"] for r in csv.DictReader(f)}


# ------------------------------------------------------------------------------------------ names


def test_every_file_name_is_expected() -> None:
    out = bids_export()
    expected = {"dataset_description.json", "README", "participants.tsv", "participants.json"}
    q_names: set[str] = set()
    for s in sessions():
        sub, ses = label(s.parent.name), s.name.split("-")[0]
        expected |= {f"sub-{sub}/sub-{sub}_sessions.tsv", f"sub-{sub}/sub-{sub}_sessions.json"}
        stem = f"sub-{sub}/ses-{ses}/beh/sub-{sub}_ses-{ses}_task-cpm"
        expected |= {f"{stem}_beh.tsv", f"{stem}_beh.json"}
        for role in roles(s):
            expected |= {f"{stem}_recording-{role}_physio.tsv.gz", f"{stem}_recording-{role}_physio.json"}
        q_names |= {f"{q}_{ses}" for q in effective(s)["questionnaires"]}
    expected |= {f"phenotype/{n}.{ext}" for n in q_names for ext in ("tsv", "json")}
    found = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert found == expected
    assert {"thermode", "bath"} <= set().union(*(roles(s) for s in sessions()))
    assert len([f for f in found if f.endswith("_beh.tsv")]) == N_PARTICIPANTS * len(VISITS)


def test_file_names_pass_the_bids_validator_naming_rules() -> None:
    bids_validator = pytest.importorskip("bids_validator")
    v = bids_validator.BIDSValidator()
    out = bids_export()
    for p in sorted(out.rglob("*")):
        if p.is_file():
            assert v.is_bids("/" + p.relative_to(out).as_posix()), p


def _deno_validator() -> list[str] | None:
    exe = Path(sys.executable).with_name("bids-validator-deno")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("bids-validator-deno")
    return [found] if found else None


def test_dataset_passes_the_official_bids_validator_without_errors() -> None:
    cmd = _deno_validator()
    if cmd is None:
        pytest.skip("bids-validator-deno is not installed (pip install bids-validator-deno)")
    proc = subprocess.run(cmd + [str(bids_export()), "--format", "json"], capture_output=True, text=True,
                          timeout=300)
    report = json.loads(proc.stdout)
    issues = report["issues"]["issues"]
    errors = [i for i in issues if i["severity"] == "error"]
    assert errors == []
    codes = {i["code"] for i in issues}
    # only "recommended metadata we cannot know" warnings remain (authors, licence, institution, ontology IDs)
    assert codes <= {"JSON_KEY_RECOMMENDED", "NO_AUTHORS", "TOO_FEW_AUTHORS", "SIDECAR_KEY_RECOMMENDED"}, codes
    summary = report["summary"]
    assert sorted(summary["subjects"]) == [label(f"FM-{i:03d}") for i in range(N_PARTICIPANTS)]
    assert sorted(summary["sessions"]) == sorted(VISITS)
    assert summary["tasks"] == ["cpm"]


# ------------------------------------------------------------------------------------------ descriptions


def _check_described(tsv: Path, sidecar: Path) -> None:
    cols, rows = read_tsv(tsv)
    side = json.loads(sidecar.read_text())
    for c in cols:
        assert c in side, f"{tsv.name}: column {c} not described"
        d = side[c]
        assert d.get("LongName") and d.get("Description"), f"{tsv.name}: {c} lacks LongName/Description"
        if "Levels" in d:
            used = {r[c] for r in rows} - {"n/a"}
            assert used <= set(d["Levels"]), f"{tsv.name}: {c} values {used - set(d['Levels'])} not in Levels"
            assert all(isinstance(v, str) and v for v in d["Levels"].values())


def test_every_column_of_every_table_is_described() -> None:
    out = bids_export()
    _check_described(out / "participants.tsv", out / "participants.json")
    n = 0
    for tsv in sorted(out.rglob("*.tsv")):
        if tsv.name == "participants.tsv":
            continue
        _check_described(tsv, tsv.with_suffix(".json"))
        n += 1
    assert n == N_PARTICIPANTS * len(VISITS) + N_PARTICIPANTS + 3 * len(VISITS)
    beh = json.loads(next(out.rglob("*_beh.json")).read_text())
    assert beh["TaskName"] == "cpm"
    assert {k: beh[k].get("Units") for k in ("onset", "stimulus_duration", "response_time", "planned_onset")} == \
        dict.fromkeys(("onset", "stimulus_duration", "response_time", "planned_onset"), "s")
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["BIDSVersion"] == "1.9.0" and desc["DatasetType"] == "raw" and desc["Name"]
    assert desc["GeneratedBy"][0]["Name"] == "cpm-session"


def read_physio(gz: Path) -> list[list[str]]:
    return [line.split("\t") for line in gzip.decompress(gz.read_bytes()).decode().rstrip("\n").split("\n")]


def check_physio(out: Path) -> int:
    """Check every physio file against its sidecar; return how many there are."""
    n = 0
    for side_path in sorted(out.rglob("*_physio.json")):
        side = json.loads(side_path.read_text())
        rows = read_physio(side_path.with_name(side_path.name.replace(".json", ".tsv.gz")))
        assert rows[0][0] != "time", "physio files have no header line"
        assert all(len(r) == len(side["Columns"]) for r in rows)
        assert side["Columns"][0] == "time" and side["TaskName"] == "cpm"
        for c in side["Columns"]:
            assert side[c]["Description"] and side[c]["Units"], c
        fs, t0 = side["SamplingFrequency"], side["StartTime"]
        assert rows[0][0] != "n/a" and float(rows[0][0]) == t0
        # every sample sits in the row its time belongs to at the declared rate
        for i, r in enumerate(rows):
            if r[0] != "n/a":
                assert abs(float(r[0]) - (t0 + i / fs)) <= 0.5 / fs + 1e-6, (side_path.name, i, r[0])
        n += 1
    return n


def test_physio_sidecars_describe_their_columns_and_timing() -> None:
    assert check_physio(bids_export()) >= 2 * N_PARTICIPANTS * len(VISITS)


# ------------------------------------------------------------------------------------------ round trip


def test_participants_map_labels_to_pseudonyms() -> None:
    _, rows = read_tsv(bids_export() / "participants.tsv")
    assert rows == [{"participant_id": f"sub-FM{i:03d}", "source_id": f"FM-{i:03d}"} for i in range(N_PARTICIPANTS)]


def test_beh_rows_round_trip_ratings_csv() -> None:
    out = bids_export()
    pairs = {"onset": "onset_t", "trial_type": "phase", "trial": "trial", "attempt": "attempt", "site": "site",
             "intensity": "intensity", "intensity_unit": "intensity_unit", "rating": "rating",
             "response_time": "rt_s", "planned_onset": "planned_onset_t", "flag": "flag"}
    checked = 0
    for s in sessions():
        sub, ses = label(s.parent.name), s.name.split("-")[0]
        _, rows = read_tsv(out / f"sub-{sub}/ses-{ses}/beh/sub-{sub}_ses-{ses}_task-cpm_beh.tsv")
        with open(s / "ratings.csv", newline="") as f:
            src = list(csv.DictReader(f))
        assert len(rows) == len(src) > 0
        stim = {(e["phase"], e["trial"]): e["duration_s"] for e in read_events(s / "events.jsonl")[0]
                if e["event"] == "stimulus"}
        for row, r in zip(rows, src, strict=True):
            for col, scol in pairs.items():
                assert row[col] == (r[scol] if r[scol] != "" else "n/a"), (s, col)
                checked += 1
            assert row["missing"] == r["missing"].lower()
            d = stim.get((r["phase"], int(r["trial"])))
            assert row["stimulus_duration"] == ("n/a" if d is None else repr(float(d)))
    assert checked > 0


def test_sessions_tsv_round_trips_session_json() -> None:
    out = bids_export()
    from cpm_session.export.bids import SESSION_COLUMNS

    for s in sessions():
        sub, ses = label(s.parent.name), s.name.split("-")[0]
        _, rows = read_tsv(out / f"sub-{sub}/sub-{sub}_sessions.tsv")
        row = next(r for r in rows if r["session_id"] == f"ses-{ses}")
        h = effective(s)
        assert row["acq_time"] == h["start_utc"][:19] + "Z"
        assert row["source_folder"] == s.name and row["integrity"] == "verified"
        for name, dotted, _ in SESSION_COLUMNS:
            if dotted in ("", "@station"):
                continue
            value: Any = h
            for part in dotted.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            assert same(row[name], value), (s, name, row[name], value)
        assert row["station"] == h.get("station_name", h.get("station"))


def test_physio_values_round_trip_devices_csv() -> None:
    out = bids_export()
    for s in sessions():
        sub, ses = label(s.parent.name), s.name.split("-")[0]
        with open(s / "devices.csv", newline="") as f:
            src = list(csv.DictReader(f))
        for role in roles(s):
            side = json.loads((out / f"sub-{sub}/ses-{ses}/beh/sub-{sub}_ses-{ses}_task-cpm_recording-{role}"
                                     f"_physio.json").read_text())
            gz = out / f"sub-{sub}/ses-{ses}/beh/sub-{sub}_ses-{ses}_task-cpm_recording-{role}_physio.tsv.gz"
            got = {(r[0], q): r[i] for r in read_physio(gz) for i, q in enumerate(side["Columns"][1:], start=1)
                   if r[i] != "n/a"}
            want = {(r["t"], r["quantity"]): r["value"] for r in src if r["role"] == role}
            assert got == want, (s, role)
            units = {r["unit"] for r in src if r["role"] == role}
            assert units == {"C"} and all(side[q]["Units"] == "oC" for q in side["Columns"][1:])


def test_phenotype_round_trips_questionnaires() -> None:
    out = bids_export()
    for s in sessions():
        sub, ses = label(s.parent.name), s.name.split("-")[0]
        for name, q in effective(s)["questionnaires"].items():
            _, rows = read_tsv(out / "phenotype" / f"{name}_{ses}.tsv")
            row = next(r for r in rows if r["participant_id"] == f"sub-{sub}")
            assert row["session_id"] == f"ses-{ses}" and row["entered_by"] == q["entered_by"]
            for item, v in q["answers"].items():
                assert same(row[f"item_{item}"], v), (s, name, item)
            for sc, v in q["scores"].items():
                assert same(row[f"score_{sc}"], v), (s, name, sc)


# ------------------------------------------------------------------------------------------ amendments


def test_amendment_shows_with_its_reason_and_the_original_stays_in_the_log() -> None:
    pid, visit, field, value, reason = AMENDED
    s = next((build_study() / pid).glob(f"{visit}-*"))
    header = json.loads((s / "session.json").read_text())
    original = header["results"]["cs_rating_30s"]
    assert original != value
    results_event = next(e for e in read_events(s / "events.jsonl")[0] if e["event"] == "results")
    assert results_event["cs_rating_30s"] == original, "the original value stays in the log"
    _, rows = read_tsv(bids_export() / f"sub-{label(pid)}/sub-{label(pid)}_sessions.tsv")
    row = next(r for r in rows if r["session_id"] == f"ses-{visit}")
    assert float(row["cs_rating_30s"]) == value
    assert row["amendments"].startswith(f"{field}: {json.dumps(original)} -> {json.dumps(value)} (reason: {reason}; by QA at ")
    others = [r for p in bids_export().glob("sub-*/sub-*_sessions.tsv") for r in read_tsv(p)[1]]
    assert sum(r["amendments"] != "n/a" for r in others) == 1


# ------------------------------------------------------------------------------------------ refusals


def test_refuses_a_non_empty_output_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(ExportError, match="not empty"):
        export_bids(build_study(), out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def _small_copy(tmp_path: Path, pids: list[str]) -> Path:
    data = tmp_path / "data"
    for pid in pids:
        shutil.copytree(build_study() / pid, data / pid)
    shutil.copy2(build_study() / "ledger.jsonl", data / "ledger.jsonl")  # the anchors of the copied logs
    return data


def test_refuses_tampered_sessions_unless_asked_and_then_marks_them(tmp_path: Path) -> None:
    data = _small_copy(tmp_path, ["FM-000"])
    s = next((data / "FM-000").glob("post-*"))
    raw = (s / "events.jsonl").read_bytes().split(b"\n")
    raw[5] = raw[5].replace(b'"t": ', b'"t":  ')
    (s / "events.jsonl").write_bytes(b"\n".join(raw))
    screened: list[str] = []
    export_bids(data, tmp_path / "out1", screened=screened)  # the failing session is left out, and said so
    assert not list((tmp_path / "out1").glob("sub-FM000/ses-post"))
    assert len(screened) == 1 and screened[0].startswith(f"EXCLUDED (fails verification): {s}")
    assert "EXCLUDED (fails verification)" in (tmp_path / "out1" / "README").read_text()
    export_bids(data, tmp_path / "out2", include_unverified=True)
    _, rows = read_tsv(tmp_path / "out2/sub-FM000/sub-FM000_sessions.tsv")
    status = {r["session_id"]: r["integrity"] for r in rows}
    assert status["ses-baseline"] == "verified"
    assert status["ses-post"].startswith("FAILED: hash chain broken: events.jsonl line 6 was changed")


def test_refuses_two_pseudonyms_that_give_the_same_label(tmp_path: Path) -> None:
    data = _small_copy(tmp_path, ["FM-000"])
    shutil.copytree(data / "FM-000", data / "FM000")
    for s in (data / "FM000").iterdir():
        if s.is_dir():
            h = json.loads((s / "session.json").read_text())
            h["participant"] = "FM000"
            (s / "session.json").write_text(json.dumps(h))
    with pytest.raises(ExportError, match="both become BIDS label sub-FM000"):
        export_bids(data, tmp_path / "out", include_unverified=True)


def test_refuses_two_visits_that_give_the_same_session_label(tmp_path: Path) -> None:
    data = _small_copy(tmp_path, ["FM-000"])
    s = next((data / "FM-000").glob("post-*"))
    amend_session(s, "visit", "base-line", "visit name typed with a hyphen", "QA")
    # before: both sessions were written as ses-baseline, the second overwriting the first one's files
    with pytest.raises(ExportError, match="visits 'base-line' and 'baseline' of participant 'FM-000' both "
                                          "become BIDS session label ses-baseline"):
        export_bids(data, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # written to a temporary folder, removed on failure


def test_repeated_visit_gets_its_own_session_label_and_sourcedata_copy(tmp_path: Path) -> None:
    from cpm_session.sim.world import run_simulated_visit

    data = _small_copy(tmp_path, ["FM-000"])
    run_simulated_visit(data, "FM-000", "post", seed=99, clock=VirtualClock())
    assert main(["export", "bids", str(data), str(tmp_path / "out"), "--sourcedata"]) == 0
    out = tmp_path / "out"
    _, rows = read_tsv(out / "sub-FM000/sub-FM000_sessions.tsv")
    assert [r["session_id"] for r in rows] == ["ses-baseline", "ses-post", "ses-postR2"]
    assert (out / "sub-FM000/ses-postR2/beh/sub-FM000_ses-postR2_task-cpm_beh.tsv").is_file()
    for s in (data / "FM-000").iterdir():
        assert (out / "sourcedata/FM-000" / s.name / "events.jsonl").read_bytes() == (s / "events.jsonl").read_bytes()
    assert main(["export", "bids", str(data), str(tmp_path / "out")]) == 2


def test_amended_ts_ratings_recompute_ts_and_cpm_in_the_export(tmp_path: Path) -> None:
    data = _small_copy(tmp_path, ["FM-000"])
    s = next((data / "FM-000").glob("baseline-*"))
    res = json.loads((s / "session.json").read_text())["results"]
    new_post = [res["ts_pre"] - 10.0]
    amend_session(s, "results.ts_post_ratings", new_post, "TS_post slider was read back wrongly", "QA")
    export_bids(data, tmp_path / "out")
    _, rows = read_tsv(tmp_path / "out/sub-FM000/sub-FM000_sessions.tsv")
    row = rows[0]
    pre = sum(res["ts_pre_ratings"]) / len(res["ts_pre_ratings"])
    assert float(row["ts_post"]) == new_post[0]
    # record/derive rounds TS means and CPM to 4 decimals
    assert math.isclose(float(row["cpm_abs"]), pre - new_post[0], abs_tol=1e-3)
    assert math.isclose(float(row["cpm_pct"]), (pre - new_post[0]) / pre * 100, abs_tol=1e-2)
    assert row["cpm_category"] == "inhibition"
    assert "results.ts_post_ratings" in row["amendments"] and "read back wrongly" in row["amendments"]


def test_recomputed_cpm_category_uses_the_threshold_of_the_sessions_protocol(tmp_path: Path) -> None:
    from cpm_session.sim.world import run_simulated_visit

    data = tmp_path / "data"
    strict = tmp_path / "strict.toml"
    text = (Path(__file__).resolve().parents[2] / "protocols" / "cpm-thermal.toml").read_text(encoding="utf-8")
    assert "cpm_threshold_abs = 5.0" in text
    strict.write_text(text.replace("cpm_threshold_abs = 5.0", "cpm_threshold_abs = 40.0"), encoding="utf-8")
    s = run_simulated_visit(data, "FM-000", "baseline", protocol_path=str(strict), seed=0, clock=VirtualClock())
    h = json.loads((s / "session.json").read_text())
    amend_session(s, "results.ts_post_ratings", [h["results"]["ts_pre"] - 10.0], "slider read back wrongly", "QA")
    export_bids(data, tmp_path / "out")
    _, rows = read_tsv(tmp_path / "out/sub-FM000/sub-FM000_sessions.tsv")
    # CPM 10 points: inhibition with the default 5, none with the protocol's 40 (before: the default was used)
    assert math.isclose(float(rows[0]["cpm_abs"]), 10.0, abs_tol=1e-3) and rows[0]["cpm_category"] == "none"


def test_pressure_protocol_study_exports_valid_bids_with_gridded_algometer_trace(tmp_path: Path) -> None:
    from cpm_session.sim.world import run_simulated_visit

    data = tmp_path / "data"
    for k, visit in enumerate(VISITS):
        run_simulated_visit(data, "P-001", visit, protocol_path="protocols/cpm-pressure.toml", seed=k,
                            clock=VirtualClock())
    out = tmp_path / "bids"
    export_bids(data, out)
    assert check_physio(out) == 3 * len(VISITS)
    side = json.loads((out / "sub-P001/ses-baseline/beh/sub-P001_ses-baseline_task-cpm_recording-algometer_physio.json")
                      .read_text())
    assert side["Columns"] == ["time", "pressure_kpa"] and side["pressure_kpa"]["Units"] == "kPa"
    rows = read_physio(out / "sub-P001/ses-baseline/beh/sub-P001_ses-baseline_task-cpm_recording-algometer_physio.tsv.gz")
    with open(next(data.glob("P-001/baseline-*")) / "devices.csv", newline="") as f:
        want = {(r["t"], r["value"]) for r in csv.DictReader(f) if r["role"] == "algometer"}
    assert {(r[0], r[1]) for r in rows if r[0] != "n/a"} == want
    _, beh = read_tsv(out / "sub-P001/ses-baseline/beh/sub-P001_ses-baseline_task-cpm_beh.tsv")
    assert [r["intensity_unit"] for r in beh if r["trial_type"] == "ppt"] == ["kPa"] * 3
    for tsv in out.rglob("*.tsv"):
        _check_described(tsv, tsv.with_suffix(".json"))
    cmd = _deno_validator()
    if cmd is not None:
        proc = subprocess.run(cmd + [str(out), "--format", "json"], capture_output=True, text=True, timeout=300)
        assert [i for i in json.loads(proc.stdout)["issues"]["issues"] if i["severity"] == "error"] == []
