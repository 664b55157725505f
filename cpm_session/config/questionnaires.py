"""Questionnaires as data: a generic loader and scorer for `questionnaires/<name>.toml`.

Each file declares items, response options with the value each scores, the scores (subscales) as sums
of item values divided by a constant or sums of other scores, the missing-answer rule and optional
interpretation bands. Licensed wording (FIQR, HADS) is not shipped: it is read from
`questionnaires/local/<name>.items.toml` when a lab adds it, else neutral placeholders are used.

Errors in a file raise QuestionnaireFileError (file, key, expected, found); bad answers raise
QuestionnaireAnswerError naming the item, the allowed values and what was given.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cpm_session.config.protocol import _describe_error
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


# ---------------------------------------------------------------- file schema (pydantic)

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _Meta(_Strict):
    name: str = Field(pattern=ID_PATTERN)
    title: str = Field(min_length=1)
    version: str = Field(min_length=1)
    reference: str = Field(min_length=1)
    licensed_wording: bool
    instructions: str = ""


class _ResponseSet(_Strict):
    values: list[int | float] = Field(min_length=2)
    labels: list[str] = Field(min_length=2)
    placeholder_labels: bool = False

    @model_validator(mode="after")
    def _shape(self) -> _ResponseSet:
        if len(self.labels) != len(self.values):
            raise ValueError(f"labels has {len(self.labels)} entries but values has {len(self.values)}; one label per value")
        if len(set(self.values)) != len(self.values):
            raise ValueError(f"values {self.values} repeat a value; each option must score differently")
        if any(not math.isfinite(v) for v in self.values):
            raise ValueError(f"values {self.values} must be finite numbers")
        return self


class _Item(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    text: str = Field(min_length=1)
    response_set: str


class _Band(_Strict):
    label: str = Field(min_length=1)
    min: int | float
    max: int | float


class _Score(_Strict):
    name: str = Field(pattern=ID_PATTERN)
    items: list[str] | None = None
    of: list[str] | None = None
    divide_by: int | float = Field(default=1, gt=0)
    range: list[int | float] = Field(min_length=2, max_length=2)
    missing: Literal["none", "prorate"] = "none"
    min_answered: int | None = Field(default=None, ge=1)
    bands: list[_Band] = []

    @model_validator(mode="after")
    def _kind(self) -> _Score:
        if (self.items is None) == (self.of is None):
            raise ValueError(f"score '{self.name}' needs exactly one of 'items' (item ids) or 'of' (earlier scores)")
        parts = self.items if self.items is not None else self.of
        assert parts is not None
        if not parts:
            raise ValueError(f"score '{self.name}': the list of parts is empty")
        if self.of is not None and (self.divide_by != 1 or self.missing != "none" or self.min_answered is not None):
            raise ValueError(f"score '{self.name}' sums other scores: divide_by, missing and min_answered do not apply")
        if self.missing == "prorate":
            if self.min_answered is None:
                raise ValueError(f"score '{self.name}': missing = 'prorate' needs min_answered")
            if self.min_answered > len(parts):
                raise ValueError(f"score '{self.name}': min_answered {self.min_answered} exceeds its {len(parts)} items")
        elif self.min_answered is not None:
            raise ValueError(f"score '{self.name}': min_answered only applies with missing = 'prorate'")
        if self.range[0] >= self.range[1]:
            raise ValueError(f"score '{self.name}': range {self.range} must be [low, high] with low < high")
        return self


class _File(_Strict):
    questionnaire: _Meta
    response_sets: dict[str, _ResponseSet] = Field(min_length=1)
    items: list[_Item] = Field(min_length=1)
    scores: list[_Score] = Field(min_length=1)

    @model_validator(mode="after")
    def _cross(self) -> _File:
        ids = [it.id for it in self.items]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"items: id(s) {dup} appear more than once")
        for it in self.items:
            if it.response_set not in self.response_sets:
                raise ValueError(f"item '{it.id}': response_set '{it.response_set}' is not one of {sorted(self.response_sets)}")
        known: dict[str, tuple[float, float]] = {}
        for sc in self.scores:
            if sc.name in known:
                raise ValueError(f"scores: name '{sc.name}' appears more than once")
            if sc.items is not None:
                bad = [i for i in sc.items if i not in ids]
                if bad:
                    raise ValueError(f"score '{sc.name}': item(s) {bad} are not declared in [[items]]")
                if len(set(sc.items)) != len(sc.items):
                    raise ValueError(f"score '{sc.name}': an item is listed twice")
                sets = {it.id: self.response_sets[it.response_set].values for it in self.items}
                lo = sum(min(sets[i]) for i in sc.items) / sc.divide_by
                hi = sum(max(sets[i]) for i in sc.items) / sc.divide_by
            else:
                assert sc.of is not None
                bad = [s for s in sc.of if s not in known]
                if bad:
                    raise ValueError(f"score '{sc.name}': 'of' names {bad}, which are not scores declared above it")
                lo = sum(known[s][0] for s in sc.of)
                hi = sum(known[s][1] for s in sc.of)
            if abs(lo - sc.range[0]) > RANGE_TOLERANCE or abs(hi - sc.range[1]) > RANGE_TOLERANCE:
                raise ValueError(f"score '{sc.name}': declared range {sc.range} does not match the range its "
                                 f"options give, [{_num(lo)}, {_num(hi)}]; fix the range, the values or divide_by")
            _check_bands(sc)
            known[sc.name] = (lo, hi)
        return self


def _check_bands(sc: _Score) -> None:
    prev: _Band | None = None
    for b in sc.bands:
        if b.min > b.max:
            raise ValueError(f"score '{sc.name}': band '{b.label}' has min {b.min} > max {b.max}")
        if prev is not None and not (prev.max < b.min):
            raise ValueError(f"score '{sc.name}': band '{b.label}' must start above band '{prev.label}' (max {prev.max})")
        prev = b
    if sc.bands and (sc.bands[0].min != sc.range[0] or sc.bands[-1].max != sc.range[1]):
        raise ValueError(f"score '{sc.name}': bands must cover the range {sc.range} from its low to its high end")


class _WordingItem(_Strict):
    text: str = Field(min_length=1)
    options: list[str] | None = None


class _WordingFile(_Strict):
    questionnaire: str
    source: str = ""
    instructions: str | None = None
    items: dict[str, _WordingItem] = Field(min_length=1)


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


# ---------------------------------------------------------------- loading

def _read_toml(p: Path) -> dict[str, Any]:
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise QuestionnaireFileError(str(p), "<file>", "a readable file", e.strerror or str(e)) from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise QuestionnaireFileError(str(p), "<file>", "valid UTF-8 TOML", str(e)) from None


def _validate(model: type[BaseModel], data: dict[str, Any], p: Path) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        # a misspelt key also makes the right one "missing": report the spelling first
        errs = sorted(e.errors(), key=lambda err: err.get("type") != "extra_forbidden")
        key, expected, found = _describe_error(dict(errs[0]))
        more = f" (and {len(errs) - 1} more problem(s))" if len(errs) > 1 else ""
        raise QuestionnaireFileError(str(p), key, expected + more, found) from None


def wording_file(name: str, base_dir: Path = QUESTIONNAIRE_DIR) -> Path:
    """Return the path where a lab puts the licensed wording of questionnaire `name`."""
    return Path(base_dir) / LOCAL_SUBDIR / f"{name}{WORDING_SUFFIX}"


def load_questionnaire(name: str, *, base_dir: Path = QUESTIONNAIRE_DIR, require_wording: bool = False) -> Questionnaire:
    """Load and validate `<base_dir>/<name>.toml`, with licensed wording from `<base_dir>/local/` if present.

    Raise QuestionnaireFileError for a bad file and MissingWordingError when `require_wording` is set,
    the wording is licensed and the lab's local wording file does not exist.
    """
    if not re.fullmatch(ID_PATTERN, name):
        raise QuestionnaireFileError(str(base_dir), "questionnaires.names", "a questionnaire name (lower-case letters, digits, '_')", name)
    path = Path(base_dir) / f"{name}.toml"
    if not path.exists():
        available = sorted(p.stem for p in Path(base_dir).glob("*.toml"))
        raise QuestionnaireFileError(str(path), "<file>", f"an existing questionnaire file (available: {available})", "<missing>")
    f: _File = _validate(_File, _read_toml(path), path)
    if f.questionnaire.name != name:
        raise QuestionnaireFileError(str(path), "questionnaire.name", f"the file's own name '{name}'", f.questionnaire.name)

    texts = {it.id: it.text for it in f.items}
    labels = {it.id: list(f.response_sets[it.response_set].labels) for it in f.items}
    instructions = f.questionnaire.instructions
    missing_file: Path | None = None
    if not f.questionnaire.licensed_wording:
        source = WORDING_INCLUDED
    else:
        wpath = wording_file(name, base_dir)
        if wpath.exists():
            w = _load_wording(wpath, f, name)
            for iid, wi in w.items.items():
                texts[iid] = wi.text
                if wi.options is not None:
                    labels[iid] = list(wi.options)
            if w.instructions is not None:
                instructions = w.instructions
            source = f"local file {wpath}"
        elif require_wording:
            raise MissingWordingError(name, wpath)
        else:
            source, missing_file = WORDING_PLACEHOLDER, wpath

    items = [Item(it.id, texts[it.id], [Option(lab, _num(v)) for lab, v in
                                         zip(labels[it.id], f.response_sets[it.response_set].values, strict=True)])
             for it in f.items]
    scores = [ScoreRule(s.name, None if s.items is None else list(s.items), None if s.of is None else list(s.of),
                        _num(s.divide_by), (_num(s.range[0]), _num(s.range[1])), s.missing, s.min_answered,
                        [Band(b.label, _num(b.min), _num(b.max)) for b in s.bands]) for s in f.scores]
    return Questionnaire(name=name, title=f.questionnaire.title, version=f.questionnaire.version,
                         reference=f.questionnaire.reference, instructions=instructions, items=items,
                         scores=scores, wording_source=source, missing_wording_file=missing_file,
                         path=str(path), sha256=hashlib.sha256(Path(path).read_bytes()).hexdigest())


def _load_wording(wpath: Path, f: _File, name: str) -> _WordingFile:
    w: _WordingFile = _validate(_WordingFile, _read_toml(wpath), wpath)
    if w.questionnaire != name:
        raise QuestionnaireFileError(str(wpath), "questionnaire", f"'{name}' (the file is {wpath.name})", w.questionnaire)
    ids = [it.id for it in f.items]
    extra = [i for i in w.items if i not in ids]
    if extra:
        raise QuestionnaireFileError(str(wpath), f"items.{extra[0]}", f"only item ids of {name}.toml ({', '.join(ids)})", extra[0])
    for it in f.items:
        rs = f.response_sets[it.response_set]
        wi = w.items.get(it.id)
        if wi is None:
            raise QuestionnaireFileError(str(wpath), f"items.{it.id}", "wording for every item (text and options)", "<missing>")
        if wi.options is None and rs.placeholder_labels:
            raise QuestionnaireFileError(str(wpath), f"items.{it.id}.options",
                                         f"{len(rs.values)} option labels (the shipped labels are placeholders)", "<missing>")
        if wi.options is not None and len(wi.options) != len(rs.values):
            raise QuestionnaireFileError(str(wpath), f"items.{it.id}.options",
                                         f"{len(rs.values)} labels in the order of scores {[_num(v) for v in rs.values]}",
                                         f"{len(wi.options)} labels")
    return w


def _num(v: float) -> Number:
    """Return `v` as an int when it is integral (keeps session.json tidy), else as a float."""
    if isinstance(v, bool):
        raise TypeError("bool is not a number here")
    return int(v) if float(v).is_integer() else float(v)


# ---------------------------------------------------------------- answers and scores

def normalize_answers(q: Questionnaire, answers: dict[str, Any]) -> dict[str, Number | None]:
    """Return every item id mapped to its value or None (missing); raise QuestionnaireAnswerError on a bad answer.

    A NaN counts as missing; a value that is not one of the item's option values is refused.
    """
    ids = [it.id for it in q.items]
    unknown = [k for k in answers if k not in ids]
    if unknown:
        raise QuestionnaireAnswerError(f"{q.name}: answer for unknown item {unknown[0]!r}; items are {', '.join(ids)}")
    out: dict[str, Number | None] = {}
    for it in q.items:
        v = answers.get(it.id)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out[it.id] = None
            continue
        allowed = it.allowed_values()
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or float(v) not in allowed:
            raise QuestionnaireAnswerError(
                f"{q.name} item {it.id}: answer must be one of {sorted(allowed)} (or missing), got {v!r}")
        out[it.id] = _num(float(v))
    return out


def score(q: Questionnaire, answers: dict[str, int | float | None]) -> dict[str, float | None]:
    """Return each declared score (None where the missing-answer rule gives no score).

    An item score sums the chosen option values, prorated by n_items / n_answered when the rule is
    'prorate' and at least `min_answered` items were answered, then divides by `divide_by`. A score
    made 'of' other scores is their sum, None if any of them is None.
    """
    vals = normalize_answers(q, answers)
    out: dict[str, float | None] = {}
    for rule in q.scores:
        if rule.items is not None:
            got = [vals[i] for i in rule.items if vals[i] is not None]
            n, k = len(rule.items), len(got)
            if k == n:
                total: float | None = float(sum(v for v in got if v is not None))
            elif rule.missing == "prorate" and rule.min_answered is not None and k >= rule.min_answered:
                total = float(sum(v for v in got if v is not None)) * n / k
            else:
                total = None
            out[rule.name] = None if total is None else total / rule.divide_by
        else:
            assert rule.of is not None
            parts = [out[s] for s in rule.of]
            out[rule.name] = None if any(p is None for p in parts) else float(sum(p for p in parts if p is not None))
    return out


def band(q: Questionnaire, score_name: str, value: float | None) -> str | None:
    """Return the band label of `value` for score `score_name` (None if no bands or no value).

    Band rule (the project's own, documented in questionnaires/README.md "Bands"): bands are inclusive
    integer ranges from the file; a value between two bands (only possible after prorating, e.g. a HADS
    subscale with one item missing and 9 points on the other six: 9 x 7/6 = 10.5, between borderline 8-10
    and abnormal 11-21) belongs to the LOWER band, i.e. the label of the last band whose
    `min` is <= the value. Rounding up would label a participant a 'case' on an item they did not answer.
    """
    rule = next(r for r in q.scores if r.name == score_name)
    if value is None or not rule.bands:
        return None
    label = None
    for b in rule.bands:
        if value >= b.min:
            label = b.label
    return label


def bands(q: Questionnaire, scores: dict[str, float | None]) -> dict[str, str | None]:
    """Return the band label of every score that declares bands."""
    return {r.name: band(q, r.name, scores.get(r.name)) for r in q.scores if r.bands}


def questionnaire_result(q: Questionnaire, answers: dict[str, int | float | None], entered_by: str) -> dict[str, Any]:
    """Return the object stored in session.json `questionnaires[q.name]`.

    Keys: `answers` (every item id -> value or None), `scores`, `bands` (score -> band label or None, for
    every score that declares bands, e.g. HADS `anxiety`/`depression`: normal | borderline | abnormal;
    see `band` for the rule), `entered_by` ('participant' | 'staff'), `wording_source`.
    """
    if entered_by not in ENTERED_BY:
        raise QuestionnaireAnswerError(f"{q.name}: entered_by must be one of {list(ENTERED_BY)}, got {entered_by!r}")
    scores = score(q, answers)
    return {"answers": normalize_answers(q, answers), "scores": scores, "bands": bands(q, scores),
            "entered_by": entered_by, "wording_source": q.wording_source}


def value_of_choice(item: Item, index: int | None) -> Number | None:
    """Return the value scored by option `index` of `item` (None for no answer)."""
    if index is None:
        return None
    if not 0 <= index < len(item.options):
        raise QuestionnaireAnswerError(f"item {item.id}: option index must be 0..{len(item.options) - 1}, got {index}")
    return item.options[index].value


def simulate_answers(q: Questionnaire, rng: np.random.Generator, severity: float) -> dict[str, Number]:
    """Return a simulated participant's answer to every item.

    `severity` 0..1 places each answer at that fraction of the item's value range (0 = least
    symptomatic, 1 = most), plus Gaussian noise of SD SIM_NOISE_FRACTION of the range; the option
    whose value is nearest is chosen. Deterministic for a given `rng` state.
    """
    if not (isinstance(severity, (int, float)) and 0.0 <= float(severity) <= 1.0):
        raise ValueError(f"severity must be a number in [0, 1], got {severity!r}")
    return {it.id: simulate_value(it.allowed_values(), rng, severity) for it in q.items}


def simulate_value(values: list[Number] | tuple[Number, ...], rng: np.random.Generator, severity: float) -> Number:
    """Return the simulated answer (one of `values`) to one item at `severity` 0..1 (rule of `simulate_answers`).

    Only the values matter, never their order on screen: items listed from most to least symptomatic
    (HADS values 3, 2, 1, 0) get the same answers as items listed the other way round."""
    if not values:
        raise ValueError("an item needs at least one option value")
    if not (isinstance(severity, (int, float)) and 0.0 <= float(severity) <= 1.0):
        raise ValueError(f"severity must be a number in [0, 1], got {severity!r}")
    lo, hi = min(values), max(values)
    target = lo + float(severity) * (hi - lo) + rng.normal(0.0, SIM_NOISE_FRACTION * (hi - lo))
    return min(values, key=lambda v: (abs(v - target), v))


def load_questionnaires(names: list[str], *, base_dir: Path = QUESTIONNAIRE_DIR,
                        require_wording: bool = False) -> list[Questionnaire]:
    """Load every questionnaire a protocol lists, in order (first problem raises)."""
    return [load_questionnaire(n, base_dir=base_dir, require_wording=require_wording) for n in names]
