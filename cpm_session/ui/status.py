"""The staff status view: a live panel in the terminal that the participant does not see.

It shows the phase, the next staff action, countdowns, live thermode / bath / pressure readings,
the last rating, warnings (bath out of range, device not responding) and the staff key help.
It is fed by `ParticipantUI.set_status(dict)`; each call merges its keys into the shown state.

Known keys (anything else is shown as-is under "other"):
    participant, visit, operator (str); phase, next_action (str); t (session s); speed (float);
    countdowns ({label: seconds left}); thermode_c, thermode_target_c, bath_c (°C);
    bath_range ([min_c, max_c]: bath_c outside it is shown as a warning); pressure_kpa (kPa);
    last_rating (number or None, or {"phase", "trial", "value"}); warnings (list of str, replaces
    the previous list); warning (one str; empty clears it); simulate (bool); screen (what the
    participant sees; set by the UI). `set_countdown(label, until)` adds a live countdown (with `clock`).

The view never raises: with `enabled=False`, or when stdout is not a terminal, it only keeps the
state (for `render()` and tests); any error from the terminal library disables the live panel.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from cpm_session.clock import Clock
from cpm_session.ui.help import help_lines

REFRESH_PER_SECOND = 4.0
"""Live panel redraws per second."""

TITLE = "cpm-session: staff view (the participant does not see this)"

_KNOWN_KEYS = (
    "participant", "visit", "operator", "phase", "next_action", "t", "speed", "countdowns", "thermode_c",
    "thermode_target_c", "bath_c", "bath_range", "pressure_kpa", "last_rating", "warnings", "warning", "simulate",
    "screen",
)


def _fmt_seconds(seconds: Any) -> str:
    """Format a number of seconds as m:ss (rounded up, never negative); anything else as text."""
    try:
        s = max(0, math.ceil(float(seconds)))
    except (TypeError, ValueError, OverflowError):
        return str(seconds)
    return f"{s // 60}:{s % 60:02d}"


def _fmt_num(value: Any, unit: str, digits: int = 1) -> str:
    """Format a reading with its unit, or an em dash when missing."""
    if value is None:
        return "—"
    try:
        return f"{float(value):.{digits}f} {unit}"
    except (TypeError, ValueError):
        return str(value)


class StatusView:
    """Keep the staff-facing state and, in a terminal, show it as a `rich.live.Live` panel."""

    def __init__(self, *, enabled: bool = True, console: Console | None = None,
                 refresh_per_second: float = REFRESH_PER_SECOND, clock: Clock | None = None) -> None:
        self.enabled = enabled
        self.console = console
        self.refresh_per_second = refresh_per_second
        self.clock = clock
        self.state: dict[str, Any] = {}
        self._countdown: tuple[str, float] | None = None
        self._lock = threading.Lock()
        self._live: Live | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def live(self) -> bool:
        """True while the live panel is running."""
        return self._live is not None

    def start(self) -> None:
        """Start the live panel if enabled and stdout is a terminal; otherwise do nothing."""
        if not self.enabled or self._live is not None:
            return
        try:
            console = self.console or Console()
            if not console.is_terminal:
                return
            live = Live(console=console, get_renderable=self.render, refresh_per_second=self.refresh_per_second,
                        transient=False, redirect_stdout=True, redirect_stderr=True)
            live.start()
            self._live = live
        except Exception:  # a status display must never take the session down
            self._live = None

    def stop(self) -> None:
        """Stop the live panel (leaving its last picture on the terminal). Never raises."""
        live, self._live = self._live, None
        if live is not None:
            try:
                live.stop()
            except Exception:
                pass

    def __enter__(self) -> StatusView:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state -----------------------------------------------------------------------------------
    def update(self, status: dict[str, Any]) -> None:
        """Merge `status` into the shown state (a `warnings` list replaces the previous one)."""
        if not isinstance(status, dict):
            return
        with self._lock:
            self.state.update(status)
        if self._live is not None:
            try:
                self._live.refresh()
            except Exception:
                self.stop()

    def set_countdown(self, label: str | None, until: float | None) -> None:
        """Show a live countdown `label` to session time `until` (needs `clock`); None clears it."""
        with self._lock:
            self._countdown = (str(label), float(until)) if label and until is not None else None

    def warnings(self) -> list[str]:
        """Return the warnings to show: the given ones plus a bath-out-of-range one if it applies."""
        with self._lock:
            state = dict(self.state)
        given = state.get("warnings") or []
        out = [str(w) for w in (given if isinstance(given, (list, tuple)) else [given])]
        if state.get("warning"):
            out.append(str(state["warning"]))
        bath, rng = state.get("bath_c"), state.get("bath_range")
        try:
            if bath is not None and rng is not None and not (float(rng[0]) <= float(bath) <= float(rng[1])):
                text = f"bath {float(bath):.1f} °C outside {float(rng[0]):.1f}–{float(rng[1]):.1f} °C"
                if not any(text in w for w in out):
                    out.append(text)
        except (TypeError, ValueError, IndexError):
            pass
        return out

    # -- rendering -------------------------------------------------------------------------------
    def render(self) -> RenderableType:
        """Build the panel from the current state (also usable without a terminal, e.g. in tests). Never raises."""
        with self._lock:
            st = dict(self.state)
            countdown = self._countdown
        if countdown is not None and self.clock is not None:
            try:
                left = countdown[1] - self.clock.now()
                st["countdowns"] = {**(st.get("countdowns") or {}), f"{countdown[0]} ends in": left}
            except Exception:
                pass
        try:
            return self._render(st)
        except Exception as e:  # odd values must not take the staff view (or the session) down
            return Panel(Text(f"{st!r}\n(status view could not format this: {type(e).__name__}: {e})"), title=TITLE)

    def _render(self, st: dict[str, Any]) -> RenderableType:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", justify="right")
        table.add_column()
        who = " / ".join(str(st[k]) for k in ("participant", "visit", "operator") if st.get(k))
        if who:
            table.add_row("session", who + ("  [SIMULATED]" if st.get("simulate") else ""))
        if "t" in st:
            speed = st.get("speed")
            extra = f"  (x{speed:g})" if isinstance(speed, (int, float)) and speed != 1 else ""
            table.add_row("session time", _fmt_seconds(st["t"]) + extra)
        table.add_row("phase", Text(str(st.get("phase", "—")), style="bold"))
        if st.get("screen"):
            table.add_row("participant sees", str(st["screen"]))
        table.add_row("next action", Text(str(st.get("next_action") or "—"), style="bold yellow"))
        countdowns = st.get("countdowns")
        for label, left in (countdowns.items() if isinstance(countdowns, dict) else []):
            table.add_row(str(label), Text(_fmt_seconds(left), style="bold magenta"))
        therm = _fmt_num(st.get("thermode_c"), "°C")
        if st.get("thermode_target_c") is not None:
            therm += f"  (target {_fmt_num(st.get('thermode_target_c'), '°C')})"
        table.add_row("thermode", therm)
        table.add_row("bath", _fmt_num(st.get("bath_c"), "°C"))
        if st.get("pressure_kpa") is not None:
            table.add_row("pressure", _fmt_num(st.get("pressure_kpa"), "kPa", 0))
        last = st.get("last_rating")
        if isinstance(last, dict):
            val = last.get("value")
            last_text = f"{last.get('phase', '?')} #{last.get('trial', '?')}: " + ("missing" if val is None else _fmt_num(val, "", 0).strip())
        else:
            last_text = "—" if last is None else f"{last}"
        table.add_row("last rating", last_text)
        for key in sorted(k for k in st if k not in _KNOWN_KEYS):
            table.add_row(str(key), str(st[key]))
        parts: list[RenderableType] = [table]
        warns = self.warnings()
        if warns:
            parts.append(Text("\n".join(f"WARNING: {w}" for w in warns), style="bold white on red"))
        keys = Table.grid(padding=(0, 1))
        keys.add_column(style="bold")
        keys.add_column(style="dim")
        for label, text in help_lines():
            keys.add_row(label, text)
        parts.append(Panel(keys, title="keys (in the participant window)", border_style="dim"))
        return Panel(Group(*parts), title=TITLE, border_style="red" if warns else "green")
