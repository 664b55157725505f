"""BIDS export, part 1: constants, the beh.tsv and sessions.tsv column tables with their sidecar
descriptions, and the cell/file formatting helpers (split out of `bids.py`, which re-exports them)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from cpm_session.export import ExportError
from cpm_session.record.fidelity import export_fields as fidelity_export_fields

BIDS_VERSION = "1.9.0"
TASK = "cpm"
NA = "n/a"
DATASET_NAME = "Conditioned Pain Modulation sessions"
SAMPLING_TOLERANCE = 0.01
"""Relative deviation of sample intervals from their median above which a trace counts as irregular."""
MAX_GRID_FILL = 50
"""An irregular trace is put on a regular grid only if the grid has at most this many rows per sample."""

PHASE_LEVELS = {
    "calibration": "Calibration stimulus (finding the test-stimulus intensity)",
    "verification": "Verification of the calibrated test-stimulus intensity",
    "ts_pre": "Test stimulus before the conditioning stimulus (TS_pre)",
    "cs": "Rating of the conditioning stimulus (cold-water hand immersion) while it is applied",
    "ts_post": "Test stimulus after the conditioning stimulus (TS_post)",
    "ppt": "Pressure pain threshold measurement",
    "control_cs": "Rating during the control (sham, neutral-water) immersion",
    "control_ts_post": "Test stimulus after the control immersion",
}
FLAG_LEVELS = {
    "early_withdrawal": "The hand was withdrawn from the bath before the rating time",
    "not_noxious": "The conditioning stimulus was rated below the protocol's minimum (not painful enough)",
    "missing": "No rating was given",
    "timeout": "The rating prompt timed out",
}
BOOL_LEVELS = {"true": "Yes", "false": "No"}
UNIT_LEVELS = {"C": "Degrees Celsius (thermode or bath temperature)", "kPa": "Kilopascal (algometer pressure)"}
BIDS_UNITS = {"C": "oC", "kPa": "kPa", "s": "s"}
"""devices.csv units -> BIDS (CMIXF-12) units."""

# beh.tsv columns: (name, ratings.csv source column or None, sidecar description)
BEH_COLUMNS: list[tuple[str, str | None, dict[str, Any]]] = [
    ("onset", "onset_t", {"LongName": "Onset", "Units": "s", "Description":
        "Onset of the stimulus (for 'cs' rows: of the rating prompt) in seconds of session time, the clock of "
        "the session's event log (0 = session start; see StartTime in the physio sidecars)."}),
    ("stimulus_duration", None, {"LongName": "Stimulus duration", "Units": "s", "Description":
        "Planned duration of the stimulus at its target intensity, from the session's stimulus event; n/a when "
        "the row is not a discrete stimulus (conditioning-stimulus ratings)."}),
    ("trial_type", "phase", {"LongName": "Phase", "Description": "Phase of the CPM visit the rating belongs to.",
                             "Levels": PHASE_LEVELS}),
    ("trial", "trial", {"LongName": "Trial number", "Description": "Trial number within the phase, from 1."}),
    ("attempt", "attempt", {"LongName": "Attempt", "Description":
        "Attempt number of the rating prompt (a missing rating may be asked again), from 1."}),
    ("site", "site", {"LongName": "Stimulation site", "Description": "Body site of the stimulus."}),
    ("intensity", "intensity", {"LongName": "Stimulus intensity", "Description":
        "Target intensity of the stimulus in the unit given in intensity_unit (thermode temperature in degrees "
        "Celsius, pressure in kPa, bath temperature for cold-pressor ratings)."}),
    ("intensity_unit", "intensity_unit", {"LongName": "Intensity unit", "Description": "Unit of the intensity column.",
                                          "Levels": UNIT_LEVELS}),
    ("rating", "rating", {"LongName": "Pain rating", "Description":
        "Pain rating on a 0-100 scale (0 = no pain, 100 = worst pain imaginable); n/a when missing."}),
    ("response_time", "rt_s", {"LongName": "Response time", "Units": "s", "Description":
        "Time from the rating prompt to the confirmed rating."}),
    ("planned_onset", "planned_onset_t", {"LongName": "Planned onset", "Units": "s", "Description":
        "Onset the protocol planned for this stimulus, in session seconds (compare with onset for timing accuracy)."}),
    ("missing", "missing", {"LongName": "Missing rating", "Description": "Whether no rating was given in time.",
                            "Levels": BOOL_LEVELS}),
    ("flag", "flag", {"LongName": "Quality flag", "Description":
        "Quality flag recorded by the session engine; n/a when there is none."}),
]

QUANTITY_DESCRIPTIONS = {
    "zone_mean_c": "Mean temperature of the active thermode zones, as reported by the thermode",
    "bath_c": "Water temperature of the cold-pressor bath, as reported by the bath thermometer",
    "pressure_kpa": "Pressure applied by the algometer",
}

# sessions.tsv columns: (name, header dotted path, sidecar description)
SESSION_COLUMNS: list[tuple[str, str, dict[str, Any]]] = [
    ("visit", "visit", {"LongName": "Visit", "Description": "Visit name in the protocol (effective value after amendments)."}),
    ("source_folder", "", {"LongName": "Source folder", "Description":
        "Name of the original session folder (<visit>-<UTC start stamp>) below the participant's data folder."}),
    ("status", "status", {"LongName": "Session status", "Description": "How the session ended.", "Levels": {
        "completed": "Completed as planned", "aborted": "Stopped before the end", "running":
        "Never closed (process killed)", "paused_fault": "Paused by a device fault and never resumed"}}),
    ("protocol_name", "protocol_name", {"LongName": "Protocol", "Description": "Name of the protocol file used."}),
    ("protocol_sha256", "protocol_sha256", {"LongName": "Protocol SHA-256", "Description":
        "SHA-256 of the protocol file's bytes, as recorded when the session started."}),
    ("station", "@station", {"LongName": "Station", "Description": "Name of the lab station (hardware file)."}),
    ("operator", "operator", {"LongName": "Operator", "Description": "Initials of the operator who ran the session."}),
    ("simulate", "simulate", {"LongName": "Simulated", "Description":
        "Whether the session ran with simulated devices and participant.", "Levels": BOOL_LEVELS}),
    ("ts_modality", "results.ts_modality", {"LongName": "Test-stimulus modality", "Description":
        "Modality of the test stimulus.", "Levels": {"thermal": "Contact heat (thermode)", "pressure": "Pressure (algometer)"}}),
    ("ts_intensity", "results.ts_intensity", {"LongName": "Test-stimulus intensity", "Description":
        "Intensity of the test stimulus in the unit given in ts_unit."}),
    ("ts_unit", "results.ts_unit", {"LongName": "Test-stimulus unit", "Description": "Unit of ts_intensity.",
                                    "Levels": UNIT_LEVELS}),
    ("pain60_c", "results.pain60_c", {"LongName": "Pain-60 temperature", "Units": "oC", "Description":
        "Thermode temperature calibrated to a pain rating of 60/100 (thermal protocols)."}),
    ("ppt_kpa", "results.ppt_kpa", {"LongName": "Pressure pain threshold", "Units": "kPa", "Description":
        "Pressure pain threshold (pressure protocols)."}),
    ("ts_pre", "results.ts_pre", {"LongName": "TS_pre", "Description":
        "Mean 0-100 pain rating of the test stimuli before the conditioning stimulus."}),
    ("ts_post", "results.ts_post", {"LongName": "TS_post", "Description":
        "Mean 0-100 pain rating of the test stimuli after the conditioning stimulus."}),
    ("cpm_abs", "results.cpm_abs", {"LongName": "CPM (absolute)", "Description":
        "Conditioned pain modulation: TS_pre - TS_post in rating points; positive = inhibition."}),
    ("cpm_pct", "results.cpm_pct", {"LongName": "CPM (percent)", "Units": "%", "Description":
        "CPM as a percentage of TS_pre: (TS_pre - TS_post) / TS_pre * 100; n/a when TS_pre is 0."}),
    ("cpm_category", "results.cpm_category", {"LongName": "CPM category", "Description":
        "CPM classified with the protocol's threshold.", "Levels": {
            "inhibition": "CPM above the positive threshold", "none": "CPM within the threshold band",
            "facilitation": "CPM below the negative threshold"}}),
    ("cs_rating_30s", "results.cs_rating_30s", {"LongName": "Conditioning-stimulus rating", "Description":
        "0-100 pain rating of the hand in the cold water at the protocol's rating time (30 s)."}),
    ("cs_rating_flag", "results.cs_rating_flag", {"LongName": "Conditioning-stimulus flag", "Description":
        "Quality flag of the conditioning-stimulus rating; n/a when there is none.", "Levels": {
            k: FLAG_LEVELS[k] for k in ("early_withdrawal", "not_noxious", "missing")}}),
    ("withdrawal_s", "results.withdrawal_s", {"LongName": "Withdrawal time", "Units": "s", "Description":
        "Time after immersion at which the hand was withdrawn; n/a if it stayed in for the full duration."}),
    ("bath_mean_c", "results.bath_mean_c", {"LongName": "Bath mean temperature", "Units": "oC", "Description":
        "Mean bath temperature during the immersion."}),
    ("bath_min_c", "results.bath_min_c", {"LongName": "Bath minimum temperature", "Units": "oC", "Description":
        "Minimum bath temperature during the immersion."}),
    ("bath_max_c", "results.bath_max_c", {"LongName": "Bath maximum temperature", "Units": "oC", "Description":
        "Maximum bath temperature during the immersion."}),
    ("calibration_method", "results.calibration.method", {"LongName": "Calibration method", "Description":
        "How the test-stimulus intensity was calibrated.", "Levels": {
            "ascending": "Ascending series of stimuli", "staircase": "Staircase around the target rating",
            "ppt_mean": "Pressure protocols: test-stimulus pressure from the mean pressure pain threshold"}}),
    ("calibration_n_stimuli", "results.calibration.n_stimuli", {"LongName": "Calibration stimuli", "Description":
        "Number of calibration stimuli."}),
    ("calibration_slope", "results.calibration.slope", {"LongName": "Calibration slope", "Description":
        "Slope of the rating-intensity fit (rating points per intensity unit)."}),
    ("calibration_intercept", "results.calibration.intercept", {"LongName": "Calibration intercept", "Description":
        "Intercept of the rating-intensity fit (rating points)."}),
    ("calibration_r2", "results.calibration.r2", {"LongName": "Calibration R2", "Description":
        "Coefficient of determination of the rating-intensity fit."}),
    ("calibration_outcome", "results.calibration.outcome", {"LongName": "Calibration outcome", "Description":
        "Outcome of the calibration as recorded by the engine (e.g. 'ok')."}),
    ("integrity", "", {"LongName": "Integrity check", "Description":
        "Result of `cpm-session verify` on the source folder at export time: 'verified' or 'FAILED: <problem>'."}),
    ("amendments", "", {"LongName": "Amendments", "Description":
        "Corrections appended to the session's event log after the fact, in order: 'field: old -> new (reason: ...; "
        "by <operator> at <UTC time>)', separated by ' | '. Values in this table are the amended (effective) ones; "
        "the originals stay in the source log. n/a when there is none."}),
]

SESSION_COLUMNS += [  # protocol fidelity (record/fidelity.py): one column per requirement and its within-limits flag
    (f["name"], f["path"], {"LongName": f["label"], "Description": f["description"][0].upper() + f["description"][1:]
                            + (" (n/a: not measured or not applicable; see results.fidelity in session.json)."),
                            **({"Units": {"C": "oC"}.get(f["unit"], f["unit"])} if f["unit"] else {}),
                            **({"Levels": BOOL_LEVELS} if f["type"] == "bool" else {})})
    for f in fidelity_export_fields()]


def _with_observed_levels(desc: dict[str, Any], values: list[str]) -> dict[str, Any]:
    """Return `desc` with every observed value described in its Levels (unknown ones 'as recorded')."""
    if "Levels" not in desc:
        return desc
    levels = dict(desc["Levels"])
    for v in sorted(set(values) - {NA} - set(levels)):
        levels[v] = f"'{v}' as recorded by the session engine"
    return dict(desc, Levels=levels)


def bids_label(text: str, what: str) -> str:
    """Return `text` with everything but letters and digits removed (BIDS labels are alphanumeric)."""
    label = re.sub(r"[^A-Za-z0-9]", "", text)
    if not label:
        raise ExportError(f"{what} {text!r} has no letters or digits to make a BIDS label from")
    return label


def cell(value: Any) -> str:
    """Format one TSV cell: n/a for missing, lower-case booleans, JSON for lists/objects, text otherwise."""
    if value is None or value == "":
        return NA
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    text = str(value)
    return text.replace("\t", " ").replace("\n", " ").replace("\r", " ")


def bool_cell(text: str) -> str:
    """Normalise a boolean written by the engine (True/False/1/0/true/false) to true/false."""
    t = text.strip().lower()
    if t in ("true", "1", "yes"):
        return "true"
    if t in ("false", "0", "no"):
        return "false"
    return cell(text)


def write_tsv(path: Path, columns: list[str], rows: list[list[str]]) -> None:
    """Write a TSV with a header line and LF line endings."""
    lines = ["\t".join(columns)] + ["\t".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_json(path: Path, obj: Any) -> None:
    """Write a JSON sidecar (UTF-8, indented)."""
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def acq_time(start_utc: Any) -> str:
    """Return a BIDS datetime (YYYY-MM-DDThh:mm:ss.ffffffZ would be allowed; seconds kept with Z)."""
    if not isinstance(start_utc, str) or len(start_utc) < 19:
        return NA
    return start_utc[:19] + "Z"

