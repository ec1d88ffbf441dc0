"""estimators.vol: EW realised volatility, the forgetting inverse-gamma posterior, a vol regime."""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from pydantic import Field, model_validator

from flowmm.core.node import In, Node, NodeParams, Out
from flowmm.core.ports import FI_PX

# packed params (Params field order)
(
    P_SIG_HL,
    P_SAMPLE,
    P_GAP,
    P_SIG_PRIOR,
    P_A0,
    P_FORGET_HL,
    P_FWIN,
    P_FRATE0,
    P_FRATE0_S,
    P_FTAU,
    P_ADJ_CAP,
    P_LOW,
    P_HIGH,
    P_HYST,
) = range(14)
# fs (float64 state): last sampled price; EW sums of r^2 (bps^2) and of dt (s); alpha, beta;
# EW fill counts (short window, long rate window); current regime code (NaN = none yet)
F_PX, F_SR2, F_SDT, F_A, F_B, F_CS, F_CL, F_REG = range(8)
# ts (int64 state): time of the last sampled price (-1 = none), time all decays refer to, first run
T_PX, T_REF, T_START = range(3)

REGIME_LOW, REGIME_MEDIUM, REGIME_HIGH = 0.0, 1.0, 2.0


@njit(cache=True)
def vol_regime(x, cur, low, high, h):
    """Regime code of the ratio x = sigma_post/sigma_prior, with a relative hysteresis h.

    Without a current regime (NaN): Low below `low`, High above `high`, else Medium. Otherwise a
    threshold th is crossed upward only when x > th (1 + h) and downward when x < th / (1 + h)."""
    if x != x:
        return cur
    if cur != cur:
        if x < low:
            return REGIME_LOW
        if x > high:
            return REGIME_HIGH
        return REGIME_MEDIUM
    up = 1.0 + h
    if x > high * up:
        return REGIME_HIGH
    if x < low / up:
        return REGIME_LOW
    if cur == REGIME_HIGH and x >= high / up:
        return REGIME_HIGH
    if cur == REGIME_LOW and x <= low * up:
        return REGIME_LOW
    return REGIME_MEDIUM


@njit(cache=True)
def vol_kernel(
    now, dt, params, fs, ts,
    price, price_ticked,
    fills_t, fills_r, fills_start, fills_end,
    clock, clock_ticked,
    sigma, sigma_post, alpha, beta, fill_adj, regime,
):  # fmt: skip
    a0 = params[P_A0]
    s0 = params[P_SIG_PRIOR]
    b0 = (a0 - 1.0) * s0 * s0
    if ts[T_START] < 0:  # first run: the posterior starts at the prior (no warm-up)
        ts[T_START] = now
        ts[T_REF] = now
        fs[F_A] = a0
        fs[F_B] = b0
    # -- decay everything to now (O(1) whatever the gap) ------------------------------------
    el = (now - ts[T_REF]) * 1e-9
    if el > 0.0:
        f = math.exp(-math.log(2.0) * el / params[P_FORGET_HL])
        fs[F_A] = a0 + (fs[F_A] - a0) * f
        fs[F_B] = b0 + (fs[F_B] - b0) * f
        g = math.exp(-math.log(2.0) * el / params[P_SIG_HL])
        fs[F_SR2] *= g
        fs[F_SDT] *= g
        fs[F_CS] *= math.exp(-el / params[P_FWIN])
        fs[F_CL] *= math.exp(-el / params[P_FTAU])
        ts[T_REF] = now
    # -- fills: each enters at its own time, decayed to now ---------------------------------
    cap = fills_t.shape[0]
    for i in range(fills_start, fills_end):
        row = i % cap
        if not (fills_r[row, FI_PX] > 0.0):  # NaN or malformed record
            continue
        e = (now - fills_t[row]) * 1e-9
        if e < 0.0:
            e = 0.0
        fs[F_CS] += math.exp(-e / params[P_FWIN])
        fs[F_CL] += math.exp(-e / params[P_FTAU])
    # -- price sample ----------------------------------------------------------------------
    sampled = False
    p = price[0]
    if p > 0.0 and p < np.inf:
        if ts[T_PX] < 0:
            fs[F_PX] = p
            ts[T_PX] = now
        else:
            gap = (now - ts[T_PX]) * 1e-9
            if gap > params[P_GAP]:  # a return over a data gap is not a sample: restart from p
                fs[F_PX] = p
                ts[T_PX] = now
            elif gap > 0.0 and gap >= params[P_SAMPLE]:
                r = math.log(p / fs[F_PX]) * 1e4
                r2 = r * r
                fs[F_SR2] += r2
                fs[F_SDT] += gap
                fs[F_A] += 0.5
                fs[F_B] += 0.5 * r2 / gap
                fs[F_PX] = p
                ts[T_PX] = now
                sampled = True
    # -- outputs ---------------------------------------------------------------------------
    mask = EMIT.NONE
    if fs[F_SDT] > 0.0:
        sigma[0] = math.sqrt(fs[F_SR2] / fs[F_SDT])
        if sampled:
            mask |= EMIT.SIGMA
    span = (now - ts[T_START]) * 1e-9
    big_t = params[P_FTAU]
    w = -big_t * math.expm1(-span / big_t)  # effective observed time of the long fill count
    t0 = params[P_FRATE0_S]
    rate = (params[P_FRATE0] * t0 + fs[F_CL]) / (t0 + w)
    adj = 1.0
    if rate > 0.0:
        adj = fs[F_CS] / (rate * params[P_FWIN])
        if adj < 1.0:
            adj = 1.0
        if adj > params[P_ADJ_CAP]:
            adj = params[P_ADJ_CAP]
    fill_adj[0] = adj
    alpha[0] = fs[F_A]
    beta[0] = fs[F_B]
    sigma_post[0] = math.sqrt(adj * fs[F_B] / (fs[F_A] - 1.0))
    fs[F_REG] = vol_regime(sigma_post[0] / s0, fs[F_REG], params[P_LOW], params[P_HIGH], params[P_HYST])
    regime[0] = fs[F_REG]
    return mask | EMIT.SIGMA_POST | EMIT.ALPHA | EMIT.BETA | EMIT.FILL_ADJ | EMIT.REGIME


