"""The session folder format, declared once: files, columns, header keys, event metadata, protected fields.

See ARCHITECTURE.md ("Session folder format") for what each key means.
"""

from __future__ import annotations

SESSION_FILES = ("session.json", "events.jsonl", "ratings.csv", "devices.csv")
AE_LOG = "adverse_events.jsonl"
GENESIS = "0" * 64
"""`prev` of the first line of a hash-chained log."""

META_KEYS = ("seq", "t", "wall", "event", "prev")
"""Keys every log line has besides its own fields."""

RATING_COLUMNS = ["phase", "trial", "attempt", "site", "intensity", "intensity_unit", "rating", "rt_s",
                  "onset_t", "planned_onset_t", "missing", "flag"]
DEVICE_COLUMNS = ["t", "role", "quantity", "value", "unit"]
TRACE_COLUMNS = ["t", "stimulus", "neutral_c", "zone1_c", "zone2_c", "zone3_c", "zone4_c", "zone5_c"]
"""thermode_trace.csv: the thermode's own temperature stream during each stimulus (stimulus = phase:trial)."""
CONTINUOUS_COLUMNS = ["stimulus", "t", "value"]
"""continuous_ratings.csv: every frame of a continuous rating (t from the stimulus onset, session s)."""
RATING_SOURCE_EVENTS = ("rating", "ppt")
"""Events that each give one ratings.csv row."""

STATUSES = ("running", "completed", "aborted", "paused_fault")
LIVE_STATUSES = ("running", "paused_fault")

HEADER_KEYS = ("software", "software_version", "python", "protocol", "protocol_sha256", "protocol_name",
               "protocol_version", "station", "station_name", "operator", "seed", "simulate", "speed", "staff",
               "thermode_cap_c", "sign_convention", "participant", "visit", "start_utc", "end_utc", "status",
               "log_final_sha256", "log_events", "results", "questionnaires", "resumed", "message", "amendments",
               "sim_truth", "station_sha256")
"""Keys the program writes into session.json."""

PROTECTED_FIELDS = ("log_final_sha256", "log_events", "amendments", "protocol_sha256", "software_version",
                    "start_utc", "resumed", "station_sha256", "thermode_cap_c", "status",
                    "simulate", "seed", "protocol", "station")
"""Header fields an amendment may never change: they describe the record itself, not the participant."""


def is_protected(field_path: str) -> bool:
    """Return True if an amendment of `field_path` would change a protected field or something below one."""
    return field_path.split(".")[0] in PROTECTED_FIELDS
