from __future__ import annotations

import numpy as np
from numba import njit
from pydantic import Field, model_validator

from flowmm.core.node import In, Node, NodeParams, Out

# packed params (Params field order)
P_SHORT, P_LONG, P_NU, P_BASE, P_COVER, P_MIN_N, P_GAP, P_CAP = range(8)
# float state: last price, window sums of r^2 (bps^2), their largest values since the last resync
F_PX, F_S_SHORT, F_S_LONG, F_REF_SHORT, F_REF_LONG = range(5)
# int state: time of the last price (ns, -1 = none), samples ever pushed, oldest sample of each
# window (absolute index), covered time of each window (ns), pushes since the last resync
I_T, I_HEAD, I_TAIL_LONG, I_TAIL_SHORT, I_SPAN_SHORT, I_SPAN_LONG, I_SINCE = range(7)
# a window sum that fell this far below its peak since the last exact resum is resummed: the
# rounding of running add/remove is relative to the peak, not to the (now small) sum
RESYNC_DROP = 1e-4


@njit(cache=True)
def _resum(st, it, r2s):
    """Exact window sums from the ring (O(window)); run once per window turnover."""
    cap = r2s.shape[0]
    head = it[I_HEAD]
    s_long = 0.0
    s_short = 0.0
    for j in range(it[I_TAIL_LONG], head):
        v = r2s[j % cap]
        s_long += v
        if j >= it[I_TAIL_SHORT]:
            s_short += v
    st[F_S_SHORT] = s_short
    st[F_S_LONG] = s_long
    st[F_REF_SHORT] = s_short
    st[F_REF_LONG] = s_long
    it[I_SINCE] = 0


@njit(cache=True)
def _drop(st, it, r2s, dts, j, short):
    """Remove sample ``j`` (absolute index) from the long window, or from the short one."""
    k = j % r2s.shape[0]
    if short:
        st[F_S_SHORT] -= r2s[k]
        it[I_SPAN_SHORT] -= dts[k]
        it[I_TAIL_SHORT] += 1
    else:
        st[F_S_LONG] -= r2s[k]
        it[I_SPAN_LONG] -= dts[k]
        it[I_TAIL_LONG] += 1


