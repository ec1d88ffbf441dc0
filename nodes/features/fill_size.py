"""features.fill_size: recent against baseline aggressive order size per side, as a z-score."""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from pydantic import Field, model_validator

from flowmm.core.node import In, Node, NodeParams, Out
from flowmm.core.ports import OBS_R, OBS_Z, TR_PX, TR_SIDE, TR_SZ

# packed params (Params field order)
P_RECENT, P_BASE, P_LOG, P_PER_PRINT, P_MIN_RECENT, P_MIN_BASE, P_ALPHA, P_SIGMA = range(8)
# fs (float64 state), per side k (0 buy, 1 sell) at 5k: recent weight and mean, baseline
# weight, mean and weighted sum of squared deviations, all as of ts[T_REF]
F_WR, F_MR, F_WB, F_MB, F_SB = range(5)
N_SIDE = 5
# ts (int64 state)
T_REF, T_SEEDED = range(2)


@njit(cache=True)
def _add_order(fs, t, s, size, now, params):
    """Fold one finished order (side s, event time t <= now) into its side's moments.

    Weighted incremental mean / variance (West 1979) with exponential forgetting: centred
    updates, no sum-of-squares cancellation."""
    x = math.log(size) if params[P_LOG] > 0.5 else size
    e = (now - t) * 1e-9
    if e < 0.0:
        e = 0.0
    o = 0 if s > 0.0 else N_SIDE
    w = math.exp(-e / params[P_RECENT])
    fs[o + F_WR] += w
    fs[o + F_MR] += (w / fs[o + F_WR]) * (x - fs[o + F_MR])
    w = math.exp(-e / params[P_BASE])
    wb = fs[o + F_WB] + w
    d = x - fs[o + F_MB]
    fs[o + F_MB] += (w / wb) * d
    fs[o + F_SB] += w * d * (x - fs[o + F_MB])
    fs[o + F_WB] = wb


@njit(cache=True)
def fill_size_kernel(
    now, dt, params, fs, ts,
    trades_t, trades_r, trades_start, trades_end,
    clock, clock_ticked,
    zscore_buy, zscore_sell, recent_buy, recent_sell, base_buy, base_sell, obs,
):  # fmt: skip
    per_print = params[P_PER_PRINT] > 0.5
    log_size = params[P_LOG] > 0.5
    if ts[T_SEEDED] == 0:
        ts[T_SEEDED] = 1
        ts[T_REF] = now
    el = (now - ts[T_REF]) * 1e-9
    if el > 0.0:  # forget: weights (and the squared-deviation sum) decay, means do not move
        fr = math.exp(-el / params[P_RECENT])
        fb = math.exp(-el / params[P_BASE])
        for o in (0, N_SIDE):
            fs[o + F_WR] *= fr
            fs[o + F_WB] *= fb
            fs[o + F_SB] *= fb
        ts[T_REF] = now
    # orders: runs of prints of one timestamp and side at the same or worsening prices
    cap = trades_t.shape[0]
    o_t = np.int64(0)
    o_s = 0.0  # 0 = no open order
    o_px = 0.0
    o_sz = 0.0
    for i in range(trades_start, trades_end):
        row = i % cap
        px = trades_r[row, TR_PX]
        sz = trades_r[row, TR_SZ]
        side = trades_r[row, TR_SIDE]
        if not (px > 0.0 and sz > 0.0 and (side > 0.0 or side < 0.0)):
            continue  # NaN or malformed print: skipped
        s = 1.0 if side > 0.0 else -1.0
        t = trades_t[row]
        if not per_print and o_s != 0.0 and t == o_t and s == o_s and (px - o_px) * s >= 0.0:
            o_sz += sz
            o_px = px
            continue
        if o_s != 0.0:
            _add_order(fs, o_t, o_s, o_sz, now, params)
        o_t, o_s, o_px, o_sz = t, s, px, sz
    if o_s != 0.0:  # same-timestamp prints arrive in one step: the open order is complete
        _add_order(fs, o_t, o_s, o_sz, now, params)

    mask = EMIT.NONE
    z_sum = 0.0
    n_sum = 0.0
    for k in range(2):
        o = k * N_SIDE
        sd = math.sqrt(fs[o + F_SB] / fs[o + F_WB]) if fs[o + F_WB] > 0.0 else 0.0
        base_ok = fs[o + F_WB] >= params[P_MIN_BASE] and sd > 0.0
        if base_ok:
            mb = fs[o + F_MB]
            if k == 0:
                base_buy[0] = math.exp(mb) if log_size else mb
            else:
                base_sell[0] = math.exp(mb) if log_size else mb
            mask |= EMIT.BASE_BUY if k == 0 else EMIT.BASE_SELL
        if fs[o + F_WR] >= params[P_MIN_RECENT] and fs[o + F_WR] > 0.0:
            mr = fs[o + F_MR]
            if k == 0:
                recent_buy[0] = math.exp(mr) if log_size else mr
            else:
                recent_sell[0] = math.exp(mr) if log_size else mr
            mask |= EMIT.RECENT_BUY if k == 0 else EMIT.RECENT_SELL
            if base_ok:
                z = (mr - fs[o + F_MB]) / sd
                if k == 0:
                    zscore_buy[0] = z
                    z_sum += z
                else:
                    zscore_sell[0] = z
                    z_sum -= z
                n_sum += fs[o + F_WR]
                mask |= EMIT.ZSCORE_BUY if k == 0 else EMIT.ZSCORE_SELL
    if n_sum > 0.0:
        sigma = params[P_SIGMA]
        obs[OBS_Z] = params[P_ALPHA] * z_sum
        obs[OBS_R] = sigma * sigma / n_sum
        mask |= EMIT.OBS
    return mask


