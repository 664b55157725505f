"""Questionnaire answers and scores: normalising answers, scores, bands, the stored result, simulation.

Split from `cpm_session.config.questionnaires`, which re-exports every name here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cpm_session.config.questionnaire_model import (
    ENTERED_BY,
    SIM_NOISE_FRACTION,
    Item,
    Number,
    Questionnaire,
    QuestionnaireAnswerError,
    _num,
)

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
