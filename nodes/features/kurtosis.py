from __future__ import annotations

import numpy as np
from numba import njit
from pydantic import Field, model_validator

from flowmm.core.node import In, Node, NodeParams, Out

# packed params (Params field order)
P_WINDOW, P_HORIZON, P_MIN_N, P_KAPPA, P_UNBIASED, P_MAX_FACTOR, P_GAP = range(7)
# float state: the price at the start of the sample being accumulated; count, mean and central
# sums M2..M4 of the window; peaks of M2, M4 since the last resync
F_P0, F_N, F_MEAN, F_M2, F_M3, F_M4, F_REF2, F_REF4 = range(8)
# int state: time of the last price (ns, -1 = none), samples ever pushed, pushes since resync,
# start time of the sample being accumulated (ns)
I_T, I_HEAD, I_SINCE, I_T0 = range(4)
# a central sum that fell this far below its peak since the last resync is recomputed: the
# rounding of a removal is relative to the sum before it, not to the (now small) sum after
RESYNC_DROP = 1e-4


@njit(cache=True)
def moments_add(st, x):
    """Add x to the central sums (Welford / Pebay, centred: no power-sum cancellation)."""
    n1 = st[F_N]
    n = n1 + 1.0
    delta = x - st[F_MEAN]
    dn = delta * (1.0 / n)  # one division: the update is a chain, divisions are its latency
    dn2 = dn * dn
    term1 = delta * dn * n1
    m2 = st[F_M2]
    m3 = st[F_M3]
    st[F_MEAN] += dn
    st[F_M4] += term1 * dn2 * (n * n - 3.0 * n + 3.0) + 6.0 * dn2 * m2 - 4.0 * dn * m3
    st[F_M3] = m3 + term1 * dn * (n - 2.0) - 3.0 * dn * m2
    st[F_M2] = m2 + term1
    st[F_N] = n


@njit(cache=True)
def moments_remove(st, x):
    """Remove x from the central sums: the pairwise merge formula (Pebay 2008) solved for A,
    given AB = A + {x}. delta = x - mean_A = (x - mean_AB) n / (n - 1)."""
    n = st[F_N]
    if n <= 1.0:
        st[F_N] = 0.0
        st[F_MEAN] = 0.0
        st[F_M2] = 0.0
        st[F_M3] = 0.0
        st[F_M4] = 0.0
        return
    na = n - 1.0
    inv_n = 1.0 / n
    delta = (x - st[F_MEAN]) * n * (1.0 / na)
    d2 = delta * delta
    dn = delta * inv_n
    m2a = st[F_M2] - d2 * na * inv_n
    m3a = st[F_M3] - d2 * dn * na * (na - 1.0) * inv_n + 3.0 * dn * m2a
    m4a = st[F_M4] - d2 * dn * dn * na * (na * na - na + 1.0) * inv_n - 6.0 * dn * dn * m2a + 4.0 * dn * m3a
    st[F_MEAN] -= dn
    st[F_M2] = max(m2a, 0.0)
    st[F_M3] = m3a
    st[F_M4] = max(m4a, 0.0)
    st[F_N] = na


@njit(cache=True)
def moments_resync(st, it, ring):
    """Exact two-pass central sums of the window held in the ring (O(window))."""
    cap = ring.shape[0]
    head = it[I_HEAD]
    n = min(head, cap)
    s = 0.0
    for j in range(head - n, head):
        s += ring[j % cap]
    mean = s / n if n > 0 else 0.0
    m2 = 0.0
    m3 = 0.0
    m4 = 0.0
    for j in range(head - n, head):
        d = ring[j % cap] - mean
        d2 = d * d
        m2 += d2
        m3 += d2 * d
        m4 += d2 * d2
    st[F_N] = n
    st[F_MEAN] = mean
    st[F_M2] = m2
    st[F_M3] = m3
    st[F_M4] = m4
    st[F_REF2] = m2
    st[F_REF4] = m4
    it[I_SINCE] = 0


