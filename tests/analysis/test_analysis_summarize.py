"""summarize: one row per session folder, from complete, aborted, killed, amended and broken sessions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from cpm_session.analysis.summarize import ProtocolCache, bath_stats, read_session, summarize
from cpm_session.cli import main
from cpm_session.record.derive import cpm_category
from cpm_session.sim.synth import SynthTruth, write_session, write_unreadable

ROOT = Path(__file__).resolve().parents[2]


def header(path: Path) -> dict:
    return json.loads((path / "session.json").read_text(encoding="utf-8"))


def one(df: pd.DataFrame, participant: str, visit: str) -> pd.Series:
    rows = df[(df["participant"] == participant) & (df["visit"] == visit)]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_complete_session_row(tmp_path: Path) -> None:
    p = write_session(tmp_path, "P001", "baseline", truth=SynthTruth(cpm_effect=0.3), seed=4,
                      deviations=(("acclimatization_short", "started after 8 min"),))
    res = header(p)["results"]
    s = summarize(tmp_path)
    assert s.warnings == []
    r = one(s.table, "P001", "baseline")
    pre, post = res["ts_pre_ratings"], res["ts_post_ratings"]
    assert [r["ts_pre_1"], r["ts_pre_2"], r["ts_pre_3"], r["ts_post_1"]] == pre + post
    assert r["ts_pre"] == pytest.approx(sum(pre) / 3, abs=1e-4)
    assert r["cpm_abs"] == pytest.approx(sum(pre) / 3 - post[0], abs=1e-4)
    assert r["cpm_pct"] == pytest.approx(r["cpm_abs"] / r["ts_pre"] * 100, abs=1e-3)
    assert r["cpm_category"] == cpm_category(r["cpm_abs"], 5.0)
    assert (r["cpm_threshold_abs"], r["cpm_threshold_source"]) == (5.0, "protocol_file")
    assert r["status"] == "completed" and bool(r["log_complete"]) and r["date"] == "2026-01-05"
    assert r["protocol"] == "protocols/cpm-thermal.toml" and len(r["protocol_sha256"]) == 64
    assert (r["ts_modality"], r["ts_unit"], r["ts_intensity"]) == ("thermal", "C", res["pain60_c"])
    assert r["cs_rating_30s"] == res["cs_rating_30s"]
    # bath during immersion only: the synthetic bath reads 10 C after the hand is out and 3 C before
    assert 2.0 < r["bath_min_c"] <= r["bath_mean_c"] <= r["bath_max_c"] < 3.5
    assert r["bath_n"] == 60
    assert pd.isna(r["withdrawal_s"]) and not r["early_withdrawal"]
    assert (r["nrs_pain"], r["hads_anxiety"]) == (header(p)["questionnaires"]["nrs"]["scores"]["pain"],
                                                header(p)["questionnaires"]["hads"]["scores"]["anxiety"])
    assert r["fiqr_total"] == pytest.approx(header(p)["questionnaires"]["fiqr"]["scores"]["total"])
    assert r["n_deviations"] == 1 and r["deviations"] == "acclimatization_short: started after 8 min"
    assert r["missing"] == "" and r["missing_ts_pre"] == 0 and not r["resumed"] and not r["amended"]


def test_category_boundaries() -> None:
    assert cpm_category(5.0, 5.0) == "none"
    assert cpm_category(5.0001, 5.0) == "inhibition"
    assert cpm_category(-5.0, 5.0) == "none"
    assert cpm_category(-5.01, 5.0) == "facilitation"
    assert cpm_category(None, 5.0) is None


def test_threshold_comes_from_the_recorded_protocol_file(tmp_path: Path) -> None:
    text = (ROOT / "protocols" / "cpm-thermal.toml").read_text(encoding="utf-8")
    strict = tmp_path / "strict.toml"
    strict.write_text(text.replace("cpm_threshold_abs = 5.0", "cpm_threshold_abs = 40.0"), encoding="utf-8")
    data = tmp_path / "data"
    write_session(data, "P001", "baseline", truth=SynthTruth(cpm_effect=0.3, noise_sd=0.5), protocol=str(strict))
    r = summarize(data).table.iloc[0]
    assert r["cpm_threshold_abs"] == 40.0 and r["cpm_abs"] > 10 and r["cpm_category"] == "none"
    # the file changed after the session: still used, with a warning
    strict.write_text(text.replace("cpm_threshold_abs = 5.0", "cpm_threshold_abs = 1.0"), encoding="utf-8")
    s = summarize(data)
    assert s.table.iloc[0]["cpm_category"] == "inhibition"
    assert any("differs from the sha256" in w for w in s.warnings)
    # no file at all: the default, with a warning
    strict.unlink()
    s = summarize(data)
    assert s.table.iloc[0]["cpm_threshold_source"] == "default"
    assert any("not found" in w for w in s.warnings) and any("default" in w for w in s.warnings)


def test_withdrawal_missing_rating_and_amendments(tmp_path: Path) -> None:
    p = write_session(tmp_path, "P002", "baseline", truth=SynthTruth(withdrawal_s=40.0), missing_ts_pre=(2,),
                      amendments=({"field": "results.cs_rating_30s", "old": None, "new": 55.0,
                                   "reason": "rating read off paper form", "operator": "AB"},
                                  {"field": "visit", "old": "baseline", "new": "post", "reason": "wrong visit picked",
                                   "operator": "AB"},
                                  {"field": "results.ts_post_ratings", "old": None, "new": [30.0],
                                   "reason": "slider logged wrong", "operator": "CD"}))
    s = summarize(tmp_path)
    r = one(s.table, "P002", "post")
    pre = header(p)["results"]["ts_pre_ratings"]
    assert pre[1] is None and r["missing_ts_pre"] == 1 and r["missing"] == "ts_pre_2"
    assert r["ts_pre"] == pytest.approx((pre[0] + pre[2]) / 2, abs=1e-4)
    assert r["ts_post"] == 30.0 and r["cpm_abs"] == pytest.approx(r["ts_pre"] - 30.0, abs=1e-12)
    assert r["cs_rating_30s"] == 55.0 and not r["missing_cs_rating"]
    assert r["withdrawal_s"] == 40.0 and r["early_withdrawal"]
    assert r["bath_n"] == 40
    assert r["amended"] and r["amendments"].count("->") == 3 and "visit: 'baseline' -> 'post'" in r["amendments"]
    assert r["integrity_ok"] in (True, None)


def test_protected_fields_are_not_amended(tmp_path: Path) -> None:
    write_session(tmp_path, "P003", "baseline", amendments=({"field": "protocol_sha256", "old": "x", "new": "y",
                                                           "reason": "r", "operator": "o"},))
    s = summarize(tmp_path, check_integrity=False)
    assert len(s.table.iloc[0]["protocol_sha256"]) == 64 and not s.table.iloc[0]["amended"]
    assert any("ignored" in w for w in s.warnings)


def test_aborted_killed_and_unreadable_sessions(tmp_path: Path) -> None:
    write_session(tmp_path, "P010", "baseline", stop_after="cold_pressor", status="aborted")
    killed = write_session(tmp_path, "P011", "baseline", stop_after="ts_pre", header=False)
    (killed / "session.json").unlink()  # only events.jsonl survived
    torn = write_session(tmp_path, "P012", "baseline", stop_after="calibration", header=False)
    with open(torn / "events.jsonl", "ab") as f:
        f.write(b'{"seq": 999, "t": 1.0, "ev')
    bad = write_unreadable(tmp_path, "P013", "baseline")
    s = summarize(tmp_path, check_integrity=False)
    assert list(s.table["participant"]) == ["P010", "P011", "P012"]
    a = one(s.table, "P010", "baseline")
    assert a["status"] == "aborted" and pd.isna(a["cpm_abs"]) and a["ts_pre"] > 0 and a["bath_n"] == 60
    assert "ts_post" in a["missing"].split(";")
    k = one(s.table, "P011", "baseline")
    assert k["status"] == "running" and not k["log_complete"] and k["ts_pre"] > 0 and k["ts_intensity"] > 40
    assert k["date"] == "2026-01-05" and k["protocol"] == "protocols/cpm-thermal.toml"
    t = one(s.table, "P012", "baseline")
    assert t["status"] == "running" and pd.isna(t["ts_pre"]) and t["pain60_c"] > 39
    assert any("incomplete" in w and "P012" in w for w in s.warnings)
    assert any(str(bad) in w and "unreadable" in w for w in s.warnings)


def test_integrity_column_when_module_present(tmp_path: Path) -> None:
    pytest.importorskip("cpm_session.record.integrity")
    p = write_session(tmp_path, "P020", "baseline")
    lines = (p / "events.jsonl").read_bytes().split(b"\n")
    lines[5] = lines[5].replace(b'"trial": 1', b'"trial": 7')
    (p / "events.jsonl").write_bytes(b"\n".join(lines))
    s = summarize(tmp_path)
    assert s.table.iloc[0]["integrity_ok"] == False  # noqa: E712
    assert any("integrity" in w for w in s.warnings)


def test_bath_stats_window(tmp_path: Path) -> None:
    f = tmp_path / "devices.csv"
    f.write_text("t,role,quantity,value,unit\n0.0,bath,bath_c,9.0,C\n1.0,thermode,zone_mean_c,32.0,C\n"
                 "2.0,bath,bath_c,2.0,C\n3.0,bath,bath_c,4.0,C\n3.5,thermode,zone_mean_c,45.0,C\n4.0,bath,bath_c,3.0,C\n"
                 "5.0,bath,bath_c,8.0,C\n", encoding="utf-8")
    assert bath_stats(f, 2.0, 5.0) == (3.0, 2.0, 4.0, 3)  # [t0, t1): the sample at t1 is the hand-out moment
    assert bath_stats(f, 2.0, None) == pytest.approx((4.25, 2.0, 8.0, 4))
    assert bath_stats(tmp_path / "none.csv", 0, 1) == (None, None, None, 0)
    g = tmp_path / "reordered.csv"  # another column order takes the slow path, same answer
    g.write_text("quantity,value,t,role,unit\nbath_c,9.0,0.0,bath,C\nbath_c,2.0,2.0,bath,C\nzone_mean_c,40,2.5,thermode,C\n"
                 "bath_c,4.0,3.0,bath,C\nbath_c,3.0,4.0,bath,C\nbath_c,8.0,5.0,bath,C\n", encoding="utf-8")
    assert bath_stats(g, 2.0, 5.0) == (3.0, 2.0, 4.0, 3)


def test_real_engine_session_matches_its_own_results(tmp_path: Path) -> None:
    engine = pytest.importorskip("cpm_session.sim.world")
    from cpm_session.sim.participant import ParticipantTruth

    p = engine.run_simulated_visit(tmp_path, "P001", "baseline", seed=3, truth=ParticipantTruth(withdrawal_s=45.0))
    res = header(p)["results"]
    s = summarize(tmp_path)
    r = s.table.iloc[0]
    assert r["status"] == "completed" and s.warnings == []
    assert r["integrity_ok"] in (True, None)
    for key in ("ts_pre", "ts_post", "cpm_abs", "cpm_pct"):
        assert r[key] == pytest.approx(res[key], abs=1e-3), key
    assert r["cpm_category"] == res["cpm_category"]
    assert [r[f"ts_pre_{i}"] for i in (1, 2, 3)] == res["ts_pre_ratings"]
    for key in ("bath_mean_c", "bath_min_c", "bath_max_c"):
        assert r[key] == pytest.approx(res[key], abs=1e-3), key
    assert r["withdrawal_s"] == pytest.approx(45.0) and r["cs_rating_30s"] == res["cs_rating_30s"]
    assert r["pain60_c"] == res["pain60_c"] and not math.isnan(r["nrs_pain"])


def test_cli_writes_csv_and_reports_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_session(tmp_path / "d", "P001", "baseline")
    write_unreadable(tmp_path / "d", "P002", "baseline")
    out = tmp_path / "s.csv"
    assert main(["summarize", str(tmp_path / "d"), "-o", str(out)]) == 0
    cap = capsys.readouterr()
    assert "wrote 1 session row(s)" in cap.out and "unreadable" in cap.err
    df = pd.read_csv(out)
    assert list(df["participant"]) == ["P001"] and "cpm_abs" in df.columns
    assert main(["summarize", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_read_session_raises_on_nothing(tmp_path: Path) -> None:
    from cpm_session.errors import SessionError

    d = tmp_path / "P001" / "baseline-x"
    d.mkdir(parents=True)
    with pytest.raises(SessionError):
        read_session(d, ProtocolCache([ROOT]))


def test_real_engine_resumed_and_pressure_sessions(tmp_path: Path) -> None:
    engine = pytest.importorskip("cpm_session.sim.world")
    from cpm_session.clock import VirtualClock
    from cpm_session.config.protocol import load_protocol
    from cpm_session.config.station import load_station
    from cpm_session.ui.headless import HeadlessUI

    pp = engine.run_simulated_visit(tmp_path, "P001", "baseline", protocol_path=ROOT / "protocols" / "cpm-pressure.toml",
                                    seed=1)
    clock = VirtualClock()
    ui = HeadlessUI(clock)
    ui.press("escape", 890.0)  # during the cold pressor
    first = engine.run_visit(load_protocol(ROOT / "protocols" / "cpm-thermal.toml"), load_station(ROOT / "hardware" / "sim.toml"),
                             data_dir=tmp_path, participant="P002", visit="baseline", clock=clock, ui=ui)
    assert first.status == "aborted"
    s = summarize(tmp_path)
    r = one(s.table, "P002", "baseline")
    assert r["status"] == "aborted" and pd.isna(r["cpm_abs"]) and not r["resumed"]
    assert r["bath_n"] > 0 and r["bath_max_c"] < 4.0  # the interrupted immersion, up to the emergency stop
    engine.resume_visit(first.session_dir, clock=VirtualClock())
    s = summarize(tmp_path)
    assert s.warnings == []
    r = one(s.table, "P002", "baseline")
    res = header(first.session_dir)["results"]
    assert r["status"] == "completed" and r["resumed"]
    for key in ("bath_mean_c", "bath_min_c", "bath_max_c", "cpm_abs"):  # the last, complete immersion only
        assert r[key] == pytest.approx(res[key], abs=1e-3), key
    p = one(s.table, "P001", "baseline")
    res_p = header(pp)["results"]
    assert (p["ts_modality"], p["ts_unit"]) == ("pressure", "kPa")
    assert p["ts_intensity"] == res_p["ts_intensity"] and p["ppt_kpa"] == res_p["ppt_kpa"] and pd.isna(p["pain60_c"])
    assert p["cpm_abs"] == pytest.approx(res_p["cpm_abs"], abs=1e-3)
    from cpm_session.analysis.plots import session_figure

    assert session_figure(pp, tmp_path / "p.png").stat().st_size > 10_000
    assert session_figure(first.session_dir, tmp_path / "r.png").stat().st_size > 10_000


def test_failing_integrity_check_keeps_the_row(tmp_path: Path) -> None:
    write_session(tmp_path, "P001", "baseline")

    def broken(path: Path) -> list[str]:
        raise RuntimeError("bug in the checker")

    row, warns = read_session(next(tmp_path.glob("P001/*")), ProtocolCache([ROOT]), broken)
    assert row["integrity_ok"] is False and row["cpm_abs"] is not None
    assert any("integrity check itself failed (RuntimeError: bug in the checker)" in w for w in warns)


def test_withdrawal_from_a_control_immersion_is_not_an_early_cold_pressor_withdrawal(tmp_path: Path) -> None:
    from cpm_session.record.folder import EventLog, read_events

    p = write_session(tmp_path, "P001", "baseline", seed=2)
    events, _ = read_events(p / "events.jsonl")
    t = float(events[-1]["t"])
    log = EventLog(p / "events.jsonl", lambda: t + 100.0)
    log.append("control_immersion_start", planned_s=60.0)
    log.append("withdrawal", t_in_water_s=20.0, operator="AB")
    log.append("control_immersion_end", duration_s=20.0, withdrawn=True, withdrawal_s=20.0)
    log.close()
    r = summarize(tmp_path, check_integrity=False).table.iloc[0]
    assert pd.isna(r["withdrawal_s"]) and not r["early_withdrawal"]  # was 20.0 and True
