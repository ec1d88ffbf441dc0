"""estimators.kappa: per-side fill intensity lambda(delta) = A exp(-k delta) from where trades hit."""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from pydantic import Field

from flowmm.core.node import In, Node, NodeParams, Out
from flowmm.core.ports import TR_PX, TR_SIDE

# packed params (Params field order)
P_TAU, P_K_PRIOR, P_N_PRIOR, P_A_PRIOR, P_PRIOR_S, P_PER_PRINT, P_MAX_DEPTH = range(7)
# fs (float64 state), as of ts[T_REF]; per side index 0 bid (sellers hitting the bid), 1 ask
F_N, F_D = 0, 2  # EW order count, EW sum of depths (bps)
F_E = 4  # EW exposure, s
F_MID = 5  # the mid as of the end of the previous run (the mid before this run's batch)
F_G_SIDE, F_G_PX, F_G_DEPTH = 6, 7, 8  # the open order: aggressor side, last price, depth counted
F_PA = 9  # the A prior's pseudo-count a_prior * prior_s, decayed like data (not part of N)
# ts (int64 state)
T_REF, T_SEEDED, T_G = range(3)


@njit(cache=True)
def kappa_kernel(
    now, dt, params, fs, ts,
    trades_t, trades_r, trades_start, trades_end,
    mid, mid_ticked,
    a_bid, a_ask, k_bid, k_ask, n_bid, n_ask,
):  # fmt: skip
    tau = params[P_TAU]
    per_print = params[P_PER_PRINT] > 0.5
    max_depth = params[P_MAX_DEPTH]
    if ts[T_SEEDED] == 0:
        ts[T_SEEDED] = 1
        ts[T_REF] = now
        fs[F_PA] = params[P_A_PRIOR] * params[P_PRIOR_S]  # rate prior, forgotten like data
        fs[F_E] = params[P_PRIOR_S]
    el = (now - ts[T_REF]) * 1e-9
    if el > 0.0:  # O(1) decay to now, whatever the gap
        f = math.exp(-el / tau)
        for j in range(4):
            fs[F_N + j] *= f  # counts and depth sums
        fs[F_PA] *= f
        fs[F_E] = fs[F_E] * f - tau * math.expm1(-el / tau)
        ts[T_REF] = now
    ref = fs[F_MID]  # the last mid strictly before this batch (the book after a sweep has moved)
    cap = trades_t.shape[0]
    for i in range(trades_start, trades_end):
        row = i % cap
        px = trades_r[row, TR_PX]
        side = trades_r[row, TR_SIDE]
        if not (px > 0.0 and (side > 0.0 or side < 0.0) and ref > 0.0):
            continue  # NaN or malformed print, or no mid before it
        s = 1.0 if side > 0.0 else -1.0
        d = s * (px - ref) / ref * 1e4  # a buyer lifts asks above the mid, a seller hits bids below
        if not (d <= max_depth):
            continue  # a print this far from the mid is bad data, not liquidity
        if d < 0.0:
            d = 0.0  # through the mid (a stale mid): the order arrived, at depth 0
        t = trades_t[row]
        k = 0 if s < 0.0 else 1
        e = (now - t) * 1e-9
        w = math.exp(-e / tau) if e > 0.0 else 1.0  # decayed from its own time to now
        same = (not per_print) and t == ts[T_G] and s == fs[F_G_SIDE] and (px - fs[F_G_PX]) * s >= 0.0
        ts[T_G] = t
        fs[F_G_SIDE] = s
        fs[F_G_PX] = px
        if same:  # the order walks deeper: it reached this print's depth
            if d > fs[F_G_DEPTH]:
                fs[F_D + k] += w * (d - fs[F_G_DEPTH])
                fs[F_G_DEPTH] = d
            continue
        fs[F_N + k] += w
        fs[F_D + k] += w * d
        fs[F_G_DEPTH] = d
    m = mid[0]
    if m > 0.0:
        fs[F_MID] = m
    n_bid[0] = fs[F_N]
    n_ask[0] = fs[F_N + 1]
    mask = EMIT.N_BID | EMIT.N_ASK
    n0 = params[P_N_PRIOR]
    b0 = n0 / params[P_K_PRIOR]
    for k in range(2):  # Gamma(n0, n0/k_prior) prior on k: posterior mean (n0 + N) / (n0/k_prior + D)
        num = n0 + fs[F_N + k]
        den = b0 + fs[F_D + k]
        if num > 0.0 and den > 0.0:
            if k == 0:
                k_bid[0] = num / den
            else:
                k_ask[0] = num / den
            mask |= EMIT.K_BID if k == 0 else EMIT.K_ASK
    ex = fs[F_E]
    if ex > 0.0:
        a_bid[0] = (fs[F_N] + fs[F_PA]) / ex
        a_ask[0] = (fs[F_N + 1] + fs[F_PA]) / ex
        mask |= EMIT.A_BID | EMIT.A_ASK
    return mask


