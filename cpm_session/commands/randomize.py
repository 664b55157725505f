"""`cpm-session randomize`: a reproducible permuted-block allocation list."""

from __future__ import annotations

import argparse

NAME = "randomize"
HELP = "Write a reproducible permuted-block randomization list (CSV participant,arm,block,role)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, required=True, help="number of participants (ids P001, P002, ...)")
    p.add_argument("--block-size", type=int, default=4, help="block size, a multiple of the number of arms (default 4)")
    p.add_argument("--arms", default="milnacipran,placebo",
                   help="comma-separated arm names, treatment first and control second when there are two "
                        "(default milnacipran,placebo)")
    p.add_argument("--control", metavar="ARM",
                   help="the control (reference) arm; default: the second name of --arms (required with 3+ arms). "
                        "Recorded in the list's role column and used by analyze")
    p.add_argument("--seed", type=int, required=True, help="random seed; keep it secret and on file until unblinding")
    p.add_argument("-o", "--output", required=True, help="CSV file to create (an existing file needs --force)")
    p.add_argument("--force", action="store_true", help="replace an existing output file (never a session record)")


def run(args: argparse.Namespace) -> int:
    import os
    from collections import Counter

    from cpm_session.analysis.randomize import control_arm, permuted_blocks, write_allocations
    from cpm_session.record.outputs import check_output_file

    arms = args.arms.split(",")
    control = control_arm(arms, args.control)
    out = check_output_file(args.output, force=args.force, what="-o")
    allocs = permuted_blocks(args.n, arms, args.block_size, args.seed)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        write_allocations(allocs, tmp, control)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    counts = Counter(a.arm for a in allocs)
    print(f"wrote {len(allocs)} allocations in {allocs[-1].block} block(s) of {args.block_size} to {args.output}: "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + f"; control arm {control}")
    return 0
