"""quoting.softmax_ladder: seed 004 Stage 6, a side's size spread over the levels by a softmax of utility."""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from pydantic import Field, model_validator

from flowmm.core.node import In, Node, NodeParams, Out
from flowmm.core.ports import LADDER_LEVELS
from flowmm.execution.hyperliquid_rules import (
    PERP_MAX_DECIMALS,
    ROUND_DOWN,
    ROUND_UP,
    SPOT_MAX_DECIMALS,
    min_size_for_value,
    px_below,
    round_px,
)

# packed params (Params field order; bools as 0/1, None as NaN)
(
    P_LEVELS, P_SPACING, P_RATIO, P_TEMP, P_FEE, P_AS_SCALE, P_AS_SLOPE, P_K, P_GAMMA, P_SIGMA, P_TAU,
    P_HORIZON, P_TOTAL, P_REDUCE_ANYWAY, P_SZ_DEC, P_PERP, P_MIN_VALUE,
) = range(17)  # fmt: skip
# scratch rows of the float state (2 sides x LADDER_LEVELS each): expected utility, weight,
# minimum size, kept (1/0), lots allocated
R_EU, R_W, R_MIN, R_KEPT, R_LOTS = range(5)
N_ROWS = 5
# counters (float state): side-cycles on which a positive side total could not be quoted
C_DROP_BID, C_DROP_ASK = range(2)
# bid_dropped / ask_dropped: why a side with a positive total quotes nothing
BELOW_MIN, NO_EDGE = 1.0, 2.0


@njit(cache=True)
def level_offset(i, spacing, ratio):
    """Depth of level i beyond the touch, bps: the geometric grid of quoting.ladder / quoting.epnl."""
    off = 0.0
    gap = spacing
    for _ in range(i):
        off += gap
        gap *= ratio
    return off


@njit(cache=True)
def level_utility(d, side, q, total, i, n, fee, pi, as_scale, as_slope, c_risk, f_dir, shift):
    """Per-fill utility of level i (bps per contract), seed 004 Stage 6 with the corrections:

    edge - pi AS_profile(d) - f_dir c_risk side (q + side (i + 1/2) total / n)."""
    edge = d - side * shift - fee  # from the drift-adjusted fair value (shift: bearish > 0)
    adverse = pi * (as_scale + as_slope * d)
    inv_mid = q + side * (i + 0.5) * total / n  # inventory halfway through level i's fill
    return edge - adverse - f_dir * c_risk * side * inv_mid


@njit(cache=True)
def _min_sizes(sc, r0, m, depth, side, n, params, szd, perp):
    """Per level: the smallest lot-grid size worth min_order_value at a conservative price (one
    tick beyond the level's rounded price, so quoting.ladder's rounding and one-tick push cannot
    take it under the minimum); NaN where no positive price exists."""
    for i in range(n):
        d = depth + level_offset(i, params[P_SPACING], params[P_RATIO])
        if side > 0.0:
            px = px_below(round_px(m * (1.0 - d * 1e-4), szd, perp, ROUND_DOWN), szd, perp)
        else:
            px = round_px(m * (1.0 + d * 1e-4), szd, perp, ROUND_UP)
        sc[r0 + R_MIN, i] = min_size_for_value(px, szd, params[P_MIN_VALUE])


@njit(cache=True)
def _allocate(sc, r0, n, total, temp, szd):
    """Spread `total` over the kept levels by softmax weight, in whole lots; drop the weakest kept
    level while any kept level is under its minimum. Returns the number of levels kept (0 =
    the side cannot be quoted)."""
    scale = 10.0**szd
    lots_total = math.floor(total * scale + 1e-9)
    top = -math.inf
    for i in range(n):
        if sc[r0 + R_KEPT, i] > 0.0:
            top = max(top, sc[r0 + R_EU, i])
    for i in range(n):
        kept = sc[r0 + R_KEPT, i] > 0.0
        sc[r0 + R_W, i] = math.exp((sc[r0 + R_EU, i] - top) / temp) if kept else 0.0
    while True:
        wsum = 0.0
        best = -1
        weakest = -1
        n_kept = 0
        for i in range(n):
            if sc[r0 + R_KEPT, i] > 0.0:
                n_kept += 1
                wsum += sc[r0 + R_W, i]
                if best < 0 or sc[r0 + R_W, i] > sc[r0 + R_W, best]:
                    best = i
                if weakest < 0 or sc[r0 + R_W, i] <= sc[r0 + R_W, weakest]:
                    weakest = i
        if n_kept == 0:
            return 0
        used = 0.0
        for i in range(n):
            lots = math.floor(lots_total * sc[r0 + R_W, i] / wsum) if sc[r0 + R_KEPT, i] > 0.0 else 0.0
            sc[r0 + R_LOTS, i] = lots
            used += lots
        sc[r0 + R_LOTS, best] += lots_total - used  # the rounding remainder to the best level
        ok = True
        for i in range(n):
            if sc[r0 + R_KEPT, i] > 0.0:
                mn = sc[r0 + R_MIN, i]
                if not (sc[r0 + R_LOTS, i] / scale >= mn - 1e-12):  # NaN minimum: not quotable
                    ok = False
        if ok:
            return n_kept
        sc[r0 + R_KEPT, weakest] = 0.0