@njit(cache=True)
def vol_term_kernel(
    now, dt, params, st, it, r2s, t1s, dts, price, price_ticked, vol_short, vol_long, ratio, scale, sigma_eff
):
    p = price[0]
    if not (p > 0.0 and p < np.inf):  # NaN, inf or non-positive: not a price
        return EMIT.NONE
    if it[I_T] < 0:  # the first price only seeds
        st[F_PX] = p
        it[I_T] = now
        return EMIT.NONE
    elapsed = now - it[I_T]
    if elapsed <= 0:  # same timestamp: fold the move into the next interval
        return EMIT.NONE
    r = np.log(p / st[F_PX]) * 1e4
    st[F_PX] = p
    it[I_T] = now
    if elapsed > params[P_GAP] * 1e9:  # a return over a data gap is not a sample
        return EMIT.NONE

    cap = r2s.shape[0]
    head = it[I_HEAD]
    if head - it[I_TAIL_LONG] == cap:  # ring full: the oldest sample leaves both windows
        if it[I_TAIL_SHORT] == it[I_TAIL_LONG]:
            _drop(st, it, r2s, dts, it[I_TAIL_SHORT], True)
        _drop(st, it, r2s, dts, it[I_TAIL_LONG], False)
    k = head % cap
    r2 = r * r
    r2s[k] = r2
    t1s[k] = now
    dts[k] = elapsed
    it[I_HEAD] = head + 1
    st[F_S_SHORT] += r2
    st[F_S_LONG] += r2
    it[I_SPAN_SHORT] += elapsed
    it[I_SPAN_LONG] += elapsed
    it[I_SINCE] += 1

    # a sample (t1 - dt, t1] belongs to a window of length W while it starts at or after now - W
    w_short = np.int64(params[P_SHORT] * 1e9)
    w_long = np.int64(params[P_LONG] * 1e9)
    head = it[I_HEAD]
    while it[I_TAIL_SHORT] < head:
        j = it[I_TAIL_SHORT] % cap
        if t1s[j] - dts[j] >= now - w_short:
            break
        _drop(st, it, r2s, dts, it[I_TAIL_SHORT], True)
    while it[I_TAIL_LONG] < head:
        j = it[I_TAIL_LONG] % cap
        if t1s[j] - dts[j] >= now - w_long:
            break
        _drop(st, it, r2s, dts, it[I_TAIL_LONG], False)

    st[F_REF_SHORT] = max(st[F_REF_SHORT], st[F_S_SHORT])
    st[F_REF_LONG] = max(st[F_REF_LONG], st[F_S_LONG])
    if (
        it[I_SINCE] >= head - it[I_TAIL_LONG]
        or st[F_S_SHORT] < RESYNC_DROP * st[F_REF_SHORT]
        or st[F_S_LONG] < RESYNC_DROP * st[F_REF_LONG]
    ):
        _resum(st, it, r2s)

    min_n = params[P_MIN_N]
    cover = params[P_COVER]
    emitted = EMIT.NONE
    n_short = head - it[I_TAIL_SHORT]
    if n_short >= min_n and it[I_SPAN_SHORT] >= cover * w_short:
        vol_short[0] = np.sqrt(max(st[F_S_SHORT], 0.0) / (it[I_SPAN_SHORT] * 1e-9))
        emitted |= EMIT.VOL_SHORT
    n_long = head - it[I_TAIL_LONG]
    if n_long >= min_n and it[I_SPAN_LONG] >= cover * w_long:
        vol_long[0] = np.sqrt(max(st[F_S_LONG], 0.0) / (it[I_SPAN_LONG] * 1e-9))
        emitted |= EMIT.VOL_LONG
    if emitted == 3 and vol_long[0] > 0.0:
        ratio[0] = vol_short[0] / vol_long[0]
        q = ratio[0]
        nu = params[P_NU]
        if q <= 1.0 or nu == 0.0:  # max(1, q^nu) = 1: no pow needed
            scale[0] = 1.0
        elif nu == 0.5:  # the seed's sqrt scaling, without a pow
            scale[0] = np.sqrt(q)
        else:
            scale[0] = q**nu
        base = params[P_BASE]
        if base != base:
            base = vol_long[0]
        sigma_eff[0] = base * scale[0]
        emitted |= EMIT.RATIO | EMIT.SCALE | EMIT.SIGMA_EFF
    return emitted


