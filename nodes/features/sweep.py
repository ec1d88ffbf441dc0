"""features.sweep: per-side sweep score from the tape and our own fills, and the burst count."""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from pydantic import Field

from flowmm.core.node import In, Node, NodeParams, Out
from flowmm.core.ports import FI_PX, FI_SIDE, FI_SZ, OBS_R, OBS_Z, TR_PX, TR_SIDE, TR_SZ

# packed params (Params field order)
P_TAU, P_MIN_LEV, P_MIN_FILL_LEV, P_SIZE_POW, P_FILL_W, P_BURST_W, P_ALPHA, P_SIGMA = range(8)
FLUSH_LOG = math.log(1e6)  # a score whose newest part has decayed by 1e-6 is flushed to exactly 0
BURST_CAP = 256  # own fills remembered per side for the burst count (the count saturates there)
FILL_PRICES = 64  # distinct prices tracked in one group of own fills (MAX_ORDERS resting orders)

# fs (float64 state): scores 0..3 decayed to the last run's `now`, then the two open groups
F_TAPE_BID, F_TAPE_ASK, F_OWN_BID, F_OWN_ASK = range(4)
F_TP_SIDE, F_TP_PX, F_TP_SZ, F_TP_LEV, F_TP_C = 4, 5, 6, 7, 8  # open tape order
F_OP_SIDE, F_OP_SZ, F_OP_LEV, F_OP_C = 9, 10, 11, 12  # open group of own fills
N_FS = 13
# ts (int64 state)
T_REF, T_TP, T_OP, T_SEEDED = 0, 1, 2, 3
T_LAST = 4  # 4..7: time of the newest non-zero contribution to each score (0 = none)
N_TS = 8


@njit(cache=True)
def _add(fs, ts, k, delta, t, now, tau):
    """Add a contribution made at event time t to score k (decayed to now)."""
    if delta == 0.0:  # most orders cross too few levels to count
        return
    el = (now - t) * 1e-9
    w = math.exp(-el / tau) if el > 0.0 else 1.0
    fs[k] += delta * w
    if t > ts[T_LAST + k]:
        ts[T_LAST + k] = t


@njit(cache=True)
def _weight(size, levels, min_levels, power):
    """A sweep's contribution: size^power * levels, or 0 below min_levels."""
    if levels < min_levels:
        return 0.0
    return (size if power == 1.0 else size**power) * levels


