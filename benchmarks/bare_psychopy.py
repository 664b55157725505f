"""The floor for start-up: a bare PsychoPy script opening the participant window with one slider and one
text, flipping once (what `cpm-session run` shows first, without anything else). Prints `flipped` after the
flip and waits for stdin to close, so the benchmark measures it exactly like the cpm-session process.
Used by bench_startup.py; not part of cpm-session."""

from __future__ import annotations

import sys
from pathlib import Path

from psychopy import logging, visual

logging.console.setLevel(logging.ERROR)
win = visual.Window(size=[1280, 800], fullscr=False, units="height", color="#1E1E1E", colorSpace="hex",
                    winType="pyglet", allowGUI=True, title="bare psychopy", checkTiming=False, waitBlanking=True)
fonts = Path(visual.__file__).parent.parent / "assets" / "fonts"
files = [str(fonts / f) for f in ("NotoSans-Regular.ttf", "NotoSans-Bold.ttf") if (fonts / f).exists()]
text = visual.TextStim(win, text="How painful was the heat on your forearm?", pos=(0, 0.27), height=0.065,
                       color="#F0F0F0", colorSpace="hex", font="Noto Sans", fontFiles=files, wrapWidth=1.2)
slider = visual.Slider(win, ticks=(0, 100), labels=["0\nno pain", "100\nworst pain\nimaginable"], granularity=0,
                       style="rating", pos=(0, 0), size=(1.0, 0.05), units="height", labelColor="#F0F0F0",
                       markerColor="#3C8CE7", lineColor="#F0F0F0", colorSpace="hex", font="Noto Sans",
                       labelHeight=0.045, labelWrapWidth=0.4)
text.draw()
slider.draw()
win.flip()
print("flipped", flush=True)
sys.stdin.read()
win.close()
