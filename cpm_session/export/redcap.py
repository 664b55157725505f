"""Export a data folder for a longitudinal REDCap project (one arm, one event per visit).

Files written into an empty OUT_DIR:

- ``data_dictionary.csv``: the REDCap data dictionary (the 18 standard columns, ``record_id`` first;
  forms ``cpm_session``, ``ts_ratings``, one per questionnaire, ``adverse_events``).
- ``arms.csv``, ``events.csv``, ``instrument-designations.csv`` (arm_num, unique_event_name, form) and
  ``repeating-instruments.csv`` (adverse_events repeats): the longitudinal set-up.
- ``data.csv``: the records, ready for the Data Import Tool: ``record_id`` (the pseudonym),
  ``redcap_event_name`` (``<visit>_arm_1``), ``redcap_repeat_instrument``/``redcap_repeat_instance``
  (adverse events), CPM results, TS ratings, questionnaire items and scores. Values are the
  effective ones after amendments; the ``amendments`` field says what was corrected and why.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

DICTIONARY_HEADERS = [
    "Variable / Field Name", "Form Name", "Section Header", "Field Type", "Field Label",
    "Choices, Calculations, OR Slider Labels", "Field Note", "Text Validation Type OR Show Slider Number",
    "Text Validation Min", "Text Validation Max", "Identifier?", "Branching Logic (Show field only if...)",
    "Required Field?", "Custom Alignment", "Question Number (surveys only)", "Matrix Group Name",
    "Matrix Ranking?", "Field Annotation",
]
MAX_NAME = 26
"""REDCap warns about variable names longer than 26 characters (they break some statistics exports)."""
ARM = 1
RECORD_ID = "record_id"
FORM_SESSION = "cpm_session"
FORM_TS = "ts_ratings"
FORM_AE = "adverse_events"
COMPLETE = "2"
"""REDCap's form status code for Complete."""
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
CODE_PATTERN = re.compile(r"^[A-Za-z0-9_]+$")
"""Raw values REDCap accepts as dropdown/radio codes."""

KNOWN_CHOICES = {
    "session_status": ["completed", "aborted", "running", "paused_fault"],
    "ts_modality": ["thermal", "pressure"],
    "ts_unit": ["C", "kPa"],
    "cpm_category": ["inhibition", "none", "facilitation"],
    "cs_rating_flag": ["early_withdrawal", "not_noxious", "missing"],
}
AE_FIELDS = ["ae_id", "description", "onset_date", "severity", "serious", "relatedness", "action_taken", "outcome",
             "operator"]


@dataclass
class Field:
    """One row of the data dictionary plus where its value comes from."""

    name: str
    form: str
    ftype: str  # text | notes | yesno | dropdown | radio
    label: str
    source: str = ""  # dotted path into the effective header, or a special key
    choices: str = ""
    note: str = ""
    validation: str = ""
    vmin: str = ""
    vmax: str = ""
    section: str = ""
    annotation: str = ""

    def row(self) -> list[str]:
        """Return the data-dictionary row (18 columns)."""
        return [self.name, self.form, self.section, self.ftype, self.label, self.choices, self.note,
                self.validation, self.vmin, self.vmax, "", "", "", "", "", "", "", self.annotation]


def redcap_name(text: str, used: set[str]) -> str:
    """Return a unique REDCap variable name for `text`: lower case, [a-z0-9_], starts with a letter, ≤ 26."""
    name = re.sub(r"[^a-z0-9_]", "_", text.lower())
    name = re.sub(r"_+", "_", name).strip("_") or "v"
    if not name[0].isalpha():
        name = "v_" + name
    base = name[:MAX_NAME].rstrip("_")
    name, k = base, 2
    while name in used:
        suffix = f"_{k}"
        name = base[:MAX_NAME - len(suffix)].rstrip("_") + suffix
        k += 1
    used.add(name)
    return name


def event_name(visit: str) -> str:
    """Return REDCap's unique event name for a visit in arm 1 (``baseline`` -> ``baseline_arm_1``)."""
    slug = re.sub(r"[^a-z0-9]+", "_", visit.lower()).strip("_") or "visit"
    return f"{slug}_arm_{ARM}"


