"""The OU drift MLE: its likelihood against the exact Gaussian density of the prices, and
recovery of kappa_mu and sigma_mu from prices alone at a high signal-to-noise ratio."""

import inspect
import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from flowmm.calibrate import fit_ou, simulate_ou_prices
from flowmm.calibrate.ou import ou_loglik


def _exact_loglik(p, dt, kappa, sigma_mu, sigma, eta):
    """log density of (p_k - p_0), k >= 1, observed ones only: Cov(D_s, D_t) of D_t = X_t - X_0
    is V G(s, t) + sigma^2 min(s, t), V = sigma_mu^2 / (2 kappa) the stationary drift variance,
    G(s, t) = 2 min/kappa - (1 - e^{-kappa s} - e^{-kappa t} + e^{-kappa |t - s|}) / kappa^2;
    the price noise adds eta^2 (1 + [j = k]). With a diffuse X_0 this is the density of the
    prices given the first one, which the filter computes (up to the 2 pi constant)."""
    idx = np.flatnonzero(np.isfinite(p))
    k0, rest = idx[0], idx[1:]
    t = (rest - k0) * dt
    s_, t_ = np.meshgrid(t, t, indexing="ij")
    v = sigma_mu**2 / (2 * kappa)
    g = (
        2 * np.minimum(s_, t_) / kappa
        - (1 - np.exp(-kappa * s_) - np.exp(-kappa * t_) + np.exp(-kappa * abs(t_ - s_))) / kappa**2
    )
    cov = v * g + sigma**2 * np.minimum(s_, t_) + eta**2 * (1 + np.eye(len(t)))
    d = p[rest] - p[k0]
    return multivariate_normal(mean=np.zeros(len(t)), cov=cov).logpdf(d) + 0.5 * len(t) * math.log(
        2 * math.pi
    )


@pytest.mark.parametrize("eta", [0.0, 0.4])
def test_likelihood_is_the_exact_gaussian_density(eta):
    p = simulate_ou_prices(60, 10.0, 0.03, 0.02, 0.5, seed=3)
    args = (10.0, 0.03, 0.02, 0.5, eta)
    assert ou_loglik(p, *args) == pytest.approx(_exact_loglik(p, *args), abs=1e-6)


def test_missing_prices_only_predict():
    p = simulate_ou_prices(40, 5.0, 0.05, 0.05, 0.6, seed=4)
    p[[0, 7, 8, 21]] = np.nan  # a late start and gaps
    args = (5.0, 0.05, 0.05, 0.6, 0.2)
    assert ou_loglik(p, *args) == pytest.approx(_exact_loglik(p, *args), abs=1e-6)


def test_estimator_sees_prices_only():
    assert list(inspect.signature(fit_ou).parameters) == ["series", "dt_s"]


def test_recovers_kappa_and_sigma_mu_within_15_percent_at_high_snr():
    # drift sd sigma_mu / sqrt(2 kappa) = 0.25 bps/s: over its correlation time 1/kappa = 50 s the
    # drift moves the price ~12.5 bps against 3.5 bps of diffusion (SNR = sd / (sigma sqrt(kappa))
    # = 3.5); two days of 10-s prices, two independent segments
    kappa, sigma_mu, sigma = 0.02, 0.05, 0.5
    series = [simulate_ou_prices(8640, 10.0, kappa, sigma_mu, sigma, seed=s) for s in (11, 12)]
    fit = fit_ou(series, 10.0)
    assert fit.kappa_mu == pytest.approx(kappa, rel=0.15)
    assert fit.sigma_mu == pytest.approx(sigma_mu, rel=0.15)
    assert fit.sigma == pytest.approx(sigma, rel=0.05)
    assert fit.n_prices == 2 * 8640


def test_a_martingale_gives_a_negligible_drift():
    rng = np.random.default_rng(8)
    p = np.cumsum(0.5 * math.sqrt(10.0) * rng.standard_normal(8640))  # sigma 0.5, no drift at all
    fit = fit_ou(p, 10.0)
    # the drift's share of a 10-minute price variance stays small
    drift_var_600 = fit.drift_sd**2 * 600**2
    assert drift_var_600 < 0.1 * 0.5**2 * 600
    assert fit.sigma == pytest.approx(0.5, rel=0.05)


def test_too_few_prices_is_a_usage_error():
    from flowmm.errors import UsageError

    with pytest.raises(UsageError, match="at least 50"):
        fit_ou(np.arange(20.0), 10.0)
