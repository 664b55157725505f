"""Session folders -> one tidy row per session (participant, visit, ...), with warnings, never stopping.

The event log is the truth: ratings, the cold-pressor window, withdrawal, deviations, amendments and
questionnaires are read from events.jsonl; session.json supplies the header and the engine's results
when present. CPM is recomputed from the (possibly amended) TS rating lists with the threshold of the
protocol the session recorded. Sign convention: CPM_abs = TS_pre - TS_post, positive = inhibition.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cpm_session.analysis.constants import DEFAULT_CPM_PCT_MIN_TS_PRE, DEFAULT_CPM_THRESHOLD_ABS, SIGN_TAG  # noqa: F401
from cpm_session.analysis.fidelity import summary_columns as fidelity_summary_columns  # noqa: F401
from cpm_session.analysis.summary_bath import (
    _BATH_ROW,  # noqa: F401
    ENDS_IMMERSION,  # noqa: F401
    bath_stats,  # noqa: F401
    immersions,  # noqa: F401
)
from cpm_session.analysis.summary_fields import (
    _PROTECTED,  # noqa: F401
    BASE_COLUMNS,
    CATEGORIES,  # noqa: F401
    CPM_SIGN,  # noqa: F401
    FLOAT_COLUMNS,
    INT_COLUMNS,
    META_KEYS,  # noqa: F401
    RESULT_COLUMNS,
    RESUME_EVENTS,  # noqa: F401
    TAIL_COLUMNS,
    _fields,  # noqa: F401
    _nan,  # noqa: F401
    _num,  # noqa: F401
    cpm_pct_value,  # noqa: F401
    set_dotted,  # noqa: F401
)
from cpm_session.analysis.summary_protocol import (
    ProtocolCache,  # noqa: F401
    _analysis_key,  # noqa: F401
    _recorded_threshold,  # noqa: F401
    cpm_threshold,  # noqa: F401
    default_protocol_dirs,
)
from cpm_session.analysis.summary_row import (
    _ratings_from_events,  # noqa: F401
    _stamp_of,  # noqa: F401
    read_session,  # noqa: F401
)
from cpm_session.errors import CpmError, SessionError  # noqa: F401
from cpm_session.record import derive  # noqa: F401
from cpm_session.record.folder import file_sha256, iter_session_dirs, read_events, set_path  # noqa: F401
from cpm_session.resources import resource_dir  # noqa: F401


@dataclass
class SummaryResult:
    """The summary table (one row per session folder) and the problems met while reading."""

    table: pd.DataFrame
    warnings: list[str] = field(default_factory=list)



def _integrity_verifier() -> Callable[[Path], list[str]] | None:
    try:
        mod = importlib.import_module("cpm_session.record.integrity")
    except ImportError:
        return None
    fn = getattr(mod, "verify_session", None)
    return fn if callable(fn) else None


def summarize(data_dir: str | Path, *, protocol_dirs: list[Path] | None = None,
              check_integrity: bool = True, use_cache: bool = True, workers: int | None = None) -> SummaryResult:
    """Read every session folder below `data_dir` into one row each; collect warnings instead of stopping.

    Protocol files recorded by relative path are looked for in the current directory, `data_dir`, its
    parent, the extra `protocol_dirs` and the package's `protocols/` folder.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise SessionError(f"data folder {root} does not exist or is not a folder")
    # rows cached per session under <data>/.cache/summary/ (keyed by the log's head hash), misses read in
    # parallel: analysis/summary_cache.py + record/cache.py; use_cache=False reads every folder afresh
    from cpm_session.analysis.summary_cache import read_rows

    rows, warnings, _ = read_rows(root, list(iter_session_dirs(root)), default_protocol_dirs(root, protocol_dirs),
                                  check_integrity, use_cache=use_cache, workers=workers)
    return SummaryResult(_tidy(rows), warnings)


def _tidy(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Return rows as a DataFrame with a stable column order, sorted by participant, visit, start."""
    n_pre = max((sum(k.startswith("ts_pre_") and k[7:].isdigit() for k in r) for r in rows), default=0)
    n_post = max((sum(k.startswith("ts_post_") and k[8:].isdigit() for k in r) for r in rows), default=0)
    known = set(BASE_COLUMNS) | set(RESULT_COLUMNS) | set(TAIL_COLUMNS)
    ts_cols = [f"ts_pre_{i}" for i in range(1, n_pre + 1)] + [f"ts_post_{i}" for i in range(1, n_post + 1)]
    known |= set(ts_cols)
    extra = sorted({k for r in rows for k in r} - known)
    cols = BASE_COLUMNS + ts_cols + RESULT_COLUMNS + extra + TAIL_COLUMNS
    df = pd.DataFrame.from_records(rows, columns=cols)
    for c in INT_COLUMNS:
        df[c] = df[c].astype("Int64")
    for c in (*FLOAT_COLUMNS, *(k for k in cols if k.startswith(("ts_pre_", "ts_post_")))):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    if not df.empty:
        df = df.sort_values(["participant", "visit", "start_utc"], kind="stable", na_position="last").reset_index(drop=True)
    return df
