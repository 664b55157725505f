"""The trial analysis: allocation (blinded or not), session choice, reactivation, reliability, and one
simulated trial through the real engine from raw folders to the report in one command."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cpm_session.analysis.trial import AllocationError, analyze_trial, read_allocation, select_sessions
from cpm_session.cli import main

DRUG_EFFECT = 0.20  # fraction of TS_post removed on top of the participant's own CPM
TRUE_DIFF = DRUG_EFFECT * 60.0  # TS is calibrated to Pain-60, so the expected CPM_abs difference is 12 points
N = 40
ABORT_POST = (5, 18, 31)  # participant indices whose post visit is stopped with Escape
ABORT_BASELINE_THEN_REPEAT = 9


def summary_row(pid: str, visit: str, status: str, cpm: float | None, cat: str | None, start: str,
                pre: tuple[float, float, float] = (60.0, 62.0, 58.0), **kw: object) -> dict[str, object]:
    row: dict[str, object] = {
        "participant": pid, "visit": visit, "status": status, "cpm_abs": cpm, "cpm_pct": None if cpm is None else cpm / 60 * 100,
        "cpm_category": cat, "ts_pre": float(np.mean(pre)), "ts_post": None if cpm is None else float(np.mean(pre)) - cpm,
        "start_utc": start, "path": f"/d/{pid}/{visit}-{start}", "missing": "", "n_deviations": 0, "deviations": "",
        "amended": False, "amendments": "", "resumed": False, "ts_pre_1": pre[0], "ts_pre_2": pre[1], "ts_pre_3": pre[2]}
    row.update(kw)
    return row


def write_alloc(path: Path, rows: list[tuple[str, str]], header: str = "participant,arm") -> Path:
    path.write_text(header + "\n" + "".join(f"{p},{a}\n" for p, a in rows), encoding="utf-8")
    return path


def test_allocation_unblinded_blinded_and_codes(tmp_path: Path) -> None:
    f = write_alloc(tmp_path / "a.csv", [("P001", "placebo"), ("P002", "milnacipran"), ("P003", "placebo")])
    a = read_allocation(f, control="placebo")
    assert not a.blinded and a.reference == "placebo" and a.arms == ["milnacipran", "placebo"]
    b = read_allocation(f, blinded=True)
    assert b.blinded and list(b.table["arm"]) == ["A", "B", "A"] and b.reference == "A"
    c = read_allocation(write_alloc(tmp_path / "c.csv", [("P001", "k7"), ("P002", "x2")], "participant,code"))
    assert c.blinded and list(c.table["arm"]) == ["A", "B"]
    with pytest.raises(AllocationError, match="more than once"):
        read_allocation(write_alloc(tmp_path / "d.csv", [("P001", "a"), ("P001", "b")]))
    with pytest.raises(AllocationError, match="'arm' or 'code'"):
        read_allocation(write_alloc(tmp_path / "e.csv", [("P001", "a")], "participant,group"))
    with pytest.raises(AllocationError, match="cannot read"):
        read_allocation(tmp_path / "nope.csv")


def test_select_sessions_prefers_latest_completed() -> None:
    df = pd.DataFrame([
        summary_row("P001", "baseline", "aborted", None, None, "20260101T090000Z"),
        summary_row("P001", "baseline", "completed", 8.0, "inhibition", "20260102T090000Z"),
        summary_row("P001", "baseline", "completed", 9.0, "inhibition", "20260103T090000Z"),
        summary_row("P002", "baseline", "running", None, None, "20260101T090000Z"),
    ])
    chosen, notes = select_sessions(df, "baseline")
    assert list(chosen["participant"]) == ["P001"] and chosen.iloc[0]["cpm_abs"] == 9.0
    reasons = sorted((n["participant"], n["status"], str(n["reason"])[:20]) for n in notes)
    assert reasons == [("P001", "aborted", "not used: another se"), ("P001", "completed", "not used: another se"),
                       ("P002", "running", "session running; no ")]


def test_reactivation_and_retest_sample(tmp_path: Path) -> None:
    rows = []
    # arm drug: 3 without inhibition at baseline, 2 of them inhibit after; arm placebo: 2 without, 0 after
    spec = {"P001": ("none", "inhibition"), "P002": ("facilitation", "inhibition"), "P003": ("none", "none"),
            "P004": ("inhibition", "inhibition"), "P005": ("none", "none"), "P006": ("facilitation", "none"),
            "P007": ("inhibition", "none"), "P008": ("inhibition", "inhibition")}
    cpm = {"inhibition": 12.0, "none": 1.0, "facilitation": -9.0}
    rng = np.random.default_rng(0)
    for pid, (cb, cp) in spec.items():
        rows.append(summary_row(pid, "baseline", "completed", cpm[cb] + rng.normal(), cb, "20260101T090000Z",
                                pre=tuple(rng.normal(60, 3, 3)), cpm_srd95_abs=5.0))
        rows.append(summary_row(pid, "post", "completed", cpm[cp] + rng.normal(), cp, "20260201T090000Z",
                                pre=tuple(rng.normal(60, 3, 3)), cpm_srd95_abs=5.0))
    alloc = write_alloc(tmp_path / "a.csv", [(p, "drug" if i < 4 else "placebo") for i, p in enumerate(spec)])
    res = analyze_trial(pd.DataFrame(rows), read_allocation(alloc, control="placebo"))
    assert res.category_threshold == 5.0 and "protocol" in res.category_threshold_source
    re = res.reactivation.set_index("arm")
    assert re.loc["drug", ["n_no_inhibition_baseline", "n_reactivated"]].tolist() == [3, 2]
    assert re.loc["drug", "share_reactivated"] == pytest.approx(2 / 3)
    assert re.loc["placebo", ["n_no_inhibition_baseline", "n_reactivated"]].tolist() == [2, 0]
    assert set(res.retest["n"]) == {4} and "placebo only" in res.retest_sample
    assert all("(positive = inhibition)" in m for m in res.retest["measure"] if m.startswith("CPM"))
    blinded = analyze_trial(pd.DataFrame(rows), read_allocation(alloc, blinded=True))
    assert set(blinded.retest["n"]) == {8} and "blinded" in blinded.retest_sample
    assert set(blinded.reactivation["arm"]) == {"A", "B"}
    assert set(res.within["visit"]) == {"baseline", "post"} and set(res.within["k_trials"]) == {3}


# ------------------------------------------------------------------------------------- the simulated trial
@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    engine = pytest.importorskip("cpm_session.sim.world")
    from cpm_session.analysis.randomize import permuted_blocks, write_allocations
    from cpm_session.clock import VirtualClock
    from cpm_session.config.protocol import load_protocol
    from cpm_session.config.station import load_station
    from cpm_session.sim.participant import ParticipantTruth
    from cpm_session.ui.headless import HeadlessUI

    root = Path(__file__).resolve().parents[2]
    d = tmp_path_factory.mktemp("trial")
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):  # the engine fsyncs every event: RAM-backed is much faster
        d = Path(tempfile.mkdtemp(prefix="cpm-trial-", dir=shm))
    alloc = permuted_blocks(N, ["milnacipran", "placebo"], 4, seed=11)
    write_allocations(alloc, d / "alloc.csv", "placebo")
    protocol = load_protocol(root / "protocols" / "cpm-thermal.toml")
    station = load_station(root / "hardware" / "sim.toml")
    rng = np.random.default_rng(5)
    t0 = time.perf_counter()

    def visit(i: int, vis: str, truth: ParticipantTruth, escape_at: float | None = None, seed_off: int = 0) -> None:
        clock = VirtualClock()
        ui = HeadlessUI(clock)
        if escape_at is not None:
            ui.press("escape", escape_at)
        engine.run_visit(protocol, station, data_dir=d / "data", participant=alloc[i].participant, visit=vis,
                         seed=4 * i + seed_off, truth=truth, clock=clock, ui=ui)

    for i, a in enumerate(alloc):
        own = float(rng.normal(0.05, 0.12))
        p60 = float(rng.normal(45.0, 1.0))
        drug = DRUG_EFFECT if a.arm == "milnacipran" else 0.0
        if i == ABORT_BASELINE_THEN_REPEAT:
            visit(i, "baseline", ParticipantTruth(pain60_c=p60, cpm_effect=own), escape_at=640.0, seed_off=2)
            time.sleep(1.05)  # folder names carry a one-second UTC stamp
        visit(i, "baseline", ParticipantTruth(pain60_c=p60, cpm_effect=own))
        visit(i, "post", ParticipantTruth(pain60_c=p60, cpm_effect=own + drug),
              escape_at=640.0 if i in ABORT_POST else None, seed_off=1)
    yield {"dir": d, "alloc": alloc, "gen_s": time.perf_counter() - t0}
    if str(d).startswith("/dev/shm/"):
        shutil.rmtree(d, ignore_errors=True)


def test_simulated_trial_to_report_in_one_command(trial: dict[str, object], capsys: pytest.CaptureFixture[str]) -> None:
    d = Path(str(trial["dir"]))
    t0 = time.perf_counter()
    rc = main(["analyze", str(d / "data"), "--allocation", str(d / "alloc.csv"), "--report", str(d / "report")])
    took = time.perf_counter() - t0
    out = capsys.readouterr().out
    assert rc == 0, out
    assert took < 30, f"analyze took {took:.1f} s"
    res = pd.read_csv(d / "report" / "tables" / "results.csv")
    prim = res.iloc[0]
    assert prim["outcome"].startswith("CPM_abs") and "(positive = inhibition)" in prim["outcome"]
    assert prim["comparison"] == "milnacipran - placebo"
    assert prim["n"] == N - len(ABORT_POST)
    assert prim["ci_low"] < TRUE_DIFF < prim["ci_high"], prim.to_dict()
    assert prim["adjusted_difference"] > 0 and prim["p"] < 0.05
    assert res.iloc[1]["outcome"].startswith("CPM_pct")
    assert {"NRS pain (0-10)", "FIQR total (0-100)", "HADS anxiety (0-21)", "HADS depression (0-21)"} <= set(res["outcome"])
    miss = pd.read_csv(d / "report" / "tables" / "missing_data.csv")
    aborted = miss[miss["status"] == "aborted"]
    assert sorted(aborted["participant"]) == sorted(
        [trial["alloc"][i].participant for i in (*ABORT_POST, ABORT_BASELINE_THEN_REPEAT)])  # type: ignore[index]
    assert (miss["reason"].str.contains("not used").sum()) == 1  # the repeated baseline's aborted first try
    html = (d / "report" / "report.html").read_text(encoding="utf-8")
    assert html.count("(positive = inhibition)") >= 6 and "data:image/png;base64," in html
    assert "milnacipran - placebo = " in html
    figs = sorted((d / "report" / "figures" / "sessions").glob("*.png"))
    assert len(figs) >= len(ABORT_POST) + 1
    for f in figs:
        assert f"figures/sessions/{f.name}" in html
    for name in ("sign_convention.csv", "reliability_test_retest.csv", "reliability_within_session.csv",
                 "protocol_deviations.csv", "model_01_cpm_abs.csv", "reactivation.csv", "sessions_summary.csv"):
        assert (d / "report" / "tables" / name).exists(), name
    model = pd.read_csv(d / "report" / "tables" / "model_01_cpm_abs.csv")
    assert model.loc[1, "coef"] == pytest.approx(prim["adjusted_difference"], abs=1e-9)
    retest = pd.read_csv(d / "report" / "tables" / "reliability_test_retest.csv")
    assert "placebo only" in retest.iloc[0]["sample"] and set(retest["measure"]).issuperset({"TS_pre (0-100)"})
    print(f"trial generation {trial['gen_s']:.1f} s, analyze + report {took:.1f} s")


def test_simulated_trial_blinded_shows_codes_only(trial: dict[str, object], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    d = Path(str(trial["dir"]))
    codes = tmp_path / "codes.csv"
    alloc = pd.read_csv(d / "alloc.csv")
    alloc.assign(code=alloc["arm"].map({"milnacipran": "K1", "placebo": "K2"}))[["participant", "code"]].to_csv(codes, index=False)
    for args in (["--allocation", str(codes)], ["--allocation", str(d / "alloc.csv"), "--blinded"]):
        rep = tmp_path / f"rep{len(args)}"
        assert main(["analyze", str(d / "data"), *args, "--report", str(rep), "--session-plots", "none"]) == 0
        out = capsys.readouterr().out
        html = (rep / "report.html").read_text(encoding="utf-8")
        visible = re.sub(r"base64,[A-Za-z0-9+/=]+", "", html)
        for text in (out, visible, (rep / "tables" / "results.csv").read_text(encoding="utf-8")):
            assert "milnacipran" not in text and "placebo" not in text and "K1" not in text
        assert "BLINDED" in html and "BLINDED" in out
        res = pd.read_csv(rep / "tables" / "results.csv")
        assert set(res["comparison"]) <= {"B - A"}
        retest = pd.read_csv(rep / "tables" / "reliability_test_retest.csv")
        assert set(retest["n"]) == {N - len(ABORT_POST)}
        assert not list((rep / "figures" / "sessions").glob("*.png"))


def test_analyze_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data").mkdir()
    f = write_alloc(tmp_path / "a.csv", [("P001", "placebo")])
    assert main(["analyze", str(tmp_path / "data"), "--allocation", str(f), "--control", "placebo"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cpm-session analyze: error:") and "no readable sessions" in err and "Traceback" not in err


def test_custom_visit_names_and_all_session_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import datetime as dt

    from cpm_session.sim.synth import SynthTruth, write_session

    rows = []
    for i in range(4):
        pid, arm = f"P{i + 1:03d}", ("drug" if i % 2 else "sham")
        write_session(tmp_path / "d", pid, "v1", truth=SynthTruth(cpm_effect=0.1), seed=i)
        write_session(tmp_path / "d", pid, "v2", truth=SynthTruth(cpm_effect=0.1 + (0.3 if arm == "drug" else 0.0)),
                      seed=100 + i, start=dt.datetime(2026, 2, 1, 9, tzinfo=dt.UTC))
        rows.append((pid, arm))
    alloc = write_alloc(tmp_path / "a.csv", rows)
    rep = tmp_path / "rep"
    assert main(["analyze", str(tmp_path / "d"), "--allocation", str(alloc), "--control", "sham", "--baseline-visit", "v1",
                 "--post-visit", "v2", "--report", str(rep), "--session-plots", "all"]) == 0
    out = capsys.readouterr().out
    assert "reference sham" in out and "drug - sham" in out
    res = pd.read_csv(rep / "tables" / "results.csv")
    assert res.iloc[0]["n"] == 4 and res.iloc[0]["adjusted_difference"] > 0
    assert len(list((rep / "figures" / "sessions").glob("*.png"))) == 8
    html = (rep / "report.html").read_text(encoding="utf-8")
    assert "visits v1 → v2" in html and "every session" in html
    summary = pd.read_csv(rep / "tables" / "sessions_summary.csv")
    assert set(summary["cpm_sign"]) == {"TS_pre - TS_post (positive = inhibition)"}
    model = pd.read_csv(rep / "tables" / "model_01_cpm_abs.csv")
    assert model["outcome"].str.contains(r"\(positive = inhibition\)").all()


def test_unallocated_and_sessionless_participants_are_listed(tmp_path: Path) -> None:
    rows = []
    for i in range(6):
        pid = f"P{i + 1:03d}"
        rows.append(summary_row(pid, "baseline", "completed", float(i), "none", "20260101T090000Z"))
        rows.append(summary_row(pid, "post", "completed", float(i) + (5 if i % 2 else 0), "none", "20260201T090000Z"))
    rows.append(summary_row("X999", "post", "completed", 3.0, "none", "20260201T090000Z"))
    alloc = write_alloc(tmp_path / "a.csv", [(f"P{i + 1:03d}", "drug" if i % 2 else "placebo") for i in range(7)])
    res = analyze_trial(pd.DataFrame(rows), read_allocation(alloc, control="placebo"))
    miss = res.missing.set_index(["participant", "visit"])["reason"].to_dict()
    assert miss[("X999", "")].startswith("not in the allocation file")
    assert miss[("P007", "baseline")] == "no session" and miss[("P007", "post")] == "no session"
    assert res.primary() is not None and res.primary().n == 6  # type: ignore[union-attr]
    assert "X999" not in set(res.wide["participant"])
