"""`cpm-session run`: run one CPM visit (real devices, emulators, or fully simulated)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from cpm_session.resources import resolve

NAME = "run"
HELP = "Run one CPM visit for a participant."
__all__ = ["resolve"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--participant", required=True, help="pseudonym, e.g. P001 (no names)")
    p.add_argument("--visit", required=True, help="visit name from the protocol file, e.g. baseline or post")
    p.add_argument("--protocol", default="protocols/cpm-thermal.toml", help="protocol file (default: %(default)s)")
    p.add_argument("--station", default=None, help="station file (default: hardware/sim.toml with --simulate)")
    p.add_argument("--simulate", action="store_true", help="simulated participant (and simulated devices unless --station)")
    p.add_argument("--pilot", action="store_true",
                   help="try the protocol: a person at the screen, simulated devices, data into DATA/pilot/ "
                        "(never summarized, analyzed or exported)")
    p.add_argument("--speed", type=float, default=None, help="compress time by X (simulation/emulators only)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the simulation")
    p.add_argument("--data", default="data", help="data folder (default: %(default)s)")
    p.add_argument("--ui", choices=["psychopy", "headless"], default="psychopy",
                   help="participant screen: a PsychoPy window, or none (simulation only)")
    p.add_argument("--staff", choices=["manual", "auto"], default=None,
                   help="staff steps confirmed with space (manual) or automatically (simulation; default there)")
    p.add_argument("--operator", default=None, help="operator initials (required for real visits)")
    p.add_argument("--override-reason", default="",
                   help="written reason to accept a protocol that differs from the baseline's, or to run a real "
                        "TCS II without a passing check-station limiter test in the last 24 h (logged)")
    p.add_argument("--fullscreen", action="store_true", help="participant window fullscreen")
    p.add_argument("--screenshots", default=None, help="save a PNG of every screen into this folder")
    p.add_argument("--sim-truth", action="append", default=[], metavar="KEY=VALUE",
                   help="simulated participant truth, e.g. pain60_c=46 cpm_effect=0.3 withdrawal_s=20")
    p.add_argument("--no-status", action="store_true", help="no live staff status panel in the terminal")


def parse_truth(items: list[str]) -> Any:
    """Return a ParticipantTruth from KEY=VALUE strings (clear error for unknown keys/values)."""
    from cpm_session.errors import CpmError
    from cpm_session.sim.participant import ParticipantTruth

    fields = {f.name: f for f in dataclasses.fields(ParticipantTruth)}
    kw: dict[str, Any] = {}
    for item in items:
        key, _, val = item.partition("=")
        if key not in fields:
            raise CpmError(f"--sim-truth: unknown key {key!r}; expected one of {sorted(fields)}")
        try:
            kw[key] = None if val.lower() == "none" else float(val)
        except ValueError:
            raise CpmError(f"--sim-truth {key}: expected a number, found {val!r}") from None
    return ParticipantTruth(**kw)


def make_clock(args: argparse.Namespace, emulated: bool):  # type: ignore[no-untyped-def]
    """Return the clock: virtual for headless simulation without --speed, else real time scaled by --speed."""
    from cpm_session.clock import RealClock, VirtualClock
    from cpm_session.errors import CpmError

    simulated = args.simulate or getattr(args, "pilot", False)
    if args.speed is not None and not (simulated and (emulated or args.station is None or args._all_sim)):
        raise CpmError("--speed is only allowed with --simulate or --pilot on simulated or emulated devices")
    if args.speed is not None and args.speed <= 0:
        raise CpmError(f"--speed must be > 0, found {args.speed}")
    if args.ui == "headless" and args.speed is None and args._all_sim:
        return VirtualClock()
    if args.ui == "psychopy":
        from psychopy.clock import getTime  # one time base for frames, onsets and ratings

        return RealClock(args.speed or 1.0, timer=getTime)
    return RealClock(args.speed or 1.0)


def make_ui(args: argparse.Namespace, protocol, clock):  # type: ignore[no-untyped-def]
    """Return the participant screen."""
    from cpm_session.errors import CpmError
    from cpm_session.ui.headless import HeadlessUI

    if args.ui == "headless":
        if not args.simulate:
            raise CpmError("--ui headless needs --simulate: a real participant needs the rating screen")
        return HeadlessUI(clock)
    from cpm_session.ui.psychopy import PsychoPyUI
    from cpm_session.ui.status import StatusView

    kwargs: dict[str, Any] = {"fullscreen": args.fullscreen or None,
                              "status": StatusView(enabled=not getattr(args, "no_status", False))}
    if args.screenshots:
        kwargs["screenshot_dir"] = Path(args.screenshots)
    ui = PsychoPyUI(protocol, clock, **kwargs)
    return ui


def print_result(outcome: Any, console_file: Any = None) -> None:
    """Print the visit's result table and where the data went."""
    from rich.console import Console
    from rich.table import Table

    con = Console(file=console_file or sys.stdout)
    r = outcome.results
    t = Table(title=f"CPM result ({outcome.status})", caption="positive CPM = inhibition", min_width=50)
    t.add_column("measure")
    t.add_column("value", justify="right")

    def fmt(v: Any, unit: str = "") -> str:
        return "–" if v is None else (f"{v:.2f}{unit}" if isinstance(v, float) else f"{v}{unit}")

    if r.get("ts_modality") == "pressure":
        t.add_row("PPT (mean)", fmt(r.get("ppt_kpa"), " kPa"))
        t.add_row("TS pressure", fmt(r.get("ts_intensity"), " kPa"))
    else:
        t.add_row("Pain-60 temperature", fmt(r.get("pain60_c"), " °C"))
    for i, v in enumerate(r.get("ts_pre_ratings") or [], 1):
        t.add_row(f"TS_pre rating {i}", fmt(v))
    t.add_row("TS_pre (mean)", fmt(r.get("ts_pre")))
    flag = r.get("cs_rating_flag") or ""
    t.add_row("Cold-pressor rating at 30 s", fmt(r.get("cs_rating_30s")) + (f" ({flag})" if flag else ""))
    if r.get("withdrawal_s") is not None:
        t.add_row("Hand withdrawn at", fmt(r.get("withdrawal_s"), " s"))
    for i, v in enumerate(r.get("ts_post_ratings") or [], 1):
        t.add_row(f"TS_post rating {i}", fmt(v))
    t.add_row("TS_post (mean)", fmt(r.get("ts_post")))
    t.add_row("CPM_abs (TS_pre − TS_post)", fmt(r.get("cpm_abs")))
    pct = r.get("cpm_pct")
    t.add_row("CPM_pct", fmt(pct, " %") if pct is not None else (r.get("cpm_pct_note") or "–"))
    inh = r.get("inhibition")
    t.add_row("Inhibition", "–" if inh is None else ("yes" if inh else f"no ({r.get('cpm_category')})"))
    con.print(t)
    if outcome.message:
        con.print(f"[yellow]{outcome.message}[/yellow]")
    con.print(f"Data written to: [bold]{outcome.session_dir}[/bold]")


