"""Questionnaire constants, errors and the public objects (Option, Item, Band, ScoreRule, Questionnaire).

Split from `cpm_session.config.questionnaires`, which re-exports every name here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cpm_session.errors import CpmError, ProtocolFileError
from cpm_session.resources import resource_dir

QUESTIONNAIRE_DIR = resource_dir("questionnaires")
"""The repository's questionnaires/ folder (the default `base_dir`)."""
LOCAL_SUBDIR = "local"
WORDING_SUFFIX = ".items.toml"
ENTERED_BY = ("participant", "staff")
ID_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
SIM_NOISE_FRACTION = 0.15
"""Simulated answers: SD of the per-item noise as a fraction of the item's value range."""
WORDING_PLACEHOLDER = "placeholder"
WORDING_INCLUDED = "included"
RANGE_TOLERANCE = 1e-9

Number = int | float


class QuestionnaireFileError(ProtocolFileError):
    """A questionnaire file (or a local wording file) is missing, unreadable or invalid."""


class MissingWordingError(CpmError):
    """Licensed wording was required but the lab's local wording file is absent."""

    def __init__(self, name: str, path: Path, protocol: str = "") -> None:
        self.name, self.path, self.protocol = name, path, protocol
        where = f"the protocol file {protocol}" if protocol else "the protocol file"
        super().__init__(
            f"questionnaire '{name}' needs its licensed item wording, which is not shipped with cpm-session. "
            f"Either add the file {path} with the wording your licence gives you (format: "
            f"{path.parent / 'README.md'}), or remove \"{name}\" from `names` in the [questionnaires] table of "
            f"{where}")


class QuestionnaireAnswerError(CpmError):
    """An answer is not one of an item's allowed values, or names no item."""


# ---------------------------------------------------------------- public objects

@dataclass(frozen=True)
class Option:
    """One response option: what is shown and the value it scores."""

    label: str
    value: Number


@dataclass(frozen=True)
class Item:
    """One question with its options in presentation order."""

    id: str
    text: str
    options: list[Option]

    def allowed_values(self) -> list[Number]:
        """Return the values an answer to this item may take."""
        return [o.value for o in self.options]


@dataclass(frozen=True)
class Band:
    """An interpretation band of a score (inclusive bounds)."""

    label: str
    min: Number
    max: Number


@dataclass(frozen=True)
class ScoreRule:
    """How one score is computed (see questionnaires/README.md)."""

    name: str
    items: list[str] | None
    of: list[str] | None
    divide_by: Number
    range: tuple[Number, Number]
    missing: str
    min_answered: int | None
    bands: list[Band]


@dataclass(frozen=True)
class Questionnaire:
    """A validated questionnaire: structure, scoring and the wording actually in use."""

    name: str
    title: str
    version: str
    reference: str
    instructions: str
    items: list[Item]
    scores: list[ScoreRule]
    wording_source: str
    missing_wording_file: Path | None
    path: str
    sha256: str

    def item(self, item_id: str) -> Item:
        """Return the item with id `item_id` (KeyError if none)."""
        for it in self.items:
            if it.id == item_id:
                return it
        raise KeyError(item_id)


def _num(v: float) -> Number:
    """Return `v` as an int when it is integral (keeps session.json tidy), else as a float."""
    if isinstance(v, bool):
        raise TypeError("bool is not a number here")
    return int(v) if float(v).is_integer() else float(v)
