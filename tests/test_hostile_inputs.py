"""At least 200 hostile inputs across every command and every file the program reads back: each one is
refused cleanly (one line, no traceback), writes nothing into the data folder and loses nothing.
The cases and the harness: tests/hostile_cases.py; the README table: scripts/hostile_table.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import hostile_cases as hc

CASES = hc.cases()


def test_there_are_at_least_200_hostile_inputs_across_all_areas() -> None:
    assert len(CASES) >= 200
    areas = {c.area for c in CASES}
    for must in ("run: participant ID", "run: numbers", "protocol file", "station file", "amend", "session.json",
                 "events.jsonl", "CSV tables", "adverse-event log", "allocation list", "outputs (-o)", "links"):
        assert must in areas


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hc.build_source(tmp_path_factory.mktemp("hostile-src"))


@pytest.fixture(scope="module")
def outcomes(source: Path, tmp_path_factory: pytest.TempPathFactory) -> list[hc.Outcome]:
    scratch = tmp_path_factory.mktemp("hostile-run")
    return [hc.run_case(c, hc.make_env(source, scratch / "case")) for c in CASES]


def test_every_hostile_input_is_refused_cleanly(outcomes: list[hc.Outcome]) -> None:
    bad = [hc.describe(o) for o in outcomes if not o.refused_cleanly]
    assert bad == []


def test_no_hostile_input_writes_into_the_data_folder(outcomes: list[hc.Outcome]) -> None:
    bad = [hc.describe(o) for o in outcomes if not o.nothing_written]
    assert bad == []


def test_no_hostile_input_loses_anything(outcomes: list[hc.Outcome]) -> None:
    bad = [hc.describe(o) for o in outcomes if not o.nothing_lost]
    assert bad == []


def test_the_harness_sees_a_traceback_a_write_and_a_loss(source: Path, tmp_path: Path) -> None:
    """The judge itself: a case that crashes, writes or deletes is reported as such."""
    def crash(env: hc.Env) -> list[str]:
        raise RuntimeError("boom")

    o = hc.run_case(hc.Case("self-test", "crash", crash, refused=lambda c, o_, e, env: True),
                    hc.make_env(source, tmp_path / "a"))
    assert not o.refused_cleanly and "Traceback" in o.err
    env = hc.make_env(source, tmp_path / "b")
    o = hc.run_case(hc.Case("self-test", "writes", lambda env: ["amend", str(env.base), "--field",
                                                                "results.cs_rating_30s", "--value", "50", "--reason",
                                                                "x", "--operator", "AB"]), env)
    assert o.code == 0 and not o.refused_cleanly and not o.nothing_written and not o.nothing_lost
