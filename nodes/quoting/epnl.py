"""quoting.epnl: per-level expected PnL of a fill, P(fill) (edge - E[adverse | fill] - E[carry | fill])."""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from pydantic import Field

from flowmm.core.node import In, Node, NodeParams, Out
from flowmm.core.ports import LADDER_LEVELS

# packed params (Params field order)
(
    P_LEVELS, P_SPACING, P_RATIO, P_HORIZON, P_FEE, P_INF_MOVE, P_HOLD_MULT, P_VIA_TOUCH,
    P_TAU_MIN, P_TAU_MAX, P_MU0, P_SIGMA0, P_KAPPA0, P_INF0, P_A0, P_K0,
) = range(16)  # fmt: skip


@njit(cache=True)
def _or(x, fallback):
    """The input value when it is a finite number, else the param fallback."""
    return x if (x == x and abs(x) < np.inf) else fallback


@njit(cache=True)
def level_offset(i, spacing, ratio):
    """Distance of level i beyond the touch, bps: first gap `spacing`, each next gap x `ratio`."""
    if i <= 0:
        return 0.0
    if abs(ratio - 1.0) < 1e-12:
        return spacing * i
    return spacing * (ratio**i - 1.0) / (ratio - 1.0)


@njit(cache=True)
def tau_hold(kappa_unwind, k_opp, depth_opp, hold_mult, via_touch, tau_min, tau_max):
    """Expected time to unwind one unit, s: hold_mult / (rate at which the unwind quote is hit)."""
    rate = kappa_unwind
    if via_touch:  # only the arrivals that reach our opposite touch quote unwind us
        d = depth_opp if depth_opp > 0.0 else 0.0  # NaN or through the mid: reached at once
        rate = rate * math.exp(-k_opp * d)
    if not (rate > 0.0):
        return tau_max
    t = hold_mult / rate
    return min(max(t, tau_min), tau_max)


@njit(cache=True)
def epnl_kernel(
    now, dt, params,
    bid_depth, bid_depth_ticked, ask_depth, ask_depth_ticked,
    center_bps, center_bps_ticked,
    bid_depths, bid_depths_ticked, ask_depths, ask_depths_ticked,
    mid, mid_ticked, mu_hat, mu_hat_ticked, sigma, sigma_ticked,
    kappa_buy, kappa_buy_ticked, kappa_sell, kappa_sell_ticked,
    informed_fraction, informed_fraction_ticked, as_factor, as_factor_ticked,
    a_bid, a_bid_ticked, a_ask, a_ask_ticked, k_bid, k_bid_ticked, k_ask, k_ask_ticked,
    f_hat_per_s, f_hat_per_s_ticked,
    bid_epnl, ask_epnl, bid_epnl_quote, ask_epnl_quote, bid_pfill, ask_pfill, bid_edge, ask_edge,
    tau_hold_bid, tau_hold_ask, as_ratio_bid, as_ratio_ask, adverse_bid, adverse_ask,
    carry_bid, carry_ask,
):  # fmt: skip
    d_b0 = bid_depth[0]
    d_a0 = ask_depth[0]
    if not (d_b0 == d_b0 or d_a0 == d_a0):
        return EMIT.NONE  # no touch depth on either side: nothing to price
    c = _or(center_bps[0], 0.0)
    mu = _or(mu_hat[0], params[P_MU0])
    sig = _or(sigma[0], params[P_SIGMA0])
    kb = _or(kappa_buy[0], params[P_KAPPA0])
    ks = _or(kappa_sell[0], params[P_KAPPA0])
    inf = _or(informed_fraction[0], params[P_INF0])
    asf = _or(as_factor[0], 1.0)
    ab = _or(a_bid[0], params[P_A0])
    aa = _or(a_ask[0], params[P_A0])
    kkb = _or(k_bid[0], params[P_K0])
    kka = _or(k_ask[0], params[P_K0])
    f = _or(f_hat_per_s[0], 0.0)
    m = mid[0]
    horizon = params[P_HORIZON]
    fee = params[P_FEE]
    via = params[P_VIA_TOUCH] > 0.5
    # touch depths from the mid (NaN stays NaN): the unwinding quote's distance for tau_hold
    e_b0 = d_b0 - c
    e_a0 = d_a0 + c
    # a bid fill is unwound by buyers lifting our ask, an ask fill by sellers hitting our bid
    th_b = tau_hold(kb, kka, e_a0, params[P_HOLD_MULT], via, params[P_TAU_MIN], params[P_TAU_MAX])
    th_a = tau_hold(ks, kkb, e_b0, params[P_HOLD_MULT], via, params[P_TAU_MIN], params[P_TAU_MAX])
    # sigma sqrt(tau) AS_ratio = informed_fraction E[informed move] as_factor: no division by sigma
    inf_move = inf * params[P_INF_MOVE] * asf
    adv_b = -mu * th_b + inf_move
    adv_a = mu * th_a + inf_move
    car_b = f * 1e4 * th_b  # side +1: long pays positive funding
    car_a = -f * 1e4 * th_a  # side -1: short receives it
    tau_hold_bid[0] = th_b
    tau_hold_ask[0] = th_a
    s_b = sig * math.sqrt(th_b)
    s_a = sig * math.sqrt(th_a)
    as_ratio_bid[0] = inf_move / s_b if s_b > 0.0 else np.nan
    as_ratio_ask[0] = inf_move / s_a if s_a > 0.0 else np.nan
    adverse_bid[0] = adv_b
    adverse_ask[0] = adv_a
    carry_bid[0] = car_b
    carry_ask[0] = car_a
    n = int(params[P_LEVELS])
    nb_vec = bid_depths.shape[0]
    na_vec = ask_depths.shape[0]
    use_vb = bid_depths_ticked or bid_depths[0] == bid_depths[0]
    use_va = ask_depths_ticked or ask_depths[0] == ask_depths[0]
    for i in range(bid_epnl.shape[0]):
        for side in range(2):
            if side == 0:
                if use_vb:
                    d = bid_depths[i] if i < nb_vec else np.nan
                else:
                    d = d_b0 + level_offset(i, params[P_SPACING], params[P_RATIO])
                e = d - c
                amp, kk, adv, car = ab, kkb, adv_b, car_b
            else:
                if use_va:
                    d = ask_depths[i] if i < na_vec else np.nan
                else:
                    d = d_a0 + level_offset(i, params[P_SPACING], params[P_RATIO])
                e = d + c
                amp, kk, adv, car = aa, kka, adv_a, car_a
            if i >= n or not (e == e):
                p = np.nan
                v = np.nan
                e = np.nan
            else:
                lam = amp * math.exp(-kk * (e if e > 0.0 else 0.0))
                p = -math.expm1(-lam * horizon) if lam > 0.0 else 0.0
                v = p * (e - fee - adv - car)
            vq = v * 1e-4 * m if m > 0.0 else np.nan
            if side == 0:
                bid_epnl[i] = v
                bid_epnl_quote[i] = vq
                bid_pfill[i] = p
                bid_edge[i] = e
            else:
                ask_epnl[i] = v
                ask_epnl_quote[i] = vq
                ask_pfill[i] = p
                ask_edge[i] = e
    return EMIT.ALL


