"""Export a data folder as a BIDS behavioural dataset (BIDS 1.9.0, `beh` datatype, no neural data).

Layout written into an empty OUT_DIR::

    dataset_description.json  README  participants.tsv  participants.json
    phenotype/<questionnaire>_<session>.tsv + .json   (one row per participant)
    sub-<label>/sub-<label>_sessions.tsv + .json
    sub-<label>/ses-<visit>/beh/sub-<label>_ses-<visit>_task-cpm_beh.tsv + .json
    sub-<label>/ses-<visit>/beh/sub-<label>_ses-<visit>_task-cpm_recording-<role>_physio.tsv.gz + .json
    sourcedata/<participant>/<session folder>/   (only with sourcedata=True: the hash-chained originals)

BIDS labels are alphanumeric, so a pseudonym like ``FM-012`` becomes ``FM012``; participants.tsv keeps
the original in ``source_id``. Session-level values (CPM results, integrity, amendments) go to
sessions.tsv, one row per session; ratings go to ``_beh.tsv``, one row per rating trial.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import statistics
from pathlib import Path
from typing import Any

from cpm_session import __version__
from cpm_session.export import (
    ExportError,
    SessionData,
    Study,
    amendment_text,
    collect_study,
    prepare_out_dir,
    questionnaire_labels,
    sessions_by_visit,
)
from cpm_session.record.fidelity import export_fields as fidelity_export_fields
from cpm_session.record.folder import get_path

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


# ----------------------------------------------------------------------------------------------- beh


def _durations(events: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    out: dict[tuple[str, str], Any] = {}
    for ev in events:
        if ev.get("event") == "stimulus":
            out[(str(ev.get("phase")), str(ev.get("trial")))] = ev.get("duration_s")
    return out


def beh_table(s: SessionData) -> tuple[list[str], list[list[str]], dict[str, Any]]:
    """Return (columns, rows, sidecar) of a session's ``_beh.tsv``: one row per ratings.csv row."""
    durations = _durations(s.events)
    known_sources = {src for _, src, _ in BEH_COLUMNS if src}
    extra = [c for c in (list(s.ratings[0].keys()) if s.ratings else []) if c not in known_sources]
    columns = [name for name, _, _ in BEH_COLUMNS] + extra
    rows: list[list[str]] = []
    flags: set[str] = set()
    phases: set[str] = set()
    for r in s.ratings:
        row = []
        for name, src, _ in BEH_COLUMNS:
            if name == "stimulus_duration":
                row.append(cell(durations.get((r.get("phase", ""), r.get("trial", "")))))
            elif name == "missing":
                row.append(bool_cell(r.get("missing") or ""))
            else:
                row.append(cell(r.get(src or "", "")))
        row += [cell(r.get(c, "")) for c in extra]
        flags.add(r.get("flag") or "")
        phases.add(r.get("phase") or "")
        rows.append(row)
    sidecar: dict[str, Any] = {
        "TaskName": TASK,
        "TaskDescription": "Conditioned Pain Modulation: a test stimulus rated 0-100 before and after a cold-water "
                           "hand immersion (conditioning stimulus); CPM = TS_pre - TS_post, positive = inhibition.",
        "Instructions": "Rate each stimulus on the 0-100 slider (0 = no pain, 100 = worst pain imaginable).",
        "SoftwareName": "cpm-session",
        "SoftwareVersion": str(s.header.get("software_version") or __version__),
    }
    for name, _, desc in BEH_COLUMNS:
        d = dict(desc)
        if name == "trial_type":
            d["Levels"] = {p: PHASE_LEVELS.get(p, f"Phase '{p}' as recorded") for p in sorted(phases - {""})}
        if name == "flag":
            d["Levels"] = {f: FLAG_LEVELS.get(f, f"Flag '{f}' as recorded by the engine") for f in sorted(flags - {""})}
            if not d["Levels"]:
                del d["Levels"]
        sidecar[name] = d
    for c in extra:
        sidecar[c] = {"LongName": c, "Description": f"Column '{c}' of the session's ratings.csv, as recorded."}
    return columns, rows, sidecar


# ----------------------------------------------------------------------------------------------- physio


def _grid(tf: list[float]) -> tuple[float, list[int]] | None:
    """Place irregular sample times on a regular grid at the finest interval; return (dt, slot of each
    sample; -1 for a sample that found no free slot within half an interval) or None when the grid would
    be mostly empty."""
    dts = [round(b - a, 6) for a, b in zip(tf, tf[1:], strict=False)]
    fine = min(d for d in dts if d > 0)
    slots: list[int] = []
    taken: set[int] = set()
    for t in tf:
        x = (t - tf[0]) / fine
        for cand in (round(x), int(x) + 1, int(x)):
            if cand not in taken and abs(x - cand) <= 0.5 + 1e-6:
                taken.add(cand)
                slots.append(cand)
                break
        else:
            slots.append(-1)
    last = max(slots)
    if last + 1 > MAX_GRID_FILL * len(tf):
        return None
    return fine, slots


