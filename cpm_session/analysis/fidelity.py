"""Protocol fidelity in the summary and the trial report.

- `summary_columns(session_dir, results, status)`: the fidelity columns of one summarize row (one per
  requirement plus its within-limits flag, and `fidelity_within_protocol`), from the session's
  `results.fidelity` or, for a session without one (killed before its end), computed from its log by
  record.fidelity.
- `fidelity_table(summary, allocation)`: per arm and visit, how many sessions met each requirement.
- `sensitivity_ancova(analysis, summary)`: the primary ANCOVA restricted to participants whose analysed
  sessions were both within protocol.
- `report_section(analysis, summary, table_html)`: the report's HTML for both, and their CSV tables.

Sign convention as everywhere: CPM_abs = TS_pre - TS_post, positive = inhibition.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from cpm_session.analysis.ancova import AnalysisError, AncovaResult, fit_ancova
from cpm_session.analysis.constants import SIGN_TAG
from cpm_session.analysis.trial import PRIMARY_OUTCOMES, AllocationTable, TrialAnalysis, select_sessions
from cpm_session.errors import CpmError
from cpm_session.record.fidelity import (
    EXPORT_NAMES,
    REQUIREMENTS,
    compute_fidelity,
    fidelity_columns,
    fidelity_of_folder,
    read_device_rows,
)

WITHIN = "fidelity_within_protocol"
SENSITIVITY_LABEL = "within protocol only"


def summary_columns(session_dir: str | Path, results: Mapping[str, Any] | None, status: str | None = None,
                    events: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Return the fidelity columns of one session's summary row (all None when it cannot be measured).

    `events`: the session's log when the caller has read it already (else it is read here if needed)."""
    block = results.get("fidelity") if isinstance(results, Mapping) else None
    if not isinstance(block, Mapping):
        try:
            if events is None:
                block = fidelity_of_folder(session_dir, status=status)
            else:
                plan = _plan_of(events)
                block = None if plan is None else compute_fidelity(
                    events, read_device_rows(Path(session_dir) / "devices.csv"), plan, status=status)
        except (CpmError, OSError, ValueError, KeyError, TypeError):
            block = None
    return fidelity_columns(block)


