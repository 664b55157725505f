"""`cpm-session emulate medoc`: a Medoc Main Station (external control over TCP) until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import time

STATUS_EVERY_S = 5.0


def run_medoc(args: argparse.Namespace) -> int:
    """Serve MMS external control on `--tcp-port` with a grid of Ramp & Hold programs; print a station table."""
    from cpm_session.errors import CpmError
    from cpm_session.sim.emulators.medoc import MedocEmulator, grid_programs

    try:
        lo, hi, step = (float(x) for x in str(args.programs).split(":"))
        programs = grid_programs(lo, hi, step)
    except ValueError as e:
        raise CpmError(f"--programs: expected LOW:HIGH:STEP in °C with at most 240 programs, found "
                       f"{args.programs!r} ({e})") from None
    if not 0 <= args.tcp_port <= 65535:
        raise CpmError(f"--tcp-port: expected 0..65535, found {args.tcp_port}")
    try:
        emu = MedocEmulator(args.speed, programs=programs, port=args.tcp_port, auto_start=not args.manual_start)
    except OSError as e:
        raise CpmError(f"--tcp-port {args.tcp_port}: cannot listen ({e.strerror or e})") from None
    emu.start()
    try:
        print(f"Medoc MMS emulator (speed {args.speed:g}) on {emu.address}, {len(programs)} programs")
        print("Station snippet:\n")
        print(emu.station_snippet())
        print("Press Ctrl-C to stop.", flush=True)
        last = 0.0
        while True:
            time.sleep(0.2)
            if not args.quiet and time.monotonic() - last >= STATUS_EVERY_S:
                last = time.monotonic()
                print(f"t={emu.now():8.1f} s  {emu.state:9s}  {emu.temperature_c():.2f} °C  "
                      f"stimuli {len(emu.stimuli)}", flush=True)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        emu.stop()
    return 0