def num(value: Any) -> str:
    """Format a number for REDCap's number validation (plain decimal, no exponent); '' when missing."""
    if value is None or value == "" or isinstance(value, bool):
        return ""
    if isinstance(value, int):
        return str(value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if x != x or x in (float("inf"), float("-inf")):
        return ""
    text = repr(x)
    if "e" in text or "E" in text:
        text = f"{x:.15f}".rstrip("0").rstrip(".")
    return text[:-2] if text.endswith(".0") else text


def yesno(value: Any) -> str:
    """Return '1'/'0' for a boolean, '' when unknown."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        return {"true": "1", "1": "1", "yes": "1", "false": "0", "0": "0", "no": "0"}.get(value.strip().lower(), "")
    return "1" if value else "0"


def redcap_datetime(iso_utc: Any) -> str:
    """Return REDCap's datetime_seconds_ymd text (YYYY-MM-DD HH:MM:SS, UTC) from ISO 8601."""
    if not isinstance(iso_utc, str) or not iso_utc:
        return ""
    try:
        t = dt.datetime.fromisoformat(iso_utc.replace("Z", "+00:00"))
    except ValueError:
        return ""
    if t.tzinfo is not None:
        t = t.astimezone(dt.UTC)
    return t.strftime("%Y-%m-%d %H:%M:%S")


def redcap_date(text: Any) -> str:
    """Return YYYY-MM-DD (date_ymd) from a date or datetime text; '' when it is not one."""
    if not isinstance(text, str) or len(text) < 10:
        return ""
    try:
        return dt.date.fromisoformat(text[:10]).isoformat()
    except ValueError:
        return ""


CHOICE_LABELS = {"C": "°C", "kPa": "kPa", "none": "None (within threshold)", "paused_fault": "Paused by a device fault"}


def _choices(values: list[str]) -> str:
    return " | ".join(f"{v}, {_clean_label(CHOICE_LABELS.get(v, v.replace('_', ' ').capitalize()))}" for v in values)


def _clean_label(text: str) -> str:
    """Return a choice label safe inside REDCap's 'code, label | code, label' syntax."""
    return " ".join(text.replace("|", "/").split())


# --------------------------------------------------------------------------------------------- dictionary


def _session_fields(used: set[str], study: Study) -> list[Field]:
    f = FORM_SESSION

    def n(x: str) -> str:
        return redcap_name(x, used)

    def cat(name: str, path: str, label: str) -> Field:
        observed = {str(v) for s in study.sessions for v in [get_path(s.header, path.split("."))] if v not in (None, "")}
        values = KNOWN_CHOICES[name] + sorted(observed - set(KNOWN_CHOICES[name]))
        if not all(CODE_PATTERN.fullmatch(v) for v in values):  # not codable: keep the text as it is
            return Field(n(name), f, "text", label, path, note="one of: " + ", ".join(values))
        return Field(n(name), f, "dropdown", label, path, choices=_choices(values))

    def number(name: str, path: str, label: str, note: str = "", vmin: str = "", vmax: str = "") -> Field:
        return Field(n(name), f, "text", label, path, note=note, validation="number", vmin=vmin, vmax=vmax)

    return [
        Field(n("session_folder"), f, "text", "Session folder", "@folder", section="Session",
              note="<visit>-<UTC start stamp> below the participant's data folder"),
        Field(n("session_start"), f, "text", "Session start (UTC)", "@start", validation="datetime_seconds_ymd"),
        Field(n("session_end"), f, "text", "Session end (UTC)", "@end", validation="datetime_seconds_ymd"),
        cat("session_status", "status", "How the session ended"),
        Field(n("protocol_name"), f, "text", "Protocol", "protocol_name"),
        Field(n("protocol_sha256"), f, "text", "Protocol file SHA-256", "protocol_sha256"),
        Field(n("station"), f, "text", "Station", "@station"),
        Field(n("session_operator"), f, "text", "Operator (initials)", "operator"),
        Field(n("simulated"), f, "yesno", "Simulated session?", "simulate"),
        cat("ts_modality", "results.ts_modality", "Test-stimulus modality"),
        number("ts_intensity", "results.ts_intensity", "Test-stimulus intensity", "unit in ts_unit"),
        cat("ts_unit", "results.ts_unit", "Test-stimulus unit"),
        number("pain60_c", "results.pain60_c", "Pain-60 temperature (°C)", "thermal protocols"),
        number("ppt_kpa", "results.ppt_kpa", "Pressure pain threshold (kPa)", "pressure protocols"),
        number("ts_pre", "results.ts_pre", "TS_pre: mean rating before the conditioning stimulus", "0-100",
               "0", "100"),
        number("ts_post", "results.ts_post", "TS_post: mean rating after the conditioning stimulus", "0-100",
               "0", "100"),
        number("cpm_abs", "results.cpm_abs", "CPM (TS_pre - TS_post)", "rating points; positive = inhibition",
               "-100", "100"),
        number("cpm_pct", "results.cpm_pct", "CPM (% of TS_pre)", "empty when TS_pre is 0"),
        cat("cpm_category", "results.cpm_category", "CPM category"),
        Field(n("inhibition"), f, "yesno", "Inhibition (CPM above threshold)?", "results.inhibition"),
        number("cs_rating_30s", "results.cs_rating_30s", "Cold-water hand pain rating at 30 s", "0-100", "0", "100"),
        cat("cs_rating_flag", "results.cs_rating_flag", "Conditioning-stimulus rating flag"),
        number("withdrawal_s", "results.withdrawal_s", "Hand withdrawn after (s)", "empty if it stayed in"),
        number("bath_mean_c", "results.bath_mean_c", "Bath mean temperature (°C)"),
        number("bath_min_c", "results.bath_min_c", "Bath minimum temperature (°C)"),
        number("bath_max_c", "results.bath_max_c", "Bath maximum temperature (°C)"),
        Field(n("calib_method"), f, "text", "Calibration method", "results.calibration.method",
              section="Calibration"),
        Field(n("calib_n_stimuli"), f, "text", "Calibration stimuli", "results.calibration.n_stimuli",
              validation="integer"),
        number("calib_slope", "results.calibration.slope", "Calibration slope (rating points per unit)"),
        number("calib_intercept", "results.calibration.intercept", "Calibration intercept"),
        number("calib_r2", "results.calibration.r2", "Calibration fit R²", "", "0", "1"),
        Field(n("calib_outcome"), f, "text", "Calibration outcome", "results.calibration.outcome"),
        *_fidelity_fields(n, f),  # protocol fidelity (record/fidelity.py)
        Field(n("integrity"), f, "text", "Integrity check at export", "@integrity", section="Record",
              note="'verified' or 'FAILED: <problem>' (cpm-session verify)"),
        Field(n("amendments"), f, "notes", "Amendments (field: old -> new, reason, operator, time)", "@amendments",
              note="values in this record are the amended ones; the originals stay in the session log"),
        Field(n("other_attempts"), f, "notes", "Other session folders for this visit", "@others",
              note="repeated or aborted attempts not exported as this event's values"),
    ]


def _fidelity_fields(n: Callable[[str], str], form: str) -> list[Field]:
    """Return the protocol-fidelity fields: within protocol, and per requirement its value and within-limits flag."""
    out = []
    for i, d in enumerate(fidelity_export_fields()):
        unit = {"C": " (°C)", "s": " (s)"}.get(d["unit"], "")
        kind = {"bool": ("yesno", ""), "number": ("text", "number"), "integer": ("text", "integer")}.get(
            d["type"], ("text", ""))
        out.append(Field(n(d["name"]), form, kind[0], d["label"] + unit, d["path"], validation=kind[1],
                         note=d["description"][:250], section="Protocol fidelity" if i == 0 else ""))
    return out


def _max_len(study: Study, key: str) -> int:
    return max((len(s.results.get(key) or []) for s in study.sessions), default=0)


def _ts_fields(used: set[str], study: Study) -> list[Field]:
    out = []
    for key, what in (("ts_pre_ratings", "pre"), ("ts_post_ratings", "post")):
        for k in range(1, _max_len(study, key) + 1):
            out.append(Field(redcap_name(f"ts_{what}_{k}", used), FORM_TS, "text",
                             f"TS_{what} rating {k} (0-100)", f"results.{key}.{k - 1}", validation="number",
                             vmin="0", vmax="100"))
    return out


def _questionnaire_fields(used: set[str], study: Study, forms_used: set[str]) -> list[tuple[str, list[Field]]]:
    out = []
    names = sorted({n for s in study.sessions for n in s.questionnaires})
    for qname in names:
        form = redcap_name(qname, forms_used)
        qdef = questionnaire_labels(qname)
        items: list[str] = []
        scores: list[str] = []
        values: dict[str, list[Any]] = {}
        for s in study.sessions:
            q = s.questionnaires.get(qname) or {}
            for i, v in (q.get("answers") or {}).items():
                if i not in items:
                    items.append(i)
                values.setdefault(i, []).append(v)
            scores += [sc for sc in (q.get("scores") or {}) if sc not in scores]
        prefix = redcap_name(qname, set())
        fields = [Field(redcap_name(f"{prefix}_entered_by", used), form, "dropdown", "Entered by",
                        f"questionnaires.{qname}.entered_by", choices=_choices(["participant", "staff"]),
                        section=qdef.get("title") or qname)]
        for i in items:
            fname = i if i.lower().startswith(prefix) else f"{prefix}_{i}"
            label = qdef.get("items", {}).get(i) or f"{qname} item {i}"
            choices, validation = "", ""
            options = qdef.get("options", {}).get(i) or []
            if options and all(isinstance(v, int) and not isinstance(v, bool) for v, _ in options):
                choices = " | ".join(f"{v}, {_clean_label(lab)}" for v, lab in options)
            observed = [v for v in values.get(i, []) if v is not None]
            if not choices:
                if all(isinstance(v, int) and not isinstance(v, bool) for v in observed):
                    validation = "integer"
                elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in observed):
                    validation = "number"
            fields.append(Field(redcap_name(fname, used), form, "radio" if choices else "text", label,
                                f"questionnaires.{qname}.answers.{i}", choices=choices, validation=validation))
        for sc in scores:
            fields.append(Field(redcap_name(f"{prefix}_{sc}_score", used), form, "text", f"{qname} {sc} score",
                                f"questionnaires.{qname}.scores.{sc}", validation="number",
                                note="computed by cpm-session's scoring rules"))
        out.append((form, fields))
    return out


