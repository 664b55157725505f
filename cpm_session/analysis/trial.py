"""From the session summary and an allocation list to the trial's answer.

Pick one usable session per participant and visit, merge the allocation (blinded or not), fit the
ANCOVA of every outcome, count reactivated CPM per arm, and estimate test-retest and within-session
reliability. Sign convention: CPM_abs = TS_pre - TS_post, positive = inhibition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from cpm_session.analysis.ancova import AnalysisError, AncovaResult, fit_ancova
from cpm_session.analysis.constants import BLINDED_LABELS, HADS_BANDS, SECONDARY_OUTCOMES, SIGN_TAG
from cpm_session.analysis.reliability import icc
from cpm_session.errors import CpmError

PRIMARY_OUTCOMES = {
    "cpm_abs": f"CPM_abs, rating points {SIGN_TAG}",
    "cpm_pct": f"CPM_pct, % of TS_pre {SIGN_TAG}",
}
"""The CPM outcomes, fitted first. Only CPM_abs is the primary outcome; CPM_pct and SECONDARY_OUTCOMES
are secondary (their p-values are not adjusted for multiplicity, and the report says so)."""
PRIMARY_OUTCOME = "cpm_abs"
HADS_SUBSCALES = ("hads_anxiety", "hads_depression")
RETEST_MEASURES = {"ts_pre": "TS_pre (0-100)", "ts_post": "TS_post (0-100)", "cpm_abs": f"CPM_abs {SIGN_TAG}",
                   "cpm_pct": f"CPM_pct {SIGN_TAG}"}
CARRIED_COLUMNS = ["ts_pre", "ts_post", "cpm_abs", "cpm_pct", "cpm_category", *SECONDARY_OUTCOMES]


class AllocationError(CpmError):
    """The allocation file is missing, unreadable or has the wrong columns."""


@dataclass
class AllocationTable:
    """Participant -> displayed arm label, whether the labels are blinded, and the reference (control) arm.

    `reference_source` says how the reference was determined: "control" (named by the file's role
    column or by --control) or "blinded" (the first code in the file; the comparison's sign is then
    arbitrary until unblinding).
    """

    table: pd.DataFrame  # columns participant, arm
    blinded: bool
    reference: str
    arms: list[str]
    reference_source: str = "control"


def read_allocation(path: str | Path, *, blinded: bool = False, control: str | None = None) -> AllocationTable:
    """Read an allocation CSV.

    Columns ``participant,arm`` with real arm names are unblinded unless `blinded`; a file with
    ``participant,code`` (no arm), or any file with `blinded`, shows arms as A, B, ... in order of
    first appearance in the file (a randomized order, so the letter reveals nothing) and compares
    against A. Unblinded, the control (reference) arm is `control` (``--control ARM``) or the arm whose
    rows say ``role = control`` (written by ``cpm-session randomize``); both given must agree. The
    control is never guessed from a name: with neither, AllocationError.
    """
    p = Path(path)
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise AllocationError(f"cannot read allocation file {p}: {e}") from e
    df.columns = [c.strip().lower() for c in df.columns]
    if "participant" not in df.columns:
        raise AllocationError(f"allocation file {p} has no 'participant' column (columns: {list(df.columns)})")
    if "arm" in df.columns:
        col = "arm"
    elif "code" in df.columns:
        col, blinded = "code", True
    else:
        raise AllocationError(f"allocation file {p} needs an 'arm' or 'code' column (columns: {list(df.columns)})")
    has_role = "role" in df.columns
    df = df[["participant", col, *(["role"] if has_role else [])]].rename(columns={col: "arm"})
    df["participant"] = df["participant"].str.strip()
    df["arm"] = df["arm"].str.strip()
    df = df[df["participant"] != ""]
    dup = df["participant"][df["participant"].duplicated()].tolist()
    if dup:
        raise AllocationError(f"allocation file {p} lists participant(s) {dup[:5]} more than once")
    empty = df["participant"][df["arm"] == ""].tolist()
    if empty:
        raise AllocationError(f"allocation file {p} has no arm for participant(s) {empty[:5]}")
    values = list(dict.fromkeys(df["arm"]))
    file_control = _control_from_roles(df, p) if has_role else None
    if control is not None and control.strip():
        control = control.strip()
        if control not in values:
            raise AllocationError(f"--control {control!r} is not an arm of allocation file {p} (arms {sorted(values)})")
        if file_control is not None and file_control != control:
            raise AllocationError(f"--control {control!r} disagrees with allocation file {p}, whose role column names "
                                  f"{file_control!r} as the control arm")
    else:
        control = file_control
    df = df[["participant", "arm"]]
    if blinded:
        if len(values) > len(BLINDED_LABELS):
            raise AllocationError(f"allocation file {p} has {len(values)} arms; at most {len(BLINDED_LABELS)} can be blinded")
        mapping = dict(zip(values, BLINDED_LABELS[: len(values)], strict=True))
        df = df.assign(arm=df["arm"].map(mapping))
        arms = [mapping[v] for v in values]
        return AllocationTable(df.reset_index(drop=True), True, arms[0], sorted(arms), "blinded")
    if control is None:
        raise AllocationError(f"allocation file {p} does not say which arm is the control: give --control ARM "
                              f"(one of {sorted(values)}) or use a list from 'cpm-session randomize' (role column)")
    return AllocationTable(df.reset_index(drop=True), False, control, sorted(values), "control")


def _control_from_roles(df: pd.DataFrame, p: Path) -> str | None:
    """Return the arm whose rows have role "control" (None if no row says control); refuse inconsistent roles."""
    roles = df["role"].str.strip().str.lower()
    ctl = sorted(set(df.loc[roles == "control", "arm"]))
    if not ctl:
        return None
    if len(ctl) > 1:
        raise AllocationError(f"allocation file {p} marks more than one arm as control: {ctl}")
    mixed = df.loc[(df["arm"] == ctl[0]) & (roles != "control"), "participant"].tolist()
    if mixed:
        raise AllocationError(f"allocation file {p}: arm {ctl[0]!r} is the control but participant(s) {mixed[:5]} "
                              "have another role")
    return str(ctl[0])


def select_sessions(summary: pd.DataFrame, visit: str) -> tuple[pd.DataFrame, list[dict[str, object]]]:
    """Return one row per participant for `visit` (the latest completed session with a CPM) and notes on the rest."""
    rows = summary[summary["visit"] == visit].sort_values(["participant", "start_utc"], na_position="first")
    usable = rows[(rows["status"] == "completed") & rows["cpm_abs"].notna()]
    chosen = usable.groupby("participant", sort=True).tail(1)
    chosen_paths = set(chosen["path"])
    has_usable = set(chosen["participant"])
    notes: list[dict[str, object]] = []
    for r in rows[~rows["path"].isin(chosen_paths)].to_dict("records"):
        if r["participant"] in has_usable:
            why = "not used: another session of this visit was completed"
        elif r["status"] == "completed":
            why = "no CPM (TS_pre or TS_post missing)"
        else:
            why = f"session {r['status']}; no usable CPM"
        notes.append({"participant": r["participant"], "visit": visit, "status": r["status"], "path": r["path"],
                      "reason": why, "missing_items": r.get("missing", "")})
    return chosen.reset_index(drop=True), notes


@dataclass
class TrialAnalysis:
    """Everything the report shows."""

    wide: pd.DataFrame
    allocation: AllocationTable
    baseline_visit: str
    post_visit: str
    ancova: list[AncovaResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    reactivation: pd.DataFrame = field(default_factory=pd.DataFrame)
    retest: pd.DataFrame = field(default_factory=pd.DataFrame)
    within: pd.DataFrame = field(default_factory=pd.DataFrame)
    missing: pd.DataFrame = field(default_factory=pd.DataFrame)
    deviations: pd.DataFrame = field(default_factory=pd.DataFrame)
    retest_sample: str = ""
    category_threshold: float | None = None
    category_threshold_source: str = ""
    category_tests: pd.DataFrame = field(default_factory=pd.DataFrame)
    complete_case: pd.DataFrame = field(default_factory=pd.DataFrame)
    hads_bands: pd.DataFrame = field(default_factory=pd.DataFrame)

    def results_table(self) -> pd.DataFrame:
        """Return one row per fitted outcome (role primary/secondary, adjusted difference, CI, p, checks)."""
        rows = []
        for r in self.ancova:
            primary = r.outcome == PRIMARY_OUTCOMES[PRIMARY_OUTCOME]
            rows.append({"role": "primary" if primary else "secondary",
                         "p_adjustment": "none (single primary outcome)" if primary else "none (unadjusted)",
                         **r.summary_row()})
        return pd.DataFrame(rows)

    def primary(self) -> AncovaResult | None:
        """Return the primary (CPM_abs) result, if it could be fitted."""
        return next((r for r in self.ancova if r.outcome == PRIMARY_OUTCOMES["cpm_abs"]), None)


def analyze_trial(summary: pd.DataFrame, allocation: AllocationTable, *, baseline_visit: str = "baseline",
                  post_visit: str = "post") -> TrialAnalysis:
    """Run the whole trial analysis on a summary table (from `summarize`) and an allocation."""
    if summary.empty:
        raise AnalysisError("the data folder holds no readable sessions")
    base, notes_b = select_sessions(summary, baseline_visit)
    post, notes_p = select_sessions(summary, post_visit)
    keep = ["participant", *[c for c in CARRIED_COLUMNS if c in summary.columns]]
    pre_cols = sorted((c for c in summary.columns if c.startswith("ts_pre_") and c[7:].isdigit()), key=lambda c: int(c[7:]))
    wide = allocation.table.merge(base[keep + pre_cols] if len(base) else pd.DataFrame(columns=keep + pre_cols),
                                  on="participant", how="left")
    wide = wide.merge(post[keep] if len(post) else pd.DataFrame(columns=keep), on="participant", how="left",
                      suffixes=("_base", "_post"))
    rename = {c: f"{c}_base" for c in pre_cols}
    wide = wide.rename(columns=rename)
    for c in keep[1:]:
        if c in wide.columns:  # no suffix when only one side had it
            wide = wide.rename(columns={c: f"{c}_base"})
    res = TrialAnalysis(wide=wide, allocation=allocation, baseline_visit=baseline_visit, post_visit=post_visit)

    missing = [dict(n, arm=_arm_of(allocation, str(n["participant"]))) for n in notes_b + notes_p]
    allocated = set(allocation.table["participant"])
    for pid in sorted(set(summary["participant"].dropna().astype(str)) - allocated):
        missing.append({"participant": pid, "visit": "", "status": "", "path": "", "arm": "",
                        "reason": "not in the allocation file: excluded from the analysis"})
    for _, r in wide.iterrows():
        for vis, col in ((baseline_visit, "cpm_abs_base"), (post_visit, "cpm_abs_post")):
            if col not in wide.columns or pd.isna(r.get(col)):
                if not any(m["participant"] == r["participant"] and m["visit"] == vis for m in missing):
                    missing.append({"participant": r["participant"], "visit": vis, "status": "", "path": "",
                                    "arm": r["arm"], "reason": "no session"})
    res.missing = pd.DataFrame(missing, columns=["participant", "arm", "visit", "status", "reason", "missing_items", "path"])
    analysed = wide[wide["arm"].notna()].copy()
    res.wide = analysed

    outcomes = dict(PRIMARY_OUTCOMES)
    outcomes.update(SECONDARY_OUTCOMES)
    for col, label in outcomes.items():
        b, p = f"{col}_base", f"{col}_post"
        if b not in analysed.columns or p not in analysed.columns or analysed[[b, p]].dropna().empty:
            if col in PRIMARY_OUTCOMES:
                res.skipped.append(f"{label}: no participant has both visits")
            continue
        try:
            res.ancova.append(fit_ancova(analysed, p, b, arm="arm", reference=allocation.reference, outcome=label))
        except AnalysisError as e:
            res.skipped.append(str(e))

    res.retest, res.retest_sample = _retest(analysed, allocation)
    srd_values = pd.concat([base, post])["cpm_srd95_abs"] if "cpm_srd95_abs" in summary.columns else pd.Series(dtype=float)
    res.category_threshold, res.category_threshold_source, note = category_threshold(srd_values, res.retest)
    if note:
        res.skipped.append(note)
    if res.category_threshold is not None:
        for v in ("base", "post"):
            if f"cpm_abs_{v}" in analysed.columns:
                analysed[f"cpm_category_srd_{v}"] = [srd_category(x, res.category_threshold)
                                                     for x in pd.to_numeric(analysed[f"cpm_abs_{v}"], errors="coerce")]
        res.reactivation = _reactivation(analysed, res.category_threshold)
        res.category_tests = _category_tests(analysed, allocation)
    res.hads_bands = _hads_bands(analysed, baseline_visit, post_visit)
    res.complete_case = _complete_case(analysed, res.ancova)
    res.wide = analysed
    res.within = _within(summary, base, post, baseline_visit, post_visit)
    dev = summary[(summary["n_deviations"].fillna(0) > 0) | summary["amended"].fillna(False).astype(bool)
                  | summary["resumed"].fillna(False).astype(bool)]
    res.deviations = dev[["participant", "visit", "status", "n_deviations", "deviations", "resumed", "amended",
                          "amendments", "path"]].reset_index(drop=True)
    return res


def _arm_of(allocation: AllocationTable, pid: str) -> str:
    m = allocation.table.loc[allocation.table["participant"] == pid, "arm"]
    return str(m.iloc[0]) if len(m) else ""


def srd_category(cpm_abs: float | None, threshold: float) -> str | None:
    """Return "inhibition" if CPM_abs > +threshold, "facilitation" if < -threshold, else "none" (None if unknown).

    With the SRD95 as threshold, "inhibition" means a CPM larger than measurement error explains."""
    if cpm_abs is None or pd.isna(cpm_abs):
        return None
    if cpm_abs > threshold:
        return "inhibition"
    if cpm_abs < -threshold:
        return "facilitation"
    return "none"


def category_threshold(srd_values: pd.Series, retest: pd.DataFrame) -> tuple[float | None, str, str]:
    """Return (threshold, source, note) for the trial's CPM categories.

    The protocol's `analysis.cpm_srd95_abs` (the SRD95 of CPM_abs from a test-retest study) when the
    analysed sessions record one (the largest, with a note, if they differ); else the SRD95 of CPM_abs
    estimated by the reliability module from this trial's test-retest sample (the control arm), said so;
    else None with a note.
    """
    vals = sorted({float(v) for v in pd.to_numeric(srd_values, errors="coerce").dropna() if v > 0})
    if vals:
        note = "" if len(vals) == 1 else (f"sessions' protocols give different analysis.cpm_srd95_abs {vals}; "
                                          f"the largest, {vals[-1]:g}, is used for the CPM categories")
        return vals[-1], f"protocol analysis.cpm_srd95_abs = {vals[-1]:g} rating points (SRD95 of CPM_abs)", note
    row = retest[retest["measure"].astype(str).str.startswith("CPM_abs")] if "measure" in retest.columns else retest
    if len(row) and pd.notna(row.iloc[0]["SRD95"]) and row.iloc[0]["SRD95"] > 0:
        srd = float(row.iloc[0]["SRD95"])
        return srd, (f"SRD95 of CPM_abs = {srd:.2f} rating points estimated from this trial's test-retest sample "
                     f"({row.iloc[0]['sample']}, n = {int(row.iloc[0]['n'])}); no analysis.cpm_srd95_abs in the protocol"), ""
    return None, "", ("CPM categories (inhibition, reactivation) not reported: no analysis.cpm_srd95_abs in the protocol "
                      "and too few participants to estimate the SRD95 of CPM_abs")


def _reactivation(wide: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per arm: participants without inhibition beyond the SRD at baseline, and how many show it after."""
    rows = []
    if "cpm_category_srd_base" not in wide.columns or "cpm_category_srd_post" not in wide.columns:
        return pd.DataFrame()
    both = wide[wide["cpm_category_srd_base"].notna() & wide["cpm_category_srd_post"].notna()]
    for arm, g in both.groupby("arm", sort=True):
        no_inh = g[g["cpm_category_srd_base"] != "inhibition"]
        react = no_inh[no_inh["cpm_category_srd_post"] == "inhibition"]
        n_post = int((g["cpm_category_srd_post"] == "inhibition").sum())
        rows.append({"arm": arm, "threshold_abs": threshold, "n_both_visits": len(g),
                     "n_inhibition_baseline": int((g["cpm_category_srd_base"] == "inhibition").sum()),
                     "n_no_inhibition_baseline": len(no_inh), "n_reactivated": len(react),
                     "share_reactivated": len(react) / len(no_inh) if len(no_inh) else np.nan,
                     "n_inhibition_post": n_post, "share_inhibition_post": n_post / len(g) if len(g) else np.nan})
    return pd.DataFrame(rows)


