"""The ledger: anchors of every session and adverse-event log outside its folder, hash-chained, optionally
signed with a station key kept outside the data folder; and the one verification gate."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from cpm_session.record import ledger
from cpm_session.record.gate import VerificationFailed, require_verified, screen_paths
from cpm_session.record.integrity import verify_session_report
from tests.trust_helpers import build_data, copy_data, session


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_data(tmp_path_factory.mktemp("ledger"), aborted=False)


@pytest.fixture
def data(built: Path, tmp_path: Path) -> Path:
    return copy_data(built, tmp_path)


def test_every_phase_exit_and_the_end_are_anchored(data: Path) -> None:
    base = session(data, "P001", "baseline")
    entries = [json.loads(x) for x in (data / "ledger.jsonl").read_text().splitlines()]
    mine = [e for e in entries if e["subject"] == f"P001/{base.name}"]
    exits = [json.loads(x) for x in (base / "events.jsonl").read_text().splitlines()
             if '"event": "phase_exit"' in x]
    assert [e["point"] for e in mine] == [e["phase"] for e in exits] + ["end"]
    assert mine[-1]["events"] == len((base / "events.jsonl").read_bytes().splitlines())
    assert all("tables" in e and set(e["tables"]) == {"ratings.csv", "devices.csv"} for e in exits)


def test_a_deleted_ledger_is_found(data: Path) -> None:
    (data / "ledger.jsonl").unlink()
    r = verify_session_report(session(data, "P001", "baseline"))
    assert any("has no ledger" in p for p in r.problems)


def test_an_edited_ledger_is_found(data: Path) -> None:
    lines = (data / "ledger.jsonl").read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b'"events":', b'"events": ', 1)
    (data / "ledger.jsonl").write_bytes(b"\n".join(lines))
    r = verify_session_report(session(data, "P001", "baseline"))
    assert any("ledger fails verification" in p for p in r.problems)


def test_a_torn_ledger_line_is_cut_and_kept_by_the_next_writer(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    ledger.anchor(d, "P001/x", "a" * 64, 3, "one")
    with open(d / "ledger.jsonl", "ab") as f:
        f.write(b'{"seq":1,"wall":"2026')  # killed while writing
    led = ledger.read_ledger(d)
    assert not led.problems and led.notes
    ledger.anchor(d, "P001/x", "b" * 64, 4, "two")
    led = ledger.read_ledger(d)
    assert not led.problems and [e["point"] for e in led.entries] == ["one", "two"]
    assert (d / "ledger.torn").read_bytes().startswith(b'{"seq":1')


def _anchor_many(args: tuple[str, int]) -> None:
    d, k = args
    for i in range(20):
        ledger.anchor(Path(d), f"P{k:03d}/s", f"{i:064x}", i + 1, f"p{i}")


def test_concurrent_writers_keep_one_valid_chain(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pool.map(_anchor_many, [(str(d), k) for k in range(4)])
    led = ledger.read_ledger(d)
    assert not led.problems and len(led.entries) == 80
    assert [e["seq"] for e in led.entries] == list(range(80))


def test_signed_ledger_verifies_with_the_public_key_and_catches_forgery(data: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    kid = ledger.generate_key_pair(keys / "station.key", keys / "station.pub")
    assert oct((keys / "station.key").stat().st_mode & 0o777) == "0o600"
    d = tmp_path / "signed"
    monkeypatch.setenv(ledger.SIGNING_KEY_ENV, str(keys / "station.key"))
    from cpm_session.clock import VirtualClock
    from cpm_session.sim.world import run_simulated_visit

    s = run_simulated_visit(d, "P001", "baseline", seed=1, clock=VirtualClock())
    entries = [json.loads(x) for x in (d / "ledger.jsonl").read_text().splitlines()]
    assert entries and all(e["key_id"] == kid and len(e["sig"]) == 128 for e in entries)
    monkeypatch.delenv(ledger.SIGNING_KEY_ENV)
    monkeypatch.setenv(ledger.VERIFY_KEY_ENV, str(keys / "station.pub"))
    assert verify_session_report(s).ok
    # a forger without the key re-writes the ledger (valid chain, unsigned): found
    rows = [json.loads(x) for x in (d / "ledger.jsonl").read_text().splitlines()]
    prev = "0" * 64
    out = []
    for r in rows:
        r = {k: v for k, v in r.items() if k not in ("sig", "key_id")}
        r["prev"] = prev
        line = json.dumps(r, separators=(",", ":")).encode()
        out.append(line)
        from cpm_session.record.folder import line_hash

        prev = line_hash(line)
    (d / "ledger.jsonl").write_bytes(b"\n".join(out) + b"\n")
    r = verify_session_report(s)
    assert any("not signed by the station key" in p for p in r.problems), r.problems


def test_a_signing_key_inside_the_data_folder_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    ledger.generate_key_pair(d / "k.key", tmp_path / "k.pub")
    with pytest.raises(ledger.LedgerError, match="inside the data folder"):
        ledger.load_signing_key(d / "k.key", data_dir=d)


def test_the_gate_refuses_with_the_reason_and_screens_folders(data: Path) -> None:
    base = session(data, "P001", "baseline")
    assert require_verified(base, "used").ok
    h = json.loads((base / "session.json").read_text())
    h["results"]["ts_intensity"] = 47.5
    (base / "session.json").write_text(json.dumps(h))
    with pytest.raises(VerificationFailed, match="cannot be used as the baseline: session.json results.ts_intensity"):
        require_verified(base, "used as the baseline")
    s = screen_paths([base])
    assert s.excluded and not s.kept and s.lines()[0].startswith("EXCLUDED (fails verification)")
    s = screen_paths([base], include_unverified=True)
    assert s.kept == [base] and s.lines()[0].startswith("UNVERIFIED")


def test_verify_command_reports_each_tamper_in_one_pass(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cpm_session.cli import main

    assert main(["verify", str(data)]) == 0
    base = session(data, "P001", "baseline")
    with open(base / "devices.csv", "ab") as f:
        f.write(b"999.0,bath,bath_c,2.5,C\r\n")
    assert main(["verify", str(data)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "appended afterwards" in out


def test_a_kill_between_the_last_log_line_and_the_header_update_is_no_tamper(data: Path) -> None:
    """Killed after `session_end` was logged but before session.json said so: verification notes it, passes."""
    from cpm_session.record.folder import line_hash

    base = session(data, "P001", "baseline")
    lines = (base / "events.jsonl").read_bytes().rstrip(b"\n").split(b"\n")
    k = next(i for i, ln in enumerate(lines) if b'"event": "results"' in ln)
    h = json.loads((base / "session.json").read_text())
    h.update(status="running", log_events=k, log_final_sha256=line_hash(lines[k - 1]))
    for key in ("results", "end_utc", "message"):
        h.pop(key, None)
    (base / "session.json").write_text(json.dumps(h))
    r = verify_session_report(base)
    assert r.ok, r.problems
    assert any("killed while closing" in n for n in r.notes)


def test_a_kill_right_after_a_resume_began_is_no_tamper(tmp_path: Path) -> None:
    """A resume's first line is written, then the process dies before the header says running again."""
    from cpm_session.record.folder import EventLog

    d = build_data(tmp_path)
    post = session(d, "P002", "post")
    log = EventLog(post / "events.jsonl", lambda: 900.0)
    log.append("resume_session", restart_phase="ts_pre", kept_phases=["welcome"], reason="")
    log.close()
    r = verify_session_report(post)
    assert r.ok, r.problems