def device_traces(s: SessionData) -> dict[str, tuple[list[str], list[list[str]], dict[str, Any]]]:
    """Return per device role (columns, rows, sidecar) for ``_recording-<role>_physio``.

    Columns are ``time`` (exact session seconds of the sample) and one per quantity the role reported.
    Regularly sampled traces (the usual 1 Hz) are written as they are. A trace whose rate changes (an
    algometer sampled faster during ramps) is laid on a regular grid at its finest interval, each
    sample in the row nearest its time and n/a rows in between, so SamplingFrequency holds; the time
    column still gives each sample's exact time. StartTime is the first sample's session time.
    """
    by_role: dict[str, dict[str, dict[str, str]]] = {}
    units: dict[tuple[str, str], str] = {}
    for r in s.devices:
        role, q = r.get("role") or "", r.get("quantity") or ""
        by_role.setdefault(role, {}).setdefault(r.get("t") or "", {})[q] = r.get("value") or ""
        units[(role, q)] = r.get("unit") or ""
    out: dict[str, tuple[list[str], list[list[str]], dict[str, Any]]] = {}
    for role, samples in sorted(by_role.items()):
        try:
            times = sorted(samples, key=float)
        except ValueError:
            continue
        if len(times) < 2:
            continue
        quantities = sorted({q for v in samples.values() for q in v})
        tf = [float(t) for t in times]
        dts = [b - a for a, b in zip(tf, tf[1:], strict=False)]
        dt = statistics.median(dts)
        if dt <= 0:
            continue
        rows = [[t] + [cell(samples[t].get(q)) for q in quantities] for t in times]
        note = ""
        if not all(abs(d - dt) <= SAMPLING_TOLERANCE * dt for d in dts):
            grid = _grid(tf)
            if grid is None:
                note = ("; sampling is irregular: one row per sample, the time column holds its exact session "
                        "time and SamplingFrequency is the median rate")
            else:
                dt, slots = grid
                gridded = [[NA] * (1 + len(quantities)) for _ in range(slots[-1] + 1)]
                dropped = 0
                for slot, row in zip(slots, rows, strict=True):
                    if slot < 0:
                        dropped += 1
                    else:
                        gridded[slot] = row
                rows = gridded
                note = (f"; the device's sampling rate varies, so samples sit on a regular {dt:g} s grid in the "
                        f"row nearest their time (n/a rows where there was no sample); the time column holds "
                        f"each sample's exact session time"
                        + (f"; {dropped} sample(s) closer than half an interval to another were left out "
                           "(all are in sourcedata devices.csv)" if dropped else ""))
        sidecar: dict[str, Any] = {
            "TaskName": TASK,
            "PhysioType": "generic",
            "SamplingFrequency": round(1.0 / dt, 9),
            "StartTime": tf[0],
            "Columns": ["time"] + quantities,
            "Description": f"{role} readings from the session's devices.csv{note}",
            "time": {"LongName": "Sample time", "Units": "s", "Description":
                     "Exact session time of the sample (the clock of onset in the _beh.tsv file); n/a in grid "
                     "rows without a sample."},
        }
        for q in quantities:
            unit = units.get((role, q), "")
            sidecar[q] = {"LongName": q, "Description": QUANTITY_DESCRIPTIONS.get(q, f"{q} reported by the {role}"),
                          "Units": BIDS_UNITS.get(unit, unit)}
        out[role] = (sidecar["Columns"], rows, sidecar)
    return out


def write_physio(path: Path, rows: list[list[str]]) -> None:
    """Write a header-less, gzip-compressed TSV (mtime 0, so identical data gives identical bytes)."""
    data = ("\n".join("\t".join(r) for r in rows) + "\n").encode("utf-8")
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(data)


# ----------------------------------------------------------------------------------------------- dataset


def _readme(study: Study, n_sub: int, n_ses: int) -> str:
    return f"""Conditioned Pain Modulation (CPM) sessions
=========================================

Exported by cpm-session {__version__} from {study.data_dir.name}/: {n_sub} participant(s), {n_ses} session(s).

Each session: a test stimulus (contact heat or pressure) rated 0-100 before (TS_pre) and after
(TS_post) a cold-water hand immersion (conditioning stimulus). CPM = TS_pre - TS_post; positive =
inhibition. Ratings are in sub-*/ses-*/beh/*_beh.tsv (one row per rating trial); device traces
(thermode, bath, algometer) in *_recording-<device>_physio.tsv.gz; session-level results, integrity
and amendments in sub-*/sub-*_sessions.tsv; questionnaires in phenotype/<name>_<session>.tsv.

Participant labels are the pseudonyms with non-alphanumeric characters removed; participants.tsv
maps each label to the original pseudonym (source_id). Session labels are the visit names (a
repeated visit gets the suffix R2, R3, ... in start order).

Amendments: values are the effective ones after documented corrections; each correction (old value,
new value, reason, operator, time) is listed in the sessions.tsv column 'amendments' and stays in the
original hash-chained event log.
"""


