"""Protocol fidelity, measured: how closely a visit followed its protocol, computed from its log.

`compute_fidelity(events, device_rows, plan, status=...)` returns the `fidelity` block of
session.json `results`: one entry per protocol requirement (REQUIREMENTS), each
``{"planned", "actual", "deviation", "within_limits", "status", "value", "unit", "limit", ...}``, per-trial
detail of the test stimuli, the resumes and which requirements they broke, and a session-level
`within_protocol` flag. Part of the one module family that owns derived values (`record.derive`
calls it); the session layer only logs, analysis and export only read the block (or ask this module).

Conventions:
- `status`: "ok" | "deviation" | "not_measured" (it should have happened but the log cannot show it:
  `actual` None and a `reason`, never a zero) | "not_applicable" (the protocol or visit has no such step;
  `reason`) | "info" (reported, no limit applies). `within_limits` is True for ok/info, False for a
  deviation and None otherwise. `within_protocol` is True only when no entry is a deviation or not measured.
- `deviation`: actual - planned for a point target (an onset, a duration); the distance outside the
  range for a range (bath temperature); a count or text for counts and events.
- `value`: the one number (or flag) per requirement that summaries and exports show.
- Times are session seconds (`t` of the log); temperatures °C; pressures kPa.
"""

from __future__ import annotations

from cpm_session.record.fidelity.block import (
    compute_fidelity,
    fidelity_of_folder,
)
from cpm_session.record.fidelity.fields import (
    EXPORT_NAMES,
    SESSION_FIELDS,
    export_fields,
    fidelity_columns,
)
from cpm_session.record.fidelity.immersion import (
    _cold_pressor,
    _cs_to_ts_post,
    _immersion,
)
from cpm_session.record.fidelity.reading import (
    _entry,
    _info,
    _Log,
    _missing,
    _na,
    _num,
    _of,
    _r,
    _t,
    read_device_rows,
)
from cpm_session.record.fidelity.requirements import (
    _TIME_TOL_S,
    COUNTED_KINDS,
    CUE_S,
    ENDS_SEGMENT,
    FIDELITY_PREFIX,
    FIDELITY_VERSION,
    PARTICIPANT_KINDS,
    REQUIREMENT_UNITS,
    REQUIREMENTS,
    DeviceRow,
    fidelity_plan,
)
from cpm_session.record.fidelity.stimuli import (
    _calibration,
    _delivered,
    _max_calibration_stimuli,
    _stim_end,
    _ts_block,
    onset_shift,
    pause_spans,
    paused_between,
)
from cpm_session.record.fidelity.visit import (
    _acclimatization,
    _ratings,
    _resumes,
)

__all__ = [
    "compute_fidelity", "COUNTED_KINDS", "CUE_S", "DeviceRow", "ENDS_SEGMENT", "export_fields", "EXPORT_NAMES",
    "fidelity_columns", "fidelity_of_folder", "fidelity_plan", "FIDELITY_PREFIX", "FIDELITY_VERSION", "onset_shift",
    "PARTICIPANT_KINDS", "pause_spans", "paused_between", "read_device_rows", "REQUIREMENT_UNITS", "REQUIREMENTS",
    "SESSION_FIELDS",
    # the old module's private helpers, still importable from this path (as before the split)
    "_acclimatization", "_calibration", "_cold_pressor", "_cs_to_ts_post", "_delivered", "_entry", "_immersion",
    "_info", "_Log", "_max_calibration_stimuli", "_missing", "_na", "_num", "_of", "_r", "_ratings", "_resumes",
    "_stim_end", "_t", "_TIME_TOL_S", "_ts_block",
]
