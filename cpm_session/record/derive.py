"""Every derived value of a session, computed here and nowhere else.

TS means, CPM_abs / CPM_pct and the CPM category, the ratings.csv row of a logged rating, the bath
statistics of an immersion and the assembled `results` block of session.json. The session layer, the
verifier, summarize, the exports and the simulators all ask this module. Sign convention: positive
CPM = inhibition. The protocol values a derivation used are stored with the results (`derivation`), so a
reader never has to find the protocol file again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cpm_session.record.schema import RATING_COLUMNS

SIGN_CONVENTION = "positive CPM = inhibition"
DEFAULT_CPM_THRESHOLD_ABS = 5.0
"""Used only for sessions that recorded no threshold (written before thresholds were stored)."""


def as_number(x: Any, *, keep_inf: bool = False) -> float | None:
    """Return `x` as a finite float, or None for missing / empty / non-numeric / NaN / inf / bool.

    `keep_inf` returns ±inf as it is (summarize shows a hand-edited infinite value rather than hiding it;
    verify fails such a session)."""
    if x is None or x == "" or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    if math.isnan(v):
        return None
    return v if keep_inf or math.isfinite(v) else None


def ts_mean(values: Iterable[Any]) -> float | None:
    """Return the mean of the non-missing ratings (None if there are none), rounded to 4 decimals."""
    vals = [v for v in (as_number(x) for x in values) if v is not None]
    return round(sum(vals) / len(vals), 4) if vals else None


def cpm_category(cpm_abs: float | None, threshold_abs: float) -> str | None:
    """Return "inhibition" if CPM_abs > +threshold, "facilitation" if < -threshold, else "none" (None if unknown)."""
    if cpm_abs is None:
        return None
    if cpm_abs > threshold_abs:
        return "inhibition"
    if cpm_abs < -threshold_abs:
        return "facilitation"
    return "none"


def cpm_values(ts_pre: float | None, ts_post: float | None, threshold_abs: float,
               pct_min_ts_pre: float = 0.0) -> dict[str, Any]:
    """Return CPM_abs = TS_pre − TS_post, CPM_pct = CPM_abs / TS_pre × 100 (positive = inhibition), the category.

    CPM_pct is None (with a note) when TS_pre is 0 or below `pct_min_ts_pre`: a percentage of a near-zero
    baseline is not interpretable."""
    pre, post = as_number(ts_pre), as_number(ts_post)
    if pre is None or post is None:
        return {"cpm_abs": None, "cpm_pct": None, "cpm_pct_note": "TS_pre or TS_post missing",
                "cpm_category": None, "inhibition": None}
    cpm_abs = round(pre - post, 4)
    note = ""
    cpm_pct: float | None
    if pre == 0:
        cpm_pct, note = None, "undefined: TS_pre is 0"
    elif pre < pct_min_ts_pre:
        cpm_pct, note = None, (f"undefined: TS_pre {pre:g} is below the floor {pct_min_ts_pre:g} "
                               "(analysis.cpm_pct_min_ts_pre)")
    else:
        cpm_pct = round(cpm_abs / pre * 100.0, 4)
    category = cpm_category(cpm_abs, threshold_abs)
    return {"cpm_abs": cpm_abs, "cpm_pct": cpm_pct, "cpm_pct_note": note, "cpm_category": category,
            "inhibition": category == "inhibition"}


def rating_row(ev: Mapping[str, Any], *, ppt_site: str = "") -> dict[str, Any]:
    """Return the ratings.csv row (RATING_COLUMNS, None for empty) of a `rating` or `ppt` event."""
    if ev.get("event") == "ppt":
        return {"phase": "ppt", "trial": ev.get("trial"), "attempt": 1, "site": ev.get("site", ppt_site),
                "intensity": ev.get("kpa"), "intensity_unit": "kPa", "rating": None, "rt_s": None,
                "onset_t": ev.get("t_start"), "planned_onset_t": None, "missing": False, "flag": ""}
    return {k: ev.get(k) for k in RATING_COLUMNS}


def csv_cells(row: Mapping[str, Any]) -> dict[str, Any]:
    """Return `row` with None as the empty cell, in RATING_COLUMNS order."""
    return {k: ("" if row.get(k) is None else row[k]) for k in RATING_COLUMNS}


def bath_stats(samples: Iterable[tuple[float, float]], t0: float, t1: float | None) -> dict[str, Any]:
    """Return bath mean/min/max (°C) and n of the (t, bath_c) samples within [t0, t1] (t1 None = open)."""
    vals = [v for t, v in samples if t >= t0 and (t1 is None or t <= t1) and math.isfinite(v)]
    if not vals:
        return {"bath_mean_c": None, "bath_min_c": None, "bath_max_c": None, "bath_n": 0}
    return {"bath_mean_c": round(sum(vals) / len(vals), 3), "bath_min_c": round(min(vals), 3),
            "bath_max_c": round(max(vals), 3), "bath_n": len(vals)}


def derivation_values(protocol: Any) -> dict[str, Any]:
    """Return the protocol values the derivations of a session use (stored in results.derivation)."""
    from cpm_session.record.fidelity import fidelity_plan

    a = protocol.analysis
    return {"cpm_threshold_abs": float(a.cpm_threshold_abs),
            "cpm_pct_min_ts_pre": float(getattr(a, "cpm_pct_min_ts_pre", 0.0)),
            "target_rating": float(protocol.calibration.target_rating),
            "fidelity": fidelity_plan(protocol)}


def session_results(outputs: Mapping[str, Any], ts_modality: str, derivation: Mapping[str, Any], *,
                    events: Sequence[Mapping[str, Any]] | None = None,
                    device_rows: Sequence[tuple[float, str, str, float]] = (), status: str | None = None,
                    cap_c: float | None = None) -> dict[str, Any]:
    """Combine the phase outputs of a visit into its `results` block (positive CPM = inhibition).

    With the session's `events` (and devices.csv rows), the block includes `fidelity`: how closely the
    visit followed its protocol (record.fidelity), with the plan stored in `derivation["fidelity"]`."""
    cal = outputs.get("calibration", {})
    pre = outputs.get("ts_pre", {})
    post = outputs.get("ts_post", {})
    cs = outputs.get("cold_pressor", {})
    thr = float(derivation["cpm_threshold_abs"])
    floor = float(derivation.get("cpm_pct_min_ts_pre", 0.0))
    res: dict[str, Any] = {
        "ts_modality": ts_modality, "ts_intensity": cal.get("ts_intensity"),
        "ts_unit": cal.get("ts_unit"), "pain60_c": cal.get("pain60_c"), "ppt_kpa": cal.get("ppt_kpa"),
        "ts_pre_ratings": pre.get("ratings", []), "ts_post_ratings": post.get("ratings", []),
        "ts_pre": ts_mean(pre.get("ratings", [])), "ts_post": ts_mean(post.get("ratings", [])),
        "cs_rating_30s": cs.get("cs_rating_30s"), "cs_rating_flag": cs.get("cs_rating_flag"),
        "withdrawal_s": cs.get("withdrawal_s"), "bath_mean_c": cs.get("bath_mean_c"),
        "bath_min_c": cs.get("bath_min_c"), "bath_max_c": cs.get("bath_max_c"),
        "calibration": {k: v for k, v in cal.items() if k not in ("ts_intensity", "ts_unit")},
        "sign_convention": SIGN_CONVENTION,
        "derivation": dict(derivation),
    }
    res.update(cpm_values(res["ts_pre"], res["ts_post"], thr, floor))
    ctl = outputs.get("control", {})
    if ctl.get("enabled"):
        c_pre, c_post = ts_mean(ctl["ts_pre"].get("ratings", [])), ts_mean(ctl["ts_post"].get("ratings", []))
        c = cpm_values(c_pre, c_post, thr, floor)
        net = None if c["cpm_abs"] is None or res["cpm_abs"] is None else round(res["cpm_abs"] - c["cpm_abs"], 4)
        res["control"] = {"ts_pre": c_pre, "ts_post": c_post, "cpm_abs": c["cpm_abs"], "net_cpm_abs": net}
    plan = derivation.get("fidelity")
    if events is not None and isinstance(plan, Mapping):
        from cpm_session.record.fidelity import compute_fidelity

        res["fidelity"] = compute_fidelity(events, device_rows, plan, status=status, cap_c=cap_c)
    return res


def recompute_cpm(results: dict[str, Any], threshold_abs: float, pct_min_ts_pre: float = 0.0) -> None:
    """Recompute the TS means and CPM of a results block in place from its rating lists (after an amendment)."""
    results["ts_pre"] = ts_mean(results.get("ts_pre_ratings") or [])
    results["ts_post"] = ts_mean(results.get("ts_post_ratings") or [])
    results.update(cpm_values(results["ts_pre"], results["ts_post"], threshold_abs, pct_min_ts_pre))


def recorded_threshold(header: Mapping[str, Any], start_fields: Mapping[str, Any] | None = None) -> float | None:
    """Return the CPM threshold a session recorded (results.derivation, or its protocol snapshot), or None."""
    res = header.get("results")
    if isinstance(res, Mapping):
        der = res.get("derivation")
        if isinstance(der, Mapping) and as_number(der.get("cpm_threshold_abs")) is not None:
            return as_number(der.get("cpm_threshold_abs"))
    for src in (header, start_fields or {}):
        v = as_number(src.get("cpm_threshold_abs"))
        if v is not None:
            return v
    return None


def continuous_summary(samples: list[tuple[float, float]], how: str, at_s: float = 0.0) -> float | None:
    """Return the prompt-style rating of a continuous rating: its peak, its mean, or its value `at_s` after
    the onset (the last sample at or before it); None when there are no samples."""
    vals = [(t, v) for t, v in samples if math.isfinite(t) and math.isfinite(v)]
    if not vals:
        return None
    if how == "peak":
        return round(max(v for _, v in vals), 2)
    if how == "mean":
        return round(sum(v for _, v in vals) / len(vals), 2)
    before = [v for t, v in vals if t <= at_s + 1e-9]
    return round(before[-1], 2) if before else None
