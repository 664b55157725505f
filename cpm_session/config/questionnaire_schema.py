"""The questionnaire file schema (pydantic): `<name>.toml` and the lab's local `<name>.items.toml`.

Split from `cpm_session.config.questionnaires`, which loads files through these models.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cpm_session.config.questionnaire_model import ID_PATTERN, RANGE_TOLERANCE, _num

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
