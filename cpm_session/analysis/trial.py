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

from cpm_session.analysis.ancova import AnalysisError, AncovaResult, fit_ancova
from cpm_session.analysis.constants import BLINDED_LABELS, SECONDARY_OUTCOMES, SIGN_TAG
from cpm_session.analysis.reliability import icc
from cpm_session.errors import CpmError

PRIMARY_OUTCOMES = {
    "cpm_abs": f"CPM_abs, rating points {SIGN_TAG}",
    "cpm_pct": f"CPM_pct, % of TS_pre {SIGN_TAG}",
}
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

    def results_table(self) -> pd.DataFrame:
        """Return one row per fitted outcome (adjusted difference, CI, p, checks)."""
        return pd.DataFrame([r.summary_row() for r in self.ancova])

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

    res.reactivation = _reactivation(analysed)
    res.retest, res.retest_sample = _retest(analysed, allocation)
    res.within = _within(summary, base, post, baseline_visit, post_visit)
    dev = summary[(summary["n_deviations"].fillna(0) > 0) | summary["amended"].fillna(False).astype(bool)
                  | summary["resumed"].fillna(False).astype(bool)]
    res.deviations = dev[["participant", "visit", "status", "n_deviations", "deviations", "resumed", "amended",
                          "amendments", "path"]].reset_index(drop=True)
    return res


def _arm_of(allocation: AllocationTable, pid: str) -> str:
    m = allocation.table.loc[allocation.table["participant"] == pid, "arm"]
    return str(m.iloc[0]) if len(m) else ""


def _reactivation(wide: pd.DataFrame) -> pd.DataFrame:
    """Per arm: participants without inhibition at baseline, and how many show inhibition after."""
    rows = []
    if "cpm_category_base" not in wide.columns or "cpm_category_post" not in wide.columns:
        return pd.DataFrame()
    both = wide[wide["cpm_category_base"].notna() & wide["cpm_category_post"].notna()]
    for arm, g in both.groupby("arm", sort=True):
        no_inh = g[g["cpm_category_base"] != "inhibition"]
        react = no_inh[no_inh["cpm_category_post"] == "inhibition"]
        rows.append({"arm": arm, "n_both_visits": len(g), "n_inhibition_baseline": int((g["cpm_category_base"] == "inhibition").sum()),
                     "n_no_inhibition_baseline": len(no_inh), "n_reactivated": len(react),
                     "share_reactivated": len(react) / len(no_inh) if len(no_inh) else np.nan,
                     "n_inhibition_post": int((g["cpm_category_post"] == "inhibition").sum())})
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
