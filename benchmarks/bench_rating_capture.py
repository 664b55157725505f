"""How fast real mouse input on the rating scale becomes a rating, in a real PsychoPy window under Xvfb.

Prompt ratings: for each of N prompts an xdotool thread presses the scale at a random point, releases
it, then clicks Confirm, while `PsychoPyUI.rate()` runs in the main thread. The times come from the
public RatingResult: `chosen_t` (session time the UI received the release) and `chosen_flip_t` (the
flip of the first frame that showed the value), on a RealClock(1.0), so session s = wall s. Reported,
in wall ms (median / 95th pct / max):

  capture  : xdotool `mouseup` on the scale returned  ->  the UI received the release (value chosen)
  shown    : xdotool `mouseup` on the scale returned  ->  flip of the first frame showing the value
  return   : xdotool `mouseup` on Confirm returned    ->  rate() returned the RatingResult
  spawn    : the cost of starting xdotool itself (spawn -> return), an upper bound on how much earlier
             the release really happened than "mouseup returned"

and the rating error against the clicked fraction (points on 0-100).

Continuous rating: during one `start_continuous()` an xdotool thread drags the marker to M random
places (`mousemove --sync`, so "returned" means the pointer is there); reported: pointer there -> flip
of the first frame whose sample shows the new place (±1 point), and the frame interval.

Run:  .venv/bin/python benchmarks/bench_rating_capture.py [--n 20] [--moves 40]
(starts its own Xvfb when DISPLAY is unset; needs xvfb and xdotool).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cpm_session.clock import RealClock  # noqa: E402
from cpm_session.config.protocol import load_protocol  # noqa: E402
from cpm_session.ui.base import RatingPrompt  # noqa: E402
from cpm_session.ui.status import StatusView  # noqa: E402
from tests.gui_helpers import Clicker, Screen, centre, ensure_display, slider_x, wait_screen, xdo  # noqa: E402

HOLD_S = 0.05
GAP_S = 0.12
MOVE_HOLD_S = 0.1


def summary(values_ms: list[float]) -> dict[str, float]:
    """Median, 95th percentile and max of a list of ms."""
    s = sorted(values_ms)
    return {"median_ms": round(statistics.median(s), 2), "p95_ms": round(s[min(len(s) - 1, int(0.95 * len(s)))], 2),
            "max_ms": round(s[-1], 2)}


def prompt_ratings(ui: Any, screen: Screen, n: int, rng: random.Random) -> dict[str, Any]:
    """Click N prompts; return the capture / shown / return / spawn figures and the rating error."""
    t = ui.protocol.texts
    clock = ui.clock
    capture, shown, ret, spawn, err = [], [], [], [], []
    for i in range(n + 1):  # the first one is a warm-up and not counted
        fraction = rng.uniform(0.05, 0.95)
        prompt = RatingPrompt("bench", i, t.rate_heat, t.anchor_low, t.anchor_high, t.confirm, 10.0)
        geom = ui.prompt_geometry(prompt)

        def script(fraction: float = fraction, geom: dict[str, Any] = geom) -> dict[str, float]:
            wait_screen(ui, "rating_heat")
            time.sleep(GAP_S)
            screen.move(*slider_x(geom, fraction))
            xdo("mousedown", 1)
            time.sleep(HOLD_S)
            t_spawn = clock.now()
            xdo("mouseup", 1)
            t_up = clock.now()
            time.sleep(GAP_S)
            screen.move(*centre(geom["confirm_px"]))
            xdo("mousedown", 1)
            time.sleep(HOLD_S)
            xdo("mouseup", 1)
            return {"spawn": t_spawn, "up": t_up, "confirm_up": clock.now()}

        clicker = Clicker(script)
        clicker.start()
        result = ui.rate(prompt)
        t_return = clock.now()
        times = clicker.result()
        if result.value is None or result.chosen_t is None:
            raise SystemExit(f"rating {i} was missed (time-out)")
        if i == 0:
            continue
        capture.append((result.chosen_t - times["up"]) * 1000)
        if result.chosen_flip_t is not None:
            shown.append((result.chosen_flip_t - times["up"]) * 1000)
        ret.append((t_return - times["confirm_up"]) * 1000)
        spawn.append((times["up"] - times["spawn"]) * 1000)
        err.append(abs(result.value - 100 * fraction))
    return {"n": n, "capture": summary(capture), "shown": summary(shown), "return": summary(ret),
            "xdotool_spawn": summary(spawn),
            "rating_error_points": {"median": round(statistics.median(err), 3), "max": round(max(err), 3)}}


def continuous(ui: Any, screen: Screen, moves: int, rng: random.Random) -> dict[str, Any]:
    """Drag the live slider to `moves` random places; return move -> first frame showing it, and the frame interval."""
    t = ui.protocol.texts
    clock = ui.clock
    prompt = RatingPrompt("bench", 0, t.rate_heat, t.anchor_low, t.anchor_high, t.confirm, 10.0)
    geom = ui.prompt_geometry(prompt)
    fractions = [rng.uniform(0.05, 0.95) for _ in range(moves)]

    def script() -> list[tuple[float, float]]:
        wait_screen(ui, "continuous_heat")
        done = []
        screen.move(*slider_x(geom, 0.0))
        xdo("mousedown", 1)
        for f in fractions:
            sx, sy = screen.to_screen(*slider_x(geom, f))
            xdo("mousemove", "--sync", sx, sy)
            done.append((clock.now(), 100 * f))
            time.sleep(MOVE_HOLD_S)
        xdo("mouseup", 1)
        return done

    onset = clock.now()
    ui.start_continuous(prompt, "bench", onset)
    clicker = Clicker(script)
    clicker.start()
    try:
        while clicker.is_alive():
            ui.tick()
        ui.tick()
    finally:
        samples = ui.stop_continuous()
    done = clicker.result()
    late, missed = [], 0
    for i, (at, value) in enumerate(done):
        until = done[i + 1][0] if i + 1 < len(done) else float("inf")
        hit = next((s for s, v in samples if at - onset < s < until - onset and abs(v - value) <= 1.0), None)
        if hit is None:
            missed += 1
        else:
            late.append((hit - (at - onset)) * 1000)
    times = [s for s, _ in samples]
    frame = statistics.median(b - a for a, b in zip(times, times[1:]))
    return {"moves": moves, "shown": summary(late), "missed": missed, "frame_ms": round(frame * 1000, 2),
            "samples": len(samples)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="number of prompt ratings (default 20)")
    ap.add_argument("--moves", type=int, default=40, help="number of continuous-rating moves (default 40)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    ensure_display()
    from cpm_session.ui.psychopy import PsychoPyUI

    protocol = load_protocol(ROOT / "protocols" / "cpm-thermal.toml")
    ui = PsychoPyUI(protocol, RealClock(1.0), fullscreen=False, size=(1280, 800), status=StatusView(enabled=False))
    ui.open()
    ui.show("welcome", protocol.texts.welcome)
    ui.tick()
    screen = Screen()
    rng = random.Random(args.seed)
    try:
        report = prompt_ratings(ui, screen, args.n, rng)
        report["continuous"] = continuous(ui, screen, args.moves, rng)
    finally:
        ui.close()
    report["frame_cap_fps"] = ui.max_fps
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
