"""LSL sync markers: a recorder's inlet receives every marker of a simulated visit, in order, stamped as logged."""

from __future__ import annotations

import json
import os
import threading
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest

from cpm_session.clock import VirtualClock
from cpm_session.config.protocol import load_protocol, parse_protocol
from cpm_session.config.station import parse_station
from cpm_session.session.sync import MARKER_EVENTS, marker_text, settings_for
from cpm_session.sim.participant import ParticipantTruth
from cpm_session.sim.world import run_visit
from tests.conftest import SIM_STATION, THERMAL
from tests.helpers import events

# liblsl reads its configuration once, at first use: keep discovery on this machine (loopback only).
LSL_CFG = Path(__file__).with_name("lsl_api.cfg")
os.environ.setdefault("LSLAPICFG", str(LSL_CFG))
pylsl = pytest.importorskip("pylsl")


def sync_station(**sync: Any):  # type: ignore[no-untyped-def]
    data = tomllib.loads(SIM_STATION.read_text(encoding="utf-8"))
    data["sync"] = sync
    return parse_station(data, "sync-test-station.toml")


def test_settings_merge_protocol_and_station() -> None:
    data = tomllib.loads(THERMAL.read_text(encoding="utf-8"))
    assert settings_for(load_protocol(THERMAL), sync_station()).lsl is False
    data["sync"] = {"lsl": True, "stream_name": "study-markers"}
    prot = parse_protocol(data, "p.toml")
    s = settings_for(prot, sync_station())
    assert s.lsl and s.stream_name == "study-markers" and s.source_id == "cpm-session:simulation:study-markers"
    s = settings_for(prot, sync_station(lsl=False))  # the station can turn it off (no recorder here)
    assert not s.lsl
    s = settings_for(load_protocol(THERMAL), sync_station(lsl=True, stream_name="room2", source_id="room2-pc",
                                                         ttl_on_launch=True))
    assert s.lsl and s.stream_name == "room2" and s.source_id == "room2-pc" and s.ttl_on_launch


def test_marker_text_is_compact_json_with_the_events_fields() -> None:
    txt = marker_text("stimulus", 17, {"phase": "ts_pre", "trial": 2, "target_c": 46.5, "trace": [[0, 1]],
                                       "onset_t": 701.25, "question": "How painful?"})
    assert json.loads(txt) == {"event": "stimulus", "seq": 17, "phase": "ts_pre", "trial": 2, "target_c": 46.5,
                               "onset_t": 701.25}


def test_inlet_receives_every_marker_in_order_with_the_logged_timestamps(tmp_path: Path) -> None:
    name = f"cpm-test-{uuid.uuid4().hex[:10]}"
    station = sync_station(lsl=True, stream_name=name, wait_for_recorder_s=30.0)
    prot = load_protocol(THERMAL)
    outcome: dict[str, Any] = {}

    def visit() -> None:
        try:
            outcome["o"] = run_visit(prot, station, data_dir=tmp_path, participant="L001", visit="baseline",
                                     clock=VirtualClock(), seed=3, truth=ParticipantTruth(withdrawal_s=20.0))
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            outcome["error"] = e

    th = threading.Thread(target=visit, daemon=True)
    th.start()
    found = pylsl.resolve_byprop("name", name, timeout=20.0)
    assert found, "the marker stream was never announced"
    info = found[0]
    assert info.type() == "Markers" and info.channel_format() == pylsl.cf_string
    inlet = pylsl.StreamInlet(info, max_buflen=600)
    inlet.open_stream(timeout=10.0)
    received: list[tuple[dict[str, Any], float]] = []
    while True:
        sample, ts = inlet.pull_sample(timeout=30.0)
        assert sample is not None, f"marker stream went silent after {len(received)} markers"
        received.append((json.loads(sample[0]), ts))
        if received[-1][0]["event"] == "session_end":
            break
    th.join(30.0)
    assert "error" not in outcome, outcome.get("error")
    o = outcome["o"]
    assert o.status == "completed"
    logged = [e for e in events(o.session_dir) if e["event"] in MARKER_EVENTS]
    assert all("lsl_t" in e for e in logged)
    assert not any("lsl_t" in e for e in events(o.session_dir) if e["event"] not in MARKER_EVENTS)
    # every marker, in order, one per marker event of the log
    assert [m["event"] for m, _ in received] == [e["event"] for e in logged]
    assert [m["seq"] for m, _ in received] == [e["seq"] for e in logged]
    worst = max(abs(ts - e["lsl_t"]) for (_, ts), e in zip(received, logged, strict=True))
    assert worst < 0.002, worst
    kinds = {e["event"] for e in logged}
    assert {"stimulus", "stimulus_end", "rating_prompt", "rating", "cold_pressor_start", "withdrawal",
            "cold_pressor_end", "staff_step", "session_start", "session_end"} <= kinds
    # onset markers carry the target; each onset has its offset
    onsets = [m for m, _ in received if m["event"] == "stimulus"]
    offsets = [m for m, _ in received if m["event"] == "stimulus_end"]
    assert onsets and all("target_c" in m and "trial" in m for m in onsets)
    assert [(m["phase"], m["trial"]) for m in onsets] == [(m["phase"], m["trial"]) for m in offsets]
    hdr = json.loads((o.session_dir / "session.json").read_text(encoding="utf-8"))
    assert hdr["sync"]["stream_name"] == name and hdr["sync"]["recorder_connected"] is True


