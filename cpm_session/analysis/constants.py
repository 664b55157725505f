"""Every number and label the analysis uses, in one place."""

from __future__ import annotations

SIGN_TAG = "(positive = inhibition)"
"""Appended to every CPM table header and shown in the report."""

SIGN_CONVENTION = (
    "CPM_abs = TS_pre - TS_post (rating points, 0-100 scale); CPM_pct = CPM_abs / TS_pre * 100 (%). "
    "Positive = inhibition (the conditioning stimulus reduced test-stimulus pain); negative = facilitation."
)

DEFAULT_CPM_THRESHOLD_ABS = 5.0
"""Rating points; used only when neither the session nor its protocol file gives `analysis.cpm_threshold_abs`."""

DEFAULT_CPM_PCT_MIN_TS_PRE = 10.0
"""Rating points; CPM_pct is null below this TS_pre when neither the session nor its protocol gives
`analysis.cpm_pct_min_ts_pre`."""

CI_LEVEL = 0.95
"""Confidence level of every interval in the analysis."""

SRD_FACTOR = 1.959963984540054 * 2 ** 0.5
"""Smallest real difference = 1.96 * sqrt(2) * SEM (95 % of test-retest differences lie inside it)."""

BLINDED_LABELS = tuple("ABCDEFGH")
"""Arm labels shown while the trial is blinded, in order of first appearance in the allocation file."""

SECONDARY_OUTCOMES = {
    "nrs_pain": "NRS pain (0-10)",
    "fiqr_total": "FIQR total (0-100)",
    "hads_anxiety": "HADS anxiety (0-21)",
    "hads_depression": "HADS depression (0-21)",
}
"""Summary column -> label; each is analysed when both visits have it for enough participants."""

HADS_BANDS = ((7, "normal"), (10, "borderline"), (21, "abnormal"))
"""HADS subscale bands (Zigmond & Snaith 1983): upper score of each band; a score between two bands goes to the lower."""

REGRESSION_TO_THE_MEAN = (
    "Regression to the mean: participants picked for weak or absent CPM at baseline will, on average, show more "
    "CPM at the next visit even if nothing changed, because part of their low baseline value was measurement "
    "error. 'Reactivated' counts are therefore inflated in every arm; only the comparison with the control arm "
    "(the Fisher test) speaks to the treatment, and the ANCOVA of CPM_abs (adjusted for baseline) is the primary "
    "analysis. Categories use the SRD95 of CPM_abs so that a change of category is larger than measurement error."
)

COMPLETE_CASE = (
    "Complete-case analysis: each outcome's model uses the participants with a usable value at both visits; "
    "no value is imputed. Participants left out and why are listed under Missing data. Results are unbiased "
    "only if data are missing completely at random given arm and baseline."
)

MIN_PER_ARM = 2
"""Fewest participants per arm with both visits for a model to be fitted."""

STATUSES_WITH_RESULTS = ("completed",)
"""Session status whose CPM enters the trial analysis (others are listed as missing data)."""

PLOT_DPI = 110
FIGSIZE_SESSION = (10.0, 9.0)
FIGSIZE_STUDY = (10.0, 4.5)
