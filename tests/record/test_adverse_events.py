"""Adverse events: validation, the hash-chained append-only log, updates, listing and the `ae` command."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from pathlib import Path

import pytest

from cpm_session.cli import main
from cpm_session.clock import VirtualClock
from cpm_session.errors import CpmError, InvalidIdError
from cpm_session.record.adverse_events import (
    AE_LOG,
    ALLOWED,
    STATE_COLUMNS,
    AdverseEventError,
    adverse_event_history,
    list_adverse_events,
    record_adverse_event,
    update_adverse_event,
)
from cpm_session.record.folder import GENESIS
from cpm_session.record.integrity import verify_ae_log

TODAY = dt.date(2026, 3, 10)
FIELDS = {"description": "Light-headed after the cold-water immersion", "onset_date": "2026-03-10",
          "severity": "mild", "serious": "no", "relatedness": "probable", "action_taken": "none",
          "outcome": "recovering"}


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().rstrip(b"\n").split(b"\n")


def test_record_writes_one_chained_fsynced_line(tmp_path):
    rec = record_adverse_event(tmp_path, "P001", FIELDS, operator="AB", today=TODAY)
    path = tmp_path / "P001" / AE_LOG
    (line,) = _lines(path)
    obj = json.loads(line)
    assert obj == rec
    assert list(obj) == ["seq", "t", "wall", "event", "ae_id", "participant", "description", "onset_date", "severity",
                         "serious", "relatedness", "action_taken", "outcome", "operator", "visit", "session", "prev"]
    assert obj["seq"] == 0 and obj["t"] == 0.0 and obj["prev"] == GENESIS and obj["event"] == "adverse_event"
    assert obj["ae_id"] == "AE001" and obj["participant"] == "P001" and obj["operator"] == "AB"
    assert {k: obj[k] for k in FIELDS} == FIELDS
    assert obj["visit"] is None and obj["session"] is None
    assert path.read_bytes().endswith(b"\n")

    rec2 = record_adverse_event(tmp_path, "P001", FIELDS | {"severity": "moderate"}, operator="CD", today=TODAY)
    first, second = _lines(path)
    assert first == line                                   # earlier bytes untouched
    assert rec2["ae_id"] == "AE002" and rec2["seq"] == 1
    assert rec2["prev"] == hashlib.sha256(first).hexdigest()
    assert verify_ae_log(path).ok


def test_values_are_normalised_to_the_vocabulary(tmp_path):
    rec = record_adverse_event(tmp_path, "P002", FIELDS | {"relatedness": " Not_Related ", "serious": True,
                                                           "action_taken": "Drug-Interrupted",
                                                           "onset_date": dt.date(2026, 3, 1),
                                                           "outcome": "recovered  with sequelae"},
                               operator=" AB ", today=TODAY)
    assert (rec["relatedness"], rec["serious"], rec["action_taken"], rec["onset_date"], rec["outcome"],
            rec["operator"]) == ("not related", "yes", "drug interrupted", "2026-03-01", "recovered with sequelae", "AB")


@pytest.mark.parametrize("change, expect", [
    ({"severity": "bad"}, "severity: expected one of 'mild', 'moderate', 'severe'; got 'bad'"),
    ({"serious": "maybe"}, "serious: expected one of 'yes', 'no'; got 'maybe'"),
    ({"relatedness": "likely"},
     "relatedness: expected one of 'not related', 'unlikely', 'possible', 'probable', 'definite'; got 'likely'"),
    ({"action_taken": "stopped"}, "action_taken: expected one of 'none', 'dose reduced', 'drug interrupted', "
                                  "'drug withdrawn', 'other'; got 'stopped'"),
    ({"outcome": "fine"}, "outcome: expected one of 'recovered', 'recovering', 'not recovered', "
                          "'recovered with sequelae', 'fatal', 'unknown'; got 'fine'"),
    ({"onset_date": "2026-03-11"}, "onset_date: expected a date not in the future (today is 2026-03-10); got 2026-03-11"),
    ({"onset_date": "10/03/2026"}, "onset_date: expected an ISO date YYYY-MM-DD; got '10/03/2026'"),
    ({"onset_date": "2026-02-30"}, "onset_date: expected a real calendar date YYYY-MM-DD; got '2026-02-30'"),
    ({"description": "   "}, "description: expected non-empty text; got '   '"),
    ({"description": "x" * 2001}, "description: expected at most 2000 characters; got 2001"),
    ({"severity": None}, "severity: required; expected one of 'mild', 'moderate', 'severe'; got nothing"),
    ({"grade": 2}, "grade: not a field of an adverse event; expected one of description, onset_date"),
    ({"outcome": "fatal"}, "serious: an adverse event with outcome 'fatal' is serious by definition; expected 'yes', got 'no'"),
])
def test_bad_values_name_field_allowed_and_given_and_write_nothing(tmp_path, change, expect):
    fields = {k: v for k, v in (FIELDS | change).items() if v is not None}
    with pytest.raises(AdverseEventError) as e:
        record_adverse_event(tmp_path, "P001", fields, operator="AB", today=TODAY)
    assert expect in str(e.value)
    assert isinstance(e.value, CpmError)
    assert not (tmp_path / "P001").exists()


def test_bad_operator_and_participant_write_nothing(tmp_path):
    with pytest.raises(AdverseEventError, match="operator: expected non-empty text"):
        record_adverse_event(tmp_path, "P001", FIELDS, operator="", today=TODAY)
    with pytest.raises(InvalidIdError, match="looks like a name"):
        record_adverse_event(tmp_path, "Jane Doe", FIELDS, operator="AB", today=TODAY)
    with pytest.raises(InvalidIdError):
        list_adverse_events(tmp_path, "../etc")
    assert list(tmp_path.iterdir()) == []


def test_fatal_outcome_accepted_when_serious():
    # validation only: no file is needed to check consistency of a complete report
    from cpm_session.record.adverse_events import validate_report
    assert validate_report(FIELDS | {"outcome": "fatal", "serious": "yes"}, today=TODAY)["outcome"] == "fatal"


def test_recorded_during_a_visit_keeps_visit_session_and_session_time(tmp_path):
    sess = tmp_path / "P001" / "follow-up-20260310T091500Z"
    sess.mkdir(parents=True)
    (sess / "session.json").write_text(json.dumps({"visit": "follow-up", "participant": "P001"}), encoding="utf-8")
    clock = VirtualClock(754.25)
    rec = record_adverse_event(tmp_path, "P001", FIELDS, operator="AB", session_dir=sess, clock_now=clock.now,
                               today=TODAY)
    assert (rec["visit"], rec["session"], rec["t"]) == ("follow-up", "follow-up-20260310T091500Z", 754.25)
    bare = tmp_path / "P001" / "week_2-20260310T101500Z"
    bare.mkdir()
    rec = record_adverse_event(tmp_path, "P001", FIELDS, operator="AB", session_dir=bare, today=TODAY)
    assert rec["visit"] == "week_2"                       # no session.json: taken from the folder name
    other = tmp_path / "P002" / "baseline-20260310T091500Z"
    with pytest.raises(AdverseEventError, match="does not belong to participant 'P001'"):
        record_adverse_event(tmp_path, "P001", FIELDS, operator="AB", session_dir=other, today=TODAY)


def test_updates_are_new_lines_and_list_gives_latest_state(tmp_path):
    record_adverse_event(tmp_path, "P001", FIELDS, operator="AB", today=TODAY)
    record_adverse_event(tmp_path, "P001", FIELDS | {"description": "Headache"}, operator="AB", today=TODAY)
    record_adverse_event(tmp_path, "P007", FIELDS | {"severity": "severe", "serious": "yes"}, operator="EF", today=TODAY)
    path = tmp_path / "P001" / AE_LOG
    before = path.read_bytes()
    upd = update_adverse_event(tmp_path, "P001", "AE001", {"outcome": "recovered", "severity": "mild"},
                               operator="CD", note="called next day", today=TODAY)
    assert upd["event"] == "adverse_event_update" and upd["changes"] == {"outcome": "recovered"}  # severity unchanged
    assert upd["operator"] == "CD" and upd["note"] == "called next day" and upd["seq"] == 2
    assert path.read_bytes().startswith(before)          # append-only: old bytes identical
    update_adverse_event(tmp_path, "P001", "AE001", {"relatedness": "possible"}, operator="AB", today=TODAY)

    rows = list_adverse_events(tmp_path)
    assert [(r["participant"], r["ae_id"]) for r in rows] == [("P001", "AE001"), ("P001", "AE002"), ("P007", "AE001")]
    assert all(list(r) == list(STATE_COLUMNS) for r in rows)
    first = rows[0]
    assert (first["outcome"], first["relatedness"], first["severity"], first["operator"], first["updated_by"],
            first["updates"]) == ("recovered", "possible", "mild", "AB", "AB", 2)
    assert rows[1]["updates"] == 0 and rows[1]["updated_wall"] is None and rows[1]["description"] == "Headache"
    assert [r["ae_id"] for r in list_adverse_events(tmp_path, "P007")] == ["AE001"]
    assert list_adverse_events(tmp_path, "P999") == []
    assert [e["event"] for e in adverse_event_history(tmp_path, "P001", "AE001")] == [
        "adverse_event", "adverse_event_update", "adverse_event_update"]
    assert verify_ae_log(path).ok


def test_update_errors(tmp_path):
    with pytest.raises(AdverseEventError, match="P001 has no adverse events recorded"):
        update_adverse_event(tmp_path, "P001", "AE001", {"outcome": "recovered"}, operator="AB")
    record_adverse_event(tmp_path, "P001", FIELDS, operator="AB", today=TODAY)
    with pytest.raises(AdverseEventError, match="ae_id: expected one of AE001 for participant P001; got 'AE009'"):
        update_adverse_event(tmp_path, "P001", "AE009", {"outcome": "recovered"}, operator="AB")
    with pytest.raises(AdverseEventError, match="nothing changes .outcome is already 'recovering'"):
        update_adverse_event(tmp_path, "P001", "AE001", {"outcome": "recovering"}, operator="AB")
    with pytest.raises(AdverseEventError, match="expected at least one field to change"):
        update_adverse_event(tmp_path, "P001", "AE001", {}, operator="AB")
    with pytest.raises(AdverseEventError, match="ae_id: not a field of an adverse-event update"):
        update_adverse_event(tmp_path, "P001", "AE001", {"ae_id": "AE002"}, operator="AB")
    with pytest.raises(AdverseEventError, match="outcome 'fatal' is serious by definition"):
        update_adverse_event(tmp_path, "P001", "AE001", {"outcome": "fatal"}, operator="AB")
    rec = update_adverse_event(tmp_path, "P001", "AE001", {"outcome": "fatal", "serious": "yes"}, operator="AB")
    assert rec["changes"] == {"outcome": "fatal", "serious": "yes"}
    assert len(_lines(tmp_path / "P001" / AE_LOG)) == 2   # refused updates wrote nothing


def test_torn_tail_is_set_aside_and_chain_continues(tmp_path):
    record_adverse_event(tmp_path, "P001", FIELDS, operator="AB", today=TODAY)
    path = tmp_path / "P001" / AE_LOG
    with open(path, "ab") as f:
        f.write(b'{"seq": 1, "t": 0.0, "wall": "2026-03-10T')   # killed mid-write
    assert [r["ae_id"] for r in list_adverse_events(tmp_path, "P001")] == ["AE001"]
    rec = record_adverse_event(tmp_path, "P001", FIELDS, operator="AB", today=TODAY)
    assert rec["ae_id"] == "AE002" and rec["seq"] == 1
    assert verify_ae_log(path).ok
    assert (tmp_path / "P001" / "events.torn").read_bytes().startswith(b'{"seq": 1')


def test_concurrent_writers_never_fork_the_chain(tmp_path):
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(5):
                record_adverse_event(tmp_path, "P001", FIELDS, operator="AB", today=TODAY)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    ids = [r["ae_id"] for r in list_adverse_events(tmp_path, "P001")]
    assert ids == [f"AE{n:03d}" for n in range(1, 31)]
    assert verify_ae_log(tmp_path / "P001" / AE_LOG).ok


def test_vocabularies_are_the_specified_ones():
    assert ALLOWED == {
        "severity": ("mild", "moderate", "severe"),
        "serious": ("yes", "no"),
        "relatedness": ("not related", "unlikely", "possible", "probable", "definite"),
        "action_taken": ("none", "dose reduced", "drug interrupted", "drug withdrawn", "other"),
        "outcome": ("recovered", "recovering", "not recovered", "recovered with sequelae", "fatal", "unknown"),
    }


# ------------------------------------------------------------------------------ the `ae` command

ADD = ["ae", "add", "--participant", "P001", "--description", "Nausea after immersion", "--onset", "2026-01-05",
       "--severity", "moderate", "--serious", "no", "--relatedness", "not related", "--action", "none",
       "--outcome", "recovering", "--operator", "AB"]


def test_cli_add_update_list(tmp_path, capsys):
    data = str(tmp_path)
    assert main(ADD + ["--data", data]) == 0
    out = capsys.readouterr().out
    assert out.startswith("recorded AE001 for P001: moderate, serious no, outcome recovering")
    assert main(ADD + ["--data", data, "--serious", "yes", "--participant", "P002"]) == 0
    assert "SERIOUS adverse event" in capsys.readouterr().out
    assert main(["ae", "update", "--participant", "P001", "--ae-id", "AE001", "--outcome", "recovered",
                 "--operator", "CD", "--note", "follow-up call", "--data", data]) == 0
    assert "updated AE001 for P001: outcome -> 'recovered' (the original record is kept)" in capsys.readouterr().out
    assert main(["ae", "list", "--data", data]) == 0
    out = capsys.readouterr().out
    assert "Adverse events (2)" in out
    p1 = next(line for line in out.splitlines() if "P001" in line)
    for cell in ("AE001", "2026-01-05", "Nausea after immersion", "moderate", "not related", "recovered", "AB", "1"):
        assert cell in p1
    assert "recovering" not in p1
    assert main(["ae", "list", "--participant", "P002", "--data", data]) == 0
    out = capsys.readouterr().out
    assert "P002" in out and "P001" not in out
    rows = list_adverse_events(tmp_path)
    assert [(r["participant"], r["outcome"], r["updated_by"]) for r in rows] == [
        ("P001", "recovered", "CD"), ("P002", "recovering", None)]


@pytest.mark.parametrize("argv, message", [
    (ADD[:-2] + ["--severity", "terrible", "--operator", "AB"],
     "cpm-session ae: error: severity: expected one of 'mild', 'moderate', 'severe'; got 'terrible'"),
    (ADD + ["--onset", "2999-01-01"], "onset_date: expected a date not in the future"),
    (ADD + ["--participant", "Jane Doe"], "participant ID 'Jane Doe' contains a space"),
    (["ae", "update", "--participant", "P001", "--ae-id", "AE001", "--operator", "AB"],
     "expected at least one field to change"),
])
def test_cli_errors_are_one_line_exit_2(tmp_path, capsys, argv, message):
    assert main(argv + ["--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_cli_list_empty_and_damaged(tmp_path, capsys):
    assert main(["ae", "list", "--data", str(tmp_path)]) == 0
    assert "no adverse events recorded" in capsys.readouterr().out
    assert main(ADD + ["--data", str(tmp_path)]) == 0
    assert main(ADD + ["--data", str(tmp_path), "--description", "Second"]) == 0
    path = tmp_path / "P001" / AE_LOG
    path.write_bytes(path.read_bytes().replace(b"Nausea", b"Nausee"))   # someone edited the first line
    capsys.readouterr()
    assert main(["ae", "list", "--data", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "WARNING" in out and "hash chain broken" in out and "Adverse events (2)" in out
