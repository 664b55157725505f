"""Calibration accuracy across people: how often the verified TS lies within ±0.5 °C of the true Pain-60.

Grid (issue 15): slope 6, 8, 12, 20 rating points/°C × rating noise SD 4, 8, 12 × true Pain-60 38-49 °C
(1 °C steps) × habituation off/on, 30 seeds per cell. Each run drives the calibration procedure
(`cpm_session.calibration.make_procedure`, protocol settings from protocols/cpm-thermal.toml, cap from
the protocol) with a `SimParticipant` directly: deliver `step.temp_c`, the participant rates what was
delivered, `proc.add`. Habituation "on": the mean rating falls 0.5 points per previous heat stimulus
(saturating at 10 points), so after 12 stimuli a participant rates 6 points lower than at the start;
the truth compared with is the Pain-60 the participant has when the calibration ends (the share
against the Pain-60 at the first stimulus is reported too). A run that ends without a verified TS
(`not_reached`, `failed`) counts as a miss. Runs in parallel on `--jobs` processes (default 2).

Per cell: share within ±0.5 °C, mean number of stimuli (series + verification), hottest stimulus.
Overall: share, mean stimuli, hottest vs cap, outcomes. Goal: ≥ 90 % in every cell with SD ≤ 8,
≥ 95 % overall, mean ≤ 10 stimuli, never above the cap. `--write` rewrites benchmarks/calibration_grid.md.

Run: `.venv/bin/python benchmarks/bench_calibration.py [--seeds 30] [--method bayes] [--write] [--json]`
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread per worker process: the grid runs --jobs processes

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SLOPES = (6.0, 8.0, 12.0, 20.0)
NOISE_SD = (4.0, 8.0, 12.0)
TRUE_PAIN60_C = tuple(float(t) for t in range(38, 50))
HABITUATION_PTS = (0.0, -0.5)
TOLERANCE_C = 0.5
REQUIRED_CELL, REQUIRED_OVERALL, MAX_MEAN_STIMULI = 0.90, 0.95, 10.0
Cell = tuple[float, float, float, float]  # slope, sd, pain60, habituation


def _settings(protocol_path: Path, overrides: dict[str, Any]) -> tuple[Any, float]:
    from cpm_session.config.protocol import load_protocol

    p = load_protocol(protocol_path)
    cfg = p.calibration.model_copy(update=overrides) if overrides else p.calibration
    return cfg, p.safety.thermode_cap_c


def run_cell(args: tuple[Cell, int, str, str, dict[str, Any]]) -> tuple[Cell, list[dict[str, Any]]]:
    """Run `seeds` calibrations of one cell; return one small record per run."""
    from cpm_session.calibration import make_procedure
    from cpm_session.sim.participant import ParticipantTruth, SimParticipant

    cell, seeds, method, protocol_path, overrides = args
    cfg, cap = _settings(Path(protocol_path), overrides)
    slope, sd, p60, hab = cell
    out = []
    for seed in range(seeds):
        ss = np.random.SeedSequence([int(slope * 10), int(sd * 10), int(p60 * 10), int(-hab * 10), seed])
        r_part, r_proc = (np.random.default_rng(s) for s in ss.spawn(2))
        truth = ParticipantTruth(pain60_c=p60, slope_per_c=slope, noise_sd=sd, habituation_pts=hab)
        sim = SimParticipant(truth, r_part)
        proc = make_procedure(method, cfg, cap_c=cap, rng=r_proc)
        while (step := proc.next()) is not None:
            sim.feel_delivered(step.temp_c)
            proc.add(step.temp_c, sim.rate_stimulus())
        res = proc.result()
        out.append({"ts_c": res.ts_c, "outcome": res.outcome, "n": res.n_stimuli, "hottest_c": res.hottest_c or 0.0,
                    "p60_end": truth.pain60_after(res.n_stimuli)})
    return cell, out


def _hit(rec: dict[str, Any], p60: float) -> bool:
    """Return whether the verified TS is within ±0.5 °C of the Pain-60 the participant has when calibration ends."""
    return rec["ts_c"] is not None and abs(rec["ts_c"] - rec["p60_end"]) <= TOLERANCE_C + 1e-9


def _hit_start(rec: dict[str, Any], p60: float) -> bool:
    """Return whether the verified TS is within ±0.5 °C of the Pain-60 at the first stimulus (the cell's value)."""
    return rec["ts_c"] is not None and abs(rec["ts_c"] - p60) <= TOLERANCE_C + 1e-9


def run(seeds: int = 30, method: str = "bayes", jobs: int = 2, protocol_path: Path | None = None,
        overrides: dict[str, Any] | None = None, slopes: tuple[float, ...] = SLOPES, noise: tuple[float, ...] = NOISE_SD,
        truths: tuple[float, ...] = TRUE_PAIN60_C, habituation: tuple[float, ...] = HABITUATION_PTS) -> dict[str, Any]:
    """Run the grid; return overall and per-cell figures."""
    path = str(protocol_path or ROOT / "protocols" / "cpm-thermal.toml")
    cfg, cap = _settings(Path(path), overrides or {})
    cells = list(itertools.product(slopes, noise, truths, habituation))
    t0 = time.perf_counter()
    results: dict[Cell, list[dict[str, Any]]] = {}
    work = [(c, seeds, method, path, overrides or {}) for c in cells]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as ex:
            for cell, recs in ex.map(run_cell, work, chunksize=4):
                results[cell] = recs
    else:
        for w in work:
            cell, recs = run_cell(w)
            results[cell] = recs
    wall = time.perf_counter() - t0
    per_cell = {}
    for cell, recs in results.items():
        per_cell[cell] = {"share": sum(_hit(r, cell[2]) for r in recs) / len(recs),
                          "share_start": sum(_hit_start(r, cell[2]) for r in recs) / len(recs),
                          "mean_stimuli": statistics.mean(r["n"] for r in recs),
                          "hottest_c": max(r["hottest_c"] for r in recs),
                          "no_ts": sum(r["ts_c"] is None for r in recs)}
    all_recs = [(cell, r) for cell, recs in results.items() for r in recs]
    share = sum(_hit(r, c[2]) for c, r in all_recs) / len(all_recs)
    share_start = sum(_hit_start(r, c[2]) for c, r in all_recs) / len(all_recs)
    outcomes: dict[str, int] = defaultdict(int)
    for _, r in all_recs:
        outcomes[r["outcome"]] += 1
    errors = [abs(r["ts_c"] - r["p60_end"]) for c, r in all_recs if r["ts_c"] is not None]
    gated = {c: v for c, v in per_cell.items() if c[1] <= 8}
    cells_below = {_label(c): round(v["share"], 3) for c, v in sorted(gated.items()) if v["share"] < REQUIRED_CELL}
    by = defaultdict(list)
    for c, r in all_recs:
        by[(c[0], c[1], c[3])].append((_hit(r, c[2]), r["n"], r["hottest_c"] - c[2], _hit_start(r, c[2])))
    summary = {f"slope{k[0]:g}/sd{k[1]:g}/hab{k[2]:g}": {
        "share": round(statistics.mean(x[0] for x in v), 4), "share_start": round(statistics.mean(x[3] for x in v), 4),
        "mean_stimuli": round(statistics.mean(x[1] for x in v), 2),
        "max_hottest_above_p60_c": round(max(x[2] for x in v), 2)} for k, v in sorted(by.items())}
    per_noise = {f"sd{sd:g}": round(statistics.mean(_hit(r, c[2]) for c, r in all_recs if c[1] == sd), 4) for sd in noise}
    return {
        "method": method, "n": len(all_recs), "seeds": seeds, "share_within": round(share, 4),
        "share_within_start_pain60": round(share_start, 4),
        "required": REQUIRED_OVERALL, "required_cell": REQUIRED_CELL,
        "min_cell_share_sd_le_8": round(min((v["share"] for v in gated.values()), default=1.0), 3),
        "cells_below": cells_below, "per_noise": per_noise,
        "mean_stimuli": round(statistics.mean(r["n"] for _, r in all_recs), 2),
        "max_stimuli_run": max(r["n"] for _, r in all_recs),
        "max_delivered_c": max(r["hottest_c"] for _, r in all_recs), "cap_c": cap,
        "mean_abs_error_c": round(statistics.mean(errors), 3) if errors else None,
        "outcomes": dict(outcomes), "wall_s": round(wall, 1), "jobs": jobs,
        "settings": {k: getattr(cfg, k) for k in ("floor_c", "start_c", "max_step_up_c", "max_stimuli", "ci_halfwidth_c",
                                                  "verify_n", "tolerance", "max_refinements")},
        "summary": summary,
        "per_cell": {_label(c): {k: (round(v, 3) if isinstance(v, float) else v) for k, v in d.items()}
                     for c, d in sorted(per_cell.items())},
    }


def _label(c: Cell) -> str:
    return f"slope{c[0]:g}/sd{c[1]:g}/{c[2]:g}C/hab{c[3]:g}"


def markdown(r: dict[str, Any]) -> str:
    """Return benchmarks/calibration_grid.md: the summary and the per-cell tables."""
    pc = r["per_cell"]
    lines = [
        "# Calibration grid (issue 15)", "",
        f"`python benchmarks/bench_calibration.py --seeds {r['seeds']} --write` — method `{r['method']}`, "
        f"{r['n']} calibrations, {r['wall_s']} s on {r['jobs']} processes. Protocol settings: "
        + ", ".join(f"`{k}` {v}" for k, v in r["settings"].items()) + f", cap {r['cap_c']} °C.", "",
        "Each run: the calibration procedure and a `SimParticipant` (logistic rating curve with the given slope at "
        "Pain-60, Gaussian rating noise, habituation −0.5 points per previous stimulus when on, saturating at 10). A hit: "
        "the verified TS is within ±0.5 °C of the participant's true Pain-60 when the calibration ends (the curve the "
        "TS_pre stimuli that follow meet; without habituation this is the cell's Pain-60); a run without a verified "
        "TS is a miss. The share against the Pain-60 at the first stimulus is given too.", "",
        "## Overall", "",
        "| figure | value | goal |", "|---|---|---|",
        f"| share within ±0.5 °C of the Pain-60 at the end of calibration | {r['share_within']:.1%} | ≥ 95 % |",
        f"| share within ±0.5 °C of the Pain-60 at the first stimulus (differs only with habituation) | "
        f"{r['share_within_start_pain60']:.1%} | — |",
        f"| lowest cell with noise SD ≤ 8 | {r['min_cell_share_sd_le_8']:.0%} | ≥ 90 % |",
        f"| cells with SD ≤ 8 below 90 % | {len(r['cells_below'])} of {len(pc) * 2 // 3} | 0 |",
        f"| mean stimuli per calibration (series + verification) | {r['mean_stimuli']:.2f} (max {r['max_stimuli_run']}) | ≤ 10 |",
        f"| hottest stimulus | {r['max_delivered_c']:.2f} °C (cap {r['cap_c']:.1f}) | ≤ cap |",
        f"| mean abs error of the TS | {r['mean_abs_error_c']} °C | — |",
        f"| outcomes | {', '.join(f'{k} {v}' for k, v in sorted(r['outcomes'].items()))} | — |",
        f"| share by noise SD | {', '.join(f'{k} {v:.1%}' for k, v in r['per_noise'].items())} | — |", "",
        "## By slope × noise × habituation (all true Pain-60 pooled)", "",
        "| slope pts/°C | noise SD | habituation | share within ±0.5 °C | same, vs Pain-60 at the first stimulus | "
        "mean stimuli | hottest − true Pain-60, max °C |",
        "|---|---|---|---|---|---|---|",
    ]
    for k, v in r["summary"].items():
        s, sd, h = k.split("/")
        lines.append(f"| {s[5:]} | {sd[2:]} | {'on' if h != 'hab0' else 'off'} | {v['share']:.1%} | {v['share_start']:.1%} | "
                     f"{v['mean_stimuli']:.1f} | "
                     f"{v['max_hottest_above_p60_c']:+.2f} |")
    truths = sorted({float(k.split("/")[2][:-1]) for k in pc})
    rows = sorted({tuple(k.split("/")[i] for i in (0, 1, 3)) for k in pc},
                  key=lambda t: (t[2], float(t[0][5:]), float(t[1][2:])))
    for title, key, fmt in (("Share within ±0.5 °C per cell", "share", "{:.0%}"),
                            ("Mean number of stimuli per cell", "mean_stimuli", "{:.1f}"),
                            ("Hottest stimulus per cell, °C", "hottest_c", "{:.1f}")):
        lines += ["", f"## {title}", "", "| slope | SD | hab | " + " | ".join(f"{t:g} °C" for t in truths) + " |",
                  "|---|---|---|" + "---|" * len(truths)]
        for s, sd, h in rows:
            cells = [fmt.format(pc[f"{s}/{sd}/{t:g}C/{h}"][key]) for t in truths]
            if key == "share":
                cells = [f"**{c}**" if float(c[:-1]) < 90 and float(sd[2:]) <= 8 else c for c in cells]
            lines.append(f"| {s[5:]} | {sd[2:]} | {'on' if h != 'hab0' else 'off'} | " + " | ".join(cells) + " |")
    lines += ["", "Bold: a cell with noise SD ≤ 8 below the 90 % goal.", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=30)
    p.add_argument("--method", default="bayes", choices=("bayes", "ascending", "staircase"))
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--protocol", type=Path, default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a calibration setting of the protocol, e.g. max_stimuli=16")
    p.add_argument("--slopes", type=float, nargs="+", default=list(SLOPES))
    p.add_argument("--noise", type=float, nargs="+", default=list(NOISE_SD))
    p.add_argument("--truths", type=float, nargs="+", default=list(TRUE_PAIN60_C))
    p.add_argument("--habituation", type=float, nargs="+", default=list(HABITUATION_PTS))
    p.add_argument("--write", action="store_true", help="rewrite benchmarks/calibration_grid.md")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    overrides: dict[str, Any] = {}
    for item in args.set:
        k, _, v = item.partition("=")
        overrides[k] = int(v) if v.lstrip("-").isdigit() else float(v)
    r = run(args.seeds, args.method, args.jobs, args.protocol, overrides, tuple(args.slopes), tuple(args.noise),
            tuple(args.truths), tuple(args.habituation))
    if args.write:
        (ROOT / "benchmarks" / "calibration_grid.md").write_text(markdown(r), encoding="utf-8")
    if args.json:
        print(json.dumps({k: v for k, v in r.items() if k != "per_cell"}))
        return
    print(f"calibration ({r['method']}), {r['n']} runs in {r['wall_s']} s on {r['jobs']} processes; settings {r['settings']}")
    print(f"  within ±{TOLERANCE_C} °C: {r['share_within']:.1%} (goal {REQUIRED_OVERALL:.0%}); by noise {r['per_noise']}")
    print(f"  lowest cell with SD <= 8: {r['min_cell_share_sd_le_8']:.0%} (goal {REQUIRED_CELL:.0%}); "
          f"{len(r['cells_below'])} cells below")
    print(f"  mean stimuli {r['mean_stimuli']} (max {r['max_stimuli_run']}); hottest {r['max_delivered_c']} °C "
          f"(cap {r['cap_c']}); mean |error| {r['mean_abs_error_c']} °C; outcomes {r['outcomes']}")
    for k, v in r["summary"].items():
        print(f"    {k:>22s}: {v['share']:.1%} (vs start {v['share_start']:.1%})  stimuli {v['mean_stimuli']:.1f}  "
              f"hottest-true max {v['max_hottest_above_p60_c']:+.2f}")


if __name__ == "__main__":
    main()
