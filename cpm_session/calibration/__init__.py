"""Pain-60 calibration: pure procedures (no I/O, no clock) that the session phase loops.

    proc = make_procedure(cfg.method, cfg, cap_c=cap, available_targets_c=None, rng=np.random.default_rng(seed))
    while (step := proc.next()) is not None:        # step.temp_c, step.stage in {"series", "verification"}
        proc.add(step.temp_c, rating)               # rating 0-100 or None (missing)
    res = proc.result()                              # res.outcome ok | not_reached | failed, res.ts_c, res.as_dict()

Methods: "bayes" (default; `bayes.py`), "ascending" and "staircase" (`classic.py`); the shared rules and
the verification are in `base.py`; the least-squares fit and the refinement step are in `fit.py`.
"""

from __future__ import annotations

import numpy as np

from cpm_session.calibration.base import (
    MAX_MISSED,
    CalibrationResult,
    CalibrationSettings,
    ProcedureBase,
    Settings,
    Step,
    Verification,
)
from cpm_session.calibration.bayes import BayesProcedure
from cpm_session.calibration.classic import AscendingProcedure, StaircaseProcedure
from cpm_session.calibration.fit import Fit, fit_target, refine

METHODS: dict[str, type[ProcedureBase]] = {
    "bayes": BayesProcedure, "ascending": AscendingProcedure, "staircase": StaircaseProcedure,
}

__all__ = [
    "MAX_MISSED", "METHODS", "AscendingProcedure", "BayesProcedure", "CalibrationResult",
    "CalibrationSettings", "Fit", "ProcedureBase", "Settings", "StaircaseProcedure", "Step",
    "Verification", "fit_target", "make_procedure", "refine",
]


def make_procedure(method: str, cfg: CalibrationSettings, *, cap_c: float,
                   available_targets_c: list[float] | None = None, rng: np.random.Generator | None = None) -> ProcedureBase:
    """Return the calibration procedure `method` ("bayes" | "ascending" | "staircase") for `cfg`.

    `cap_c`: the thermode cap of this visit; `available_targets_c`: the temperatures the thermode can
    deliver (a Medoc program grid) or None for any; `rng`: the randomness of the stimulus order."""
    cls = METHODS.get(method)
    if cls is None:
        raise ValueError(f"unknown calibration method {method!r}; expected one of {sorted(METHODS)}")
    return cls(cfg, cap_c=cap_c, available_targets_c=available_targets_c, rng=rng)
