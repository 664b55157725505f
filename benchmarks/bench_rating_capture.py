"""How fast a real mouse release on the rating scale becomes a rating, in a real PsychoPy window under Xvfb.

For each of N prompts an xdotool thread presses the scale at a random point, releases it, then clicks
Confirm, while `PsychoPyUI.rate()` runs in the main thread. Reported, in wall ms (median / 95th pct / max):

  capture  : xdotool `mouseup` on the scale returned  ->  the UI received the release (value chosen)
  return   : xdotool `mouseup` on Confirm returned    ->  rate() returned the RatingResult
  spawn    : the cost of starting xdotool itself (spawn -> return), an upper bound on how much earlier
             the release really happened than "mouseup returned"

and the rating error against the clicked fraction (points on 0-100).

Run:  .venv/bin/python benchmarks/bench_rating_capture.py [--n 20]
(starts its own Xvfb when DISPLAY is unset; needs xvfb and xdotool).
"""

from __future__ import annotations

import argparse
import json
import queue
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cpm_session.clock import RealClock  # noqa: E402
from cpm_session.protocol import load_protocol  # noqa: E402
from cpm_session.ui.base import RatingPrompt  # noqa: E402
from cpm_session.ui.status import StatusView  # noqa: E402
from tests.gui_helpers import Clicker, Screen, centre, ensure_display, slider_x, xdo  # noqa: E402

HOLD_S = 0.05
GAP_S = 0.12


def summary(values_ms: list[float]) -> dict[str, float]:
    """Median, 95th percentile and max of a list of ms."""
    s = sorted(values_ms)
    return {"median_ms": round(statistics.median(s), 2), "p95_ms": round(s[min(len(s) - 1, int(0.95 * len(s)))], 2),
            "max_ms": round(s[-1], 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="number of ratings (default 20)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    ensure_display()
    from psychopy import core

    from cpm_session.ui.psychopy import PsychoPyUI

    protocol = load_protocol(ROOT / "protocols" / "cpm-thermal.toml")
    t = protocol.texts
    ui = PsychoPyUI(protocol, RealClock(1.0), fullscreen=False, size=(1280, 800), status=StatusView(enabled=False))
    ui.open()
    ui.show("welcome", t.welcome)
    ui.tick()
    screen = Screen()
    rng = random.Random(args.seed)
    offset = core.getTime() - time.perf_counter()  # PsychoPy clock -> perf_counter
    capture, ret, spawn, err = [], [], [], []
    try:
        for i in range(args.n + 1):  # the first one is a warm-up and not counted
            fraction = rng.uniform(0.05, 0.95)
            shown: queue.Queue[dict[str, Any]] = queue.Queue()
            ui.on_prompt = lambda _p, g, q=shown: q.put(g)

            def script(fraction: float = fraction, shown: queue.Queue[dict[str, Any]] = shown) -> dict[str, float]:
                geom = shown.get(timeout=10)
                time.sleep(GAP_S)
                screen.move(*slider_x(geom, fraction))
                xdo("mousedown", 1)
                time.sleep(HOLD_S)
                t_spawn = time.perf_counter()
                xdo("mouseup", 1)
                t_up = time.perf_counter()
                time.sleep(GAP_S)
                screen.move(*centre(geom["confirm_px"]))
                xdo("mousedown", 1)
                time.sleep(HOLD_S)
                xdo("mouseup", 1)
                return {"spawn": t_spawn, "up": t_up, "confirm_up": time.perf_counter()}

            clicker = Clicker(script)
            clicker.start()
            prompt = RatingPrompt("bench", i, t.rate_heat, t.anchor_low, t.anchor_high, t.confirm, 10.0)
            result = ui.rate(prompt, None)
            t_return = time.perf_counter()
            times = clicker.result()
            if result.value is None:
                raise SystemExit(f"rating {i} was missed (time-out)")
            if i == 0:
                continue
            released = ui.last_capture["released"] - offset
            capture.append((released - times["up"]) * 1000)
            ret.append((t_return - times["confirm_up"]) * 1000)
            spawn.append((times["up"] - times["spawn"]) * 1000)
            err.append(abs(result.value - 100 * fraction))
    finally:
        ui.close()
    report = {"n": args.n, "capture": summary(capture), "return": summary(ret), "xdotool_spawn": summary(spawn),
              "rating_error_points": {"median": round(statistics.median(err), 3), "max": round(max(err), 3)},
              "frame_cap_fps": ui.max_fps}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
