"""`cpm-session summarize DATA_DIR`: one tidy row per verified session folder (participant, visit, CPM, ...)."""

from __future__ import annotations

import argparse
import sys

NAME = "summarize"
HELP = "Read every session folder below DATA_DIR into one CSV row each (CPM positive = inhibition)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data_dir", metavar="DATA_DIR", help="folder holding <participant>/<visit>-<stamp>/ session folders")
    p.add_argument("-o", "--output", default="summary.csv",
                   help="CSV file to write (default summary.csv; an existing file needs --force)")
    p.add_argument("--force", action="store_true", help="replace the output file if it exists")
    p.add_argument("--include-unverified", action="store_true",
                   help="keep sessions that fail `cpm-session verify` (marked integrity_ok=False); default: left out")
    p.add_argument("--protocol-dir", action="append", default=[],
                   help="extra folder to look for protocol files recorded by relative path (repeatable)")
    p.add_argument("--no-cache", action="store_true",
                   help="read and verify every folder afresh (default: reuse each session's verified row from "
                        "DATA_DIR/.cache/summary/ while the session's files are unchanged)")


def run(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from cpm_session.analysis.summarize import summarize
    from cpm_session.errors import SessionError
    from cpm_session.record.gate import screen_table
    from cpm_session.record.outputs import check_output_file

    if not Path(args.data_dir).is_dir():
        raise SessionError(f"data folder {args.data_dir} does not exist or is not a folder")
    out = check_output_file(args.output, force=args.force, what="-o")
    res = summarize(args.data_dir, protocol_dirs=[Path(d) for d in args.protocol_dir], use_cache=not args.no_cache)
    table, screened = screen_table(res.table, include_unverified=args.include_unverified)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        table.to_csv(tmp, index=False)
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise SessionError(f"cannot write {args.output}: {e.strerror or e}") from e
    for w in res.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for line in screened:
        print(line)
    counts = table["status"].value_counts().to_dict() if len(table) else {}
    left_out = 0 if args.include_unverified else len(screened)
    print(f"wrote {len(table)} session row(s) to {args.output} "
          f"({', '.join(f'{k} {v}' for k, v in counts.items()) or 'no sessions'}); {len(res.warnings)} warning(s)"
          + (f"; {left_out} session(s) left out: they fail verification" if left_out else ""))
    return 0