@njit(cache=True)
def sweep_kernel(
    now, dt, params, fs, ts, fpx, bq,
    trades_t, trades_r, trades_start, trades_end,
    fills_t, fills_r, fills_start, fills_end,
    clock, clock_ticked,
    bid_score, ask_score, own_bid_score, own_ask_score, burst_bid, burst_ask, obs,
):  # fmt: skip
    tau = params[P_TAU]
    min_lev = params[P_MIN_LEV]
    min_fill_lev = params[P_MIN_FILL_LEV]
    size_pow = params[P_SIZE_POW]
    # decay every score to now (scores are kept as of the last run's now)
    if ts[T_SEEDED] == 0:
        ts[T_SEEDED] = 1
        ts[T_REF] = now
    el = (now - ts[T_REF]) * 1e-9
    if el > 0.0:
        f = math.exp(-el / tau)
        for k in range(4):
            fs[k] *= f
        ts[T_REF] = now

    # the tape: an order is a run of prints of one timestamp and side at the same or worsening
    # prices; it crosses one more level at every strictly worse price
    cap = trades_t.shape[0]
    for i in range(trades_start, trades_end):
        row = i % cap
        px = trades_r[row, TR_PX]
        sz = trades_r[row, TR_SZ]
        side = trades_r[row, TR_SIDE]
        if not (px > 0.0 and sz > 0.0 and (side > 0.0 or side < 0.0)):
            continue  # NaN or malformed print: skipped, the open order stays open
        s = 1.0 if side > 0.0 else -1.0
        t = trades_t[row]
        step = (px - fs[F_TP_PX]) * s
        if t == ts[T_TP] and s == fs[F_TP_SIDE] and step >= 0.0:
            if step > 0.0:
                fs[F_TP_LEV] += 1.0
            fs[F_TP_SZ] += sz
        else:
            fs[F_TP_SIDE] = s
            fs[F_TP_SZ] = sz
            fs[F_TP_LEV] = 1.0
            fs[F_TP_C] = 0.0
            ts[T_TP] = t
        fs[F_TP_PX] = px
        c = _weight(fs[F_TP_SZ], fs[F_TP_LEV], min_lev, size_pow)
        # sellers (-1) sweep the bids, buyers (+1) the asks
        _add(fs, ts, F_TAPE_BID if s < 0.0 else F_TAPE_ASK, c - fs[F_TP_C], t, now, tau)
        fs[F_TP_C] = c

    # own fills: a group is the fills of one timestamp and side; levels = its distinct prices
    cap = fills_t.shape[0]
    w_ns = params[P_BURST_W] * 1e9
    for i in range(fills_start, fills_end):
        row = i % cap
        px = fills_r[row, FI_PX]
        sz = fills_r[row, FI_SZ]
        side = fills_r[row, FI_SIDE]
        if not (px > 0.0 and sz > 0.0 and (side > 0.0 or side < 0.0)):
            continue
        s = 1.0 if side > 0.0 else -1.0
        t = fills_t[row]
        if t == ts[T_OP] and s == fs[F_OP_SIDE]:
            n = int(fs[F_OP_LEV])
            seen = False
            for j in range(min(n, FILL_PRICES)):
                if fpx[j] == px:
                    seen = True
                    break
            if not seen:
                if n < FILL_PRICES:
                    fpx[n] = px
                fs[F_OP_LEV] += 1.0
            fs[F_OP_SZ] += sz
        else:
            fs[F_OP_SIDE] = s
            fs[F_OP_SZ] = sz
            fs[F_OP_LEV] = 1.0
            fs[F_OP_C] = 0.0
            fpx[0] = px
            ts[T_OP] = t
        c = _weight(fs[F_OP_SZ], fs[F_OP_LEV], min_fill_lev, size_pow)
        # our bid filled (+1) = a seller hit us = the bid side
        _add(fs, ts, F_OWN_BID if s > 0.0 else F_OWN_ASK, c - fs[F_OP_C], t, now, tau)
        fs[F_OP_C] = c
        # burst ring of this side: drop the oldest when full, then append
        k = 0 if s > 0.0 else 1
        if bq[k, 1] == BURST_CAP:
            bq[k, 0] = (bq[k, 0] + 1) % BURST_CAP
            bq[k, 1] -= 1
        bq[k, 2 + (bq[k, 0] + bq[k, 1]) % BURST_CAP] = t
        bq[k, 1] += 1

    for k in range(4):  # an old score is flushed to exactly 0 (no endless tiny observations)
        if fs[k] != 0.0 and (now - ts[T_LAST + k]) * 1e-9 > FLUSH_LOG * tau:
            fs[k] = 0.0
    for k in range(2):  # burst: own fills of the side within (now - window, now]
        while bq[k, 1] > 0 and now - bq[k, 2 + bq[k, 0]] >= w_ns:
            bq[k, 0] = (bq[k, 0] + 1) % BURST_CAP
            bq[k, 1] -= 1

    fw = params[P_FILL_W]
    bid = fs[F_TAPE_BID] + fw * fs[F_OWN_BID]
    ask = fs[F_TAPE_ASK] + fw * fs[F_OWN_ASK]
    bid_score[0] = bid
    ask_score[0] = ask
    own_bid_score[0] = fs[F_OWN_BID]
    own_ask_score[0] = fs[F_OWN_ASK]
    burst_bid[0] = bq[0, 1]
    burst_ask[0] = bq[1, 1]
    total = bid + ask
    if total > 0.0:
        sigma = params[P_SIGMA]
        obs[OBS_Z] = params[P_ALPHA] * (ask - bid)
        obs[OBS_R] = sigma * sigma / total
        return EMIT.ALL
    return (
        EMIT.BID_SCORE
        | EMIT.ASK_SCORE
        | EMIT.OWN_BID_SCORE
        | EMIT.OWN_ASK_SCORE
        | EMIT.BURST_BID
        | EMIT.BURST_ASK
    )


