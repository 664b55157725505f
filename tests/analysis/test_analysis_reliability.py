"""ICC forms checked against Shrout & Fleiss (1979), Table 2 (6 targets x 4 judges) and its published ICCs."""

from __future__ import annotations

import numpy as np
import pytest

from cpm_session.analysis.constants import SRD_FACTOR
from cpm_session.analysis.reliability import icc

SHROUT_FLEISS = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]


def test_shrout_fleiss_mean_squares_and_iccs() -> None:
    r = icc(SHROUT_FLEISS)
    # mean squares of their Table 2 (BMS, JMS, EMS, WMS)
    assert (round(r.msr, 2), round(r.msc, 2), round(r.mse, 2), round(r.msw, 2)) == (11.24, 32.49, 1.02, 6.26)
    # published ICCs (Table 4): .17 .29 .71 .44 .62 .91
    assert [round(v, 2) for v in (r.icc1_1, r.icc2_1, r.icc3_1, r.icc1_k, r.icc2_k, r.icc3_k)] == \
        [0.17, 0.29, 0.71, 0.44, 0.62, 0.91]
    # exact values from the sums of squares: ICC(3,1) = (MSR - MSE) / (MSR + 3 MSE)
    ss_rows, ss_cols, ss_tot = 56.208333333, 97.458333333, 168.958333333
    msr, mse = ss_rows / 5, (ss_tot - ss_rows - ss_cols) / 15
    assert r.icc3_1 == pytest.approx((msr - mse) / (msr + 3 * mse), abs=1e-8)
    # intervals as published for this data set (pingouin's documentation reproduces them)
    assert (round(r.icc3_1_ci_low, 2), round(r.icc3_1_ci_high, 2)) == (0.34, 0.95)
    assert (round(r.icc2_1_ci_low, 2), round(r.icc2_1_ci_high, 2)) == (0.02, 0.76)
    assert (r.n, r.k) == (6, 4)


def test_sem_and_srd() -> None:
    r = icc(SHROUT_FLEISS)
    assert r.sem == pytest.approx(np.sqrt(r.mse), abs=1e-12)
    assert r.srd == pytest.approx(1.959963984540054 * np.sqrt(2) * r.sem, abs=1e-12)
    assert SRD_FACTOR == pytest.approx(2.771807, abs=1e-6)


def test_perfect_consistency_with_offset() -> None:
    base = np.array([10.0, 20.0, 35.0, 50.0, 61.0])
    r = icc(np.column_stack([base, base + 5.0]))
    assert r.icc3_1 == pytest.approx(1.0, abs=1e-12)  # consistency ignores the constant shift
    assert r.icc2_1 < 1.0  # absolute agreement does not
    assert r.mean_difference == pytest.approx(5.0)
    assert r.sem == pytest.approx(0.0, abs=1e-12)


def test_incomplete_rows_dropped_and_too_small_refused() -> None:
    m = np.array(SHROUT_FLEISS + [[1.0, np.nan, 2.0, 3.0]], dtype=float)
    assert icc(m).icc3_1 == pytest.approx(icc(SHROUT_FLEISS).icc3_1, abs=1e-12)
    with pytest.raises(ValueError, match="at least 2"):
        icc([[1.0, 2.0]])
    with pytest.raises(ValueError, match="n x k"):
        icc([1.0, 2.0, 3.0])
