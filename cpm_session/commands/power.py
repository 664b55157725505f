"""`cpm-session power`: power, type-I error and CI coverage of the trial's ANCOVA by simulating whole trials.

Each replicate is a whole randomized two-arm trial run through the real engine (headless, virtual
clock) and analysed like a real one. Runs on the local cores by default, or on a Dask cluster with
`--scheduler tcp://HOST:8786` (workers need cpm-session installed).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

NAME = "power"
HELP = "Power, type-I error and 95 % CI coverage of the CPM ANCOVA from simulated trials through the engine."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", default="20,40,60", help="participants PER ARM, comma-separated (default %(default)s)")
    p.add_argument("--effect", default="0,0.1,0.2",
                   help="drug effects on CPM as fractions of TS_pre, comma-separated; 0 gives the type-I error "
                        "(default %(default)s)")
    p.add_argument("--reps", type=int, default=500, help="replicate trials per (n, effect) cell (default %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="root SeedSequence entropy (default %(default)s)")
    p.add_argument("--out", default="power-results", help="folder for power.csv, power.md, replicates.csv and "
                   "power_curve.png (default %(default)s); replicates.partial.csv fills as replicates finish, and "
                   "Ctrl-C summarizes the replicates done so far")
    p.add_argument("--workers", type=int, help="local worker processes (default: all cores)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on the Dask cluster whose scheduler is at ADDRESS (e.g. tcp://10.0.0.5:8786)")
    p.add_argument("--protocol", default="protocols/cpm-thermal.toml")


def run(args: argparse.Namespace) -> int:
    from cpm_session.commands.run import resolve
    from cpm_session.sim.power import PowerError, markdown_table, parse_list, run_power, write_outputs

    ns = parse_list(args.n, int, "--n")
    effects = parse_list(args.effect, float, "--effect")
    if args.workers is not None and args.workers < 1:
        raise PowerError(f"--workers must be at least 1, got {args.workers}")
    protocol = resolve(args.protocol)
    if not protocol.is_file():
        raise PowerError(f"protocol file {args.protocol} not found")
    total = len(ns) * len(effects) * args.reps
    step = max(1, total // 20)

    def progress(done: int, n: int) -> None:
        if done % step == 0 or done == n:
            print(f"  {done}/{n} replicate trials", file=sys.stderr, flush=True)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}  # stop = summarize what is done
    try:
        res = run_power(ns, effects, args.reps, args.seed, protocol_path=protocol.resolve(), workers=args.workers,
                        scheduler=args.scheduler, progress=progress,
                        checkpoint=Path(args.out) / "replicates.partial.csv")
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    paths = write_outputs(res, args.out)
    print(markdown_table(res.cells))
    for n in res.notes:
        print(f"note: {n}")
    print(f"{len(res.replicates)} replicate trials in {res.wall_s:.1f} s on {res.backend}; "
          f"results in {paths['markdown'].parent} (power.md, power.csv, replicates.csv, power_curve.png)")
    return 0
