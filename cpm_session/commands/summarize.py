"""`cpm-session summarize DATA_DIR`: one tidy row per session folder (participant, visit, CPM, ...)."""

from __future__ import annotations

import argparse
import sys

NAME = "summarize"
HELP = "Read every session folder below DATA_DIR into one CSV row each (CPM positive = inhibition)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data_dir", metavar="DATA_DIR", help="folder holding <participant>/<visit>-<stamp>/ session folders")
    p.add_argument("-o", "--output", default="summary.csv", help="CSV file to write (default summary.csv)")
    p.add_argument("--protocol-dir", action="append", default=[],
                   help="extra folder to look for protocol files recorded by relative path (repeatable)")
    p.add_argument("--no-cache", action="store_true",
                   help="read and verify every folder afresh (default: reuse each session's verified row from "
                        "DATA_DIR/.cache/summary/ while the session's files are unchanged)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cpm_session.analysis.summarize import summarize
    from cpm_session.errors import SessionError

    res = summarize(args.data_dir, protocol_dirs=[Path(d) for d in args.protocol_dir], use_cache=not args.no_cache)
    try:
        res.table.to_csv(args.output, index=False)
    except OSError as e:
        raise SessionError(f"cannot write {args.output}: {e.strerror or e}") from e
    for w in res.warnings:
        print(f"warning: {w}", file=sys.stderr)
    counts = res.table["status"].value_counts().to_dict() if len(res.table) else {}
    print(f"wrote {len(res.table)} session row(s) to {args.output} "
          f"({', '.join(f'{k} {v}' for k, v in counts.items()) or 'no sessions'}); {len(res.warnings)} warning(s)")
    return 0