def ae_vocabulary() -> dict[str, tuple[str, ...]]:
    """Return the adverse-event controlled vocabularies (coded 1..n in REDCap, in this order)."""
    try:
        from cpm_session.record.adverse_events import ALLOWED
    except ImportError:
        return {}
    return {k: tuple(v) for k, v in ALLOWED.items() if k != "serious"}


def _ae_fields(used: set[str]) -> list[Field]:
    def n(x: str) -> str:
        return redcap_name(x, used)

    vocab = ae_vocabulary()

    def coded(key: str, label: str) -> Field:
        if key in vocab:
            return Field(n(f"ae_{key}"), FORM_AE, "dropdown", label, f"@ae.{key}",
                         choices=" | ".join(f"{i}, {v}" for i, v in enumerate(vocab[key], start=1)))
        return Field(n(f"ae_{key}"), FORM_AE, "text", label, f"@ae.{key}")

    return [
        Field(n("ae_id"), FORM_AE, "text", "Adverse event ID", "@ae.ae_id", section="Adverse event"),
        Field(n("ae_description"), FORM_AE, "notes", "Description", "@ae.description"),
        Field(n("ae_onset_date"), FORM_AE, "text", "Onset date", "@ae.onset_date", validation="date_ymd"),
        coded("severity", "Severity"),
        Field(n("ae_serious"), FORM_AE, "yesno", "Serious adverse event?", "@ae.serious"),
        coded("relatedness", "Relatedness to the procedure"),
        coded("action_taken", "Action taken"),
        coded("outcome", "Outcome"),
        Field(n("ae_operator"), FORM_AE, "text", "Reported by (initials)", "@ae.operator"),
        Field(n("ae_visit"), FORM_AE, "text", "Visit during which it was reported", "@ae.visit"),
        Field(n("ae_session"), FORM_AE, "text", "Session folder during which it was reported", "@ae.session"),
        Field(n("ae_recorded"), FORM_AE, "text", "Recorded at (UTC)", "@ae.recorded_wall",
              validation="datetime_seconds_ymd"),
        Field(n("ae_updates"), FORM_AE, "text", "Number of updates", "@ae.updates", validation="integer"),
        Field(n("ae_updated_by"), FORM_AE, "text", "Last updated by (initials)", "@ae.updated_by"),
        Field(n("ae_updated"), FORM_AE, "text", "Last updated at (UTC)", "@ae.updated_wall",
              validation="datetime_seconds_ymd"),
    ]


