"""`cpm-session validate FILE...`: check protocol (or station) files without running anything."""

from __future__ import annotations

import argparse

NAME = "validate"
HELP = "Check protocol or station files and report the first problem in each."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", help="protocol files (protocols/*.toml) or station files (hardware/*.toml)")


def run(args: argparse.Namespace) -> int:
    from cpm_session.config.files import ConfigReadError, read_toml
    from cpm_session.config.protocol import load_protocol
    from cpm_session.config.station import load_station
    from cpm_session.errors import CpmError
    from cpm_session.resources import resolve

    bad = 0
    for name in args.files:
        f = resolve(name)
        try:
            try:
                data, _sha = read_toml(f)
                is_station = "thermode" in data and "protocol" not in data
            except ConfigReadError:
                is_station = False  # load_protocol reports the problem
            if is_station:
                st = load_station(f)
                print(f"OK  {name}: station '{st.station.name}' (thermode {st.thermode.model}, bath {st.bath.model}, "
                      f"algometer {st.algometer.model}), sha256 {st.sha256[:12]}…")
            else:
                pr = load_protocol(f)
                print(f"OK  {name}: protocol {pr.protocol.name} {pr.protocol.version}, sha256 {pr.sha256[:12]}…")
        except CpmError as e:
            bad += 1
            print(f"BAD {e}")
    return 1 if bad else 0