def _category_tests(wide: pd.DataFrame, allocation: AllocationTable) -> pd.DataFrame:
    """Fisher exact tests (two-sided) of the categories between the two arms: reactivation among those
    without inhibition at baseline, and inhibition at the post visit among all with both visits."""
    if "cpm_category_srd_base" not in wide.columns or "cpm_category_srd_post" not in wide.columns:
        return pd.DataFrame()
    both = wide[wide["cpm_category_srd_base"].notna() & wide["cpm_category_srd_post"].notna()]
    arms = sorted(both["arm"].dropna().unique())
    if len(arms) != 2 or allocation.reference not in arms:
        return pd.DataFrame()
    ref = allocation.reference
    trt = arms[1] if arms[0] == ref else arms[0]
    rows = []
    for name, sample, event in (
            ("reactivated (no inhibition at baseline -> inhibition at post)",
             both[both["cpm_category_srd_base"] != "inhibition"], "inhibition"),
            ("inhibition at the post visit", both, "inhibition")):
        table = [[int(((sample["arm"] == a) & (sample["cpm_category_srd_post"] == event)).sum()),
                  int(((sample["arm"] == a) & (sample["cpm_category_srd_post"] != event)).sum())] for a in (trt, ref)]
        if min(sum(table[0]), sum(table[1])) == 0:
            continue
        odds, p = stats.fisher_exact(table, alternative="two-sided")
        rows.append({"category": name, "comparison": f"{trt} vs {ref}",
                     f"{trt}_yes": table[0][0], f"{trt}_no": table[0][1], f"{ref}_yes": table[1][0],
                     f"{ref}_no": table[1][1], "odds_ratio": float(odds), "fisher_p": float(p),
                     "test": "Fisher exact, two-sided (scipy.stats.fisher_exact)", "p_adjustment": "none (unadjusted)"})
    return pd.DataFrame(rows)


