"""Helpers for GUI tests: a display (Xvfb when DISPLAY is unset) and xdotool, to use the window like a person.

The PsychoPy window must live in the test's main thread (its GL context); a `Clicker` thread drives
the mouse and keyboard with xdotool meanwhile. Window px (origin top-left) are turned into screen px
with the window's position from `xdotool getwindowgeometry`.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "_artifacts"
SCREENS = ARTIFACTS / "screens"
SCREEN_SIZE = (1280, 800)
WINDOW_TITLE = "cpm-session participant"
HOLD_S = 0.06
"""How long a click holds the button: PsychoPy-style sliders record on release, a real finger is this slow."""

_xvfb: subprocess.Popen[bytes] | None = None


def gui_available() -> str | None:
    """Return why GUI tests cannot run here, or None when they can."""
    own = not os.environ.get("DISPLAY") or bool(os.environ.get("PYTEST_XDIST_WORKER"))
    for tool in ("xdotool",) + (("Xvfb",) if own else ()):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install -y xvfb xdotool)"
    return None


def ensure_display() -> str:
    """Return a usable DISPLAY; start `Xvfb -screen 0 1280x800x24` (once per process) when none is set.

    Under pytest-xdist every worker gets its own Xvfb even when DISPLAY is set: windows of parallel
    workers on one display would overlap, and a click could land in the other worker's window."""
    global _xvfb
    if _xvfb is not None:
        return os.environ["DISPLAY"]
    if os.environ.get("DISPLAY") and not os.environ.get("PYTEST_XDIST_WORKER"):
        return os.environ["DISPLAY"]
    r, w = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(w), "-screen", "0", f"{SCREEN_SIZE[0]}x{SCREEN_SIZE[1]}x24", "-nolisten", "tcp"],
        pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    number = b""
    deadline = time.monotonic() + 20
    with os.fdopen(r, "rb") as f:
        while not number.endswith(b"\n") and time.monotonic() < deadline:
            ch = f.read(1)
            if not ch:
                break
            number += ch
    if not number.strip():
        proc.kill()
        raise RuntimeError("Xvfb did not report a display number")
    _xvfb = proc
    os.environ["DISPLAY"] = f":{number.decode().strip()}"
    atexit.register(stop_display)
    return os.environ["DISPLAY"]


def stop_display() -> None:
    """Stop the Xvfb this process started (if any)."""
    global _xvfb
    proc, _xvfb = _xvfb, None
    if proc is not None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def display() -> str:
    """A display for PsychoPy windows: the given DISPLAY, or an Xvfb started for this test session."""
    why = gui_available()
    if why:
        pytest.skip(why)
    return ensure_display()


# --- xdotool ----------------------------------------------------------------------------------------
def xdo(*args: str | int | float) -> str:
    """Run one xdotool command; return its stdout."""
    out = subprocess.run(["xdotool", *map(str, args)], check=True, capture_output=True, text=True, timeout=10)
    return out.stdout


def find_window(title: str = WINDOW_TITLE, timeout_s: float = 10.0) -> int:
    """Return the X window id of the (newest) window whose name contains `title`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        res = subprocess.run(["xdotool", "search", "--name", title], capture_output=True, text=True, timeout=10)
        ids = [int(x) for x in res.stdout.split()]
        if ids:
            return ids[-1]
        time.sleep(0.05)
    raise AssertionError(f"no window named {title!r} appeared within {timeout_s} s")


def window_origin(wid: int) -> tuple[int, int]:
    """Return the window's top-left corner in screen px."""
    info: dict[str, str] = {}
    for line in xdo("getwindowgeometry", "--shell", wid).splitlines():
        k, _, v = line.partition("=")
        info[k] = v
    return int(info["X"]), int(info["Y"])


