"""`cpm-session emulate thermode|bath|algometer`: run one device emulator on a pseudo-terminal until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import time

NAME = "emulate"
HELP = ("Emulate a TCS II thermode, a bath or an algometer on a pseudo-terminal, or a Medoc Main Station on TCP "
        "(speaks the real protocol).")

MODELS = {"thermode": ("tcs2",), "bath": ("julabo", "lauda", "serial-thermometer"),
          "algometer": ("mark10", "wagner-fdx"), "medoc": ("medoc",)}
STATUS_EVERY_S = 5.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("device", choices=sorted(MODELS), help="which device to emulate")
    p.add_argument("--model", help="device model (thermode: tcs2; bath: julabo, lauda, serial-thermometer; "
                                   "algometer: mark10, wagner-fdx)")
    p.add_argument("--speed", type=float, default=1.0, help="device time runs this many times faster than wall time")
    p.add_argument("--bath-c", type=float, default=2.5, help="bath: starting water temperature, °C")
    p.add_argument("--drift", type=float, default=0.0, help="bath: drift, °C per minute")
    p.add_argument("--no-auto-press", action="store_true", help="algometer: do not repeat press cycles")
    p.add_argument("--quiet", action="store_true", help="do not print a status line every few seconds")
    p.add_argument("--tcp-port", type=int, default=20121, help="medoc: TCP port to listen on (0: any free port)")
    p.add_argument("--programs", default="40:49:0.5", help="medoc: program grid LOW:HIGH:STEP °C (codes from 16)")
    p.add_argument("--manual-start", action="store_true", help="medoc: 'Automatic Start' off (START needed)")
    p.add_argument("--strict", action="store_true",
                   help="thermode: behave as the public manual describes a real TCS II (characters less than 1 ms "
                        "apart are dropped, P in the public layout without maximum, replies without terminator)")
    p.add_argument("--p-mode", choices=["public", "command", "unknown", "silent"], default=None,
                   help="thermode: layout of the P reply (default: public with --strict, else command)")
    p.add_argument("--ignore-om", action="store_true", help="thermode: a unit whose Om limiter does not work")


def run(args: argparse.Namespace) -> int:
    from cpm_session.errors import CpmError
    from cpm_session.sim.emulators import AlgometerEmulator, BathEmulator, PtyEmulator, TcsEmulator, role_snippet

    model = args.model or MODELS[args.device][0]
    if model not in MODELS[args.device]:
        raise CpmError(f"--model for {args.device}: expected one of {list(MODELS[args.device])}, found {model!r}")
    if not args.speed > 0:
        raise CpmError(f"--speed: expected a number > 0, found {args.speed}")
    if args.device == "medoc":
        from cpm_session.commands.emulate_medoc import run_medoc

        return run_medoc(args)
    emu: PtyEmulator
    if args.device == "thermode":
        emu = TcsEmulator(args.speed, strict=args.strict, p_mode=args.p_mode, ignore_om=args.ignore_om)
    elif args.device == "bath":
        emu = BathEmulator(args.speed, model=model, start_c=args.bath_c, drift_c_per_min=args.drift, noise_c=0.02)
    else:
        emu = AlgometerEmulator(args.speed, model=model, auto_press=not args.no_auto_press)
    emu.start()
    try:
        print(f"{args.device} emulator ({model}, speed {args.speed:g}) on {emu.port}")
        print("Station snippet:\n")
        print(role_snippet(args.device, emu))
        print("Press Ctrl-C to stop.", flush=True)
        last = 0.0
        while not emu.unplugged:
            time.sleep(0.2)
            if not args.quiet and time.monotonic() - last >= STATUS_EVERY_S:
                last = time.monotonic()
                print(_status(emu), flush=True)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        emu.stop()
    return 0


def _status(emu: object) -> str:
    from cpm_session.sim.emulators import AlgometerEmulator, BathEmulator, TcsEmulator

    if isinstance(emu, TcsEmulator):
        with emu.lock:
            return (f"t={emu.now():8.1f} s  neutral {emu.neutral_c:.1f} °C  max {emu.max_c:.1f} °C  zones "
                    + " ".join(f"{t:.1f}" for t in emu.temps()) + ("  STIMULUS" if emu.stimulating else ""))
    if isinstance(emu, BathEmulator):
        return f"t={emu.now():8.1f} s  water {emu.temperature_c():.2f} °C  set point {emu.setpoint_c:.2f} °C"
    if isinstance(emu, AlgometerEmulator):
        with emu.lock:
            return f"t={emu.now():8.1f} s  load {emu.load_kpa():.0f} kPa  shown {emu.shown_kpa():.0f} kPa"
    return ""
