"""What each staff key does: one table, shown in the help overlay (key `h`) and in the staff status view."""

from __future__ import annotations

from cpm_session.ui.base import STAFF_KEYS

STAFF_KEY_HELP: dict[str, str] = {
    "space": "confirm the staff step (hand in / out, next phase)",
    "s": "skip the rest of acclimatization (logged as a deviation)",
    "p": "pause / resume",
    "w": "early withdrawal: the hand came out of the water",
    "escape": "EMERGENCY STOP: thermode to neutral, end the session",
    "n": "note / adverse event (type, Enter = save, Esc = cancel)",
    "h": "show / hide this help",
}
"""Staff key -> what it does, in STAFF_KEYS order."""

assert tuple(STAFF_KEY_HELP) == STAFF_KEYS, "STAFF_KEY_HELP must describe exactly STAFF_KEYS, in order"

KEY_LABELS: dict[str, str] = {"space": "Space", "escape": "Esc"}
"""How a key name is printed (other keys print upper-cased)."""


def key_label(key: str) -> str:
    """Return the printed name of a staff key ('Space', 'Esc', 'S', ...)."""
    return KEY_LABELS.get(key, key.upper())


def help_lines() -> list[tuple[str, str]]:
    """Return (printed key, description) for every staff key, in STAFF_KEYS order."""
    return [(key_label(k), STAFF_KEY_HELP[k]) for k in STAFF_KEYS]


def help_text() -> str:
    """Return the staff key help as aligned plain-text lines."""
    width = max(len(label) for label, _ in help_lines())
    return "\n".join(f"{label.ljust(width)}  {text}" for label, text in help_lines())
