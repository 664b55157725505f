"""Hypothesis fuzzing of every file reader and every command with hostile input: the only exceptions that
may leave a reader are the program's own (CpmError: one line at the command line); a command never lets
a traceback out. Small example counts keep the suite fast."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cpm_session.errors import CpmError
from tests.trust_helpers import ROOT, build_data

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

HOSTILE_NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**30), 10**30),
                            st.sampled_from([0, -1, 1e300, -1e300, 1e-300]))
HOSTILE_TEXT = st.one_of(st.text(max_size=40), st.sampled_from(["", "CON", "\x1b[31m", "../..", "a" * 5000, "\x00"]))
HOSTILE_VALUE = st.one_of(HOSTILE_NUMBERS, HOSTILE_TEXT, st.booleans(), st.lists(HOSTILE_NUMBERS, max_size=3),
                          st.dictionaries(st.text(max_size=5), HOSTILE_NUMBERS, max_size=2))


def _leaves(d: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += _leaves(v, (*prefix, k))
        else:
            out.append((*prefix, k))
    return out


def _set(d: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value


PROTOCOL = tomllib.loads((ROOT / "protocols" / "cpm-thermal.toml").read_text())
STATION = tomllib.loads((ROOT / "hardware" / "example-lab.toml").read_text())


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(_leaves(PROTOCOL)), HOSTILE_VALUE), min_size=1, max_size=3))
def test_protocol_reader_refuses_or_returns_finite_bounded_values(edits: list[tuple[tuple[str, ...], Any]]) -> None:
    import math

    from cpm_session.config.protocol import parse_protocol

    data = copy.deepcopy(PROTOCOL)
    for path, value in edits:
        _set(data, path, value)
    try:
        p = parse_protocol(data)
    except CpmError:
        return
    for path in _leaves(PROTOCOL):
        v: Any = p
        for k in path:
            v = getattr(v, k)
        if isinstance(v, float):
            assert math.isfinite(v) and abs(v) <= 1e6, (path, v)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(_leaves(STATION)), HOSTILE_VALUE), min_size=1, max_size=3))
def test_station_reader_refuses_cleanly(edits: list[tuple[tuple[str, ...], Any]]) -> None:
    from cpm_session.config.station import parse_station

    data = copy.deepcopy(STATION)
    for path, value in edits:
        _set(data, path, value)
    with contextlib.suppress(CpmError):
        parse_station(data)


@FUZZ
@given(st.binary(max_size=300))
def test_toml_files_of_any_bytes_are_refused_cleanly(tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    from cpm_session.config.protocol import load_protocol
    from cpm_session.config.station import load_station

    p = tmp_path_factory.mktemp("toml") / "f.toml"
    p.write_bytes(raw)
    for load in (load_protocol, load_station):
        with contextlib.suppress(CpmError):
            load(p)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cpm_session.record.adverse_events import record_adverse_event

    d = build_data(tmp_path_factory.mktemp("fuzz"), aborted=False)
    record_adverse_event(d, "P001", {"description": "dizziness", "onset_date": "2026-01-05", "severity": "mild",
                                     "serious": "no", "relatedness": "possible", "action_taken": "none",
                                     "outcome": "recovering"}, operator="AB")
    return d


def _fresh(data: Path, tmp: Path) -> tuple[Path, Path]:
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(data, tmp)
    return tmp, next((tmp / "P001").glob("baseline-*"))


def _mutate(raw: bytes, pos: int, junk: bytes, cut: bool) -> bytes:
    pos = pos % (len(raw) + 1)
    return raw[:pos] if cut else raw[:pos] + junk + raw[pos + len(junk):]


MUTATION = st.tuples(st.integers(0, 10**7), st.binary(min_size=1, max_size=12), st.booleans())


@FUZZ
@given(st.sampled_from(["session.json", "events.jsonl", "ratings.csv", "devices.csv"]), MUTATION)
def test_session_readers_never_crash_on_a_damaged_file(data: Path, tmp_path_factory: pytest.TempPathFactory,
                                                       name: str, mutation: tuple[int, bytes, bool]) -> None:
    from cpm_session.analysis.summarize import summarize
    from cpm_session.export import load_session as export_load
    from cpm_session.record.folder import read_events
    from cpm_session.record.gate import check
    from cpm_session.record.reader import load_session

    root, s = _fresh(data, tmp_path_factory.mktemp("m") / "d")
    raw = (s / name).read_bytes()
    new = _mutate(raw, *mutation)
    (s / name).write_bytes(new)
    r = check(s)
    if name != "session.json":  # any change of the log or a table is found (session.json may be re-spaced)
        assert r.ok == (new == raw), (name, mutation, r.problems)
    for read in (load_session, lambda p: read_events(p / "events.jsonl"), export_load):
        with contextlib.suppress(CpmError):
            read(s)
    summarize(root)  # warnings, never an exception


@FUZZ
@given(MUTATION)
def test_ae_log_readers_never_crash(data: Path, tmp_path_factory: pytest.TempPathFactory,
                                    mutation: tuple[int, bytes, bool]) -> None:
    from cpm_session.record.adverse_events import list_adverse_events
    from cpm_session.record.integrity import verify_ae_log

    root, _s = _fresh(data, tmp_path_factory.mktemp("a") / "d")
    log = root / "P001" / "adverse_events.jsonl"
    raw = log.read_bytes()
    new = _mutate(raw, *mutation)
    log.write_bytes(new)
    r = verify_ae_log(log)
    assert r.ok == (new == raw), (mutation, r.problems)
    with contextlib.suppress(CpmError):
        list_adverse_events(root, "P001")


@FUZZ
@given(st.binary(max_size=400))
def test_allocation_reader_refuses_cleanly(tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    from cpm_session.analysis.trial import read_allocation

    p = tmp_path_factory.mktemp("al") / "a.csv"
    p.write_bytes(raw)
    with contextlib.suppress(CpmError):
        read_allocation(p)


TOKENS = st.sampled_from(["--force", "--include-unverified", "-o", "--field", "--value", "--reason", "--operator",
                          "--n", "--seed", "--block-size", "--arms", "--participant", "--data", "--quiet", "bids",
                          "redcap", "list", "add", "update", "nan", "inf", "-1", "1e999", "[1e999]", "CON", "AB",
                          "results.cs_rating_30s", "visit", "\x1b", "", "..", "/dev/zero", "/etc"])
COMMANDS = st.sampled_from(["verify", "amend", "ae", "summarize", "analyze", "randomize", "validate", "export"])


@FUZZ
@given(COMMANDS, st.lists(st.one_of(TOKENS, st.text(max_size=12)), max_size=8))
def test_commands_never_let_a_traceback_out(data: Path, tmp_path_factory: pytest.TempPathFactory, command: str,
                                            tokens: list[str]) -> None:
    from cpm_session.cli import main
    from tests.trust_helpers import snapshot

    root, s = _fresh(data, tmp_path_factory.mktemp("c") / "d")
    fill = {"amend": [str(s)], "verify": [str(root)], "summarize": [str(root)], "analyze": [str(root)],
            "export": ["bids", str(root)], "validate": [str(ROOT / "protocols" / "cpm-thermal.toml")]}
    argv = [command, *fill.get(command, []), *tokens]
    before = snapshot(root)
    err = io.StringIO()
    cwd = os.getcwd()
    os.chdir(root.parent)  # relative outputs (summary.csv, an export folder) land in the scratch folder
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                main(argv)
            except SystemExit:
                pass
    finally:
        os.chdir(cwd)
    assert "Traceback" not in err.getvalue() and "this is a bug" not in err.getvalue(), (argv, err.getvalue())
    after = snapshot(root)
    assert all(after.get(k) == v for k, v in before.items()), argv  # nothing lost


@FUZZ
@given(st.one_of(st.floats(), st.sampled_from(["nan", "inf", "-inf", "1e999", "0", "abc"])),
       st.one_of(st.integers(-(2**70), 2**70), st.sampled_from(["-1", "abc", "1.5"])),
       st.lists(st.tuples(st.sampled_from(["pain60_c", "noise_sd", "withdrawal_s", "bogus"]),
                          st.one_of(st.floats(), st.text(max_size=5))), max_size=2))
def test_run_options_are_checked_before_anything_happens(tmp_path_factory: pytest.TempPathFactory, speed: Any,
                                                         seed: Any, truth: list[tuple[str, Any]]) -> None:
    from cpm_session.cli import main

    d = tmp_path_factory.mktemp("r") / "d"
    argv = ["run", "--participant", "CON", "--visit", "baseline", "--simulate", "--ui", "headless", "--no-status",
            "--data", str(d), "--speed", str(speed), "--seed", str(seed)]
    for k, v in truth:
        argv += ["--sim-truth", f"{k}={v}"]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as e:
            code = int(e.code or 0)
    assert code != 0 and "Traceback" not in err.getvalue() and not d.exists(), (argv, err.getvalue())


def test_fuzz_inputs_are_json_serialisable_sanity() -> None:
    assert json.loads(json.dumps({"x": 1})) == {"x": 1}
