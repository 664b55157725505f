"""End-to-end simulated visits: the engine finds the truth, handles every staff key, never overheats."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

from cpm_session.config.protocol import load_protocol
from cpm_session.config.station import load_station
from cpm_session.errors import SafetyLimitError, SessionError
from cpm_session.record.derive import cpm_values
from cpm_session.sim.devices import SimThermode
from cpm_session.sim.participant import ParticipantTruth
from cpm_session.sim.world import run_visit
from tests.conftest import PRESSURE, SIM_STATION, THERMAL
from tests.helpers import events, of, simulate

SEEDS = range(20)


def _true_pct(truth: ParticipantTruth, temp_c: float) -> tuple[float, float]:
    """Return (true CPM_pct at the delivered temperature, its SD implied by the rating noise)."""
    pre = truth.expected_heat(temp_c)
    post = pre * (1 - truth.cpm_effect)
    sd_abs = truth.noise_sd * math.sqrt(1 / 3 + 1 / 1)  # 3 TS_pre ratings averaged, 1 TS_post
    return (pre - post) / pre * 100, sd_abs / pre * 100


@pytest.mark.parametrize("seed", SEEDS)
def test_visit_finds_pain60_and_cpm(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    truth = ParticipantTruth(pain60_c=float(rng.uniform(43, 48)), cpm_effect=0.3)
    out, _, _ = simulate(tmp_path, seed=seed, truth=truth)
    assert out.status == "completed"
    r = out.results
    assert abs(r["pain60_c"] - truth.pain60_c) <= 0.5
    true_pct, sd = _true_pct(truth, r["ts_intensity"])
    assert abs(r["cpm_pct"] - true_pct) < 4 * sd, (r["cpm_pct"], true_pct, sd)
    assert r["cpm_abs"] == pytest.approx(r["ts_pre"] - r["ts_post"], abs=1e-3)
    assert r["cpm_pct"] == pytest.approx((r["ts_pre"] - r["ts_post"]) / r["ts_pre"] * 100, abs=1e-3)
    assert len(r["ts_pre_ratings"]) == 3 and r["ts_pre"] == pytest.approx(np.mean(r["ts_pre_ratings"]), abs=1e-3)
    header = json.loads((out.session_dir / "session.json").read_text())
    assert header["status"] == "completed" and header["results"]["cpm_abs"] == r["cpm_abs"]
    assert header["protocol_sha256"] == load_protocol(THERMAL).sha256
    assert out.session_dir.name.startswith("baseline-") and out.session_dir.parent.name == "P001"


def _cpm_pcts(tmp_path: Path, effect: float, n: int = 12) -> list[float]:
    vals = []
    for seed in range(n):
        out, _, _ = simulate(tmp_path / str(seed), seed=seed, truth=ParticipantTruth(cpm_effect=effect))
        vals.append(out.results["cpm_pct"])
    return vals


def test_no_cpm_effect_gives_cpm_near_zero(tmp_path: Path) -> None:
    vals = _cpm_pcts(tmp_path, 0.0)
    _, sd = _true_pct(ParticipantTruth(), 45.0)
    assert abs(float(np.mean(vals))) < 4 * sd / math.sqrt(len(vals))


def test_facilitator_gives_negative_cpm(tmp_path: Path) -> None:
    vals = _cpm_pcts(tmp_path, -0.3, n=8)
    assert all(v < 0 for v in vals)
    out, _, _ = simulate(tmp_path / "f", seed=99, truth=ParticipantTruth(cpm_effect=-0.3))
    assert out.results["cpm_category"] == "facilitation" and out.results["inhibition"] is False


def test_cpm_formula_and_zero_ts_pre() -> None:
    v = cpm_values(60.0, 45.0, 5.0)
    assert v["cpm_abs"] == 15.0 and v["cpm_pct"] == 25.0 and v["cpm_category"] == "inhibition"
    assert cpm_values(40.0, 50.0, 5.0)["cpm_pct"] == -25.0
    z = cpm_values(0.0, 10.0, 5.0)
    assert z["cpm_pct"] is None and "TS_pre is 0" in z["cpm_pct_note"] and z["cpm_abs"] == -10.0
    assert cpm_values(0.0, 0.0, 5.0)["cpm_category"] == "none"
    assert cpm_values(None, 3.0, 5.0)["cpm_abs"] is None


def test_participant_who_feels_nothing_is_never_heated_to_the_cap_and_the_visit_stops(tmp_path: Path) -> None:
    # every rating 0: calibration cannot verify a Pain-60; the visit stops (resumable), nothing at the cap
    cap = load_protocol(THERMAL).safety.thermode_cap_c
    truth = ParticipantTruth(pain60_c=70.0, slope_c=0.5, noise_sd=0.0)
    out, _, devs = simulate(tmp_path, truth=truth)
    r = out.results
    assert out.status == "paused_fault" and r["ts_intensity"] is None and r["ts_pre"] is None
    evs = events(out.session_dir)
    assert of(evs, "calibration_result")[-1]["outcome"] in ("not_reached", "failed")
    assert any(e["kind"].startswith("calibration_") for e in of(evs, "deviation"))
    assert not [e for e in of(evs, "stimulus") if e["phase"] in ("ts_pre", "ts_post")]
    assert max(e["target_c"] for e in of(evs, "stimulus")) <= cap  # reached only by the step-up rule


def test_zero_ts_pre_gives_an_undefined_pct() -> None:
    r = cpm_values(0.0, 3.0, 5.0)
    assert r["cpm_pct"] is None and "TS_pre is 0" in r["cpm_pct_note"] and r["cpm_abs"] == -3.0
    r = cpm_values(0.5, 3.0, 5.0, pct_min_ts_pre=10.0)
    assert r["cpm_pct"] is None and "floor" in r["cpm_pct_note"]


def test_calibration_never_exceeds_cap(tmp_path: Path) -> None:
    cap = load_protocol(THERMAL).safety.thermode_cap_c
    for seed, p60 in enumerate([48.5, 49.0, 52.0, 60.0]):
        out, _, devs = simulate(tmp_path / str(seed), seed=seed, truth=ParticipantTruth(pain60_c=p60))
        targets = [e["target_c"] for e in of(events(out.session_dir), "stimulus")]
        assert max(targets) <= cap
        th = devs.thermode
        assert isinstance(th, SimThermode)
        assert max(c[2].get("target_c", 0) for c in th.commands) <= cap
    # a Pain-60 above the cap is never "found" at the cap: no TS intensity, the visit stops
    assert out.results["pain60_c"] is None and out.status == "paused_fault"


def test_thermode_refuses_above_cap() -> None:
    from cpm_session.clock import VirtualClock

    th = SimThermode(VirtualClock(), cap_c=49.0, neutral_c=32.0)
    with pytest.raises(SafetyLimitError, match="49.0"):
        th.stimulate(49.1, 10, 10, 5)
    assert th.commands == []
    with pytest.raises(SafetyLimitError):
        SimThermode(VirtualClock(), cap_c=50.5, neutral_c=32.0)


def test_events_are_complete_and_ordered(tmp_path: Path) -> None:
    out, _, _ = simulate(tmp_path)
    evs = events(out.session_dir)
    assert [e["seq"] for e in evs] == list(range(len(evs)))
    assert all(b["t"] >= a["t"] for a, b in zip(evs, evs[1:]))
    phases = [e["phase"] for e in of(evs, "phase_enter")]
    assert phases == ["welcome", "acclimatization", "calibration", "ts_pre", "cold_pressor", "ts_post", "questionnaires", "done"]
    assert len(of(evs, "transition")) >= 7
    stims = of(evs, "stimulus")
    assert all("planned_onset_t" in s and "onset_t" in s for s in stims)
    ts_pre = [s for s in stims if s["phase"] == "ts_pre"]
    gaps = np.diff([s["planned_onset_t"] for s in ts_pre])
    assert np.allclose(gaps, 30.0)
    acc = of(evs, "phase_exit")[1]
    assert acc["phase"] == "acclimatization" and acc["output"]["elapsed_s"] == pytest.approx(600, abs=0.5)
    ratings = (out.session_dir / "ratings.csv").read_text().splitlines()
    assert len(ratings) - 1 == len(of(evs, "rating"))
    cp = of(evs, "cold_pressor_end")[0]
    assert cp["duration_s"] == pytest.approx(60.0, abs=0.2) and cp["withdrawn"] is False
    cs = [e for e in of(evs, "rating") if e["phase"] == "cs"][0]
    start = of(evs, "cold_pressor_start")[0]
    assert cs["prompt_t"] - start["t"] == pytest.approx(30.0, abs=0.2)
    devices = (out.session_dir / "devices.csv").read_text().splitlines()
    assert devices[0] == "t,role,quantity,value,unit" and len(devices) > 1000
    assert 1.0 <= out.results["bath_min_c"] <= out.results["bath_max_c"] <= 4.0


def test_escape_aborts_thermode_to_neutral_within_100ms(tmp_path: Path) -> None:
    # find when the first TS_pre stimulus is on, then press Escape 2 s into it
    ref, _, _ = simulate(tmp_path / "ref", seed=3)
    first = [e for e in of(events(ref.session_dir), "stimulus") if e["phase"] == "ts_pre"][0]
    t_esc = first["onset_t"] + 2.0
    out, _, devs = simulate(tmp_path / "esc", seed=3, keys=[("escape", t_esc)])
    assert out.status == "aborted"
    evs = events(out.session_dir)
    stop = of(evs, "emergency_stop")[0]
    th = devs.thermode
    assert isinstance(th, SimThermode)
    assert th.temperature_at(t_esc - 0.01) > 40  # it really was hot
    assert stop["t_abort"] - t_esc <= 0.1
    assert th.temperature_at(stop["t_abort"] + 0.1) == pytest.approx(32.0, abs=0.05)
    assert [c[1] for c in th.commands][-2:] == ["abort", "abort"] or th.commands[-1][1] == "abort"
    assert of(evs, "session_end")[0]["status"] == "aborted"
    header = json.loads((out.session_dir / "session.json").read_text())
    assert header["status"] == "aborted" and "resume" in header["message"]


@pytest.mark.parametrize("phase_t", [3.0, 300.0, 700.0, 820.0, 900.0, 950.0, 980.0])
def test_escape_from_every_phase(tmp_path: Path, phase_t: float) -> None:
    out, _, devs = simulate(tmp_path, seed=1, keys=[("escape", phase_t)])
    assert out.status == "aborted"
    th = devs.thermode
    assert isinstance(th, SimThermode)
    stop = of(events(out.session_dir), "emergency_stop")[0]
    assert th.temperature_at(stop["t_abort"] + 0.1) == pytest.approx(32.0, abs=0.05)


def test_skip_acclimatization_is_a_logged_deviation(tmp_path: Path) -> None:
    out, _, _ = simulate(tmp_path, keys=[("s", 65.0)])
    evs = events(out.session_dir)
    dev = [e for e in of(evs, "deviation") if e["kind"] == "acclimatization_skipped"][0]
    assert dev["remaining_s"] == pytest.approx(600 - 60.0, abs=1.0) and dev["below_minimum"] is True
    assert of(evs, "phase_enter")[2]["t"] < 70
    assert out.status == "completed"


def test_pause_during_stimulus_discards_and_repeats_trial(tmp_path: Path) -> None:
    ref, _, _ = simulate(tmp_path / "ref", seed=4)
    first = [e for e in of(events(ref.session_dir), "stimulus") if e["phase"] == "ts_pre"][0]
    t_p = first["onset_t"] + 1.0
    out, _, devs = simulate(tmp_path / "p", seed=4, keys=[("p", t_p), ("p", t_p + 40.0)])
    evs = events(out.session_dir)
    assert of(evs, "pause")[0]["stimulus_aborted"] is True
    assert of(evs, "resume")[0]["paused_s"] == pytest.approx(40.0, abs=0.5)
    assert of(evs, "trial_discarded")[0]["phase"] == "ts_pre"
    assert len([e for e in of(evs, "rating") if e["phase"] == "ts_pre"]) == 3
    assert out.status == "completed"


def test_early_withdrawal(tmp_path: Path) -> None:
    out, _, _ = simulate(tmp_path, truth=ParticipantTruth(withdrawal_s=12.0))
    evs = events(out.session_dir)
    w = of(evs, "withdrawal")[0]
    assert w["t_in_water_s"] == pytest.approx(12.0, abs=0.2)
    end = of(evs, "cold_pressor_end")[0]
    assert end["withdrawn"] is True and end["duration_s"] == pytest.approx(12.0, abs=0.2)
    cs = [e for e in of(evs, "rating") if e["phase"] == "cs"][0]
    assert cs["flag"] == "early_withdrawal" and cs["prompt_t"] - of(evs, "cold_pressor_start")[0]["t"] == pytest.approx(12.0, abs=0.3)
    assert out.results["cs_rating_flag"] == "early_withdrawal" and out.results["withdrawal_s"] == pytest.approx(12.0, abs=0.2)
    assert len(out.results["ts_post_ratings"]) == 1 and out.status == "completed"


def test_withdrawal_key_after_30s(tmp_path: Path) -> None:
    ref, _, _ = simulate(tmp_path / "ref", seed=2)
    t_in = of(events(ref.session_dir), "cold_pressor_start")[0]["t"]
    out, _, _ = simulate(tmp_path / "w", seed=2, keys=[("w", t_in + 45.0)])
    end = of(events(out.session_dir), "cold_pressor_end")[0]
    assert end["withdrawn"] and end["withdrawal_s"] == pytest.approx(45.0, abs=0.2)
    assert out.results["cs_rating_flag"] in ("", "not_noxious")


def test_bath_out_of_range_blocks_cold_pressor(tmp_path: Path) -> None:
    out, _, _ = simulate(tmp_path, bath_offset_c=5.0)
    evs = events(out.session_dir)
    assert out.status == "paused_fault"
    assert not of(evs, "cold_pressor_start")
    assert all(not c["ok"] for c in of(evs, "bath_check"))
    assert "bath" in out.message and "resume" in out.message


def test_bath_drifting_out_during_immersion_warns(tmp_path: Path) -> None:
    ref, _, _ = simulate(tmp_path / "ref", seed=5)
    t_in = of(events(ref.session_dir), "cold_pressor_start")[0]["t"]
    out, _, _ = simulate(tmp_path / "b", seed=5, bath_offset_c=3.0, bath_offset_at=t_in + 20)
    evs = events(out.session_dir)
    assert of(evs, "bath_warning") and of(evs, "bath_warning")[0]["t"] >= t_in + 20
    assert of(evs, "cold_pressor_end")[0]["duration_s"] <= 60.0 + 1e-6
    assert out.results["bath_max_c"] > 4.0


def test_cold_pressor_never_longer_than_max(tmp_path: Path, write_protocol) -> None:  # type: ignore[no-untyped-def]
    p = write_protocol({"cold_pressor": {"duration_s": 45.0, "max_s": 45.0}})
    out, _, _ = simulate(tmp_path, protocol=p)
    assert of(events(out.session_dir), "cold_pressor_end")[0]["duration_s"] <= 45.0 + 1e-6


def test_missing_rating_is_repeated_then_recorded_missing(tmp_path: Path) -> None:
    simulate(tmp_path, seed=2)  # the baseline gives the TS intensity; the post visit's participant never answers
    out, _, _ = simulate(tmp_path, visit="post", truth=ParticipantTruth(miss_prob=1.0), seed=2)
    evs = of(events(out.session_dir), "rating")
    pre = [e for e in evs if e["phase"] == "ts_pre"]
    assert len(pre) == 6 and all(e["missing"] and e["rating"] is None for e in pre)  # 3 trials x 2 attempts
    assert out.results["ts_pre"] is None and out.results["cpm_abs"] is None


def test_pressure_visit(tmp_path: Path) -> None:
    truth = ParticipantTruth(ppt_kpa=320.0)
    out, _, _ = simulate(tmp_path, protocol=PRESSURE, truth=truth)
    r = out.results
    assert out.status == "completed" and r["ts_modality"] == "pressure" and r["ts_unit"] == "kPa"
    assert abs(r["ppt_kpa"] - 320.0) < 0.15 * 320
    assert r["ts_intensity"] == pytest.approx(r["ppt_kpa"] * 1.2, rel=1e-3)
    assert r["cpm_abs"] > 0
    evs = events(out.session_dir)
    assert len(of(evs, "ppt")) == 3 and all(s["modality"] == "pressure" for s in of(evs, "stimulus"))


def test_visit2_uses_baseline_intensity_and_refuses_other_protocol(tmp_path: Path, write_protocol) -> None:  # type: ignore[no-untyped-def]
    base, _, _ = simulate(tmp_path, pid="P010", seed=1)
    post, _, _ = simulate(tmp_path, pid="P010", visit="post", seed=2)
    assert post.status == "completed"
    targets = {e["target_c"] for e in of(events(post.session_dir), "stimulus")}
    assert targets == {base.results["ts_intensity"]}
    assert not [e for e in of(events(post.session_dir), "stimulus") if e["phase"] == "calibration"]
    assert post.results["calibration"]["source"] == "baseline"
    other = write_protocol({"cold_pressor": {"min_cs_rating": 25.0}})
    with pytest.raises(SessionError, match="differs from the baseline"):
        simulate(tmp_path, pid="P010", visit="post", protocol=other)
    time.sleep(1.1)  # session folders are stamped to the second; a second post visit needs a new second
    ok, _, _ = simulate(tmp_path, pid="P010", visit="post", protocol=other, override_reason="typo fixed in a text")
    dev = [e for e in of(events(ok.session_dir), "deviation") if e["kind"] == "protocol_mismatch"][0]
    assert dev["detail"] == "typo fixed in a text"
    with pytest.raises(SessionError, match="no completed 'baseline'"):
        simulate(tmp_path, pid="P011", visit="post")


def test_existing_session_folder_is_never_written_over(tmp_path: Path) -> None:
    import datetime as dt

    prot, st = load_protocol(THERMAL), load_station(SIM_STATION)
    stamp = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)

    from cpm_session.clock import VirtualClock

    c = VirtualClock()
    run_visit(prot, st, data_dir=tmp_path, participant="P1X", visit="baseline", clock=c, start_utc=stamp)
    before = (tmp_path / "P1X" / "baseline-20260102T030405Z" / "events.jsonl").read_bytes()
    with pytest.raises(SessionError, match="already exists"):
        run_visit(prot, st, data_dir=tmp_path, participant="P1X", visit="baseline", clock=c, start_utc=stamp)
    assert (tmp_path / "P1X" / "baseline-20260102T030405Z" / "events.jsonl").read_bytes() == before


def test_manual_staff_waits_for_space(tmp_path: Path) -> None:
    # without space nothing past the first staff step happens; with space at 700 s the visit goes on
    out, ui, _ = simulate(tmp_path, staff="manual", keys=[("space", t) for t in (700.0, 1300.0, 1500.0, 1700.0, 1800.0, 1900.0, 2000.0)])
    evs = events(out.session_dir)
    steps = of(evs, "staff_step")
    assert steps[0]["t"] >= 700.0 and steps[0]["auto"] is False
    assert steps[0]["step"].startswith("thermode placed")


def test_run_visit_rejects_bad_ids(tmp_path: Path) -> None:
    from cpm_session.errors import InvalidIdError

    with pytest.raises(InvalidIdError):
        run_visit(load_protocol(THERMAL), load_station(SIM_STATION), data_dir=tmp_path, participant="../x", visit="baseline")
    with pytest.raises(InvalidIdError):
        run_visit(load_protocol(THERMAL), load_station(SIM_STATION), data_dir=tmp_path, participant="P1", visit="week9")
    assert not any(tmp_path.iterdir())


def test_real_participant_needs_licensed_wording_before_anything_is_written(tmp_path: Path) -> None:
    from cpm_session.config.questionnaires import MissingWordingError

    with pytest.raises(MissingWordingError, match="fiqr.items.toml"):
        run_visit(load_protocol(THERMAL), load_station(SIM_STATION), data_dir=tmp_path, participant="P1",
                  visit="baseline", simulate=False)
    assert not any(tmp_path.iterdir())


def test_resume_after_escape_in_cold_pressor_restarts_the_cpm_block(tmp_path: Path) -> None:
    from cpm_session.sim.world import resume_visit

    ref, _, _ = simulate(tmp_path / "ref", seed=6)
    t_in = of(events(ref.session_dir), "cold_pressor_start")[0]["t"]
    out, _, _ = simulate(tmp_path / "x", seed=6, keys=[("escape", t_in + 20.0)])
    assert out.status == "aborted"
    before = (out.session_dir / "events.jsonl").read_bytes()
    done = resume_visit(out.session_dir)
    assert done.status == "completed"
    after = (out.session_dir / "events.jsonl").read_bytes()
    assert after.startswith(before)
    evs = events(out.session_dir)
    res = of(evs, "resume_session")[0]
    assert res["restart_phase"] == "ts_pre" and res["previous_status"] == "aborted"
    assert res["kept_phases"] == ["welcome", "acclimatization", "calibration"]
    # the calibrated intensity is kept; the TS ratings are those of the new, complete block
    assert done.results["pain60_c"] == ref.results["pain60_c"]
    new_pre = [e["rating"] for e in of(evs, "rating") if e["phase"] == "ts_pre" and e["seq"] > res["seq"]]
    assert done.results["ts_pre_ratings"] == new_pre and len(new_pre) == 3
    assert all(e["t"] > res["t"] - 1e-6 for e in evs[res["seq"]:])  # session time keeps increasing
    header = json.loads((out.session_dir / "session.json").read_text())
    assert header["status"] == "completed" and len(header["resumed"]) == 1
    with pytest.raises(SessionError, match="already completed"):
        resume_visit(out.session_dir)


def test_resume_refused_after_the_protocols_maximum_gap(tmp_path: Path, write_protocol) -> None:  # type: ignore[no-untyped-def]
    from cpm_session.sim.world import resume_visit

    p = write_protocol({"resume": {"max_gap_s": 0.5}})
    out, _, _ = simulate(tmp_path, protocol=p, keys=[("escape", 700.0)])
    time.sleep(1.0)
    with pytest.raises(SessionError, match="max_gap_s"):
        resume_visit(out.session_dir)
    done = resume_visit(out.session_dir, override_reason="participant had to leave; came back next morning")
    assert done.status == "completed"
    assert of(events(out.session_dir), "resume_session")[0]["reason"].startswith("participant had to leave")