@njit(cache=True)
def _side(sc, r0, side, m, depth, total, q, params, pi, as_scale, c_risk, f_dir, shift, k, sizes, util):
    """One side: utilities, eligibility, minimum sizes and the allocation into `sizes`.
    Returns (quoted total, why nothing was quoted: 0, BELOW_MIN or NO_EDGE)."""
    n = int(params[P_LEVELS])
    szd = int(params[P_SZ_DEC])
    perp = params[P_PERP] > 0.5
    for i in range(sizes.shape[0]):
        sizes[i] = 0.0
        util[i] = math.nan
    if not (abs(depth) < math.inf) or not (total > 0.0):
        return 0.0, 0.0  # no depth for this side, or nothing to quote
    reducing = side * q < 0.0
    any_positive = False
    for i in range(n):
        d = depth + level_offset(i, params[P_SPACING], params[P_RATIO])
        u = level_utility(
            d, side, q, total, i, n, params[P_FEE], pi, as_scale, params[P_AS_SLOPE], c_risk, f_dir, shift
        )
        util[i] = u
        sc[r0 + R_EU, i] = math.exp(-k * max(d, 0.0)) * u  # x the fill intensity's depth profile
        sc[r0 + R_KEPT, i] = 1.0 if u > 0.0 else 0.0
        any_positive = any_positive or u > 0.0
    if not any_positive:
        if not (reducing and params[P_REDUCE_ANYWAY] > 0.5):
            return 0.0, NO_EDGE  # no level earns its risk: the side's optimum is no quote
        # a reducing side that loses at every level still works its position down (Stage 5 said
        # so), where it is likeliest to fill: weights in proportion to the fill profile, T-free
        for i in range(n):
            d = depth + level_offset(i, params[P_SPACING], params[P_RATIO])
            sc[r0 + R_KEPT, i] = 1.0
            sc[r0 + R_EU, i] = -k * max(d, 0.0)  # log of exp(-k d): softmax at T = 1 is P / sum P
        temp = 1.0
    else:
        temp = params[P_TEMP]
    _min_sizes(sc, r0, m, depth, side, n, params, szd, perp)
    if _allocate(sc, r0, n, total, temp, szd) == 0:
        return 0.0, BELOW_MIN  # the total is below the minimum at every level: dropped, counted
    quoted = 0.0
    for i in range(n):
        if sc[r0 + R_KEPT, i] > 0.0:
            sizes[i] = sc[r0 + R_LOTS, i] / 10.0**szd
            quoted += sizes[i]
    return quoted, 0.0


@njit(cache=True)
def _value(x, fallback):
    return x if (x == x and abs(x) < math.inf) else fallback