def ae_value(f: Field, ae: dict[str, Any]) -> str:
    """Return the data cell of an adverse-event field."""
    key = f.source.split(".", 1)[1]
    val = ae.get(key)
    if val is None or val == "":
        return ""
    if f.ftype == "yesno":
        return yesno(val)
    if f.ftype == "dropdown":
        values = ae_vocabulary().get(key, ())
        return str(values.index(val) + 1) if val in values else ""
    if f.validation == "date_ymd":
        return redcap_date(val)
    if f.validation == "datetime_seconds_ymd":
        return redcap_datetime(val)
    if f.validation == "integer":
        return num(val)
    return str(val)


def build_dictionary(study: Study) -> tuple[list[Field], list[str]]:
    """Return every field (record_id first) and the form names in order."""
    used = {RECORD_ID}
    forms_used = {FORM_SESSION, FORM_TS, FORM_AE}
    fields = [Field(RECORD_ID, FORM_SESSION, "text", "Record ID (participant pseudonym)", "@record")]
    fields += _session_fields(used, study)
    fields += _ts_fields(used, study)
    forms = [FORM_SESSION, FORM_TS]
    for form, qfields in _questionnaire_fields(used, study, forms_used):
        forms.append(form)
        fields += qfields
    if study.adverse_events:
        forms.append(FORM_AE)
        fields += _ae_fields(used)
    complete = {f"{form}_complete" for form in forms}
    clash = complete & {f.name for f in fields}
    if clash:
        raise ExportError(f"REDCap field name(s) {sorted(clash)} clash with REDCap's own form status fields")
    for f in fields:
        if not NAME_PATTERN.fullmatch(f.name) or len(f.name) > MAX_NAME:
            raise ExportError(f"internal error: REDCap field name {f.name!r} is not valid")
    return fields, forms


