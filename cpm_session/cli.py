"""The `cpm-session` command line. Each sub-command lives in `cpm_session.commands.<module>`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from types import ModuleType

from cpm_session import __version__
from cpm_session.errors import CpmError

COMMAND_MODULES = [
    "run", "resume", "validate", "emulate", "check_station",
    "summarize", "analyze", "randomize", "simulate_trial", "ae", "verify", "amend", "export",
]


def _load_commands() -> list[ModuleType]:
    mods = []
    for name in COMMAND_MODULES:
        try:
            mods.append(importlib.import_module(f"cpm_session.commands.{name}"))
        except ModuleNotFoundError as e:
            if e.name != f"cpm_session.commands.{name}":
                raise
    return mods


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Return the argument parser with every available sub-command (with `command`, only that one gets its
    options: building the others' options can import what that command does not need)."""
    parser = argparse.ArgumentParser(prog="cpm-session", description="Run and analyse Conditioned Pain Modulation sessions.")
    parser.add_argument("--version", action="version", version=f"cpm-session {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for mod in _load_commands():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        if command is None or mod.NAME == command:
            mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def _command_of(argv: list[str]) -> str | None:
    """Return the sub-command named first in `argv` (None when there is none, e.g. `--help`)."""
    return argv[0] if argv and not argv[0].startswith("-") else None


def main(argv: list[str] | None = None) -> int:
    """Run the command line; print CpmErrors as one clear line (no traceback) and return an exit code."""
    # pydantic looks for plugins in every installed package's metadata at its first model (~0.1 s); we use none
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(_command_of(argv)).parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except CpmError as e:
        print(f"cpm-session {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cpm-session {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