def _plan_of(events: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    start = next((e for e in events if e.get("event") == "session_start"), None)
    der = start.get("derivation") if isinstance(start, Mapping) else None
    plan = der.get("fidelity") if isinstance(der, Mapping) else None
    return plan if isinstance(plan, Mapping) else None


def _within(s: pd.Series) -> pd.Series:
    return s.map(lambda v: v is True or v == 1 or str(v).lower() == "true")


def fidelity_table(summary: pd.DataFrame, allocation: AllocationTable) -> pd.DataFrame:
    """Return one row per arm, visit and requirement: sessions, within limits, outside, not measured, and the
    median / max of the requirement's value; the first row of each arm and visit is `within_protocol`."""
    if summary.empty or WITHIN not in summary.columns:
        return pd.DataFrame()
    df = summary.merge(allocation.table, on="participant", how="inner")
    rows: list[dict[str, Any]] = []
    for (arm, visit), g in df.groupby(["arm", "visit"], sort=True):
        n = len(g)
        within = int(_within(g[WITHIN]).sum())
        rows.append({"arm": arm, "visit": visit, "requirement": "within_protocol", "sessions": n,
                     "within_limits": within, "outside_limits": n - within - int(g[WITHIN].isna().sum()),
                     "not_measured": int(g[WITHIN].isna().sum()), "median": None, "max": None})
        for key, (name, typ) in EXPORT_NAMES.items():
            ok_col = f"{name}_ok"
            if ok_col not in g.columns:
                continue
            ok = g[ok_col]
            vals = pd.to_numeric(g[name], errors="coerce") if typ != "bool" and name in g.columns else None
            rows.append({"arm": arm, "visit": visit, "requirement": key, "sessions": n,
                         "within_limits": int(_within(ok).sum()),
                         "outside_limits": int(ok.map(lambda v: v is False or v == 0 or str(v).lower() == "false").sum()),
                         "not_measured": int(ok.isna().sum()),
                         "median": None if vals is None or vals.dropna().empty else float(vals.median()),
                         "max": None if vals is None or vals.dropna().empty else float(vals.max())})
    return pd.DataFrame(rows)


def protocol_deviations(summary: pd.DataFrame) -> pd.DataFrame:
    """Return the sessions outside protocol: participant, visit, status, the requirements outside limits or not
    measured, and the CS end -> TS_post interval."""
    if summary.empty or WITHIN not in summary.columns:
        return pd.DataFrame()
    bad = summary[~_within(summary[WITHIN])]
    cols = ["participant", "visit", "status", "fidelity_outside", "fidelity_not_measured",
            EXPORT_NAMES["cs_end_to_ts_post_s"][0], "path"]
    return bad[[c for c in cols if c in bad.columns]].reset_index(drop=True)


def sensitivity_ancova(analysis: TrialAnalysis, summary: pd.DataFrame) -> tuple[list[AncovaResult], list[str]]:
    """Fit the primary outcomes again on the participants whose analysed baseline and post sessions were both
    within protocol; return (results, reasons a model was not fitted)."""
    if WITHIN not in summary.columns:
        return [], ["no fidelity columns in the summary (sessions recorded before fidelity was measured)"]
    keep: set[str] | None = None
    for visit in (analysis.baseline_visit, analysis.post_visit):
        chosen, _notes = select_sessions(summary, visit)
        ok = set(chosen.loc[_within(chosen[WITHIN]), "participant"].astype(str)) if len(chosen) else set()
        keep = ok if keep is None else keep & ok
    data = analysis.wide[analysis.wide["participant"].astype(str).isin(keep or set())]
    results: list[AncovaResult] = []
    skipped: list[str] = []
    for col, label in PRIMARY_OUTCOMES.items():
        b, p = f"{col}_base", f"{col}_post"
        if b not in data.columns or p not in data.columns:
            skipped.append(f"{label} ({SENSITIVITY_LABEL}): no participant has both visits within protocol")
            continue
        try:
            results.append(fit_ancova(data, p, b, arm="arm", reference=analysis.allocation.reference,
                                      outcome=f"{label}, {SENSITIVITY_LABEL}"))
        except AnalysisError as e:
            skipped.append(str(e))
    return results, skipped


def report_section(analysis: TrialAnalysis, summary: pd.DataFrame,
                   table_html: Callable[[pd.DataFrame], str]) -> tuple[str, dict[str, pd.DataFrame]]:
    """Return the report's fidelity HTML (sensitivity ANCOVA, fidelity table per arm and visit, sessions outside
    protocol) and its CSV tables {file name: table}; `table_html` renders a table the way the report does."""
    sens, skipped = sensitivity_ancova(analysis, summary)
    sens_df = pd.DataFrame([r.summary_row() for r in sens])
    table = fidelity_table(summary, analysis.allocation)
    outside = protocol_deviations(summary)
    n_within = int(_within(summary[WITHIN]).sum()) if WITHIN in summary.columns else 0
    primary = analysis.primary()
    parts = [f"<h2>Sensitivity analysis: sessions within protocol {SIGN_TAG}</h2>",
             "<p class='muted'>The primary ANCOVA refitted on the participants whose analysed baseline and post "
             "sessions both followed the protocol (every fidelity requirement measured and within the protocol's "
             "[fidelity] limits; see results.fidelity in each session.json).</p>"]
    if primary is not None and sens:
        s0 = sens[0]
        parts.append(f"<p>Primary: {html.escape(primary.treatment)} - {html.escape(primary.reference)} = "
                     f"{primary.estimate:.2f} (n = {primary.n}); within protocol only: {s0.estimate:.2f} "
                     f"(95 % CI {s0.ci_low:.2f} to {s0.ci_high:.2f}, n = {s0.n}).</p>")
    cols = [c for c in ("outcome", "comparison", "n", "adj_mean_reference", "adj_mean_treatment",
                        "adjusted_difference", "ci_low", "ci_high", "p") if c in sens_df.columns]
    parts.append(table_html(sens_df[cols] if cols else sens_df))
    if skipped:
        parts.append("<p class='warn'>Not fitted: " + html.escape("; ".join(skipped)) + "</p>")
    parts += ["<h2>Protocol fidelity per arm and visit</h2>",
              f"<p class='muted'>{n_within} of {len(summary)} session(s) within protocol. One row per requirement: "
              "sessions within limits, outside limits, not measured (e.g. no cold pressor in an aborted session), "
              "and the median and largest value. Requirements: "
              + html.escape("; ".join(f"{k}: {REQUIREMENTS[k][1]}" for k in ("cs_end_to_ts_post_s", "cs_bath_max_c",
                                                                                 "acclimatization_s")))
              + ".</p>", table_html(table),
              "<h3>Sessions outside protocol</h3>", table_html(outside)]
    tables = {"fidelity_by_arm_visit.csv": table, "fidelity_sessions_outside.csv": outside,
              "sensitivity_within_protocol.csv": sens_df}
    return "\n".join(parts), tables
