"""Pain-60 calibration: pure procedures (no I/O, no clock) that the session phase loops.

    proc = make_procedure(cfg.method, cfg, cap_c=cap, available_targets_c=None, rng=np.random.default_rng(seed))
    while (step := proc.next()) is not None:        # step.temp_c, step.stage in {"series", "verification"}
        proc.add(step.temp_c, rating)               # rating 0-100 or None (missing)
    res = proc.result()                              # res.outcome ok | not_reached | failed, res.ts_c, res.as_dict()

Methods: "bayes" (default; `bayes.py`), "ascending" and "staircase" (`classic.py`); the shared rules and
the verification are in `base.py`. `legacy.py` keeps the pre-issue-15 classes the engine drives until the
session layer is wired to the interface above (`make_procedure(method, start_c=..., ...)`, old keywords).
"""

from __future__ import annotations

from typing import overload

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
from cpm_session.calibration.legacy import AscendingSeries, Fit, Staircase, fit_target, refine

METHODS: dict[str, type[ProcedureBase]] = {
    "bayes": BayesProcedure, "ascending": AscendingProcedure, "staircase": StaircaseProcedure,
}

__all__ = [
    "MAX_MISSED", "METHODS", "AscendingProcedure", "AscendingSeries", "BayesProcedure", "CalibrationResult",
    "CalibrationSettings", "Fit", "ProcedureBase", "Settings", "Staircase", "StaircaseProcedure", "Step",
    "Verification", "fit_target", "make_procedure", "refine",
]


@overload
def make_procedure(method: str, cfg: CalibrationSettings, *, cap_c: float,
                   available_targets_c: list[float] | None = None,
                   rng: np.random.Generator | None = None) -> ProcedureBase: ...


@overload
def make_procedure(method: str, cfg: None = None, *, cap_c: float, start_c: float, step_c: float,
                   stop_rating: float, target: float, trials: int) -> AscendingSeries | Staircase: ...


def make_procedure(method: str, cfg: CalibrationSettings | None = None, *, cap_c: float,
                   available_targets_c: list[float] | None = None, rng: np.random.Generator | None = None,
                   start_c: float | None = None, step_c: float | None = None, stop_rating: float | None = None,
                   target: float | None = None, trials: int | None = None) -> ProcedureBase | AscendingSeries | Staircase:
    """Return the calibration procedure `method` ("bayes" | "ascending" | "staircase") for `cfg`.

    `cap_c`: the thermode cap of this visit; `available_targets_c`: the temperatures the thermode can
    deliver (a Medoc program grid) or None for any; `rng`: the randomness of the stimulus order.
    Without `cfg` (old keyword form, used by engine.py until it is wired) return the legacy series;
    "bayes" then falls back to the legacy ascending series.
    """
    if cfg is not None:
        cls = METHODS.get(method)
        if cls is None:
            raise ValueError(f"unknown calibration method {method!r}; expected one of {sorted(METHODS)}")
        return cls(cfg, cap_c=cap_c, available_targets_c=available_targets_c, rng=rng)
    if start_c is None or step_c is None or stop_rating is None or target is None or trials is None:
        raise ValueError("make_procedure: give a calibration settings object (cfg)")
    if method in ("ascending", "bayes"):
        return AscendingSeries(start_c, step_c, stop_rating, cap_c)
    if method == "staircase":
        return Staircase(start_c, step_c, target, cap_c, trials)
    raise ValueError(f"unknown calibration method {method!r}")
