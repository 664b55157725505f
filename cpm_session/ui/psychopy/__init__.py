"""The participant screen in a PsychoPy window.

window.py (PsychoPyUI: open/close, the frame loop, keys, screenshots, status), layout.py (geometry,
px <-> height units, screen styles), stims.py (the reusable stimuli), rating.py (RatingScreen, the
continuous rating), choice.py (multiple choice), entry.py (the staff's text box).
PsychoPy itself is imported only when the window opens.
"""

from cpm_session.ui.psychopy.window import PsychoPyUI

__all__ = ["PsychoPyUI"]
