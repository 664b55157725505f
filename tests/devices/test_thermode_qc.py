"""Delivered-heat QC (pure) and SimThermode's prepare / launch / trace with a zone fault."""

from __future__ import annotations

import pytest

from cpm_session.clock import VirtualClock
from cpm_session.devices.base import ThermodeReading
from cpm_session.devices.thermode_qc import assess, plateau_window
from cpm_session.errors import DeviceError, SafetyLimitError
from cpm_session.sim.devices import SimThermode

NEUTRAL, TARGET, RISE, DUR = 32.0, 45.0, 13.0, 5.0  # 1 s rise, 4 s plateau


def ramp(zone_c=lambda i, t: None, n=600, hz=100.0):  # type: ignore[no-untyped-def]
    """A 100 Hz trace: 1 s rise to TARGET, plateau until DUR, then back; `zone_c` overrides a zone."""
    out = []
    for k in range(n):
        t = 10.0 + k / hz
        base = min(TARGET, NEUTRAL + RISE * (t - 10.0)) if t < 10.0 + DUR else max(NEUTRAL, TARGET - 13 * (t - 15.0))
        zs = tuple(zone_c(i, t) if zone_c(i, t) is not None else base for i in range(5))
        out.append(ThermodeReading(t, NEUTRAL, zs))
    return out


def judge(trace):  # type: ignore[no-untyped-def]
    p0, p1 = plateau_window(10.0, NEUTRAL, TARGET, RISE, DUR)
    return assess(trace, target_c=TARGET, neutral_c=NEUTRAL, launch_t=10.0, plateau_start_t=p0, plateau_end_t=p1)


def test_a_good_stimulus_has_no_flags():
    q = judge(ramp())
    assert q.ok and q.flags == ()
    assert q.peak_c == pytest.approx(45.0) and q.plateau_mean_c == pytest.approx(45.0)
    assert q.time_to_target_s == pytest.approx((TARGET - 0.5 - NEUTRAL) / RISE, abs=0.011)
    assert q.samples == 600 and q.plateau_samples == 401
    assert q.as_event()["flags"] == [] and q.as_event()["peak_c"] == 45.0


def test_poor_contact_zone_pulls_the_plateau_off_target():
    q = judge(ramp(lambda i, t: None if i else NEUTRAL + 0.4 * (min(TARGET, NEUTRAL + RISE * (t - 10)) - NEUTRAL)))
    assert "plateau_off_target" in q.flags and "never_reached" in q.flags and "zone_overshoot" not in q.flags
    assert q.plateau_mean_c == pytest.approx(45.0 - 0.6 * 13 / 5, abs=0.05)


def test_one_hot_zone_is_an_overshoot():
    q = judge(ramp(lambda i, t: 45.8 if i == 2 and 11.0 <= t <= 14.0 else None))
    assert q.flags == ("zone_overshoot",) and q.peak_c == 45.8


def test_a_short_duration_never_reaches_the_target():
    tr = [ThermodeReading(10 + k / 100, NEUTRAL, (min(40.0, NEUTRAL + RISE * k / 100),) * 5) for k in range(300)]
    p0, p1 = plateau_window(10.0, NEUTRAL, TARGET, RISE, 0.6)
    q = assess(tr, target_c=TARGET, neutral_c=NEUTRAL, launch_t=10.0, plateau_start_t=p0, plateau_end_t=p1)
    assert p0 == p1 == 10.6  # the plateau is empty: the duration ends during the rise
    assert "never_reached" in q.flags and q.time_to_target_s is None and q.peak_c == 40.0


def test_no_trace_and_cold_stimuli():
    assert assess([], target_c=45, neutral_c=32, launch_t=0, plateau_start_t=1, plateau_end_t=2).flags == ("no_trace",)
    cold = [ThermodeReading(k / 100, 32.0, (max(20.0, 32 - 10 * k / 100),) * 5) for k in range(300)]
    q = assess(cold, target_c=20.0, neutral_c=32.0, launch_t=0.0, plateau_start_t=1.2, plateau_end_t=3.0)
    assert q.ok and q.peak_c == 20.0 and q.time_to_target_s == pytest.approx(1.15, abs=0.011)


