"""Sufficient statistics reproduce least squares on the raw samples."""

import numpy as np
import pytest

from flowmm.calibrate.regression import BlockStats, fit, oos_errors, single_fit, total


def _data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3))
    y = 0.3 + 0.5 * x[:, 0] - 0.2 * x[:, 2] + rng.standard_normal(n)
    return x, y


def test_blocks_add_up_to_the_full_least_squares_fit():
    x, y = _data(3000, 1)
    blocks = []
    for lo in range(0, 3000, 700):
        b = BlockStats(3)
        b.add(x[lo : lo + 700], y[lo : lo + 700])
        blocks.append(b)
    g = total(blocks, 3).gram
    beta = fit(g, [0, 2])
    ref = np.linalg.lstsq(np.column_stack([np.ones(3000), x[:, 0], x[:, 2]]), y, rcond=None)[0]
    np.testing.assert_allclose(beta, ref, rtol=1e-10)


def test_out_of_sample_errors_match_direct_computation():
    x, y = _data(2000, 2)
    train, test = BlockStats(3), BlockStats(3)
    train.add(x[:1200], y[:1200])
    test.add(x[1200:], y[1200:])
    sse, sst = oos_errors(train.gram, test.gram, [0, 1])
    a = np.column_stack([np.ones(1200), x[:1200, :2]])
    beta = np.linalg.lstsq(a, y[:1200], rcond=None)[0]
    pred = beta[0] + x[1200:, :2] @ beta[1:]
    assert sse == pytest.approx(np.sum((y[1200:] - pred) ** 2), rel=1e-10)
    assert sst == pytest.approx(np.sum((y[1200:] - y[:1200].mean()) ** 2), rel=1e-10)
    # the intercept-only model has zero out-of-sample R2 by construction
    sse0, sst0 = oos_errors(train.gram, test.gram, [])
    assert sse0 == pytest.approx(sst0, rel=1e-12)


def test_missing_values_count_as_zero_in_the_joint_fit_and_are_skipped_alone():
    x, y = _data(500, 3)
    x[::7, 1] = np.nan
    b = BlockStats(3)
    b.add(x, y)
    x0 = np.where(np.isfinite(x), x, 0.0)
    v = np.column_stack([np.ones(500), x0, y])
    np.testing.assert_allclose(b.gram, v.T @ v, rtol=1e-12)
    ok = np.isfinite(x[:, 1])
    f = single_fit(b.moments[1], b.wmoments[1])
    slope, icpt = np.polyfit(x[ok, 1], y[ok], 1)
    assert f.n == ok.sum()
    assert f.slope == pytest.approx(slope, rel=1e-9) and f.intercept == pytest.approx(icpt, rel=1e-9)


def test_sigma_is_the_residual_sd_per_unit_of_each_observation_scale():
    rng = np.random.default_rng(4)
    n = 20000
    x = rng.standard_normal(n)
    scale = rng.uniform(0.25, 4.0, n)  # the node's R at sigma = 1 (e.g. 1 / depth)
    y = 0.1 + 0.7 * x + 0.3 * np.sqrt(scale) * rng.standard_normal(n)
    b = BlockStats(1)
    b.add(x[:, None], y, scale[:, None])
    f = single_fit(b.moments[0], b.wmoments[0])
    resid = y - f.intercept - f.slope * x
    assert f.sigma == pytest.approx(np.sqrt(np.sum(resid**2 / scale) / (n - 2)), rel=1e-9)
    assert f.sigma == pytest.approx(0.3, rel=0.03)
    assert f.resid_sd == pytest.approx(np.std(resid, ddof=2), rel=1e-9)


def test_a_constant_feature_gives_no_slope_and_no_crash():
    b = BlockStats(1)
    b.add(np.ones((50, 1)), np.arange(50.0))
    f = single_fit(b.moments[0], b.wmoments[0])
    assert np.isnan(f.slope) and f.x_sd == 0.0
    assert np.all(np.isfinite(fit(b.gram, [0])))
