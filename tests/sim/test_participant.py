"""The simulated participant (issue 15): slope in points/°C, threshold, habituation, rates what was delivered,
answers questionnaire items by their scores (HADS finding 6)."""

from __future__ import annotations

import numpy as np
import pytest

from cpm_session.config.questionnaires import load_questionnaire, score, value_of_choice
from cpm_session.session.phases.questionnaires import item_choice
from cpm_session.sim.participant import ParticipantTruth, SimParticipant
from cpm_session.ui.base import Choice
from tests.helpers import simulate


@pytest.mark.parametrize("slope", [6.0, 8.0, 12.0, 20.0])
def test_slope_is_rating_points_per_degree_at_pain60(slope: float) -> None:
    t = ParticipantTruth(pain60_c=44.0, slope_per_c=slope)
    assert t.expected_heat(44.0) == pytest.approx(60.0)
    d = (t.expected_heat(44.01) - t.expected_heat(43.99)) / 0.02
    assert d == pytest.approx(slope, rel=1e-3)


def test_old_logistic_scale_still_accepted() -> None:
    old = ParticipantTruth(pain60_c=45.0, slope_c=1.2)
    assert old.heat_slope_per_c == pytest.approx(20.0)
    assert old.expected_heat(46.0) == pytest.approx(ParticipantTruth(pain60_c=45.0).expected_heat(46.0))


def test_threshold_below_start_and_habituation() -> None:
    t = ParticipantTruth(pain60_c=38.5, slope_per_c=8.0, threshold_c=36.0, habituation_pts=-0.5, habituation_max_pts=4.0)
    assert t.expected_heat(35.9) == 0.0 and t.expected_heat(36.1) > 0.0
    assert t.expected_heat(38.5, 4) == pytest.approx(58.0)
    assert t.expected_heat(38.5, 100) == pytest.approx(56.0)  # saturates
    assert t.pain60_after(0) == pytest.approx(38.5, abs=1e-3) and t.pain60_after(4) > 38.7
    sens = ParticipantTruth(habituation_pts=0.5)
    assert sens.expected_heat(45.0, 6) == pytest.approx(63.0)
    with pytest.raises(ValueError, match="finite"):
        ParticipantTruth(pain60_c=float("nan"))
    with pytest.raises(ValueError, match="slope"):
        ParticipantTruth(slope_per_c=0.0)


def test_rates_the_delivered_temperature_and_counts_heat_stimuli() -> None:
    t = ParticipantTruth(pain60_c=44.0, noise_sd=0.0, habituation_pts=-1.0)
    sim = SimParticipant(t, np.random.default_rng(0))
    sim.feel_delivered(44.0)
    assert sim.rate_stimulus() == pytest.approx(60.0)
    sim.stimulus = ("thermal", 44.0)  # what the session sets today
    assert sim.rate_stimulus() == pytest.approx(59.0) and sim.heat_delivered == 2
    sim.stimulus = ("pressure", 300.0)
    assert sim.heat_delivered == 2


# ---------------------------------------------------------------- HADS (issue 15 finding 6)

def test_item_choice_carries_values_and_the_sim_answers_by_value() -> None:
    hads = load_questionnaire("hads")
    desc = next(it for it in hads.items if [o.value for o in it.options] == [3, 2, 1, 0])
    asc = next(it for it in hads.items if [o.value for o in it.options] == [0, 1, 2, 3])
    ch = item_choice(hads, desc)
    assert ch.values == (3, 2, 1, 0)
    for severity, expected in ((0.0, 0), (1.0, 3)):
        sim = SimParticipant(ParticipantTruth(severity=severity), np.random.default_rng(1))
        for item in (desc, asc):
            vals = [value_of_choice(item, sim.choose(item_choice(hads, item))) for _ in range(30)]
            assert np.mean(vals) == pytest.approx(expected, abs=0.5), (item.id, severity, vals)
    # a plain choice (a staff decision) keeps the old positional behaviour
    assert SimParticipant(ParticipantTruth(severity=0.0), np.random.default_rng(2)).choose(Choice("?", ["a", "b", "c"])) in (0, 1)


@pytest.mark.parametrize("severity,band", [(0.0, "normal"), (1.0, "abnormal")])
def test_visit_hads_follows_severity_on_both_item_directions_and_bands_are_stored(tmp_path, severity, band) -> None:  # type: ignore[no-untyped-def]
    out, _, _ = simulate(tmp_path, seed=3, truth=ParticipantTruth(severity=severity))
    import json

    q = json.loads((out.session_dir / "session.json").read_text())["questionnaires"]["hads"]
    hads = load_questionnaire("hads")
    assert score(hads, q["answers"]) == q["scores"]
    for name in ("anxiety", "depression"):
        assert (q["scores"][name] <= 4) if severity == 0.0 else (q["scores"][name] >= 17), q
    assert q["bands"] == {"anxiety": band, "depression": band}
