"""Write synthetic session folders in the exact ARCHITECTURE.md format, fast (no devices, no UI).

Used by the summarize benchmark and by analysis tests that need many sessions or odd cases (killed,
aborted, amended, unreadable). Headers go through `SessionFolder.create` and events through `EventLog`,
so the hash chain is real; fsync is off for speed. The real simulated visit is
`cpm_session.sim.world.run_simulated_visit`.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cpm_session import __version__
from cpm_session.clock import VirtualClock
from cpm_session.record import derive
from cpm_session.record.folder import SessionFolder, file_sha256
from cpm_session.resources import DEFAULT_PROTOCOL, resolve

THERMAL_PROTOCOL = resolve(DEFAULT_PROTOCOL)
PRE_REPEATS = 3
POST_REPEATS = 1
CP_DURATION_S = 60.0
CP_RATING_AT_S = 30.0
THRESHOLD_ABS = 5.0
DEVICE_RATE_HZ = 1.0


@dataclass
class SynthTruth:
    """Ground truth of a synthetic participant (mirrors cpm_session.sim.participant.ParticipantTruth)."""

    pain60_c: float = 45.0
    cpm_effect: float = 0.2
    noise_sd: float = 5.0
    cs_rating: float = 60.0
    ppt_kpa: float = 300.0
    withdrawal_s: float | None = None


def _clip(x: float) -> float:
    return float(min(100.0, max(0.0, round(x, 1))))


def write_session(data_dir: str | Path, participant: str, visit: str, *, truth: SynthTruth | None = None,
                  seed: int = 0, start: dt.datetime | None = None, stop_after: str | None = None,
                  status: str = "completed", header: bool = True, questionnaires: bool = True,
                  missing_ts_pre: tuple[int, ...] = (), amendments: tuple[dict[str, Any], ...] = (),
                  deviations: tuple[tuple[str, str], ...] = (), acclimatization_s: float = 600.0,
                  protocol: str = "protocols/cpm-thermal.toml") -> Path:
    """Write one synthetic thermal session and return its folder.

    `stop_after` ("calibration", "ts_pre", "cold_pressor") ends the visit early: with `status`
    "aborted" the header says so and the log ends with session_end; with `header=False` the folder
    looks like a killed process (session.json still "running", no session_end). `missing_ts_pre`
    lists 1-based TS_pre trials whose rating times out. `amendments` are appended as amendment events
    after the session ended (as `cpm-session amend` does). `protocol` is the path recorded in the header.
    """
    truth = truth or SynthTruth()
    rng = np.random.default_rng(seed)
    clock = VirtualClock()
    start = start or dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
    proto_file = resolve(protocol)
    proto_sha = file_sha256(proto_file) if proto_file.exists() else ""
    hdr = {"software_version": __version__, "protocol": protocol, "protocol_sha256": proto_sha,
           "protocol_name": "cpm-thermal", "station": "sim", "operator": "synth", "seed": seed,
           "simulate": True, "speed": None}
    sf = SessionFolder.create(data_dir, participant, visit, hdr, clock.now, start=start, fsync=False)
    log = sf.log
    thermode: list[tuple[float, float]] = []
    bath: list[tuple[float, float]] = []
    neutral = 32.0

    def hold(temp: float, seconds: float, bath_c: float) -> None:
        n = max(1, int(seconds * DEVICE_RATE_HZ))
        for _ in range(n):
            thermode.append((clock.now(), round(temp + rng.normal(0, 0.05), 2)))
            bath.append((clock.now(), round(bath_c + rng.normal(0, 0.1), 2)))
            clock.sleep(1.0 / DEVICE_RATE_HZ)

    def stimulus_and_rating(phase: str, trial: int, target: float, rating: float | None) -> float | None:
        log.append("stimulus", phase=phase, trial=trial, modality="thermal", target_c=target, duration_s=5.0,
                   planned_onset_t=round(clock.now(), 3), onset_t=round(clock.now(), 3))
        onset = clock.now()
        hold(target, 5.0, 3.0)
        log.append("rating_prompt", phase=phase, trial=trial, question="How painful was the heat on your forearm?",
                   slider_px=[340, 400, 940, 400], confirm_px=[590, 520, 690, 560], window_px=[1280, 800])
        row = {"phase": phase, "trial": trial, "attempt": 1, "site": "non-dominant forearm", "intensity": target,
               "intensity_unit": "C", "rating": "" if rating is None else rating,
               "rt_s": "" if rating is None else 2.0, "onset_t": round(onset, 3), "planned_onset_t": round(onset, 3),
               "missing": rating is None, "flag": "missing" if rating is None else ""}
        clock.sleep(20.0 if rating is None else 2.0)
        sf.ratings.write(row)
        log.append("rating", **row, trace=[])
        return rating

    log.append("session_start", participant=participant, visit=visit, protocol=hdr["protocol"],
               protocol_sha256=proto_sha, simulate=True, seed=seed)
    for dev_kind, dev_detail in deviations:
        log.append("deviation", kind=dev_kind, detail=dev_detail)
    log.append("phase_enter", phase="acclimatization")
    hold(neutral, acclimatization_s, 3.0)
    log.append("phase_exit", phase="acclimatization")

    # calibration: ascending series from 40 C, rating = 60 + 10 * (T - pain60)
    log.append("phase_enter", phase="calibration")
    temps: list[float] = []
    ratings: list[float] = []
    t_c = 40.0
    while t_c <= 49.0:
        r = _clip(60.0 + 10.0 * (t_c - truth.pain60_c) + rng.normal(0, 3.0))
        stimulus_and_rating("calibration", len(temps) + 1, t_c, r)
        temps.append(t_c)
        ratings.append(r)
        if r >= 70.0:
            break
        t_c += 1.0
    slope, intercept = (np.polyfit(temps, ratings, 1) if len(temps) > 1 else (0.0, ratings[0]))
    pain60 = float(min(49.0, max(40.0, round((60.0 - intercept) / slope, 1)))) if slope > 0 else 45.0
    log.append("calibration_fit", slope=float(slope), intercept=float(intercept), r2=0.9, n_stimuli=len(temps))
    log.append("calibration_result", pain60_c=pain60, outcome="ok", method="ascending")
    log.append("phase_exit", phase="calibration")
    if stop_after == "calibration":
        return _finish(sf, clock, log, thermode, bath, status, header, {}, {})

    pre_mean = 60.0 + 10.0 * (pain60 - truth.pain60_c)
    log.append("phase_enter", phase="ts_pre")
    pre: list[float | None] = []
    for i in range(1, PRE_REPEATS + 1):
        rp = None if i in missing_ts_pre else _clip(pre_mean + rng.normal(0, truth.noise_sd))
        pre.append(stimulus_and_rating("ts_pre", i, pain60, rp))
        hold(neutral, 23.0, 3.0)
    log.append("phase_exit", phase="ts_pre")
    if stop_after == "ts_pre":
        return _finish(sf, clock, log, thermode, bath, status, header, {"ts_pre_ratings": pre}, {})

    bath_c = 2.5
    log.append("bath_check", bath_c=bath_c, ok=True)
    log.append("cold_pressor_start", bath_c=bath_c)
    cp_t0 = clock.now()
    stay = CP_DURATION_S if truth.withdrawal_s is None else min(truth.withdrawal_s, CP_DURATION_S)
    cs: float | None = None
    while clock.now() - cp_t0 < stay:
        if cs is None and clock.now() - cp_t0 >= CP_RATING_AT_S:
            cs = _clip(truth.cs_rating + rng.normal(0, 5.0))
            row = {"phase": "cs", "trial": 1, "attempt": 1, "site": "dominant hand", "intensity": bath_c,
                   "intensity_unit": "C", "rating": cs, "rt_s": 1.5, "onset_t": round(clock.now(), 3),
                   "planned_onset_t": round(clock.now(), 3), "missing": False, "flag": ""}
            sf.ratings.write(row)
            log.append("rating", **row, trace=[])
        thermode.append((clock.now(), neutral))
        bath.append((clock.now(), round(bath_c + rng.normal(0, 0.15), 2)))
        clock.sleep(1.0)
    withdrawal = None
    if truth.withdrawal_s is not None and truth.withdrawal_s < CP_DURATION_S:
        withdrawal = round(clock.now() - cp_t0, 3)
        log.append("withdrawal", after_s=withdrawal)
    log.append("cold_pressor_end", duration_s=round(clock.now() - cp_t0, 3))
    hold(neutral, 5.0, 10.0)  # hand out: bath probe warms in air, must not count
    if stop_after == "cold_pressor":
        return _finish(sf, clock, log, thermode, bath, status, header, {"ts_pre_ratings": pre}, {})

    log.append("phase_enter", phase="ts_post")
    post: list[float | None] = []
    for i in range(1, POST_REPEATS + 1):
        r = _clip(pre_mean * (1.0 - truth.cpm_effect) + rng.normal(0, truth.noise_sd))
        post.append(stimulus_and_rating("ts_post", i, pain60, r))
    log.append("phase_exit", phase="ts_post")

    q: dict[str, Any] = {}
    if questionnaires:
        nrs = int(rng.integers(2, 9))
        fiqr = round(float(rng.uniform(20, 80)), 1)
        anx, dep = int(rng.integers(3, 15)), int(rng.integers(2, 14))
        q = {"nrs": {"answers": {"pain": nrs}, "scores": {"pain": nrs}, "entered_by": "participant"},
             "fiqr": {"answers": {}, "scores": {"function": fiqr / 3, "overall": fiqr / 3, "symptoms": fiqr / 3,
                                                "total": fiqr}, "entered_by": "participant"},
             "hads": {"answers": {}, "scores": {"anxiety": anx, "depression": dep}, "entered_by": "participant"}}
        for name, block in q.items():
            log.append("questionnaire", name=name, **block)

    ts_pre, ts_post = derive.ts_mean(pre), derive.ts_mean(post)
    res = {"ts_modality": "thermal", "ts_intensity": pain60, "ts_unit": "C", "pain60_c": pain60,
           "ts_pre_ratings": pre, "ts_post_ratings": post, "ts_pre": ts_pre, "ts_post": ts_post,
           **derive.cpm_values(ts_pre, ts_post, THRESHOLD_ABS),
           "cs_rating_30s": cs, "cs_rating_flag": "early_withdrawal" if cs is None else "",
           "withdrawal_s": withdrawal}
    log.append("results", **res)
    out = _finish(sf, clock, log, thermode, bath, status, header, res, q)
    if amendments:
        from cpm_session.record.folder import EventLog
        alog = EventLog(out / "events.jsonl", clock.now, fsync=False)
        for a in amendments:
            alog.append("amendment", **a)
        alog.close()
        if header:
            from cpm_session.record.folder import write_json_atomic
            hdr_now = json.loads((out / "session.json").read_text(encoding="utf-8"))
            hdr_now.update(log_final_sha256=alog.prev, log_events=alog.seq)
            write_json_atomic(out / "session.json", hdr_now)
    return out


def _finish(sf: SessionFolder, clock: VirtualClock, log: Any, thermode: list[tuple[float, float]],
            bath: list[tuple[float, float]], status: str, header: bool, results: dict[str, Any],
            q: dict[str, Any]) -> Path:
    lines = [f"{t:.3f},thermode,zone_mean_c,{v},C\n" for t, v in thermode]
    lines += [f"{t:.3f},bath,bath_c,{v},C\n" for t, v in bath]
    lines.sort(key=lambda s: float(s.split(",", 1)[0]))
    sf.devices.close()
    with open(sf.path / "devices.csv", "a", encoding="utf-8") as f:
        f.writelines(lines)
    if header:
        log.append("session_end", status=status)
        sf.update_header(status=status, end_utc=(dt.datetime.fromisoformat(sf.read_header()["start_utc"].replace(
            "Z", "+00:00")) + dt.timedelta(seconds=clock.now())).isoformat().replace("+00:00", "Z"),
            results=results, questionnaires=q, resumed_from=[])
    sf.close()
    return sf.path


def write_unreadable(data_dir: str | Path, participant: str, visit: str) -> Path:
    """Write a folder whose session.json and events.jsonl are both garbage (for warning tests)."""
    p = Path(data_dir) / participant / f"{visit}-20260101T000000Z"
    p.mkdir(parents=True)
    (p / "session.json").write_text("{not json", encoding="utf-8")
    (p / "events.jsonl").write_bytes(b"\x00\x01garbage\n")
    return p


def dump(obj: Any) -> str:
    """Return `obj` as compact JSON (for fixtures)."""
    return json.dumps(obj, sort_keys=True)
