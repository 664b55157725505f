"""`cpm-session analyze DATA_DIR --allocation FILE`: the trial's ANCOVA, reliability and report."""

from __future__ import annotations

import argparse
import sys

NAME = "analyze"
HELP = "ANCOVA of post CPM by arm adjusted for baseline, reliability, optional HTML report (CPM positive = inhibition)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data_dir", metavar="DATA_DIR", help="folder holding <participant>/<visit>-<stamp>/ session folders")
    p.add_argument("--allocation", required=True, metavar="FILE",
                   help="CSV participant,arm (unblinded) or participant,code (blinded)")
    p.add_argument("--control", metavar="ARM",
                   help="the control (reference) arm; needed unless the allocation file has a role column "
                        "(cpm-session randomize writes one). Never guessed from arm names")
    p.add_argument("--blinded", action="store_true", help="show arms as A/B even if the file names them")
    p.add_argument("--report", metavar="DIR", help="write report.html, tables/*.csv and figures/ into DIR")
    p.add_argument("--session-plots", choices=["all", "flagged", "none"], default="flagged",
                   help="per-session figures in the report: all, flagged (default: sessions not completed, with "
                        "deviations, amendments, withdrawal or missing data) or none")
    p.add_argument("--include-unverified", action="store_true",
                   help="use sessions that fail `cpm-session verify` too, marked in the output and report "
                        "(default: left out and listed)")
    p.add_argument("--force", action="store_true", help="write the report into a folder that is not empty")
    p.add_argument("--baseline-visit", default="baseline", help="visit name of the baseline (default baseline)")
    p.add_argument("--post-visit", default="post", help="visit name after treatment (default post)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cpm_session.analysis.constants import CI_LEVEL, SIGN_TAG
    from cpm_session.analysis.summarize import summarize
    from cpm_session.analysis.trial import analyze_trial, read_allocation
    from cpm_session.errors import SessionError
    from cpm_session.record.gate import screen_table
    from cpm_session.record.outputs import OutputError, check_output_dir

    if args.report:
        try:
            check_output_dir(args.report, data_dir=args.data_dir, what="--report")
        except OutputError as e:
            if not (args.force and "not empty" in str(e)):
                raise
    if not Path(args.data_dir).is_dir():
        raise SessionError(f"data folder {args.data_dir} does not exist or is not a folder")
    summary = summarize(args.data_dir)
    summary.table, screened = screen_table(summary.table, include_unverified=args.include_unverified)
    summary.warnings[:0] = screened  # the report's warnings table lists them first
    from cpm_session.ids import has_control_chars
    from cpm_session.record.outputs import check_input_file

    check_input_file(args.allocation, what="--allocation")
    alloc = read_allocation(args.allocation, blinded=args.blinded, control=args.control)
    res = analyze_trial(summary.table, alloc, baseline_visit=args.baseline_visit, post_visit=args.post_visit)
    if len(alloc.arms) < 2:
        raise SessionError(f"--allocation {args.allocation}: {len(alloc.arms)} arm(s) {alloc.arms}; an ANCOVA by arm "
                           "needs at least two")
    if any(has_control_chars(str(a)) for a in alloc.arms):
        raise SessionError(f"--allocation {args.allocation}: arm names hold control characters")
    for line in screened:
        print(line)
    for w in summary.warnings[len(screened):] + res.skipped:
        print(f"warning: {w}", file=sys.stderr)
    print(f"{'BLINDED, arms shown as ' if alloc.blinded else 'arms '}{', '.join(alloc.arms)}; reference {alloc.reference}"
          + (" (control arm)" if alloc.reference_source == "control" else " (first code; sign arbitrary while blinded)"))
    pct = int(round(CI_LEVEL * 100))
    print(f"{'outcome':<52} {'comparison':<24} {'n':>3} {'adj.diff':>9} {pct}% CI{'':<12} {'p':>8}")
    for r in res.ancova:
        print(f"{r.outcome:<52} {r.treatment + ' - ' + r.reference:<24} {r.n:>3} {r.estimate:>9.2f} "
              f"[{r.ci_low:7.2f}, {r.ci_high:7.2f}] {r.p:>8.4f}")
    print(f"sign convention: CPM_abs = TS_pre - TS_post {SIGN_TAG}")
    if len(res.missing):
        print(f"{len(res.missing)} missing or unused session(s)/visit(s); see the report's missing-data table")
    if args.report:
        from cpm_session.analysis.report import write_report

        page = write_report(res, summary, args.report, data_dir=args.data_dir, session_plots=args.session_plots)
        print(f"report: {page}")
    return 0