# --------------------------------------------------------------------------------------------- data


def _session_value(f: Field, s: SessionData, others: list[SessionData]) -> str:
    src = f.source
    if src == "@record":
        return s.participant
    if src == "@folder":
        return s.path.name
    if src == "@start":
        return redcap_datetime(s.header.get("start_utc"))
    if src == "@end":
        return redcap_datetime(s.header.get("end_utc"))
    if src == "@station":
        return str(s.header.get("station_name") or s.header.get("station") or "")
    if src == "@integrity":
        return s.integrity
    if src == "@amendments":
        return amendment_text(s.header.get("amendments") or [])
    if src == "@others":
        return "; ".join(f"{o.path.name} ({o.header.get('status')}, {o.integrity})" for o in others)
    parts = src.split(".")
    cur: Any = s.header
    for part in parts:
        if isinstance(cur, list):
            idx = int(part)
            cur = cur[idx] if idx < len(cur) else None
        elif isinstance(cur, dict):
            cur = cur.get(part)
        else:
            cur = None
    if f.ftype == "yesno":
        return yesno(cur)
    if f.validation in ("number", "integer"):
        return num(cur)
    if f.ftype == "radio":
        return num(cur)
    return "" if cur is None else str(cur)


def _primary(sessions: list[SessionData]) -> SessionData:
    """Pick the session whose values fill the event: the last completed one, else the last one."""
    done = [s for s in sessions if s.header.get("status") == "completed"]
    return (done or sessions)[-1]


def _ae_event(ae: dict[str, Any], visits: list[tuple[str, str]]) -> str:
    """Return the event an adverse event belongs to: its visit if recorded, else the last visit that
    started on or before its onset date, else the first visit."""
    if ae.get("visit"):
        ev = event_name(str(ae["visit"]))
        if not visits or ev in {e for _, e in visits}:
            return ev  # else that visit has no exported session: place it by date, so the event exists
    onset = redcap_date(ae.get("onset_date"))
    chosen = visits[0][1] if visits else event_name("baseline")
    for start_date, ev in visits:
        if onset and start_date and start_date <= onset:
            chosen = ev
    return chosen


