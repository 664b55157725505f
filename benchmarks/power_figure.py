"""Merge the replicates of several `cpm-session power` runs into one table and one power curve.

Replicates are named by (n per arm, effect, rep) and their seeds by the same (see cpm_session.sim.power),
so runs with the same `--seed` and different cells can be merged; a replicate present in two runs must be
identical in both (checked), and is kept once.

`--rerun-failed` runs every replicate that failed again with the current code (same seed, so the same trial)
and keeps the new row; the merged power.md lists them.

Run: .venv/bin/python benchmarks/power_figure.py RUN_DIR [RUN_DIR ...] --out benchmarks/power [--rerun-failed]
     (each RUN_DIR holds the replicates.csv and power.md a `power --out RUN_DIR` run wrote)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

from cpm_session.sim.power import PowerResult, summarize_replicates, write_outputs

KEY = ["n_per_arm", "effect", "rep"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--rerun-failed", action="store_true", help="run failed replicates again with the current code")
    args = ap.parse_args()
    frames, walls, notes = [], 0.0, []
    for run in args.runs:
        df = pd.read_csv(run / "replicates.csv")
        frames.append(df)
        head = (run / "power.md").read_text(encoding="utf-8").splitlines()[0]
        m = re.search(r"wall time ([0-9.]+) s", head)
        walls += float(m.group(1)) if m else 0.0
        notes.append(f"{run.name}: {head}")
    allreps = pd.concat(frames, ignore_index=True)
    dup = allreps[allreps.duplicated(KEY, keep=False)]
    for _, g in dup.groupby(KEY):
        if g["estimate"].nunique(dropna=False) > 1 or g["p"].nunique(dropna=False) > 1:
            raise SystemExit(f"replicate {tuple(g.iloc[0][KEY])} differs between runs: not the same seed or code")
    reps = allreps.drop_duplicates(KEY).sort_values(KEY).reset_index(drop=True)
    if args.rerun_failed:
        from cpm_session.resources import resolve
        from cpm_session.sim.power import ReplicateTask
        from cpm_session.sim.trial import power_replicate

        protocol = str(resolve("protocols/cpm-thermal.toml").resolve())
        for i in reps.index[~reps["ok"].astype(bool)]:
            r = reps.loc[i]
            old = r["error"]
            row = power_replicate(ReplicateTask(int(r["n_per_arm"]), float(r["effect"]), int(r["rep"]), args.seed,
                                                protocol))
            for col, value in row.items():
                if col not in reps.columns:
                    reps[col] = pd.Series([None] * len(reps), dtype=object, index=reps.index)
                if reps[col].dtype != object:
                    reps[col] = reps[col].astype(object)
                reps.at[i, col] = value
            notes.append(f"replicate (n {int(r['n_per_arm'])}, effect {r['effect']:g}, rep {int(r['rep'])}) failed with "
                         f"'{old}' and was run again with the current code: ok {row['ok']}"
                         + (f", {row['dropouts']} participant(s) without a post visit" if row.get("dropouts") else ""))
    res = PowerResult(reps, summarize_replicates(reps), walls, f"{len(args.runs)} runs merged", 0, args.seed,
                      notes=notes)
    paths = write_outputs(res, args.out)
    print((args.out / "power.md").read_text(encoding="utf-8"))
    print("wrote", ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
