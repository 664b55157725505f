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
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from cpm_session.config.protocol import _describe_error
from cpm_session.config.questionnaire_model import (
    ENTERED_BY,  # noqa: F401
    ID_PATTERN,
    LOCAL_SUBDIR,
    QUESTIONNAIRE_DIR,
    RANGE_TOLERANCE,  # noqa: F401
    SIM_NOISE_FRACTION,  # noqa: F401
    WORDING_INCLUDED,
    WORDING_PLACEHOLDER,
    WORDING_SUFFIX,
    Band,
    Item,
    MissingWordingError,
    Number,  # noqa: F401
    Option,
    Questionnaire,
    QuestionnaireAnswerError,  # noqa: F401
    QuestionnaireFileError,
    ScoreRule,
    _num,
)
from cpm_session.config.questionnaire_schema import (
    _Band,  # noqa: F401
    _check_bands,  # noqa: F401
    _File,
    _Item,  # noqa: F401
    _Meta,  # noqa: F401
    _ResponseSet,  # noqa: F401
    _Score,  # noqa: F401
    _Strict,  # noqa: F401
    _WordingFile,
    _WordingItem,  # noqa: F401
)
from cpm_session.config.questionnaire_scoring import (
    band,  # noqa: F401
    bands,  # noqa: F401
    normalize_answers,  # noqa: F401
    questionnaire_result,  # noqa: F401
    score,  # noqa: F401
    simulate_answers,  # noqa: F401
    simulate_value,  # noqa: F401
    value_of_choice,  # noqa: F401
)

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


def load_questionnaires(names: list[str], *, base_dir: Path = QUESTIONNAIRE_DIR,
                        require_wording: bool = False) -> list[Questionnaire]:
    """Load every questionnaire a protocol lists, in order (first problem raises)."""
    return [load_questionnaire(n, base_dir=base_dir, require_wording=require_wording) for n in names]