@njit(cache=True)
def softmax_ladder_kernel(
    now, dt, params, sc, counts,
    mid, mid_ticked, bid_depth, bid_depth_ticked, ask_depth, ask_depth_ticked,
    bid_total, bid_total_ticked, ask_total, ask_total_ticked, q, q_ticked, gamma, gamma_ticked,
    sigma, sigma_ticked, toxicity, toxicity_ticked, mu, mu_ticked, as_scale, as_scale_ticked,
    k_bid, k_bid_ticked, k_ask, k_ask_ticked, shift, shift_ticked,
    bid_sizes, ask_sizes, bid_utility, ask_utility, bid_quoted, ask_quoted, bid_dropped, ask_dropped,
    n_dropped,
):  # fmt: skip
    m = mid[0]
    if not (m > 0.0) or math.isinf(m):
        return EMIT.NONE  # no mid: nothing to allocate (the ladder withholds)
    qv = _value(q[0], 0.0)
    sig = max(_value(sigma[0], params[P_SIGMA]), 1e-12)
    g = max(_value(gamma[0], params[P_GAMMA]), 0.0)
    pi = min(max(_value(toxicity[0], 0.0), 0.0), 1.0)
    a_s = max(_value(as_scale[0], params[P_AS_SCALE]), 0.0)
    c_risk = g * sig * sig * params[P_TAU]  # bps per contract per contract
    f_dir = 1.0 + abs(_value(mu[0], 0.0)) * math.sqrt(params[P_HORIZON]) / sig
    sh = _value(shift[0], 0.0)
    for s in range(2):
        side = 1.0 if s == 0 else -1.0
        depth = bid_depth[0] if s == 0 else ask_depth[0]
        tot = _value(bid_total[0] if s == 0 else ask_total[0], params[P_TOTAL])
        kk = _value(k_bid[0] if s == 0 else k_ask[0], params[P_K])
        sizes = bid_sizes if s == 0 else ask_sizes
        util = bid_utility if s == 0 else ask_utility
        quoted, dropped = _side(
            sc, s * N_ROWS, side, m, depth, tot, qv, params, pi, a_s, c_risk, f_dir, sh, max(kk, 0.0),
            sizes, util,
        )  # fmt: skip
        counts[s] += 1.0 if dropped == BELOW_MIN else 0.0
        if s == 0:
            bid_quoted[0] = quoted
            bid_dropped[0] = dropped
        else:
            ask_quoted[0] = quoted
            ask_dropped[0] = dropped
    n_dropped[0] = counts[C_DROP_BID] + counts[C_DROP_ASK]
    return EMIT.ALL


