"""`cpm-session ae add|update|list`: record and review adverse events (append-only, hash-chained)."""

from __future__ import annotations

import argparse

NAME = "ae"
HELP = "Record, update and list adverse events (data/<participant>/adverse_events.jsonl)."
DEFAULT_DATA_DIR = "data"
PIPE_WIDTH = 220
"""Table width in characters when output goes to a file or pipe (a terminal uses its own width)."""


def _choices(field: str) -> str:
    from cpm_session.record.adverse_events import ALLOWED

    return ", ".join(f"'{a}'" for a in ALLOWED[field])


def _add_fields(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--description", required=required, help="what happened (no names or other identifying details)")
    p.add_argument("--onset", required=required, metavar="YYYY-MM-DD", help="onset date, not in the future")
    p.add_argument("--severity", required=required, help=f"one of {_choices('severity')}")
    p.add_argument("--serious", required=required, help=f"one of {_choices('serious')}")
    p.add_argument("--relatedness", required=required, help=f"relation to the procedure: one of {_choices('relatedness')}")
    p.add_argument("--action", required=required, help=f"action taken: one of {_choices('action_taken')}")
    p.add_argument("--outcome", required=required, help=f"one of {_choices('outcome')}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="ae_command", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="record a new adverse event", description="Record a new adverse event.")
    add.add_argument("--participant", required=True, help="participant pseudonym, e.g. P001")
    _add_fields(add, required=True)
    add.add_argument("--operator", required=True, help="initials of the person recording it")
    add.add_argument("--session", default=None, metavar="DIR",
                     help="session folder if it happened during a visit (data/<participant>/<visit>-<stamp>)")
    add.add_argument("--data", default=DEFAULT_DATA_DIR, help=f"data folder (default {DEFAULT_DATA_DIR}/)")

    upd = sub.add_parser("update", help="record a change (e.g. outcome) of an adverse event",
                         description="Append an update of an adverse event; the original record is kept.")
    upd.add_argument("--participant", required=True, help="participant pseudonym, e.g. P001")
    upd.add_argument("--ae-id", required=True, help="the event's id, e.g. AE001 (see `cpm-session ae list`)")
    _add_fields(upd, required=False)
    upd.add_argument("--operator", required=True, help="initials of the person recording the change")
    upd.add_argument("--note", default="", help="why it changed (optional)")
    upd.add_argument("--data", default=DEFAULT_DATA_DIR, help=f"data folder (default {DEFAULT_DATA_DIR}/)")

    lst = sub.add_parser("list", help="show the current state of adverse events",
                         description="Show the current state of every adverse event (updates applied).")
    lst.add_argument("--participant", default=None, help="only this participant")
    lst.add_argument("--data", default=DEFAULT_DATA_DIR, help=f"data folder (default {DEFAULT_DATA_DIR}/)")


_ARG_TO_FIELD = {"description": "description", "onset": "onset_date", "severity": "severity", "serious": "serious",
                 "relatedness": "relatedness", "action": "action_taken", "outcome": "outcome"}


def _fields(args: argparse.Namespace) -> dict[str, str]:
    return {field: getattr(args, arg) for arg, field in _ARG_TO_FIELD.items() if getattr(args, arg) is not None}


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cpm_session.record import adverse_events as ae
    from cpm_session.record.gate import require_ae_log

    if args.ae_command in ("add", "update"):  # never append to a log that fails verification
        log = ae.ae_log_path(args.data, args.participant)
        if log.exists() or log.is_symlink():
            require_ae_log(log)
    if args.ae_command == "add":
        rec = ae.record_adverse_event(args.data, args.participant, _fields(args), operator=args.operator,
                                      session_dir=Path(args.session) if args.session else None)
        print(f"recorded {rec['ae_id']} for {rec['participant']}: {rec['severity']}, serious {rec['serious']}, "
              f"outcome {rec['outcome']} (line {rec['seq'] + 1} of {ae.ae_log_path(args.data, args.participant)})")
        if rec["serious"] == "yes":
            print("SERIOUS adverse event: report it to the study's safety contact within the protocol's time limit.")
        return 0
    if args.ae_command == "update":
        rec = ae.update_adverse_event(args.data, args.participant, args.ae_id, _fields(args), operator=args.operator,
                                      note=args.note)
        changes = ", ".join(f"{k} -> {v!r}" for k, v in rec["changes"].items())
        print(f"updated {rec['ae_id']} for {rec['participant']}: {changes} (the original record is kept)")
        return 0
    return _list(args)


def _list(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from cpm_session.record.adverse_events import AE_LOG, list_adverse_events
    from cpm_session.record.integrity import verify_ae_log

    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:  # a file or pipe: keep whole values on one line rather than 80 columns
        console.width = max(console.width, PIPE_WIDTH)
    rows = list_adverse_events(args.data, args.participant)
    logs = sorted({Path(args.data) / r["participant"] / AE_LOG for r in rows})
    damaged = 0
    for log in logs:
        for problem in verify_ae_log(log).problems:
            damaged += 1
            console.print(f"[bold red]WARNING[/] {escape(problem)}")
    if not rows:
        who = f"participant {args.participant}" if args.participant else f"{args.data}/"
        console.print(f"no adverse events recorded for {escape(who)}")
        return 0
    table = Table(title=f"Adverse events ({len(rows)})", show_lines=False)
    for col in ("participant", "ae_id", "onset", "description", "severity", "serious", "relatedness", "action",
                "outcome", "by", "visit", "updates"):
        table.add_column(col, no_wrap=col != "description", overflow="fold")
    for r in rows:
        serious = "[bold red]yes[/]" if r["serious"] == "yes" else "no"
        table.add_row(escape(r["participant"]), escape(r["ae_id"]), escape(str(r["onset_date"])),
                      escape(str(r["description"])), escape(str(r["severity"])), serious,
                      escape(str(r["relatedness"])), escape(str(r["action_taken"])), escape(str(r["outcome"])),
                      escape(str(r["operator"])), escape(r["visit"] or ""), str(r["updates"]))
    console.print(table)
    return 1 if damaged else 0