class Kappa(Node):
    """Per-side fill intensity lambda(delta) = A exp(-k delta), delta in bps from mid: A, k_bid, k_ask.

    Seed 000, Component 3 (GLFT depths (1/gamma) ln(1 + gamma/k)) and Component 5 (no fixed
    kappa_prior: estimate online, priors at cold start). This is the GLFT depth *decay* k (per
    bps); the flow model's arrival rates kappa_buy / kappa_sell are `estimators.flow`
    (CONVENTIONS.md keeps the two apart).

    Model, per side: aggressive orders arrive at rate A and an order reaches depth delta or
    beyond with probability exp(-k delta), so an order resting delta bps from the mid is hit at
    rate A exp(-k delta), and the depth an order reaches is Exp(k). Each aggressive order on the
    tape gives one depth: a seller hitting the bid (side -1) is a bid-side order at
    delta = (mid - px)/mid * 1e4, a buyer lifting the ask (+1) an ask-side one at
    (px - mid)/mid * 1e4, with mid the last `mid` seen strictly before the print's batch (the
    book after a sweep has already moved) and px the order's deepest print.

    Estimator: an exponentially weighted Gamma-exponential posterior per side. With weights
    w_i = exp(-(t - t_i)/tau), N = sum w_i (orders), D = sum w_i delta_i (bps):

        k = (n_prior + N) / (n_prior / k_prior + D)    (posterior mean, prior Gamma(n_prior, n_prior/k_prior))
        A = (N + a_prior prior_s exp(-(t - t0)/tau)) / E,
        E = prior_s exp(-(t - t0)/tau) + tau (1 - exp(-(t - t0)/tau))   (EW exposure, s)

    With n_prior = 0 and tau = inf, k is the MLE n / sum delta_i. The k prior does not decay:
    when data are sparse (few orders in the last ~tau, or a long gap) k falls back to k_prior,
    and with N >> n_prior the data dominate (steady-state bias n_prior / (N + n_prior) of the
    difference). A is the Poisson rate of orders per side, its prior forgotten like data (the
    cold start of Component 5): a quiet spell does lower A, which is what the tape says.

    Choices:

    * One aggressive order is one depth: a run of prints of one timestamp and side at the same
      or worsening prices (as `features.hawkes` counts orders) counts once, at its deepest print;
      the intermediate levels are not separate orders. `per_print: true` counts every print.
    * A print on the wrong side of the mid (a stale mid) enters at depth 0; a print more than
      max_depth_bps away is bad data and skipped. Prints before the first mid are dropped.
    * Depths are from the mid, as the model is written: k includes the half-spread (1/k is the
      mean depth reached, touch included), and at a one-tick spread nearly all orders stop at the
      touch. Our own fills are not used: they are censored at our quotes' depths.
    * Times: prints enter at their own event time, decayed to `now` (values do not depend on when
      the node runs); a print stamped after `now` enters undecayed. t0 is the first run.
    * Defaults (to be calibrated): tau 300 s; k_prior 1.0/bps (mean depth 1 bps; the synthetic
      HYPE tape gives k ~1.4/bps, 5-95 % 1.0-1.5, on `mixed` and `calm`); n_prior 10 orders;
      a_prior 0.7 orders/s a side (synthetic HYPE: ~0.7), prior_s 30 s.

    Edge cases: NaN, non-positive or zero-side prints are skipped; zero or negative dt decays
    nothing; n_bid / n_ask (the EW order counts, priors excluded) say how much data backs k.
    Event-triggered; it runs on every mid tick too, refreshing the decay."""

    type_name = "estimators.kappa"

    class Params(NodeParams):
        tau_s: float = Field(300.0, gt=0, description="time constant of the EW sums, s")
        k_prior: float = Field(1.0, gt=0, description="prior depth decay k, per bps (mean depth 1/k)")
        n_prior: float = Field(10.0, ge=0, description="weight of the k prior, in orders (does not decay)")
        a_prior: float = Field(0.7, ge=0, description="cold-start order rate per side A, orders/s")
        prior_s: float = Field(30.0, ge=0, description="weight of the A prior: seconds of pseudo-exposure")
        per_print: bool = Field(False, description="count every print (default: aggressive orders)")
        max_depth_bps: float = Field(500.0, gt=0, description="prints further from the mid are skipped")

    inputs = {
        "trades": In("trades", doc="the tape (source.trades)"),
        "mid": In("f64", doc="source.mid: depths are measured from the last mid before each batch"),
    }
    outputs = {
        "a_bid": Out("f64", doc="A of the bid side: sellers' order rate at depth 0, orders/s"),
        "a_ask": Out("f64", doc="A of the ask side: buyers' order rate at depth 0, orders/s"),
        "k_bid": Out("f64", doc="depth decay of the bid side, per bps"),
        "k_ask": Out("f64", doc="depth decay of the ask side, per bps"),
        "n_bid": Out("f64", doc="EW count of bid-side orders behind k_bid (no prior)"),
        "n_ask": Out("f64", doc="EW count of ask-side orders behind k_ask (no prior)"),
    }
    trigger = "event"
    kernel = kappa_kernel

    def init_state(self):
        fs = np.zeros(10)
        fs[F_MID] = np.nan
        fs[F_G_SIDE] = np.nan
        ts = np.zeros(3, np.int64)
        ts[T_G] = np.iinfo(np.int64).min
        return fs, ts  # see F_* / T_* above


EMIT = Kappa.EMIT  # the kernel's named emit bits (compile-time constants)
