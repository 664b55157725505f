"""The `cpm-session` command line. Each sub-command lives in `cpm_session.commands.<module>`.

Every number given on the command line is checked against `ARG_BOUNDS` before a command runs, and one
top-level handler turns any error into one line: a `CpmError` prints its message; anything else prints
one line naming the log file (`~/.cpm-session/errors.log`, or the temporary folder when the home
folder cannot be written) that holds the traceback. No traceback ever reaches the user.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import math
import os
import sys
import tempfile
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from cpm_session import __version__
from cpm_session.errors import CpmError

COMMAND_MODULES = [
    "run", "resume", "validate", "emulate", "check_station",
    "summarize", "analyze", "randomize", "simulate_trial", "power", "ae", "verify", "amend", "export",
]

MAX_SEED = 2**32 - 1
ARG_BOUNDS: dict[str, tuple[float, float, bool]] = {
    "speed": (0.01, 10_000.0, True),
    "seed": (0, MAX_SEED, True),
    "n": (1, 100_000, True),
    "block_size": (2, 1000, True),
    "bath_window": (0.0, 3600.0, False),
    "bath_c": (-5.0, 40.0, True),
    "drift": (-1.0, 1.0, True),
    "drug_effect": (-1.0, 1.0, True),
}
"""Command-line numbers: option -> (low, high, low inclusive). Every value must be finite and within."""

SIM_TRUTH_BOUNDS: dict[str, tuple[float, float]] = {
    "pain60_c": (30.0, 50.0), "slope_c": (0.05, 10.0), "noise_sd": (0.0, 50.0), "cpm_effect": (-1.0, 1.0),
    "cs_rating": (0.0, 100.0), "ppt_kpa": (1.0, 2000.0), "ppt_cv": (0.0, 1.0), "pressure_scale_kpa": (1.0, 1000.0),
    "withdrawal_s": (0.0, 300.0), "rt_mean_s": (0.05, 60.0), "miss_prob": (0.0, 1.0), "severity": (0.0, 1.0),
}
"""Bounds of the simulated participant's truth (`--sim-truth KEY=VALUE`)."""

ERROR_LOG_NAME = "errors.log"


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


def check_numbers(args: argparse.Namespace) -> None:
    """Raise CpmError unless every bounded option is a finite number within its bounds (named in the error)."""
    for name, (lo, hi, lo_inclusive) in ARG_BOUNDS.items():
        v = getattr(args, name, None)
        if v is None or isinstance(v, bool) or not isinstance(v, int | float):
            continue
        ok = math.isfinite(v) and (lo <= v if lo_inclusive else lo < v) and v <= hi
        if not ok:
            low = "[" if lo_inclusive else "("
            raise CpmError(f"--{name.replace('_', '-')} {v}: expected a finite number in {low}{lo:g}, {hi:g}]")
    for item in getattr(args, "sim_truth", None) or []:
        key, sep, val = str(item).partition("=")
        if not sep:
            raise CpmError(f"--sim-truth {item!r}: expected KEY=VALUE")
        if key not in SIM_TRUTH_BOUNDS:
            raise CpmError(f"--sim-truth: unknown key {key!r}; expected one of {sorted(SIM_TRUTH_BOUNDS)}")
        if val.lower() == "none" and key == "withdrawal_s":
            continue
        try:
            x = float(val)
        except ValueError:
            raise CpmError(f"--sim-truth {key}: expected a number, found {val!r}") from None
        lo, hi = SIM_TRUTH_BOUNDS[key]
        if not (math.isfinite(x) and lo <= x <= hi):
            raise CpmError(f"--sim-truth {key}={val}: expected a finite number in [{lo:g}, {hi:g}]")
    for name in ("data", "data_dir", "out_dir", "output", "session_dir"):
        v = getattr(args, name, None)
        if isinstance(v, str) and not v.strip():
            raise CpmError(f"{name.replace('_', '-')} is empty: give a folder or file name (an empty name would "
                           f"mean the working directory)")
    op = getattr(args, "operator", None)
    if isinstance(op, str):
        from cpm_session.ids import validate_operator

        validate_operator(op)
    for name in ("data", "participant", "operator", "output", "override_reason", "reason", "value", "field"):
        v = getattr(args, name, None)
        if isinstance(v, str) and ("\x00" in v or any(ord(c) < 32 and c not in "\t" for c in v)):
            raise CpmError(f"--{name.replace('_', '-')}: control characters are not allowed ({v[:40]!r})")


def error_log_path() -> Path:
    """Return the file the details of an unexpected error go to (created with its folder if needed)."""
    candidates = [Path(os.environ.get("CPM_SESSION_ERROR_LOG", "")) if os.environ.get("CPM_SESSION_ERROR_LOG")
                  else None, Path.home() / ".cpm-session" / ERROR_LOG_NAME,
                  Path(tempfile.gettempdir()) / f"cpm-session-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
                  / ERROR_LOG_NAME]
    for c in candidates:
        if c is None:
            continue
        try:
            c.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with open(c, "a", encoding="utf-8"):
                pass
            return c
        except OSError:
            continue
    return Path(os.devnull)


def _log_details(command: str, argv: list[str] | None, exc: BaseException) -> Path:
    path = error_log_path()
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"--- {dt.datetime.now(dt.UTC).isoformat()} cpm-session {__version__} {command}\n")
            f.write(f"argv: {argv if argv is not None else sys.argv[1:]!r}\n")
            f.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    except OSError:
        pass
    return path


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _command_of(argv: list[str]) -> str | None:
    """Return the sub-command named first in `argv` (None when there is none, e.g. `--help`)."""
    return argv[0] if argv and not argv[0].startswith("-") else None


def main(argv: list[str] | None = None) -> int:
    """Run the command line; print every error as one clear line (no traceback) and return an exit code."""
    # pydantic looks for plugins in every installed package's metadata at its first model (~0.1 s); we use none
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(_command_of(argv)).parse_args(argv)
    command: Any = getattr(args, "command", "?")
    try:
        check_numbers(args)
        return int(args._run(args) or 0)
    except CpmError as e:
        print(f"cpm-session {command}: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cpm-session {command}: interrupted", file=sys.stderr)
        return 130
    except RecursionError as e:
        log = _log_details(command, argv, e)
        print(f"cpm-session {command}: error: an input is nested far too deeply to be a cpm-session file or value; "
              f"details in {log}", file=sys.stderr)
        return 2
    except MemoryError as e:
        log = _log_details(command, argv, e)
        print(f"cpm-session {command}: error: out of memory (an input far too large?); details in {log}",
              file=sys.stderr)
        return 2
    except OSError as e:
        log = _log_details(command, argv, e)
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"cpm-session {command}: error: {e.strerror or type(e).__name__}{where}; details in {log}",
              file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - the one place that turns any failure into one line
        log = _log_details(command, argv, e)
        print(f"cpm-session {command}: error: unexpected {type(e).__name__}: {_one_line(str(e))[:300]}; "
              f"this is a bug, details in {log}", file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
