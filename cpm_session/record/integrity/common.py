"""What every integrity check shares: the compared columns and tolerances, the error and the verdict."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from cpm_session.errors import CpmError

TORN_FILE = "events.torn"
"""Statuses of a session that is still being written, or whose process was killed before closing it."""

RATING_CHECK_COLUMNS = ("phase", "trial", "attempt", "site", "intensity", "intensity_unit", "rating", "rt_s",
                        "onset_t", "planned_onset_t", "missing", "flag")
"""ratings.csv columns compared with the `rating` events of the log (each one the event carries)."""
PPT_CHECK_COLUMNS = ("phase", "trial", "intensity")
"""ratings.csv columns compared with `ppt` events (a pressure pain threshold row: intensity = kPa)."""
TEXT_COLUMNS = ("phase", "site", "intensity_unit", "flag")
"""Events that each give one ratings.csv row, in log order (a pressure pain threshold is a `ppt` row)."""

FLOAT_TOLERANCE = 1e-9
"""Absolute/relative tolerance when comparing numbers in ratings.csv with the log (text round trip)."""


HEX64 = re.compile(r"^[0-9a-f]{64}$")



class IntegrityError(CpmError):
    """A session folder failed verification, or an amendment was refused."""


@dataclass
class VerifyResult:
    """The verdict on one session folder or adverse-event log."""

    path: Path
    kind: str  # "session" | "adverse_events"
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Return True when no problem was found (notes are not problems)."""
        return not self.problems
