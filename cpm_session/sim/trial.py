"""Simulated two-arm trials through the real engine (headless, virtual clock): `simulate-trial` and `power`.

Every random number of a trial comes from one `numpy.random.SeedSequence`: the allocation list from
its first child, each participant from its own child, which spawns the participant's truth, the
baseline visit and the post visit. So two trials with different seeds share nothing, and every
participant-visit has its own independent stream whatever its position in the list.

(Simulation code: it belongs with the simulated participant; the lead moves it to `sim/` in the
session-layer split. It is never imported by the real-hardware path.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cpm_session.analysis.randomize import permuted_blocks, write_allocations
from cpm_session.errors import CpmError

BLOCK_SIZE = 4
BASE_CPM_MEAN = 0.25
"""Mean baseline CPM effect (fraction of TS_pre removed by conditioning); CPM varies a lot between people."""
BASE_CPM_SD = 0.12
BASE_CPM_RANGE = (-0.2, 0.7)
PAIN60_RANGE_C = (43.0, 48.0)
SEVERITY_RANGE = (0.3, 0.8)


def seed_int(ss: np.random.SeedSequence) -> int:
    """Return a non-negative 63-bit integer drawn from `ss` (the engine and the session header take an int)."""
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def as_seed_sequence(seed: int | np.random.SeedSequence) -> np.random.SeedSequence:
    """Return `seed` as a SeedSequence (an int becomes SeedSequence(int))."""
    return seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(int(seed))


@dataclass
class SimulatedParticipant:
    """One simulated participant of a trial: arm, true parameters and the seeds of its two visits."""

    participant: str
    arm: str
    pain60_c: float
    base_cpm_effect: float
    post_cpm_effect: float
    severity: float
    baseline_seed: int
    post_seed: int
    baseline_dir: Path | None = None
    post_dir: Path | None = None
    dropped: str = ""
    """Why the participant has no post visit ('' when both ran): a baseline that did not complete (e.g. a
    calibration that found no TS) ends the participant's trial, as it would in the lab."""


@dataclass
class SimulatedTrial:
    """Where a simulated trial was written and what was true in it."""

    out_dir: Path
    data_dir: Path
    allocation_path: Path
    treatment: str
    control: str
    drug_effect: float
    participants: list[SimulatedParticipant] = field(default_factory=list)


def plan_trial(n: int, arms: tuple[str, str], drug_effect: float,
               seed: int | np.random.SeedSequence) -> tuple[list[SimulatedParticipant], int]:
    """Return the participants of a trial (arm, truth, visit seeds) and the allocation seed, all from `seed`.

    `arms` is (treatment, control); the treatment arm's CPM effect rises by `drug_effect` (a fraction of
    TS_pre) at the post visit, the control arm's by nothing.
    """
    if n < 2:
        raise CpmError(f"a simulated trial needs at least 2 participants, got {n}")
    treatment, control = arms
    root = as_seed_sequence(seed)
    alloc_ss, *people_ss = root.spawn(1 + n)
    alloc_seed = seed_int(alloc_ss)
    alloc = permuted_blocks(n, [treatment, control], BLOCK_SIZE, alloc_seed)
    out: list[SimulatedParticipant] = []
    for a, pss in zip(alloc, people_ss, strict=True):
        truth_ss, base_ss, post_ss = pss.spawn(3)
        rng = np.random.default_rng(truth_ss)
        base_effect = float(np.clip(rng.normal(BASE_CPM_MEAN, BASE_CPM_SD), *BASE_CPM_RANGE))
        pain60 = float(rng.uniform(*PAIN60_RANGE_C))
        severity = float(rng.uniform(*SEVERITY_RANGE))
        post_effect = base_effect + (drug_effect if a.arm == treatment else 0.0)
        out.append(SimulatedParticipant(a.participant, a.arm, pain60, base_effect, post_effect, severity,
                                        seed_int(base_ss), seed_int(post_ss)))
    return out, alloc_seed


