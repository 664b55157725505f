"""`cpm-session simulate-trial`: a whole simulated two-arm trial, from randomization to the ANCOVA report.

For training statisticians and checking the pipeline end to end: every participant is a simulated
participant with known truth (Pain-60, baseline CPM effect); the drug changes the post-treatment CPM
effect by `--drug-effect` (a fraction of TS_pre, like `cpm_effect`), placebo by nothing. Each visit
runs through the real engine on a virtual clock and writes real session folders.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "simulate-trial"
HELP = "Simulate a randomized two-arm CPM trial (baseline and post visits) and analyse it."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="new folder for allocation.csv, data/ and report/")
    p.add_argument("--n", type=int, default=40, help="participants (default %(default)s)")
    p.add_argument("--arms", default="milnacipran,placebo", help="treatment,placebo (default %(default)s)")
    p.add_argument("--drug-effect", type=float, default=0.0,
                   help="change of the CPM effect (fraction of TS_pre) in the treatment arm; 0 = no effect, as "
                        "Pickering et al. 2018 found for milnacipran after one month (default %(default)s)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--protocol", default="protocols/cpm-thermal.toml")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from cpm_session.analysis.randomize import permuted_blocks
    from cpm_session.cli import main
    from cpm_session.commands.run import resolve
    from cpm_session.errors import CpmError
    from cpm_session.sim.participant import ParticipantTruth
    from cpm_session.sim.world import run_simulated_visit

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise CpmError(f"{out} is not empty; give a new folder")
    arms = [a.strip() for a in args.arms.split(",")]
    if len(arms) != 2:
        raise CpmError(f"--arms needs exactly two names (treatment,placebo), got {args.arms!r}")
    out.mkdir(parents=True, exist_ok=True)
    alloc = permuted_blocks(args.n, arms, 4, args.seed)
    alloc_path = out / "allocation.csv"
    alloc_path.write_text("participant,arm\n" + "".join(f"{a.participant},{a.arm}\n" for a in alloc), encoding="utf-8")
    rng = np.random.default_rng(args.seed)
    protocol = resolve(args.protocol)
    for i, a in enumerate(alloc):
        base_effect = float(np.clip(rng.normal(0.25, 0.12), -0.2, 0.7))  # CPM varies a lot between people
        truth = ParticipantTruth(pain60_c=float(rng.uniform(43.0, 48.0)), cpm_effect=base_effect,
                                 severity=float(rng.uniform(0.3, 0.8)))
        run_simulated_visit(out / "data", a.participant, "baseline", protocol_path=protocol, seed=2 * i, truth=truth)
        post_effect = base_effect + (args.drug_effect if a.arm == arms[0] else 0.0)
        post = ParticipantTruth(**{**truth.__dict__, "cpm_effect": post_effect})
        run_simulated_visit(out / "data", a.participant, "post", protocol_path=protocol, seed=2 * i + 1, truth=post)
    print(f"simulated {args.n} participants x 2 visits into {out / 'data'}; true drug effect on CPM: "
          f"{args.drug_effect:+.2f} x TS_pre")
    return main(["analyze", str(out / "data"), "--allocation", str(alloc_path), "--report", str(out / "report")])
