"""estimators.trend: multi-timeframe trend detector, an observation for the drift filter."""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from pydantic import Field, model_validator

from flowmm.core.node import In, Node, NodeParams, Out
from flowmm.core.ports import OBS_R, OBS_Z

# packed params (Params field order)
(
    P_SHORT, P_MED, P_LONG, P_GRID, P_VOTE_Z, P_SIGMA, P_H, P_HL, P_PRIOR_N, P_C, P_SIGMA_T,
) = range(11)  # fmt: skip
# ts (int64 state)
T_SEEDED, T_KVALID, T_KFILLED = 0, 1, 2  # T_KVALID: first grid point of the usable history
N_TS = 3
# fs (float64 state)
F_PX, F_HIT, F_TOT = 0, 1, 2
N_FS = 3


@njit(cache=True)
def _signal(ring, n, j, m_s, m_m, m_l):
    """+1 / -1 when the three grid returns ending at grid point j share that sign, else 0."""
    pj = ring[j % n]
    a = pj - ring[(j - m_s) % n]
    b = pj - ring[(j - m_m) % n]
    c = pj - ring[(j - m_l) % n]
    if a > 0.0 and b > 0.0 and c > 0.0:
        return 1.0
    if a < 0.0 and b < 0.0 and c < 0.0:
        return -1.0
    return 0.0


