"""verify / amend: every kind of tampering is found with its line number; amendments never rewrite history."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cpm_session.cli import main
from cpm_session.clock import VirtualClock
from cpm_session.record.amend import amend_session, apply_amendments, load_effective_header
from cpm_session.record.folder import GENESIS, SessionFolder, line_hash, read_events
from cpm_session.record.integrity import (
    IntegrityError,
    check_chain,
    verify_path,
    verify_session,
    verify_session_report,
)

# ------------------------------------------------------------------------------------------ fixture


def make_session(data_dir: Path, participant: str = "FM-012", visit: str = "baseline", seed: int = 0,
                 status: str = "completed", start: dt.datetime | None = None) -> Path:
    """Write a small but complete session folder exactly as ARCHITECTURE.md describes it.

    Used where a hand-made session is clearer than a simulated visit (tampering tests); the
    end-to-end export tests use the real engine when it is importable.
    """
    rng = random.Random(seed)
    clock = VirtualClock()
    start = start or dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC) + dt.timedelta(days=seed)
    header = {"software_version": "0.1.0", "protocol": "protocols/cpm-thermal.toml", "protocol_sha256": "ab" * 32,
              "protocol_name": "cpm-thermal", "station": "sim", "operator": "AB", "seed": seed, "simulate": True,
              "speed": 0, "end_utc": None, "results": None, "questionnaires": {}, "resumed_from": []}
    sf = SessionFolder.create(data_dir, participant, visit, header, clock.now, start=start, fsync=False)
    log = sf.log
    log.append("session_start", participant=participant, visit=visit)
    intensity = round(44.0 + rng.random() * 3, 1)
    pre, post = [], []

    def trial(phase: str, k: int, rating: float | None) -> None:
        onset = round(clock.now(), 6)
        log.append("stimulus", phase=phase, trial=k, modality="thermal", target_c=intensity, duration_s=5.0,
                   planned_onset_t=onset, onset_t=onset)
        for i in range(6):
            sf.devices.write({"t": round(onset + i * 1.0, 3), "role": "thermode", "quantity": "zone_mean_c",
                              "value": round(32.0 + (intensity - 32.0) * min(1.0, i / 2), 3), "unit": "C"})
        clock.advance(6.0)
        log.append("rating_prompt", phase=phase, trial=k, question="rate_heat", slider_px=[340, 500, 940, 520],
                   confirm_px=[580, 600, 700, 640], window_px=[1280, 800])
        rt = round(1.0 + rng.random() * 3, 3)
        clock.advance(rt)
        row = {"phase": phase, "trial": k, "attempt": 1, "site": "non-dominant forearm", "intensity": intensity,
               "intensity_unit": "C", "rating": rating, "rt_s": rt, "onset_t": onset, "planned_onset_t": onset,
               "missing": rating is None, "flag": ""}
        log.append("rating", **row, trace=[[0.0, 50.0], [rt, rating]])
        sf.ratings.write({k2: ("" if v is None else v) for k2, v in row.items()})
        clock.advance(20.0)

    log.append("phase_enter", phase="ts_pre")
    for k in range(1, 4):
        r = round(50 + rng.random() * 20, 1)
        pre.append(r)
        trial("ts_pre", k, r)
    log.append("phase_exit", phase="ts_pre")
    log.append("phase_enter", phase="cs")
    log.append("cold_pressor_start", bath_c=2.5)
    for i in range(61):
        sf.devices.write({"t": round(clock.now() + i, 3), "role": "bath", "quantity": "bath_c",
                          "value": round(2.5 + 0.1 * rng.random(), 3), "unit": "C"})
    clock.advance(30.0)
    cs = round(40 + rng.random() * 30, 1)
    log.append("rating", phase="cs", trial=1, attempt=1, site="dominant hand", intensity=2.5, intensity_unit="C",
               rating=cs, rt_s=1.5, onset_t=round(clock.now(), 6), planned_onset_t=round(clock.now(), 6),
               missing=False, flag="", trace=[])
    sf.ratings.write({"phase": "cs", "trial": 1, "attempt": 1, "site": "dominant hand", "intensity": 2.5,
                      "intensity_unit": "C", "rating": cs, "rt_s": 1.5, "onset_t": round(clock.now(), 6),
                      "planned_onset_t": round(clock.now(), 6), "missing": False, "flag": ""})
    clock.advance(30.0)
    log.append("cold_pressor_end", duration_s=60.0)
    log.append("phase_exit", phase="cs")
    log.append("phase_enter", phase="ts_post")
    r = round(30 + rng.random() * 20, 1)
    post.append(r)
    trial("ts_post", 1, r)
    log.append("phase_exit", phase="ts_post")
    ts_pre, ts_post = sum(pre) / len(pre), post[0]
    results = {"ts_modality": "thermal", "ts_intensity": intensity, "ts_unit": "C", "pain60_c": intensity,
               "ts_pre_ratings": pre, "ts_post_ratings": post, "ts_pre": ts_pre, "ts_post": ts_post,
               "cpm_abs": ts_pre - ts_post, "cpm_pct": (ts_pre - ts_post) / ts_pre * 100,
               "cpm_category": "inhibition", "inhibition": True, "cs_rating_30s": cs, "cs_rating_flag": "",
               "withdrawal_s": None, "bath_mean_c": 2.55, "bath_min_c": 2.5, "bath_max_c": 2.6}
    questionnaires = {"nrs": {"answers": {"pain": 4 + seed % 5}, "scores": {"pain": 4 + seed % 5},
                              "entered_by": "participant"},
                      "hads": {"answers": {f"hads{i}": (i + seed) % 4 for i in range(1, 15)},
                               "scores": {"anxiety": 7 + seed % 3, "depression": 5 + seed % 4},
                               "entered_by": "staff"}}
    log.append("results", **results)
    if status != "running":
        log.append("session_end", status=status)
        sf.update_header(results=results, questionnaires=questionnaires, status=status,
                         end_utc=(start + dt.timedelta(seconds=clock.now())).isoformat().replace("+00:00", "Z"))
    else:
        sf.update_header(results=results, questionnaires=questionnaires)
        log.append("note", text="written after the last header update")
    sf.close()
    return sf.path


@pytest.fixture
def session(tmp_path: Path) -> Path:
    return make_session(tmp_path / "data")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete simulated visit from the real engine (virtual clock); tests tamper with copies of it."""
    from cpm_session.sim.world import run_simulated_visit

    return run_simulated_visit(tmp_path_factory.mktemp("pristine") / "data", "FM-012", "baseline", seed=3,
                               clock=VirtualClock())


