"""Participant IDs and visit names: pseudonyms only, safe as folder names."""

from __future__ import annotations

import re

from cpm_session.errors import InvalidIdError

PARTICIPANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,31}$")
"""2-32 characters: letters, digits, '-' and '_', starting with a letter or digit (e.g. P001, FM-012)."""

RESERVED_IDS = ("pilot",)
"""Top-level folder names of a data folder that are not participants (`pilot/` holds pilot runs)."""

VISIT_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


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
    if pid.lower() in RESERVED_IDS:
        raise InvalidIdError(f"participant ID {pid!r} is reserved (the data folder's {pid.lower()}/ holds pilot "
                             "runs); choose another pseudonym")
    return pid


def validate_visit(visit: object, allowed: list[str]) -> str:
    """Return `visit` if the protocol lists it, else raise InvalidIdError naming the allowed visits."""
    if not isinstance(visit, str) or not VISIT_PATTERN.fullmatch(visit):
        raise InvalidIdError(f"visit name {visit!r} is not valid: expected lower-case letters, digits, '-' or '_'")
    if visit not in allowed:
        raise InvalidIdError(f"visit {visit!r} is not in the protocol's visits {allowed}")
    return visit
