"""`cpm-session export {bids,redcap} DATA_DIR OUT_DIR`: share a study's data in standard formats."""

from __future__ import annotations

import argparse

NAME = "export"
HELP = "Export a data folder as a BIDS behavioural dataset or a REDCap import set (into an empty folder)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("format", choices=["bids", "redcap"], help="bids: BIDS 1.9.0 beh dataset; redcap: REDCap CSVs")
    p.add_argument("data_dir", help="the data folder (<participant>/<visit>-<stamp>/ session folders)")
    p.add_argument("out_dir", help="a new (or empty) output folder outside the data folder")
    p.add_argument("--include-unverified", action="store_true",
                   help="export sessions that fail `cpm-session verify` too, marked FAILED (default: left out and "
                        "listed in the output and the export's README)")
    p.add_argument("--sourcedata", action="store_true",
                   help="bids only: also copy the original session folders into sourcedata/")


def run(args: argparse.Namespace) -> int:
    from cpm_session.export.bids import export_bids
    from cpm_session.export.redcap import export_redcap

    screened: list[str] = []
    if args.format == "bids":
        files = export_bids(args.data_dir, args.out_dir, include_unverified=args.include_unverified,
                            sourcedata=args.sourcedata, screened=screened)
    else:
        files = export_redcap(args.data_dir, args.out_dir, include_unverified=args.include_unverified,
                              screened=screened)
    for line in screened:
        print(line)
    print(f"wrote {len(files)} files to {args.out_dir} ({args.format})"
          + (f"; {len(screened)} record(s) {'marked' if args.include_unverified else 'left out'}: they fail "
             f"verification" if screened else ""))
    return 0