def export_bids(data_dir: str | Path, out_dir: str | Path, *, include_unverified: bool = False,
                sourcedata: bool = False) -> list[Path]:
    """Write the BIDS dataset for `data_dir` into the empty folder `out_dir`; return the files written."""
    study = collect_study(data_dir, include_unverified=include_unverified)
    out = prepare_out_dir(out_dir)
    written: list[Path] = []

    def put_tsv(p: Path, cols: list[str], rows: list[list[str]]) -> None:
        p.parent.mkdir(parents=True, exist_ok=True)
        write_tsv(p, cols, rows)
        written.append(p)

    def put_json(p: Path, obj: Any) -> None:
        p.parent.mkdir(parents=True, exist_ok=True)
        write_json(p, obj)
        written.append(p)

    groups = sessions_by_visit(study.sessions)
    sub_of: dict[str, str] = {}
    for pid in sorted({pid for pid, _ in groups}):
        label = bids_label(pid, "participant ID")
        clash = [p for p, lab in sub_of.items() if lab == label]
        if clash:
            raise ExportError(f"participant IDs {clash[0]!r} and {pid!r} both become BIDS label sub-{label}; "
                              f"rename one (amend 'participant') before exporting")
        sub_of[pid] = label
    ses_label_of: dict[Path, str] = {}
    visit_of_label: dict[tuple[str, str], str] = {}
    for (pid, visit), sessions in groups.items():
        base = bids_label(visit, "visit")
        for k, s in enumerate(sessions, start=1):
            ses = base if k == 1 else f"{base}R{k}"
            other = visit_of_label.setdefault((sub_of[pid], ses), visit)
            if other != visit:
                raise ExportError(f"visits {other!r} and {visit!r} of participant {pid!r} both become BIDS session "
                                  f"label ses-{ses}; rename one (amend 'visit') before exporting")
            ses_label_of[s.path] = ses

    put_json(out / "dataset_description.json", {
        "Name": DATASET_NAME, "BIDSVersion": BIDS_VERSION, "DatasetType": "raw",
        "GeneratedBy": [{"Name": "cpm-session", "Version": __version__,
                         "Description": "cpm-session export bids: session folders -> BIDS beh dataset"}],
    })
    readme = out / "README"
    readme.write_text(_readme(study, len(sub_of), len(study.sessions)), encoding="utf-8")
    written.append(readme)
    put_tsv(out / "participants.tsv", ["participant_id", "source_id"],
            [[f"sub-{lab}", pid] for pid, lab in sub_of.items()])
    put_json(out / "participants.json", {
        "participant_id": {"LongName": "Participant label", "Description": "BIDS participant label (sub-<label>)."},
        "source_id": {"LongName": "Source pseudonym", "Description":
                      "Participant pseudonym as used by cpm-session (data folder name); the BIDS label is this "
                      "pseudonym without non-alphanumeric characters."},
    })

    ses_rows: dict[str, list[list[str]]] = {}
    for (pid, _visit), sessions in groups.items():
        sub = sub_of[pid]
        for s in sessions:
            ses = ses_label_of[s.path]
            stem = f"sub-{sub}_ses-{ses}_task-{TASK}"
            beh_dir = out / f"sub-{sub}" / f"ses-{ses}" / "beh"
            cols, rows, side = beh_table(s)
            put_tsv(beh_dir / f"{stem}_beh.tsv", cols, rows)
            put_json(beh_dir / f"{stem}_beh.json", side)
            for role, (_pcols, prows, pside) in device_traces(s).items():
                rec = bids_label(role, "device role")
                gz = beh_dir / f"{stem}_recording-{rec}_physio.tsv.gz"
                gz.parent.mkdir(parents=True, exist_ok=True)
                write_physio(gz, prows)
                written.append(gz)
                put_json(beh_dir / f"{stem}_recording-{rec}_physio.json", pside)
            row = [f"ses-{ses}", acq_time(s.header.get("start_utc"))]
            for name, dotted, _ in SESSION_COLUMNS:
                if name == "source_folder":
                    row.append(cell(s.path.name))
                elif dotted == "@station":
                    row.append(cell(s.header.get("station_name") or s.header.get("station")))
                elif name == "integrity":
                    row.append(cell(s.integrity))
                elif name == "amendments":
                    row.append(cell(amendment_text(s.header.get("amendments") or [])))
                else:
                    row.append(cell(get_path(s.header, dotted.split("."))))
            ses_rows.setdefault(sub, []).append(row)
    ses_cols = ["session_id", "acq_time"] + [name for name, _, _ in SESSION_COLUMNS]
    ses_side: dict[str, Any] = {
        "session_id": {"LongName": "Session label", "Description": "BIDS session label (ses-<visit>)."},
        "acq_time": {"LongName": "Start time", "Description": "UTC start time of the session (seconds precision)."},
    }
    ses_side.update({name: _with_observed_levels(desc, [r[2 + k] for rows in ses_rows.values() for r in rows])
                     for k, (name, _, desc) in enumerate(SESSION_COLUMNS)})
    for sub, rows in ses_rows.items():
        put_tsv(out / f"sub-{sub}" / f"sub-{sub}_sessions.tsv", ses_cols, rows)
        put_json(out / f"sub-{sub}" / f"sub-{sub}_sessions.json", ses_side)

    _write_phenotype(study, out, sub_of, ses_label_of, put_tsv, put_json)
    if sourcedata:
        for s in study.sessions:
            dst = out / "sourcedata" / s.path.parent.name / s.path.name
            shutil.copytree(s.path, dst)
            written.extend(sorted(p for p in dst.rglob("*") if p.is_file()))
    return written


