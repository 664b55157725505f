"""Calibration procedures (issue 15): the pure `make_procedure(method, cfg, ...)` loop driven directly by a
simulated participant. Safety rules (floor, step-up ceiling, cap), a TS that is always verified, the
sensitive participant, Medoc target grids, the posterior summary."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cpm_session.calibration import CalibrationResult, ProcedureBase, Settings, make_procedure
from cpm_session.config.protocol import load_protocol
from cpm_session.sim.participant import ParticipantTruth, SimParticipant
from tests.conftest import THERMAL

METHODS = ("bayes", "ascending", "staircase")
CAP = 49.0


def drive(truth: ParticipantTruth, seed: int, method: str = "bayes", cfg: Settings | None = None, cap_c: float = CAP,
          targets: list[float] | None = None) -> tuple[CalibrationResult, SimParticipant, ProcedureBase]:
    """Run one calibration: deliver each step to the simulated participant, hand back its rating."""
    ss = np.random.SeedSequence(seed)
    r_part, r_proc = (np.random.default_rng(s) for s in ss.spawn(2))
    sim = SimParticipant(truth, r_part)
    proc = make_procedure(method, cfg or Settings(method=method), cap_c=cap_c, available_targets_c=targets, rng=r_proc)
    n = 0
    while (step := proc.next()) is not None:
        n += 1
        assert n < 100, "the procedure never ends"
        assert proc.next() == step  # the same step until it is rated
        sim.feel_delivered(step.temp_c)
        proc.add(step.temp_c, sim.rate_stimulus())
    return proc.result(), sim, proc


def check_rules(res: CalibrationResult, cfg: Settings, cap_c: float = CAP) -> None:
    """Assert the rules every method keeps, from the stimuli as delivered."""
    below: list[float] = []
    for i, (t, r, _stage) in enumerate(res.stimuli):
        ceiling = min(cap_c, (max(below) + cfg.max_step_up_c) if below else cfg.start_c)
        assert cfg.floor_c - 1e-9 <= t <= ceiling + 1e-9, f"stimulus {i + 1} at {t} °C, allowed {cfg.floor_c}-{ceiling}"
        if r is not None and r < cfg.stop_rating:
            below.append(t)
    if res.ts_c is None:
        assert res.outcome != "ok"
        return
    assert res.outcome == "ok"
    ok = [v for v in res.verifications if v.temp_c == res.ts_c and v.passed]
    assert ok, "the TS was never verified"
    v = ok[-1]
    assert len(v.ratings) == cfg.verify_n and abs(float(np.mean(v.ratings)) - cfg.target_rating) <= cfg.tolerance
    delivered_at_ts = [r for t, r, s in res.stimuli if t == res.ts_c and s == "verification" and r is not None]
    assert len(delivered_at_ts) >= cfg.verify_n


# ---------------------------------------------------------------- the sensitive participant (issue 15, finding 1)

@pytest.mark.parametrize("method", METHODS)
def test_sensitive_participant_gets_a_low_verified_ts_in_50_of_50_seeds(method: str) -> None:
    """True Pain-60 38.5 °C, heat-pain threshold 34.5 °C (below the start): a TS between 36 and 41 °C, its
    verification and the three TS_pre ratings that follow in 40-80, never a stimulus above 42 °C."""
    cfg = Settings(method=method)
    truth = ParticipantTruth(pain60_c=38.5, slope_per_c=20.0, noise_sd=4.0, threshold_c=34.5)
    for seed in range(50):
        res, sim, _ = drive(truth, seed, method, cfg)
        check_rules(res, cfg)
        assert res.outcome == "ok" and res.ts_c is not None, (seed, res.reason)
        assert 36.0 <= res.ts_c <= 41.0, (seed, res.ts_c)
        assert res.hottest_c is not None and res.hottest_c <= 42.0, (seed, res.hottest_c)
        verified = next(v for v in reversed(res.verifications) if v.temp_c == res.ts_c)
        ts_pre = []
        for _ in range(3):  # TS_pre: three stimuli at the TS, rated by the same (habituating) participant
            sim.feel_delivered(res.ts_c)
            r = sim.rate_stimulus()
            assert r is not None
            ts_pre.append(r)
        assert all(40.0 <= r <= 80.0 for r in verified.ratings + ts_pre), (seed, res.ts_c, verified.ratings, ts_pre)


def test_very_sensitive_participant_steps_down_to_the_floor_not_up() -> None:
    cfg = Settings()
    res, _, _ = drive(ParticipantTruth(pain60_c=36.0, slope_per_c=12.0, noise_sd=4.0), 3, "bayes", cfg)
    temps = [t for t, _, _ in res.stimuli]
    assert temps[0] == cfg.start_c and temps[1] < temps[0]  # first rating high: step down
    assert max(temps) == cfg.start_c
    check_rules(res, cfg)
    assert res.outcome == "ok" and res.ts_c is not None and abs(res.ts_c - 36.0) <= 1.0


@pytest.mark.parametrize("method", METHODS)
def test_pain60_below_the_floor_is_not_reached_without_ts(method: str) -> None:
    cfg = Settings(method=method)
    res, _, _ = drive(ParticipantTruth(pain60_c=31.0, slope_per_c=20.0, noise_sd=3.0), 1, method, cfg)
    check_rules(res, cfg)
    assert res.outcome == "not_reached" and res.ts_c is None and "floor" in res.reason
    assert res.hottest_c == cfg.start_c


# ---------------------------------------------------------------- cap and fallbacks (never the cap as a fallback)

@pytest.mark.parametrize("method", METHODS)
def test_insensitive_participant_never_above_cap_and_no_ts(method: str) -> None:
    """Every rating 0 up to the cap: outcome not_reached, no TS (today's code offered the cap)."""
    cfg = Settings(method=method)
    for seed in range(5):
        res, _, _ = drive(ParticipantTruth(pain60_c=58.0, slope_per_c=20.0, noise_sd=2.0), seed, method, cfg, cap_c=47.5)
        check_rules(res, cfg, cap_c=47.5)
        assert res.hottest_c is not None and res.hottest_c <= 47.5
        assert res.outcome == "not_reached" and res.ts_c is None, res.reason
        assert "cap" in res.reason
        assert res.as_dict()["ts_c"] is None and res.as_dict()["pain60_c"] is None


@pytest.mark.parametrize("method", METHODS)
def test_many_people_never_above_cap_never_an_untested_ts(method: str) -> None:
    rng = np.random.default_rng(15)
    cfg = Settings(method=method)
    for seed in range(40):
        truth = ParticipantTruth(pain60_c=float(rng.uniform(34.0, 53.0)), slope_per_c=float(rng.choice([4.0, 6, 8, 12, 20, 30])),
                                 noise_sd=float(rng.choice([2.0, 6.0, 12.0, 20.0])), habituation_pts=float(rng.choice([0.0, -0.5, 0.5])),
                                 miss_prob=float(rng.choice([0.0, 0.0, 0.2])))
        res, _, _ = drive(truth, seed, method, cfg)
        check_rules(res, cfg)
        assert res.hottest_c is None or res.hottest_c <= CAP
        assert res.n_stimuli == len(res.stimuli) <= cfg.max_stimuli + cfg.verify_n * (cfg.max_refinements + 1) + 3
        json.dumps(res.as_dict(), allow_nan=False)


def test_missing_ratings_end_the_calibration_as_failed() -> None:
    proc = make_procedure("bayes", Settings(), cap_c=CAP, rng=np.random.default_rng(0))
    temps = []
    while (step := proc.next()) is not None:
        temps.append(step.temp_c)
        proc.add(step.temp_c, None)
    res = proc.result()
    assert res.outcome == "failed" and res.ts_c is None and "not rated" in res.reason
    assert temps == [40.0, 40.0, 40.0]  # an unrated stimulus is repeated, never stepped up


def test_verification_that_never_passes_gives_no_ts() -> None:
    """A participant whose ratings at the candidate never average within 60 ± 10: no TS, never a refit guess."""
    cfg = Settings(max_refinements=1)
    proc = make_procedure("bayes", cfg, cap_c=CAP, rng=np.random.default_rng(1))
    truth = ParticipantTruth(pain60_c=44.0, slope_per_c=12.0, noise_sd=0.0)
    while (step := proc.next()) is not None:
        r = truth.expected_heat(step.temp_c)
        proc.add(step.temp_c, 95.0 if step.stage == "verification" else r)
    res = proc.result()
    assert res.outcome == "failed" and res.ts_c is None and "no temperature was verified" in res.reason
    assert len(res.verifications) == 2 and not any(v.passed for v in res.verifications)


# ---------------------------------------------------------------- Medoc program grid

@pytest.mark.parametrize("method", METHODS)
def test_available_targets_only(method: str) -> None:
    grid = [36.0, 38.0, 40.0, 41.0, 42.0, 43.0, 43.5, 44.0, 44.5, 45.0, 46.0, 47.0, 48.0, 49.0, 50.0]
    cfg = Settings(method=method)
    for seed, p60 in enumerate((38.4, 43.6, 46.2)):
        res, _, _ = drive(ParticipantTruth(pain60_c=p60, slope_per_c=12.0, noise_sd=4.0), seed, method, cfg, targets=grid)
        check_rules(res, cfg)
        assert all(t in grid and t <= CAP for t, _, _ in res.stimuli), res.stimuli
        assert res.ts_c is not None and res.ts_c in grid and abs(res.ts_c - p60) <= 1.0, (p60, res.ts_c, res.reason)


def test_no_available_target_in_range_fails_at_once() -> None:
    proc = make_procedure("bayes", Settings(), cap_c=CAP, available_targets_c=[30.0, 52.0])
    assert proc.next() is None
    res = proc.result()
    assert res.outcome == "failed" and res.n_stimuli == 0 and "no available target" in res.reason


# ---------------------------------------------------------------- Bayesian procedure specifics

def test_bayes_order_is_not_monotone_and_posterior_is_recorded() -> None:
    res, _, _ = drive(ParticipantTruth(pain60_c=45.0, slope_per_c=8.0, noise_sd=8.0), 4)
    series = [t for t, _, s in res.stimuli if s == "series"]
    steps = np.diff(series)
    assert (steps > 0).any() and (steps < 0).any(), series
    d = res.as_dict()
    post = d["posterior"]
    lo, hi = post["pain60_ci95_c"]
    assert lo <= post["pain60_median_c"] <= hi and hi - lo < 3.0
    assert set(post) >= {"pain60_mean_c", "pain60_median_c", "pain60_ci95_c", "slope_per_c_mean", "noise_sd_mean"}
    assert d["method"] == "bayes" and d["outcome"] == "ok" and d["n_stimuli"] == len(res.stimuli)
    assert d["verification_ratings"] and d["slope"] is not None
    assert json.loads(json.dumps(d, allow_nan=False)) == d


def test_bayes_is_reproducible_for_a_seed_and_varies_across_seeds() -> None:
    truth = ParticipantTruth(pain60_c=44.0, slope_per_c=10.0, noise_sd=6.0)
    a, _, _ = drive(truth, 11)
    b, _, _ = drive(truth, 11)
    c, _, _ = drive(truth, 12)
    assert a.stimuli == b.stimuli and a.ts_c == b.ts_c
    assert a.stimuli != c.stimuli


def test_bayes_accuracy_on_a_small_grid() -> None:
    """Moderate participants (slope 12, noise 8): the verified TS within ±0.5 °C in ≥ 85 % of 40 runs."""
    hits, n = 0, 0
    for seed in range(40):
        p60 = 38.0 + (seed % 12)
        res, _, _ = drive(ParticipantTruth(pain60_c=p60, slope_per_c=12.0, noise_sd=8.0), 100 + seed)
        hits += res.ts_c is not None and abs(res.ts_c - p60) <= 0.5
        n += res.n_stimuli
    assert hits / 40 >= 0.85 and n / 40 <= 14


def test_shipped_protocol_settings_drive_the_procedure() -> None:
    p = load_protocol(THERMAL)
    proc = make_procedure(p.calibration.method, p.calibration, cap_c=p.safety.thermode_cap_c, rng=np.random.default_rng(0))
    assert p.calibration.method == "bayes" and proc.name == "bayes"
    step = proc.next()
    assert step is not None and step.temp_c == p.calibration.start_c and step.stage == "series" and step.index == 1


def test_bad_input_is_refused_with_a_clear_message() -> None:
    proc = make_procedure("bayes", Settings(), cap_c=CAP)
    step = proc.next()
    assert step is not None
    for bad in (float("nan"), -5.0, 101.0, math.inf):
        with pytest.raises(ValueError, match="rating must be a number in 0-100"):
            proc.add(step.temp_c, bad)
    with pytest.raises(ValueError, match="before the procedure finished"):
        proc.result()
    with pytest.raises(ValueError, match="unknown calibration method"):
        make_procedure("psi", Settings(), cap_c=CAP)
    with pytest.raises(ValueError, match="floor_c"):
        make_procedure("bayes", Settings(floor_c=41.0, start_c=40.0), cap_c=CAP)
    with pytest.raises(ValueError, match="verify_n"):
        make_procedure("bayes", Settings(verify_n=0), cap_c=CAP)
