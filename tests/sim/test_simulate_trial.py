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
