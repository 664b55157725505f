"""`cpm-session simulate-trial`: a whole simulated two-arm trial, from randomization to the ANCOVA report.

For training statisticians and checking the pipeline end to end: every participant is a simulated
participant with known truth (Pain-60, baseline CPM effect); the drug changes the post-treatment CPM
effect by `--drug-effect` (a fraction of TS_pre, like `cpm_effect`), the control arm by nothing. Each
visit runs through the real engine on a virtual clock and writes real session folders. Every random
number comes from one numpy SeedSequence built from `--seed`, spawned per participant and visit.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "simulate-trial"
HELP = "Simulate a randomized two-arm CPM trial (baseline and post visits) and analyse it."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="new folder for allocation.csv, data/ and report/")
    p.add_argument("--n", type=int, default=40, help="participants in total (default %(default)s)")
    p.add_argument("--arms", default="milnacipran,placebo",
                   help="treatment,control: the second name is the control arm unless --control says otherwise "
                        "(default %(default)s)")
    p.add_argument("--control", metavar="ARM", help="the control arm (one of --arms); default the second name")
    p.add_argument("--drug-effect", type=float, default=0.0,
                   help="change of the CPM effect (fraction of TS_pre) in the treatment arm; 0 = the drug does "
                        "nothing (default %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="root of every random number of the trial (default 1)")
    p.add_argument("--protocol", default="protocols/cpm-thermal.toml")


def run(args: argparse.Namespace) -> int:
    from cpm_session.analysis.randomize import control_arm
    from cpm_session.cli import main
    from cpm_session.commands.run import resolve
    from cpm_session.errors import CpmError
    from cpm_session.sim.trial import simulate_trial

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise CpmError(f"{out} is not empty; give a new folder")
    arms = [a.strip() for a in args.arms.split(",")]
    if len(arms) != 2 or not all(arms) or arms[0] == arms[1]:
        raise CpmError(f"--arms needs exactly two different names (treatment,control), got {args.arms!r}")
    control = control_arm(arms, args.control)
    treatment = arms[0] if arms[1] == control else arms[1]
    trial = simulate_trial(out, args.n, (treatment, control), args.drug_effect, args.seed,
                           protocol_path=resolve(args.protocol))
    print(f"simulated {args.n} participants x 2 visits into {trial.data_dir}; true drug effect on CPM: "
          f"{args.drug_effect:+.2f} x TS_pre in {treatment} vs control {control}")
    for p in trial.participants:
        if p.dropped:
            print(f"  {p.participant} ({p.arm}) has no post visit: {p.dropped}")
    return main(["analyze", str(trial.data_dir), "--allocation", str(trial.allocation_path),
                 "--report", str(out / "report")])
