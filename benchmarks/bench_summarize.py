"""Time `summarize` on 500 session folders (target: < 10 s).

Folders come from the real engine when it is importable (a few simulated visits, each copied into many
participant folders with the header's participant patched: realistic sizes, ~4000 device rows per
visit) or from the fast synthetic writer otherwise (`--source synth`). Run:

    .venv/bin/python benchmarks/bench_summarize.py [--n 500] [--source engine|synth] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 10.0
TEMPLATES = 10


def make_engine(root: Path, n: int) -> None:
    """Write `n` folders by cloning TEMPLATES real simulated visits."""
    from cpm_session.sim.participant import ParticipantTruth
    from cpm_session.sim.world import run_simulated_visit

    tmpl_dir = root.parent / (root.name + "-templates")
    templates = []
    for i in range(TEMPLATES):
        visit = "baseline" if i % 2 == 0 else "post"  # post needs the same participant's baseline
        truth = ParticipantTruth(withdrawal_s=40.0 if i == 3 else None, cpm_effect=0.1 + 0.05 * i)
        templates.append(run_simulated_visit(tmpl_dir, f"T{i // 2:03d}", visit, seed=i, truth=truth))
    for k in range(n):
        src = templates[k % TEMPLATES]
        pid = f"P{k // 2 + 1:04d}"
        dst = root / pid / src.name
        shutil.copytree(src, dst)
        hdr = json.loads((dst / "session.json").read_text(encoding="utf-8"))
        hdr["participant"] = pid
        (dst / "session.json").write_text(json.dumps(hdr, indent=2), encoding="utf-8")
    shutil.rmtree(tmpl_dir)


def make_synth(root: Path, n: int) -> None:
    """Write `n` folders with the fast synthetic writer."""
    import datetime as dt

    from cpm_session.sim.synth import SynthTruth, write_session

    for k in range(n):
        visit = "baseline" if k % 2 == 0 else "post"
        start = dt.datetime(2026, 1 + k % 2, 5, 9, tzinfo=dt.UTC)
        write_session(root, f"P{k // 2 + 1:04d}", visit, truth=SynthTruth(cpm_effect=0.1 + (k % 7) * 0.03), seed=k,
                      start=start)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--source", choices=["engine", "synth"], default="engine")
    ap.add_argument("--keep", help="write the folders here and keep them")
    args = ap.parse_args()
    from cpm_session.analysis.summarize import summarize

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-summarize-")) / "data"
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    source = args.source
    if source == "engine":
        try:
            make_engine(root, args.n)
        except ImportError:
            source = "synth"
    if source == "synth":
        make_synth(root, args.n)
    gen = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    print(f"generated {args.n} session folders ({source}, {size / 1e6:.0f} MB) in {gen:.1f} s")
    ok = True
    for integrity in (False, True):
        t0 = time.perf_counter()
        res = summarize(root, check_integrity=integrity)
        took = time.perf_counter() - t0
        assert len(res.table) == args.n, (len(res.table), res.warnings[:3])
        label = "with integrity check" if integrity else "without integrity check"
        print(f"summarize {args.n} folders {label}: {took:.2f} s ({took / args.n * 1000:.1f} ms/folder); "
              f"target < {TARGET_S:.0f} s: {'OK' if took < TARGET_S else 'TOO SLOW'}")
        ok = ok and took < TARGET_S
    if not args.keep:
        shutil.rmtree(root.parent)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
