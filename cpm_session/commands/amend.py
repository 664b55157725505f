"""`cpm-session amend SESSION_DIR --field F --value V --reason R --operator XX`: correct a header value.

The correction is appended to the event log as an `amendment` event (old value, new value, reason,
operator, time); nothing already written is changed.
"""

from __future__ import annotations

import argparse

NAME = "amend"
HELP = "Correct a session header value (e.g. visit, results.cs_rating_30s) by appending a signed amendment."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("session_dir", help="the session folder (data/<participant>/<visit>-<stamp>)")
    p.add_argument("--field", required=True, help="dotted header field, e.g. visit, results.cs_rating_30s, hand")
    p.add_argument("--value", required=True,
                   help="new value; numbers/true/false/null are parsed as JSON unless the old value is text")
    p.add_argument("--reason", required=True, help="why the value is wrong and how the correct one is known")
    p.add_argument("--operator", required=True, help="initials of the person making the amendment")


def run(args: argparse.Namespace) -> int:
    from cpm_session.record.amend import amend_session, get_dotted, load_effective_header, parse_cli_value

    effective = load_effective_header(args.session_dir)
    value = parse_cli_value(args.value, get_dotted(effective, args.field))
    rec = amend_session(args.session_dir, args.field, value, args.reason, args.operator)
    print(f"amended {args.field}: {rec['old']!r} -> {rec['new']!r} (event seq {rec['seq']}, by {rec['operator']}); "
          f"the original stays in the log")
    return 0