def test_sim_thermode_prepare_launch_trace():
    clock = VirtualClock()
    th = SimThermode(clock, cap_c=49.0, neutral_c=NEUTRAL)
    th.connect()
    with pytest.raises(DeviceError, match="no stimulus prepared"):
        th.launch()
    with pytest.raises(SafetyLimitError):
        th.prepare(49.5, 13.0, 13.0, 5.0)
    th.prepare(TARGET, RISE, 13.0, DUR)
    clock.advance(1.0)
    assert th.temperature_at(clock.now()) == NEUTRAL and th.trace() == []  # prepared, no heat
    th.launch()
    t0 = clock.now()
    clock.advance(8.0)
    tr = th.trace()
    assert len(tr) == 801 and tr[0].t == t0 and tr[-1].t == pytest.approx(t0 + 8.0)
    assert tr == th.trace()  # the same samples on every call
    p0, p1 = plateau_window(t0, NEUTRAL, TARGET, RISE, DUR)
    q = assess(tr, target_c=TARGET, neutral_c=NEUTRAL, launch_t=t0, plateau_start_t=p0, plateau_end_t=p1)
    assert q.ok, q
    assert 0.0 < max(abs(z - TARGET) for r in tr if p0 + 0.05 < r.t < p1 for z in r.zones_c) <= 0.2  # noisy
    assert th.available_targets_c() is None and th.readback_warning == ""


def test_sim_thermode_zone_fault_is_delivered_and_flagged():
    clock = VirtualClock()
    th = SimThermode(clock, cap_c=49.0, neutral_c=NEUTRAL, fault_zone=3, fault_gain=0.5, fault_rate_factor=0.5)
    th.stimulate(TARGET, RISE, 13.0, DUR)
    t0 = clock.now()
    clock.advance(DUR)
    tr = th.trace()
    assert max(r.zones_c[2] for r in tr) == pytest.approx(NEUTRAL + 0.5 * (TARGET - NEUTRAL), abs=0.15)
    assert max(r.zones_c[0] for r in tr) == pytest.approx(TARGET, abs=0.15)
    assert th.temperature_at(t0 + 3.0) == pytest.approx(TARGET - 0.1 * (TARGET - NEUTRAL), abs=0.01)
    p0, p1 = plateau_window(t0, NEUTRAL, TARGET, RISE, DUR)
    q = assess(tr, target_c=TARGET, neutral_c=NEUTRAL, launch_t=t0, plateau_start_t=p0, plateau_end_t=p1)
    assert "plateau_off_target" in q.flags
    with pytest.raises(ValueError):
        SimThermode(clock, cap_c=49.0, neutral_c=NEUTRAL, fault_zone=6)


def test_assess_stimulus_and_trace_rows():
    from cpm_session.devices.thermode_qc import TRACE_COLUMNS, assess_stimulus, trace_rows

    tr = ramp()
    assert assess_stimulus(tr, target_c=TARGET, neutral_c=NEUTRAL, launch_t=10.0, rise_c_per_s=RISE,
                           duration_s=DUR) == judge(tr)
    rows = trace_rows("ts_pre-1", tr[:2])
    assert len(TRACE_COLUMNS) == len(rows[0]) == 8
    assert rows[0] == [10.0, "ts_pre-1", 32.0, 32.0, 32.0, 32.0, 32.0, 32.0] and rows[1][3] == 32.13


def test_vectorised_course_matches_the_scalar_one() -> None:
    """`trace` computes the zones' course with `_Segment.at_many`; it must equal `at` at every time."""
    import numpy as np

    from cpm_session.sim.devices import _Segment

    rng = np.random.default_rng(5)
    for _ in range(200):
        start, target, neutral = rng.uniform(25, 50, size=3)
        seg = _Segment(1.0, float(start), float(target), float(rng.uniform(0.5, 70)), float(rng.uniform(0.5, 70)),
                       1.0 + float(rng.uniform(0, 8)))
        ts = np.concatenate([[0.5, 1.0, seg.t_end, seg.t_end - 1e-9], rng.uniform(0, 20, size=50)])
        got = seg.at_many(ts, float(neutral))
        want = [seg.at(float(t), float(neutral)) for t in ts]
        assert np.allclose(got, want, atol=1e-9, rtol=0)