def _hads_band(score: float) -> str:
    """Return the HADS band of a subscale score (0-21): normal 0-7, borderline 8-10, abnormal 11-21.

    A score between two bands (a prorated score such as 7.5) goes to the lower band.
    LEAD: dedupe with questionnaires.hads_band once the calibration helper's version lands.
    """
    for upper, name in HADS_BANDS:
        if score < upper + 1:
            return name
    return HADS_BANDS[-1][1]


def hads_band(score: float | None) -> str | None:
    """Return the HADS band of `score` (None if missing), from questionnaires.hads_band when it exists."""
    if score is None or pd.isna(score):
        return None
    from cpm_session.config import questionnaires

    fn = getattr(questionnaires, "hads_band", None)
    return str(fn(score)) if callable(fn) else _hads_band(float(score))


def _hads_bands(wide: pd.DataFrame, bv: str, pv: str) -> pd.DataFrame:
    """Add hads_<subscale>_band_<visit> columns to `wide` and return counts per arm, visit, subscale and band."""
    rows = []
    for sub in HADS_SUBSCALES:
        for suffix, vis in (("base", bv), ("post", pv)):
            col = f"{sub}_{suffix}"
            if col not in wide.columns:
                continue
            band_col = f"{sub}_band_{suffix}"
            wide[band_col] = [hads_band(x) for x in pd.to_numeric(wide[col], errors="coerce")]
            for arm, g in wide.groupby("arm", sort=True):
                counts = g[band_col].value_counts()
                rows.append({"subscale": sub.replace("hads_", "HADS "), "visit": vis, "arm": arm,
                             **{name: int(counts.get(name, 0)) for _, name in HADS_BANDS},
                             "missing": int(g[band_col].isna().sum())})
    return pd.DataFrame(rows)


