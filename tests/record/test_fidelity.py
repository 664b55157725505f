"""Protocol fidelity, measured (issue 18): visits with known deviations are found, with the right numbers,
in session.json, in the deviation events logged at the moment, on the staff view, in summarize, in the
trial report and in the BIDS and REDCap exports."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cpm_session.analysis.summarize import summarize
from cpm_session.clock import VirtualClock
from cpm_session.config.protocol import load_protocol, parse_protocol
from cpm_session.config.station import load_station
from cpm_session.devices.factory import Devices
from cpm_session.errors import ProtocolFileError
from cpm_session.record.fidelity import compute_fidelity, fidelity_of_folder, read_device_rows
from cpm_session.session import SessionSettings, start_visit
from cpm_session.sim.participant import ParticipantTruth
from cpm_session.sim.world import SimWorld, build_devices, make_participant, resume_visit
from cpm_session.ui.headless import HeadlessUI
from tests.conftest import SIM_STATION, THERMAL
from tests.helpers import events, of

STAFF_S = 2.0
LATE_HAND_OUT_S = 20.0
BATH_TO_C = 4.5
BATH_RAMP_S = 40.0
WITHDRAW_S = 20.0
SKIP_AT = 100.0
ARMS = ("active", "placebo")
N = 12


class RecordingUI(HeadlessUI):
    """A headless screen that keeps every staff-view update (session t, status)."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(clock)
        self.history: list[tuple[float, dict[str, Any]]] = []

    def set_status(self, status: dict[str, Any]) -> None:
        super().set_status(status)
        self.history.append((self.clock.now(), dict(status)))


class Staff:
    """A scripted staff member: confirms each staff step `delays.get(step, STAFF_S)` s after it is asked for;
    optionally presses Escape `escape_in_cp` s into the cold pressor."""

    def __init__(self, ui: HeadlessUI, delays: dict[str, float] | None = None, escape_in_cp: float | None = None):
        self.ui, self.delays, self.escape_in_cp = ui, delays or {}, escape_in_cp

    def __call__(self, name: str, ev: dict[str, Any]) -> None:
        if name == "staff_step_awaited":
            self.ui.press("space", float(ev["t"]) + self.delays.get(str(ev["step"]), STAFF_S))
        elif name == "cold_pressor_start" and self.escape_in_cp is not None:
            self.ui.press("escape", float(ev["t"]) + self.escape_in_cp)
            self.escape_in_cp = None


class BathDrift:
    """The bath warms linearly from its reading at immersion to `to_c` over `over_s` s while the hand is in."""

    def __init__(self, devices: Devices, clock: VirtualClock, to_c: float, over_s: float) -> None:
        self.clock, self.to_c, self.over_s = clock, to_c, over_s
        self.t_in: float | None = None
        self.start_c = 0.0
        orig = devices.bath.read_c

        def read_c() -> float:
            v = orig()
            if self.t_in is None:
                return v
            frac = min(1.0, (self.clock.now() - self.t_in) / self.over_s)
            return self.start_c + (self.to_c - self.start_c) * frac
        devices.bath.read_c = read_c  # type: ignore[method-assign]
        self._orig = orig

    def __call__(self, name: str, ev: dict[str, Any]) -> None:
        if name == "cold_pressor_start":
            self.start_c, self.t_in = self._orig(), float(ev["t"])
        elif name == "cold_pressor_end":
            self.t_in = None


def run(data: Path, pid: str, visit: str, *, seed: int, truth: ParticipantTruth | None = None,
        delays: dict[str, float] | None = None, keys: tuple[tuple[str, float], ...] = (),
        bath_to_c: float | None = None, escape_in_cp: float | None = None) -> tuple[Path, RecordingUI]:
    """Run one simulated visit on a virtual clock with a scripted staff member; return its folder and screen."""
    protocol = load_protocol(THERMAL)
    station = load_station(SIM_STATION)
    clock = VirtualClock()
    ui = RecordingUI(clock)
    for key, at in keys:
        ui.press(key, at)
    cap = min(protocol.safety.thermode_cap_c, station.station.max_thermode_c)
    devs = build_devices(station, cap_c=cap, neutral_c=protocol.safety.neutral_c, clock=clock, seed=seed)
    truth = truth or ParticipantTruth(pain60_c=45.0 + (seed % 5) * 0.3, cpm_effect=0.1 + 0.05 * (seed % 4))
    sim = make_participant(truth, seed)
    observers: list[Any] = [SimWorld(ui, devs, sim, staff_auto=False).attach(), Staff(ui, delays, escape_in_cp)]
    if bath_to_c is not None:
        observers.append(BathDrift(devs, clock, bath_to_c, BATH_RAMP_S))
    out = start_visit(protocol, station, ui=ui, clock=clock, devices=devs, data_dir=data, participant=pid,
                      visit=visit, settings=SessionSettings(operator="TS", seed=seed, staff="manual",
                                                            require_licensed_wording=False),
                      simulate=True, speed=None, observers=observers,
                      extra_header={"sim_truth": dataclasses.asdict(truth)})
    return out.session_dir, ui


