"""The Medoc part of `check-station`: MMS reachable, its state, the reported temperature, every mapped program.

Selecting a program starts MMS's pre-test (no stimulus: the programs wait for a trigger); each one is
aborted at once. Keep the thermode off the skin during the check.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from cpm_session.errors import CpmError

NEUTRAL_TOLERANCE_C = 0.5

Line = Callable[[Any, Callable[[str], None], str, str, bool, str], None]


def check_medoc(dev: Any, rep: Any, cap_c: float, neutral_c: float, emit: Callable[[str], None], line: Line) -> None:
    """Add the Medoc checks of connected `dev` (a MedocThermode) to `rep`; one line per requirement."""
    from cpm_session.devices.medoc import MedocSafeMode

    info = dev.info
    extra = info.extra if info is not None else {}
    sys_state = extra.get("system_state", "?")
    line(rep, emit, "thermode", "MMS state", sys_state == "READY",
         f"system {sys_state}, test {extra.get('test_state', '?')}, {extra.get('layout', '?')} response layout, "
         f"length {extra.get('length_order', '?')}-endian"
         + ("" if sys_state == "READY" else " (expected READY: select the patient and click 'Go to Test' so MMS "
            "listens for programs)"))
    try:
        r = dev.read()
    except CpmError as e:
        line(rep, emit, "thermode", "temperature", False, str(e))
        return
    t = r.mean_c
    if math.isnan(t):
        rep.add("thermode", "at neutral", None, "this MMS version reports no temperature (short layout)")
        emit("SKIP thermode: at neutral: this MMS version reports no temperature (short layout)")
    else:
        line(rep, emit, "thermode", "at neutral", abs(t - neutral_c) <= NEUTRAL_TOLERANCE_C,
             f"MMS reports {t:.2f} °C, neutral {neutral_c:.1f} ± {NEUTRAL_TOLERANCE_C} °C")
    temps = dev.available_targets_c()
    skipped = [x for x in dev.s.programs if x not in temps]
    if skipped:
        rep.add("thermode", "programs above cap", None, f"{len(skipped)} not checked (above {cap_c:.1f} °C)")
        emit(f"SKIP thermode: programs {', '.join(f'{x:g}' for x in skipped)} °C are above the cap {cap_c:.1f} °C")
    bad = 0
    for temp in temps:
        code = dev.s.programs[temp]
        try:
            dev.try_program(temp)
        except MedocSafeMode as e:
            line(rep, emit, "thermode", "external control", False, str(e))
            return
        except CpmError as e:
            bad += 1
            line(rep, emit, "thermode", f"program {temp:g} °C", False, f"code {code}: {e}")
    line(rep, emit, "thermode", "programs selectable", bad == 0,
         f"{len(temps) - bad} of {len(temps)} mapped programs selected and aborted "
         f"({', '.join(f'{x:g}' for x in temps[:3])}{' ...' if len(temps) > 3 else ''} °C)")
