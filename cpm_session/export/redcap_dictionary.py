"""REDCap export, part 2: the data dictionary (session, TS-rating, questionnaire and adverse-event
fields) and adverse-event cell values (split out of `redcap.py`, which re-exports them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cpm_session.export import ExportError, Study, questionnaire_labels
from cpm_session.export.redcap_fields import (
    CODE_PATTERN,
    FORM_AE,
    FORM_SESSION,
    FORM_TS,
    KNOWN_CHOICES,
    MAX_NAME,
    NAME_PATTERN,
    RECORD_ID,
    Field,
    _choices,
    _clean_label,
    num,
    redcap_date,
    redcap_datetime,
    redcap_name,
    yesno,
)
from cpm_session.record.fidelity import export_fields as fidelity_export_fields
from cpm_session.record.folder import get_path

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

