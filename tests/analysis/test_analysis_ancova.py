"""ANCOVA: a hand-worked example and agreement with a direct statsmodels formula fit, to 6 decimals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.anova import anova_lm

from cpm_session.analysis.ancova import AnalysisError, fit_ancova


def hand_data() -> pd.DataFrame:
    # reference arm R: x = 1,2,3; y = 2,3,5   treatment arm T: x = 2,3,4; y = 4,6,7
    return pd.DataFrame({"arm": ["R"] * 3 + ["T"] * 3, "cpm_base": [1, 2, 3, 2, 3, 4], "cpm_post": [2, 3, 5, 4, 6, 7]})


def test_hand_worked_example_to_6_decimals() -> None:
    # Pooled within-arm slope b = (3 + 3) / (2 + 2) = 1.5.
    # Adjusted difference = (17/3 - 10/3) - 1.5 * (3 - 2) = 5/6.
    # Residuals +-1/6, -+1/3, +-1/6 in each arm: SSE = 1/3, df = 6 - 3 = 3, s^2 = 1/9.
    # Var(diff) = s^2 * (1/3 + 1/3 + (3 - 2)^2 / 4) = 11/108.
    r = fit_ancova(hand_data(), "cpm_post", "cpm_base", reference="R")
    se = math.sqrt(11 / 108)
    t_crit = stats.t.ppf(0.975, 3)
    assert (r.reference, r.treatment, r.n, r.n_reference, r.n_treatment) == ("R", "T", 6, 3, 3)
    assert r.estimate == pytest.approx(5 / 6, abs=1e-6)
    assert r.baseline_slope == pytest.approx(1.5, abs=1e-6)
    assert r.se == pytest.approx(se, abs=1e-6)
    assert round(r.se, 6) == 0.319142
    assert r.ci_low == pytest.approx(5 / 6 - t_crit * se, abs=1e-6)
    assert r.ci_high == pytest.approx(5 / 6 + t_crit * se, abs=1e-6)
    assert r.p == pytest.approx(2 * stats.t.sf((5 / 6) / se, 3), abs=1e-6)
    assert r.df_resid == 3
    # intercept of the reference arm: 10/3 - 1.5 * 2 = 1/3
    assert r.model_table.loc[r.model_table["term"] == "Intercept", "coef"].item() == pytest.approx(1 / 3, abs=1e-6)
    # adjusted means at the grand mean of x (2.5)
    assert r.adj_mean_reference == pytest.approx(1 / 3 + 1.5 * 2.5, abs=1e-6)
    assert r.adj_mean_treatment == pytest.approx(1 / 3 + 1.5 * 2.5 + 5 / 6, abs=1e-6)


def test_reference_choice_flips_the_sign() -> None:
    r = fit_ancova(hand_data(), "cpm_post", "cpm_base", reference="T")
    assert (r.reference, r.treatment) == ("T", "R")
    assert r.estimate == pytest.approx(-5 / 6, abs=1e-9)


def generated_trial(n_per_arm: int = 60, effect: float = 8.0, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    arm = np.array(["milnacipran"] * n_per_arm + ["placebo"] * n_per_arm)
    base = rng.normal(5, 10, 2 * n_per_arm)
    post = 2.0 + 0.5 * base + np.where(arm == "milnacipran", effect, 0.0) + rng.normal(0, 6, 2 * n_per_arm)
    return pd.DataFrame({"participant": [f"P{i:03d}" for i in range(2 * n_per_arm)], "arm": arm,
                         "cpm_base": base, "cpm_post": post})


def test_matches_direct_statsmodels_formula_fit_and_covers_known_effect() -> None:
    df = generated_trial()
    direct = smf.ols("cpm_post ~ C(arm) + cpm_base", data=df).fit()
    r = fit_ancova(df, "cpm_post", "cpm_base", reference="placebo")
    # the direct fit's reference is 'milnacipran' (alphabetical): its coefficient is placebo - milnacipran
    name = "C(arm)[T.placebo]"
    assert r.estimate == pytest.approx(-direct.params[name], abs=1e-6)
    assert r.se == pytest.approx(direct.bse[name], abs=1e-6)
    assert r.p == pytest.approx(direct.pvalues[name], abs=1e-6)
    ci = direct.conf_int().loc[name]
    assert (r.ci_low, r.ci_high) == (pytest.approx(-ci[1], abs=1e-6), pytest.approx(-ci[0], abs=1e-6))
    assert r.baseline_slope == pytest.approx(direct.params["cpm_base"], abs=1e-6)
    assert r.r2 == pytest.approx(direct.rsquared, abs=1e-9)
    assert r.ci_low < 8.0 < r.ci_high
    # same reference as the direct fit: identical numbers
    r2 = fit_ancova(df, "cpm_post", "cpm_base", reference="milnacipran")
    assert r2.estimate == pytest.approx(direct.params[name], abs=1e-6)


def test_assumption_checks_match_direct_computation() -> None:
    df = generated_trial(seed=9)
    r = fit_ancova(df, "cpm_post", "cpm_base", reference="placebo")
    main = smf.ols("cpm_post ~ C(arm) + cpm_base", data=df).fit()
    inter = smf.ols("cpm_post ~ C(arm) * cpm_base", data=df).fit()
    cmp = anova_lm(main, inter)
    assert r.slopes_f == pytest.approx(cmp["F"].iloc[1], abs=1e-6)
    assert r.slopes_p == pytest.approx(cmp["Pr(>F)"].iloc[1], abs=1e-6)
    # the interaction test of a 2-arm model equals the squared t of the interaction term
    assert r.slopes_f == pytest.approx(inter.tvalues.iloc[-1] ** 2, abs=1e-6)
    sw = stats.shapiro(main.resid)
    assert (r.shapiro_w, r.shapiro_p) == (pytest.approx(sw.statistic, abs=1e-9), pytest.approx(sw.pvalue, abs=1e-9))


def test_rows_with_missing_values_are_dropped() -> None:
    df = hand_data()
    extra = pd.DataFrame({"arm": ["R", "T"], "cpm_base": [np.nan, 1.0], "cpm_post": [9.0, None]})
    r = fit_ancova(pd.concat([df, extra], ignore_index=True), "cpm_post", "cpm_base", reference="R")
    assert r.n == 6 and r.estimate == pytest.approx(5 / 6, abs=1e-9)


def test_refuses_one_arm_or_too_few() -> None:
    df = hand_data()
    with pytest.raises(AnalysisError, match="two arms"):
        fit_ancova(df[df["arm"] == "R"], "cpm_post", "cpm_base")
    with pytest.raises(AnalysisError, match="too few"):
        fit_ancova(df.iloc[[0, 1, 2, 3]], "cpm_post", "cpm_base")
    with pytest.raises(AnalysisError, match="missing"):
        fit_ancova(df, "nope", "cpm_base")
