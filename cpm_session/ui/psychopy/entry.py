"""The staff's one-line text box (note / adverse event), drawn over the current participant screen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cpm_session.ui.psychopy import layout as L

if TYPE_CHECKING:
    from cpm_session.ui.psychopy.window import PsychoPyUI

HINT = "Enter = save    Esc = cancel    (staff only)"


def ask_text(ui: PsychoPyUI, title: str) -> str | None:
    """Let the staff type a line over the current screen; return the stripped text, or None when
    cancelled or empty.

    Enter saves, Escape cancels, Backspace deletes. While typing, keys are text: keys typed on the
    keyboard are NOT delivered to `key_handler` (so 's' does not skip); keys queued by software with
    `press()` still are (a simulated staff member's Escape still stops the session)."""
    from pyglet.window import key as pkey

    buf: list[str] = []
    done: dict[str, bool] = {}

    def on_text(text: str) -> None:
        buf.extend(ch for ch in text if ch.isprintable())

    def on_text_motion(motion: int) -> None:
        if motion == pkey.MOTION_BACKSPACE and buf:
            buf.pop()

    def on_key_press(symbol: int, modifiers: int) -> bool | None:
        if symbol in (pkey.RETURN, pkey.ENTER):
            done["ok"] = True
            return True
        if symbol == pkey.ESCAPE:
            done["ok"] = False
            return True
        return None

    st = ui.stims
    th = st.text_height
    wrap = L.ENTRY_BOX[0] * 0.9
    box = st.rect(width=L.ENTRY_BOX[0], height=L.ENTRY_BOX[1], fill=L.ENTRY_FILL, line=st.accent, line_width=3)
    head = st.text(title, pos=(0, 0.11), height=th * 0.6, color=st.accent, bold=True, wrap=wrap)
    body = st.text("_", pos=(0, 0.0), height=th * 0.55, wrap=wrap)
    hint = st.text(HINT, pos=(0, -0.12), height=th * 0.4, color=L.DISABLED_TEXT, wrap=wrap)

    def overlay() -> None:
        text = "".join(buf) + "_"
        if body.text != text:
            body.text = text
        box.draw()
        head.draw()
        body.draw()
        hint.draw()

    handle = ui.win.winHandle
    ui._event.clearEvents()
    handle.push_handlers(on_text=on_text, on_text_motion=on_text_motion, on_key_press=on_key_press)
    ui._overlays.append(overlay)
    view, name = ui._active_view, ui._active_name
    try:
        while "ok" not in done:
            ui._frame(view, "ask_text", staff_keys=False)
    finally:
        ui._overlays.remove(overlay)
        handle.remove_handlers(on_text=on_text, on_text_motion=on_text_motion, on_key_press=on_key_press)
        ui._event.clearEvents()
        ui._mouse.clear()
        ui._active_view, ui._active_name = view, name
    text = "".join(buf).strip()
    return text if done["ok"] and text else None
