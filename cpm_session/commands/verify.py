"""`cpm-session verify PATH`: check the hash chain, header and derived tables of sessions."""

from __future__ import annotations

import argparse

NAME = "verify"
HELP = "Verify session folders (one session, a participant or a whole data folder): OK/FAIL per session."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a session folder, a participant folder or a data folder")
    p.add_argument("--quiet", action="store_true", help="print failures only")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from cpm_session.record.integrity import verify_path

    console = Console(highlight=False, soft_wrap=True)
    results = verify_path(args.path)
    failed = 0
    for r in results:
        label = escape(str(r.path))
        kind = "" if r.kind == "session" else " (adverse events)"
        if r.ok:
            if not args.quiet:
                console.print(f"[bold green]OK  [/] {label}{kind}")
                for note in r.notes:
                    console.print(f"      note: {escape(note)}")
        else:
            failed += 1
            console.print(f"[bold red]FAIL[/] {label}{kind}")
            for prob in r.problems:
                console.print(f"      {escape(prob)}")
            for note in r.notes:
                console.print(f"      note: {escape(note)}")
    summary = f"{len(results) - failed} OK, {failed} FAIL"
    console.print(f"[bold {'red' if failed else 'green'}]{summary}[/]")
    return 1 if failed else 0
