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
    from cpm_session.record.reader import load_session
    from cpm_session.session import SessionSettings, continue_visit, load_for_resume, resume_clock

    header, _ = load_session(args.session_dir)
    inp = load_for_resume(args.session_dir, override_reason=args.override_reason)
    simulate = header.get("simulate") is True
    pilot = header.get("pilot") is True  # a pilot run: a person at the screen, simulated devices
    args.simulate, args.pilot = simulate, pilot
    args.station = inp.station.path
    args._all_sim = inp.station.all_simulated
    if args.speed is None and (simulate or pilot) and isinstance(header.get("speed"), int | float):
        args.speed = float(header["speed"])  # a simulated session keeps its speed unless told otherwise
    base = make_clock(args, inp.station.station.emulated)
    clk = resume_clock(inp, base)
    ui = make_ui(args, inp.protocol, clk)
    if simulate or pilot or not inp.station.all_simulated and any(
            r.model == "sim" for r in (inp.station.thermode, inp.station.bath, inp.station.algometer)):
        from cpm_session.sim.world import resume_visit  # simulation only where the session was simulated

        outcome = resume_visit(args.session_dir, ui=ui, clock=clk, staff=args.staff, operator=args.operator,
                               override_reason=args.override_reason)
    else:
        from cpm_session.devices.factory import open_devices

        devices = open_devices(inp.station, cap_c=inp.cap_c, neutral_c=inp.protocol.safety.neutral_c, clock=clk,
                               zones=inp.protocol.thermode.zones)
        settings = SessionSettings(operator=args.operator or str(header.get("operator") or ""),
                                   seed=0, staff="manual", require_licensed_wording=True)
        outcome = continue_visit(inp, ui=ui, clock=clk, devices=devices, settings=settings,
                                 override_reason=args.override_reason)
    print_result(outcome)
    write_session_plot(outcome)
    return 0 if outcome.status == "completed" else 3