def _complete_case(wide: pd.DataFrame, results: list[AncovaResult]) -> pd.DataFrame:
    """Per fitted outcome: participants allocated, analysed (both visits and the outcome present) and left out."""
    rows = []
    allocated = wide.groupby("arm").size().to_dict()
    for r in results:
        for arm, n_an in ((r.reference, r.n_reference), (r.treatment, r.n_treatment)):
            n_alloc = int(allocated.get(arm, 0))
            rows.append({"outcome": r.outcome, "arm": arm, "allocated": n_alloc, "analysed": n_an,
                         "left_out_missing": n_alloc - n_an})
    return pd.DataFrame(rows)


def _retest(wide: pd.DataFrame, allocation: AllocationTable) -> tuple[pd.DataFrame, str]:
    """Test-retest reliability between the two visits (the control arm once unblinded, all while blinded)."""
    if not allocation.blinded:
        sample = wide[wide["arm"] == allocation.reference]
        label = f"control arm {allocation.reference} only (unblinded)"
    else:
        sample = wide
        label = "all participants (blinded)"
    rows = []
    for col, name in RETEST_MEASURES.items():
        b, p = f"{col}_base", f"{col}_post"
        if b not in sample.columns or p not in sample.columns:
            continue
        m = sample[[b, p]].apply(pd.to_numeric, errors="coerce").dropna().to_numpy()
        if len(m) < 3:
            continue
        r = icc(m)
        rows.append({"measure": name, "sample": label, "n": r.n, "ICC(3,1) consistency": r.icc3_1,
                     "ICC(3,1) ci_low": r.icc3_1_ci_low, "ICC(3,1) ci_high": r.icc3_1_ci_high,
                     "ICC(A,1) agreement": r.icc2_1, "ICC(A,1) ci_low": r.icc2_1_ci_low,
                     "ICC(A,1) ci_high": r.icc2_1_ci_high, "SEM": r.sem, "SRD95": r.srd,
                     "mean_change_post_minus_base": r.mean_difference})
    return pd.DataFrame(rows), label


def _within(summary: pd.DataFrame, base: pd.DataFrame, post: pd.DataFrame, bv: str, pv: str) -> pd.DataFrame:
    """ICC of the repeated TS_pre ratings within each visit (trials as the repeated measurements)."""
    rows = []
    pre_cols = sorted((c for c in summary.columns if c.startswith("ts_pre_") and c[7:].isdigit()), key=lambda c: int(c[7:]))
    for vis, df in ((bv, base), (pv, post)):
        if len(pre_cols) < 2 or df.empty:
            continue
        m = df[pre_cols].apply(pd.to_numeric, errors="coerce").dropna().to_numpy()
        if len(m) < 3:
            continue
        r = icc(m)
        rows.append({"visit": vis, "n": r.n, "k_trials": r.k, "ICC(3,1) consistency": r.icc3_1,
                     "ICC(3,1) ci_low": r.icc3_1_ci_low, "ICC(3,1) ci_high": r.icc3_1_ci_high,
                     "ICC(3,k) of the mean": r.icc3_k, "ICC(A,1) agreement": r.icc2_1, "SEM": r.sem})
    return pd.DataFrame(rows)
