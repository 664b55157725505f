"""The trial report: one self-contained HTML page (study figure embedded, per-session figures beside it
under relative paths) and CSV tables, readable offline. Sign convention stated everywhere:
CPM_abs = TS_pre - TS_post (positive = inhibition).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
from pathlib import Path

import pandas as pd

from cpm_session import __version__
from cpm_session.analysis.constants import CI_LEVEL, SIGN_CONVENTION, SIGN_TAG
from cpm_session.analysis.fidelity import report_section as fidelity_report_section
from cpm_session.analysis.plots import session_figure, study_figure
from cpm_session.analysis.summarize import SummaryResult
from cpm_session.analysis.trial import TrialAnalysis
from cpm_session.errors import CpmError

CSS = """
body{font-family:DejaVu Sans,Arial,sans-serif;margin:24px auto;max-width:1150px;color:#222;line-height:1.4}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;border-bottom:1px solid #ccc;padding-bottom:3px;margin-top:28px}
h3{font-size:14px;margin-bottom:4px}
table{border-collapse:collapse;font-size:12px;margin:6px 0 12px 0} th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f0f0f0} td:first-child,th:first-child{text-align:left}
.sign{background:#fff6d5;border:1px solid #e0c36a;padding:6px 10px;font-size:13px}
.answer{background:#eaf4ea;border:1px solid #8bbd8b;padding:8px 12px;font-size:15px}
.muted{color:#666;font-size:12px} .warn{color:#8a4b00;font-size:12px}
img{max-width:100%}
"""


SESSION_PLOT_CHOICES = ("all", "flagged", "none")


def flagged_sessions(table: pd.DataFrame) -> pd.Series:
    """Return a boolean mask of sessions that need a look: not completed, deviations, amended, resumed,
    early withdrawal or any missing item."""
    def col(name: str) -> pd.Series:
        return table[name].fillna(False).astype(bool) if name in table.columns else pd.Series(False, index=table.index)
    return ((table["status"] != "completed") | (table["n_deviations"].fillna(0) > 0) | col("amended") | col("resumed")
            | col("early_withdrawal") | (table["missing"].fillna("") != ""))


class ReportError(CpmError):
    """The report folder cannot be written."""


def _fmt(x: object) -> str:
    if isinstance(x, float):
        if pd.isna(x):
            return ""
        if x != 0 and (abs(x) < 0.001):
            return f"{x:.2e}"
        return f"{x:.3f}"
    if x is None or (not isinstance(x, str) and pd.isna(x)):  # type: ignore[call-overload]
        return ""
    return str(x)


def _table(df: pd.DataFrame, max_rows: int = 500) -> str:
    if df is None or df.empty:
        return '<p class="muted">(none)</p>'
    shown = df.head(max_rows)
    out = "<div style='overflow-x:auto'>" + shown.to_html(index=False, escape=True, na_rep="",
                                                          formatters={c: _fmt for c in shown.columns}) + "</div>"
    if len(df) > max_rows:
        out += f'<p class="muted">first {max_rows} of {len(df)} rows; all rows in the CSV.</p>'
    return out


MAIN_RESULT_COLUMNS = ["outcome", "comparison", "n", "adj_mean_reference", "adj_mean_treatment", "adjusted_difference",
                       "ci_low", "ci_high", "p"]
CHECK_COLUMNS = ["outcome", "n", "baseline_slope", "r2", "slopes_homogeneity_F", "slopes_homogeneity_p", "shapiro_W",
                 "shapiro_p"]


def _main_results(results: pd.DataFrame) -> pd.DataFrame:
    if results.empty:
        return results
    arm_n = [c for c in results.columns if c.startswith("n_")]
    cols = MAIN_RESULT_COLUMNS[:3] + arm_n + MAIN_RESULT_COLUMNS[3:]
    return results[[c for c in cols if c in results.columns]]


def _checks(results: pd.DataFrame) -> pd.DataFrame:
    return results[[c for c in CHECK_COLUMNS if c in results.columns]] if not results.empty else results


ASSUMPTION_ALPHA = 0.05


def _assumption_notes(a: TrialAnalysis) -> str:
    """Return a sentence naming the outcomes whose slopes differ by arm or whose residuals look non-normal."""
    notes = []
    for r in a.ancova:
        if r.slopes_p < ASSUMPTION_ALPHA:
            notes.append(f"{r.outcome}: the baseline slope differs between arms (interaction p = {_fmt(r.slopes_p)}); "
                         "the adjusted difference depends on the baseline value")
        if r.shapiro_p < ASSUMPTION_ALPHA:
            notes.append(f"{r.outcome}: residuals deviate from normality (Shapiro-Wilk p = {_fmt(r.shapiro_p)}); "
                         "consider a robust or rank-based sensitivity analysis")
    if not notes:
        return f"<p class='muted'>No assumption check below p = {ASSUMPTION_ALPHA}.</p>"
    return "<ul>" + "".join(f"<li class='warn'>{html.escape(n)}</li>" for n in notes) + "</ul>"


def _img_embedded(png: Path, alt: str) -> str:
    b64 = base64.b64encode(png.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def write_report(analysis: TrialAnalysis, summary: SummaryResult, out_dir: str | Path, *, data_dir: str | Path = "",
                 session_plots: str = "flagged") -> Path:
    """Write report.html, tables/*.csv and figures/*.png into `out_dir`; return the HTML path.

    `session_plots`: "all" draws every session's figure, "flagged" (default) only sessions that need a
    look (not completed, deviations, amendments, resumed, early withdrawal or missing data), "none" skips them.
    """
    if session_plots not in SESSION_PLOT_CHOICES:
        raise ReportError(f"session_plots must be one of {SESSION_PLOT_CHOICES}, got {session_plots!r}")
    out = Path(out_dir)
    try:
        (out / "tables").mkdir(parents=True, exist_ok=True)
        (out / "figures" / "sessions").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportError(f"cannot create report folder {out}: {e.strerror or e}") from e
    a = analysis
    results = a.results_table()
    sign = pd.DataFrame([{"quantity": "CPM_abs", "definition": "TS_pre - TS_post (rating points, 0-100)",
                          "sign": "positive = inhibition, negative = facilitation"},
                         {"quantity": "CPM_pct", "definition": "CPM_abs / TS_pre * 100",
                          "sign": "positive = inhibition, negative = facilitation"},
                         {"quantity": "adjusted_difference", "definition": f"{a.ancova[0].treatment if a.ancova else 'treatment'}"
                          f" minus {a.allocation.reference} in post-visit value at equal baseline (ANCOVA)",
                          "sign": "positive = more inhibition in the treatment arm (CPM outcomes)"}])
    tables = {
        "results.csv": results, "sessions_summary.csv": summary.table, "analysis_dataset.csv": a.wide,
        "reactivation.csv": a.reactivation, "reliability_test_retest.csv": a.retest,
        "reliability_within_session.csv": a.within, "missing_data.csv": a.missing,
        "protocol_deviations.csv": a.deviations, "sign_convention.csv": sign,
        "warnings.csv": pd.DataFrame({"warning": summary.warnings + a.skipped}),
    }
    # protocol fidelity: sensitivity ANCOVA within protocol + fidelity table per arm and visit (analysis/fidelity.py)
    fidelity_html, fidelity_tables = fidelity_report_section(a, summary.table, _table)
    tables.update(fidelity_tables)
    model_files = []
    for i, r in enumerate(a.ancova, start=1):
        name = f"model_{i:02d}_{r.outcome.split(',')[0].split(' (')[0].lower().replace(' ', '_')}.csv"
        tables[name] = r.model_table
        model_files.append((name, r))
    try:
        for name, df in tables.items():
            df.to_csv(out / "tables" / name, index=False)
    except OSError as e:
        raise ReportError(f"cannot write tables into {out / 'tables'}: {e.strerror or e}") from e

    study_png = study_figure(a.wide, out / "figures" / "study_cpm.png", base_label=a.baseline_visit,
                             post_label=a.post_visit, reference=a.allocation.reference)
    session_links: list[tuple[str, str, str, str]] = []
    if session_plots != "none" and len(summary.table):
        rows = summary.table if session_plots == "all" else summary.table[flagged_sessions(summary.table)]
        for _, r in rows.iterrows():
            fn = f"{r['participant']}_{Path(str(r['path'])).name}.png"
            try:
                session_figure(r["path"], out / "figures" / "sessions" / fn)
            except (OSError, ValueError, KeyError, TypeError) as e:
                summary.warnings.append(f"{r['path']}: session figure failed ({e})")
                continue
            session_links.append((str(r["participant"]), str(r["visit"]), str(r["status"]), f"figures/sessions/{fn}"))

    p = a.primary()
    pct = int(round(CI_LEVEL * 100))
    if p is not None:
        answer = (f"Primary outcome CPM_abs at the {html.escape(a.post_visit)} visit, adjusted for baseline CPM_abs "
                  f"(ANCOVA, n = {p.n}): <b>{html.escape(p.treatment)} - {html.escape(p.reference)} = {p.estimate:.2f} "
                  f"rating points</b>, {pct} % CI {p.ci_low:.2f} to {p.ci_high:.2f}, p = {_fmt(p.p)} {SIGN_TAG}.")
    else:
        answer = "The primary ANCOVA could not be fitted: " + html.escape("; ".join(a.skipped) or "no data")
    blind = ("BLINDED: arms are shown as codes " + ", ".join(a.allocation.arms) + " (the reference, "
             f"{a.allocation.reference}, is the first code in the allocation file)") if a.allocation.blinded else \
        f"Unblinded: arms {', '.join(a.allocation.arms)}; reference arm {a.allocation.reference}."
    n_sessions = len(summary.table)
    status_counts = summary.table["status"].value_counts().to_dict() if n_sessions else {}

    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>CPM trial report</title>"
             f"<style>{CSS}</style></head><body>",
             "<h1>CPM trial report</h1>",
             f"<p class='muted'>Generated {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')} by cpm-session "
             f"{__version__} from <code>{html.escape(str(data_dir))}</code>: {n_sessions} session folder(s) "
             f"({', '.join(f'{k} {v}' for k, v in status_counts.items())}); visits {html.escape(a.baseline_visit)} → "
             f"{html.escape(a.post_visit)}.</p>",
             f"<p class='sign'><b>Sign convention {SIGN_TAG}.</b> {html.escape(SIGN_CONVENTION)}</p>",
             f"<p>{html.escape(blind)}</p>",
             f"<p class='answer'>{answer}</p>",
             f"<h2>Results: ANCOVA post ~ arm + baseline {SIGN_TAG}</h2>",
             "<p class='muted'>adjusted_difference = treatment minus reference at equal baseline; "
             "slopes_homogeneity = F test of the arm × baseline interaction (p &lt; 0.05 questions the common slope); "
             "shapiro = Shapiro-Wilk test of the residuals.</p>",
             _table(_main_results(results)),
             "<h3>Assumption checks</h3>", _table(_checks(results)), _assumption_notes(a),
             fidelity_html,  # protocol fidelity (analysis/fidelity.py)
             _img_embedded(study_png, "baseline vs post CPM per participant and CPM change by arm"),
             f"<h2>Model tables {SIGN_TAG}</h2>"]
    for name, r in model_files:
        parts.append(f"<h3>{html.escape(r.outcome)} — <code>{html.escape(r.formula)}</code> "
                     f"(<a href='tables/{name}'>{name}</a>)</h3>")
        parts.append(_table(r.model_table.drop(columns=["outcome"], errors="ignore")))
    if a.skipped:
        parts.append("<p class='warn'>Not fitted: " + html.escape("; ".join(a.skipped)) + "</p>")
    parts += [f"<h2>Reactivated CPM {SIGN_TAG}</h2>",
              "<p class='muted'>Participants without inhibition at baseline (category none or facilitation) who show "
              "inhibition at the post visit; category threshold from each session's protocol "
              "(analysis.cpm_threshold_abs).</p>", _table(a.reactivation),
              f"<h2>Reliability {SIGN_TAG}</h2>",
              f"<p class='muted'>Test-retest between {html.escape(a.baseline_visit)} and {html.escape(a.post_visit)}, "
              f"sample: {html.escape(a.retest_sample)}. ICC(3,1) = two-way mixed, consistency, single measurement "
              "(Shrout &amp; Fleiss 1979); ICC(A,1) = two-way random, absolute agreement (= ICC(2,1)); both from a "
              "two-way ANOVA. SEM = √MS<sub>error</sub>; SRD95 = 1.96·√2·SEM (smallest real difference).</p>",
              _table(a.retest),
              "<h3>Within-session reliability of the repeated TS_pre ratings</h3>", _table(a.within),
              "<h2>Missing data</h2>", _table(a.missing),
              "<h2>Protocol deviations, amendments, resumed sessions</h2>", _table(a.deviations),
              "<h2>Warnings</h2>"]
    warns = summary.warnings + a.skipped
    parts.append("<ul>" + "".join(f"<li class='warn'>{html.escape(w)}</li>" for w in warns) + "</ul>" if warns
                 else "<p class='muted'>(none)</p>")
    parts.append("<h2>Tables (CSV)</h2><ul>" + "".join(f"<li><a href='tables/{n}'>{n}</a></li>" for n in tables) + "</ul>")
    if session_links:
        which = {"all": "every session", "flagged": "sessions that need a look (not completed, deviations, amended, "
                 "resumed, early withdrawal or missing data)"}[session_plots]
        parts.append(f"<h2>Session figures</h2><p class='muted'>{which}: thermode trace with stimulus onsets and ratings, bath "
                     "temperature during the cold pressor, calibration fit with the chosen Pain-60.</p><ul>")
        parts += [f"<li><details><summary><a href='{html.escape(link)}'>{html.escape(pid)} / {html.escape(vis)} "
                  f"({html.escape(st)})</a></summary><img loading='lazy' alt='session figure' src='{html.escape(link)}'>"
                  "</details></li>" for pid, vis, st, link in session_links]
        parts.append("</ul>")
    parts.append("</body></html>")
    page = out / "report.html"
    try:
        page.write_text("\n".join(parts), encoding="utf-8")
    except OSError as e:
        raise ReportError(f"cannot write {page}: {e.strerror or e}") from e
    return page
