"""features.basis: the spot-perp basis in bps, its change over delta_s, and z from the change."""

import math

import numpy as np
from numba import njit
from pydantic import Field, model_validator

from flowmm.core.node import In, Node, NodeParams, Out
from flowmm.core.ports import CTX_PREMIUM, OBS_R, OBS_Z

# params, in field order
P_USE_PREMIUM, P_DELTA_S, P_STEP_S, P_MAX_STALE_S, P_ALPHA, P_SIGMA = range(6)
# state: last valid input values (NaN = never seen) and int64 bookkeeping
V_MID, V_SPOT, V_PREM = range(3)
I_MID_T, I_SPOT_T, I_PREM_T, I_COUNT, I_LAST_SLOT = range(5)


@njit(cache=True)
def _newest_at_or_before(hist_t, count, target):
    """Ring index of the newest sample with time <= target, or -1 (samples are time-ordered)."""
    cap = hist_t.shape[0]
    n = min(count, cap)
    lo = count - n  # oldest sample still held
    hi = count - 1
    if n == 0 or hist_t[lo % cap] > target:
        return -1
    while lo < hi:  # invariant: sample lo is <= target
        m = (lo + hi + 1) // 2
        if hist_t[m % cap] <= target:
            lo = m
        else:
            hi = m - 1
    return lo % cap


@njit(cache=True)
def basis_kernel(
    now, dt, params, val, ist, hist_t, hist_v, mid, mid_ticked, spot, spot_ticked, ctx, ctx_ticked, basis_bps,
    dbasis_bps, obs,
):  # fmt: skip
    use_premium = params[P_USE_PREMIUM] != 0.0
    delta_ns = np.int64(params[P_DELTA_S] * 1e9)
    step_ns = np.int64(params[P_STEP_S] * 1e9)
    stale_ns = params[P_MAX_STALE_S] * 1e9
    # remember the last valid value of each input and when it arrived (NaN / <= 0: ignored)
    if mid_ticked and mid[0] > 0.0:
        val[V_MID] = mid[0]
        ist[I_MID_T] = now
    if spot_ticked and spot[0] > 0.0:
        val[V_SPOT] = spot[0]
        ist[I_SPOT_T] = now
    p = ctx[CTX_PREMIUM]
    if ctx_ticked and p == p and abs(p) < 1.0:
        val[V_PREM] = p
        ist[I_PREM_T] = now
    if use_premium:
        if val[V_PREM] != val[V_PREM] or now - ist[I_PREM_T] > stale_ns:
            return EMIT.NONE
        b = val[V_PREM] * 1e4
    else:
        if val[V_MID] != val[V_MID] or val[V_SPOT] != val[V_SPOT]:
            return EMIT.NONE
        if now - ist[I_MID_T] > stale_ns or now - ist[I_SPOT_T] > stale_ns:
            return EMIT.NONE  # one venue went quiet: a basis against a stale price is not a basis
        b = (val[V_MID] - val[V_SPOT]) / val[V_SPOT] * 1e4
    basis_bps[0] = b
    # history: at most one sample per step_s slot (the first of the slot), for the lagged value
    cap = hist_t.shape[0]
    count = ist[I_COUNT]
    slot = now // step_ns
    if count == 0 or slot > ist[I_LAST_SLOT]:
        i = count % cap
        hist_t[i] = now
        hist_v[i] = b
        count += 1
        ist[I_COUNT] = count
        ist[I_LAST_SLOT] = slot
    target = now - delta_ns
    j = _newest_at_or_before(hist_t, count, target)
    if j < 0 or hist_t[j] < target - stale_ns:
        return EMIT.BASIS_BPS  # no value delta_s ago (start, or a gap in data around then)
    d = b - hist_v[j]
    dbasis_bps[0] = d
    obs[OBS_Z] = params[P_ALPHA] * d
    obs[OBS_R] = params[P_SIGMA] * params[P_SIGMA]
    return EMIT.ALL