@njit(cache=True)
def moments_push(st, it, ring, x):
    """Slide the window by one sample: O(1), plus an exact resync once per turnover."""
    cap = ring.shape[0]
    head = it[I_HEAD]
    k = head % cap
    if head >= cap:
        moments_remove(st, ring[k])
    ring[k] = x
    it[I_HEAD] = head + 1
    moments_add(st, x)
    it[I_SINCE] += 1
    st[F_REF2] = max(st[F_REF2], st[F_M2])
    st[F_REF4] = max(st[F_REF4], st[F_M4])
    if it[I_SINCE] >= cap or st[F_M2] < RESYNC_DROP * st[F_REF2] or st[F_M4] < RESYNC_DROP * st[F_REF4]:
        moments_resync(st, it, ring)


@njit(cache=True)
def excess_kurtosis(n, m2sum, m4sum, unbiased):
    """Fisher excess kurtosis from central sums; NaN when the variance is zero."""
    if not (m2sum > 0.0):
        return np.nan
    g2 = n * m4sum / (m2sum * m2sum) - 3.0
    if unbiased:  # scipy.stats.kurtosis(bias=False): the adjusted G2 (needs n >= 4)
        return ((n + 1.0) * g2 + 6.0) * (n - 1.0) / ((n - 2.0) * (n - 3.0))
    return g2


@njit(cache=True)
def kurtosis_kernel(now, dt, params, st, it, ring, price, price_ticked, kurt, as_factor):
    p = price[0]
    if not (p > 0.0 and p < np.inf):  # NaN, inf or non-positive: not a price
        return EMIT.NONE
    if it[I_T] < 0:  # the first price only seeds
        st[F_P0] = p
        it[I_T] = now
        it[I_T0] = now
        return EMIT.NONE
    elapsed = now - it[I_T]
    if elapsed <= 0:  # same timestamp: fold the move into the next interval
        return EMIT.NONE
    it[I_T] = now
    if elapsed > params[P_GAP] * 1e9:  # a data gap: no sample spans it; start a new one here
        st[F_P0] = p
        it[I_T0] = now
        return EMIT.NONE
    span = now - it[I_T0]
    if span < params[P_HORIZON] * 1e9:  # the sample is not horizon_s long yet
        return EMIT.NONE
    r = np.log(p / st[F_P0]) * 1e4
    st[F_P0] = p
    it[I_T0] = now
    moments_push(st, it, ring, r / np.sqrt(span * 1e-9))
    n = st[F_N]
    if n < params[P_MIN_N]:
        return EMIT.NONE
    mean = st[F_MEAN]
    if st[F_M2] <= 1e-20 * mean * mean * n:  # variance zero to rounding: kurtosis undefined
        return EMIT.NONE
    k = excess_kurtosis(n, st[F_M2], st[F_M4], params[P_UNBIASED] > 0.5)
    if k != k:
        return EMIT.NONE
    kurt[0] = k
    f = 1.0 + params[P_KAPPA] * max(0.0, k)
    cap = params[P_MAX_FACTOR]
    if cap == cap:
        f = min(f, cap)
    as_factor[0] = f
    return EMIT.ALL


