"""Summary columns, value helpers and CPM_pct: what every part of `summarize` shares.

Split from `cpm_session.analysis.summarize`, which re-exports every name here.
"""

from __future__ import annotations

import math
from typing import Any

from cpm_session.analysis.constants import SIGN_TAG
from cpm_session.record import derive
from cpm_session.record.folder import set_path

BASE_COLUMNS = [
    "participant", "visit", "date", "start_utc", "status", "log_complete", "protocol", "protocol_name",
    "protocol_sha256", "ts_modality", "ts_intensity", "ts_unit", "pain60_c", "ppt_kpa",
]
RESULT_COLUMNS = [
    "ts_pre", "ts_post", "cpm_abs", "cpm_pct", "cpm_pct_note", "cpm_pct_min_ts_pre", "cpm_srd95_abs", "cpm_sign", "cpm_category", "cpm_threshold_abs", "cpm_threshold_source",
    "cs_rating_30s", "cs_rating_flag", "bath_mean_c", "bath_min_c", "bath_max_c", "bath_n", "withdrawal_s",
    "early_withdrawal",
]
TAIL_COLUMNS = [
    "n_deviations", "deviations", "missing_ts_pre", "missing_ts_post", "missing_cs_rating", "missing",
    "resumed", "amended", "amendments", "integrity_ok", "log_events", "path",
]
META_KEYS = ("seq", "t", "wall", "event", "prev")
INT_COLUMNS = ("bath_n", "n_deviations", "missing_ts_pre", "missing_ts_post", "log_events")
_PROTECTED: tuple[str, ...]
try:
    from cpm_session.record.schema import PROTECTED_FIELDS as _PROTECTED
except ImportError:  # the integrity module is optional
    _PROTECTED = ("log_final_sha256", "log_events", "amendments", "protocol_sha256", "software_version")
CATEGORIES = ("inhibition", "none", "facilitation")
CPM_SIGN = "TS_pre - TS_post " + SIGN_TAG
"""Written in every summary row so a CSV read on its own still says which way CPM points."""
RESUME_EVENTS = ("resume_session", "session_resumed")
"""Events that mark a session continued after an interruption (besides the header's `resumed_from`)."""
FLOAT_COLUMNS = ("ts_intensity", "pain60_c", "ppt_kpa", "ts_pre", "ts_post", "cpm_abs", "cpm_pct", "cpm_threshold_abs",
                 "cpm_pct_min_ts_pre", "cpm_srd95_abs",
                 "cs_rating_30s", "bath_mean_c", "bath_min_c", "bath_max_c", "withdrawal_s")


def cpm_pct_value(cpm_abs: float | None, ts_pre: float | None, min_ts_pre: float) -> tuple[float | None, str]:
    """Return (CPM_pct, note) as record.derive computes it (None with a note below the TS_pre floor)."""
    if cpm_abs is None or ts_pre is None:
        return None, "TS_pre or TS_post missing"
    r = derive.cpm_values(ts_pre, ts_pre - cpm_abs, 0.0, min_ts_pre)
    return r["cpm_pct"], r["cpm_pct_note"]


def _nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def _num(x: Any) -> float | None:
    """Return `x` as float, or None for missing / empty / non-numeric / NaN (±inf kept: see derive.as_number)."""
    return derive.as_number(x, keep_inf=True)


def _fields(ev: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ev.items() if k not in META_KEYS}


# ---------------------------------------------------------------------------------------------- dotted paths
def set_dotted(obj: dict[str, Any], path: str, value: Any) -> None:
    """Set `obj[a][b][c] = value` for `path` "a.b.c", creating dicts on the way."""
    set_path(obj, path.split("."), value)
