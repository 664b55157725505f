"""REDCap export, part 1: constants, the data-dictionary `Field`, REDCap names and value formatting
(split out of `redcap.py`, which re-exports them)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

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

