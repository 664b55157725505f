"""The thermode's absolute limits and the rule for the cap in force, in one place.

Every layer that checks a temperature (protocol and station validation, the session, every driver) asks
this module; nothing else defines a temperature limit.
"""

from __future__ import annotations

import math

from cpm_session.errors import SafetyLimitError

ABSOLUTE_MAX_C = 50.0
"""No thermode target may ever exceed this, whatever a protocol or station says."""

ABSOLUTE_MIN_C = 0.0


def check_cap(cap_c: float) -> None:
    """Raise SafetyLimitError if a configured cap is not a finite temperature in (0, ABSOLUTE_MAX_C]."""
    if not (isinstance(cap_c, int | float) and math.isfinite(cap_c) and ABSOLUTE_MIN_C < cap_c <= ABSOLUTE_MAX_C):
        raise SafetyLimitError(f"thermode cap {cap_c} °C is outside (0, {ABSOLUTE_MAX_C}] °C")


def effective_cap(protocol_cap_c: float, station_cap_c: float, neutral_c: float | None = None) -> float:
    """Return the cap in force: the lower of the protocol's and the station's; refuse one above 50 °C
    or, when `neutral_c` is given, one that does not lie above the neutral temperature."""
    cap = min(float(protocol_cap_c), float(station_cap_c))
    check_cap(cap)
    if neutral_c is not None and cap <= neutral_c:
        raise SafetyLimitError(f"thermode cap {cap:.1f} °C is not above the neutral temperature {neutral_c:.1f} °C: "
                               "no heat stimulus can be given; check the station's max_thermode_c and the protocol")
    return cap


def check_target(target_c: float, cap_c: float, *, who: str = "thermode") -> None:
    """Raise SafetyLimitError unless `target_c` is finite and within [ABSOLUTE_MIN_C, cap_c]."""
    if not (math.isfinite(target_c) and ABSOLUTE_MIN_C <= target_c <= min(cap_c, ABSOLUTE_MAX_C)):
        raise SafetyLimitError(f"{who}: target {target_c:.2f} °C refused, cap is {cap_c:.1f} °C")