class Sweep(Node):
    """Sweep score per side from the tape and from our own fills, and the own-fill burst count.

    Seed 000, Component 7, B1 (sweep detection); the burst count is seed 004's "4+ same-side
    fills within 2 s" (Stage 1 burst LR, Stage 7 emergency cancel).

    Score of a side at time t (contracts x levels):

        S_side(t) = sum_g size_g^size_power * levels_g * exp(-(t - t_g) / tau_s)

    over the sweeps g of that side: tape orders crossing at least `min_levels` levels, and
    (weighted by `fill_weight`) groups of our fills crossing at least `min_fill_levels`.
    bid = sellers sweeping the bids (tape side -1; our bid fills, fill side +1), ask = buyers
    sweeping the asks. Observation (drift in bps/s, bearish when sellers sweep):

        z = alpha * (S_ask - S_bid),   R = sigma^2 / (S_ask + S_bid)   (seed: R = sigma^2 / score)

    Choices where the seed is open:

    * Sweep on the tape: one aggressor order = a run of prints of one timestamp and side at the
      same or strictly worsening prices (higher for a buyer); a print at a better price starts a
      new order (a second order in the same block finds the touch again, docs/synthetic.md "Tape
      conventions"). levels = the number of distinct prices in the run (queues consumed, which on
      a book with empty ticks is fewer than the ticks crossed); size = its summed size. The
      default `min_levels` 3 is the synthetic market's sweep (>= 3 prints at strictly worsening
      prices); ordinary orders (1-2 levels) then add nothing, so the score is not a volume proxy.
    * Own fills: fills of one timestamp and side form a group (a sweep through our ladder fills
      several of our orders at once, in any order); levels = its distinct prices (up to 64
      tracked). Live, our fills are on the tape too: the default `fill_weight` 1 counts a sweep
      through our own ladder a second time, on purpose (it is the one that hurts); set 0 to avoid.
    * Window: exponential with mean life `tau_s` instead of the seed's hard tau window (the same
      mass for a steady rate, no cliff when a sweep leaves the window, O(1) state). A score is
      flushed to exactly 0 once its newest contribution is older than ln(1e6) tau_s (weight
      < 1e-6), and then no observation is emitted.
    * size_power (default 1, the seed's size * levels): 0 scores levels only. On the synthetic
      market a sweep's size is the queues it ate, unrelated to whether it was informed, so
      size_power 0 carries more of the channel there; whether size matters on Hyperliquid is
      for the calibration.
    * burst_bid / burst_ask: our fill records of that side with t in (now - burst_window_s, now]
      (each partial fill counts; at most 256 per side are remembered).

    Defaults of alpha and sigma (to be calibrated): alpha is the slope of the next-10-s return
    rate (bps/s) on S_ask - S_bid in the synthetic market (HYPE, `mixed`, sweeps knob 1: 2.5e-6
    over seeds 0-19, 4.9e-6 over 20-59); sigma^2 / S at a typical single sweep (S ~ 1,200)
    equals the variance of the 10-s return rate, 0.03 (bps/s)^2. Sweeps are rare (~10 per 30
    min there), so the raw score with tau_s 3 s predicts the next 10 s only through the filter
    that accumulates it; as a stand-alone predictor tau_s 60 and size_power 0 do better.

    Emergency path: set `trigger: event` in the graph so the burst counts update in the step of
    the fill, not at the next quote cycle.

    Inputs are read in full each run with their own event times, so the values do not depend on
    when the node runs; wire `clock: source.clock` to refresh the decay on cycles without trades.
    Edge cases: NaN, non-positive size or price, or zero side records are skipped; the first run
    starts from zero scores; zero dt is fine (no decay); with no sweep in ~14 tau (a quiet market
    or a gap in the data) the scores are 0 and no observation is emitted. The score outputs and
    burst counts are emitted on every run, `obs` only while the total score is positive."""

    type_name = "features.sweep"

    class Params(NodeParams):
        tau_s: float = Field(
            3.0, gt=0, description="mean life of a sweep in the score, s (seed tau_sweep 1-5 s)"
        )
        min_levels: int = Field(3, ge=1, le=1000, description="tape orders crossing fewer levels add 0")
        min_fill_levels: int = Field(
            2, ge=1, le=64, description="own-fill groups crossing fewer levels add 0"
        )
        size_power: float = Field(
            1.0, ge=0, le=1, description="a sweep adds size^size_power * levels (1: the seed's size * levels)"
        )
        fill_weight: float = Field(1.0, ge=0, description="weight of own-fill sweeps in bid/ask_score")
        burst_window_s: float = Field(2.0, gt=0, description="burst count window, s (seed 004: 2 s)")
        alpha: float = Field(4.0e-6, description="bps/s of drift per contract-level of score imbalance")
        sigma: float = Field(6.0, gt=0, description="observation noise: R = sigma^2 / total score")

    inputs = {
        "trades": In("trades", doc="the tape (source.trades)"),
        "fills": In("fills", optional=True, doc="our fills (exec.fills)"),
        "clock": In("f64", optional=True, doc="wire source.clock to refresh the decay every cycle"),
    }
    outputs = {
        "bid_score": Out(
            "f64", doc="sellers sweeping the bids: tape + fill_weight * own, contracts x levels"
        ),
        "ask_score": Out("f64", doc="buyers sweeping the asks: tape + fill_weight * own"),
        "own_bid_score": Out("f64", doc="the own-fill part of bid_score (unweighted)"),
        "own_ask_score": Out("f64", doc="the own-fill part of ask_score (unweighted)"),
        "burst_bid": Out("f64", doc="our bid fills within burst_window_s"),
        "burst_ask": Out("f64", doc="our ask fills within burst_window_s"),
        "obs": Out("obs", doc="z = alpha (ask - bid) bps/s, R = sigma^2 / (ask + bid)"),
    }
    kernel = sweep_kernel

    def init_state(self):
        fs = np.zeros(N_FS)
        fs[F_TP_SIDE] = fs[F_OP_SIDE] = np.nan
        ts = np.zeros(N_TS, np.int64)
        ts[T_TP] = ts[T_OP] = np.iinfo(np.int64).min
        # fs, ts, prices of the open own-fill group, burst rings [side, (head, count, times...)]
        return fs, ts, np.zeros(FILL_PRICES), np.zeros((2, BURST_CAP + 2), np.int64)


EMIT = Sweep.EMIT  # the kernel's named emit bits (compile-time constants)
