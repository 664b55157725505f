"""ANCOVA of a post-treatment outcome with arm as factor and the baseline value as covariate.

Model: ``y_post ~ C(arm, Treatment(reference)) + y_base`` fitted by OLS (statsmodels formula API).
The adjusted difference is the arm coefficient: treatment minus reference at equal baseline.
Assumption checks: homogeneity of regression slopes (F test of the arm x baseline interaction against
the main-effects model) and Shapiro-Wilk of the residuals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.anova import anova_lm

from cpm_session.analysis.constants import CI_LEVEL, MIN_PER_ARM
from cpm_session.errors import CpmError


class AnalysisError(CpmError):
    """The data cannot support the requested analysis (too few participants, one arm only, ...)."""


@dataclass
class AncovaResult:
    """One fitted ANCOVA: the adjusted treatment effect, its model table and the assumption checks."""

    outcome: str
    reference: str
    treatment: str
    n: int
    n_reference: int
    n_treatment: int
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    p: float
    df_resid: float
    baseline_slope: float
    adj_mean_reference: float
    adj_mean_treatment: float
    slopes_f: float
    slopes_p: float
    shapiro_w: float
    shapiro_p: float
    r2: float
    model_table: pd.DataFrame
    formula: str

    def summary_row(self) -> dict[str, object]:
        """Return the result as one flat row for the results table."""
        return {
            "outcome": self.outcome, "comparison": f"{self.treatment} - {self.reference}", "n": self.n,
            f"n_{self.reference}": self.n_reference, f"n_{self.treatment}": self.n_treatment,
            "adj_mean_reference": self.adj_mean_reference, "adj_mean_treatment": self.adj_mean_treatment,
            "adjusted_difference": self.estimate, "se": self.se, "ci_low": self.ci_low, "ci_high": self.ci_high,
            "p": self.p, "df_resid": self.df_resid, "baseline_slope": self.baseline_slope, "r2": self.r2,
            "slopes_homogeneity_F": self.slopes_f, "slopes_homogeneity_p": self.slopes_p,
            "shapiro_W": self.shapiro_w, "shapiro_p": self.shapiro_p, "formula": self.formula,
        }


def fit_ancova(data: pd.DataFrame, post: str, base: str, *, arm: str = "arm", reference: str | None = None,
               outcome: str | None = None, alpha: float = 1.0 - CI_LEVEL) -> AncovaResult:
    """Fit ``post ~ C(arm) + base`` on the complete rows of `data`; return the adjusted arm difference.

    `reference` is the arm the other is compared with (default: the first in sorted order). Exactly two
    arms with at least MIN_PER_ARM complete rows each are required (AnalysisError otherwise).
    """
    for col in (post, base, arm):
        if col not in data.columns:
            raise AnalysisError(f"column {col!r} is missing from the data (have {list(data.columns)})")
    d = pd.DataFrame({"y": pd.to_numeric(data[post], errors="coerce"), "x": pd.to_numeric(data[base], errors="coerce"),
                      "g": data[arm].astype("string")}).dropna().reset_index(drop=True)
    d["g"] = d["g"].astype(str)
    arms = sorted(d["g"].unique())
    if len(arms) != 2:
        raise AnalysisError(f"{outcome or post}: need exactly two arms with complete data, found {arms}")
    ref: str = reference if reference is not None and reference in arms else arms[0]
    treatment = arms[1] if arms[0] == ref else arms[0]
    counts = d["g"].value_counts()
    if min(counts) < MIN_PER_ARM:
        raise AnalysisError(f"{outcome or post}: too few complete participants per arm ({dict(counts)}; "
                            f"need {MIN_PER_ARM})")
    if len(d) < 4:
        raise AnalysisError(f"{outcome or post}: {len(d)} complete participants are too few for the model")
    term = f"C(g, Treatment(reference={ref!r}))"
    formula = f"y ~ {term} + x"
    model = smf.ols(formula, data=d).fit()
    coef_name = f"{term}[T.{treatment}]"
    ci = model.conf_int(alpha=alpha)
    est = float(model.params[coef_name])
    xbar = float(d["x"].mean())
    adj_ref = float(model.params["Intercept"] + model.params["x"] * xbar)

    inter = smf.ols(f"y ~ {term} * x", data=d).fit()
    if inter.df_resid > 0:
        cmp = anova_lm(model, inter)
        slopes_f, slopes_p = float(cmp["F"].iloc[1]), float(cmp["Pr(>F)"].iloc[1])
    else:
        slopes_f = slopes_p = float("nan")
    resid = np.asarray(model.resid)
    if len(resid) >= 3 and np.ptp(resid) > 0:
        sw = stats.shapiro(resid)
        shapiro_w, shapiro_p = float(sw.statistic), float(sw.pvalue)
    else:
        shapiro_w = shapiro_p = float("nan")

    names = {"Intercept": "Intercept", coef_name: f"arm[{treatment} vs {ref}]", "x": f"baseline {base}"}
    table = pd.DataFrame({
        "outcome": outcome or post, "term": [names.get(k, k) for k in model.params.index], "coef": model.params.values, "se": model.bse.values,
        "t": model.tvalues.values, "p": model.pvalues.values, "ci_low": ci[0].values, "ci_high": ci[1].values,
    })
    return AncovaResult(
        outcome=outcome or post, reference=ref, treatment=treatment, n=int(len(d)),
        n_reference=int(counts[ref]), n_treatment=int(counts[treatment]), estimate=est,
        se=float(model.bse[coef_name]), ci_low=float(ci.loc[coef_name, 0]), ci_high=float(ci.loc[coef_name, 1]),
        p=float(model.pvalues[coef_name]), df_resid=float(model.df_resid), baseline_slope=float(model.params["x"]),
        adj_mean_reference=adj_ref, adj_mean_treatment=adj_ref + est, slopes_f=slopes_f, slopes_p=slopes_p,
        shapiro_w=shapiro_w, shapiro_p=shapiro_p, r2=float(model.rsquared), model_table=table,
        formula=f"{post} ~ C({arm}, reference={ref}) + {base}",
    )
