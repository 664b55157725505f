"""Data a trial can defend: verify session folders and amend them without rewriting history.

`verify_session` re-walks the SHA-256 chain of ``events.jsonl`` line by line, checks ``seq``
continuity, compares the log with the header's ``log_final_sha256``/``log_events`` and checks that
the derived table ``ratings.csv`` still matches the ``rating`` events. `verify_path` does the same
for a whole data folder, including each participant's ``adverse_events.jsonl``.

`amend_session` corrects a header value (a wrong visit name, a mistyped result) by appending an
``amendment`` event with the old value, the new value, a reason and the operator; earlier lines are
never edited. `apply_amendments` returns the effective header that summaries and exports use.
"""

from __future__ import annotations

from cpm_session.errors import CpmError
from cpm_session.record.folder import GENESIS, line_hash
from cpm_session.record.integrity.chain import (
    _explain_break,
    check_chain,
    check_seq,
)
from cpm_session.record.integrity.common import (
    FLOAT_TOLERANCE,
    HEX64,
    PPT_CHECK_COLUMNS,
    RATING_CHECK_COLUMNS,
    TEXT_COLUMNS,
    TORN_FILE,
    IntegrityError,
    VerifyResult,
)
from cpm_session.record.integrity.record_vs_log import (
    CLOSING_EVENTS,
    _as_float,
    _check_tables,
    _closing_status,
    _first_difference,
    _norm,
    check_record,
    phase_outputs,
    results_from_log,
)
from cpm_session.record.integrity.tables import (
    _as_rating,
    _check_devices,
    _check_header_vs_log,
    _check_ratings,
    _event_at,
    _num_equal,
    _read_header,
    read_table_bytes,
)
from cpm_session.record.integrity.verify import (
    _is_session_dir,
    verify_ae_log,
    verify_path,
    verify_session,
    verify_session_report,
)
from cpm_session.record.schema import AE_LOG, LIVE_STATUSES, RATING_SOURCE_EVENTS, SESSION_FILES

__all__ = [
    "check_chain", "check_record", "check_seq", "CLOSING_EVENTS", "FLOAT_TOLERANCE", "HEX64", "IntegrityError",
    "phase_outputs", "PPT_CHECK_COLUMNS", "RATING_CHECK_COLUMNS", "read_table_bytes", "results_from_log", "TEXT_COLUMNS",
    "TORN_FILE", "verify_ae_log", "verify_path", "verify_session", "verify_session_report", "VerifyResult",
    # names the old module imported from elsewhere, still importable from this path (as before the split)
    "AE_LOG", "CpmError", "GENESIS", "line_hash", "LIVE_STATUSES", "RATING_SOURCE_EVENTS", "SESSION_FILES",
    # the old module's private helpers, still importable from this path (as before the split)
    "_as_float", "_as_rating", "_check_devices", "_check_header_vs_log", "_check_ratings", "_check_tables",
    "_closing_status", "_event_at", "_explain_break", "_first_difference", "_is_session_dir", "_norm", "_num_equal",
    "_read_header",
]
