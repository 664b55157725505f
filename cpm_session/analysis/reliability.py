"""Intraclass correlations from a two-way ANOVA (Shrout & Fleiss 1979; McGraw & Wong 1996), SEM and SRD.

For an n x k matrix (n subjects, k sessions/raters/trials, complete rows only):

- ICC(1,1)  one-way random:                    (MSR - MSW) / (MSR + (k-1) MSW)
- ICC(2,1) = ICC(A,1), two-way, absolute agreement: (MSR - MSE) / (MSR + (k-1) MSE + k (MSC - MSE) / n)
- ICC(3,1) = ICC(C,1), two-way mixed, consistency:   (MSR - MSE) / (MSR + (k-1) MSE)
- ICC(.,k): the same for the mean of k measurements.

SEM = sqrt(MSE) (the within-subject error of the two-way model, Weir 2005) and the smallest real
difference SRD = 1.96 * sqrt(2) * SEM: a change between two measurements larger than it exceeds
measurement error with 95 % confidence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from cpm_session.analysis.constants import CI_LEVEL, SRD_FACTOR


@dataclass
class IccResult:
    """ICCs of every Shrout-Fleiss form with the ANOVA mean squares they come from."""

    n: int
    k: int
    msr: float
    msc: float
    mse: float
    msw: float
    icc1_1: float
    icc2_1: float
    icc3_1: float
    icc1_k: float
    icc2_k: float
    icc3_k: float
    icc3_1_ci_low: float
    icc3_1_ci_high: float
    icc2_1_ci_low: float
    icc2_1_ci_high: float
    sem: float
    srd: float
    mean_difference: float

    def as_dict(self) -> dict[str, float]:
        """Return every field as a flat dict."""
        return asdict(self)


def icc(matrix: np.ndarray | list[list[float]], alpha: float = 1.0 - CI_LEVEL) -> IccResult:
    """Return the ICCs of an n x k matrix (rows with any NaN are dropped; needs n >= 2, k >= 2)."""
    y = np.asarray(matrix, dtype=float)
    if y.ndim != 2:
        raise ValueError(f"expected an n x k matrix, got shape {y.shape}")
    y = y[~np.isnan(y).any(axis=1)]
    n, k = y.shape
    if n < 2 or k < 2:
        raise ValueError(f"need at least 2 complete subjects and 2 measurements, got {n} x {k}")
    grand = y.mean()
    ss_total = ((y - grand) ** 2).sum()
    ss_rows = k * ((y.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((y.mean(axis=0) - grand) ** 2).sum()
    ss_err = max(ss_total - ss_rows - ss_cols, 0.0)  # rounding can make an exact fit slightly negative
    msr = ss_rows / (n - 1)
    msc = ss_cols / (k - 1)
    mse = ss_err / ((n - 1) * (k - 1))
    msw = (ss_cols + ss_err) / (n * (k - 1))
    with np.errstate(divide="ignore", invalid="ignore"):  # no between-subject variance: NaN, not a warning
        icc1_1 = (msr - msw) / (msr + (k - 1) * msw)
        icc2_1 = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
        icc3_1 = (msr - mse) / (msr + (k - 1) * mse)
        icc1_k = (msr - msw) / msr
        icc2_k = (msr - mse) / (msr + (msc - mse) / n)
        icc3_k = (msr - mse) / msr

    # ICC(3,1) interval (Shrout & Fleiss 1979, eq. 11-12)
    df1, df2 = n - 1, (n - 1) * (k - 1)
    if mse > 0 and msr > 0:
        f_obs = msr / mse
        fl = f_obs / stats.f.ppf(1 - alpha / 2, df1, df2)
        fu = f_obs * stats.f.ppf(1 - alpha / 2, df2, df1)
        c3_lo, c3_hi = (fl - 1) / (fl + k - 1), (fu - 1) / (fu + k - 1)
    elif mse == 0:  # no error variance: the consistency is perfect
        c3_lo = c3_hi = 1.0
    else:
        c3_lo = c3_hi = float("nan")
    # ICC(2,1) interval (McGraw & Wong 1996, case 2A, Satterthwaite df)
    a = k * icc2_1 / (n * (1 - icc2_1)) if icc2_1 < 1 else np.inf
    b = 1 + k * icc2_1 * (n - 1) / (n * (1 - icc2_1)) if icc2_1 < 1 else np.inf
    with np.errstate(divide="ignore", invalid="ignore"):
        v = (a * msc + b * mse) ** 2 / ((a * msc) ** 2 / (k - 1) + (b * mse) ** 2 / ((n - 1) * (k - 1)))
        fs_l = stats.f.ppf(1 - alpha / 2, n - 1, v)
        fs_u = stats.f.ppf(1 - alpha / 2, v, n - 1)
        c2_lo = n * (msr - fs_l * mse) / (fs_l * (k * msc + (k * n - k - n) * mse) + n * msr)
        c2_hi = n * (fs_u * msr - mse) / (k * msc + (k * n - k - n) * mse + n * fs_u * msr)
    sem = float(np.sqrt(mse))
    return IccResult(
        n=int(n), k=int(k), msr=float(msr), msc=float(msc), mse=float(mse), msw=float(msw),
        icc1_1=float(icc1_1), icc2_1=float(icc2_1), icc3_1=float(icc3_1), icc1_k=float(icc1_k),
        icc2_k=float(icc2_k), icc3_k=float(icc3_k), icc3_1_ci_low=float(c3_lo), icc3_1_ci_high=float(c3_hi),
        icc2_1_ci_low=float(c2_lo), icc2_1_ci_high=float(c2_hi), sem=sem, srd=float(SRD_FACTOR * sem),
        mean_difference=float(y[:, -1].mean() - y[:, 0].mean()),
    )