def write_session_plot(outcome: Any) -> None:
    """Draw the session figure (thermode trace, ratings, bath, calibration fit) into the session folder."""
    try:
        from cpm_session.analysis.plots import session_figure

        png = session_figure(outcome.session_dir, Path(outcome.session_dir) / "session_plot.png")
        print(f"Session plot: {png}")
    except Exception as e:  # noqa: BLE001 - the data are safe; a plot problem must not look like a failed visit
        print(f"(session plot not drawn: {type(e).__name__}: {e})", file=sys.stderr)


def require_station_check(station: Any, args: argparse.Namespace, operator: str) -> dict[str, Any] | None:
    """Refuse a real TCS II visit without a recent passing limiter check of this station file.

    Emulated and simulated thermodes are exempt. With `--override-reason` the refusal becomes a warning
    and an 'override' record in DATA/station-checks.jsonl. Returns the check (or override) record.
    """
    from cpm_session.errors import CpmError
    from cpm_session.station_check import record_override, require_recent_check

    if station.thermode.model != "tcs2" or station.station.emulated:
        return None
    try:
        return require_recent_check(station, args.data)
    except CpmError as e:
        if not args.override_reason.strip():
            raise
        print(f"WARNING: {e}; going on: --override-reason {args.override_reason!r} (logged)", file=sys.stderr)
        return record_override(station, args.data, args.override_reason.strip(), participant=args.participant,
                               visit=args.visit, operator=operator)