class Vol(Node):
    """Volatility: EW realised sigma, the inverse-gamma posterior of sigma^2 with forgetting, a regime.

    Seed 000, Component 5 ("sigma: exponentially weighted realised vol, ~300 s") and seed 004,
    Stage 1B (inverse-gamma posterior, fill-clustering adjustment, vol_regime), with the
    forgetting CONVENTIONS.md asks for. Units: sigma in bps/sqrt(s), sigma^2 in bps^2/s.

    Samples. Returns r = 1e4 ln(p_t / p_s) (bps) of the `price` input (source.mid) between
    samples s < t, with dt = t - s seconds. A sample is taken when the node runs at least
    `sample_s` after the previous one (the price value is read whether or not it ticked, so
    wiring `clock: source.clock` samples on a regular grid; with the price alone sampling is at
    price changes, an endogenous time the 1-s default keeps short). Smaller moves are folded into
    the next sample; a return spanning more than `max_gap_s` is not a sample (data gap: sampling
    restarts from the new price, the decays below still run).

    EW realised volatility (output `sigma`), time-weighted, unbiased from the first sample:

        sigma^2 = sum_i w_i r_i^2 / sum_i w_i dt_i,  w_i = 2^(-(t - t_i)/sigma_half_life_s)

    so irregular sampling weights each return by the time it spans. NaN until the first sample.

    Inverse-gamma posterior of sigma^2 (seed 004 §1B), r_i^2/dt_i ~ sigma^2 chi^2_1 per sample:
    alpha += 1/2, beta += r^2/(2 dt), posterior mean E[sigma^2] = beta/(alpha - 1). Prior
    IG(alpha0, beta0) with beta0 = (alpha0 - 1) sigma_prior^2 (prior mean sigma_prior^2).
    Forgetting (CONVENTIONS.md; otherwise the posterior converges to the session mean and stops
    tracking): between runs, for an elapsed time e,

        alpha <- alpha0 + (alpha - alpha0) 2^(-e/forget_half_life_s),  beta likewise toward beta0,

    i.e. alpha = alpha0 + sum_i w_i/2, beta = beta0 + sum_i w_i r_i^2/(2 dt_i) with w_i =
    2^(-(t - t_i)/forget_half_life_s): the prior's weight never decays, the data's does at rate
    ln 2 / forget_half_life_s per second. With n samples/s the posterior holds about
    n forget_half_life_s / ln 2 effective samples: the default (60 s, 1-s samples) ~ 87.
    A gap or a spell without samples returns the posterior toward the prior at that rate.
    The seed's log-normal state model is not filtered explicitly; forgetting is its
    conjugate stand-in (a discounted, power-prior posterior).

    Fill-clustering adjustment (seed 004 §1B), on the `fills` input (exec.fills, optional):

        fill_adj = clip(c_5 / (lambda_hat fill_window_s), 1, fill_adj_cap)

    c_5 = sum_j exp(-(t - t_j)/fill_window_s) is the EW count of fills over the last ~5 s (its
    mean under a Poisson rate lambda is lambda fill_window_s, as a 5-s window count's is, without
    a window edge), and lambda_hat the expected rate, a Gamma-Poisson posterior mean with
    forgetting: lambda_hat = (fill_rate_prior fill_rate_prior_s + c_L) / (fill_rate_prior_s + W),
    c_L the EW count with time constant fill_rate_tau_s and W = tau (1 - exp(-span/tau)) the
    weight of the time seen since the first run. The seed leaves the adjustment unbounded; a sweep
    of 6 fills against a 0.05/s expected rate would multiply sigma^2 by 24, so it is capped
    (`fill_adj_cap`, default 4 = sigma x2). Unwired fills: fill_adj = 1.

    Outputs: sigma_post = sqrt(fill_adj beta/(alpha - 1)) (the square root of the posterior mean
    of sigma^2, not E[sigma]), alpha, beta (unadjusted), fill_adj, and `regime`, a code 0 Low,
    1 Medium, 2 High of x = sigma_post/sigma_prior: Low below low_ratio, High above high_ratio,
    with a relative hysteresis (cross th upward when x > th (1 + hysteresis), downward when
    x < th / (1 + hysteresis)); sigma_prior is the asset's normal vol, so the regime is absolute
    for the asset. Defaults: sigma_prior 0.6 bps/sqrt(s) is the synthetic quiet regime (HYPE);
    volatile (1.8) is High, trending (0.25-0.3) Low.

    Emission: sigma when a sample is taken; the posterior outputs on every run (the posterior
    at now, starting at the prior: no warm-up). Edge cases: NaN, inf or non-positive prices are
    ignored (the posterior still decays); zero dt adds nothing; the first price only seeds;
    fills with NaN price are skipped; a fill stamped after now counts undecayed. Event-triggered
    (posterior updates per event, seed 004 §6)."""

    type_name = "estimators.vol"

    class Params(NodeParams):
        sigma_half_life_s: float = Field(300.0, gt=0, description="half-life of the EW realised vol, s")
        sample_s: float = Field(1.0, ge=0, description="minimum time between return samples, s")
        max_gap_s: float = Field(30.0, gt=0, description="a return spanning more is not a sample, s")
        sigma_prior: float = Field(0.6, gt=0, description="prior (normal) vol of the asset, bps/sqrt(s)")
        prior_alpha: float = Field(
            3.0, gt=1, description="alpha0 of the IG prior (its weight: 2 alpha0 samples)"
        )
        forget_half_life_s: float = Field(60.0, gt=0, description="half-life of the data's weight, s")
        fill_window_s: float = Field(5.0, gt=0, description="time constant of the recent fill count, s")
        fill_rate_prior: float = Field(0.05, gt=0, description="prior expected fill rate, fills/s")
        fill_rate_prior_s: float = Field(120.0, gt=0, description="weight of that prior, seconds of data")
        fill_rate_tau_s: float = Field(600.0, gt=0, description="time constant of the expected fill rate, s")
        fill_adj_cap: float = Field(4.0, ge=1, description="cap of the sigma^2 fill-clustering multiplier")
        low_ratio: float = Field(0.75, gt=0, description="sigma_post/sigma_prior below this: Low")
        high_ratio: float = Field(1.5, gt=0, description="sigma_post/sigma_prior above this: High")
        hysteresis: float = Field(0.1, ge=0, description="relative margin to cross a regime threshold")

        @model_validator(mode="after")
        def _ordered(self):
            if self.low_ratio * (1 + self.hysteresis) >= self.high_ratio / (1 + self.hysteresis):
                raise ValueError(
                    f"low_ratio {self.low_ratio} must be below high_ratio {self.high_ratio} "
                    f"with room for the hysteresis {self.hysteresis} (low (1+h) < high / (1+h))"
                )
            return self

    inputs = {
        "price": In("f64", doc="mid price (source.mid)"),
        "fills": In("fills", optional=True, doc="our fills (exec.fills), for the clustering adjustment"),
        "clock": In("f64", optional=True, doc="wire source.clock to sample every cycle"),
    }
    outputs = {
        "sigma": Out("f64", doc="EW realised vol, bps/sqrt(s)"),
        "sigma_post": Out("f64", doc="sqrt(fill_adj * beta/(alpha-1)), bps/sqrt(s)"),
        "alpha": Out("f64", doc="inverse-gamma shape"),
        "beta": Out("f64", doc="inverse-gamma scale, bps^2/s"),
        "fill_adj": Out("f64", doc="fill-clustering multiplier of sigma^2, >= 1"),
        "regime": Out("f64", doc="0 Low, 1 Medium, 2 High"),
    }
    tier, trigger = "hot", "event"
    kernel = vol_kernel

    def init_state(self):
        fs = np.zeros(8)
        fs[F_PX] = np.nan
        fs[F_REG] = np.nan
        ts = np.full(3, -1, np.int64)
        return fs, ts  # see F_* / T_* above


EMIT = Vol.EMIT  # the kernel's named emit bits (compile-time constants)