def _lines(path: Path) -> list[bytes]:
    return (path / "events.jsonl").read_bytes().rstrip(b"\n").split(b"\n")


def _write_lines(path: Path, lines: list[bytes]) -> None:
    (path / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")


def _copy(src: Path, tmp: Path) -> Path:
    dst = tmp / "copy" / src.parent.name / src.name
    if dst.parent.parent.exists():
        shutil.rmtree(dst.parent.parent)
    shutil.copytree(src, dst)
    if (src.parent.parent / "ledger.jsonl").is_file():  # the data folder's ledger anchors the session's log
        shutil.copy2(src.parent.parent / "ledger.jsonl", dst.parent.parent / "ledger.jsonl")
    return dst


# ------------------------------------------------------------------------------------------ intact


def test_intact_session_verifies_clean(session: Path) -> None:
    assert verify_session(session) == []
    header = json.loads((session / "session.json").read_text())
    lines = _lines(session)
    assert header["log_events"] == len(lines)
    assert header["log_final_sha256"] == line_hash(lines[-1])
    assert json.loads(lines[0])["prev"] == GENESIS


def test_chain_check_reports_nothing_for_every_line_of_a_good_log(session: Path) -> None:
    events, lines, problems = check_chain(session / "events.jsonl")
    assert problems == []
    assert [e["seq"] for e in events] == list(range(len(lines)))


def test_a_real_simulated_visit_verifies_clean_and_can_be_amended(pristine: Path, tmp_path: Path) -> None:
    s = _copy(pristine, tmp_path)
    report = verify_session_report(s)
    assert report.problems == [] and report.notes == []
    lines = _lines(s)
    header = json.loads((s / "session.json").read_text())
    assert header["status"] == "completed" and header["log_events"] == len(lines) > 50
    n_ratings = sum(json.loads(x)["event"] == "rating" for x in lines)
    assert len((s / "ratings.csv").read_text().splitlines()) == n_ratings + 1
    assert main(["amend", str(s), "--field", "results.cs_rating_30s", "--value", "40", "--reason", "CRF check",
                 "--operator", "QA"]) == 0
    assert verify_session(s) == []
    assert load_effective_header(s)["results"]["cs_rating_30s"] == 40
    assert json.loads((s / "session.json").read_text())["results"] == header["results"]


# ------------------------------------------------------------------------------------------ tampering


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_changing_one_byte_of_any_line_is_found_with_its_line_number(pristine: Path, tmp_path: Path,
                                                                       data: st.DataObject) -> None:
    s = _copy(pristine, tmp_path)
    lines = _lines(s)
    i = data.draw(st.integers(0, len(lines) - 1), label="line index")
    j = data.draw(st.integers(0, len(lines[i]) - 1), label="byte index")
    old = lines[i][j]
    new = data.draw(st.integers(0x20, 0x7E).filter(lambda b: b != old and b != 0x0A), label="new byte")
    lines[i] = lines[i][:j] + bytes([new]) + lines[i][j + 1:]
    _write_lines(s, lines)
    problems = verify_session(s)
    assert problems, f"byte {j} of line {i + 1} changed but verify found nothing"
    # the changed line is named: either as the changed/damaged line itself or as the line whose hash
    # no longer matches the next line's prev (or the header's final hash for the last line)
    text = " | ".join(problems)
    assert re.search(rf"\bline {i + 1}\b", text), text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_deleted_line_is_found_with_its_line_number(pristine: Path, tmp_path: Path, data: st.DataObject) -> None:
    s = _copy(pristine, tmp_path)
    lines = _lines(s)
    i = data.draw(st.integers(0, len(lines) - 1), label="deleted line index")
    del lines[i]
    _write_lines(s, lines)
    problems = verify_session(s)
    assert problems
    first = problems[0]
    if i == len(lines):  # the last line went: the header still records one more event
        assert f"1 line(s) missing (deleted, or the log truncated after line {i})" in first, first
    elif i == 0:
        assert re.search(r"\bline 1\b", first) and "genesis" in first, first
    else:
        assert re.search(rf"\bline {i + 1}\b", first) and "deleted" in first, first


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_reordered_pair_is_found_with_its_line_numbers(pristine: Path, tmp_path: Path, data: st.DataObject) -> None:
    s = _copy(pristine, tmp_path)
    lines = _lines(s)
    i = data.draw(st.integers(0, len(lines) - 2), label="first line of the swapped pair")
    lines[i], lines[i + 1] = lines[i + 1], lines[i]
    _write_lines(s, lines)
    problems = verify_session(s)
    assert problems
    first = problems[0]
    if i == 0:
        assert re.search(r"\bline 1\b", first), first
    else:
        assert f"lines {i + 1} and {i + 2} are out of order" in first, first


def test_torn_tail_is_reported_with_its_line_number(session: Path) -> None:
    raw = (session / "events.jsonl").read_bytes()
    n = raw.count(b"\n")
    (session / "events.jsonl").write_bytes(raw + b'{"seq": 99, "t": 1.0, "ev')
    problems = verify_session(session)
    assert any(f"line {n + 1}: incomplete last line" in p for p in problems), problems


def test_torn_tail_of_a_killed_session_is_a_note_with_its_line_number(tmp_path: Path) -> None:
    s = make_session(tmp_path / "data", status="running")
    raw = (s / "events.jsonl").read_bytes()
    n = raw.count(b"\n")
    (s / "events.jsonl").write_bytes(raw + b'{"seq": 99, "t": 1.0, "ev')
    report = verify_session_report(s)
    assert report.problems == []
    assert any(f"line {n + 1}: incomplete last line" in x and "expected after a kill" in x for x in report.notes)


def test_concurrent_amendments_never_fork_the_chain(session: Path) -> None:
    import threading

    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def amend(k: int) -> None:
        barrier.wait()
        try:
            amend_session(session, f"questionnaires.nrs.answers.q{k}", k, f"reason {k}", "AB")
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=amend, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert verify_session(session) == []
    header = json.loads((session / "session.json").read_text())
    assert sorted(a["field"] for a in header["amendments"]) == [f"questionnaires.nrs.answers.q{k}" for k in range(4)]


def test_appended_line_after_close_is_a_failure(session: Path) -> None:
    lines = _lines(session)
    extra = json.dumps({"seq": len(lines), "t": 0.0, "wall": "x", "event": "note", "prev": line_hash(lines[-1])})
    _write_lines(session, lines + [extra.encode()])
    problems = verify_session(session)
    assert len(problems) == 1 and "appended after it closed" in problems[0], problems


def test_longer_log_of_a_running_session_is_a_note_not_a_failure(tmp_path: Path) -> None:
    s = make_session(tmp_path / "data", status="running")
    report = verify_session_report(s)
    assert report.problems == []
    assert any("still running or its process was killed" in n for n in report.notes), report.notes


@pytest.mark.parametrize("missing", ["session.json", "events.jsonl", "ratings.csv", "devices.csv"])
def test_missing_files_are_named(session: Path, missing: str) -> None:
    (session / missing).unlink()
    assert f"{missing} is missing" in verify_session(session)


def test_ratings_table_that_no_longer_matches_the_log_is_found(session: Path) -> None:
    text = (session / "ratings.csv").read_text().splitlines()
    cols = text[0].split(",")
    cells = text[2].split(",")
    cells[cols.index("rating")] = "99.0"
    text[2] = ",".join(cells)
    (session / "ratings.csv").write_text("\n".join(text) + "\n")
    problems = verify_session(session)
    assert len(problems) == 1
    assert "ratings.csv row 2 (file line 3): rating is '99.0'" in problems[0]


@pytest.mark.parametrize("column", ["phase", "trial", "attempt", "site", "intensity", "intensity_unit", "rating",
                                    "rt_s", "onset_t", "planned_onset_t", "missing", "flag"])
def test_any_changed_cell_of_a_real_ratings_table_is_found(pristine: Path, tmp_path: Path, column: str) -> None:
    import csv

    s = _copy(pristine, tmp_path)
    with open(s / "ratings.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    k = next(i for i, r in enumerate(rows) if r["phase"] == "ts_pre")  # a ts_pre row: every column has a value
    new = {"phase": "ts_post", "site": "left calf", "intensity_unit": "kPa", "flag": "not_noxious",
           "missing": "True"}.get(column, "7")
    assert rows[k][column] != new
    rows[k][column] = new
    with open(s / "ratings.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    problems = verify_session(s)
    assert len(problems) == 1 and problems[0].startswith(f"ratings.csv row {k + 1} (file line {k + 2}): {column} is "), \
        problems


def test_ratings_table_with_a_missing_row_is_found(session: Path) -> None:
    text = (session / "ratings.csv").read_text().splitlines()
    (session / "ratings.csv").write_text("\n".join(text[:-1]) + "\n")
    problems = verify_session(session)
    assert any("ratings.csv has 4 rows but the log has 5 rating/ppt events" in p for p in problems), problems


def test_changed_header_final_hash_is_found(session: Path) -> None:
    header = json.loads((session / "session.json").read_text())
    header["log_final_sha256"] = "0" * 64
    (session / "session.json").write_text(json.dumps(header))
    n = header["log_events"]
    assert verify_session(session) == [f"events.jsonl line {n} (the last one session.json records) does not match "
                                       f"log_final_sha256: that line was changed or the log was replaced"]


def test_verify_path_walks_a_data_folder_and_ae_logs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    a = make_session(data, "P001", "baseline", seed=1)
    make_session(data, "P001", "post", seed=2)
    make_session(data, "P002", "baseline", seed=3)
    ae = data / "P001" / "adverse_events.jsonl"
    prev = GENESIS
    lines = []
    for k in range(3):
        line = json.dumps({"seq": k, "wall": "2026-01-01T00:00:00.000Z", "event": "adverse_event", "ae_id": f"AE{k}",
                           "prev": prev}).encode()
        prev = line_hash(line)
        lines.append(line)
    ae.write_bytes(b"\n".join(lines) + b"\n")
    results = verify_path(data)
    assert [(r.path.relative_to(data).as_posix(), r.kind, r.ok) for r in results] == [
        (f"P001/{a.name}", "session", True),
        (f"P001/{next((data / 'P001').glob('post-*')).name}", "session", True),
        ("P001/adverse_events.jsonl", "adverse_events", True),
        (f"P002/{next((data / 'P002').glob('baseline-*')).name}", "session", True),
    ]
    lines[1] = lines[1].replace(b"AE1", b"AE9")
    ae.write_bytes(b"\n".join(lines) + b"\n")
    bad = [r for r in verify_path(data) if not r.ok]
    assert len(bad) == 1 and bad[0].kind == "adverse_events"
    assert "P001/adverse_events.jsonl line 2 was changed" in bad[0].problems[0]


def test_verify_command_prints_ok_and_fail_and_sets_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    good = make_session(data, "P001", "baseline", seed=1)
    bad = make_session(data, "P002", "baseline", seed=2)
    assert main(["verify", str(good)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "1 OK, 0 FAIL" in out
    lines = _lines(bad)
    lines[3] = lines[3].replace(b'"phase"', b'"phasE"')
    _write_lines(bad, lines)
    assert main(["verify", str(data)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "events.jsonl line 4 was changed" in out and "1 OK, 1 FAIL" in out
    assert main(["verify", str(tmp_path / "nowhere")]) == 2


# ------------------------------------------------------------------------------------------ amendments


def test_amendment_appends_an_event_and_keeps_the_original(session: Path) -> None:
    before = (session / "events.jsonl").read_bytes()
    header_before = json.loads((session / "session.json").read_text())
    rec = amend_session(session, "results.cs_rating_30s", 55.0, "participant said 55, typed 5.5", "CD")
    after = (session / "events.jsonl").read_bytes()
    assert after.startswith(before), "earlier lines must never change"
    new_line = after[len(before):].rstrip(b"\n")
    ev = json.loads(new_line)
    assert ev["event"] == "amendment" and ev["seq"] == header_before["log_events"]
    assert ev["old"] == header_before["results"]["cs_rating_30s"] and ev["new"] == 55.0
    assert ev["reason"] == "participant said 55, typed 5.5" and ev["operator"] == "CD"
    assert ev["prev"] == header_before["log_final_sha256"] and ev["wall"].endswith("Z")
    assert rec["seq"] == ev["seq"]
    header = json.loads((session / "session.json").read_text())
    assert header["results"] == header_before["results"], "the header keeps the original values"
    assert header["log_events"] == header_before["log_events"] + 1
    assert header["log_final_sha256"] == line_hash(new_line)
    assert header["amendments"] == [{"seq": ev["seq"], "field": "results.cs_rating_30s",
                                     "old": header_before["results"]["cs_rating_30s"], "new": 55.0,
                                     "reason": "participant said 55, typed 5.5", "operator": "CD", "wall": ev["wall"]}]
    assert verify_session(session) == []
    eff = load_effective_header(session)
    assert eff["results"]["cs_rating_30s"] == 55.0
    assert eff["results"]["ts_pre"] == header_before["results"]["ts_pre"]


def test_two_amendments_chain_old_values_and_apply_in_order(session: Path) -> None:
    amend_session(session, "visit", "post", "wrong visit chosen at start", "AB")
    amend_session(session, "visit", "baseline", "it was baseline after all (CRF checked)", "CD")
    events, _ = read_events(session / "events.jsonl")
    amends = [e for e in events if e["event"] == "amendment"]
    assert [(a["old"], a["new"]) for a in amends] == [("baseline", "post"), ("post", "baseline")]
    header = json.loads((session / "session.json").read_text())
    assert apply_amendments(header, events)["visit"] == "baseline"
    assert apply_amendments(header)["visit"] == "baseline"
    assert apply_amendments(header, events[:-1])["visit"] == "post"
    assert header["visit"] == "baseline"


def test_apply_amendments_does_not_modify_its_input() -> None:
    header = {"visit": "baseline", "results": {"cs_rating_30s": 5.5}}
    events = [{"seq": 3, "event": "amendment", "field": "results.cs_rating_30s", "old": 5.5, "new": 55.0,
               "reason": "typo", "operator": "AB", "wall": "w"},
              {"seq": 4, "event": "amendment", "field": "hand", "old": None, "new": "left", "reason": "r",
               "operator": "AB", "wall": "w"}]
    eff = apply_amendments(header, events)
    assert eff["results"]["cs_rating_30s"] == 55.0 and eff["hand"] == "left"
    assert header == {"visit": "baseline", "results": {"cs_rating_30s": 5.5}}
    assert [a["field"] for a in eff["amendments"]] == ["results.cs_rating_30s", "hand"]


def test_apply_amendments_never_changes_a_protected_field_or_anything_below_it() -> None:
    header = {"visit": "baseline", "protocol_sha256": "ab" * 32, "log_events": 7}
    events = [{"seq": 3, "event": "amendment", "field": f, "old": None, "new": {"x": 1}, "reason": "r",
               "operator": "AB", "wall": "w"} for f in ("protocol_sha256.x", "log_events", "amendments.0", "visit")]
    eff = apply_amendments(header, events)
    assert eff["protocol_sha256"] == "ab" * 32 and eff["log_events"] == 7 and eff["visit"] == {"x": 1}
    assert [a["field"] for a in eff["amendments"]] == ["protocol_sha256.x", "log_events", "amendments.0", "visit"]


def test_dotted_paths_read_missing_as_none_and_set_through_non_objects() -> None:
    from cpm_session.analysis.summarize import set_dotted as summarize_set_dotted
    from cpm_session.record.amend import get_dotted, set_dotted

    header: dict[str, Any] = {"results": {"ts_pre": 40.0, "cs": None}, "visit": "baseline"}
    assert get_dotted(header, "results.ts_pre") == 40.0
    assert get_dotted(header, "results.missing") is None
    assert get_dotted(header, "visit.x") is None  # through a string: None, not an error
    assert get_dotted(header, "results.cs.x") is None
    set_dotted(header, "visit.x", 1)  # a non-object on the way is replaced by an object
    set_dotted(header, "a.b.c", 2)
    assert header["visit"] == {"x": 1} and header["a"] == {"b": {"c": 2}}
    with pytest.raises(IntegrityError, match="dotted path"):
        set_dotted(header, "results.bad-name", 3)
    with pytest.raises(IntegrityError, match="dotted path"):
        get_dotted(header, "results..x")
    rec: dict[str, Any] = {"results": 5}
    summarize_set_dotted(rec, "results.bad-name", 3)  # summarize takes the path as it stands in the log
    assert rec == {"results": {"bad-name": 3}}


@pytest.mark.parametrize(("field", "value", "reason", "operator", "message"), [
    ("visit", "post", "", "AB", "needs a reason"),
    ("visit", "post", "   ", "AB", "needs a reason"),
    ("visit", "post", "why", "", "operator"),
    ("log_events", 3, "why", "AB", "cannot be amended"),
    ("amendments", [], "why", "AB", "cannot be amended"),
    ("visit", "Post Visit", "why", "AB", "not valid"),
    ("participant", "John Smith", "why", "AB", "looks like a name"),
    ("results..x", 1, "why", "AB", "dotted path"),
    ("visit", "baseline", "why", "AB", "already"),
])
def test_bad_amendments_are_refused_and_leave_the_folder_alone(session: Path, field: str, value: Any, reason: str,
                                                              operator: str, message: str) -> None:
    before = {p.name: p.read_bytes() for p in session.iterdir()}
    with pytest.raises(Exception) as exc:
        amend_session(session, field, value, reason, operator)
    assert message in str(exc.value)
    assert {p.name: p.read_bytes() for p in session.iterdir()} == before


def test_a_tampered_or_running_session_cannot_be_amended(tmp_path: Path) -> None:
    s = make_session(tmp_path / "a")
    lines = _lines(s)
    lines[2] = lines[2].replace(b"ts_pre", b"ts_prE")
    _write_lines(s, lines)
    with pytest.raises(IntegrityError, match="fails verification"):
        amend_session(s, "visit", "post", "why", "AB")
    r = make_session(tmp_path / "b", status="running")
    with pytest.raises(IntegrityError, match="still running"):
        amend_session(r, "visit", "post", "why", "AB")


def test_amend_command(session: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["amend", str(session), "--field", "results.cs_rating_30s", "--value", "61.5",
                 "--reason", "CRF says 61.5", "--operator", "AB"]) == 0
    assert "amended results.cs_rating_30s" in capsys.readouterr().out
    assert load_effective_header(session)["results"]["cs_rating_30s"] == 61.5
    assert main(["amend", str(session), "--field", "visit", "--value", "post", "--reason", " ", "--operator", "AB"]) == 2
    assert "needs a reason" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["amend", str(session), "--field", "visit", "--value", "post", "--operator", "AB"])
    assert main(["amend", str(session), "--field", "hand", "--value", "left", "--reason", "not recorded",
                 "--operator", "AB"]) == 0
    eff = load_effective_header(session)
    assert eff["hand"] == "left" and isinstance(eff["results"]["cs_rating_30s"], float)