def run(args: argparse.Namespace) -> int:
    from cpm_session.config.protocol import load_protocol
    from cpm_session.config.station import load_station
    from cpm_session.errors import CpmError
    from cpm_session.ids import validate_participant_id, validate_visit

    validate_participant_id(args.participant)
    protocol = load_protocol(resolve(args.protocol))
    validate_visit(args.visit, protocol.protocol.visits)
    pilot = getattr(args, "pilot", False)
    if pilot:
        check_pilot(args)
    if args.station is None and not (args.simulate or pilot):
        raise CpmError("--station FILE is required for a real visit (or use --simulate, or --pilot to try the protocol)")
    station = load_station(resolve(args.station or "hardware/sim.toml"))
    args._all_sim = station.all_simulated
    if pilot and not station.all_simulated:
        raise CpmError(f"--pilot runs on simulated devices: station {station.path} has real ones; "
                       "leave out --station (or give an all-simulated one)")
    if not (args.simulate or pilot) and station.all_simulated:
        raise CpmError(f"station {station.path} is all simulated: add --simulate (simulated participant) or "
                       "--pilot (a person at the screen), or use a real station file")
    operator = args.operator
    if not operator:
        if args.simulate:
            operator = "SIM"
        elif pilot:
            operator = "PILOT"
        elif sys.stdin.isatty():
            operator = input("Operator initials: ").strip()
        if not operator:
            raise CpmError("--operator is required for a real visit (initials of the person running it)")
    require_station_check(station, args, operator)
    truth = parse_truth(args.sim_truth) if args.simulate else None
    clock = make_clock(args, station.station.emulated)
    ui = make_ui(args, protocol, clock)
    staff = args.staff or ("auto" if args.simulate else "manual")
    if pilot:
        from cpm_session.record.folder import pilot_dir
        from cpm_session.sim.world import run_visit  # simulated devices, a person at the screen

        outcome = run_visit(protocol, station, data_dir=pilot_dir(args.data), participant=args.participant,
                            visit=args.visit, ui=ui, clock=clock, simulate=False, pilot=True, seed=args.seed,
                            staff=staff, operator=operator, speed=args.speed, override_reason=args.override_reason)
    elif args.simulate:
        from cpm_session.sim.world import run_visit  # simulation only where asked for

        outcome = run_visit(protocol, station, data_dir=args.data, participant=args.participant, visit=args.visit,
                            ui=ui, clock=clock, simulate=True, seed=args.seed, staff=staff, operator=operator,
                            truth=truth, speed=args.speed, override_reason=args.override_reason)
    else:
        outcome = run_real_visit(args, protocol, station, ui, clock, operator)
    print_result(outcome)
    write_session_plot(outcome)
    return 0 if outcome.status == "completed" else 3


def check_pilot(args: argparse.Namespace) -> None:
    """Refuse option combinations that contradict a pilot run (a person at the screen, simulated devices)."""
    from cpm_session.errors import CpmError

    if args.simulate:
        raise CpmError("--pilot and --simulate exclude each other: --pilot puts a person at the screen, "
                       "--simulate a simulated participant")
    if args.ui == "headless":
        raise CpmError("--pilot needs the participant window (--ui psychopy): a person answers the prompts")
    if args.sim_truth:
        raise CpmError("--sim-truth needs --simulate: in a pilot run a person answers")


def run_real_visit(args: argparse.Namespace, protocol: Any, station: Any, ui: Any, clock: Any, operator: str) -> Any:
    """Run a visit with a person at the screen and the station's real devices."""
    from cpm_session.devices.factory import effective_cap, open_devices
    from cpm_session.session import SessionSettings, start_visit

    cap = effective_cap(protocol.safety.thermode_cap_c, station, protocol.safety.neutral_c)
    devices = open_devices(station, cap_c=cap, neutral_c=protocol.safety.neutral_c, clock=clock,
                           zones=protocol.thermode.zones)
    settings = SessionSettings(operator=operator, seed=args.seed, staff="manual", require_licensed_wording=True)
    return start_visit(protocol, station, ui=ui, clock=clock, devices=devices, data_dir=args.data,
                       participant=args.participant, visit=args.visit, settings=settings, simulate=False,
                       speed=args.speed, override_reason=args.override_reason)