def _column_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def _write_phenotype(study: Study, out: Path, sub_of: dict[str, str], ses_label_of: dict[Path, str],
                     put_tsv: Any, put_json: Any) -> None:
    """Write phenotype/<questionnaire>_<session>.tsv (+ .json), one row per participant.

    BIDS indexes phenotype tables by participant_id alone, so each session label gets its own file
    (the session_id column repeats it for convenience).
    """
    names = sorted({n for s in study.sessions for n in s.questionnaires})
    for name in names:
        qdef = _questionnaire_definition(name)
        per_ses: dict[str, list[tuple[SessionData, dict[str, Any]]]] = {}
        for s in study.sessions:
            q = s.questionnaires.get(name)
            if isinstance(q, dict):
                per_ses.setdefault(ses_label_of[s.path], []).append((s, q))
        for ses, entries in sorted(per_ses.items()):
            items: list[str] = []
            scores: list[str] = []
            for _, q in entries:
                items += [i for i in (q.get("answers") or {}) if i not in items]
                scores += [sc for sc in (q.get("scores") or {}) if sc not in scores]
            cols = ["participant_id", "session_id", "entered_by"] + [f"item_{_column_name(i)}" for i in items] \
                + [f"score_{_column_name(sc)}" for sc in scores] + ["amendments"]
            rows = []
            for s, q in sorted(entries, key=lambda e: sub_of[e[0].participant]):
                am = [a for a in s.header.get("amendments") or []
                      if str(a.get("field", "")).startswith(f"questionnaires.{name}.")]
                rows.append([f"sub-{sub_of[s.participant]}", f"ses-{ses}", cell(q.get("entered_by"))]
                            + [cell((q.get("answers") or {}).get(i)) for i in items]
                            + [cell((q.get("scores") or {}).get(sc)) for sc in scores] + [cell(amendment_text(am))])
            side: dict[str, Any] = {
                "MeasurementToolMetadata": {"Description": qdef.get("title") or f"Questionnaire '{name}'"},
                "participant_id": {"LongName": "Participant label", "Description": "BIDS participant label."},
                "session_id": {"LongName": "Session label", "Description": "BIDS session label of the visit."},
                "entered_by": {"LongName": "Entered by", "Description": "Who entered the answers.",
                               "Levels": {"participant": "The participant on screen",
                                          "staff": "Staff, from a paper form"}},
                "amendments": {"LongName": "Amendments", "Description":
                               "Corrections of this questionnaire's values (field: old -> new (reason; operator, "
                               "time)); n/a when there is none."},
            }
            for i in items:
                text = qdef.get("items", {}).get(i)
                side[f"item_{_column_name(i)}"] = {"LongName": f"{name} item {i}", "Description":
                                                  f"Answer to item '{i}'" + (f": {text}" if text else "") + "."}
            for sc in scores:
                side[f"score_{_column_name(sc)}"] = {"LongName": f"{name} {sc} score", "Description":
                                                    f"Score '{sc}' of {name}, computed by cpm-session's scoring rules."}
            put_tsv(out / "phenotype" / f"{name}_{ses}.tsv", cols, rows)
            put_json(out / "phenotype" / f"{name}_{ses}.json", side)


def _questionnaire_definition(name: str) -> dict[str, Any]:
    """Return {"title": ..., "items": {id: text}} (texts only for wording that ships with cpm-session)."""
    return questionnaire_labels(name)
