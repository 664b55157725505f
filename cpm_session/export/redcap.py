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
from pathlib import Path
from typing import Any

from cpm_session.export import (
    ExportError,
    SessionData,
    Study,
    amendment_text,
    collect_study,
    questionnaire_labels,  # noqa: F401 (re-exported)
    sessions_by_visit,
    staged_export,
)
from cpm_session.export.redcap_dictionary import (
    _ae_fields,  # noqa: F401 (re-exported)
    _fidelity_fields,  # noqa: F401 (re-exported)
    _max_len,  # noqa: F401 (re-exported)
    _questionnaire_fields,  # noqa: F401 (re-exported)
    _session_fields,  # noqa: F401 (re-exported)
    _ts_fields,  # noqa: F401 (re-exported)
    ae_value,
    ae_vocabulary,  # noqa: F401 (re-exported)
    build_dictionary,
)
from cpm_session.export.redcap_fields import (
    AE_FIELDS,  # noqa: F401 (re-exported)
    ARM,
    CHOICE_LABELS,  # noqa: F401 (re-exported)
    CODE_PATTERN,  # noqa: F401 (re-exported)
    COMPLETE,
    DICTIONARY_HEADERS,
    FORM_AE,
    FORM_SESSION,
    FORM_TS,
    KNOWN_CHOICES,  # noqa: F401 (re-exported)
    MAX_NAME,  # noqa: F401 (re-exported)
    NAME_PATTERN,  # noqa: F401 (re-exported)
    RECORD_ID,
    Field,
    _choices,  # noqa: F401 (re-exported)
    _clean_label,  # noqa: F401 (re-exported)
    event_name,
    num,
    redcap_date,
    redcap_datetime,
    redcap_name,  # noqa: F401 (re-exported)
    yesno,
)
from cpm_session.record.fidelity import export_fields as fidelity_export_fields  # noqa: F401 (re-exported)
from cpm_session.record.folder import get_path  # noqa: F401 (re-exported)

# The constants, Field and value formatting live in redcap_fields.py, the data dictionary in
# redcap_dictionary.py; every name is re-exported here.


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


def export_redcap(data_dir: str | Path, out_dir: str | Path, *, include_unverified: bool = False,
                  screened: list[str] | None = None) -> list[Path]:
    """Write the REDCap dictionary, longitudinal set-up and data for `data_dir` into the empty `out_dir`."""
    study = collect_study(data_dir, include_unverified=include_unverified)
    if screened is not None:
        screened.extend(study.screened)
    return staged_export(out_dir, data_dir, lambda tmp: _write_redcap(study, tmp))


def _write_redcap(study: Study, out: Path) -> list[Path]:
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
        "values stay in each session's hash-chained event log.\n"
        + "".join(f"{line}\n" for line in study.screened), encoding="utf-8")
    written.append(readme)
    return written
