"""`cpm-session power`: whole simulated trials through the engine, on local cores or a Dask cluster."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cpm_session.cli import main
from cpm_session.resources import resolve
from cpm_session.sim.power import (
    PowerError,
    ReplicateTask,
    make_tasks,
    markdown_table,
    run_power,
    summarize_replicates,
    write_outputs,
)

PROTOCOL = str(resolve("protocols/cpm-thermal.toml"))


def test_cell_summary_rates_and_monte_carlo_errors() -> None:
    rows = []
    for rep in range(10):  # effect 0: 2 of 10 rejections, 9 of 10 intervals hold 0
        rows.append({"n_per_arm": 5, "effect": 0.0, "rep": rep, "ok": True, "error": "", "estimate": rep - 4.5, "se": 1.0,
                     "ci_low": -1.0 if rep else 0.5, "ci_high": 1.0, "p": 0.01 if rep < 2 else 0.5, "true_diff": 0.0,
                     "n_analysed": 10, "seconds": 1.0})
    rows.append({**rows[0], "rep": 10, "ok": False, "error": "AnalysisError: too few"})
    cells = summarize_replicates(pd.DataFrame(rows))
    c = cells.iloc[0]
    assert (c["reps"], c["reps_ok"], c["failed"], c["what"]) == (11, 10, 1, "type-I error")
    assert c["rejection_rate"] == pytest.approx(0.2) and c["rejection_mcse"] == pytest.approx(math.sqrt(0.2 * 0.8 / 10))
    assert c["coverage"] == pytest.approx(0.9) and c["coverage_mcse"] == pytest.approx(math.sqrt(0.9 * 0.1 / 10))
    assert c["bias"] == pytest.approx(0.0) and c["empirical_se"] == pytest.approx(np.std(np.arange(10), ddof=1))
    assert "| 5 | 0 | type-I error | 20.0 % ± 12.6 | 90.0 % ± 9.5 |" in markdown_table(cells)


def test_tasks_have_independent_reproducible_seeds() -> None:
    tasks = make_tasks([3, 4], [0.0, 0.2], 5, 7, PROTOCOL)
    assert len(tasks) == 20
    states = [tuple(t.seed_sequence().generate_state(4)) for t in tasks]
    assert len(set(states)) == 20
    again = make_tasks([4], [0.0, 0.2], 5, 7, PROTOCOL)  # a cell's replicates do not depend on the other cells
    assert [tuple(t.seed_sequence().generate_state(4)) for t in again] == states[10:]
    # nor on which other effects are listed, or their order: a cell is named by its effect's value
    alone = make_tasks([4], [0.2], 5, 7, PROTOCOL)
    assert [tuple(t.seed_sequence().generate_state(4)) for t in alone] == states[15:]
    swapped = make_tasks([4], [0.2, 0.0], 5, 7, PROTOCOL)
    assert [tuple(t.seed_sequence().generate_state(4)) for t in swapped] == states[15:] + states[10:15]
    with pytest.raises(PowerError, match="differ"):
        make_tasks([4], [0.1, 0.1 + 1e-9], 5, 7, PROTOCOL)
    for bad, msg in ((([1], [0.0], 5, 1), "at least 2"), (([3], [0.0], 0, 1), "--reps"),
                     (([3], [2.0], 5, 1), "between -1 and 1"), (([3], [0.0], 5, -1), "--seed")):
        with pytest.raises(PowerError, match=msg):
            make_tasks(*bad, PROTOCOL)  # type: ignore[arg-type]


def test_power_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import cpm_session.sim.power as power

    assert main(["power", "--n", "ten", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--n must be a comma-separated list of ints" in err
    monkeypatch.setattr(power, "DASK_CONNECT_TIMEOUT_S", 2.0)
    assert main(["power", "--n", "3", "--effect", "0", "--reps", "1", "--scheduler", "tcp://127.0.0.1:9",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cpm-session power: error: cannot connect to the Dask scheduler at tcp://127.0.0.1:9")
    assert "Traceback" not in err


@pytest.mark.slow
def test_local_cores_and_a_two_worker_local_cluster_give_the_same_replicates(tmp_path: Path) -> None:
    from dask.distributed import LocalCluster

    grid = dict(ns=[3], effects=[0.0, 0.5], reps=2, seed=11, protocol_path=PROTOCOL)
    local = run_power(**grid, workers=2)  # type: ignore[arg-type]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        dask = run_power(**grid, scheduler=cluster.scheduler_address)  # type: ignore[arg-type]
    assert "2 worker(s)" in dask.backend and "2 process(es)" in local.backend
    assert local.replicates["ok"].all() and dask.replicates["ok"].all(), local.replicates["error"].tolist()
    cols = ["n_per_arm", "effect", "rep", "estimate", "ci_low", "ci_high", "p", "true_diff"]
    pd.testing.assert_frame_equal(local.replicates[cols], dask.replicates[cols])
    big = local.replicates[local.replicates["effect"] == 0.5]
    assert (big["true_diff"] > 20).all() and (big["estimate"] > 10).all()  # 0.5 x TS_pre of about 60
    assert (local.replicates[local.replicates["effect"] == 0.0]["true_diff"] == 0).all()
    paths = write_outputs(dask, tmp_path / "out")
    assert pd.read_csv(paths["cells"])["reps_ok"].tolist() == [2, 2]
    assert paths["curve"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Dask scheduler" in paths["markdown"].read_text(encoding="utf-8")


@pytest.mark.slow
def test_power_command_writes_tables_and_curve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pw"
    assert main(["power", "--n", "2,3", "--effect", "0", "--reps", "1", "--workers", "1", "--seed", "5",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "type-I error" in text and "replicate trials in" in text
    for name in ("power.csv", "power.md", "replicates.csv", "power_curve.png"):
        assert (out / name).exists(), name
    reps = pd.read_csv(out / "replicates.csv")
    assert reps["ok"].all() and list(reps["n_analysed"]) == [4, 6]
    task = ReplicateTask(2, 0.0, 0, 5, PROTOCOL)
    from cpm_session.sim.trial import power_replicate

    assert power_replicate(task)["estimate"] == pytest.approx(reps.iloc[0]["estimate"])  # reproducible
