"""The fidelity fields of summaries and exports: names, types, labels and the flat summary columns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cpm_session.record.fidelity.requirements import REQUIREMENT_UNITS, REQUIREMENTS

EXPORT_NAMES: dict[str, tuple[str, str]] = {
    "completed": ("fid_completed", "bool"), "acclimatization_s": ("fid_acclim_s", "number"),
    "acclimatization_skipped": ("fid_acclim_skipped", "bool"), "calibration_n_stimuli": ("fid_cal_n", "integer"),
    "calibration_hottest_c": ("fid_cal_hottest_c", "number"), "calibration_rest_s": ("fid_cal_rest_s", "number"),
    "ts_pre_onset_error_s": ("fid_pre_onset_err_s", "number"),
    "ts_pre_interval_error_s": ("fid_pre_interval_err_s", "number"),
    "ts_pre_delivered_error": ("fid_pre_deliv_err", "number"),
    "ts_post_onset_error_s": ("fid_post_onset_err_s", "number"),
    "ts_post_delivered_error": ("fid_post_deliv_err", "number"),
    "cs_bath_min_c": ("fid_bath_min_c", "number"), "cs_bath_mean_c": ("fid_bath_mean_c", "number"),
    "cs_bath_max_c": ("fid_bath_max_c", "number"), "cs_immersion_s": ("fid_immersion_s", "number"),
    "cs_withdrawal": ("fid_withdrawal", "bool"), "cs_rating_time_s": ("fid_cs_rating_t_s", "number"),
    "cs_end_to_ts_post_s": ("fid_cs_to_ts_post_s", "number"),
    "control_cs_end_to_ts_post_s": ("fid_ctl_cs_to_post_s", "number"),
    "missing_ratings": ("fid_missing_ratings", "integer"), "repeated_ratings": ("fid_repeated_ratings", "integer"),
    "pauses": ("fid_pauses", "integer"), "notes": ("fid_notes", "integer"), "adverse_events": ("fid_aes", "integer"),
    "other_deviations": ("fid_other_devs", "integer"), "resume": ("fid_resumes", "integer"),
}
"""Requirement -> (column / field name used by summarize, BIDS and REDCap, value type); `<name>_ok` is its flag."""
SESSION_FIELDS = {
    "fidelity_within_protocol": "whether the visit followed its protocol: every requirement measured and within "
                                "the protocol's [fidelity] limits",
    "fidelity_outside": "requirements outside their limits (';'-separated keys of results.fidelity.requirements)",
    "fidelity_not_measured": "requirements the log cannot show (e.g. no cold pressor in an aborted session)",
}


def export_fields() -> list[dict[str, str]]:
    """Return every fidelity field an export carries: name, dotted path in session.json, type, label, description."""
    base = "results.fidelity"
    out = [{"name": "fidelity_within_protocol", "path": f"{base}.within_protocol", "type": "bool",
            "label": "Within protocol", "description": SESSION_FIELDS["fidelity_within_protocol"], "unit": ""},
           {"name": "fidelity_outside", "path": f"{base}.outside_limits_text", "type": "text",
            "label": "Requirements outside limits", "description": SESSION_FIELDS["fidelity_outside"], "unit": ""},
           {"name": "fidelity_not_measured", "path": f"{base}.not_measured_text", "type": "text",
            "label": "Requirements not measured", "description": SESSION_FIELDS["fidelity_not_measured"], "unit": ""}]
    for key, (name, typ) in EXPORT_NAMES.items():
        label, desc = REQUIREMENTS[key]
        unit = REQUIREMENT_UNITS.get(key, "")
        out.append({"name": name, "path": f"{base}.requirements.{key}.value", "type": typ, "label": label,
                    "description": desc, "unit": unit})
        out.append({"name": f"{name}_ok", "path": f"{base}.requirements.{key}.within_limits", "type": "bool",
                    "label": f"{label}: within limits", "unit": "",
                    "description": f"whether '{label}' was within the protocol's limits (empty: not measured or "
                                   "not applicable)"})
    return out


def fidelity_columns(block: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the flat summary columns of a fidelity block: `fidelity_within_protocol`, `fidelity_outside`,
    `fidelity_not_measured`, and per requirement its EXPORT_NAMES name (its value) and `<name>_ok`."""
    cols: dict[str, Any] = {k: None for k in SESSION_FIELDS}
    for name, _typ in EXPORT_NAMES.values():
        cols[name] = None
        cols[f"{name}_ok"] = None
    if not isinstance(block, Mapping) or not isinstance(block.get("requirements"), Mapping):
        return cols
    cols["fidelity_within_protocol"] = bool(block.get("within_protocol"))
    cols["fidelity_outside"] = ";".join(str(x) for x in block.get("outside_limits") or [])
    cols["fidelity_not_measured"] = ";".join(str(x) for x in block.get("not_measured") or [])
    for k, e in block["requirements"].items():
        if k in EXPORT_NAMES and isinstance(e, Mapping):
            name = EXPORT_NAMES[k][0]
            v = e.get("value")
            cols[name] = v if isinstance(v, bool | int | float | str) or v is None else str(v)
            cols[f"{name}_ok"] = e.get("within_limits")
    return cols
