"""The fidelity requirements (keys, labels, units), the constants of the measurement and the plan a
session stores with its derivation values (`fidelity_plan`)."""

from __future__ import annotations

from typing import Any

FIDELITY_VERSION = 1
FIDELITY_PREFIX = "fidelity_"
"""Kind prefix of the `deviation` events the session's fidelity watch logs (kind = prefix + requirement)."""

DeviceRow = tuple[float, str, str, float]
"""(t, role, quantity, value) of one devices.csv row."""

REQUIREMENTS: dict[str, tuple[str, str]] = {
    "completed": ("Session completed", "the session ended with status 'completed'"),
    "acclimatization_s": ("Acclimatization duration", "seconds of acclimatization before calibration "
                          "(limits: the protocol's acclimatization min_s..max_s)"),
    "acclimatization_skipped": ("Acclimatization skipped", "whether the staff skipped the acclimatization"),
    "calibration_n_stimuli": ("Calibration stimuli", "number of calibration and verification stimuli "
                              "delivered (limit: the most the protocol's calibration can need)"),
    "calibration_hottest_c": ("Hottest calibration stimulus", "highest calibration target in °C "
                              "(limit: the thermode cap in force)"),
    "calibration_rest_s": ("Shortest rest between calibration stimuli", "seconds from the thermode back at "
                           "neutral to the next calibration onset, the shortest one (limit: calibration.rest_s)"),
    "ts_pre_onset_error_s": ("TS_pre onset error", "largest |actual - planned| TS_pre onset in seconds "
                             "(limit: fidelity.max_onset_error_s)"),
    "ts_pre_interval_error_s": ("TS_pre interval error", "largest |actual - planned| interval between "
                                "consecutive TS_pre onsets in seconds (limit: fidelity.max_ts_interval_error_s)"),
    "ts_pre_delivered_error": ("TS_pre delivered vs target", "largest |delivered - target| of a TS_pre "
                               "stimulus (°C from the thermode trace, kPa from the algometer)"),
    "ts_post_onset_error_s": ("TS_post onset error", "largest |actual - planned| TS_post onset in seconds"),
    "ts_post_delivered_error": ("TS_post delivered vs target", "largest |delivered - target| of a TS_post "
                                "stimulus (°C or kPa)"),
    "cs_bath_min_c": ("Bath minimum during the immersion", "lowest bath reading in °C during the immersion "
                      "(limits: fidelity.bath_range_c)"),
    "cs_bath_mean_c": ("Bath mean during the immersion", "mean bath reading in °C during the immersion"),
    "cs_bath_max_c": ("Bath maximum during the immersion", "highest bath reading in °C during the immersion"),
    "cs_immersion_s": ("Immersion duration", "seconds the hand was in the cold water (planned: "
                       "cold_pressor.duration_s; limit: fidelity.max_immersion_shortfall_s shorter)"),
    "cs_withdrawal": ("Early withdrawal", "whether the hand was withdrawn before the planned end "
                      "(deviation: seconds after immersion)"),
    "cs_rating_time_s": ("Time of the hand rating", "seconds after immersion at which the hand rating was "
                         "asked (planned: cold_pressor.rating_at_s)"),
    "cs_end_to_ts_post_s": ("CS end to TS_post onset", "seconds from the end of the immersion (hand out) to "
                            "the first TS_post onset (limit: fidelity.max_cs_to_ts_post_s)"),
    "control_cs_end_to_ts_post_s": ("Control immersion end to control TS_post onset",
                                    "as cs_end_to_ts_post_s, for the control immersion"),
    "missing_ratings": ("Missing ratings", "ratings never given (every attempt timed out), TS and hand "
                        "(limit: fidelity.max_missing_ratings)"),
    "repeated_ratings": ("Repeated ratings", "rating attempts repeated after a missing one (allowed by "
                         "ratings.repeat_missing)"),
    "pauses": ("Pauses", "pauses during the visit (limit: fidelity.max_pauses); deviation: paused seconds"),
    "notes": ("Staff notes", "staff notes during the visit (reported)"),
    "adverse_events": ("Adverse events", "adverse events recorded during the visit (reported)"),
    "other_deviations": ("Other logged deviations", "deviation events besides the fidelity checks (e.g. "
                         "protocol override, calibration not reached, CS not noxious); deviation: those that "
                         "describe how the visit was run (all but 'CS not noxious'), outside limits when any"),
    "resume": ("Resumed", "times the session was resumed after an interruption (deviation: total gap in "
               "wall seconds; within limits when no resume broke a requirement)"),
}
"""Every requirement key of the fidelity block, with a short label and a description (exports use these)."""

REQUIREMENT_UNITS = {
    "acclimatization_s": "s", "calibration_hottest_c": "C", "calibration_rest_s": "s",
    "ts_pre_onset_error_s": "s", "ts_pre_interval_error_s": "s", "ts_post_onset_error_s": "s",
    "cs_bath_min_c": "C", "cs_bath_mean_c": "C", "cs_bath_max_c": "C", "cs_immersion_s": "s",
    "cs_rating_time_s": "s", "cs_end_to_ts_post_s": "s", "control_cs_end_to_ts_post_s": "s",
}
ENDS_SEGMENT = ("phase_enter", "resume_session", "session_end", "emergency_stop", "device_fault", "visit_fault",
                "crash")
_TIME_TOL_S = 1e-6
CUE_S = 2.0
COUNTED_KINDS = ("acclimatization_skipped", "info")
"""Deviation kinds reported by their own requirement (or informational only)."""
PARTICIPANT_KINDS = ("cs_not_noxious",)
"""Deviation kinds that describe the participant's response, not how the visit was run (listed, not a breach)."""
"""The 'stimulus coming' cue the session shows before every planned onset (= session.stimuli.CUE_S)."""


# ------------------------------------------------------------------------------------------ the plan
def fidelity_plan(protocol: Any) -> dict[str, Any]:
    """Return what the protocol plans and the fidelity limits (stored with the session's derivation values)."""
    p = protocol
    a, c, ts, cp = p.acclimatization, p.calibration, p.test_stimulus, p.cold_pressor
    return {
        "ts_modality": p.protocol.ts_modality, "thermode_cap_c": float(p.safety.thermode_cap_c),
        "neutral_c": float(p.safety.neutral_c), "rise_c_per_s": float(p.thermode.rise_c_per_s),
        "return_c_per_s": float(p.thermode.return_c_per_s),
        "acclimatization": {"duration_s": a.duration_s, "min_s": a.min_s, "max_s": a.max_s},
        "calibration": {"method": c.method, "start_c": c.start_c, "step_c": c.step_c, "rest_s": c.rest_s,
                        "stimulus_s": c.stimulus_s, "verify_n": c.verify_n, "max_refinements": c.max_refinements,
                        "staircase_trials": c.staircase_trials, "ppt_measurements": c.ppt_measurements,
                        "ppt_ramp_kpa_per_s": c.ppt_ramp_kpa_per_s},
        "test_stimulus": {"pre_repeats": ts.pre_repeats, "post_repeats": ts.post_repeats,
                          "interval_s": ts.interval_s, "post_delay_s": ts.post_delay_s, "duration_s": ts.duration_s},
        "cold_pressor": {"duration_s": min(cp.duration_s, cp.max_s), "rating_at_s": cp.rating_at_s},
        "control_enabled": bool(p.control_conditioning.enabled),
        "control_duration_s": float(p.control_conditioning.duration_s),
        "ratings": {"max_attempts": p.ratings.max_attempts, "repeat_missing": p.ratings.repeat_missing},
        "limits": p.fidelity.model_dump(),
    }

