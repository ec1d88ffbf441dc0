"""Offline maximum likelihood of the drift filter's OU model from prices alone.

Seed 000 Appendix A, Phase 1: "Compute kappa_mu and sigma_mu from historical price series
using maximum likelihood on the OU process". The model is the one the drift filter assumes
(nodes/estimators/kalman_drift.py), in bps of log price X and seconds:

    dX = mu dt + sigma dW,   dmu = -kappa mu dt + sigma_mu dB,   p_k = X(t_k) + eta_k

observed on a grid of dt seconds, eta_k white noise of sd ``eta`` (bid-ask bounce, the tick
grid). The state [mu_k, X_k] evolves exactly (no small-dt approximation), a = e^{-kappa dt}:

    F = [[a, 0], [(1 - a)/kappa, 1]]
    Q11 = sigma_mu^2 (1 - a^2) / (2 kappa)
    Q12 = sigma_mu^2 (1 - a)^2 / (2 kappa^2)
    Q22 = sigma_mu^2 / kappa^2 (dt - 2 (1 - a)/kappa + (1 - a^2)/(2 kappa)) + sigma^2 dt

and the Kalman filter's prediction errors give the exact Gaussian likelihood, maximised over
(kappa, sigma_mu, sigma, eta) on log scale. Each segment starts from the stationary drift
(variance sigma_mu^2 / (2 kappa)) at its first price; a NaN price (a gap) only predicts.

How much data this needs depends on the signal-to-noise ratio: docs/calibration.md has the
simulation study (scripts/ou_study.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from flowmm.errors import UsageError


@njit(cache=True)
def ou_loglik(p, dt, kappa, sigma_mu, sigma, eta):
    """Log-likelihood (without the 2 pi constant) of prices p (bps, NaN = missing) on a dt grid."""
    a = math.exp(-kappa * dt)
    one_a = -math.expm1(-kappa * dt)
    one_a2 = -math.expm1(-2.0 * kappa * dt)
    sm2 = sigma_mu * sigma_mu
    q11 = sm2 * one_a2 / (2.0 * kappa)
    q12 = sm2 * one_a * one_a / (2.0 * kappa * kappa)
    q22 = sm2 / (kappa * kappa) * (dt - 2.0 * one_a / kappa + one_a2 / (2.0 * kappa)) + sigma * sigma * dt
    b = one_a / kappa
    r = eta * eta
    # find the first price
    k0 = 0
    while k0 < len(p) and p[k0] != p[k0]:
        k0 += 1
    if k0 >= len(p):
        return 0.0
    m0 = 0.0
    x = p[k0]
    p00 = sm2 / (2.0 * kappa)
    p01 = 0.0
    p11 = r if r > 0.0 else 1e-12
    ll = 0.0
    for k in range(k0 + 1, len(p)):
        # predict: s = F s, P = F P F' + Q
        m_new = a * m0
        x_new = b * m0 + x
        n00 = a * a * p00 + q11
        n01 = a * (b * p00 + p01) + q12
        n11 = b * b * p00 + 2.0 * b * p01 + p11 + q22
        m0, x, p00, p01, p11 = m_new, x_new, n00, n01, n11
        z = p[k]
        if z != z:
            continue
        s = p11 + r
        nu = z - x
        ll += -0.5 * (math.log(s) + nu * nu / s)
        k0_ = p01 / s
        k1_ = p11 / s
        m0 += k0_ * nu
        x += k1_ * nu
        p00 -= k0_ * p01
        p01 -= k0_ * p11
        p11 -= k1_ * p11
    return ll


@dataclass(frozen=True)
class OUFit:
    kappa_mu: float  # 1/s
    sigma_mu: float  # (bps/s)/sqrt(s)
    sigma: float  # bps/sqrt(s)
    eta: float  # bps, price noise
    loglik: float
    n_prices: int
    dt_s: float

    @property
    def drift_sd(self) -> float:
        """Stationary sd of the drift, bps/s."""
        return self.sigma_mu / math.sqrt(2.0 * self.kappa_mu)


def _total(theta: np.ndarray, series: list[np.ndarray], dt: float) -> float:
    k, sm, s, e = np.exp(theta)
    return -sum(ou_loglik(p, dt, k, sm, s, e) for p in series)


def fit_ou(series: list[np.ndarray] | np.ndarray, dt_s: float) -> OUFit:
    """MLE of (kappa_mu, sigma_mu, sigma, eta) from log prices in bps on a ``dt_s`` grid, one
    array per segment (NaN = missing). Prices only: nothing else enters."""
    from scipy.optimize import minimize

    if isinstance(series, np.ndarray):
        series = [series]
    series = [np.ascontiguousarray(p, dtype=np.float64) for p in series if np.isfinite(p).sum() > 2]
    r = np.concatenate([np.diff(p) for p in series]) if series else np.zeros(0)
    r = r[np.isfinite(r)]
    if len(r) < 50:
        raise UsageError(
            f"the OU drift fit needs at least 50 price returns, got {len(r)}",
            hint="give more data, or a smaller OU grid",
        )
    sigma0 = float(np.std(r) / math.sqrt(dt_s))
    eta0 = 0.05 * sigma0 * math.sqrt(dt_s)
    # coarse grid over (kappa, drift sd) first: the likelihood is flat and may be bimodal at low SNR
    best = None
    for kappa in (0.002, 0.006, 0.02, 0.06, 0.2):
        for ratio in (0.003, 0.01, 0.03, 0.1, 0.3):  # drift sd relative to sigma, per sqrt(s)
            sm = ratio * sigma0 * math.sqrt(2 * kappa)
            th = np.log([kappa, sm, sigma0, eta0])
            v = _total(th, series, dt_s)
            if best is None or v < best[0]:
                best = (v, th)
    lo = np.log([1e-5, 1e-7, sigma0 * 0.2, 1e-6])
    hi = np.log([10.0 / dt_s, sigma0 * 10, sigma0 * 5, sigma0 * math.sqrt(dt_s) * 3])
    res = minimize(
        _total,
        best[1],
        args=(series, dt_s),
        method="Nelder-Mead",
        bounds=list(zip(lo, hi)),
        options={"xatol": 1e-4, "fatol": 1e-4, "maxiter": 2000},
    )
    k, sm, s, e = np.exp(res.x)
    n = int(sum(np.isfinite(p).sum() for p in series))
    return OUFit(float(k), float(sm), float(s), float(e), float(-res.fun), n, dt_s)


def simulate_ou_prices(
    n: int, dt_s: float, kappa: float, sigma_mu: float, sigma: float, seed: int, substeps: int = 10
) -> np.ndarray:
    """Log prices (bps) of the OU-drift model on a dt grid, by Euler steps of dt/substeps: an
    independent simulation for tests and the study (not the filter's exact discretisation)."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    h = dt_s / substeps
    m = n * substeps
    shocks = rng.standard_normal(m) * sigma_mu * math.sqrt(h)
    mu0 = rng.standard_normal() * sigma_mu / math.sqrt(2 * kappa)
    decay = 1.0 - kappa * h
    mu = lfilter([1.0], [1.0, -decay], shocks, zi=[decay * mu0])[0]  # mu_i = decay mu_{i-1} + shock_i
    x = np.cumsum(mu * h + sigma * math.sqrt(h) * rng.standard_normal(m))
    return x[substeps - 1 :: substeps]
