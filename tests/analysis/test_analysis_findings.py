"""Issue 15, analysis findings 3, 4, 5: an explicit control arm, CPM categories beyond measurement error with
a Fisher test and a regression-to-the-mean caveat, a CPM_pct floor, labelled secondary outcomes, HADS bands,
and simulate-trial seeds that follow --seed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cpm_session.analysis.summarize import cpm_pct_value, summarize
from cpm_session.analysis.trial import AllocationError, analyze_trial, hads_band, read_allocation
from cpm_session.cli import main
from tests.analysis.test_analysis_trial import summary_row, write_alloc


# ------------------------------------------------------------------------------------------ finding 3: control arm
def test_the_control_arm_is_never_guessed_from_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write_alloc(tmp_path / "a.csv", [("P001", "milnacipran"), ("P002", "vehicle")])
    with pytest.raises(AllocationError, match="does not say which arm is the control: give --control ARM"):
        read_allocation(f)
    assert read_allocation(f, control="vehicle").reference == "vehicle"
    with pytest.raises(AllocationError, match="not an arm"):
        read_allocation(f, control="placebo")
    # randomize records the control: the second name of --arms, or --control
    out = tmp_path / "list.csv"
    assert main(["randomize", "--n", "8", "--arms", "milnacipran,vehicle", "--seed", "3", "-o", str(out)]) == 0
    assert "control arm vehicle" in capsys.readouterr().out
    lst = pd.read_csv(out)
    assert set(zip(lst["arm"], lst["role"], strict=True)) == {("milnacipran", "treatment"), ("vehicle", "control")}
    assert read_allocation(out).reference == "vehicle"
    with pytest.raises(AllocationError, match="disagrees"):
        read_allocation(out, control="milnacipran")
    out2 = tmp_path / "list2.csv"
    assert main(["randomize", "--n", "8", "--arms", "vehicle,milnacipran", "--control", "vehicle", "--seed", "3",
                 "-o", str(out2)]) == 0
    assert read_allocation(out2).reference == "vehicle"
    assert main(["randomize", "--n", "6", "--arms", "a,b,c", "--block-size", "3", "--seed", "1",
                 "-o", str(tmp_path / "l3.csv")]) == 2
    assert "name the control arm with --control" in capsys.readouterr().err
    assert not (tmp_path / "l3.csv").exists()
    # analyze without any control says so in one line
    (tmp_path / "data").mkdir()
    assert main(["analyze", str(tmp_path / "data"), "--allocation", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--control ARM" in err and "Traceback" not in err


@pytest.mark.slow
def test_a_real_benefit_of_milnacipran_over_vehicle_is_positive(tmp_path: Path) -> None:
    out = tmp_path / "trial"
    assert main(["simulate-trial", "--out", str(out), "--n", "12", "--arms", "milnacipran,vehicle",
                 "--drug-effect", "0.5", "--seed", "8"]) == 0
    res = pd.read_csv(out / "report" / "tables" / "results.csv").set_index("role")
    prim = res.loc["primary"]
    assert prim["comparison"] == "milnacipran - vehicle"
    assert prim["adjusted_difference"] > 0 and prim["ci_low"] > 0
    html = (out / "report" / "report.html").read_text(encoding="utf-8")
    assert "control (reference) arm vehicle" in html
    assert set(pd.read_csv(out / "allocation.csv")["role"]) == {"treatment", "control"}


# ------------------------------------------------------------------------------------------ finding 4: categories
def _rows(cpm_base: list[float], cpm_post: list[float], srd: float | None) -> list[dict[str, object]]:
    rows = []
    for i, (b, p) in enumerate(zip(cpm_base, cpm_post, strict=True)):
        pid = f"P{i + 1:03d}"
        kw = {} if srd is None else {"cpm_srd95_abs": srd}
        rows.append(summary_row(pid, "baseline", "completed", b, None, "20260101T090000Z", **kw))
        rows.append(summary_row(pid, "post", "completed", p, None, "20260201T090000Z", **kw))
    return rows


def test_categories_use_the_srd_and_are_compared_with_fisher(tmp_path: Path) -> None:
    # drug P001-P005, control P006-P010; a CPM of 10 points is inside the SRD95 16.5: no inhibition
    base = [2.0, 10.0, -4.0, 20.0, 0.0, 3.0, 10.0, -8.0, 25.0, 1.0]
    post = [30.0, 25.0, 18.0, 22.0, 10.0, 10.0, 12.0, 17.5, 30.0, 2.0]
    alloc = write_alloc(tmp_path / "a.csv", [(f"P{i + 1:03d}", "drug" if i < 5 else "control") for i in range(10)])
    res = analyze_trial(pd.DataFrame(_rows(base, post, 16.5)), read_allocation(alloc, control="control"))
    assert res.category_threshold == 16.5 and "cpm_srd95_abs" in res.category_threshold_source
    cats = res.wide.set_index("participant")
    assert cats.loc["P002", "cpm_category_srd_base"] == "none"  # was "inhibition" with the 5-point threshold
    assert cats.loc["P007", "cpm_category_srd_post"] == "none"
    re = res.reactivation.set_index("arm")
    assert re.loc["drug", ["n_no_inhibition_baseline", "n_reactivated"]].tolist() == [4, 3]
    assert re.loc["control", ["n_no_inhibition_baseline", "n_reactivated"]].tolist() == [4, 1]
    t = res.category_tests.set_index("category")
    react = t.loc[t.index.str.startswith("reactivated")].iloc[0]
    assert (react["drug_yes"], react["drug_no"], react["control_yes"], react["control_no"]) == (3, 1, 1, 3)
    assert react["fisher_p"] == pytest.approx(stats.fisher_exact([[3, 1], [1, 3]]).pvalue)
    assert react["p_adjustment"] == "none (unadjusted)"
    post_inh = t.loc["inhibition at the post visit"]
    assert (post_inh["drug_yes"], post_inh["control_yes"]) == (4, 2)
    # no protocol SRD: estimated from the control arm's test-retest, and said so
    res2 = analyze_trial(pd.DataFrame(_rows(base, post, None)), read_allocation(alloc, control="control"))
    retest = res2.retest.set_index("measure")
    srd = retest.loc[[m for m in retest.index if m.startswith("CPM_abs")][0], "SRD95"]
    assert res2.category_threshold == pytest.approx(srd) and "estimated from this trial" in res2.category_threshold_source


def test_report_labels_secondary_outcomes_complete_case_and_regression_to_the_mean(tmp_path: Path) -> None:
    from cpm_session.analysis.report import write_report
    from cpm_session.analysis.summarize import SummaryResult

    rng = np.random.default_rng(2)
    base = list(rng.normal(15, 10, 12))
    post = [b + (8 if i < 6 else 0) + rng.normal(0, 4) for i, b in enumerate(base)]
    rows = _rows(base, post, 16.5)
    for r in rows:
        r.update(nrs_pain=float(rng.integers(2, 9)), hads_anxiety=float(rng.integers(0, 22)),
                 hads_depression=float(rng.integers(0, 22)))
    rows = [r for r in rows if not (r["participant"] == "P012" and r["visit"] == "post")]  # one incomplete case
    alloc = write_alloc(tmp_path / "a.csv", [(f"P{i + 1:03d}", "drug" if i < 6 else "placebo") for i in range(12)])
    table = pd.DataFrame(rows)
    res = analyze_trial(table, read_allocation(alloc, control="placebo"))
    results = res.results_table()
    assert list(results["role"]) == ["primary"] + ["secondary"] * (len(results) - 1)
    assert results.loc[0, "outcome"].startswith("CPM_abs")
    assert set(results.loc[1:, "p_adjustment"]) == {"none (unadjusted)"}
    cc = res.complete_case[res.complete_case["outcome"].str.startswith("CPM_abs")].set_index("arm")
    assert cc.loc["placebo", ["allocated", "analysed", "left_out_missing"]].tolist() == [6, 5, 1]
    page = write_report(res, SummaryResult(table, []), tmp_path / "rep", session_plots="none")
    html = page.read_text(encoding="utf-8")
    for text in ("Primary outcome: CPM_abs", "<b>secondary</b>", "<b>unadjusted</b>", "Complete-case analysis",
                 "Regression to the mean", "Fisher exact", "HADS bands", "SRD95 of CPM_abs"):
        assert text in html, text
    bands = pd.read_csv(tmp_path / "rep" / "tables" / "hads_bands.csv")
    assert {"normal", "borderline", "abnormal"} <= set(bands.columns)
    base_anx = bands[(bands["subscale"] == "HADS anxiety") & (bands["visit"] == "baseline")]
    assert base_anx[["normal", "borderline", "abnormal", "missing"]].to_numpy().sum() == 12
    for name in ("category_tests.csv", "complete_case.csv", "hads_bands.csv"):
        assert (tmp_path / "rep" / "tables" / name).exists()


@pytest.mark.parametrize("score,band", [(0, "normal"), (7, "normal"), (7.5, "normal"), (8, "borderline"),
                                        (10, "borderline"), (10.5, "borderline"), (11, "abnormal"), (21, "abnormal")])
def test_hads_bands(score: float, band: str) -> None:
    assert hads_band(score) == band
    assert hads_band(None) is None


def test_cpm_pct_is_null_below_the_ts_pre_floor(tmp_path: Path) -> None:
    from cpm_session.sim.synth import write_session

    assert cpm_pct_value(0.5 - 3.0, 0.5, 10.0) == (None, pytest.approx(cpm_pct_value(-2.5, 0.5, 10.0)[1]))
    assert cpm_pct_value(-2.5, 0.5, 10.0)[0] is None  # was -500 %
    assert cpm_pct_value(15.0, 60.0, 10.0) == (25.0, "")
    amend = ({"field": "results.ts_pre_ratings", "old": None, "new": [0.5, 0.5, 0.5], "reason": "test", "operator": "t"},
             {"field": "results.ts_post_ratings", "old": None, "new": [3.0], "reason": "test", "operator": "t"})
    write_session(tmp_path / "d", "P001", "baseline", amendments=amend)
    row = summarize(tmp_path / "d").table.iloc[0]
    assert row["ts_pre"] == 0.5 and row["cpm_abs"] == pytest.approx(-2.5)
    assert pd.isna(row["cpm_pct"]) and "below the floor 10" in row["cpm_pct_note"]
    assert row["cpm_pct_min_ts_pre"] == 10.0 and row["cpm_srd95_abs"] == 16.5


@pytest.mark.parametrize("value", ["-1.0", "nan", "101.0", "\"ten\""])
def test_protocol_validates_the_cpm_pct_floor(tmp_path: Path, value: str) -> None:
    from cpm_session.config.protocol import load_protocol
    from cpm_session.errors import ProtocolFileError
    from cpm_session.resources import resolve

    text = resolve("protocols/cpm-thermal.toml").read_text(encoding="utf-8")
    bad = tmp_path / "p.toml"
    bad.write_text(text.replace("cpm_pct_min_ts_pre = 10.0", f"cpm_pct_min_ts_pre = {value}"), encoding="utf-8")
    with pytest.raises(ProtocolFileError, match="cpm_pct_min_ts_pre"):
        load_protocol(bad)


# ------------------------------------------------------------------------------------------ finding 5: seeds
def test_simulate_trial_seeds_follow_the_seed_sequence(tmp_path: Path) -> None:
    from cpm_session.sim.trial import plan_trial

    a, _ = plan_trial(8, ("drug", "placebo"), 0.0, 1)
    b, _ = plan_trial(8, ("drug", "placebo"), 0.0, 2)
    seeds_a = [s for p in a for s in (p.baseline_seed, p.post_seed)]
    seeds_b = [s for p in b for s in (p.baseline_seed, p.post_seed)]
    assert len(set(seeds_a)) == 16 and not set(seeds_a) & set(seeds_b)
    assert [p.baseline_seed for p in plan_trial(8, ("drug", "placebo"), 0.0, 1)[0]] == [p.baseline_seed for p in a]
    for seed in (1, 2):
        assert main(["simulate-trial", "--out", str(tmp_path / f"s{seed}"), "--n", "4", "--seed", str(seed)]) == 0
    recorded = {}
    for seed in (1, 2):
        for sj in sorted((tmp_path / f"s{seed}" / "data").glob("*/*/session.json")):
            hdr = json.loads(sj.read_text(encoding="utf-8"))
            recorded[(seed, hdr["participant"], hdr["visit"])] = hdr["seed"]
    assert len(recorded) == 16 and len(set(recorded.values())) == 16  # every participant-visit of both runs differs
    ratings = {seed: pd.read_csv(next((tmp_path / f"s{seed}" / "data" / "P001").glob("baseline-*")) / "ratings.csv")
               for seed in (1, 2)}
    assert ratings[1]["rating"].tolist() != ratings[2]["rating"].tolist()


def test_scratch_writes_skip_fsync_only_inside_the_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cpm_session.clock import VirtualClock
    from cpm_session.record.folder import SessionFolder, scratch_writes

    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    clock = VirtualClock()

    def session(name: str) -> int:
        before = len(calls)
        sf = SessionFolder.create(tmp_path, "P001", name, {}, clock.now)
        before = len(calls)  # creating the header is always durable
        for i in range(5):
            sf.log.append("note", i=i)
            sf.ratings.write({"phase": "ts_pre", "trial": i})
        n = len(calls) - before
        sf.close()
        return n

    with scratch_writes():
        assert session("scratch") == 0
    assert session("real") >= 10
