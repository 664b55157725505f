"""Continuous (CoVAS-style) ratings on the session side: every frame kept in continuous_ratings.csv, the
prompt-style rating derived from the trace as the protocol says, a pause discards the live trace."""

from __future__ import annotations

import csv
from pathlib import Path

from cpm_session.record.derive import continuous_summary
from tests.helpers import events, of, simulate


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_continuous_summary_rules() -> None:
    s = [(0.0, 0.0), (1.0, 30.0), (2.0, 70.0), (3.0, 50.0)]
    assert continuous_summary(s, "peak") == 70.0
    assert continuous_summary(s, "mean") == 37.5
    assert continuous_summary(s, "at", 2.5) == 70.0
    assert continuous_summary(s, "at", -1.0) is None
    assert continuous_summary([], "peak") is None


def test_continuous_ts_and_cold_pressor_visit(tmp_path: Path, write_protocol) -> None:  # type: ignore[no-untyped-def]
    p = write_protocol({"test_stimulus": {"rating_mode": "continuous", "continuous_summary": "peak"},
                        "cold_pressor": {"rating_mode": "continuous"}})
    out, _, _ = simulate(tmp_path, protocol=p, seed=3)
    assert out.status == "completed"
    evs = events(out.session_dir)
    cont = of(evs, "continuous_rating")
    ts_ids = [c["stimulus"] for c in cont if c["stimulus"].startswith(("ts_pre", "ts_post"))]
    assert len(ts_ids) == 4 and any(c["stimulus"].startswith("cs:") for c in cont)
    rows = _rows(out.session_dir / "continuous_ratings.csv")
    by_id: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        by_id.setdefault(r["stimulus"], []).append((float(r["t"]), float(r["value"])))
    for c in cont:  # every logged summary is the protocol's summary of the frames kept on disk
        how, at = ("at", 30.0) if c["stimulus"].startswith("cs:") else ("peak", 0.0)
        assert c["frames"] == len(by_id[c["stimulus"]]) > 3
        assert c["value"] == continuous_summary(by_id[c["stimulus"]], how, at)
    ratings = [e for e in of(evs, "rating") if e["phase"] in ("ts_pre", "ts_post")]
    assert [r["rating"] for r in ratings] == [c["value"] for c in cont if c["stimulus"] in ts_ids]
    assert all(r.get("continuous") is True for r in ratings)
    prompts = [e for e in of(evs, "rating_prompt") if e.get("continuous")]
    assert len(prompts) == 5  # 4 TS + the immersion: no separate slider prompt after the stimulus
    cs = [e for e in of(evs, "rating") if e["phase"] == "cs"][0]
    assert out.results["cs_rating_30s"] == cs["rating"] is not None
    assert out.results["ts_pre"] is not None and out.results["cpm_abs"] is not None
    # calibration is always prompt-rated
    assert all(not e.get("continuous") for e in of(evs, "rating") if e["phase"] == "calibration")


def test_pause_during_a_continuous_stimulus_discards_its_trace(tmp_path: Path, write_protocol) -> None:  # type: ignore[no-untyped-def]
    p = write_protocol({"test_stimulus": {"rating_mode": "continuous"}})
    ref, _, _ = simulate(tmp_path / "ref", protocol=p, seed=4)
    stim = [e for e in of(events(ref.session_dir), "stimulus") if e["phase"] == "ts_pre"][0]
    out, _, _ = simulate(tmp_path / "x", protocol=p, seed=4,
                         keys=[("p", stim["onset_t"] + 1.0), ("p", stim["onset_t"] + 20.0)])
    evs = events(out.session_dir)
    assert out.status == "completed"
    assert of(evs, "continuous_rating_discarded") and of(evs, "trial_discarded")
    kept = {c["stimulus"] for c in of(evs, "continuous_rating")}
    on_disk = {r["stimulus"] for r in _rows(out.session_dir / "continuous_ratings.csv")}
    assert on_disk == kept


def test_continuous_session_verifies(tmp_path: Path, write_protocol) -> None:  # type: ignore[no-untyped-def]
    from cpm_session.record.integrity import verify_session_report

    p = write_protocol({"test_stimulus": {"rating_mode": "continuous"}, "cold_pressor": {"rating_mode": "continuous"}})
    out, _, _ = simulate(tmp_path, protocol=p, seed=5)
    report = verify_session_report(out.session_dir)
    assert report.ok, report.problems


def test_session_plot_draws_the_continuous_and_thermode_traces(tmp_path: Path, write_protocol) -> None:  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    from cpm_session.analysis import plots

    p = write_protocol({"test_stimulus": {"rating_mode": "continuous"}})
    out, _, _ = simulate(tmp_path, protocol=p, seed=6)
    drawn: list[str] = []
    orig = plots._draw_traces

    def spy(d, events, ax, axr):  # type: ignore[no-untyped-def]
        orig(d, events, ax, axr)
        drawn.extend(str(line.get_label()) for line in [*ax.get_lines(), *axr.get_lines()])

    plots._draw_traces = spy  # type: ignore[assignment]
    try:
        png = plots.session_figure(out.session_dir, tmp_path / "plot.png")
    finally:
        plots._draw_traces = orig  # type: ignore[assignment]
    assert png.stat().st_size > 10_000
    assert "continuous rating" in drawn and "thermode trace (device stream)" in drawn