class VolTerm(Node):
    """Realised volatility at a short and a long window, their ratio, and sigma_effective.

    Seed 000, Component 7, D1 (realised volatility term structure):
        vol_W     = sqrt( sum r_i^2 / sum dt_i )   over the samples i in the last W seconds
        ratio     = vol_short / vol_long            (seed: sigma_30s / sigma_300s)
        scale     = max(1, ratio^nu)
        sigma_eff = sigma_baseline * scale
    r_i = 1e4 ln(p_i / p_{i-1}) in bps is the log return between two successive runs of the
    node and dt_i its span in seconds, so vol is in bps/sqrt(s) (CONVENTIONS) and irregular
    sampling is weighted by the time each return spans. The seed's direction-free use: no
    `obs` output (D1 "doesn't indicate direction"; it feeds sigma, not the drift filter).

    Windows are exact and time-based, not exponential: a sample (t_{i-1}, t_i] belongs to
    the window of length W while it starts at or after now - W, so each window holds whole
    returns of the last W seconds (a return straddling the boundary has left), and the
    covered time sum dt_i <= W. Samples sit in a preallocated ring of `capacity` records
    shared by both windows; the window sums are kept by add/remove (O(1) amortised per
    update) and resummed exactly from the ring once per turnover of the long window, or when
    a sum falls below 1e-4 of its peak since the last resum, so rounding never builds up
    (no cancellation over a day of data). If the ring fills (more than `capacity` samples in
    the long window: sample less often or raise it), the oldest samples leave early and the
    long window covers less than W, which its coverage shows.

    sigma_baseline: the long-window vol by default (the seed's sigma_300s: sigma_eff is then
    max(vol_long, vol_long^(1-nu) vol_short^nu)); set `sigma_baseline` (bps/sqrt(s)) to use
    a fixed baseline instead. `scale` is output too, to multiply another sigma estimate
    (e.g. estimators.ewma_vol) by the same term-structure factor.

    Edge cases. The first price only seeds; NaN, inf or non-positive prices are ignored (no
    sample, nothing emitted); two runs at the same event time fold the move into the next
    interval. A return spanning more than `max_gap_s` is a data gap: it is not a sample and
    nothing is emitted; the older samples stay and age out of the windows by time, so the
    outputs come back once a window is covered again. A window's vol is emitted only when it
    holds at least `min_samples` returns covering at least `min_coverage` of its length
    (first minutes, after a gap, or a node run less often than the window allows: no
    value); ratio, scale and sigma_eff need both, and a long vol > 0 (a flat price gives no
    ratio). Outputs not emitted keep their last values.

    Default tier hot (the seed lists the vol ratio as warm-tier work, but the node is a few
    ns per update and the 30 s window needs several samples: at 6 s cycles it holds 5)."""

    type_name = "features.vol_term"

    class Params(NodeParams):
        short_window_s: float = Field(30.0, gt=0, description="short realised-vol window, seconds")
        long_window_s: float = Field(300.0, gt=0, description="long realised-vol window, seconds")
        nu: float = Field(0.5, ge=0, le=1, description="exponent of the vol ratio in sigma_eff (seed: 0..1)")
        sigma_baseline: float | None = Field(
            None, gt=0, description="baseline sigma, bps/sqrt(s); None = the long-window vol"
        )
        min_coverage: float = Field(
            0.5, gt=0, le=1, description="fraction of a window its samples must cover before it is emitted"
        )
        min_samples: int = Field(3, ge=1, description="returns a window must hold before it is emitted")
        max_gap_s: float = Field(
            30.0, gt=0, description="a return spanning longer than this is a data gap, not a sample"
        )
        capacity: int = Field(
            8192, ge=16, le=10_000_000, description="ring size: the most samples the long window holds"
        )

        @model_validator(mode="after")
        def _windows(self):
            if not self.long_window_s > self.short_window_s:
                raise ValueError(
                    f"long_window_s ({self.long_window_s}) must be longer than "
                    f"short_window_s ({self.short_window_s})"
                )
            return self

    inputs = {"price": In("f64", doc="the price sampled on each run (source.mid)")}
    outputs = {
        "vol_short": Out("f64", doc="realised vol over the short window, bps/sqrt(s)"),
        "vol_long": Out("f64", doc="realised vol over the long window, bps/sqrt(s)"),
        "ratio": Out("f64", doc="vol_short / vol_long"),
        "scale": Out("f64", doc="max(1, ratio^nu): the factor applied to sigma"),
        "sigma_eff": Out("f64", doc="sigma_baseline * scale, bps/sqrt(s)"),
    }
    kernel = vol_term_kernel

    def init_state(self):
        cap = self.params.capacity
        ints = np.zeros(7, np.int64)
        ints[I_T] = -1
        floats = np.zeros(5)
        floats[F_PX] = np.nan
        # ring: r^2 (bps^2), end time (ns), span (ns) of each sample
        return (floats, ints, np.zeros(cap), np.zeros(cap, np.int64), np.zeros(cap, np.int64))


EMIT = VolTerm.EMIT  # the kernel's named emit bits (compile-time constants)
