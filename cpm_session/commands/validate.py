"""`cpm-session validate FILE...`: check protocol (or station) files without running anything."""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

NAME = "validate"
HELP = "Check protocol or station files and report the first problem in each."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", help="protocol files (protocols/*.toml) or station files (hardware/*.toml)")


def run(args: argparse.Namespace) -> int:
    from cpm_session.config.protocol import load_protocol
    from cpm_session.config.station import load_station
    from cpm_session.errors import CpmError

    bad = 0
    for f in args.files:
        try:
            try:
                is_station = "thermode" in tomllib.loads(Path(f).read_text(encoding="utf-8")) and "protocol" not in tomllib.loads(Path(f).read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
                is_station = False
            if is_station:
                st = load_station(f)
                print(f"OK  {f}: station '{st.station.name}' (thermode {st.thermode.model}, bath {st.bath.model}, algometer {st.algometer.model})")
            else:
                pr = load_protocol(f)
                print(f"OK  {f}: protocol {pr.protocol.name} {pr.protocol.version}, sha256 {pr.sha256[:12]}…")
        except CpmError as e:
            bad += 1
            print(f"BAD {e}")
    return 1 if bad else 0
