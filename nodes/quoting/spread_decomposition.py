"""quoting.spread_decomposition: seed 004 Stages 3-4, per-side quote depths as a sum of named terms."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numba import njit
from pydantic import Field

from flowmm.core.node import In, Node, NodeParams, Out

DIRECTIONS = ("p_down", "mu_hat", "none")
DIR_P_DOWN, DIR_MU, DIR_NONE = 0, 1, 2
# packed params (Params field order; `direction` as its index in DIRECTIONS, None as NaN)
(
    P_K0, P_DELTA, P_GAMMA0, P_SIGMA0, P_TAU, P_SKEW_ON, P_TOX_BASE, P_AS_SCALE, P_TREND_PREM,
    P_VOL_PREM, P_BURST_N, P_BURST_PREM, P_BURST_PER_FILL, P_BURST_MAX, P_DIRECTION, P_SKEW_SENS,
    P_DRIFT_TAU, P_SHIFT_CAP, P_FEE,
) = range(19)  # fmt: skip
# estimators.regime_hmm probs: REGIMES = (trending_down, trending_up, mean_reverting, volatile)
R_DOWN, R_UP, R_MR, R_VOL = range(4)


@njit(cache=True)
def _finite(x):
    return abs(x) < math.inf


@njit(cache=True)
def glft_base_half(k, gamma, delta, sigma, tau):
    """(1/(gamma Delta)) ln(1 + gamma Delta / k) + (gamma Delta / 2) sigma^2 tau, bps.

    gamma Delta -> 0 gives 1/k (the seed's "1/kappa" term), continuously (log1p)."""
    gd = gamma * delta
    if gd > 1e-12:
        first = math.log1p(gd / k) / gd
    else:
        first = 1.0 / k
    return first + 0.5 * gd * sigma * sigma * tau


@njit(cache=True)
def _burst_premium(count, n_min, prem, per_fill, cap):
    """g(burst count): prem at n_min fills, + per_fill per fill beyond, capped; 0 below n_min."""
    if not (count >= n_min):  # NaN -> no burst
        return 0.0
    g = prem + per_fill * (count - n_min)
    if cap == cap and g > cap:
        g = cap
    return g


@njit(cache=True)
def spread_decomposition_kernel(
    now,
    dt,
    params,
    q,
    q_ticked,
    gamma,
    gamma_ticked,
    sigma,
    sigma_ticked,
    k_bid,
    k_bid_ticked,
    k_ask,
    k_ask_ticked,
    toxicity,
    toxicity_ticked,
    as_scale,
    as_scale_ticked,
    regime_probs,
    regime_probs_ticked,
    p_down,
    p_down_ticked,
    mu_hat,
    mu_hat_ticked,
    burst_bid,
    burst_bid_ticked,
    burst_ask,
    burst_ask_ticked,
    bid_depth,
    ask_depth,
    half_spread_bid,
    half_spread_ask,
    base_bid,
    base_ask,
    tox_premium,
    regime_premium,
    burst_bid_premium,
    burst_ask_premium,
    directional_shift,
    inventory_skew,
    bid_raw,
    ask_raw,
):
    # fallbacks: a NaN / inf / unwired input takes its documented default
    x_q = q[0] if _finite(q[0]) else 0.0
    g = gamma[0] if (_finite(gamma[0]) and gamma[0] >= 0.0) else params[P_GAMMA0]
    s = sigma[0] if (_finite(sigma[0]) and sigma[0] >= 0.0) else params[P_SIGMA0]
    kb = k_bid[0] if (_finite(k_bid[0]) and k_bid[0] > 0.0) else params[P_K0]
    ka = k_ask[0] if (_finite(k_ask[0]) and k_ask[0] > 0.0) else params[P_K0]
    tau = params[P_TAU]

    # Stage 3: base half spread per side + toxicity + regime premia
    bb = glft_base_half(kb, g, params[P_DELTA], s, tau)
    ba = glft_base_half(ka, g, params[P_DELTA], s, tau)
    pi = toxicity[0] if _finite(toxicity[0]) else 0.0
    pi = min(max(pi, 0.0), 1.0)
    scale = as_scale[0] if (_finite(as_scale[0]) and as_scale[0] >= 0.0) else params[P_AS_SCALE]
    tox = max(pi - params[P_TOX_BASE], 0.0) * scale
    reg = 0.0
    n = regime_probs.shape[0]
    if n > R_UP:
        p_tr = 0.0
        if _finite(regime_probs[R_DOWN]):
            p_tr += regime_probs[R_DOWN]
        if _finite(regime_probs[R_UP]):
            p_tr += regime_probs[R_UP]
        reg += params[P_TREND_PREM] * min(max(p_tr, 0.0), 1.0)
    if n > R_VOL and _finite(regime_probs[R_VOL]):
        reg += params[P_VOL_PREM] * min(max(regime_probs[R_VOL], 0.0), 1.0)
    hb = bb + tox + reg
    ha = ba + tox + reg

    # Stage 4: directional shift (bearish > 0: bids further, asks closer), capped at cap x half
    mode = int(params[P_DIRECTION])
    shift = 0.0
    if mode == DIR_P_DOWN:
        p = p_down[0]
        if _finite(p) and 0.0 <= p <= 1.0:
            shift = params[P_SKEW_SENS] * (p - 0.5)
    elif mode == DIR_MU:
        if _finite(mu_hat[0]):
            shift = -mu_hat[0] * params[P_DRIFT_TAU]
    cap = params[P_SHIFT_CAP]
    if cap == cap:
        lim = cap * 0.5 * (hb + ha)
        shift = min(max(shift, -lim), lim)
    skew = x_q * g * s * s * tau if params[P_SKEW_ON] > 0.5 else 0.0
    pb = _burst_premium(
        burst_bid[0], params[P_BURST_N], params[P_BURST_PREM], params[P_BURST_PER_FILL], params[P_BURST_MAX]
    )
    pa = _burst_premium(
        burst_ask[0], params[P_BURST_N], params[P_BURST_PREM], params[P_BURST_PER_FILL], params[P_BURST_MAX]
    )
    rb = hb + shift + skew + pb
    ra = ha - shift - skew + pa
    fee = params[P_FEE]

    bid_depth[0] = max(rb, fee)
    ask_depth[0] = max(ra, fee)
    half_spread_bid[0] = hb
    half_spread_ask[0] = ha
    base_bid[0] = bb
    base_ask[0] = ba
    tox_premium[0] = tox
    regime_premium[0] = reg
    burst_bid_premium[0] = pb
    burst_ask_premium[0] = pa
    directional_shift[0] = shift
    inventory_skew[0] = skew
    bid_raw[0] = rb
    ask_raw[0] = ra
    return EMIT.ALL


class SpreadDecomposition(Node):
    """Per-side quote depths as a sum of named terms (seed 004, Stages 3 and 4).

    Depths are distances from the **mid** in bps (positive = away from the mid on the quote's
    own side), as in seed 004's worked example ("bid at mid - 26 bps"); wire quoting.ladder
    with center = mid. Per side (bid b, ask a):

        base_side  = (1/(gamma Delta)) ln(1 + gamma Delta / k_side) + (gamma Delta / 2) sigma^2 tau
        half_side  = base_side + tox_premium + regime_premium                       (Stage 3)
        tox_premium    = max(pi - toxicity_baseline, 0) * AS_scale
        regime_premium = trend_premium_bps (P(trend down) + P(trend up)) + volatile_premium_bps P(volatile)
        shift      = clip(f(belief), -shift_cap_mult h, +shift_cap_mult h),  h = (half_b + half_a)/2
        skew       = q gamma sigma^2 tau                                            (bps)
        bid_raw    = half_b + shift + skew + burst_premium(burst_bid)               (Stage 4)
        ask_raw    = half_a - shift - skew + burst_premium(burst_ask)
        bid_depth  = max(bid_raw, fee_bps),  ask_depth = max(ask_raw, fee_bps)

    Units: k per bps (estimators.kappa k_bid / k_ask, the depth decay, not an arrival rate),
    gamma in 1/(bps contract) (quoting.gamma_q), sigma in bps/sqrt(s), tau in s, q and Delta in
    contracts; every term is in bps.

    Choices and corrections of the seed:

    * Base half spread: the seed's 1/kappa + (gamma/2) sigma^2 (T - t) is the small-gamma limit of
      the Avellaneda-Stoikov / GLFT half spread; here the exact (1/(gamma Delta)) ln(1 + gamma
      Delta / k) (CONVENTIONS' depth with order size Delta) plus the inventory-risk half term
      (gamma Delta / 2) sigma^2 tau, per side with k_bid / k_ask (CONVENTIONS keeps the decay
      per side). gamma Delta -> 0 gives 1/k continuously.
    * Toxicity premium pi AS_scale: pi = estimators.toxicity toxicity (clipped to [0, 1]),
      AS_scale the expected AS magnitude in bps (input `as_scale`, e.g. a markout average; else
      as_scale_bps). `toxicity_baseline` lets the premium count only toxicity above a normal
      level (default 0: the seed's literal pi AS_scale).
    * Regime premium: continuous in the HMM's probabilities (estimators.regime_hmm probs,
      order trending_down, trending_up, mean_reverting, volatile), not a switch on its argmax.
    * Directional shift f(belief), selectable (`direction`): "p_down" (default) =
      skew_sensitivity_bps (p_down - 0.5), seed 004 section 8's skew_sensitivity = 20 ("at
      P(down) = 0.75 bids ~5 bps further"); "mu_hat" = -mu_hat drift_tau_s (CONVENTIONS'
      drift_shift, sign flipped so bearish > 0); "none". Capped at +-shift_cap_mult x the mean
      half spread (seed 004 section 8: drift_cap = 2 x spread, where its "spread" is the half
      spread of the Stage 2 example; null = no cap).
    * Inventory skew: the seed's gamma q sigma^2/kappa is not in bps (kappa per bps makes it
      bps^2/s); CONVENTIONS' inventory penalty q gamma sigma^2 tau is used (long q > 0 pushes
      bids away and pulls asks in). With `gamma` wired from quoting.gamma_q (gamma(q)) the skew
      and the base are continuous in q; `inventory_skew: false` drops the term (e.g. when the
      ladder is centered on quoting.reservation, which already carries it - and then set
      direction "none" too, or the drift is counted twice).
    * Burst premium g(count) on the swept side only: burst_premium_bps once our fills on that
      side within the burst window (features.sweep burst_bid / burst_ask, counts) reach
      burst_threshold (seed 004: 4), + burst_per_fill_bps per further fill, capped at
      burst_max_bps. A burst count is an integer, so this term steps (not a q discontinuity).
    * Fee floor: a depth never goes below fee_bps (seed: "floored at fee_bps = 1.5"), so a
      bearish shift cannot push the ask to or through the mid. max() is continuous.

    Inputs (all optional, each NaN / inf / out-of-range value takes its fallback): q (exec.position;
    0), gamma (gamma_base), sigma (sigma_fallback), k_bid / k_ask (k_fallback; must be > 0),
    toxicity (0), as_scale (as_scale_bps), regime_probs (vec of 4; 0 premium), p_down (no shift),
    mu_hat (no shift), burst_bid / burst_ask (no premium). Emits every output on every run.

    Outputs (bps): bid_depth, ask_depth (the floored depths, for quoting.ladder), half_spread_bid /
    _ask, base_bid / base_ask, tox_premium, regime_premium, burst_bid_premium, burst_ask_premium,
    directional_shift, inventory_skew, bid_raw / ask_raw (before the fee floor).
    Cycle-triggered (it prices a cycle's quotes)."""

    type_name = "quoting.spread_decomposition"

    class Params(NodeParams):
        k_fallback: float = Field(
            0.35, gt=0, description="depth decay k when k_bid / k_ask are unwired or invalid, per bps"
        )
        order_size: float = Field(1.0, gt=0, description="Delta of the GLFT depth, contracts (1 = GLFT)")
        gamma_base: float = Field(
            0.002, ge=0, description="gamma when unwired, 1/(bps contract) (match quoting.gamma_q)"
        )
        sigma_fallback: float = Field(1.0, ge=0, description="sigma when unwired / NaN, bps/sqrt(s)")
        tau_s: float = Field(60.0, ge=0, description="risk horizon of the inventory terms, s")
        inventory_skew: bool = Field(
            True, description="include q gamma sigma^2 tau (false when centered on r)"
        )
        toxicity_baseline: float = Field(
            0.0, ge=0, le=1, description="toxicity premium counts only pi above this"
        )
        as_scale_bps: float = Field(10.0, ge=0, description="AS_scale when the input is unwired, bps")
        trend_premium_bps: float = Field(5.0, ge=0, description="premium x P(trending down or up), bps")
        volatile_premium_bps: float = Field(5.0, ge=0, description="premium x P(volatile), bps")
        burst_threshold: float = Field(4.0, ge=1, description="fills on one side in the window = a burst")
        burst_premium_bps: float = Field(5.0, ge=0, description="swept-side premium at the threshold, bps")
        burst_per_fill_bps: float = Field(0.0, ge=0, description="extra premium per fill beyond it, bps")
        burst_max_bps: float | None = Field(
            None, ge=0, description="cap of the burst premium, bps (null = none)"
        )
        direction: Literal["p_down", "mu_hat", "none"] = Field(
            "p_down", description="source of the directional shift"
        )
        skew_sensitivity_bps: float = Field(
            20.0, ge=0, description="shift = this x (p_down - 0.5), bps (seed 004: 20)"
        )
        drift_tau_s: float = Field(30.0, ge=0, description="shift = -mu_hat x this (direction mu_hat), s")
        shift_cap_mult: float | None = Field(
            2.0, ge=0, description="|shift| <= this x mean half spread (seed 004: 2; null = no cap)"
        )
        fee_bps: float = Field(1.5, description="floor of both depths, bps (seed 004: the maker fee, 1.5)")

    inputs = {
        "q": In("f64", optional=True, doc="signed position, contracts (exec.position); unwired = 0"),
        "gamma": In("f64", optional=True, doc="gamma(q), 1/(bps contract) (quoting.gamma_q gamma)"),
        "sigma": In("f64", optional=True, doc="volatility, bps/sqrt(s) (estimators.vol sigma)"),
        "k_bid": In("f64", optional=True, doc="bid depth decay, per bps (estimators.kappa k_bid)"),
        "k_ask": In("f64", optional=True, doc="ask depth decay, per bps (estimators.kappa k_ask)"),
        "toxicity": In("f64", optional=True, doc="pi in [0, 1] (estimators.toxicity toxicity)"),
        "as_scale": In("f64", optional=True, doc="expected AS magnitude, bps (overrides as_scale_bps)"),
        "regime_probs": In("vec", optional=True, doc="estimators.regime_hmm probs (4)"),
        "p_down": In("f64", optional=True, doc="P(down) (estimators.direction_logodds p_down)"),
        "mu_hat": In("f64", optional=True, doc="drift, bps/s (estimators.kalman_drift mu_hat)"),
        "burst_bid": In("f64", optional=True, doc="our bid fills in the burst window (features.sweep)"),
        "burst_ask": In("f64", optional=True, doc="our ask fills in the burst window (features.sweep)"),
    }
    outputs = {
        "bid_depth": Out("f64", doc="bid depth below the mid, bps, floored at fee_bps"),
        "ask_depth": Out("f64", doc="ask depth above the mid, bps, floored at fee_bps"),
        "half_spread_bid": Out("f64", doc="base_bid + tox_premium + regime_premium, bps"),
        "half_spread_ask": Out("f64", doc="base_ask + tox_premium + regime_premium, bps"),
        "base_bid": Out("f64", doc="GLFT base half spread of the bid side, bps"),
        "base_ask": Out("f64", doc="GLFT base half spread of the ask side, bps"),
        "tox_premium": Out("f64", doc="pi x AS_scale, bps"),
        "regime_premium": Out("f64", doc="regime premium, bps"),
        "burst_bid_premium": Out("f64", doc="burst premium on the bid side, bps"),
        "burst_ask_premium": Out("f64", doc="burst premium on the ask side, bps"),
        "directional_shift": Out("f64", doc="capped directional shift, bps (bearish > 0)"),
        "inventory_skew": Out("f64", doc="q gamma sigma^2 tau, bps (long > 0)"),
        "bid_raw": Out("f64", doc="bid depth before the fee floor, bps"),
        "ask_raw": Out("f64", doc="ask depth before the fee floor, bps"),
    }
    kernel = spread_decomposition_kernel

    def pack_params(self) -> np.ndarray:
        """Field order; `direction` as its index in DIRECTIONS, bools as 0/1, None as NaN."""
        p = self.params
        values = []
        for name in type(p).model_fields:
            v = getattr(p, name)
            if name == "direction":
                v = DIRECTIONS.index(v)
            values.append(math.nan if v is None else float(v))
        return np.array(values, dtype=np.float64)


EMIT = SpreadDecomposition.EMIT  # the kernel's named emit bits (compile-time constants)