class Epnl(Node):
    """Per-level expected PnL of a fill (bps per contract): the RFC's replacement of the quote gate.

    Seed 000, Component 3 "Per-Level Expected PnL", with Component 6's carry and Component 7 D2's
    kurtosis adjustment, as corrected by CONVENTIONS.md. For each side and level i:

        E[PnL_i] = P(fill_i) * (edge_i - fee_bps - E[adverse | fill] - E[carry | fill])     bps
        edge_i   = distance of the quote from the mid, bps (bid: (mid - p)/mid 1e4; ask: (p - mid)/mid 1e4)
        P(fill_i)= 1 - exp(-A_side exp(-k_side max(edge_i, 0)) T)        T = fill_horizon_s
        E[adv]   = -mu_hat tau_hold + sigma sqrt(tau_hold) AS_ratio     (bid; ask: +mu_hat tau_hold + ...)
        AS_ratio = informed_fraction E[informed move] as_factor / (sigma sqrt(tau_hold))
        E[carry] = side f_hat 1e4 tau_hold                              (side +1 bid, -1 ask; f_hat per s)
        tau_hold = clip(hold_mult exp(k_opp max(edge_opp_0, 0)) / kappa_unwind, tau_min, tau_max)

    with kappa_unwind the arrival rate of the orders that unwind the fill (estimators.flow: a bid
    fill is unwound by buyers, kappa_buy; an ask fill by sellers, kappa_sell) and
    exp(-k_opp edge_opp_0) the probability that such an order reaches our opposite touch quote
    (estimators.kappa decay of that side; `unwind_via_touch: false` drops this factor). E[PnL]
    is per contract of fill, over the next fill_horizon_s; the quote-currency outputs are
    E[PnL] 1e-4 mid (USDC per contract).

    Level depths. Depths are measured from a center that is `center_bps` from the mid (e.g.
    quoting.reservation r_bps: the RFC prices p_b(i) = r - delta_b(i), p_a(i) = r + delta_a(i);
    unwired = 0, depths from the mid), so edge_bid = d_i - center_bps, edge_ask = d_i +
    center_bps. By default d_i = touch + offset_i with the touch from `bid_depth` / `ask_depth`
    (e.g. quoting.glft) and offset_i = spacing (ratio^i - 1)/(ratio - 1) (first gap
    level_spacing_bps, each next gap x level_ratio; ratio 1 = linear), the Component 8 loop's
    `reservation - base_depth - level_spacing(level)`: set the same levels / spacing / ratio as
    the ladder so level i here is level i there. Wiring `bid_depths` / `ask_depths` (vec, bps
    from the center, entry i = level i, NaN = no level) overrides that grid per side.

    Choices and corrections of the seed:

    * P(fill): the seed's kappa_sell exp(-kappa_sell delta/sigma) dt mixes the arrival rate with
      the depth decay (CONVENTIONS keeps them apart); here the fill intensity of a quote at depth
      delta is estimators.kappa's A exp(-k delta), and the probability of at least one hit over
      the horizon is 1 - exp(-lambda T) (the seed's lambda dt is its small-lambda T limit; the
      probability stays in [0, 1]). Quotes through the mid are treated as at depth 0.
    * The adverse move is side-signed (CONVENTIONS): a downtrend (mu_hat < 0) raises the bid's
      and lowers the ask's. sigma sqrt(tau) AS_ratio = informed_fraction E[informed move]
      as_factor, so E[PnL] does not depend on sigma (it cancels; sigma = 0 is harmless); sigma
      only enters the AS_ratio outputs (NaN when sigma sqrt(tau_hold) = 0).
      E[informed move] is `informed_move_bps` (the size of the move informed flow anticipates;
      calibrate from markouts: average AS on toxic fills).
    * The kurtosis adjustment multiplies AS_ratio by features.kurtosis as_factor (1 + kappa_tail
      max(0, kurt)); unwired = 1.
    * Carry: CONVENTIONS' side f_hat 1e4 tau_hold with f_hat signed, per second
      (features.funding f_hat_per_s, not the per-hour f_hat), no sign_penalty: positive funding
      costs a bid fill and pays an ask fill.
    * tau_hold: the seed says "time to unwind 1 unit, from kappa_buy"; the raw arrival rate of the
      whole market would make it ~1 s. Only arrivals reaching our opposite quote unwind us, hence
      the touch factor; hold_mult scales for queue position / partial fills. It is continuous in
      every input, so E[PnL] is continuous in q through the depths.
    * The fee (maker, bps; negative for a rebate) is subtracted from the edge.

    Inputs. bid_depth / ask_depth are required (a side whose touch is NaN gets NaN levels; the
    node is silent when both are NaN). Everything else is optional with a fallback: center 0,
    mu_hat mu_fallback, sigma sigma_fallback, kappa_buy / kappa_sell kappa_fallback,
    informed_fraction informed_fallback, as_factor 1, A a_fallback, k k_fallback, funding 0, and a
    NaN or infinite value of a wired input also takes its fallback. mid is only for the
    quote-currency outputs (NaN without it).

    Outputs: vecs of size `levels` (entry i = level i, 0 = touch): bid_epnl, ask_epnl (bps per
    contract), bid_epnl_quote, ask_epnl_quote (USDC per contract), bid_pfill, ask_pfill,
    bid_edge, ask_edge (bps from the mid); scalars tau_hold_bid/ask (s), as_ratio_bid/ask,
    adverse_bid/ask and carry_bid/ask (bps). All tick on every run with a touch depth.
    Cycle-triggered (it prices the quotes of a cycle)."""

    type_name = "quoting.epnl"

    class Params(NodeParams):
        levels: int = Field(6, ge=1, le=LADDER_LEVELS, description="levels per side (vec output size)")
        level_spacing_bps: float = Field(
            2.0, ge=0, description="gap between the touch and level 1, bps (match the ladder)"
        )
        level_ratio: float = Field(
            1.0, gt=0, description="each next gap = previous x ratio (1 = linear; match the ladder)"
        )
        fill_horizon_s: float = Field(
            6.0, gt=0, description="T of P(fill) = 1 - exp(-lambda T): the quote cycle, s"
        )
        fee_bps: float = Field(1.5, description="maker fee subtracted from the edge, bps (negative = rebate)")
        informed_move_bps: float = Field(
            10.0, ge=0, description="E[informed move]: the move informed flow anticipates, bps"
        )
        hold_mult: float = Field(1.0, gt=0, description="tau_hold = hold_mult / unwinding rate")
        unwind_via_touch: bool = Field(
            True, description="unwinding rate = kappa_opp exp(-k_opp touch_opp) (false: kappa_opp)"
        )
        tau_hold_min_s: float = Field(1.0, gt=0, description="lower clip of tau_hold, s")
        tau_hold_max_s: float = Field(
            3600.0, gt=0, description="upper clip of tau_hold, s (no unwinding flow)"
        )
        mu_fallback: float = Field(0.0, description="mu_hat when unwired / NaN, bps/s")
        sigma_fallback: float = Field(1.0, ge=0, description="sigma when unwired / NaN, bps/sqrt(s)")
        kappa_fallback: float = Field(0.7, ge=0, description="kappa_buy / kappa_sell when unwired, events/s")
        informed_fallback: float = Field(0.0, ge=0, le=1, description="informed_fraction when unwired")
        a_fallback: float = Field(0.7, ge=0, description="A (orders/s reaching depth 0) when unwired")
        k_fallback: float = Field(1.0, gt=0, description="depth decay k when unwired, per bps")

    inputs = {
        "bid_depth": In("f64", doc="bid touch depth from the center, bps (e.g. quoting.glft)"),
        "ask_depth": In("f64", doc="ask touch depth from the center, bps"),
        "center_bps": In("f64", optional=True, doc="center offset from mid, bps (quoting.reservation r_bps)"),
        "bid_depths": In("vec", optional=True, doc="per-level bid depths from the center, bps (overrides)"),
        "ask_depths": In("vec", optional=True, doc="per-level ask depths from the center, bps (overrides)"),
        "mid": In("f64", optional=True, doc="mid (source.mid), for the quote-currency outputs"),
        "mu_hat": In("f64", optional=True, doc="drift, bps/s (estimators.kalman_drift)"),
        "sigma": In("f64", optional=True, doc="volatility, bps/sqrt(s) (estimators.vol)"),
        "kappa_buy": In("f64", optional=True, doc="buyer arrival rate, events/s (estimators.flow)"),
        "kappa_sell": In("f64", optional=True, doc="seller arrival rate, events/s (estimators.flow)"),
        "informed_fraction": In("f64", optional=True, doc="estimators.flow informed_fraction"),
        "as_factor": In("f64", optional=True, doc="features.kurtosis as_factor"),
        "a_bid": In("f64", optional=True, doc="estimators.kappa a_bid, orders/s"),
        "a_ask": In("f64", optional=True, doc="estimators.kappa a_ask, orders/s"),
        "k_bid": In("f64", optional=True, doc="estimators.kappa k_bid, per bps"),
        "k_ask": In("f64", optional=True, doc="estimators.kappa k_ask, per bps"),
        "f_hat_per_s": In("f64", optional=True, doc="features.funding f_hat_per_s (signed, per second)"),
    }
    outputs = {
        "bid_epnl": Out("vec", size="levels", doc="E[PnL] per bid level, bps per contract"),
        "ask_epnl": Out("vec", size="levels", doc="E[PnL] per ask level, bps per contract"),
        "bid_epnl_quote": Out("vec", size="levels", doc="E[PnL] per bid level, USDC per contract"),
        "ask_epnl_quote": Out("vec", size="levels", doc="E[PnL] per ask level, USDC per contract"),
        "bid_pfill": Out("vec", size="levels", doc="P(fill) per bid level over fill_horizon_s"),
        "ask_pfill": Out("vec", size="levels", doc="P(fill) per ask level over fill_horizon_s"),
        "bid_edge": Out("vec", size="levels", doc="bid level distance below the mid, bps"),
        "ask_edge": Out("vec", size="levels", doc="ask level distance above the mid, bps"),
        "tau_hold_bid": Out("f64", doc="expected holding time of a bid fill, s"),
        "tau_hold_ask": Out("f64", doc="expected holding time of an ask fill, s"),
        "as_ratio_bid": Out("f64", doc="AS_ratio of a bid fill (kurtosis-adjusted)"),
        "as_ratio_ask": Out("f64", doc="AS_ratio of an ask fill (kurtosis-adjusted)"),
        "adverse_bid": Out("f64", doc="E[adverse move | bid fill], bps"),
        "adverse_ask": Out("f64", doc="E[adverse move | ask fill], bps"),
        "carry_bid": Out("f64", doc="E[carry | bid fill], bps"),
        "carry_ask": Out("f64", doc="E[carry | ask fill], bps"),
    }
    kernel = epnl_kernel


EMIT = Epnl.EMIT  # the kernel's named emit bits (compile-time constants)