class Screen:
    """The participant window as seen from outside: clicks and keys in window px."""

    def __init__(self, title: str = WINDOW_TITLE) -> None:
        self.wid = find_window(title)
        self.origin = window_origin(self.wid)

    def to_screen(self, x: float, y: float) -> tuple[int, int]:
        """Turn window px into screen px."""
        return int(round(self.origin[0] + x)), int(round(self.origin[1] + y))

    def move(self, x: float, y: float) -> None:
        """Move the pointer to window px (x, y)."""
        sx, sy = self.to_screen(x, y)
        xdo("mousemove", sx, sy)

    def press_release(self, x: float, y: float, hold_s: float = HOLD_S) -> float:
        """Press and release the left button at window px (x, y); return perf_counter() when mouseup returned."""
        self.move(x, y)
        xdo("mousedown", 1)
        time.sleep(hold_s)
        xdo("mouseup", 1)
        return time.perf_counter()

    def drag(self, x0: float, x1: float, y: float, steps: int = 12, step_s: float = 0.03) -> None:
        """Press at x0, move in `steps` to x1 (pausing `step_s` each), release."""
        self.move(x0, y)
        xdo("mousedown", 1)
        for i in range(1, steps + 1):
            time.sleep(step_s)
            self.move(x0 + (x1 - x0) * i / steps, y)
        time.sleep(step_s)
        xdo("mouseup", 1)

    def key(self, *keys: str) -> None:
        """Focus the window and press `keys` (xdotool key names: space, s, Escape, Return, BackSpace)."""
        xdo("windowfocus", self.wid)
        xdo("key", "--delay", 40, *keys)

    def type(self, text: str) -> None:
        """Focus the window and type `text`."""
        xdo("windowfocus", self.wid)
        xdo("type", "--delay", 30, text)


def slider_x(geometry: dict[str, Any], fraction: float) -> tuple[float, float]:
    """Return window px of the point at `fraction` (0..1) along the logged scale line."""
    left, top, right, bottom = geometry["slider_px"]
    return left + fraction * (right - left), (top + bottom) / 2


def centre(box: list[float]) -> tuple[float, float]:
    """Return the centre of an [l, t, r, b] box."""
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


class Clicker(threading.Thread):
    """Run `script()` in a thread while the UI loop runs in the main thread; re-raise its error on `result()`."""

    def __init__(self, script: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.script = script
        self.error: BaseException | None = None
        self.value: Any = None

    def run(self) -> None:
        try:
            self.value = self.script()
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            self.error = e

    def result(self, timeout_s: float = 30.0) -> Any:
        """Wait for the script; raise what it raised."""
        self.join(timeout_s)
        assert not self.is_alive(), "the clicker script did not finish"
        if self.error is not None:
            raise self.error
        return self.value


# --- the UI as the staff and a simulated participant see it -----------------------------------------
@contextmanager
def answering(ui: Any, responder: Callable[[Any], Any] | None = None,
              chooser: Callable[[Any], Any] | None = None) -> Iterator[Any]:
    """Attach a simulated participant (`responder` for ratings, `chooser` for choices) to `ui` for a while."""
    old = ui.responder, ui.chooser
    ui.responder, ui.chooser = responder, chooser
    try:
        yield ui
    finally:
        ui.responder, ui.chooser = old


def wait_screen(ui: Any, prefix: str, timeout_s: float = 10.0) -> str:
    """Wait until the staff view says the participant sees a screen whose name starts with `prefix`
    (the UI updates it right after that screen's first frame); return that name."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        name = str(ui.status_view.state.get("screen", ""))
        if name.startswith(prefix):
            return name
        time.sleep(0.005)
    raise AssertionError(f"the participant screen did not become {prefix!r}* within {timeout_s} s")


# --- looking at screenshots -------------------------------------------------------------------------
def load_png(path: Path) -> np.ndarray:
    """Return an RGB PNG as an (h, w, 3) uint8 array."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def content_bbox(img: np.ndarray, background: str, tol: int = 24) -> tuple[int, int, int, int] | None:
    """Return (left, top, right, bottom) of every pixel that differs from `background` (#RRGGBB), or None."""
    bg = np.array([int(background[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)
    diff = np.abs(img.astype(np.int16) - bg).max(axis=2) > tol
    ys, xs = np.nonzero(diff)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
