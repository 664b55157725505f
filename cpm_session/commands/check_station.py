"""`cpm-session check-station FILE [--protocol FILE]`: open every device, show it, pass/fail each requirement."""

from __future__ import annotations

import argparse

NAME = "check-station"
HELP = "Open every device of a station file, print identity and readings, and check it is ready for a visit."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("station", help="station file (hardware/*.toml)")
    p.add_argument("--protocol", default=None,
                   help="protocol file: checks the bath against its cold-pressor range and uses its thermode cap "
                        "and neutral temperature (default: the one `run` uses, protocols/cpm-thermal.toml)")
    p.add_argument("--bath-window", type=float, default=3.0, help="seconds over which the bath must be stable")
    p.add_argument("--data", default="data", help="data folder: the thermode limiter result is appended to "
                                                  "DATA/station-checks.jsonl, which `run` reads (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from cpm_session.config.protocol import load_protocol
    from cpm_session.config.station import load_station
    from cpm_session.resources import DEFAULT_PROTOCOL, resolve
    from cpm_session.station_check import check_station

    station = load_station(args.station)
    protocol = load_protocol(resolve(args.protocol or DEFAULT_PROTOCOL))  # the same default as `run`
    if args.protocol is None:
        print(f"protocol: {DEFAULT_PROTOCOL} (the default of `cpm-session run`; --protocol FILE to check another)")
    report = check_station(station, protocol, bath_window_s=args.bath_window, data_dir=args.data)
    return 0 if report.ok else 1