def simulate_trial(out_dir: str | Path, n: int, arms: tuple[str, str], drug_effect: float,
                   seed: int | np.random.SeedSequence, *, protocol_path: str | Path,
                   station_path: str | Path = "hardware/sim.toml") -> SimulatedTrial:
    """Randomize `n` participants to `arms` = (treatment, control) and run both visits of each through the
    real engine (headless, virtual clock) into `out_dir`/data; write `out_dir`/allocation.csv (with the
    control recorded in its role column). Return what was simulated, with the true parameters. A participant
    whose baseline visit does not complete has no post visit (`dropped` says why), as in the lab."""
    from cpm_session.config.protocol import load_protocol
    from cpm_session.config.station import load_station
    from cpm_session.resources import resolve
    from cpm_session.sim.participant import ParticipantTruth
    from cpm_session.sim.world import run_visit

    out = Path(out_dir)
    treatment, control = arms
    if not treatment or not control or treatment == control:
        raise CpmError(f"--arms needs two different names (treatment,control), got {arms}")
    people, alloc_seed = plan_trial(n, arms, drug_effect, seed)
    protocol, station = load_protocol(resolve(protocol_path)), load_station(resolve(station_path))
    out.mkdir(parents=True, exist_ok=True)
    alloc_path = out / "allocation.csv"
    write_allocations(permuted_blocks(n, [treatment, control], BLOCK_SIZE, alloc_seed), alloc_path, control)
    trial = SimulatedTrial(out, out / "data", alloc_path, treatment, control, drug_effect, people)
    for p in people:
        base = ParticipantTruth(pain60_c=p.pain60_c, cpm_effect=p.base_cpm_effect, severity=p.severity)
        got = run_visit(protocol, station, data_dir=trial.data_dir, participant=p.participant, visit="baseline",
                        seed=p.baseline_seed, truth=base)
        p.baseline_dir = got.session_dir
        if got.status != "completed":  # no calibrated TS to repeat: the participant leaves the trial
            p.dropped = f"baseline {got.status}" + (f": {got.message}" if got.message else "")
            continue
        post = ParticipantTruth(pain60_c=p.pain60_c, cpm_effect=p.post_cpm_effect, severity=p.severity)
        p.post_dir = run_visit(protocol, station, data_dir=trial.data_dir, participant=p.participant, visit="post",
                               seed=p.post_seed, truth=post).session_dir
    return trial


def expected_heat_rating(pain60_c: float, temp_c: float) -> float:
    """Return the simulated participant's mean unconditioned rating (0-100) of a heat stimulus at `temp_c`."""
    from cpm_session.sim.participant import ParticipantTruth

    return float(ParticipantTruth(pain60_c=pain60_c).expected_heat(temp_c))


def power_replicate(task: Any) -> dict[str, Any]:
    """Run one power replicate (`task`: an analysis.power.ReplicateTask) and return its result row.

    A whole trial of `task.n_per_arm` participants per arm through the engine in a temporary folder
    (no per-event fsync: the folder is thrown away), then the primary ANCOVA. The true adjusted
    difference is the drug effect times the mean expected TS_pre (0-100) of every participant at the
    post visit's TS temperature. Never raises: a failure is a row with ok False and the error.
    """
    import tempfile
    import time
    import warnings

    from cpm_session.analysis.summarize import summarize
    from cpm_session.analysis.trial import analyze_trial, read_allocation
    from cpm_session.record.folder import scratch_writes
    from cpm_session.sim.power import replicate_row

    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="cpm-power-") as tmp, scratch_writes(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tiny trials make statsmodels warn; the row carries the numbers
            trial = simulate_trial(Path(tmp), 2 * task.n_per_arm, task.arms, task.effect, task.seed_sequence(),
                                   protocol_path=task.protocol_path)
            summary = summarize(trial.data_dir, check_integrity=False)
            res = analyze_trial(summary.table, read_allocation(trial.allocation_path))
            p = res.primary()
            if p is None:
                return replicate_row(task, error="; ".join(res.skipped) or "primary ANCOVA not fitted",
                                     seconds=time.perf_counter() - t0)
            post = summary.table[summary.table["visit"] == "post"].set_index("participant")["ts_intensity"]
            truth = {q.participant: q.pain60_c for q in trial.participants}
            expected = [expected_heat_rating(truth[pid], float(t)) for pid, t in post.items() if pid in truth]
            true_diff = task.effect * float(np.mean(expected)) if expected else float("nan")
            react: dict[str, float] = {}
            if len(res.reactivation):
                share = res.reactivation.set_index("arm")["share_reactivated"]
                react = {"reactivated_treatment": float(share.get(trial.treatment, np.nan)),
                         "reactivated_control": float(share.get(trial.control, np.nan))}
            tests = res.category_tests
            if len(tests):
                rt = tests[tests["category"].str.startswith("reactivated")]
                if len(rt):
                    react["reactivation_fisher_p"] = float(rt.iloc[0]["fisher_p"])
            return replicate_row(task, ok=True, estimate=p.estimate, se=p.se, ci_low=p.ci_low, ci_high=p.ci_high,
                                 p=p.p, true_diff=true_diff, n_analysed=p.n, seconds=time.perf_counter() - t0,
                                 dropouts=sum(1 for q in trial.participants if q.dropped), **react)
    except (CpmError, OSError, ValueError, KeyError) as e:
        return replicate_row(task, error=f"{type(e).__name__}: {e}", seconds=time.perf_counter() - t0)
