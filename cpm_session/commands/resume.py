"""`cpm-session resume SESSION_DIR`: continue an interrupted visit in its own folder from a safe point."""

from __future__ import annotations

import argparse

from cpm_session.commands.run import make_clock, make_ui, print_result, write_session_plot

NAME = "resume"
HELP = "Resume a visit interrupted by a crash, kill, emergency stop or device fault."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("session_dir", help="the session folder, e.g. data/P001/baseline-20261125T101500Z")
    p.add_argument("--ui", choices=["psychopy", "headless"], default="psychopy")
    p.add_argument("--speed", type=float, default=None)
    p.add_argument("--staff", choices=["manual", "auto"], default=None)
    p.add_argument("--operator", default=None)
    p.add_argument("--override-reason", default="", help="written reason to resume with a changed protocol file")
    p.add_argument("--fullscreen", action="store_true")
    p.add_argument("--screenshots", default=None)
    p.add_argument("--no-status", action="store_true")


def run(args: argparse.Namespace) -> int:
    from cpm_session.config.protocol import load_protocol
    from cpm_session.config.station import load_station
    from cpm_session.engine import load_session, resume_visit

    header, _ = load_session(args.session_dir)
    protocol = load_protocol(header["protocol"])
    station = load_station(header["station"])
    args.simulate = bool(header.get("simulate"))
    args.station = header["station"]
    args._all_sim = station.all_simulated
    clock = make_clock(args, station.station.emulated)
    ui = make_ui(args, protocol, clock)
    outcome = resume_visit(args.session_dir, ui=ui, clock=clock, staff=args.staff, operator=args.operator,
                           override_reason=args.override_reason)
    print_result(outcome)
    write_session_plot(outcome)
    return 0 if outcome.status == "completed" else 3