class Kurtosis(Node):
    """Excess kurtosis of recent returns, and the AS_ratio adjustment factor it implies.

    Seed 000, Component 7, D2 (return distribution tail detection):
        kurt      = m4 / m2^2 - 3,   m_k = (1/n) sum (x_i - mean)^k   (0 for a Gaussian)
        as_factor = 1 + kappa_tail * max(0, kurt)        (AS_ratio_adjusted = AS_ratio * as_factor)
    over the last `window` samples x_i = r_i / sqrt(T_i): r_i = 1e4 ln(p_end / p_start) is the
    log return in bps over a span T_i (seconds) of at least `horizon_s`, between two runs of
    the node (the price is sampled on each run; a sample closes on the first run at least
    horizon_s after it opened). Dividing by sqrt(T) makes returns over unequal spans
    comparable (for a diffusion they are then identically distributed); kurtosis is
    scale-free, so on a regular grid this changes nothing. Estimator: the plug-in (biased)
    one the seed writes, equal to scipy.stats.kurtosis(x, fisher=True, bias=True);
    `unbiased: true` gives the adjusted G2 of bias=False instead. Direction-free: no `obs`
    output (the seed feeds it into the AS ratio, not into the drift filter). `max_factor`
    optionally caps the factor (the seed has no cap; one jump in a window of n gives kurt of
    order n).

    Horizon (the seed does not say which returns): the kurtosis of mid returns depends
    strongly on their span. On a tick grid, short returns are mostly zero with an occasional
    tick, which is fat-tailed whatever the market does: on the 2024 BTC archive hour, 66 % of
    1 s mid returns are 0 and the rolling kurtosis has median 17 (as_factor ~4 at
    kappa_tail 0.2), at 10 s 19 % and 2.1, at 30 s 0.2. The AS adjustment is about moves over
    a holding time of seconds to a minute, so the default samples 10 s returns (window 90 =
    15 min); set `horizon_s: 0` for one return per run.

    Streaming moments: a count window in a preallocated ring; the central sums (mean, M2,
    M3, M4) are updated in O(1) by Pebay's centred add formula and its exact inverse for the
    sample leaving the window, never from raw power sums, so a large common offset cannot
    cancel. They are recomputed exactly (two-pass) once per window turnover, or when M2 or
    M4 falls below 1e-4 of its peak since the last recomputation, which bounds the rounding
    a removal leaves (it is relative to the sum before it) over a day of data.

    Edge cases. The first price only opens a sample; NaN, inf or non-positive prices are
    ignored (nothing emitted); two runs at the same event time fold the move into the next
    one. Two runs more than `max_gap_s` apart are a data gap: the open sample is dropped (no
    sample spans a gap), a new one opens there, nothing is emitted; the window keeps its
    older samples. Outputs are emitted only on runs that close a sample, once the window
    holds `min_samples`, and not when its variance is zero (to rounding: a flat price), where
    kurtosis is undefined. Outputs not emitted keep their last values. Default tier hot: the
    run rate is the sampling rate of the price."""

    type_name = "features.kurtosis"

    class Params(NodeParams):
        window: int = Field(90, ge=4, le=10_000_000, description="returns in the window (samples)")
        horizon_s: float = Field(
            10.0, ge=0, description="span of each return, s (at least; 0 = one return per run)"
        )
        min_samples: int = Field(30, ge=4, description="samples needed before a value is emitted")
        kappa_tail: float = Field(
            0.2, ge=0, description="AS_ratio scaling per unit of excess kurtosis (seed range 0.1-0.5)"
        )
        unbiased: bool = Field(False, description="adjusted (bias=False) estimator instead of the plug-in")
        max_factor: float | None = Field(None, ge=1, description="cap on as_factor; None = no cap (the seed)")
        max_gap_s: float = Field(
            30.0, gt=0, description="runs further apart than this are a data gap: no sample spans it"
        )

        @model_validator(mode="after")
        def _counts(self):
            if self.min_samples > self.window:
                raise ValueError(f"min_samples ({self.min_samples}) exceeds window ({self.window})")
            return self

    inputs = {"price": In("f64", doc="the price sampled on each run (source.mid)")}
    outputs = {
        "kurt": Out("f64", doc="excess kurtosis of the window's standardised returns"),
        "as_factor": Out("f64", doc="1 + kappa_tail * max(0, kurt): multiplies the AS ratio"),
    }
    kernel = kurtosis_kernel

    def init_state(self):
        floats = np.zeros(8)
        floats[F_P0] = np.nan
        ints = np.zeros(4, np.int64)
        ints[I_T] = -1
        return (floats, ints, np.zeros(self.params.window))  # ring of standardised returns


EMIT = Kurtosis.EMIT  # the kernel's named emit bits (compile-time constants)
