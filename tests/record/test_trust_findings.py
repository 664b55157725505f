"""Issue 14: one test per finding (each fails on the code before the fix). Nothing read back from disk is
trusted unverified; hostile input gets one clean line, never a traceback, and writes nothing."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from cpm_session.cli import main
from cpm_session.errors import CpmError, SessionError
from cpm_session.record.integrity import verify_ae_log, verify_session_report
from tests.trust_helpers import (
    ROOT,
    build_data,
    copy_data,
    events_of,
    header,
    log_lines,
    rechain,
    session,
    snapshot,
    write_header,
)

THERMAL = ROOT / "protocols" / "cpm-thermal.toml"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """P001 completed baseline; P002 completed baseline + post aborted in TS_post (after the cold pressor)."""
    return build_data(tmp_path_factory.mktemp("built"))


@pytest.fixture
def data(built: Path, tmp_path: Path) -> Path:
    return copy_data(built, tmp_path)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _clean_refusal(code: int, err: str, out: str = "") -> None:
    assert code in (1, 2), err
    text = err.strip() or out.strip()
    assert "Traceback" not in err + out and len(text.splitlines()) == 1, err + out


def _run_post(data: Path, *extra: str) -> list[str]:
    return ["run", "--participant", "P001", "--visit", "post", "--simulate", "--ui", "headless", "--no-status",
            "--data", str(data), *extra]


# ------------------------------------------------------------------------------------ finding 1


@pytest.mark.parametrize("value", [47.5, "47.5", "hot", None])
def test_f1_post_visit_refuses_an_edited_baseline_intensity(data: Path, capsys: pytest.CaptureFixture[str],
                                                            value: object) -> None:
    base = session(data, "P001", "baseline")
    h = header(base)
    h["results"]["ts_intensity"] = value
    write_header(base, h)
    before = snapshot(data)
    code, _out, err = _cli(capsys, *_run_post(data))
    _clean_refusal(code, err)
    assert "cannot be used" in err or "no completed" in err
    assert snapshot(data) == before  # no post folder, nothing changed


def test_f1_nan_intensity_in_the_baseline_gives_one_line(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = session(data, "P001", "baseline")
    text = (base / "session.json").read_text()
    h = header(base)
    text = text.replace(f'"ts_intensity": {h["results"]["ts_intensity"]}', '"ts_intensity": NaN')
    (base / "session.json").write_text(text)
    code, _out, err = _cli(capsys, *_run_post(data))
    _clean_refusal(code, err)
    assert not list((data / "P001").glob("post-*"))


# ------------------------------------------------------------------------------------ finding 2


def test_f2_resume_refuses_a_changed_station_and_never_raises_the_cap(tmp_path: Path) -> None:
    from cpm_session.session import load_for_resume

    st_text = (ROOT / "hardware" / "sim.toml").read_text().replace('name = "simulation"',
                                                                    'name = "simulation"\nmax_thermode_c = 45.0')
    data = build_data(tmp_path, station_text=st_text)
    post = session(data, "P002", "post")
    assert header(post)["thermode_cap_c"] == 45.0
    (tmp_path / "station.toml").write_text(st_text.replace("max_thermode_c = 45.0", "max_thermode_c = 50.0"))
    with pytest.raises(SessionError, match="station file changed"):
        load_for_resume(post)
    inp = load_for_resume(post, override_reason="station recalibrated, checked by AB")
    assert inp.cap_c == 45.0  # never above the cap the session recorded


# ------------------------------------------------------------------------------------ finding 3


def test_f3_resume_refuses_a_log_whose_chain_is_broken(data: Path) -> None:
    from cpm_session.session import load_for_resume

    post = session(data, "P002", "post")
    lines = log_lines(post)
    k = next(i for i, ln in enumerate(lines) if b'"ts_intensity"' in ln)
    lines[k] = lines[k].replace(b'"ts_intensity": ', b'"ts_intensity": 48.9, "was": ', 1)
    (post / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(SessionError, match="fails verification"):
        load_for_resume(post)


def test_f3_resume_refuses_a_rechained_log_through_the_ledger(data: Path) -> None:
    from cpm_session.session import load_for_resume

    post = session(data, "P002", "post")
    evs = events_of(post)
    for e in evs:
        if e.get("event") == "stimulus" and "target_c" in e:
            e["target_c"] = 48.9
    rechain(post, evs)
    with pytest.raises(SessionError, match="ledger"):
        load_for_resume(post)


# ------------------------------------------------------------------------------------ finding 4


def test_f4_edited_results_in_session_json_fail_verify_and_leave_summarize(data: Path, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    base = session(data, "P001", "baseline")
    h = header(base)
    h["results"]["ts_post_ratings"] = [95.0]
    h["results"]["ts_post"] = 95.0
    write_header(base, h)
    problems = verify_session_report(base).problems
    assert problems and "results" in problems[0]
    code, out, _err = _cli(capsys, "summarize", str(data), "-o", str(tmp_path / "s.csv"))
    assert code == 0 and f"EXCLUDED (fails verification): {base}" in out
    import pandas as pd

    rows = pd.read_csv(tmp_path / "s.csv")
    assert str(base) not in set(rows["path"]) and (rows["integrity_ok"] == True).all()  # noqa: E712
    code, out, _err = _cli(capsys, "summarize", str(data), "-o", str(tmp_path / "all.csv"), "--include-unverified")
    assert code == 0 and "UNVERIFIED" in out
    assert not bool(pd.read_csv(tmp_path / "all.csv").set_index("path").loc[str(base), "integrity_ok"])


@pytest.mark.parametrize("key,value", [("participant", "P009"), ("status", "aborted"), ("visit", "post"),
                                       ("operator", "ZZ"), ("thermode_cap_c", 45.0)])
def test_f4_header_edits_are_found(data: Path, key: str, value: object) -> None:
    base = session(data, "P001", "baseline")
    h = header(base)
    h[key] = value
    write_header(base, h)
    assert not verify_session_report(base).ok


def test_f4_a_swapped_session_folder_is_found(data: Path) -> None:
    a, b = session(data, "P001", "baseline"), session(data, "P002", "baseline")
    tmp = a.parent / "swap"
    a.rename(tmp)
    shutil.move(str(b), str(a))
    shutil.move(str(tmp), str(b))
    ra, rb = verify_session_report(a), verify_session_report(b)
    assert not ra.ok and not rb.ok
    assert any("moved or swapped" in p for p in ra.problems)


@pytest.mark.parametrize("how", ["edit", "truncate", "append", "delete_row"])
def test_f4_devices_csv_edits_are_found(data: Path, how: str) -> None:
    base = session(data, "P001", "baseline")
    p = base / "devices.csv"
    raw = p.read_bytes()
    rows = raw.split(b"\r\n")
    if how == "edit":
        k = next(i for i, r in enumerate(rows) if b"bath_c" in r)
        rows[k] = rows[k][:-1] + (b"9" if not rows[k].endswith(b"9") else b"8")
        p.write_bytes(b"\r\n".join(rows))
    elif how == "truncate":
        p.write_bytes(b"\r\n".join(rows[: len(rows) // 2]) + b"\r\n")
    elif how == "append":
        p.write_bytes(raw + b"1.0,bath,bath_c,2.5,C\r\n")
    else:
        del rows[5]
        p.write_bytes(b"\r\n".join(rows))
    r = verify_session_report(base)
    assert r.problems and any(p.startswith("devices.csv") for p in r.problems), r.problems


def _ae(data: Path, capsys: pytest.CaptureFixture[str], desc: str = "dizziness") -> None:
    code, _o, err = _cli(capsys, "ae", "add", "--participant", "P001", "--description", desc, "--onset",
                         "2026-01-05", "--severity", "mild", "--serious", "no", "--relatedness", "possible",
                         "--action", "none", "--outcome", "recovering", "--operator", "AB", "--data", str(data))
    assert code == 0, err


@pytest.mark.parametrize("how", ["edit", "delete_last", "delete_first"])
def test_f4_any_edit_or_deletion_in_the_ae_log_is_found(data: Path, capsys: pytest.CaptureFixture[str],
                                                       how: str) -> None:
    _ae(data, capsys)
    _ae(data, capsys, "headache")
    log = data / "P001" / "adverse_events.jsonl"
    assert verify_ae_log(log).ok
    lines = log.read_bytes().rstrip(b"\n").split(b"\n")
    if how == "edit":
        lines[0] = lines[0].replace(b"mild", b"moderate")
    elif how == "delete_last":
        lines = lines[:-1]
    else:
        lines = lines[1:]
    log.write_bytes(b"\n".join(lines) + b"\n")
    assert not verify_ae_log(log).ok
    code, _o, _e = _cli(capsys, "verify", str(data))
    assert code == 1


# ------------------------------------------------------------------------------------ finding 5


def test_f5_deleting_the_cold_pressor_of_a_killed_visit_is_found(data: Path) -> None:
    post = session(data, "P002", "post")
    assert verify_session_report(post).ok
    evs = events_of(post)
    k = next(i for i, e in enumerate(evs) if e.get("event") == "phase_enter" and e.get("phase") == "cold_pressor")
    lines = log_lines(post)[:k]
    (post / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    h = header(post)
    h["status"] = "running"
    h.pop("log_events", None)
    h.pop("log_final_sha256", None)
    h.pop("results", None)
    write_header(post, h)
    r = verify_session_report(post)
    assert any("tail truncated" in p for p in r.problems), r.problems


def test_f5_deleting_lines_and_updating_the_header_is_found(data: Path) -> None:
    base = session(data, "P001", "baseline")
    rechain(base, events_of(base)[:-6])
    r = verify_session_report(base)
    assert any("ledger" in p for p in r.problems), r.problems


def test_f5_rechaining_after_an_edit_is_found(data: Path) -> None:
    base = session(data, "P001", "baseline")
    evs = events_of(base)
    edited = 0
    for e in evs:
        if e.get("event") == "device_connected":
            e["identity"] = "EDITED"
            edited += 1
    assert edited
    rechain(base, evs)
    r = verify_session_report(base)
    assert any("re-chained" in p for p in r.problems), r.problems


# ------------------------------------------------------------------------------------ finding 6


def test_f6_a_torn_csv_row_is_cut_before_resume_and_the_visit_completes(data: Path) -> None:
    from cpm_session.sim.world import resume_visit

    post = session(data, "P002", "post")
    with open(post / "ratings.csv", "ab") as f:
        f.write(b"ts_post,1,1,non-dominant fore")  # the disk filled in the middle of a row
    with open(post / "devices.csv", "ab") as f:
        f.write(b"812.5,bath,ba")
    done = resume_visit(post)
    assert done.status == "completed", done.message
    r = verify_session_report(post)
    assert r.ok, r.problems
    import csv

    with open(post / "ratings.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert all(len(row) == 12 and None not in row for row in rows)


def test_f6_a_full_disk_leaves_no_empty_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from cpm_session.record import folder

    target = tmp_path / "session.json"
    target.write_text("{}")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(folder.os, "fsync", full)
    with pytest.raises(OSError):
        folder.write_json_atomic(target, {"status": "completed"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["session.json"] and target.read_text() == "{}"


# ------------------------------------------------------------------------------------ finding 7


def test_f7_a_second_resume_of_the_same_session_is_refused(data: Path) -> None:
    from cpm_session.session.resume import session_lock

    post = session(data, "P002", "post")
    with session_lock(post), pytest.raises(SessionError, match="in use"), session_lock(post):
        pass


# ------------------------------------------------------------------------------------ finding 8


def test_f8_export_refuses_links_and_leaves_nothing(data: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    base = session(data, "P001", "baseline")
    os.symlink("/etc", base / "etc")
    code, _o, err = _cli(capsys, "export", "bids", str(data), str(tmp_path / "out"), "--sourcedata")
    _clean_refusal(code, err)
    assert "symbolic link" in err
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_f8_sourcedata_copies_only_the_session_files(data: Path, tmp_path: Path) -> None:
    from cpm_session.export.bids import export_bids

    files = export_bids(data, tmp_path / "out", sourcedata=True)
    src = [p for p in files if "sourcedata" in p.parts]
    assert src and all(p.is_file() and not p.is_symlink() for p in src)
    assert all(str(p).startswith(str(tmp_path / "out")) for p in files)


def test_f8_a_failed_export_leaves_no_half_written_folder(data: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from cpm_session.export import ExportError, bids
    from cpm_session.export.bids import export_bids

    calls = []

    def disk_full(path: Path, rows: list[list[str]]) -> None:
        calls.append(path)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bids, "write_physio", disk_full)  # the disk fills after the first tables were written
    with pytest.raises(ExportError, match="nothing was left behind"):
        export_bids(data, tmp_path / "out")
    assert calls
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_f8_export_into_the_data_folder_is_refused(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _o, err = _cli(capsys, "export", "redcap", str(data), str(data / "exports"))
    _clean_refusal(code, err)


# ------------------------------------------------------------------------------------ finding 9


@pytest.mark.parametrize("target", ["P001/{base}/events.jsonl", "P001/{base}/summary.csv", "P001/adverse_events.jsonl",
                                    "ledger.jsonl"])
def test_f9_summarize_never_writes_over_a_record(data: Path, capsys: pytest.CaptureFixture[str], target: str) -> None:
    base = session(data, "P001", "baseline")
    before = snapshot(data)
    out = data / target.format(base=base.name)
    code, _o, err = _cli(capsys, "summarize", str(data), "-o", str(out), "--force")
    _clean_refusal(code, err)
    assert snapshot(data) == before


def test_f9_output_files_need_force_to_be_replaced(data: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "alloc.csv"
    out.write_text("keep me")
    code, _o, err = _cli(capsys, "randomize", "--n", "8", "--seed", "1", "-o", str(out))
    _clean_refusal(code, err)
    assert out.read_text() == "keep me"
    code, _o, err = _cli(capsys, "summarize", str(data), "-o", str(out))
    _clean_refusal(code, err)
    assert out.read_text() == "keep me"
    code, _o, err = _cli(capsys, "randomize", "--n", "8", "--seed", "1", "-o", str(out), "--force")
    assert code == 0 and out.read_text().startswith("participant")
    code, _o, err = _cli(capsys, "randomize", "--n", "8", "--seed", "1", "-o",
                         str(data / "P001" / "adverse_events.jsonl"), "--force")
    _clean_refusal(code, err)


# ------------------------------------------------------------------------------------ finding 10


def test_f10_analyze_leaves_out_sessions_that_fail_verification(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from cpm_session.sim.synth import SynthTruth, write_session

    d = tmp_path / "d"
    alloc = tmp_path / "alloc.csv"
    rows = ["participant,arm"]
    for i in range(8):
        pid, arm = f"P{i + 1:03d}", ("drug" if i % 2 else "placebo")
        rows.append(f"{pid},{arm}")
        write_session(d, pid, "baseline", truth=SynthTruth(cpm_effect=0.1), seed=i)
        write_session(d, pid, "post", truth=SynthTruth(cpm_effect=0.3 if arm == "drug" else 0.1), seed=100 + i)
    alloc.write_text("\n".join(rows) + "\n")
    bad = session(d, "P003", "post")
    h = header(bad)
    h["results"]["ts_post_ratings"] = [95.0]
    write_header(bad, h)
    code, out, err = _cli(capsys, "analyze", str(d), "--allocation", str(alloc), "--control", "placebo",
                          "--report", str(tmp_path / "rep"))
    assert code == 0, err
    assert f"EXCLUDED (fails verification): {bad}" in out
    warnings = (tmp_path / "rep" / "tables" / "warnings.csv").read_text()
    assert "EXCLUDED (fails verification)" in warnings and str(bad) in warnings


# ------------------------------------------------------------------------------------ finding 11


@pytest.mark.parametrize("key,value", [("acclimatization.duration_s", "inf"), ("acclimatization.max_s", "1e300"),
                                       ("ratings.timeout_s", "inf"), ("ratings.timeout_s", "1e300"),
                                       ("ratings.scale_max", "1e300"), ("resume.max_gap_s", "inf"),
                                       ("test_stimulus.interval_s", "nan"), ("cold_pressor.bath_stable_s", "1e300")])
def test_f11_validate_refuses_infinite_and_huge_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       key: str, value: str) -> None:
    import re

    section, name = key.split(".")
    text = THERMAL.read_text()
    block = re.search(rf"(?ms)^\[{section}\]\n.*?(?=^\[|\Z)", text)
    assert block is not None
    new_block = re.sub(rf"(?m)^{name}\s*=.*$", f"{name} = {value}", block.group(0))
    p = tmp_path / "p.toml"
    p.write_text(text.replace(block.group(0), new_block))
    code, out, err = _cli(capsys, "validate", str(p))
    _clean_refusal(code, err, out)
    assert name in err + out


def test_f11_protocol_dev_zero_is_refused_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.monotonic()
    code, out, err = _cli(capsys, "validate", "/dev/zero")
    assert time.monotonic() - t0 < 5
    _clean_refusal(code, err, out)


# ------------------------------------------------------------------------------------ finding 12


@pytest.mark.parametrize("setting", ['noise_c = "abc"', "noise_c = nan", "noise_c = -1.0", "temperature_c = inf",
                                     "drift_c_per_min = 1e300"])
def test_f12_station_sim_values_are_validated(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             setting: str) -> None:
    text = (ROOT / "hardware" / "sim.toml").read_text()
    key = setting.split(" ")[0]
    import re

    text = re.sub(rf"(?m)^{key}\s*=.*$", setting, text) if re.search(rf"(?m)^{key}\s*=", text) else \
        text.replace('model = "sim"\ntemperature_c', f'model = "sim"\n{setting}\ntemperature_c')
    st = tmp_path / "st.toml"
    st.write_text(text)
    code, out, err = _cli(capsys, "validate", str(st))
    _clean_refusal(code, err, out)
    code, out, err = _cli(capsys, "check-station", str(st))
    assert code != 0 and "PASS" not in out and "Traceback" not in err


@pytest.mark.parametrize("argv", [["--speed", "nan"], ["--speed", "inf"], ["--speed", "-1"], ["--seed", "-1"],
                                  ["--seed", "99999999999"], ["--sim-truth", "pain60_c=nan"],
                                  ["--sim-truth", "pain60_c=inf"], ["--sim-truth", "cpm_effect=1e300"],
                                  ["--sim-truth", "bogus=1"]])
def test_f12_bad_numbers_on_the_command_line_give_one_line_and_no_folder(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str],
                                                                       argv: list[str]) -> None:
    d = tmp_path / "d"
    code, _o, err = _cli(capsys, "run", "--participant", "P001", "--visit", "baseline", "--simulate", "--ui",
                         "headless", "--no-status", "--data", str(d), *argv)
    _clean_refusal(code, err)
    assert not d.exists()


def test_f12_amend_value_1e999_gives_one_line(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = session(data, "P001", "baseline")
    before = snapshot(data)
    code, _o, err = _cli(capsys, "amend", str(base), "--field", "results.ts_post_ratings", "--value", "[1e999]",
                         "--reason", "test", "--operator", "AB")
    _clean_refusal(code, err)
    assert snapshot(data) == before


@pytest.mark.parametrize("content", ["[1, 2, 3]", '"text"', "null", "{not json", ""])
def test_f12_resume_of_a_session_json_that_is_not_an_object_gives_one_line(data: Path,
                                                                         capsys: pytest.CaptureFixture[str],
                                                                         content: str) -> None:
    post = session(data, "P002", "post")
    (post / "session.json").write_text(content)
    log_before = (post / "events.jsonl").read_bytes()
    code, _o, err = _cli(capsys, "resume", str(post), "--ui", "headless", "--no-status", "--staff", "auto")
    assert "Traceback" not in err and code in (0, 2, 3), err
    assert (post / "events.jsonl").read_bytes().startswith(log_before)


@pytest.mark.parametrize("thermode", ['model = "tcs2"\nport = "/dev/ttyNOPE9"\nzones = "abc"',
                                      'model = "tcs2"\nzones = "11111"',
                                      'model = "tcs2"\nport = "/dev/ttyNOPE9"'])
def test_f12_bad_zones_or_a_missing_port_create_no_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        thermode: str) -> None:
    st = tmp_path / "st.toml"
    st.write_text(f'[station]\nname = "x"\n[thermode]\n{thermode}\n[bath]\nmodel = "sim"\n[algometer]\nmodel = "sim"\n')
    d = tmp_path / "d"
    code, _o, err = _cli(capsys, "run", "--participant", "P001", "--visit", "baseline", "--simulate", "--ui",
                         "headless", "--no-status", "--data", str(d), "--station", str(st))
    assert code != 0 and "Traceback" not in err, err
    assert not d.exists() or not any(d.rglob("session.json"))


# ------------------------------------------------------------------------------------ finding 13


@pytest.mark.parametrize("field,value", [("results.ts_intensity", "60"), ("thermode_cap_c", "80"),
                                         ("results.cs_rating_30s", "hot"), ("results.cs_rating_30s", "101"),
                                         ("results.ts_post_ratings", "[-5]"), ("results.cpm_abs", "10"),
                                         ("results.pain60_c", "44"), ("visit", "Post Visit"), ("status", "completed"),
                                         ("whatever", "1")])
def test_f13_amend_validates_the_value_against_the_field(data: Path, capsys: pytest.CaptureFixture[str],
                                                        field: str, value: str) -> None:
    base = session(data, "P001", "baseline")
    before = snapshot(data)
    code, _o, err = _cli(capsys, "amend", str(base), "--field", field, "--value", value, "--reason", "test",
                         "--operator", "AB")
    _clean_refusal(code, err)
    assert snapshot(data) == before


def test_f13_a_valid_amendment_still_works_and_verifies(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = session(data, "P001", "baseline")
    code, _o, err = _cli(capsys, "amend", str(base), "--field", "results.cs_rating_30s", "--value", "55",
                         "--reason", "CRF says 55", "--operator", "AB")
    assert code == 0, err
    assert verify_session_report(base).ok


# ------------------------------------------------------------------------------------ finding 14


def test_f14_data_inside_a_session_or_participant_folder_or_empty_is_refused(data: Path, tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    base = session(data, "P001", "baseline")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for where in (str(base), str(data / "P001"), str(base / "sub"), ""):
            before = snapshot(data)
            code, _o, err = _cli(capsys, "run", "--participant", "P003", "--visit", "baseline", "--simulate",
                                 "--ui", "headless", "--no-status", "--data", where)
            _clean_refusal(code, err)
            assert snapshot(data) == before
        assert not (tmp_path / "P003").exists()
    finally:
        os.chdir(cwd)


# ------------------------------------------------------------------------------------ finding 15


@pytest.mark.parametrize("operator", ["Anna Smith", "anna@example.org", "A\x1bB", "A", "ABCDEFGHI", "A B"])
def test_f15_operator_must_be_initials_or_a_staff_code(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      operator: str) -> None:
    d = tmp_path / "d"
    code, _o, err = _cli(capsys, "run", "--participant", "P001", "--visit", "baseline", "--simulate", "--ui",
                         "headless", "--no-status", "--data", str(d), "--operator", operator)
    _clean_refusal(code, err)
    assert not d.exists()


@pytest.mark.parametrize("pid", ["CON", "nul", "COM1", "lpt9", "Aux"])
def test_f15_windows_reserved_ids_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], pid: str) -> None:
    d = tmp_path / "d"
    code, _o, err = _cli(capsys, "run", "--participant", pid, "--visit", "baseline", "--simulate", "--ui",
                         "headless", "--no-status", "--data", str(d))
    _clean_refusal(code, err)
    assert not d.exists()


def test_f15_ids_are_case_insensitive(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(data)
    code, _o, err = _cli(capsys, "run", "--participant", "p001", "--visit", "baseline", "--simulate", "--ui",
                         "headless", "--no-status", "--data", str(data))
    _clean_refusal(code, err)
    assert "'P001'" in err and snapshot(data) == before
    code, _o, err = _cli(capsys, "ae", "add", "--participant", "p002", "--description", "x", "--onset", "2026-01-05",
                         "--severity", "mild", "--serious", "no", "--relatedness", "possible", "--action", "none",
                         "--outcome", "recovering", "--operator", "AB", "--data", str(data))
    _clean_refusal(code, err)


def test_f15_control_characters_never_reach_stored_text(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _ae(data, capsys, "dizzy\x1b[31m red \x07bell")
    raw = (data / "P001" / "adverse_events.jsonl").read_text()
    assert "\x1b" not in raw and "\x07" not in raw and "\\\\x1b" in raw
    assert verify_ae_log(data / "P001" / "adverse_events.jsonl").ok


# ------------------------------------------------------------------------------------ finding 16


def test_f16_a_station_cap_at_or_below_neutral_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    st = tmp_path / "st.toml"
    st.write_text((ROOT / "hardware" / "sim.toml").read_text().replace('name = "simulation"',
                                                                       'name = "simulation"\nmax_thermode_c = 30.0'))
    d = tmp_path / "d"
    code, _o, err = _cli(capsys, "run", "--participant", "P001", "--visit", "baseline", "--simulate", "--ui",
                         "headless", "--no-status", "--data", str(d), "--station", str(st))
    _clean_refusal(code, err)
    assert "neutral" in err and not d.exists()
    from cpm_session.config.protocol import load_protocol
    from cpm_session.config.station import load_station
    from cpm_session.devices.factory import effective_cap

    p = load_protocol(THERMAL)
    with pytest.raises(CpmError, match="neutral"):
        effective_cap(p.safety.thermode_cap_c, load_station(st), p.safety.neutral_c)


# ------------------------------------------------------------------------------------ finding 17


def test_f17_a_clock_set_back_gives_a_refused_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cpm_session.clock import VirtualClock
    from cpm_session.config.protocol import load_protocol
    from cpm_session.config.station import load_station
    from cpm_session.record import folder
    from cpm_session.session import load_for_resume
    from cpm_session.session.resume import resume as _unused  # noqa: F401
    from cpm_session.sim.world import resume_visit, run_visit
    from cpm_session.ui.headless import HeadlessUI

    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(hours=30)
    monkeypatch.setattr(folder, "utc_now", lambda: ahead)  # the visit ran while the clock was 30 h ahead
    clock = VirtualClock()
    ui = HeadlessUI(clock)
    ui.press("escape", 300.0)
    out = run_visit(load_protocol(THERMAL), load_station(ROOT / "hardware" / "sim.toml"), data_dir=tmp_path / "d",
                    participant="P001", visit="baseline", ui=ui, clock=clock, seed=1, start_utc=ahead)
    assert out.status == "aborted"
    monkeypatch.undo()
    inp = load_for_resume(out.session_dir)  # verification passes; the gap check is the resume's
    assert inp.header["status"] == "aborted"
    with pytest.raises(SessionError, match="in the future"):
        resume_visit(out.session_dir)


def test_f17_the_baseline_is_chosen_by_the_logged_start_time(tmp_path: Path) -> None:
    from cpm_session.record.reader import find_baseline
    from cpm_session.sim.synth import write_session

    d = tmp_path / "d"
    early = write_session(d, "P001", "baseline", seed=1, start=dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC))
    late = write_session(d, "P001", "baseline", seed=2, start=dt.datetime(2026, 2, 5, 9, 0, tzinfo=dt.UTC))
    renamed = early.with_name("baseline-20991231T000000Z")  # a folder name that sorts last
    early.rename(renamed)
    chosen = find_baseline(d, "P001", "baseline")
    assert chosen is not None and chosen["_dir"] == str(late)
    assert not verify_session_report(renamed).ok  # and the renamed folder fails verification
    assert json.loads((late / "session.json").read_text())["start_utc"].startswith("2026-02-05")


# ------------------------------------------------------------------------------------ crash loop (lead's resume)


def test_a_crash_loop_stops_instead_of_delivering_the_block_again(data: Path) -> None:
    from cpm_session.clock import VirtualClock
    from cpm_session.sim.world import resume_visit
    from cpm_session.ui.headless import HeadlessUI

    post = session(data, "P002", "post")
    for _ in range(2):  # stopped twice inside the restarted block, before it completed
        base = VirtualClock()
        ui = HeadlessUI(base)
        ui.press("escape", 20.0)
        out = resume_visit(post, ui=ui, clock=base)
        assert out.status == "aborted"
    restarts = [e["restart_phase"] for e in events_of(post) if e["event"] == "resume_session"]
    assert len(restarts) == 2 and restarts[0] == restarts[1]
    n_stimuli = sum(e["event"] == "stimulus" for e in events_of(post))
    with pytest.raises(SessionError, match="resumed twice"):
        resume_visit(post)
    assert sum(e["event"] == "stimulus" for e in events_of(post)) == n_stimuli  # no further heat
    assert verify_session_report(post).ok