def test_a_kill_before_the_first_anchor_is_no_tamper_but_a_missing_ledger_later_is(tmp_path: Path) -> None:
    """Killed between the first phase_exit and its anchor: nothing to compare yet (a note); once a second phase
    has ended, the ledger must hold the session."""
    from cpm_session.record.folder import EventLog

    d = tmp_path / "d"
    s = d / "P001" / "baseline-20260105T090000Z"
    s.mkdir(parents=True)
    (s / "ratings.csv").write_bytes(b"phase\r\n")
    (s / "devices.csv").write_bytes(b"t,role,quantity,value,unit\r\n")
    tables = {"ratings.csv": {"rows": 0, "bytes": 7, "sha256": __import__("hashlib").sha256(b"phase\r\n").hexdigest()}}
    log = EventLog(s / "events.jsonl", lambda: 0.0)
    log.append("session_start", participant="P001", visit="baseline")
    log.append("phase_exit", phase="welcome", status="completed", output={}, tables=tables)
    log.close()
    (s / "session.json").write_text(json.dumps({"participant": "P001", "visit": "baseline", "status": "running",
                                                "start_utc": "2026-01-05T09:00:00.000Z"}))
    r = verify_session_report(s)
    assert r.ok, r.problems
    log = EventLog(s / "events.jsonl", lambda: 1.0)
    log.append("phase_exit", phase="acclimatization", status="completed", output={}, tables=tables)
    log.close()
    r = verify_session_report(s)
    assert any("not anchored" in p for p in r.problems), r.problems