class SoftmaxLadder(Node):
    """Seed 004 Stage 6: each side's total size spread over the ladder levels by a softmax of utility.

    Seed 004, Stage 6 ("Sizing -> Ladder Construction (Tick-Grid Allocation)"): "the ladder
    allocator distributes size across price levels using utility-weighted softmax". Stage 5
    (quoting.sizing, mode posterior) sets each side's total; this node decides where it rests.
    For side s (+1 bid, -1 ask) and level i = 0..levels-1 at depth d_i = touch_s + offset_i
    from the mid (bps; offset_i the geometric grid of quoting.ladder, so wire both with the same
    levels / level_spacing_bps / level_ratio), with S_s the side's total (contracts):

        U_i   = edge_i - pi AS_profile(d_i) - f_dir c (side (q + side (i + 1/2) S_s / n))   bps/contract
        edge_i = d_i - side shift - fee_bps                 (shift: directional shift, bearish > 0)
        AS_profile(d) = as_scale + as_depth_slope d         (pi: toxicity posterior, Stage 1C)
        c     = gamma sigma^2 tau                           (bps per contract per contract)
        f_dir = 1 + |mu_posterior| sqrt(horizon) / sigma    (directional inflation, dimensionless)
        EU_i  = exp(-k_s d_i) U_i                           (k_s: fill-intensity decay per bps)
        w_i   = exp(EU_i / T) / sum_j exp(EU_j / T)  over the levels with U_j > 0
        size_i = S_s w_i, in whole lots

    Units: d, edge, AS, U in bps; q, S in contracts; gamma 1/(bps contract), sigma bps/sqrt(s),
    tau and horizon s, mu bps/s, k per bps, T (temperature_bps) in bps per contract.

    Readings and corrections of the seed (each a choice a careful quant makes; say so here):

    * Position cost / benefit. The seed writes cost = gamma |q + dq| sigma^2/kappa for the buying
      side and benefit = gamma |q - dq| sigma^2/kappa for the selling side. Read literally, flat
      (q = 0) an ask earns a "benefit" for opening a short, and a long's benefit grows the less
      the ask sells. Here one term for both sides, the change of the quadratic inventory risk
      R(q) = 1/2 c q^2 per contract of the fill: side (q + side x) c, with x the inventory the
      side's levels up to and including half of level i would add (the even split of S_s, as
      the allocation is what is being decided). Long, a bid pays c (q + ...): the seed's cost;
      an ask pays -c (q - ...): a benefit while it reduces, shrinking with depth (deeper asks
      fill after the shallower ones have sold), turning into a cost once it would flip the
      position. Flat, both sides pay the same. kappa is replaced by the risk horizon tau as in
      quoting.spread_decomposition (sigma^2/kappa with kappa per bps is not in bps).
    * Directional inflation (1 + |mu| horizon / sigma): mu horizon is bps but sigma is bps per
      sqrt(s), so the seed's ratio has units of sqrt(s); the dimensionless drift-to-noise ratio
      over the horizon, |mu| horizon / (sigma sqrt(horizon)) = |mu| sqrt(horizon)/sigma, is used.
      It scales the position term of both sides (|mu|, as the seed writes it): in a selloff a
      long's bids cost more and its asks are worth more (the seed's two cases); the drift is
      never booked as a profit of with-trend accumulation (a short's further asks cost more too).
    * Edge from the fair value: the seed measures d from the reservation price, which already
      carries the inventory skew that the position term charges; here edges are from the mid
      moved by the directional shift only (input `shift`, e.g. quoting.spread_decomposition's
      directional_shift; unwired = the mid), so inventory is counted once.
    * AS_profile(d): informed flow that fills a level at depth d has moved the mid through it, so
      its adverse move from the quote-time mid is as_scale + as_depth_slope d (default slope 1;
      as_scale from the `as_scale` input, e.g. a realised markout average, else as_scale_bps).
    * Fill probability: the seed's utility is per fill. With edge growing one for one in depth a
      softmax of per-fill utility puts the most size deepest, the opposite of the seed's own
      worked ladder (1.50 at the touch down to 0.33). The softmax is over the expected utility
      per contract quoted, exp(-k d) U (the GLFT intensity A exp(-k d), A absorbed in T): the
      maximiser of sum_i s_i EU_i + T S entropy(s / S), i.e. the seed's softmax with a reason.
      k = 0 recovers the literal per-fill utility. T -> infinity is an even split, T -> 0 all
      on the best level.
    * Levels with U <= 0 get nothing (a level that loses per fill is not quoted, as in the RFC's
      E[PnL] gate). If no level of a side has U > 0 the side is not quoted (`*_dropped` = 2) -
      unless it reduces the position (side q < 0) and `reduce_anyway` (default): Stage 5 decided
      it must work the position down (reduce-only included), so its total is spread over all
      levels in proportion to the fill profile exp(-k d_i), touch-heavy as in the seed's worked
      reduce-only ladder. (A softmax of exp(-k d) U with every U < 0 would favour the deep levels
      precisely because they rarely fill - the wrong answer for a side that must reduce.)

    Exchange minimum (Hyperliquid: $10 notional, MinTradeNtl; sizes in lots of 10^-szDecimals):
    sizes are whole lots (the rounding remainder goes to the best level, so a side quotes its
    total to the lot), and every quoted level is at least the smallest lot-grid size worth
    min_order_value at one tick beyond its rounded price (so quoting.ladder, which drops a level
    under $10 after its own rounding, keeps it). While a kept level is under its minimum the
    weakest kept level is dropped and the total re-spread over the rest: a side whose total
    reaches the minimum is concentrated onto as few levels as that takes, down to one, and is
    never dropped for being split too thin (the failure of bayes_e2e on trend_down, which quoted
    nothing for 638 of 1,200 s because 4 equal levels each fell under $10). A side whose total
    is below the minimum at every level cannot be quoted: its sizes are 0, `bid_dropped` /
    `ask_dropped` is 1 on that cycle and `n_dropped` counts such side-cycles (reduce-only sides
    included; a residual position worth less than $10 cannot be worked by a maker order). It is
    not raised to the minimum: that would quote more than Stage 5 sized, and could flip a
    reduce-only position.

    Inputs (all optional but mid; NaN / inf takes the fallback): mid; bid_depth / ask_depth
    (touch depth from the mid, bps, e.g. quoting.spread_decomposition; NaN = that side not
    quoted); bid_total / ask_total (contracts, quoting.sizing; else total_size); q (0); gamma
    (gamma_fallback); sigma (sigma_fallback); toxicity (0); mu (estimators.direction_logodds
    mu_posterior, bps/s; 0); as_scale (as_scale_bps); k_bid / k_ask (k_fallback); shift (0).

    Outputs: bid_sizes / ask_sizes (vec of `levels`, contracts, for quoting.ladder), bid_utility
    / ask_utility (U_i, bps per contract; NaN where not computed), bid_quoted / ask_quoted (the
    side totals allocated), bid_dropped / ask_dropped (why a positive total quotes nothing this
    cycle: 1 under the exchange minimum, 2 no level with U > 0; else 0), n_dropped (side-cycles
    dropped for the minimum so far). All emitted on every run with a valid
    mid. Cycle-triggered."""

    type_name = "quoting.softmax_ladder"
    tier = "hot"
    trigger = "cycle"

    class Params(NodeParams):
        levels: int = Field(4, ge=1, le=LADDER_LEVELS, description="levels per side (vec output size)")
        level_spacing_bps: float = Field(
            2.0, ge=0, description="gap touch -> level 1, bps (match quoting.ladder)"
        )
        level_ratio: float = Field(
            1.0, gt=0, le=10, description="each next gap x this (match quoting.ladder)"
        )
        temperature_bps: float = Field(
            1.0, gt=0, description="softmax temperature T, bps per contract of expected utility"
        )
        fee_bps: float = Field(1.5, description="maker fee per fill, bps (seed 004: 1.5)")
        as_scale_bps: float = Field(10.0, ge=0, description="AS_profile at depth 0 when unwired, bps")
        as_depth_slope: float = Field(1.0, ge=0, description="AS_profile's growth per bps of depth")
        k_fallback: float = Field(0.35, ge=0, description="fill-intensity decay k per bps when unwired")
        gamma_fallback: float = Field(0.002, ge=0, description="gamma when unwired, 1/(bps contract)")
        sigma_fallback: float = Field(1.0, gt=0, description="sigma when unwired, bps/sqrt(s)")
        tau_s: float = Field(60.0, ge=0, description="risk horizon tau of c = gamma sigma^2 tau, s")
        horizon_s: float = Field(30.0, ge=0, description="drift horizon of f_dir, s (seed 004: 30)")
        total_size: float = Field(1.0, ge=0, description="side total when bid_total / ask_total unwired")
        reduce_anyway: bool = Field(
            True, description="a reducing side quotes even when no level has U > 0 (reduce-only)"
        )
        sz_decimals: int = Field(2, ge=0, le=SPOT_MAX_DECIMALS, description="szDecimals: HYPE 2, BTC 5")
        is_perp: bool = Field(True, description="perp (6 max price decimals) or spot (8)")
        min_order_value: float = Field(10.0, ge=0, description="Hyperliquid's minimum order value, USDC")

        @model_validator(mode="after")
        def _sz_decimals_fit(self):
            top = PERP_MAX_DECIMALS if self.is_perp else SPOT_MAX_DECIMALS
            if self.sz_decimals > top:
                raise ValueError(f"sz_decimals {self.sz_decimals} exceeds the maximum {top}")
            return self

    inputs = {
        "mid": In("f64", doc="the mid (source.mid)"),
        "bid_depth": In("f64", optional=True, doc="bid touch depth below the mid, bps"),
        "ask_depth": In("f64", optional=True, doc="ask touch depth above the mid, bps"),
        "bid_total": In("f64", optional=True, doc="bid side total, contracts (quoting.sizing bid_total)"),
        "ask_total": In("f64", optional=True, doc="ask side total, contracts (quoting.sizing ask_total)"),
        "q": In("f64", optional=True, doc="signed position, contracts (exec.position)"),
        "gamma": In("f64", optional=True, doc="gamma(q), 1/(bps contract) (quoting.gamma_q)"),
        "sigma": In("f64", optional=True, doc="volatility, bps/sqrt(s) (estimators.vol)"),
        "toxicity": In("f64", optional=True, doc="pi, the toxicity posterior (estimators.toxicity)"),
        "mu": In("f64", optional=True, doc="mu_posterior, bps/s (estimators.direction_logodds)"),
        "as_scale": In("f64", optional=True, doc="AS magnitude at depth 0, bps"),
        "k_bid": In("f64", optional=True, doc="bid fill-intensity decay, per bps (estimators.kappa)"),
        "k_ask": In("f64", optional=True, doc="ask fill-intensity decay, per bps (estimators.kappa)"),
        "shift": In("f64", optional=True, doc="directional shift, bps, bearish > 0 (spread_decomposition)"),
    }
    outputs = {
        "bid_sizes": Out("vec", size="levels", doc="bid size per level, contracts"),
        "ask_sizes": Out("vec", size="levels", doc="ask size per level, contracts"),
        "bid_utility": Out("vec", size="levels", doc="U_i of the bid levels, bps per contract"),
        "ask_utility": Out("vec", size="levels", doc="U_i of the ask levels, bps per contract"),
        "bid_quoted": Out("f64", doc="bid total allocated, contracts"),
        "ask_quoted": Out("f64", doc="ask total allocated, contracts"),
        "bid_dropped": Out("f64", doc="positive bid total not quoted: 1 under $10, 2 no edge, else 0"),
        "ask_dropped": Out("f64", doc="positive ask total not quoted: 1 under $10, 2 no edge, else 0"),
        "n_dropped": Out("f64", doc="side-cycles dropped for the exchange minimum so far"),
    }
    kernel = softmax_ladder_kernel

    def init_state(self):
        return np.zeros((2 * N_ROWS, LADDER_LEVELS)), np.zeros(2)  # scratch rows, drop counters


EMIT = SoftmaxLadder.EMIT  # the kernel's named emit bits (compile-time constants)