def test_escape_and_pause_are_markers_too(tmp_path: Path) -> None:
    name = f"cpm-test-{uuid.uuid4().hex[:10]}"
    station = sync_station(lsl=True, stream_name=name)
    from cpm_session.ui.headless import HeadlessUI

    clock = VirtualClock()
    ui = HeadlessUI(clock)
    ui.press("p", 30.0)
    ui.press("p", 40.0)
    ui.press("escape", 200.0)
    o = run_visit(load_protocol(THERMAL), station, data_dir=tmp_path, participant="L002", visit="baseline",
                  ui=ui, clock=clock, seed=1)
    assert o.status == "aborted"
    evs = events(o.session_dir)
    marked = {e["event"]: e for e in evs if "lsl_t" in e}
    assert {"pause", "resume", "emergency_stop", "session_end"} <= set(marked)
    stamps = [e["lsl_t"] for e in evs if "lsl_t" in e]
    assert stamps == sorted(stamps)


def test_no_sync_no_lsl_fields(tmp_path: Path) -> None:
    o = run_visit(load_protocol(THERMAL), sync_station(), data_dir=tmp_path, participant="L003", visit="baseline",
                  clock=VirtualClock(), seed=2)
    evs = events(o.session_dir)
    assert not any("lsl_t" in e for e in evs)
    assert "stimulus_end" not in {e["event"] for e in evs}  # offsets are markers; the log has onset + duration
    assert "sync" not in json.loads((o.session_dir / "session.json").read_text(encoding="utf-8"))


def test_onset_marker_is_stamped_at_the_launch(tmp_path: Path) -> None:
    """The onset marker carries the LSL time of the launch, taken before the TTL and the event write."""
    from cpm_session.sim.devices import SimThermode
    from cpm_session.sim.world import build_devices

    name = f"cpm-test-{uuid.uuid4().hex[:10]}"
    station = sync_station(lsl=True, stream_name=name, ttl_on_launch=True)
    clock = VirtualClock()
    devs = build_devices(station, cap_c=49.0, neutral_c=32.0, clock=clock)
    launches: list[float] = []

    class Stamped(SimThermode):
        def launch(self) -> None:
            super().launch()
            launches.append(pylsl.local_clock())

        def output_trigger(self, code: int = 255, duration_ms: int = 10) -> None:
            import time
            time.sleep(0.02)  # a slow trigger write must not move the onset marker

    devs.thermode = Stamped(clock, 49.0, 32.0)
    o = run_visit(load_protocol(THERMAL), station, data_dir=tmp_path, participant="L004", visit="baseline",
                  clock=clock, devices=devs, seed=5)
    stims = [e for e in events(o.session_dir) if e["event"] == "stimulus"]
    assert len(stims) == len(launches) > 0
    assert all(0 <= e["lsl_t"] - t < 0.002 for e, t in zip(stims, launches, strict=True))


def test_continuous_ratings_are_marked_at_onset_and_end(tmp_path: Path) -> None:
    """With continuous ratings the slider's start (`rating_prompt`, continuous) and end (`continuous_rating`)
    are markers too, in order around each stimulus's onset and offset."""
    data = tomllib.loads(THERMAL.read_text(encoding="utf-8"))
    data["test_stimulus"]["rating_mode"] = "continuous"
    data["cold_pressor"]["rating_mode"] = "continuous"
    prot = parse_protocol(data, "continuous.toml")
    name = f"cpm-test-{uuid.uuid4().hex[:10]}"
    o = run_visit(prot, sync_station(lsl=True, stream_name=name), data_dir=tmp_path, participant="L005",
                  visit="baseline", clock=VirtualClock(), seed=6)
    assert o.status == "completed", o.message
    marked = [e for e in events(o.session_dir) if "lsl_t" in e]
    ends = [e for e in marked if e["event"] == "continuous_rating"]
    assert len(ends) >= 5  # 4 TS stimuli (pre 3 + post 1) and the immersion
    for end in ends:
        i = marked.index(end)
        start = next(e for e in reversed(marked[:i]) if e["event"] == "rating_prompt" and e.get("continuous"))
        assert start["lsl_t"] <= end["lsl_t"]
    assert [e["lsl_t"] for e in marked] == sorted(e["lsl_t"] for e in marked)