class Basis(Node):
    """Spot-perp basis in bps, its change over ``delta_s``, and a drift observation from the change.

    basis(t) = (perp_mid - spot_mid) / spot_mid * 1e4 bps; dbasis = basis(t) - basis(t - delta_s);
    z = alpha * dbasis (bps/s), R = sigma^2 (seed 000, Component 7, C1 "Spot-Perp Basis").
    A compressing basis (dbasis < 0: leveraged longs leaving) is bearish, so alpha > 0.

    Source of the basis (``use_premium``): by default the seed's formula from ``mid``
    (source.mid) and ``spot`` (source.spot_mid): the spot feed comes every 0.5 s on the
    synthetic source and is a direct quote of the same coin. ``use_premium: true`` reads
    basis = premium * 1e4 from ``ctx`` (source.ctx) instead: on Hyperliquid the premium is
    measured against the oracle (a CEX spot index) from impact prices and comes with the
    asset context, at its slower cadence; it is the fallback the seed names for HIP-3 assets
    with no spot feed (on the synthetic source premium = mark/oracle - 1 is the same basis).
    The mode is a parameter, not a per-sample fallback, so dbasis never mixes the two.

    basis(t - delta_s) comes from a history ring of one sample per ``step_s`` (the first
    of each slot), the newest at or before t - delta_s, so the lag is exact to about one
    step plus the input cadence. z uses the change, not the level, as the seed says: on the
    synthetic ``mixed`` market (30 min runs, 20 seeds) with the basis channel on, the level
    tracks the drift (docs/synthetic.md: corr 0.69) but its slow noise (OU, 300 s) hides it
    from the next 5 min return (corr 0.07, t 0.8), while the 60 s change carries it (corr
    0.21, t 6.2; 0.01 with every knob off).

    Edge cases: NaN or non-positive prices (and |premium| >= 1) are ignored (the last valid
    value stays); an input older than ``max_stale_s`` (or never seen) gives no value and no
    tick; before delta_s of history, or when the sample found for t - delta_s is more than
    ``max_stale_s`` older than that (a gap in data), only ``basis_bps`` ticks. Zero dt
    recomputes from the same values. The seed puts basis on the warm tier; set ``tier:``."""

    type_name = "features.basis"

    class Params(NodeParams):
        use_premium: bool = Field(
            False, description="basis from ctx premium (true) instead of mid vs spot (false)"
        )
        delta_s: float = Field(60.0, gt=0, le=3600, description="span of dbasis, seconds")
        step_s: float = Field(1.0, gt=0, description="spacing of the history samples, seconds")
        max_stale_s: float = Field(
            10.0, gt=0, description="an input (or the lagged sample) older than this gives no value, s"
        )
        alpha: float = Field(0.02, description="bps/s of drift per bps of dbasis (calibrated later)")
        sigma: float = Field(0.1, gt=0, description="observation noise, bps/s (R = sigma^2)")

        @model_validator(mode="after")
        def _sizes(self):
            if self.delta_s / self.step_s > 100_000:
                raise ValueError(
                    f"delta_s / step_s = {self.delta_s / self.step_s:.0f} history samples; at most 100000"
                )
            return self

    inputs = {
        "mid": In("f64", optional=True, doc="perp mid, USDC (source.mid); for the spot basis"),
        "spot": In("f64", optional=True, doc="spot mid, USDC (source.spot_mid); for the spot basis"),
        "ctx": In("ctx", optional=True, doc="asset context (source.ctx); premium, for use_premium"),
    }
    outputs = {
        "basis_bps": Out("f64", doc="basis of the latest prices, bps (perp over spot)"),
        "dbasis_bps": Out("f64", doc="basis(t) - basis(t - delta_s), bps"),
        "obs": Out("obs", doc="z = alpha * dbasis bps/s, R = sigma^2 (bps/s)^2"),
    }
    tier, trigger = "hot", "cycle"
    kernel = basis_kernel

    def init_state(self):
        p = self.params
        cap = int(math.ceil(p.delta_s / p.step_s)) + 3  # covers delta_s with one sample a slot
        val = np.full(3, np.nan)  # last valid mid, spot, premium
        ist = np.zeros(5, np.int64)  # their times (ns), samples ever pushed, slot of the newest
        return val, ist, np.zeros(cap, np.int64), np.full(cap, np.nan)  # + history times, values


EMIT = Basis.EMIT  # the kernel's named emit bits (compile-time constants)
