"""Time `summarize` at consortium scale: 10,000 session folders with the integrity check (target: < 10 s).

The folders are made fast: a few synthetic sessions are written by `cpm_session.sim.synth` (real
hash-chained logs through EventLog), then cloned into `--n` participant folders with the participant
rewritten in the header and the log and the hash chain recomputed, so every clone verifies. Small sets
(`--source engine`) can instead clone real simulated visits.

Runs, each `summarize(DATA, check_integrity=True)` in this process (2-core machine: two workers):
  fresh      : `use_cache=False, workers=1`, i.e. what summarize did before the cache (only with --fresh)
  cold       : empty cache: every folder read and verified in parallel, rows written to DATA/.cache/summary/
  warm       : nothing changed: every row from the cache (each folder's file stats + its log's head hash checked)
  warm+1%    : 1 % of the sessions amended since (their rows recomputed)
  warm (CLI) : `cpm-session summarize DATA -o out.csv` as a new process (imports included)

    .venv/bin/python benchmarks/bench_summarize.py [--n 10000] [--fresh] [--keep DIR] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_S = 10.0
TEMPLATES = 20


def make_templates(tdir: Path) -> list[Path]:
    """Write TEMPLATES synthetic sessions (half baseline, half post) and return their folders."""
    from cpm_session.sim.synth import SynthTruth, write_session

    out = []
    for k in range(TEMPLATES):
        visit = "baseline" if k % 2 == 0 else "post"
        start = dt.datetime(2026, 1 + k % 2, 5, 9, tzinfo=dt.UTC)
        out.append(write_session(tdir, f"T{k // 2 + 1:04d}", visit, seed=k, start=start,
                                 truth=SynthTruth(cpm_effect=0.1 + (k % 7) * 0.03, withdrawal_s=40.0 if k == 5 else None)))
    return out


def clone(src: Path, root: Path, pid: str) -> Path:
    """Copy session `src` to `root/pid/<same name>` as participant `pid`, re-chaining its log (it verifies)."""
    old = src.parent.name
    dst = root / pid / src.name
    dst.mkdir(parents=True)
    prev = "0" * 64
    lines = []
    for raw in (src / "events.jsonl").read_bytes().splitlines():
        ev = json.loads(raw)
        if ev.get("participant") == old:
            ev["participant"] = pid
        ev["prev"] = prev
        line = json.dumps(ev, ensure_ascii=False, default=str, allow_nan=False).encode("utf-8")
        prev = hashlib.sha256(line).hexdigest()
        lines.append(line)
    (dst / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    hdr = json.loads((src / "session.json").read_bytes())
    hdr["participant"], hdr["log_final_sha256"] = pid, prev
    (dst / "session.json").write_text(json.dumps(hdr, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for name in ("ratings.csv", "devices.csv"):
        shutil.copyfile(src / name, dst / name)
    return dst


def make_data(root: Path, n: int) -> None:
    """Write `n` verifiable session folders below `root` (two visits per participant)."""
    tdir = root.parent / (root.name + "-templates")
    templates = make_templates(tdir)
    for k in range(n):
        clone(templates[k % TEMPLATES], root, f"P{k // 2 + 1:05d}")
    shutil.rmtree(tdir)


CPU: dict[str, float] = {}
"""CPU seconds (this process, its threads and its finished child processes) of each timed run."""


def _cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(label: str, fn: Any) -> tuple[float, Any]:
    t0, c0 = time.perf_counter(), _cpu()
    res = fn()
    took, cpu = time.perf_counter() - t0, _cpu() - c0
    CPU[label] = round(cpu, 2)
    print(f"  {label:<11s} {took:7.2f} s wall, {cpu:7.2f} s CPU", flush=True)
    return took, res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--fresh", action="store_true", help="also time the uncached single-process read")
    ap.add_argument("--keep", help="write the folders here and keep them")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from cpm_session.analysis.summarize import summarize
    from cpm_session.record.amend import amend_session
    from cpm_session.record.folder import iter_session_dirs

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-summarize-")) / "data"
    root.mkdir(parents=True, exist_ok=True)
    if not any(root.iterdir()):
        t0 = time.perf_counter()
        make_data(root, args.n)
        print(f"generated {args.n} session folders in {time.perf_counter() - t0:.1f} s", flush=True)
    shutil.rmtree(root / ".cache", ignore_errors=True)
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    print(f"summarize {args.n} folders ({size / 1e6:.0f} MB) with the integrity check, {os.cpu_count()} CPU(s):")
    res: dict[str, Any] = {"n": args.n, "mb": round(size / 1e6), "cpus": os.cpu_count()}

    def check(r: Any) -> None:
        assert len(r.table) == args.n, (len(r.table), r.warnings[:3])
        assert bool(r.table["integrity_ok"].all()), r.warnings[:3]

    if args.fresh:
        res["fresh_s"], r = timed("fresh", lambda: summarize(root, use_cache=False, workers=1))
        check(r)
    res["cold_s"], r = timed("cold", lambda: summarize(root))
    check(r)
    cold_table = r.table
    res["warm_s"], r = timed("warm", lambda: summarize(root))
    check(r)
    assert r.table.equals(cold_table)
    dirs = list(iter_session_dirs(root))
    for d in dirs[:: 100]:
        amend_session(d, "operator", "ZZ", "bench: operator initials corrected", "BE")
    res["warm_changed_s"], r = timed("warm+1%", lambda: summarize(root))
    check(r)
    out_csv = root.parent / "summary.csv"
    cmd = [sys.executable, "-m", "cpm_session", "summarize", str(root), "-o", str(out_csv)]
    res["warm_cli_s"], cp = timed("warm (CLI)", lambda: subprocess.run(cmd, capture_output=True, text=True))
    assert cp.returncode == 0, cp.stderr[-500:]
    res["target_s"] = TARGET_S
    res["cpu_s"] = CPU
    res["load_avg_1min"] = round(os.getloadavg()[0], 1)
    ok = res["warm_s"] < TARGET_S and res["warm_cli_s"] < TARGET_S
    print(f"warm summarize of {args.n} folders: {res['warm_s']:.2f} s in process, {res['warm_cli_s']:.2f} s as a "
          f"command; cold {res['cold_s']:.1f} s; target < {TARGET_S:.0f} s: {'OK' if ok else 'TOO SLOW'}")
    if args.json:
        print(json.dumps(res))
    if not args.keep:
        shutil.rmtree(root.parent)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
