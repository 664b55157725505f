"""Issue 13: the TCS II driver against an emulator that behaves as the public manual describes (strict).

Bytes over a pty with per-character timestamps at the emulator: pacing, pre-load then `L` alone, `A`
pre-empting a paced string, every `P` layout, a corrupted parameter (no heat), fixed-length replies,
the limiter test, the station log and `run`'s guard.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import threading
import time
from pathlib import Path

import pytest
import serial

from cpm_session.cli import main
from cpm_session.clock import RealClock
from cpm_session.config.protocol import load_protocol
from cpm_session.config.station import RoleConfig, load_station, parse_station
from cpm_session.devices.real import open_real
from cpm_session.devices.transport import WritePreempted
from cpm_session.errors import CpmError, DeviceError, StationFileError
from cpm_session.sim.emulators import TcsEmulator, start_emulated_station
from cpm_session.station_check import CHECKS_FILE, check_station, read_records, require_recent_check
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
THERMAL = ROOT / "protocols" / "cpm-thermal.toml"
CAP_C, NEUTRAL_C = 49.0, 32.0
PARAMS = b"N320S11111C0455V00300R00400D005000"


def make(speed: float = 5.0, char_gap_ms: float = 1.0, **emu_kw):  # type: ignore[no-untyped-def]
    emu = TcsEmulator(speed=speed, strict=True, **emu_kw).start()
    dev = open_real("thermode", RoleConfig(model="tcs2", port=emu.port, char_gap_ms=char_gap_ms), cap_c=CAP_C,
                    neutral_c=NEUTRAL_C, clock=RealClock(speed))
    return emu, dev


@pytest.fixture
def strict():
    emu, dev = make()
    yield emu, dev
    dev.close()
    emu.stop()


# ---- pacing ---------------------------------------------------------------------------------------

def test_every_character_is_paced_and_the_strict_emulator_takes_them_all(strict):
    emu, dev = strict
    dev.connect()
    emu.clear_received()
    dev.transport.sent_chars.clear()
    dev.prepare(45.5, 30.0, 40.0, 5.0)
    assert emu.received_bytes() == PARAMS + b"P"
    sent = list(dev.transport.sent_chars)
    assert b"".join(c for _, c in sent) == PARAMS + b"P"
    gaps = [b[0] - a[0] for a, b in zip(sent, sent[1:])]
    assert min(gaps) >= 0.001  # host side: every character at least 1 ms after the previous one
    chars = emu.received_chars()
    assert [c for _, c in chars] == [bytes([b]) for b in PARAMS + b"P"]
    span = chars[len(PARAMS) - 1][0] - chars[0][0]
    assert span >= (len(PARAMS) - 1) * 0.001 * 0.9  # emulator side: arrivals spread over >= 33 ms, not a burst
    alone = sum(1 for _, d in emu.received if len(d) == 1)
    assert alone >= len(PARAMS) // 2  # mostly one character per read at the device
    assert emu.dropped_chars == 0
    with emu.lock:
        assert [c for _, c in emu.commands][-7:] == [b"N320", b"S11111", b"C0455", b"V00300", b"R00400",
                                                     b"D005000", b"P"]


def test_strict_emulator_drops_an_unpaced_string():
    emu = TcsEmulator(speed=1.0, strict=True).start()
    try:
        with serial.serial_for_url(emu.port, baudrate=115200, timeout=0.1) as s:
            time.sleep(0.05)
            s.write(PARAMS + b"L")  # one write: 36 characters within microseconds
            s.flush()
            assert wait_for(lambda: len(emu.received_bytes()) == len(PARAMS) + 1)
            time.sleep(0.05)
        assert emu.dropped_chars >= len(PARAMS) - 1
        assert not emu.stimuli  # the L was lost with the rest
        assert emu.zones == "00000"  # power-on default: nothing was taken
    finally:
        emu.stop()


def test_char_gap_setting_is_validated():
    bad = [25, -1, float("nan"), float("inf"), "1"]
    for v in bad:
        with pytest.raises(StationFileError, match="thermode.char_gap_ms"):
            parse_station({"thermode": {"model": "tcs2", "port": "x", "char_gap_ms": v}, "bath": {"model": "sim"},
                           "algometer": {"model": "sim"}})
    st = parse_station({"thermode": {"model": "tcs2", "port": "x", "char_gap_ms": 2.5},
                        "bath": {"model": "sim"}, "algometer": {"model": "sim"}})
    assert st.thermode.model_extra == {"char_gap_ms": 2.5}


def test_a_wider_gap_is_honoured():
    emu, dev = make(char_gap_ms=3.0)
    try:
        dev.connect()
        dev.transport.sent_chars.clear()
        dev.prepare(40.0, 10.0, 10.0, 2.0)
        sent = list(dev.transport.sent_chars)
        assert min(b[0] - a[0] for a, b in zip(sent, sent[1:])) >= 0.003
    finally:
        dev.close()
        emu.stop()


# ---- pre-load, launch, abort ------------------------------------------------------------------------

def test_preload_then_only_L_goes_out_at_the_onset(strict):
    emu, dev = strict
    dev.connect()
    dev.prepare(44.0, 20.0, 20.0, 3.0)
    emu.clear_received()
    time.sleep(0.1)
    assert not emu.stimuli  # loaded, not launched: no heat
    t0 = time.perf_counter()
    dev.launch()
    assert wait_for(lambda: emu.first_arrival(b"L", t0) is not None, timeout=1.0)
    assert emu.first_arrival(b"L", t0) - t0 < 0.02  # sub-ms normally; generous for a loaded CI machine
    assert emu.received_bytes() == b"L"
    assert wait_for(lambda: emu.stimulating)
    assert emu.stimuli[-1].targets_c == (44.0,) * 5
    with pytest.raises(DeviceError, match="launch refused: no stimulus prepared"):
        dev.launch()  # one launch per prepare
    assert emu.received_bytes() == b"L"


def test_launch_refuses_before_any_prepare(strict):
    emu, dev = strict
    dev.connect()
    emu.clear_received()
    with pytest.raises(DeviceError) as ei:
        dev.launch()
    assert (ei.value.role, ei.value.port, ei.value.command) == ("thermode", emu.port, "L")
    time.sleep(0.05)
    assert emu.received_bytes() == b"" and not emu.stimuli


def test_abort_preempts_a_paced_string(strict):
    emu, dev = strict
    dev.connect()
    emu.clear_received()
    errors: list[BaseException] = []

    def load() -> None:
        try:
            dev.prepare(45.0, 10.0, 10.0, 10.0)
        except BaseException as e:  # noqa: BLE001 - inspected below
            errors.append(e)

    th = threading.Thread(target=load)
    th.start()
    assert wait_for(lambda: len(emu.received_bytes()) >= 10, timeout=2.0)  # a third of the string is out
    t0 = time.perf_counter()
    dev.abort()
    t_called = time.perf_counter() - t0
    assert wait_for(lambda: emu.first_arrival(b"A", t0) is not None, timeout=1.0)
    latency = emu.first_arrival(b"A", t0) - t0
    th.join(2.0)
    got = emu.received_bytes()
    assert got.endswith(b"A") and len(got) < len(PARAMS)  # the rest of the string never went out
    assert latency < 0.02 and t_called < 0.01  # not after the ~25 ms the rest of the string would take
    assert len(errors) == 1 and isinstance(errors[0], WritePreempted) and "cut short by an abort" in str(errors[0])
    with emu.lock:
        assert b"A" in [c for _, c in emu.commands]  # the device read the abort
    with pytest.raises(DeviceError, match="no stimulus prepared"):
        dev.launch()
    assert not emu.stimuli


# ---- P read-back ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mode,warn", [("public", ""), ("command", ""), ("unknown", "P reply in an unknown layout"),
                                       ("silent", "no reply to P")])
def test_each_p_layout_connects_prepares_and_launches(mode, warn):
    emu, dev = make(p_mode=mode)
    try:
        info = dev.connect()
        assert info.extra["p_layout"] == mode
        assert (warn in dev.readback_warning) if warn else dev.readback_warning == ""
        if mode == "command":
            assert info.extra["device_max_readback"] == "49.0"
        if mode == "unknown":
            assert "Stimulation parameters" in info.extra["p_raw"]  # logged raw, once
        emu.clear_received()
        dev.stimulate(42.0, 20.0, 20.0, 1.0)
        want = b"N320S11111C0420V00200R00200D001000" + (b"P" if not warn else b"") + b"L"
        assert wait_for(lambda: emu.received_bytes().endswith(b"L"))
        assert emu.received_bytes() == want  # unknown/silent: P is not asked again (no 1 s wait per stimulus)
        assert wait_for(lambda: emu.stimulating) and emu.dropped_chars == 0
    finally:
        dev.close()
        emu.stop()


def test_a_parameter_corrupted_on_the_wire_is_never_launched():
    emu, dev = make(corrupt="C")
    try:
        dev.connect()
        emu.clear_received()
        with pytest.raises(DeviceError) as ei:
            dev.stimulate(45.5, 30.0, 40.0, 5.0)
        e = ei.value
        msg = str(e)
        assert msg.startswith(f"thermode on {emu.port}: parameters read back differ after a re-send, nothing launched")
        assert "zone 1 target: sent 45.5, device has 45.6 °C" in msg
        assert e.command == "N320 S11111 C0455 V00300 R00400 D005000" and b"C456" in e.reply
        assert emu.received_bytes() == (PARAMS + b"P") * 2  # re-sent once, no L
        time.sleep(0.05)
        assert b"L" not in emu.received_bytes() and not emu.stimuli
        with pytest.raises(DeviceError, match="no stimulus prepared"):
            dev.launch()
    finally:
        dev.close()
        emu.stop()


def test_a_parameter_corrupted_once_is_fixed_by_the_resend():
    emu, dev = make(corrupt="D", corrupt_count=1)
    try:
        dev.connect()
        emu.clear_received()
        dev.stimulate(45.5, 30.0, 40.0, 5.0)
        assert wait_for(lambda: emu.stimulating)
        assert emu.received_bytes() == (PARAMS + b"P") * 2 + b"L"
        assert dev.readback_mismatches == ["zone 1 duration: sent 5000, device has 5001 ms; zone 2 duration: sent "
                                           "5000, device has 5001 ms; zone 3 duration: sent 5000, device has 5001 ms; "
                                           "zone 4 duration: sent 5000, device has 5001 ms; zone 5 duration: sent "
                                           "5000, device has 5001 ms"]
    finally:
        dev.close()
        emu.stop()


# ---- fixed-length replies ----------------------------------------------------------------------------

def test_fixed_length_replies_complete_by_length_when_muted(strict):
    emu, dev = strict
    dev.connect()
    dev.transport.write(b"F", command="F")  # mute the stream: nothing follows a reply
    assert wait_for(lambda: emu.muted)
    for call, want in ((dev.error_status, ""), (dev.buttons, (False, False)), (dev.battery, (19.1234, 40))):
        t0 = time.perf_counter()
        assert call() == want  # type: ignore[operator]
        assert time.perf_counter() - t0 < 0.15  # by length, not by a time-out (1 s) or a quiet line
    reply = b"\r" + b"19.1234v 040%"
    # the emulator records a reply just after writing it, so the driver can have it first: wait for the record
    assert wait_for(lambda: bool(emu.sent) and emu.sent[-1][1] == reply)
    time.sleep(0.05)
    assert emu.sent[-1][1] == reply  # nothing after the reply


# ---- limiter test -------------------------------------------------------------------------------

def test_limiter_passes_on_the_emulator_and_restores_the_cap(strict):
    emu, dev = strict
    dev.connect()
    res = dev.limiter_test(om_c=34.0, target_c=37.0, duration_s=1.5, margin_c=0.3)
    assert res.passed and res.peak_c is not None and 33.5 <= res.peak_c <= 34.3 and res.samples >= 10
    assert wait_for(lambda: emu.max_c == 49.0) and dev.device_max_c == 49.0
    with emu.lock:
        cmds = [c for _, c in emu.commands]
    assert cmds[cmds.index(b"Om340"):][:9] == [b"Om340", b"N320", b"S11111", b"C0370", b"V00100", b"R00100",
                                                b"D001500", b"P", b"L"]
    assert cmds[-2:] == [b"A", b"Om490"]


def test_limiter_fails_when_the_device_ignores_om():
    emu, dev = make(ignore_om=True)
    try:
        dev.connect()
        res = dev.limiter_test(om_c=34.0, target_c=37.0, duration_s=1.5, margin_c=0.3)
        assert not res.passed and res.peak_c is not None and res.peak_c > 34.3
        assert "> 34.3 °C" in res.detail
    finally:
        dev.close()
        emu.stop()


# ---- check-station, the station log and run's guard -------------------------------------------

def _check(tmp_path: Path, **options):  # type: ignore[no-untyped-def]
    path, st = start_emulated_station(tmp_path, speed=5.0, auto_press=False, thermode_neutral_c=32.0,
                                      thermode_options=options)
    out: list[str] = []
    try:
        rep = check_station(load_station(path), load_protocol(THERMAL), bath_window_s=0.3, neutral_wait_s=2.0,
                            emit=out.append, data_dir=tmp_path / "data", clock=RealClock(5.0))
    finally:
        st.stop()
    return path, st, rep, out


@pytest.mark.parametrize("mode", ["public", "command", "unknown", "silent"])
def test_check_station_passes_in_every_p_mode_with_the_right_warnings(tmp_path, mode):
    path, st, rep, out = _check(tmp_path, p_mode=mode)
    text = "\n".join(out)
    assert rep.ok, text
    assert any(ln.startswith("OK   thermode: limiter: Om 34.0 °C, target 37.0 °C: streamed peak") for ln in out)
    warns = [ln for ln in out if ln.startswith("WARN thermode:")]
    if mode in ("unknown", "silent"):
        assert len(warns) == 1 and ("unknown layout" if mode == "unknown" else "no reply to P") in warns[0]
        assert rep.warnings == [warns[0][len("WARN thermode: "):]]
    else:
        assert warns == [] and rep.warnings == []
    recs = read_records(tmp_path / "data")
    assert len(recs) == 1 and recs[0]["passed"] is True and recs[0]["firmware"] == "TCS II emulator 1.0"
    assert recs[0]["peak_c"] <= 34.3 and len(recs[0]["station_sha256"]) == 64
    assert require_recent_check(load_station(path), tmp_path / "data") == recs[0]


def test_check_station_fails_the_limiter_and_run_refuses(tmp_path):
    path, st, rep, out = _check(tmp_path, ignore_om=True)
    assert not rep.ok
    assert [(c.role, c.name) for c in rep.checks if c.ok is False] == [("thermode", "limiter")]
    rec = read_records(tmp_path / "data")[0]
    assert rec["passed"] is False and rec["peak_c"] > 34.3
    with pytest.raises(CpmError, match=r"no passing thermode limiter check .* \(1 failed\)"):
        require_recent_check(load_station(path), tmp_path / "data")


def _real_station(tmp_path: Path) -> Path:
    p = tmp_path / "lab.toml"
    p.write_text('[station]\nname = "lab"\n\n[thermode]\nmodel = "tcs2"\nport = "/dev/does-not-exist-tcs"\n\n'
                 '[bath]\nmodel = "sim"\n\n[algometer]\nmodel = "sim"\n', encoding="utf-8")
    return p


def _record(station_path: Path, data: Path, *, hours_ago: float, passed: bool = True, sha: str | None = None) -> None:
    import hashlib

    from cpm_session.station_check import append_record

    t = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours_ago)
    append_record(data, {"kind": "limiter", "utc": t.isoformat(timespec="seconds"), "passed": passed,
                         "station_sha256": sha or hashlib.sha256(station_path.read_bytes()).hexdigest()})


def test_require_recent_check_age_station_and_bad_lines(tmp_path):
    sp = _real_station(tmp_path)
    data = tmp_path / "data"
    st = load_station(sp)
    with pytest.raises(CpmError, match="none found"):
        require_recent_check(st, data)
    _record(sp, data, hours_ago=30)
    _record(sp, data, hours_ago=1, sha="0" * 64)  # another station file
    (data / CHECKS_FILE).open("a").write("not json\n[1, 2]\n")  # untrusted file: skipped
    with pytest.raises(CpmError, match="the last passing one is from"):
        require_recent_check(st, data)
    assert require_recent_check(st, data, max_age_h=48)["passed"] is True
    _record(sp, data, hours_ago=2)
    assert require_recent_check(st, data)["passed"] is True


def _run(sp: Path, data: Path, *extra: str) -> int:
    return main(["run", "--participant", "P001", "--visit", "baseline", "--station", str(sp), "--operator", "AB",
                 "--ui", "headless", "--data", str(data), *extra])


def test_run_refuses_a_real_tcs2_without_a_recent_check(tmp_path, capsys):
    sp = _real_station(tmp_path)
    data = tmp_path / "data"
    assert _run(sp, data) == 2
    err = capsys.readouterr().err
    assert "error: no passing thermode limiter check of station file" in err and "check-station" in err
    assert "Traceback" not in err
    # with a reason it goes on (and stops later for an unrelated reason: headless needs --simulate)
    assert _run(sp, data, "--override-reason", "limiter checked by the manufacturer today") == 2
    err = capsys.readouterr().err
    assert "WARNING: no passing thermode limiter check" in err and "--ui headless needs --simulate" in err
    rec = read_records(data)[-1]
    assert rec["kind"] == "override" and rec["reason"] == "limiter checked by the manufacturer today"
    assert rec["operator"] == "AB" and rec["participant"] == "P001"
    # a passing check of this station file lets it through without a reason
    _record(sp, data, hours_ago=0.5)
    assert _run(sp, data) == 2
    err = capsys.readouterr().err
    assert "limiter" not in err and "--ui headless needs --simulate" in err


def test_emulate_cli_strict_options(capsys):
    from cpm_session.commands import emulate

    p = __import__("argparse").ArgumentParser()
    emulate.add_arguments(p)
    a = p.parse_args(["thermode", "--strict", "--p-mode", "silent", "--ignore-om"])
    assert a.strict and a.p_mode == "silent" and a.ignore_om


def test_onset_stays_sub_ms_with_pacing_and_preload():
    emu, dev = make(speed=1.0)
    try:
        dev.connect()
        errs = []
        for _ in range(9):
            dev.prepare(40.0, 20.0, 20.0, 0.2)
            planned = time.perf_counter() + 0.05
            while time.perf_counter() < planned:
                pass
            dev.launch()
            assert wait_for(lambda p=planned: emu.first_arrival(b"L", p) is not None, timeout=1.0)  # type: ignore[misc]
            errs.append(emu.first_arrival(b"L", planned) - planned)
            time.sleep(0.3)
        # well below the 34 ms the paced parameter string takes (sub-ms on an idle machine, see the benchmark)
        assert statistics.median(errs) < 0.015
        assert json.dumps(errs)
    finally:
        dev.close()
        emu.stop()
