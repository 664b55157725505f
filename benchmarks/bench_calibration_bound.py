"""The best any calibration could do on the issue-15 grid: an information bound, checked by Monte Carlo.

The grid's goal is ≥ 90 % of calibrations within ±0.5 °C of the true Pain-60 in every cell with rating
noise SD ≤ 8, ≥ 95 % overall, and a mean of ≤ 10 stimuli. This script asks what an *oracle* would reach:
a procedure that knows each participant's slope and noise SD, has no habituation to follow, needs no
search and no verification, and puts every stimulus where a rating says most about Pain-60.

Why that is an upper bound: one rating y = mu(T) + e, e ~ N(0, sd), carries Fisher information
mu'(T)^2 / sd^2 about Pain-60. The simulated participant's curve (a logistic with slope `s` points/°C at
Pain-60) is steepest at rating 50, where mu' = s x 100/96; so n ratings carry at most
n (1.0417 s / sd)^2, and under the flat prior over 38-49 °C the posterior of Pain-60 is (at best) normal
with SD sd / (1.0417 s sqrt(n)). The best estimate is its centre, and the chance it lies within ±0.5 °C
is 2 Phi(0.5 x 1.0417 s sqrt(n) / sd) - 1 (at a true Pain-60 on the cap, where the TS is kept at the cap,
Phi(...)). Clipping at 0/100, habituation, not knowing the slope and the
noise, and the search all lose information, so a real procedure is below this. Stopping adaptively does
not help either: with a known noise SD the posterior SD depends only on the number of ratings n, the
share is a concave function of n, so by Jensen's inequality a random n never beats a fixed n with the
same mean.

Monte Carlo check: the oracle estimator (n ratings of the linearised curve at the steepest point,
Pain-60 estimated by inverting their mean) is simulated for every cell and compared with the formula.

Then: the allocation of stimuli to the 12 slope x SD cells that maximises the overall share for a given
mean number of stimuli (greedy on marginal gain; the share is concave in n), which gives
- the highest overall share any procedure can reach with a mean of 10 stimuli, and
- the lowest mean number of stimuli any procedure needs to meet the goal.

Run: `.venv/bin/python benchmarks/bench_calibration_bound.py [--write]` (a second; `--write` rewrites
benchmarks/calibration_bound.md).
"""

from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path

import numpy as np
from scipy.stats import norm

SLOPES = (6.0, 8.0, 12.0, 20.0)
NOISE_SD = (4.0, 8.0, 12.0)
HALF_WIDTH_C = 0.5
TRUE_PAIN60_C = tuple(float(t) for t in range(38, 50))
CAP_C = 49.0
"""The protocol's cap (protocols/cpm-thermal.toml): no TS above it, so the oracle's TS is min(estimate, cap)."""
STEEPEST = 100.0 / 96.0
"""Steepest slope of the simulated logistic curve relative to its slope at Pain-60 (at rating 50)."""
REQUIRED_CELL, REQUIRED_OVERALL, MAX_MEAN_STIMULI = 0.90, 0.95, 10.0
OUT = Path(__file__).resolve().parent / "calibration_bound.md"


def oracle_share(slope: float, sd: float, n: int) -> float:
    """Return the oracle's chance of a TS within ±HALF_WIDTH_C from `n` ratings (formula), averaged over the
    grid's true Pain-60 values. Its TS is its estimate, kept at or below the cap: at a true Pain-60 on the cap
    that clamp turns every estimate above the cap into a hit (Phi(a) instead of 2 Phi(a) - 1)."""
    a = HALF_WIDTH_C * STEEPEST * slope * math.sqrt(n) / sd
    inside, at_cap = 2.0 * norm.cdf(a) - 1.0, norm.cdf(a)
    k = sum(1 for t in TRUE_PAIN60_C if t >= CAP_C)
    return float(((len(TRUE_PAIN60_C) - k) * inside + k * at_cap) / len(TRUE_PAIN60_C))


def oracle_share_mc(slope: float, sd: float, n: int, runs: int, rng: np.random.Generator) -> float:
    """Return the oracle's share within ±HALF_WIDTH_C by simulation (n ratings at the steepest point, every
    true Pain-60 of the grid equally often, the TS kept at or below the cap)."""
    true_p60 = rng.choice(np.array(TRUE_PAIN60_C), size=runs)
    k = STEEPEST * slope
    ratings = 50.0 + rng.normal(0.0, sd, size=(runs, n))           # the steepest point is rated 50 on average
    est = np.minimum(true_p60 + (ratings.mean(axis=1) - 50.0) / k, CAP_C)  # invert the linearised curve
    return float(np.mean(np.abs(est - true_p60) <= HALF_WIDTH_C))


