"""Participant IDs, operator IDs and visit names: pseudonyms only, safe as folder names on every OS;
and the one rule for free text that is stored (no control characters)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from cpm_session.errors import InvalidIdError

PARTICIPANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,31}$")
"""2-32 characters: letters, digits, '-' and '_', starting with a letter or digit (e.g. P001, FM-012).
IDs are compared case-insensitively: P001 and p001 are the same participant."""

RESERVED_IDS = ("pilot",)
"""Top-level folder names of a data folder that are not participants (`pilot/` holds pilot runs)."""

VISIT_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")

OPERATOR_PATTERN = re.compile(r"^[A-Za-z0-9]{2,8}$")
"""Operator IDs are initials or staff codes: 2-8 ASCII letters or digits (AB, JDS, STAFF07). No names."""

WINDOWS_RESERVED = frozenset(["CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)),
                              *(f"LPT{i}" for i in range(10))])
"""Device names Windows will not use as a file or folder name (in any case, with or without extension)."""


def participant_key(pid: str) -> str:
    """Return the comparison key of a participant ID (IDs are case-insensitive)."""
    return pid.casefold()


def _reserved(name: str) -> bool:
    return name.split(".")[0].upper() in WINDOWS_RESERVED


def validate_participant_id(pid: object) -> str:
    """Return `pid` if it is an acceptable pseudonym, else raise InvalidIdError saying why."""
    if not isinstance(pid, str):
        raise InvalidIdError(f"participant ID must be text, got {type(pid).__name__}")
    if pid == "" or pid.strip() == "":
        raise InvalidIdError("participant ID is empty; use a pseudonym such as P001")
    if any(c in pid for c in "/\\"):
        raise InvalidIdError(f"participant ID {pid!r} contains a path separator; use letters, digits, '-' or '_'")
    if any(c.isspace() for c in pid):
        raise InvalidIdError(f"participant ID {pid!r} contains a space; it looks like a name. Use a pseudonym such as P001")
    if pid in (".", "..") or not PARTICIPANT_PATTERN.fullmatch(pid):
        raise InvalidIdError(
            f"participant ID {pid!r} is not a pseudonym: expected 2-32 letters, digits, '-' or '_' "
            f"starting with a letter or digit (pattern {PARTICIPANT_PATTERN.pattern})")
    if _reserved(pid):
        raise InvalidIdError(f"participant ID {pid!r} is a reserved device name on Windows "
                             f"({', '.join(sorted(WINDOWS_RESERVED)[:6])}, ...); choose another pseudonym")
    if pid.lower() in RESERVED_IDS:
        raise InvalidIdError(f"participant ID {pid!r} is reserved (the data folder's {pid.lower()}/ holds pilot "
                             "runs); choose another pseudonym")
    return pid


def same_participant_other_spelling(pid: str, existing: Iterable[str]) -> str | None:
    """Return an existing ID that is `pid` in another spelling (P001 vs p001), or None."""
    key = participant_key(pid)
    for name in existing:
        if name != pid and participant_key(name) == key:
            return name
    return None


def validate_operator(op: object) -> str:
    """Return the operator ID (stripped) if it is initials or a staff code (2-8 letters/digits), else raise."""
    if not isinstance(op, str):
        raise InvalidIdError(f"operator must be text (initials or a staff code), got {type(op).__name__}")
    v = op.strip()
    if not OPERATOR_PATTERN.fullmatch(v):
        shown = clean_text(v)[:40]
        raise InvalidIdError(f"operator {shown!r} is not initials or a staff code: expected 2-8 letters or digits "
                             f"(e.g. AB or STAFF07), no names, spaces or e-mail addresses")
    return v


def validate_visit(visit: object, allowed: list[str]) -> str:
    """Return `visit` if the protocol lists it, else raise InvalidIdError naming the allowed visits."""
    if not isinstance(visit, str) or not VISIT_PATTERN.fullmatch(visit):
        raise InvalidIdError(f"visit name {visit!r} is not valid: expected lower-case letters, digits, '-' or '_'")
    if _reserved(visit):
        raise InvalidIdError(f"visit name {visit!r} is a reserved device name on Windows")
    if visit not in allowed:
        raise InvalidIdError(f"visit {visit!r} is not in the protocol's visits {allowed}")
    return visit


def has_control_chars(text: str) -> bool:
    """Return True if `text` holds a control character (C0/C1, DEL, escape, bidi/format characters)."""
    if text.isprintable():  # fast path: printable means no Cc/Cf (nor any other "Other" category)
        return False
    return any(unicodedata.category(c) in ("Cc", "Cf") for c in text)


def clean_text(text: str) -> str:
    """Return `text` with every control or format character written as a visible escape (``\\x1b``).

    Nothing is lost: the escape says which byte it was. Applied to every string the program stores."""
    if not has_control_chars(text):
        return text
    out = []
    for c in text:
        if unicodedata.category(c) in ("Cc", "Cf"):
            o = ord(c)
            out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}")
        else:
            out.append(c)
    return "".join(out)


def clean_value(value: Any) -> Any:
    """Return `value` (JSON-like: dicts, lists, strings, numbers) with clean_text applied to every string."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(k) if isinstance(k, str) else k: clean_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_value(v) for v in value]
    return value
