"""Questionnaire files, the generic scorer, licensed wording and simulated answers."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpm_session.config.questionnaires import (
    QUESTIONNAIRE_DIR,
    MissingWordingError,
    QuestionnaireAnswerError,
    QuestionnaireFileError,
    band,
    bands,
    load_questionnaire,
    load_questionnaires,
    questionnaire_result,
    score,
    simulate_answers,
    value_of_choice,
)
from cpm_session.errors import CpmError, ProtocolFileError
from cpm_session.session.phases.questionnaires import item_choice

HADS_DESC = {1, 3, 5, 6, 8, 10, 11, 13}  # options printed most -> least symptomatic (3, 2, 1, 0)


@pytest.fixture(scope="module")
def nrs():
    return load_questionnaire("nrs")


@pytest.fixture(scope="module")
def fiqr():
    return load_questionnaire("fiqr", base_dir=QUESTIONNAIRE_DIR)


@pytest.fixture(scope="module")
def hads():
    return load_questionnaire("hads")


@pytest.fixture
def qdir(tmp_path: Path) -> Path:
    """A private copy of the shipped questionnaires (no local wording)."""
    for n in ("nrs", "fiqr", "hads"):
        shutil.copy(QUESTIONNAIRE_DIR / f"{n}.toml", tmp_path / f"{n}.toml")
    return tmp_path


# ---------------------------------------------------------------- the shipped files

def test_shipped_files_structure(nrs, fiqr, hads):
    assert [i.id for i in nrs.items] == ["pain_now"]
    assert [o.value for o in nrs.items[0].options] == list(range(11))
    assert [s.name for s in nrs.scores] == ["pain"]
    assert nrs.wording_source == "included" and nrs.missing_wording_file is None

    assert [i.id for i in fiqr.items] == [f"q{i}" for i in range(1, 22)]
    assert all([o.value for o in it.options] == list(range(11)) for it in fiqr.items)
    assert [(s.name, s.range) for s in fiqr.scores] == [
        ("function", (0, 30)), ("overall", (0, 20)), ("symptoms", (0, 50)), ("total", (0, 100))]
    assert fiqr.scores[0].items == [f"q{i}" for i in range(1, 10)] and fiqr.scores[0].divide_by == 3
    assert fiqr.scores[1].items == ["q10", "q11"] and fiqr.scores[1].divide_by == 1
    assert fiqr.scores[2].items == [f"q{i}" for i in range(12, 22)] and fiqr.scores[2].divide_by == 2

    assert [i.id for i in hads.items] == [f"q{i}" for i in range(1, 15)]
    for n in range(1, 15):
        values = [o.value for o in hads.item(f"q{n}").options]
        assert values == ([3, 2, 1, 0] if n in HADS_DESC else [0, 1, 2, 3]), n
    assert hads.scores[0].name == "anxiety" and hads.scores[0].items == [f"q{i}" for i in range(1, 14, 2)]
    assert hads.scores[1].name == "depression" and hads.scores[1].items == [f"q{i}" for i in range(2, 15, 2)]
    for s in hads.scores:
        assert [(b.label, b.min, b.max) for b in s.bands] == [("normal", 0, 7), ("borderline", 8, 10), ("abnormal", 11, 21)]


def test_licensed_questionnaires_ship_placeholders_only(fiqr, hads):
    assert hads.item("q3").text == "HADS item 3"
    assert [o.label for o in hads.item("q3").options] == ["response A", "response B", "response C", "response D"]
    assert fiqr.item("q12").text == "FIQR item 12"
    for q in (fiqr, hads):
        assert q.wording_source == "placeholder"
        assert q.missing_wording_file == QUESTIONNAIRE_DIR / "local" / f"{q.name}.items.toml"


def test_load_questionnaires_in_protocol_order():
    assert [q.name for q in load_questionnaires(["hads", "nrs"])] == ["hads", "nrs"]


# ---------------------------------------------------------------- NRS

def test_nrs_score(nrs):
    assert score(nrs, {"pain_now": 7}) == {"pain": 7.0}
    assert score(nrs, {"pain_now": 0}) == {"pain": 0.0}
    assert score(nrs, {"pain_now": 10}) == {"pain": 10.0}
    assert score(nrs, {}) == {"pain": None}
    assert score(nrs, {"pain_now": None}) == {"pain": None}


# ---------------------------------------------------------------- FIQR

def _fiqr(values: dict[int, int | None]) -> dict[str, int | None]:
    return {f"q{i}": v for i, v in values.items()}


def test_fiqr_hand_worked(fiqr):
    answers = {i: i for i in range(1, 10)}                      # function: 1+2+...+9 = 45
    answers |= {10: 4, 11: 7}                                  # overall: 4+7 = 11
    answers |= {12 + k: 10 - k for k in range(10)}             # symptoms: 10+9+...+1 = 55
    s = score(fiqr, _fiqr(answers))
    assert s["function"] == 45 / 3 == 15.0
    assert s["overall"] == 11.0
    assert s["symptoms"] == 55 / 2 == 27.5
    assert s["total"] == 15.0 + 11.0 + 27.5 == 53.5


def test_fiqr_boundaries(fiqr):
    zero = score(fiqr, _fiqr({i: 0 for i in range(1, 22)}))
    assert zero == {"function": 0.0, "overall": 0.0, "symptoms": 0.0, "total": 0.0}
    top = score(fiqr, _fiqr({i: 10 for i in range(1, 22)}))
    assert top == {"function": 90 / 3, "overall": 20.0, "symptoms": 100 / 2, "total": 100.0}


def test_fiqr_missing_items_prorated_by_domain(fiqr):
    answers = {i: i for i in range(2, 10)}   # q1 missing; q2..q9 = 2+...+9 = 44, 8 of 9 answered
    answers |= {10: 6, 11: None}              # overall: 6 x 2/1 = 12
    answers |= {i: 2 for i in range(12, 22)}  # symptoms: 20 / 2 = 10
    s = score(fiqr, _fiqr(answers))
    assert s["function"] == pytest.approx(44 * 9 / 8 / 3)   # = 16.5
    assert s["function"] == pytest.approx(16.5)
    assert s["overall"] == 12.0
    assert s["symptoms"] == 10.0
    assert s["total"] == pytest.approx(16.5 + 12.0 + 10.0)


def test_fiqr_too_many_missing_gives_none(fiqr):
    answers = {i: 5 for i in range(1, 22)}
    for i in (1, 2, 3, 4):            # 5 of 9 function items left: still prorated
        answers[i] = None
    s = score(fiqr, _fiqr(answers))
    assert s["function"] == pytest.approx(25 * 9 / 5 / 3) == 15.0
    answers[5] = None                 # 4 of 9: below min_answered 5
    s = score(fiqr, _fiqr(answers))
    assert s["function"] is None and s["total"] is None
    assert s["overall"] == 10.0 and s["symptoms"] == 25.0
    s = score(fiqr, _fiqr({10: None, 11: None}))
    assert s["overall"] is None
    s = score(fiqr, _fiqr({i: 1 for i in range(12, 17)}))   # 5 of 10 symptoms: 5 x 10/5 = 10, / 2 = 5
    assert s["symptoms"] == 5.0


# ---------------------------------------------------------------- HADS

def test_hads_reverse_keyed_by_option_position(hads):
    # Everyone picks the FIRST printed option. Anxiety (odd): items 1,3,5,11,13 print 3 first,
    # items 7,9 print 0 first: 3+3+3+0+0+3+3 = 15. Depression (even): items 6,8,10 print 3 first,
    # items 2,4,12,14 print 0 first: 0+0+3+3+3+0+0 = 9.
    answers = {it.id: value_of_choice(it, 0) for it in hads.items}
    assert score(hads, answers) == {"anxiety": 15.0, "depression": 9.0}
    # The LAST printed option mirrors it: anxiety 21 - 15 = 6, depression 21 - 9 = 12.
    answers = {it.id: value_of_choice(it, 3) for it in hads.items}
    assert score(hads, answers) == {"anxiety": 6.0, "depression": 12.0}


def test_hads_hand_worked_and_bands(hads):
    a = {"q1": 2, "q3": 1, "q5": 3, "q7": 0, "q9": 1, "q11": 2, "q13": 1}    # 2+1+3+0+1+2+1 = 10
    d = {"q2": 0, "q4": 1, "q6": 0, "q8": 2, "q10": 1, "q12": 0, "q14": 0}   # 0+1+0+2+1+0+0 = 4
    s = score(hads, a | d)
    assert s == {"anxiety": 10.0, "depression": 4.0}
    assert bands(hads, s) == {"anxiety": "borderline", "depression": "normal"}


def test_hads_bounds_and_band_edges(hads):
    lo = {it.id: 0 for it in hads.items}
    hi = {it.id: 3 for it in hads.items}
    assert score(hads, lo) == {"anxiety": 0.0, "depression": 0.0}
    assert score(hads, hi) == {"anxiety": 21.0, "depression": 21.0}
    expected = {0: "normal", 7: "normal", 8: "borderline", 10: "borderline", 11: "abnormal", 21: "abnormal"}
    for value, label in expected.items():
        assert band(hads, "anxiety", value) == label, value
    assert band(hads, "anxiety", 7 * 7 / 6) == "borderline"  # prorated 7 x 7/6 = 8.17 >= 8
    assert band(hads, "anxiety", 7.5) == "normal"            # between bands: lower band
    assert band(hads, "anxiety", 10.5) == "borderline"
    assert band(hads, "anxiety", None) is None


def test_hads_one_missing_prorated_two_missing_none(hads):
    full = {it.id: 1 for it in hads.items}
    a = {"q1": None, "q3": 2, "q5": 1, "q7": 3, "q9": 0, "q11": 2, "q13": 1}   # 6 answered: 9 x 7/6 = 10.5
    s = score(hads, full | a)
    assert s["anxiety"] == pytest.approx(9 * 7 / 6) == pytest.approx(10.5)
    assert s["depression"] == 7.0
    s = score(hads, full | a | {"q3": None})                                   # 2 missing
    assert s == {"anxiety": None, "depression": 7.0}
    assert bands(hads, s) == {"anxiety": None, "depression": "normal"}


# ---------------------------------------------------------------- bad answers

@pytest.mark.parametrize("name, item, value", [
    ("hads", "q1", 4), ("hads", "q2", -1), ("fiqr", "q5", 11), ("fiqr", "q5", 2.5), ("nrs", "pain_now", 10.01),
    ("nrs", "pain_now", True), ("nrs", "pain_now", "3"), ("nrs", "pain_now", float("inf")),
])
def test_out_of_range_answer_raises_naming_item_allowed_and_found(name, item, value):
    q = load_questionnaire(name)
    with pytest.raises(QuestionnaireAnswerError) as e:
        score(q, {item: value})
    msg = str(e.value)
    assert f"{name} item {item}" in msg and repr(value) in msg
    assert str(sorted(q.item(item).allowed_values())) in msg
    assert isinstance(e.value, CpmError)


def test_unknown_item_and_nan(hads, nrs):
    with pytest.raises(QuestionnaireAnswerError, match="unknown item 'q15'"):
        score(hads, {"q15": 1})
    assert score(nrs, {"pain_now": float("nan")}) == {"pain": None}
    assert score(nrs, {"pain_now": 4.0}) == {"pain": 4.0}
    assert score(nrs, {"pain_now": np.int64(4)}) == {"pain": 4.0}


# ---------------------------------------------------------------- session.json object

def test_questionnaire_result(hads, nrs):
    answers = {it.id: 1 for it in hads.items} | {"q14": None}
    res = questionnaire_result(hads, answers, "staff")
    assert set(res) == {"answers", "scores", "bands", "entered_by", "wording_source"}
    assert res["bands"] == {"anxiety": "normal", "depression": "normal"}  # 7 and 6 x 7/6 = 7: normal (0-7)
    nine = {it.id: 0 for it in hads.items} | {"q2": 3, "q4": 3, "q6": 3, "q8": None}  # depression 9 x 7/6 = 10.5
    nine_res = questionnaire_result(hads, nine, "staff")
    assert nine_res["scores"]["depression"] == pytest.approx(10.5) and nine_res["bands"]["depression"] == "borderline"
    assert res["answers"]["q1"] == 1 and res["answers"]["q14"] is None and len(res["answers"]) == 14
    assert res["scores"] == {"anxiety": 7.0, "depression": pytest.approx(6 * 7 / 6)}
    assert res["entered_by"] == "staff" and res["wording_source"] == "placeholder"
    assert json.loads(json.dumps(res, allow_nan=False)) == res
    assert questionnaire_result(nrs, {"pain_now": 3.0}, "participant")["answers"] == {"pain_now": 3}
    with pytest.raises(QuestionnaireAnswerError, match="entered_by must be one of"):
        questionnaire_result(nrs, {"pain_now": 3}, "nurse")


def test_item_choice_and_value_of_choice(hads):
    it = hads.item("q2")
    ch = item_choice(hads, it, timeout_s=60.0)
    assert ch.question == "HADS item 2" and ch.options == ["response A", "response B", "response C", "response D"]
    assert ch.timeout_s == 60.0
    assert [value_of_choice(it, i) for i in range(4)] == [0, 1, 2, 3]
    assert value_of_choice(hads.item("q1"), 0) == 3
    assert value_of_choice(it, None) is None
    with pytest.raises(QuestionnaireAnswerError, match="0..3, got 4"):
        value_of_choice(it, 4)


# ---------------------------------------------------------------- licensed wording

HADS_WORDING_HEAD = 'questionnaire = "hads"\nsource = "test licence"\ninstructions = "Tick one box."\n'


def _hads_wording(skip: str | None = None, n_options: int = 4, extra: str = "") -> str:
    parts = [HADS_WORDING_HEAD]
    for i in range(1, 15):
        if f"q{i}" == skip:
            continue
        opts = ", ".join(f'"wording {i}.{k}"' for k in range(n_options))
        parts.append(f'[items.q{i}]\ntext = "Item text {i}"\noptions = [{opts}]\n')
    return "\n".join(parts) + extra


def test_local_wording_replaces_placeholders_but_not_scores(qdir):
    (qdir / "local").mkdir()
    wfile = qdir / "local" / "hads.items.toml"
    wfile.write_text(_hads_wording(), encoding="utf-8")
    q = load_questionnaire("hads", base_dir=qdir, require_wording=True)
    assert q.wording_source == f"local file {wfile}" and q.missing_wording_file is None
    assert q.instructions == "Tick one box."
    assert q.item("q3").text == "Item text 3"
    assert [(o.label, o.value) for o in q.item("q3").options] == [
        ("wording 3.0", 3), ("wording 3.1", 2), ("wording 3.2", 1), ("wording 3.3", 0)]
    assert [o.value for o in q.item("q4").options] == [0, 1, 2, 3]
    assert questionnaire_result(q, {"q1": 3}, "participant")["wording_source"] == f"local file {wfile}"


def test_require_wording_without_local_file_names_the_file(qdir):
    with pytest.raises(MissingWordingError) as e:
        load_questionnaire("fiqr", base_dir=qdir, require_wording=True)
    assert str(qdir / "local" / "fiqr.items.toml") in str(e.value)
    assert e.value.path == qdir / "local" / "fiqr.items.toml"
    assert load_questionnaire("nrs", base_dir=qdir, require_wording=True).wording_source == "included"


def test_fiqr_wording_options_optional(qdir):
    (qdir / "local").mkdir()
    body = 'questionnaire = "fiqr"\n' + "\n".join(f'[items.q{i}]\ntext = "F{i}"\n' for i in range(1, 22))
    (qdir / "local" / "fiqr.items.toml").write_text(body, encoding="utf-8")
    q = load_questionnaire("fiqr", base_dir=qdir)
    assert q.item("q21").text == "F21" and q.item("q21").options[10].label == "10"
    assert q.instructions.startswith("FIQR instructions (placeholder")


@pytest.mark.parametrize("content, key, found", [
    (_hads_wording(skip="q7"), "items.q7", "<missing>"),
    (_hads_wording(n_options=3), "items.q1.options", "3 labels"),
    (_hads_wording(extra='\n[items.q15]\ntext = "x"\noptions = ["a", "b", "c", "d"]\n'), "items.q15", "q15"),
    (_hads_wording().replace('questionnaire = "hads"', 'questionnaire = "fiqr"'), "questionnaire", "fiqr"),
    (_hads_wording().replace('options = ["wording 5.0", "wording 5.1", "wording 5.2", "wording 5.3"]', ""),
     "items.q5.options", "<missing>"),
    (_hads_wording().replace("source =", "sauce ="), "sauce", "test licence"),
    ("questionnaire = ", "<file>", None),
])
def test_bad_wording_file_errors_name_file_key_found(qdir, content, key, found):
    (qdir / "local").mkdir()
    wfile = qdir / "local" / "hads.items.toml"
    wfile.write_text(content, encoding="utf-8")
    with pytest.raises(QuestionnaireFileError) as e:
        load_questionnaire("hads", base_dir=qdir)
    assert e.value.path == str(wfile) and e.value.key == key
    if found is not None:
        assert e.value.found == found
    assert isinstance(e.value, ProtocolFileError)


# ---------------------------------------------------------------- bad questionnaire files

@pytest.mark.parametrize("old, new, key, expect", [
    ("range = [0, 30]", "range = [0, 31]", "<file>", "declared range [0, 31] does not match the range its options give, [0, 30]"),
    ("divide_by = 2", "divide_by = 0", "scores.2.divide_by", "greater than 0"),
    ('response_set = "zero_to_ten"', 'response_set = "zero_to_nine"', "<file>", "response_set 'zero_to_nine' is not one of"),
    ('name = "fiqr"', 'name = "fiq"', "questionnaire.name", "the file's own name 'fiqr'"),
    ('title = "Revised', 'titel = "Revised', "questionnaire.titel", "no such key"),
    ('"q13", "q14"', '"q13", "q99"', "<file>", "item(s) ['q99'] are not declared"),
    ('of = ["function", "overall", "symptoms"]', 'of = ["function", "overall", "symptom"]', "<file>", "not scores declared above it"),
    ("min_answered = 5\n", "", "scores.0", "missing = 'prorate' needs min_answered"),
    ("values = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]", "values = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9]", "response_sets.zero_to_ten", "repeat a value"),
])
def test_bad_questionnaire_file_errors(qdir, old, new, key, expect):
    p = qdir / "fiqr.toml"
    text = p.read_text(encoding="utf-8")
    assert old in text
    p.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(QuestionnaireFileError) as e:
        load_questionnaire("fiqr", base_dir=qdir)
    assert e.value.path == str(p) and e.value.key == key
    assert expect in e.value.expected
    assert str(e.value).startswith(f"{p}: key '{key}': expected ")


def test_bad_bands_and_missing_file(qdir):
    p = qdir / "hads.toml"
    p.write_text(p.read_text(encoding="utf-8").replace("min = 8\n", "min = 9\n", 1).replace("max = 7\n", "max = 9\n", 1),
                 encoding="utf-8")
    with pytest.raises(QuestionnaireFileError, match="band 'borderline' must start above band 'normal'"):
        load_questionnaire("hads", base_dir=qdir)
    with pytest.raises(QuestionnaireFileError) as e:
        load_questionnaire("sf36", base_dir=qdir)
    assert e.value.path == str(qdir / "sf36.toml") and "available: ['fiqr', 'hads', 'nrs']" in e.value.expected
    with pytest.raises(QuestionnaireFileError, match="questionnaire name"):
        load_questionnaire("../etc/passwd", base_dir=qdir)


# ---------------------------------------------------------------- properties

def _answers_strategy(name: str):
    q = load_questionnaire(name)
    return st.fixed_dictionaries({it.id: st.one_of(st.none(), st.sampled_from(it.allowed_values())) for it in q.items})


@pytest.mark.parametrize("name", ["nrs", "fiqr", "hads"])
def test_scores_stay_in_range(name):
    q = load_questionnaire(name)

    @settings(max_examples=300, deadline=None)
    @given(_answers_strategy(name))
    def check(answers):
        s = score(q, answers)
        assert list(s) == [r.name for r in q.scores]
        for r in q.scores:
            v = s[r.name]
            assert v is None or r.range[0] - 1e-9 <= v <= r.range[1] + 1e-9, (r.name, v)
        if all(v is not None for v in answers.values()):
            assert all(v is not None for v in s.values())
        if all(v is None for v in answers.values()):
            assert all(v is None for v in s.values())

    check()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=14, max_size=14))
def test_hads_complete_answers_are_plain_sums(values):
    q = load_questionnaire("hads")
    answers = {f"q{i + 1}": v for i, v in enumerate(values)}
    s = score(q, answers)
    assert s["anxiety"] == sum(values[0::2]) and s["depression"] == sum(values[1::2])


# ---------------------------------------------------------------- simulated participants

def test_simulate_answers_valid_deterministic_and_follow_severity(fiqr, hads, nrs):
    for q in (nrs, fiqr, hads):
        a1 = simulate_answers(q, np.random.default_rng(7), 0.4)
        a2 = simulate_answers(q, np.random.default_rng(7), 0.4)
        assert a1 == a2 and list(a1) == [it.id for it in q.items]
        assert all(a1[it.id] in it.allowed_values() for it in q.items)
        score(q, a1)  # every simulated answer is accepted
    rng = np.random.default_rng(3)
    low = [score(fiqr, simulate_answers(fiqr, rng, 0.1))["total"] for _ in range(30)]
    high = [score(fiqr, simulate_answers(fiqr, rng, 0.9))["total"] for _ in range(30)]
    assert np.mean(low) < 25 and np.mean(high) > 75
    zero = score(hads, simulate_answers(hads, np.random.default_rng(0), 0.0))
    assert zero["anxiety"] is not None and zero["anxiety"] <= 7
    with pytest.raises(ValueError, match=r"severity must be a number in \[0, 1\]"):
        simulate_answers(nrs, rng, 1.5)
    assert not math.isnan(score(nrs, simulate_answers(nrs, rng, 1.0))["pain"])
