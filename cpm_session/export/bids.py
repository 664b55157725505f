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

import re
from pathlib import Path
from typing import Any

from cpm_session import __version__
from cpm_session.export import (
    ExportError,
    SessionData,
    Study,
    amendment_text,
    collect_study,
    copy_session_files,
    questionnaire_labels,
    sessions_by_visit,
    staged_export,
)
from cpm_session.export.bids_columns import (
    BEH_COLUMNS,  # noqa: F401 (re-exported)
    BIDS_UNITS,  # noqa: F401 (re-exported)
    BIDS_VERSION,
    BOOL_LEVELS,  # noqa: F401 (re-exported)
    DATASET_NAME,
    FLAG_LEVELS,  # noqa: F401 (re-exported)
    MAX_GRID_FILL,  # noqa: F401 (re-exported)
    NA,  # noqa: F401 (re-exported)
    PHASE_LEVELS,  # noqa: F401 (re-exported)
    QUANTITY_DESCRIPTIONS,  # noqa: F401 (re-exported)
    SAMPLING_TOLERANCE,  # noqa: F401 (re-exported)
    SESSION_COLUMNS,
    TASK,
    UNIT_LEVELS,  # noqa: F401 (re-exported)
    _with_observed_levels,
    acq_time,
    bids_label,
    bool_cell,  # noqa: F401 (re-exported)
    cell,
    fidelity_export_fields,  # noqa: F401 (re-exported)
    write_json,
    write_tsv,
)
from cpm_session.export.bids_tables import (
    _durations,  # noqa: F401 (re-exported)
    _grid,  # noqa: F401 (re-exported)
    beh_table,
    device_traces,
    write_physio,
)
from cpm_session.record.folder import get_path

# The constants, column tables and formatting helpers live in bids_columns.py, the per-session beh and
# physio tables in bids_tables.py; every name is re-exported here. _write_bids looks write_physio up in
# this module, so replacing `bids.write_physio` (as the tests do) still takes effect.


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
""" + ("\nVerification (cpm-session verify) at export time:\n" + "".join(f"- {line}\n" for line in study.screened)
       if study.screened else "")


def export_bids(data_dir: str | Path, out_dir: str | Path, *, include_unverified: bool = False,
                sourcedata: bool = False, screened: list[str] | None = None) -> list[Path]:
    """Write the BIDS dataset for `data_dir` into the new or empty folder `out_dir`; return the files written.

    The dataset is written into a temporary folder next to `out_dir` and renamed at the end: a failure
    leaves nothing half-written."""
    study = collect_study(data_dir, include_unverified=include_unverified)
    if screened is not None:
        screened.extend(study.screened)
    return staged_export(out_dir, data_dir, lambda tmp: _write_bids(study, tmp, sourcedata))


def _write_bids(study: Study, out: Path, sourcedata: bool) -> list[Path]:
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
            written.extend(copy_session_files(s.path, dst, study.data_dir))
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
