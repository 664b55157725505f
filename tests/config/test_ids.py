"""Participant IDs are pseudonyms: names, paths and empty strings are refused with a reason."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cpm_session.errors import InvalidIdError
from cpm_session.ids import PARTICIPANT_PATTERN, validate_participant_id, validate_visit


@pytest.mark.parametrize("pid", ["P001", "FM-012", "sub_7", "A1"])
def test_good_ids(pid: str) -> None:
    assert validate_participant_id(pid) == pid


@pytest.mark.parametrize("pid,reason", [
    ("", "empty"), ("   ", "empty"), ("John Smith", "space"), ("P001\t", "space"),
    ("../etc", "path separator"), ("a/b", "path separator"), ("a\\b", "path separator"),
    ("..", "pseudonym"), ("-P1", "pseudonym"), ("P", "pseudonym"), ("x" * 40, "pseudonym"),
    ("Jürgen", "pseudonym"), ("P001;rm", "pseudonym"), (None, "text"), (42, "text"),
])
def test_bad_ids(pid: object, reason: str) -> None:
    with pytest.raises(InvalidIdError, match=reason):
        validate_participant_id(pid)


@given(st.text(max_size=40))
def test_any_text_is_accepted_only_if_safe(pid: str) -> None:
    try:
        validate_participant_id(pid)
    except InvalidIdError as e:
        assert str(e)
    else:
        assert PARTICIPANT_PATTERN.fullmatch(pid) and "/" not in pid and " " not in pid


def test_visit_must_be_in_protocol() -> None:
    assert validate_visit("post", ["baseline", "post"]) == "post"
    with pytest.raises(InvalidIdError, match="not in the protocol"):
        validate_visit("week4", ["baseline", "post"])
    with pytest.raises(InvalidIdError, match="not valid"):
        validate_visit("Post visit", ["baseline", "post"])
