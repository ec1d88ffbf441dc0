"""estimators.online_params: sigma_mu by covariance matching, kappa_mu from return autocorrelation."""

import math

import numpy as np
import pytest

from flowmm.testing import NodeHarness, run_node

S = 1_000_000_000
T0 = 1_700_000_000 * S


def _ou(n, kappa, sigma_mu, dt, rng):
    a = math.exp(-kappa * dt)
    sd = sigma_mu * math.sqrt((1 - a * a) / (2 * kappa))
    mu = np.empty(n)
    m = rng.normal(0, sigma_mu / math.sqrt(2 * kappa))
    for i in range(n):
        m = m * a + sd * rng.normal()
        mu[i] = m
    return mu


def _kalman(z, r, kappa, sigma_mu, dt):
    """Plain exact-OU Kalman filter with observations z of variance r every dt."""
    a = math.exp(-kappa * dt)
    q = sigma_mu**2 * (1 - a * a) / (2 * kappa)
    m, p = 0.0, sigma_mu**2 / (2 * kappa)
    out_m, out_p = np.empty(len(z)), np.empty(len(z))
    for i, zz in enumerate(z):
        m, p = m * a, p * a * a + q
        k = p / (p + r)
        m, p = m + k * (zz - m), (1 - k) * p
        out_m[i], out_p[i] = m, p
    return out_m, out_p


def test_sigma_mu_hand_computation():
    h = NodeHarness("estimators.online_params", {"kappa_mu": 0.05, "half_life_s": 10.0})
    out = h.step(T0, mu_hat=0.1, P=0.004)
    assert out.emitted == set()  # the first state only seeds
    out = h.step(T0 + 2 * S, mu_hat=0.05, P=0.003)
    a = math.exp(-0.1)
    q1 = (0.05 - a * 0.1) ** 2 + 0.003 - a * a * 0.004
    g1 = (1 - a * a) / 0.1
    assert out["sigma_mu_var"] == pytest.approx(q1 / g1, rel=1e-12)
    out = h.step(T0 + 5 * S, mu_hat=-0.02, P=0.0035)
    b = math.exp(-0.15)
    w = 2 ** (-3 / 10)
    q2 = (-0.02 - b * 0.05) ** 2 + 0.0035 - b * b * 0.003
    g2 = (1 - b * b) / 0.1
    v = (w * q1 + q2) / (w * g1 + g2)
    assert out["sigma_mu_var"] == pytest.approx(v, rel=1e-12)
    assert out["sigma_mu"] == pytest.approx(math.sqrt(v) if v > 1e-8 else 1e-4, rel=1e-12)
    assert out.emitted == {"sigma_mu", "sigma_mu_var"}


def test_sigma_mu_edges():
    h = NodeHarness("estimators.online_params", {"sigma_mu_min": 0.002})
    h.step(T0, mu_hat=math.nan, P=0.01)
    assert h.step(T0 + S, mu_hat=0.0, P=-1.0).emitted == set()  # NaN, P < 0: ignored
    h.step(T0 + 2 * S, mu_hat=0.0, P=0.0025)  # seeds
    assert h.step(T0 + 2 * S, mu_hat=0.1, P=0.0025).emitted == set()  # zero elapsed time
    out = h.step(T0 + 3 * S, mu_hat=0.0, P=0.0)  # P collapsed: a negative ratio, floored
    assert out["sigma_mu_var"] < 0 and out["sigma_mu"] == 0.002


@pytest.mark.parametrize("every", [1, 7])
def test_sigma_mu_recovered_from_a_correct_filter_on_any_tier(every):
    kappa, sigma_mu, sigma, dt = 0.02, 0.01, 0.3, 1.0
    rng = np.random.default_rng(3)
    mu = _ou(20_000, kappa, sigma_mu, dt, rng)
    z = mu + rng.normal(0, sigma / math.sqrt(dt), mu.size)
    m, p = _kalman(z, sigma**2 / dt, kappa, sigma_mu, dt)
    sl = slice(every - 1, None, every)  # a slower node sees every 7th filter state
    t = (T0 + np.arange(1, mu.size + 1) * S)[sl]
    res = run_node("estimators.online_params", {"kappa_mu": kappa}, times=t, mu_hat=m[sl], P=p[sl])
    est = res["sigma_mu"][len(t) // 10 :]
    assert np.median(est) == pytest.approx(sigma_mu, rel=0.05)  # 60-s window: noisy, unbiased
    long = run_node(
        "estimators.online_params", {"kappa_mu": kappa, "half_life_s": 1e5}, times=t, mu_hat=m[sl], P=p[sl]
    )
    assert long["sigma_mu"][-1] == pytest.approx(sigma_mu, rel=0.03)


def test_kappa_mu_recovered_from_return_autocorrelation():
    kappa, sigma_mu, sigma = 0.02, 0.05, 0.3  # a strongly drifting market (stationary sd 0.25 bps/s)
    rng = np.random.default_rng(5)
    n = 6 * 3600  # 6 h of 1-s prices
    mu = _ou(n, kappa, sigma_mu, 1.0, rng)
    r = mu + sigma * rng.normal(size=n)  # bps per 1-s step
    px = 28.0 * np.exp(np.cumsum(r) * 1e-4)
    t = T0 + np.arange(1, n + 1) * S
    nan = np.full(n, math.nan)
    res = run_node(
        "estimators.online_params",
        {"kappa_mu": kappa, "acf_half_life_s": 1e6},
        times=t,
        mu_hat=nan,
        P=nan,
        price=px,
    )
    assert res.emitted["kappa_mu"].any() and not res.emitted["sigma_mu"].any()
    assert res["kappa_mu"][-1] == pytest.approx(kappa, rel=0.35)
    # the lag-1 autocorrelation of 10-s returns against the OU value
    h = 10.0
    v = sigma_mu**2 / (2 * kappa)
    b = (1 - math.exp(-kappa * h)) / kappa
    c1 = v * b * b  # cov(r_i, r_{i+1}) up to the within-bin correction
    c0 = sigma**2 * h + 2 * v * (h - b) / kappa
    assert res["acf1"][-1] == pytest.approx(c1 / c0, abs=0.1)


def test_kappa_mu_gap_restarts_the_lags():
    h = NodeHarness("estimators.online_params", {"grid_s": 1.0})
    nan = dict(mu_hat=math.nan, P=math.nan)
    for k, p in enumerate([28.0, 28.01, 28.0, 28.02]):
        out = h.step(T0 + k * S, price=p, **nan)
    assert out.emitted == {"acf1"}  # three returns: acf1; kappa needs 0 < c2 < c1
    r = [math.log(b / a) * 1e4 for a, b in [(28.0, 28.01), (28.01, 28.0), (28.0, 28.02)]]
    w = 1 - 2 ** (-1 / 3600)
    c0 = 0.0
    for x in r:
        c0 += w * (x * x - c0)
    c1 = w * (r[1] * r[0]) * (1 - w) + w * (r[2] * r[1])
    assert out["acf1"] == pytest.approx(c1 / c0, rel=1e-12)
    out = h.step(T0 + 10 * S, price=28.5, **nan)  # a 7-s gap: the spanning return is dropped
    assert out.emitted == set()
    out = h.step(T0 + 11 * S, price=28.4, **nan)
    assert out.emitted == set()  # one return since the gap: no lags yet
    assert h.step(T0 + 11 * S, price=math.nan, **nan).emitted == set()