def export_redcap(data_dir: str | Path, out_dir: str | Path, *, include_unverified: bool = False) -> list[Path]:
    """Write the REDCap dictionary, longitudinal set-up and data for `data_dir` into the empty `out_dir`."""
    study = collect_study(data_dir, include_unverified=include_unverified)
    out = prepare_out_dir(out_dir)
    fields, forms = build_dictionary(study)
    groups = sessions_by_visit(study.sessions)

    # events ordered by the earliest start of any session of that visit
    first_start: dict[str, str] = {}
    for (_, visit), ss in groups.items():
        for s in ss:
            t = str(s.header.get("start_utc") or "")
            if visit not in first_start or t < first_start[visit]:
                first_start[visit] = t
    visits = sorted(first_start, key=lambda v: (first_start[v], v))
    event_of = {v: event_name(v) for v in visits}
    if len(set(event_of.values())) != len(event_of):
        raise ExportError(f"visits {visits} do not give distinct REDCap event names")

    written: list[Path] = []

    def put(name: str, header: list[str], rows: list[list[str]]) -> None:
        p = out / name
        with open(p, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(header)
            w.writerows(rows)
        written.append(p)

    put("data_dictionary.csv", DICTIONARY_HEADERS, [f.row() for f in fields])
    put("arms.csv", ["arm_num", "name"], [[str(ARM), f"Arm {ARM}"]])
    put("events.csv", ["event_name", "arm_num", "unique_event_name"], [[v, str(ARM), event_of[v]] for v in visits])
    ae_forms = [FORM_AE] if FORM_AE in forms else []
    visit_forms = [f for f in forms if f != FORM_AE]
    put("instrument-designations.csv", ["arm_num", "unique_event_name", "form"],
        [[str(ARM), event_of[v], form] for v in visits for form in visit_forms + ae_forms])
    put("repeating-instruments.csv", ["event_name", "form_name", "custom_form_label"],
        [[event_of[v], form, "[ae_id]"] for v in visits for form in ae_forms])

    by_form: dict[str, list[Field]] = {form: [f for f in fields if f.form == form and f.name != RECORD_ID]
                                       for form in forms}
    header = [RECORD_ID, "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance"]
    for form in forms:
        header += [f.name for f in by_form[form]] + [f"{form}_complete"]
    rows: list[list[str]] = []
    participants = sorted({pid for pid, _ in groups} | set(study.adverse_events))
    for pid in participants:
        for v in visits:
            ss = groups.get((pid, v)) or []
            if not ss:
                continue
            primary = _primary(ss)
            others = [s for s in ss if s is not primary]
            row = {RECORD_ID: pid, "redcap_event_name": event_of[v]}
            for form in visit_forms:
                vals = {f.name: _session_value(f, primary, others) for f in by_form[form]}
                if form not in (FORM_SESSION, FORM_TS) and not any(vals.values()):
                    continue
                row.update(vals)
                row[f"{form}_complete"] = COMPLETE
            rows.append([row.get(h, "") for h in header])
        starts = [(redcap_date(s.header.get("start_utc")), event_of[v]) for v in visits
                  for s in groups.get((pid, v), [])[:1]]
        starts.sort()
        for k, ae in enumerate(study.adverse_events.get(pid, []), start=1):
            row = {RECORD_ID: pid, "redcap_event_name": _ae_event(ae, starts), "redcap_repeat_instrument": FORM_AE,
                   "redcap_repeat_instance": str(k), f"{FORM_AE}_complete": COMPLETE}
            for f in by_form.get(FORM_AE, []):
                row[f.name] = ae_value(f, ae)
            rows.append([row.get(h, "") for h in header])
    put("data.csv", header, rows)
    readme = out / "README.txt"
    readme.write_text(
        "REDCap import set for a longitudinal project (one arm, one event per visit).\n"
        "1. Project Setup: upload data_dictionary.csv (Data Dictionary).\n"
        "2. Enable longitudinal mode; Define My Events: upload events.csv; Designate Instruments: upload "
        "instrument-designations.csv.\n"
        "3. Enable repeating instruments and upload repeating-instruments.csv (adverse_events repeats).\n"
        "4. Data Import Tool: upload data.csv (dates Y-M-D).\n"
        "Values are effective values after documented amendments (see the 'amendments' field); the original "
        "values stay in each session's hash-chained event log.\n", encoding="utf-8")
    written.append(readme)
    return written