def header(sdir: Path) -> dict[str, Any]:
    return json.loads((sdir / "session.json").read_text(encoding="utf-8"))


def fid(sdir: Path) -> dict[str, Any]:
    return header(sdir)["results"]["fidelity"]


def req(sdir: Path, key: str) -> dict[str, Any]:
    return fid(sdir)["requirements"][key]


# ---------------------------------------------------------------------------------------------- the trial
@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Twelve participants, two visits each; five visits with a known deviation, one session aborted early."""
    d = tmp_path_factory.mktemp("fidelity")
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):  # every event is fsync'd: RAM-backed is much faster
        d = Path(tempfile.mkdtemp(prefix="cpm-fidelity-", dir=shm))
    data = d / "data"
    pids = [f"P{i:03d}" for i in range(1, N + 1)]
    with open(d / "alloc.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["participant", "arm"])
        for i, p in enumerate(pids):
            w.writerow([p, ARMS[i % 2]])
    special: dict[tuple[str, str], dict[str, Any]] = {
        ("P001", "post"): {"delays": {"hand is out": LATE_HAND_OUT_S}},
        ("P002", "baseline"): {"keys": (("s", SKIP_AT),)},
        ("P003", "post"): {"bath_to_c": BATH_TO_C},
        ("P004", "post"): {"truth": ParticipantTruth(pain60_c=45.5, withdrawal_s=WITHDRAW_S)},
        ("P005", "baseline"): {"escape_in_cp": 10.0},
    }
    dirs: dict[tuple[str, str], Path] = {}
    uis: dict[tuple[str, str], RecordingUI] = {}
    for i, pid in enumerate(pids):
        for visit in ("baseline", "post"):
            kw = special.get((pid, visit), {})
            sdir, ui = run(data, pid, visit, seed=3 * i + (visit == "post"), **kw)
            if (pid, visit) == ("P005", "baseline"):
                assert header(sdir)["status"] == "aborted"
                out = resume_visit(sdir, clock=VirtualClock(), staff="auto")
                assert out.status == "completed"
            dirs[(pid, visit)], uis[(pid, visit)] = sdir, ui
    early, _ui = run(data, "P099", "baseline", seed=99, keys=(("escape", 700.0),))  # aborted in calibration
    dirs[("P099", "baseline")] = early
    yield {"dir": d, "data": data, "dirs": dirs, "uis": uis}
    if str(d).startswith("/dev/shm/"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def table(trial: dict[str, Any]) -> pd.DataFrame:
    res = summarize(trial["data"])
    return res.table.set_index(res.table["participant"] + "/" + res.table["visit"] + "/" + res.table["status"])


def row(table: pd.DataFrame, pid: str, visit: str) -> pd.Series:
    return table.loc[f"{pid}/{visit}/completed"]


def test_clean_visits_are_within_protocol(trial: dict[str, Any], table: pd.DataFrame) -> None:
    sdir = trial["dirs"][("P006", "baseline")]
    f = fid(sdir)
    assert f["within_protocol"] is True and f["outside_limits"] == [] and f["not_measured"] == []
    r = f["requirements"]
    assert r["cs_end_to_ts_post_s"]["actual"] == pytest.approx(STAFF_S + 2.0)  # staff confirm + the cue
    assert r["cs_immersion_s"]["actual"] == pytest.approx(60.0)
    assert 1.0 <= r["cs_bath_min_c"]["actual"] <= r["cs_bath_max_c"]["actual"] <= 4.0
    assert abs(r["ts_pre_delivered_error"]["actual"]) < 0.5 and r["ts_pre_interval_error_s"]["actual"] == pytest.approx(30.0)
    assert len([t for t in f["trials"] if t["phase"] == "ts_pre"]) == 3
    assert not [e for e in of(events(sdir), "deviation") if e["kind"].startswith("fidelity_")]
    assert bool(row(table, "P006", "baseline")["fidelity_within_protocol"]) is True


def test_late_ts_post_found_when_it_happens_and_in_the_results(trial: dict[str, Any], table: pd.DataFrame) -> None:
    sdir = trial["dirs"][("P001", "post")]
    evs = events(sdir)
    end = of(evs, "cold_pressor_end")[-1]
    onset = next(e for e in of(evs, "stimulus") if e["phase"] == "ts_post")
    truth = onset["onset_t"] - end["end_t"]
    assert truth == pytest.approx(LATE_HAND_OUT_S + 2.0)
    e = req(sdir, "cs_end_to_ts_post_s")
    assert e["status"] == "deviation" and e["within_limits"] is False
    assert e["planned"] == 0.0 and e["limit"] == 15.0
    assert e["actual"] == pytest.approx(truth, abs=1e-3) and e["deviation"] == pytest.approx(truth, abs=1e-3)
    assert e["hand_out_confirmed_after_s"] == pytest.approx(LATE_HAND_OUT_S)
    assert fid(sdir)["within_protocol"] is False and fid(sdir)["outside_limits"] == ["cs_end_to_ts_post_s"]
    # the deviation was logged the moment the limit passed, before TS_post started, with planned vs actual
    dev = [d for d in of(evs, "deviation") if d["kind"] == "fidelity_cs_end_to_ts_post_s"]
    assert len(dev) == 1 and dev[0]["t"] == pytest.approx(end["end_t"] + 15.0, abs=1e-6)
    assert dev[0]["t"] < onset["onset_t"] and dev[0]["planned"] == 0.0 and dev[0]["limit"] == 15.0
    check = of(evs, "fidelity_check")[-1]
    assert check["actual"] == pytest.approx(truth, abs=1e-3) and check["within_limits"] is False
    # the staff view counted down from the end of the immersion and warned when the limit was near
    hist = trial["uis"][("P001", "post")].history
    counts = [(t, s["countdowns"]["TS_post must start within"]) for t, s in hist
              if "TS_post must start within" in (s.get("countdowns") or {})]
    assert counts[0][0] == pytest.approx(end["end_t"], abs=1e-6) and counts[0][1] == pytest.approx(15.0, abs=1e-6)
    assert min(c for _, c in counts) == 0.0
    warned = [t for t, s in hist if "TS_post must start within" in str(s.get("warning", ""))]
    assert warned and warned[0] == pytest.approx(end["end_t"] + 10.0, abs=0.11)
    assert any("TS_post late" in str(s.get("warning", "")) for _, s in hist)
    r = row(table, "P001", "post")
    assert r["fid_cs_to_ts_post_s"] == pytest.approx(truth, abs=1e-3)
    assert r["fid_cs_to_ts_post_s_ok"] is False or r["fid_cs_to_ts_post_s_ok"] == 0
    assert bool(r["fidelity_within_protocol"]) is False and r["fidelity_outside"] == "cs_end_to_ts_post_s"
    assert "fidelity_cs_end_to_ts_post_s" in r["deviations"]


def test_skipped_acclimatization(trial: dict[str, Any], table: pd.DataFrame) -> None:
    sdir = trial["dirs"][("P002", "baseline")]
    enter = next(e for e in of(events(sdir), "phase_enter") if e["phase"] == "acclimatization")
    elapsed = SKIP_AT - enter["t"]
    d = req(sdir, "acclimatization_s")
    assert d["status"] == "deviation" and d["planned"] == 600.0 and d["limit"] == [600.0, 900.0]
    assert d["actual"] == pytest.approx(elapsed, abs=1e-3) and d["deviation"] == pytest.approx(elapsed - 600.0, abs=1e-3)
    s = req(sdir, "acclimatization_skipped")
    assert s["actual"] is True and s["within_limits"] is False and s["deviation"] == pytest.approx(600.0 - elapsed, abs=1e-3)
    assert set(fid(sdir)["outside_limits"]) == {"acclimatization_s", "acclimatization_skipped"}
    r = row(table, "P002", "baseline")
    assert r["fid_acclim_s"] == pytest.approx(elapsed, abs=1e-3) and bool(r["fid_acclim_skipped"]) is True


def test_bath_drifting_to_4_5_during_the_immersion(trial: dict[str, Any], table: pd.DataFrame) -> None:
    sdir = trial["dirs"][("P003", "post")]
    mx = req(sdir, "cs_bath_max_c")
    assert mx["status"] == "deviation" and mx["actual"] == pytest.approx(BATH_TO_C)
    assert mx["deviation"] == pytest.approx(BATH_TO_C - 4.0) and mx["limit"] == [1.0, 4.0]
    assert req(sdir, "cs_bath_min_c")["within_limits"] is True
    rows = read_device_rows(sdir / "devices.csv")
    evs = events(sdir)
    t0, t1 = of(evs, "cold_pressor_start")[-1]["t"], of(evs, "cold_pressor_end")[-1]["end_t"]
    vals = [v for t, _r, q, v in rows if q == "bath_c" and t0 <= t <= t1]
    assert req(sdir, "cs_bath_mean_c")["actual"] == pytest.approx(sum(vals) / len(vals), abs=1e-3)
    dev = [d for d in of(evs, "deviation") if d["kind"] == "fidelity_cs_bath_range_c"]
    assert len(dev) == 1 and 4.0 < dev[0]["actual"] <= 4.0 + 0.01 and t0 < dev[0]["t"] < t1
    r = row(table, "P003", "post")
    assert r["fid_bath_max_c"] == pytest.approx(BATH_TO_C) and r["bath_max_c"] == pytest.approx(BATH_TO_C)
    assert "cs_bath_max_c" in r["fidelity_outside"]


def test_withdrawal_at_20_s(trial: dict[str, Any], table: pd.DataFrame) -> None:
    sdir = trial["dirs"][("P004", "post")]
    imm = req(sdir, "cs_immersion_s")
    assert imm["actual"] == pytest.approx(WITHDRAW_S, abs=0.01) and imm["deviation"] == pytest.approx(WITHDRAW_S - 60.0, abs=0.01)
    assert imm["status"] == "deviation"
    w = req(sdir, "cs_withdrawal")
    assert w["actual"] is True and w["withdrawal_s"] == pytest.approx(WITHDRAW_S, abs=0.01)
    rt = req(sdir, "cs_rating_time_s")  # the hand was rated when it came out, not at 30 s
    assert rt["actual"] == pytest.approx(WITHDRAW_S, abs=0.1) and rt["status"] == "deviation"
    evs = events(sdir)
    dev = [d for d in of(evs, "deviation") if d["kind"] == "fidelity_cs_immersion_s"]
    assert len(dev) == 1 and dev[0]["actual"] == pytest.approx(WITHDRAW_S, abs=0.01) and dev[0]["planned"] == 60.0
    assert dev[0]["t"] == pytest.approx(of(evs, "withdrawal")[0]["t"])
    r = row(table, "P004", "post")
    assert r["fid_immersion_s"] == pytest.approx(WITHDRAW_S, abs=0.01) and bool(r["fid_withdrawal"]) is True


def test_resumed_block_reports_gap_and_what_it_broke(trial: dict[str, Any], table: pd.DataFrame) -> None:
    sdir = trial["dirs"][("P005", "baseline")]
    res = req(sdir, "resume")
    assert res["status"] == "deviation" and res["actual"] == 1
    gap = res["gaps"][0]
    assert gap["restart_phase"] == "ts_pre" and gap["interrupted_phase"] == "cold_pressor"
    assert gap["previous_status"] == "aborted" and gap["gap_wall_s"] is not None and gap["gap_wall_s"] >= 0
    assert any("CPM block restarted at TS_pre: 3 TS_pre" in b for b in gap["broke"])
    assert any("cold pressor repeated" in b for b in gap["broke"])
    # the numbers describe the attempt that counts: the TS_pre and immersion after the resume
    resume_t = of(events(sdir), "resume_session")[0]["t"]
    assert req(sdir, "cs_immersion_s")["actual"] == pytest.approx(60.0)
    assert all(t["onset_t"] > resume_t for t in fid(sdir)["trials"])
    assert req(sdir, "completed")["within_limits"] is True
    r = row(table, "P005", "baseline")
    assert r["fid_resumes"] == 1 and bool(r["fidelity_within_protocol"]) is False and "resume" in r["fidelity_outside"]


def test_session_without_cold_pressor_reports_what_was_not_measured(trial: dict[str, Any], table: pd.DataFrame) -> None:
    sdir = trial["dirs"][("P099", "baseline")]
    f = fid(sdir)
    assert header(sdir)["status"] == "aborted" and f["within_protocol"] is False
    for key in ("cs_bath_min_c", "cs_bath_mean_c", "cs_bath_max_c", "cs_immersion_s", "cs_rating_time_s",
                "cs_end_to_ts_post_s", "ts_pre_onset_error_s", "ts_post_delivered_error"):
        e = f["requirements"][key]
        assert e["status"] == "not_measured" and e["actual"] is None and e["value"] is None, key
        assert e["within_limits"] is None and "calibration" in e["reason"], key
    assert f["requirements"]["completed"]["actual"] == "aborted"
    assert f["requirements"]["acclimatization_s"]["within_limits"] is True
    r = table.loc["P099/baseline/aborted"]
    assert pd.isna(r["fid_cs_to_ts_post_s"]) and pd.isna(r["fid_bath_max_c"])
    assert "cs_end_to_ts_post_s" in r["fidelity_not_measured"]


def test_recomputed_from_the_folder_equals_session_json(trial: dict[str, Any]) -> None:
    for key in (("P001", "post"), ("P005", "baseline"), ("P099", "baseline")):
        sdir = trial["dirs"][key]
        again = fidelity_of_folder(sdir)
        assert again is not None
        stored = fid(sdir)
        assert again["requirements"] == stored["requirements"] and again["within_protocol"] == stored["within_protocol"]


def test_report_has_fidelity_table_and_sensitivity_ancova(trial: dict[str, Any]) -> None:
    from cpm_session.cli import main

    d: Path = trial["dir"]
    rc = main(["analyze", str(trial["data"]), "--allocation", str(d / "alloc.csv"), "--control", "placebo", "--report", str(d / "report"),
               "--session-plots", "none"])
    assert rc == 0
    page = (d / "report" / "report.html").read_text(encoding="utf-8")
    assert "Sensitivity analysis: sessions within protocol" in page and "Protocol fidelity per arm and visit" in page
    sens = pd.read_csv(d / "report" / "tables" / "sensitivity_within_protocol.csv")
    primary = pd.read_csv(d / "report" / "tables" / "results.csv")
    assert sens["n"].iloc[0] == N - 5 and primary["n"].iloc[0] == N
    assert "within protocol only" in sens["outcome"].iloc[0]
    tab = pd.read_csv(d / "report" / "tables" / "fidelity_by_arm_visit.csv")

    def cell(arm: str, visit: str, requirement: str, col: str) -> Any:
        m = tab[(tab["arm"] == arm) & (tab["visit"] == visit) & (tab["requirement"] == requirement)]
        return m[col].iloc[0]
    assert cell("active", "post", "cs_end_to_ts_post_s", "outside_limits") == 1  # P001
    assert cell("active", "post", "cs_end_to_ts_post_s", "max") == pytest.approx(LATE_HAND_OUT_S + 2.0, abs=1e-3)
    assert cell("placebo", "baseline", "acclimatization_skipped", "outside_limits") == 1  # P002
    assert cell("active", "post", "cs_bath_max_c", "max") == pytest.approx(BATH_TO_C)  # P003
    assert cell("placebo", "post", "cs_immersion_s", "outside_limits") == 1  # P004
    assert cell("active", "baseline", "resume", "outside_limits") == 1  # P005
    assert cell("active", "baseline", "within_protocol", "within_limits") == 5
    outside = pd.read_csv(d / "report" / "tables" / "fidelity_sessions_outside.csv")
    assert {"P001", "P002", "P003", "P004", "P005"} <= set(outside["participant"])


def test_bids_and_redcap_carry_the_fidelity_fields(trial: dict[str, Any], tmp_path: Path) -> None:
    from cpm_session.export.bids import export_bids
    from cpm_session.export.redcap import export_redcap

    export_bids(trial["data"], tmp_path / "bids")
    ses = tmp_path / "bids" / "sub-P001" / "sub-P001_sessions.tsv"
    rows = list(csv.DictReader(ses.open(encoding="utf-8"), delimiter="\t"))
    post = next(r for r in rows if r["visit"] == "post")
    assert float(post["fid_cs_to_ts_post_s"]) == pytest.approx(LATE_HAND_OUT_S + 2.0, abs=1e-3)
    assert post["fid_cs_to_ts_post_s_ok"] == "false" and post["fidelity_within_protocol"] == "false"
    side = json.loads(ses.with_suffix(".json").read_text(encoding="utf-8"))
    assert side["fid_cs_to_ts_post_s"]["Units"] == "s" and "TS_post" in side["fid_cs_to_ts_post_s"]["Description"]
    assert side["fid_bath_max_c"]["Units"] == "oC" and set(side["fidelity_within_protocol"]["Levels"]) >= {"true", "false"}
    export_redcap(trial["data"], tmp_path / "redcap")
    dd = list(csv.reader((tmp_path / "redcap" / "data_dictionary.csv").open(encoding="utf-8")))
    names = {r[0]: r for r in dd[1:]}
    assert names["fid_cs_to_ts_post_s"][7] == "number" and "TS_post" in names["fid_cs_to_ts_post_s"][6]
    assert names["fidelity_within_protocol"][3] == "yesno" and names["fidelity_within_protocol"][2] == "Protocol fidelity"
    assert all(len(n) <= 26 for n in names)
    recs = list(csv.DictReader((tmp_path / "redcap" / "data.csv").open(encoding="utf-8")))
    p1 = next(r for r in recs if r.get("record_id") == "P001" and r.get("redcap_event_name", "").startswith("post")
              and r.get("fid_cs_to_ts_post_s"))
    assert float(p1["fid_cs_to_ts_post_s"]) == pytest.approx(LATE_HAND_OUT_S + 2.0, abs=1e-3)
    assert p1["fid_cs_to_ts_post_s_ok"] == "0" and p1["fidelity_within_protocol"] == "0"


# ---------------------------------------------------------------------------------------------- protocol file
@pytest.mark.parametrize(("key", "value", "expected", "found"), [
    ("max_cs_to_ts_post_s", float("nan"), "finite", "nan"),
    ("max_cs_to_ts_post_s", 0.0, "greater than 0", "0.0"),
    ("bath_range_c", [4.0, 1.0], "min below max", "[4.0, 1.0]"),
    ("bath_range_c", [1.0, 99.0], "less than or equal to 40", "99.0"),
    ("warn_before_s", 30.0, "below max_cs_to_ts_post_s", "30.0"),
    ("max_pauses", -1, "greater than or equal to 0", "-1"),
])
def test_fidelity_limits_are_validated(protocol_data: dict[str, Any], key: str, value: Any, expected: str,
                                       found: str) -> None:
    protocol_data["fidelity"][key] = value
    with pytest.raises(ProtocolFileError) as e:
        parse_protocol(protocol_data, "lab.toml")
    msg = str(e.value)
    assert msg.startswith("lab.toml") and f"fidelity.{key}" in msg and expected in msg and found in msg


def test_fidelity_table_is_required(protocol_data: dict[str, Any]) -> None:
    del protocol_data["fidelity"]
    with pytest.raises(ProtocolFileError, match="'fidelity'"):
        parse_protocol(protocol_data, "lab.toml")


def test_compute_from_a_hand_written_log() -> None:
    """A minimal log: the numbers come from the events, not from any running session."""
    plan = load_protocol(THERMAL)
    from cpm_session.record.fidelity import fidelity_plan

    p = fidelity_plan(plan)
    evs = [{"seq": 0, "t": 0.0, "event": "session_start", "thermode_cap_c": 49.0},
           {"t": 1.0, "event": "phase_enter", "phase": "cold_pressor"},
           {"t": 10.0, "event": "cold_pressor_start", "planned_s": 60.0},
           {"t": 40.0, "event": "rating_prompt", "phase": "cs"},
           {"t": 70.5, "event": "cold_pressor_end", "duration_s": 60.0, "start_t": 10.0, "end_t": 70.0},
           {"t": 70.5, "event": "phase_exit", "phase": "cold_pressor", "output": {}},
           {"t": 70.5, "event": "phase_enter", "phase": "ts_post"},
           {"t": 79.0, "event": "stimulus", "phase": "ts_post", "trial": 1, "modality": "thermal", "target_c": 45.0,
            "duration_s": 6.3, "planned_onset_t": 79.0, "onset_t": 79.0, "onset_error_s": 0.0}]
    rows = [(10.0 + i, "bath", "bath_c", 2.0 + i / 100) for i in range(61)] + [(80.0, "bath", "bath_c", 9.0)]
    f = compute_fidelity(evs, rows, p, status="completed")
    r = f["requirements"]
    assert r["cs_end_to_ts_post_s"]["actual"] == 9.0 and r["cs_end_to_ts_post_s"]["within_limits"] is True
    assert r["cs_bath_max_c"]["actual"] == 2.6 and r["cs_bath_min_c"]["actual"] == 2.0 and r["cs_bath_min_c"]["n"] == 61
    assert r["cs_rating_time_s"]["actual"] == 30.0
    assert r["acclimatization_s"]["status"] == "not_measured" and r["acclimatization_s"]["actual"] is None
    assert r["ts_post_delivered_error"]["status"] == "not_measured"


def test_a_pause_is_one_deviation_not_a_late_onset_too() -> None:
    """A pause inside the TS_pre block delays every later onset by the paused time: the pause is reported
    (pauses), the onsets and intervals are not (they kept the plan once the pause is taken out)."""
    from cpm_session.record.fidelity import fidelity_plan

    p = fidelity_plan(load_protocol(THERMAL))

    def stim(trial: int, planned: float, onset: float) -> dict[str, Any]:
        return {"t": onset, "event": "stimulus", "phase": "ts_pre", "trial": trial, "modality": "thermal",
                "target_c": 45.0, "duration_s": 6.3, "planned_onset_t": planned, "onset_t": onset,
                "onset_error_s": onset - planned}
    evs = [{"t": 0.0, "event": "session_start", "thermode_cap_c": 49.0},
           {"t": 98.0, "event": "phase_enter", "phase": "ts_pre"},
           stim(1, 100.0, 100.0),
           {"t": 115.0, "event": "pause", "phase": "ts_pre"}, {"t": 140.0, "event": "resume", "paused_s": 25.0},
           stim(2, 130.0, 155.0), stim(3, 160.0, 185.2)]
    f = compute_fidelity(evs, [], p, status="completed")
    r = f["requirements"]
    assert r["ts_pre_onset_error_s"]["actual"] == pytest.approx(0.2) and r["ts_pre_onset_error_s"]["within_limits"]
    assert r["ts_pre_interval_error_s"]["value"] == pytest.approx(0.2)
    assert r["pauses"]["actual"] == 1 and r["pauses"]["deviation"] == 25.0 and r["pauses"]["within_limits"] is False
    assert [t["paused_before_onset_s"] for t in f["trials"]] == [0.0, 25.0, 25.0]
    assert "pauses" in f["outside_limits"]
    assert "ts_pre_onset_error_s" not in f["outside_limits"] and "ts_pre_interval_error_s" not in f["outside_limits"]


def test_cue_matches_the_session() -> None:
    from cpm_session.record.fidelity import CUE_S
    from cpm_session.session.stimuli import CUE_S as SESSION_CUE_S

    assert CUE_S == SESSION_CUE_S


def test_other_logged_deviations() -> None:
    """A protocol override or a calibration problem breaks the protocol; a CS rated not noxious is listed only."""
    from cpm_session.record.fidelity import fidelity_plan

    p = fidelity_plan(load_protocol(THERMAL))
    base = [{"t": 0.0, "event": "session_start", "thermode_cap_c": 49.0},
            {"t": 1.0, "event": "deviation", "kind": "cs_not_noxious", "detail": "hand rating 10 below 20"}]
    r = compute_fidelity(base, [], p, status="completed")["requirements"]["other_deviations"]
    assert r["actual"] == 1 and r["within_limits"] is True and r["which"] == ["cs_not_noxious: hand rating 10 below 20"]
    evs = [*base, {"t": 2.0, "event": "deviation", "kind": "protocol_mismatch", "detail": "new file"}]
    r = compute_fidelity(evs, [], p, status="completed")["requirements"]["other_deviations"]
    assert r["actual"] == 2 and r["deviation"] == 1 and r["within_limits"] is False


def test_staff_view_shows_the_countdown_and_the_warning(trial: dict[str, Any]) -> None:
    """What the staff view (rich panel) draws from the status the session sent while TS_post was late."""
    from rich.console import Console

    from cpm_session.ui.status import StatusView

    hist = trial["uis"][("P001", "post")].history
    near = next(s for _t, s in hist if "TS_post must start within" in str(s.get("warning", "")))
    view = StatusView(enabled=False)
    view.update(near)
    console = Console(record=True, width=120, color_system=None)
    console.print(view.render())
    text = console.export_text()
    assert "TS_post must start within" in text and "0:05" in text and "WARNING: TS_post must start within 5 s" in text