class FillSize(Node):
    """Recent against baseline size of aggressive orders per side, as a z-score, and z / R.

    Seed 000, Component 7, B3, on the tape (every aggressor, not only our counterparties).
    Per side (buy = buyers lifting the ask, sell = sellers hitting the bid), with x = ln(size)
    (`log_size`, default) or the size in contracts:

        zscore = (m_recent - m_base) / sd_base
        z = alpha * (zscore_buy - zscore_sell)   (bps/s: bullish when buy sizes grow)
        R = sigma^2 / n_recent,   n_recent = w_recent_buy + w_recent_sell over the sides in z

    m_recent: the mean of x weighted exp(-(t - t_i)/recent_s) (w_recent: the sum of those
    weights, the effective count of recent orders); m_base, sd_base: the mean and standard
    deviation weighted exp(-(t - t_i)/baseline_s) (baseline includes the recent orders). The
    seed's -size_zscore_bid becomes -zscore_sell here: sellers hit the bid.

    Choices where the seed is open:

    * An order is a run of prints of one timestamp and side at the same or worsening prices
      (docs/synthetic.md "Tape conventions"; the seed's "fill size" is the aggressor's order
      size, so a sweep is one order); `per_print: true` uses prints. The prints of one
      timestamp arrive in one engine step, so an order is complete at the end of the step.
    * ln(size) by default: order sizes are heavy tailed (log-normal-like), the arithmetic mean
      and sd are dominated by a few large orders, and a shift of ln(size) is a change of the
      typical order size by a factor. `recent_*` / `base_*` then report geometric means.
    * Streaming moments: weighted incremental updates (West 1979) with exponential forgetting,
      centred, no sums of squares.

    Defaults (to be calibrated): recent_s 30 s against baseline_s 900 s; alpha 0.08 is the slope
    of the next-10-s return rate (bps/s) on zscore_buy - zscore_sell in the synthetic market
    (HYPE, `mixed`, size knob 1, 20 seeds); sigma 1.1 makes R at a typical n_recent (~45
    orders) the variance of the 10-s return rate, 0.03 (bps/s)^2.

    Edge cases: NaN, non-positive or zero-side prints are skipped. A side's zscore and recent
    mean are emitted while w_recent >= min_recent, its baseline once w_base >= min_baseline
    (and sd_base > 0); before that, and after a quiet spell or a gap in the data has decayed
    the recent weight below min_recent, they are not emitted (values left as they were). `obs`
    needs one side with both. Wire `clock: source.clock` to apply the decay on cycles without
    trades (otherwise the node runs only when trades arrive)."""

    type_name = "features.fill_size"

    class Params(NodeParams):
        recent_s: float = Field(30.0, gt=0, description="time constant of the recent mean, s")
        baseline_s: float = Field(900.0, gt=0, description="time constant of the baseline, s")
        log_size: bool = Field(True, description="z-score ln(size) (default) or the size itself")
        per_print: bool = Field(False, description="use prints instead of aggressor orders")
        min_recent: float = Field(2.0, gt=0, description="effective recent orders needed for a side's zscore")
        min_baseline: float = Field(30.0, gt=0, description="effective baseline orders needed")
        alpha: float = Field(0.08, description="bps/s of drift per unit of zscore_buy - zscore_sell")
        sigma: float = Field(1.1, gt=0, description="observation noise: R = sigma^2 / n_recent")

        @model_validator(mode="after")
        def _baseline_slower(self):
            if self.baseline_s <= self.recent_s:
                raise ValueError(f"baseline_s {self.baseline_s} must exceed recent_s {self.recent_s}")
            return self

    inputs = {
        "trades": In("trades", doc="the tape (source.trades)"),
        "clock": In("f64", optional=True, doc="wire source.clock to refresh the decay every cycle"),
    }
    outputs = {
        "zscore_buy": Out("f64", doc="(recent - baseline) / sd of buy order sizes"),
        "zscore_sell": Out("f64", doc="the same for sell orders"),
        "recent_buy": Out("f64", doc="recent mean buy order size, contracts (geometric if log_size)"),
        "recent_sell": Out("f64", doc="recent mean sell order size"),
        "base_buy": Out("f64", doc="baseline mean buy order size"),
        "base_sell": Out("f64", doc="baseline mean sell order size"),
        "obs": Out("obs", doc="z = alpha (zscore_buy - zscore_sell), R = sigma^2 / n_recent"),
    }
    kernel = fill_size_kernel

    def init_state(self):
        return np.zeros(2 * N_SIDE), np.zeros(2, np.int64)  # see F_* / T_* above


EMIT = FillSize.EMIT  # the kernel's named emit bits (compile-time constants)