def allocate(cells: list[tuple[float, float]], *, mean_budget: float | None = None,
             overall_goal: float | None = None, cell_floor: float | None = None) -> np.ndarray:
    """Return stimuli per cell (greedy on marginal gain, starting from what `cell_floor` needs in SD ≤ 8 cells)
    until the mean reaches `mean_budget` or the overall share reaches `overall_goal`."""
    n = np.ones(len(cells))
    if cell_floor is not None:
        for i, (s, sd) in enumerate(cells):
            if sd <= 8:
                while oracle_share(s, sd, int(n[i])) < cell_floor:
                    n[i] += 1

    def overall() -> float:
        return float(np.mean([oracle_share(s, sd, int(k)) for (s, sd), k in zip(cells, n, strict=True)]))

    while True:
        if mean_budget is not None and n.mean() + 1.0 / len(cells) > mean_budget + 1e-9:
            return n
        if overall_goal is not None and overall() >= overall_goal:
            return n
        gains = [oracle_share(s, sd, int(k) + 1) - oracle_share(s, sd, int(k)) for (s, sd), k in zip(cells, n, strict=True)]
        n[int(np.argmax(gains))] += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="rewrite benchmarks/calibration_bound.md")
    ap.add_argument("--runs", type=int, default=20000, help="Monte Carlo runs per cell and n")
    args = ap.parse_args()
    rng = np.random.default_rng(15)
    cells = list(itertools.product(SLOPES, NOISE_SD))
    lines = ["# Calibration: the information bound on the issue-15 grid", "",
             "`python benchmarks/bench_calibration_bound.py --write` (see its docstring for the argument). An *oracle* "
             "knows each participant's slope and noise, has no habituation to follow, needs no search and no "
             "verification, and rates every stimulus at the curve's steepest point; no real procedure can beat it "
             "(and adaptive stopping cannot either: the share is concave in the number of ratings).", "",
             "## Oracle share within ±0.5 °C by number of ratings (formula; Monte Carlo in brackets)", "",
             "| slope pts/°C | noise SD | n = 5 | n = 10 | n = 15 | n = 20 | ratings needed for 90 % |", "|---|---|---|---|---|---|---|"]
    worst_gap = 0.0
    for s, sd in cells:
        row = [f"| {s:g} | {sd:g}"]
        for n in (5, 10, 15, 20):
            f, mc = oracle_share(s, sd, n), oracle_share_mc(s, sd, n, args.runs, rng)
            worst_gap = max(worst_gap, abs(f - mc))
            row.append(f"{100 * f:.1f} % ({100 * mc:.1f})")
        need = next(k for k in range(1, 500) if oracle_share(s, sd, k) >= REQUIRED_CELL)
        row.append(str(need))
        lines.append(" | ".join(row) + " |")
    best10 = allocate(cells, mean_budget=MAX_MEAN_STIMULI)
    share10 = float(np.mean([oracle_share(s, sd, int(k)) for (s, sd), k in zip(cells, best10, strict=True)]))
    goal = allocate(cells, overall_goal=REQUIRED_OVERALL, cell_floor=REQUIRED_CELL)
    share_goal = float(np.mean([oracle_share(s, sd, int(k)) for (s, sd), k in zip(cells, goal, strict=True)]))
    lines += ["", f"Largest difference between formula and Monte Carlo ({args.runs} runs each): {100 * worst_gap:.2f} points.", "",
              "## What the goal asks of the oracle", "",
              "| allocation | mean ratings per calibration | overall share within ±0.5 °C | lowest cell with SD ≤ 8 |",
              "|---|---|---|---|"]
    for label, alloc, share in (("best possible with a mean of 10 ratings", best10, share10),
                                ("least that meets the goal (≥ 90 % per SD ≤ 8 cell, ≥ 95 % overall)", goal, share_goal)):
        low = min(oracle_share(s, sd, int(k)) for (s, sd), k in zip(cells, alloc, strict=True) if sd <= 8)
        lines.append(f"| {label} | {alloc.mean():.2f} | {100 * share:.1f} % | {100 * low:.1f} % |")
    lines += ["", "Ratings per cell in each allocation (slope, SD: best-with-10 / least-for-goal): "
              + ", ".join(f"{s:g}/{sd:g}: {int(a)}/{int(b)}" for (s, sd), a, b in zip(cells, best10, goal, strict=True)) + ".",
              "", f"**Conclusion.** With a mean of 10 ratings even the oracle reaches at most {100 * share10:.1f} % overall "
              f"(goal ≥ 95 %); meeting the goal needs at least {goal.mean():.1f} ratings per calibration on average, "
              "before any search, verification or habituation. The grid goal cannot be met by any procedure."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        OUT.write_text(text, encoding="utf-8")
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