@njit(cache=True)
def trend_kernel(
    now, dt, params, ts, fs, ring,
    price, price_ticked, sigma, sigma_ticked,
    short_bps, medium_bps, long_bps, trend_bps, agreement, p_continuation, obs,
):  # fmt: skip
    p = price[0]
    if not (p > 0.0) or p == np.inf:
        return EMIT.NONE
    grid = params[P_GRID]
    g_ns = np.int64(round(grid * 1e9))
    m_s = np.int64(round(params[P_SHORT] / grid))
    m_m = np.int64(round(params[P_MED] / grid))
    m_l = np.int64(round(params[P_LONG] / grid))
    m_h = np.int64(round(params[P_H] / grid))
    n = ring.shape[0]  # >= m_h + m_l + 2
    lp = math.log(p)
    if ts[T_SEEDED] == 0:
        ts[T_SEEDED] = 1
        kf = -((-now) // g_ns)  # first grid point at or after the first price
        ts[T_KVALID] = kf
        ts[T_KFILLED] = kf - 1
        fs[F_PX] = lp
    # grid points strictly before now take the price in force there (the previous one);
    # a gap longer than the ring decays the hit counts for the points it skips; judging then
    # uses only grid points from the restart on (older ring slots are no longer in order)
    k_last = (now - 1) // g_ns
    f = math.exp(-math.log(2.0) * grid / params[P_HL])
    k0 = ts[T_KFILLED] + 1
    if k_last - k0 + 1 > n:
        skip = k_last - n + 1 - k0
        fs[F_HIT] *= f**skip
        fs[F_TOT] *= f**skip
        k0 = k_last - n + 1
        ts[T_KVALID] = k0
    kf = ts[T_KVALID]
    for k in range(k0, k_last + 1):
        ring[k % n] = fs[F_PX]
        fs[F_HIT] *= f
        fs[F_TOT] *= f
        j = k - m_h  # the signal made at j is judged by the move over (j, k]
        if j - m_l >= kf:
            s = _signal(ring, n, j, m_s, m_m, m_l)
            move = ring[k % n] - ring[j % n]
            if s != 0.0 and move != 0.0:
                fs[F_TOT] += 1.0
                if (move > 0.0) == (s > 0.0):
                    fs[F_HIT] += 1.0
    if k_last >= k0:
        ts[T_KFILLED] = k_last
    fs[F_PX] = lp

    # returns now vs the grid point m steps before now's grid point (NaN until covered)
    k_now = now // g_ns
    sig = sigma[0]
    if not (sig > 0.0) or sig == np.inf:
        sig = params[P_SIGMA]
    vote_z = params[P_VOTE_Z]
    votes = 0.0
    mask = EMIT.NONE
    pooled_r = 0.0
    pooled_w = 0.0
    for i in range(3):
        m = m_s if i == 0 else (m_m if i == 1 else m_l)
        r = np.nan
        if k_now - m >= kf:
            r = (lp - ring[(k_now - m) % n]) * 1e4
            w = m * grid
            pooled_r += r
            pooled_w += w
            mask |= EMIT.SHORT_BPS if i == 0 else (EMIT.MEDIUM_BPS if i == 1 else EMIT.LONG_BPS)
            if abs(r) >= vote_z * sig * math.sqrt(w) and r != 0.0:
                votes += 1.0 if r > 0.0 else -1.0
        if i == 0:
            short_bps[0] = r
        elif i == 1:
            medium_bps[0] = r
        else:
            long_bps[0] = r
    a = abs(votes) / 3.0
    agreement[0] = a
    prior_n = params[P_PRIOR_N]
    pc = (0.5 * prior_n + fs[F_HIT]) / (prior_n + fs[F_TOT])
    p_continuation[0] = pc
    if pooled_w == 0.0:
        trend_bps[0] = np.nan
        return mask | EMIT.AGREEMENT | EMIT.P_CONTINUATION
    t_ref = (params[P_SHORT] + params[P_MED] + params[P_LONG]) / 3.0
    tb = t_ref * pooled_r / pooled_w
    trend_bps[0] = tb
    if a > 0.0:
        st = params[P_SIGMA_T]
        obs[OBS_Z] = params[P_C] * tb * a * pc
        obs[OBS_R] = st * st / (a * a)
        return mask | EMIT.TREND_BPS | EMIT.AGREEMENT | EMIT.P_CONTINUATION | EMIT.OBS
    return mask | EMIT.TREND_BPS | EMIT.AGREEMENT | EMIT.P_CONTINUATION


class Trend(Node):
    """Multi-timeframe trend detector: short/medium/long returns, agreement, p_continuation, obs.

    Seed 000, Component 1, "Integration with Existing Trend Detector" (and the incident logs of
    both seeds: short/med/long bps, agreement, p_continuation); z_trend as corrected in
    CONVENTIONS.md.

    Price history: the node keeps log prices on a grid of grid_s (default 1 s): grid point k
    (time k grid_s) holds the last price the node saw at or before that time. Windows are
    rounded to whole grid steps (m_i = round(W_i / grid_s)). At a run at `now` with price p:

        r_i = 1e4 ln(p / P[k_now - m_i]) bps,  k_now = floor(now / grid_s),  i = short, medium, long

    (each window spans W_i plus up to one grid step). A window is covered once its grid point
    is at or after the first price; until then r_i is NaN and takes no part below.

    trend_signed (trend_bps) = T_ref * sum_i r_i / sum_i W_i over the covered windows, T_ref the
    mean window (320 s by default): the pooled drift rate expressed as a return over the mean
    window. With all windows covered it is the mean of the three returns; under a constant
    drift mu every r_i = mu W_i, so trend_bps / T_ref = mu exactly, covered or not.

    agreement = |sum_i v_i| / 3, with votes v_i = sign(r_i) when |r_i| >= vote_z sigma sqrt(W_i)
    (the return is at least vote_z standard deviations of a driftless window), else 0;
    uncovered windows vote 0. Values 0, 1/3, 2/3, 1: 1 = all three timeframes move the same way
    beyond noise. sigma (bps/sqrt s) is the `sigma` input when positive and finite, else the
    sigma_bps param.

    p_continuation = (prior_n / 2 + H) / (prior_n + N): the exponentially weighted rate at which
    past trend signals continued, shrunk to 1/2. A signal is made at a grid point j when the
    three grid returns ending at j all have one sign s (the detector's "all timeframes agree",
    with no noise band so it needs no sigma history); it continued when the return over the next
    continuation_horizon_s, P[j + h] - P[j], has the sign s (a zero move is not counted). N and
    H count judged signals and hits, each decayed with half-life hit_half_life_s per grid step.
    It is measured on the node's own market, so it can fall below 1/2 in a mean-reverting one
    (the seed's log shows it crossing 0.50). Judging starts once long + horizon of history exist.

    Observation for the drift filter (bps/s), when agreement > 0:

        z = c_trend * trend_bps * agreement * p_continuation,   R = sigma_trend^2 / agreement^2

    negative in a downtrend (CONVENTIONS.md drops the seed's leading minus). c_trend defaults to
    1 / T_ref = 1/320 s, so that z = mu * agreement * p_continuation under a constant drift.
    sigma_trend 0.5 bps/s is a placeholder to calibrate: the obs is strongly autocorrelated
    from cycle to cycle (the windows overlap), so its R must be set for the tier it runs on
    (run it warm or cold, or raise sigma_trend), or the filter counts one trend many times.

    Trigger: cycle (it samples `price`, e.g. source.mid, at its runs). Outputs: returns and
    trend_bps when covered, agreement and p_continuation on every run with a valid price, obs
    only when agreement > 0 (no obs = R infinite). Edge cases: NaN/non-positive price -> nothing
    emitted, state untouched; the first price seeds the grid; zero dt is fine; a gap holds the
    last price over the gap's grid points; a gap longer than the history ring (long +
    horizon + 2 grid steps) keeps only the ring's last grid points (all at the held price), so
    the returns span the gap's move as for a short gap; the signals inside it are not judged
    (the counts only decay; inside a gap every move is 0, so none would count anyway)."""

    type_name = "estimators.trend"
    tier = "warm"

    class Params(NodeParams):
        short_s: float = Field(60.0, gt=0, description="short window, s")
        medium_s: float = Field(300.0, gt=0, description="medium window, s")
        long_s: float = Field(600.0, gt=0, description="long window, s")
        grid_s: float = Field(1.0, gt=0, description="price history resolution, s")
        vote_z: float = Field(1.0, ge=0, description="a window votes when |r| >= vote_z sigma sqrt(W)")
        sigma_bps: float = Field(
            1.5, gt=0, description="fallback sigma, bps/sqrt(s), when `sigma` is not set"
        )
        continuation_horizon_s: float = Field(
            60.0, gt=0, description="horizon a signal must continue over, s"
        )
        hit_half_life_s: float = Field(3600.0, gt=0, description="half-life of the continuation counts, s")
        prior_n: float = Field(
            60.0, gt=0, description="prior weight (in judged signals) of p_continuation = 1/2"
        )
        c_trend: float = Field(1.0 / 320.0, description="1/s: z = c_trend trend_bps agreement p_continuation")
        sigma_trend: float = Field(0.5, gt=0, description="obs noise at agreement 1, bps/s")

        @model_validator(mode="after")
        def _windows(self):
            g = self.grid_s
            ms, mm, ml = (round(w / g) for w in (self.short_s, self.medium_s, self.long_s))
            if not 1 <= ms < mm < ml:
                raise ValueError(
                    "need 1 <= short_s < medium_s < long_s in whole grid steps of grid_s"
                    f" (got {ms}, {mm}, {ml} steps)"
                )
            if round(self.continuation_horizon_s / g) < 1:
                raise ValueError("continuation_horizon_s must be at least one grid step")
            if ml + round(self.continuation_horizon_s / g) > 10_000_000:
                raise ValueError("long_s + continuation_horizon_s is over 1e7 grid steps; raise grid_s")
            return self

    inputs = {
        "price": In("f64", doc="mid price (source.mid)"),
        "sigma": In("f64", optional=True, doc="volatility, bps/sqrt(s), e.g. estimators.ewma_vol"),
    }
    outputs = {
        "short_bps": Out("f64", doc="return over short_s, bps"),
        "medium_bps": Out("f64", doc="return over medium_s, bps"),
        "long_bps": Out("f64", doc="return over long_s, bps"),
        "trend_bps": Out("f64", doc="trend_signed: T_ref * sum r / sum W, bps"),
        "agreement": Out("f64", doc="|sum of votes| / 3"),
        "p_continuation": Out("f64", doc="shrunk EW rate at which trend signals continued"),
        "obs": Out("obs", doc="z = c_trend trend agreement p_cont, R = sigma_trend^2/agreement^2"),
    }
    kernel = trend_kernel

    def init_state(self):
        p = self.params
        n = round(p.long_s / p.grid_s) + round(p.continuation_horizon_s / p.grid_s) + 2
        fs = np.zeros(N_FS)
        fs[F_PX] = np.nan
        return np.zeros(N_TS, np.int64), fs, np.full(n, np.nan)


EMIT = Trend.EMIT  # the kernel's named emit bits (compile-time constants)
