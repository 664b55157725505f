"""`cpm-session simulate-trial`: randomization → simulated visits → ANCOVA report, with a known drug effect."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cpm_session.cli import main
from cpm_session.record.folder import iter_session_dirs


@pytest.mark.slow
def test_a_large_drug_effect_is_found_and_the_pipeline_runs(tmp_path: Path) -> None:
    out = tmp_path / "trial"
    assert main(["simulate-trial", "--out", str(out), "--n", "12", "--drug-effect", "0.6", "--seed", "3"]) == 0
    res = pd.read_csv(out / "report" / "tables" / "results.csv")
    row = res[res["outcome"].str.startswith("CPM_abs")].iloc[0]
    true_diff = 0.6 * 60  # the drug raises the CPM effect by 0.6 x TS_pre (TS_pre is about 60)
    assert row["ci_low"] > 0 and row["ci_low"] <= true_diff <= row["ci_high"]
    assert (out / "report" / "report.html").exists() and (out / "allocation.csv").exists()
    assert len(list(iter_session_dirs(out / "data"))) == 24
    assert main(["simulate-trial", "--out", str(out), "--n", "4"]) == 2  # never writes into a used folder


def test_a_baseline_that_does_not_complete_ends_that_participants_trial(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A power replicate failed whole when one baseline calibration found no TS ('participant has no
    completed baseline'); now that participant has no post visit, as in the lab, and the rest go on."""
    import cpm_session.sim.trial as trial_mod
    from cpm_session.resources import resolve

    real_plan = trial_mod.plan_trial

    def plan(*a: object, **k: object) -> tuple[list[trial_mod.SimulatedParticipant], int]:
        people, alloc = real_plan(*a, **k)  # type: ignore[arg-type]
        people[0].pain60_c = 55.0  # rated far below 60 even at the cap: the calibration cannot find a TS
        return people, alloc

    monkeypatch.setattr(trial_mod, "plan_trial", plan)
    t = trial_mod.simulate_trial(tmp_path / "t", 4, ("drug", "placebo"), 0.0, 11,
                                 protocol_path=resolve("protocols/cpm-thermal.toml"))
    first, *rest = t.participants
    assert first.dropped.startswith("baseline ") and first.post_dir is None and first.baseline_dir is not None
    assert all(not p.dropped and p.post_dir is not None for p in rest)
    assert len(list(iter_session_dirs(t.data_dir))) == 7
