"""quoting.glft: GLFT per-side quote depths, with the closed-form inventory (and drift) skew."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numba import njit
from pydantic import Field

from flowmm.core.node import In, Node, NodeParams, Out

SKEWS = ("none", "inventory", "inventory_drift")
# packed params (Params field order; skew packed as its index in SKEWS, None as NaN)
(
    P_SKEW, P_SIZE, P_XI, P_GAMMA0, P_SIGMA0, P_SIGMA_MIN, P_K0, P_A0, P_MU0, P_DRIFT_CAP, P_MIN_DEPTH,
    P_FEE,
) = range(12)  # fmt: skip


@njit(cache=True)
def log1p_ratio(x):
    """ln(1 + x)/x, continuous at x = 0 (value 1)."""
    if x == 0.0:
        return 1.0
    return math.log1p(x) / x


@njit(cache=True)
def glft_half(k, xi_size):
    """(1/(xi Delta)) ln(1 + xi Delta/k) in bps (k per bps, xi Delta per bps); 1/k at xi = 0."""
    return log1p_ratio(xi_size / k) / k


@njit(cache=True)
def glft_omega(gamma, sigma, a, k, size, xi_size):
    """sqrt(gamma sigma^2/(2 A Delta k) (1 + xi Delta/k)^(1 + k/(xi Delta))), bps per contract."""
    x = xi_size / k
    expo = math.exp(math.log1p(x) + log1p_ratio(x))  # (1+x)^(1+1/x); e at x = 0
    return math.sqrt(gamma * sigma * sigma / (2.0 * a * size * k) * expo)


@njit(cache=True)
def drift_skew(mu, gamma, sigma, a, k, size, xi_size, cap):
    """omega mu/(gamma sigma^2) = mu/sigma sqrt(E/(2 A Delta k gamma)), clipped to +-cap (bps)."""
    if mu == 0.0:
        return 0.0
    x = xi_size / k
    expo = math.exp(math.log1p(x) + log1p_ratio(x))
    if gamma > 0.0 and sigma > 0.0:
        v = mu / sigma * math.sqrt(expo / (2.0 * a * size * k * gamma))
    else:
        v = math.copysign(math.inf, mu)  # a risk-neutral maker follows any drift all the way
    return min(max(v, -cap), cap)


@njit(cache=True)
def _pos(x, fallback):
    """x when finite and > 0, else the fallback."""
    return x if (x > 0.0 and x < math.inf) else fallback


@njit(cache=True)
def glft_kernel(
    now, dt, params,
    q, q_ticked, gamma, gamma_ticked, sigma, sigma_ticked,
    k_bid, k_bid_ticked, k_ask, k_ask_ticked, a_bid, a_bid_ticked, a_ask, a_ask_ticked,
    mu_hat, mu_hat_ticked, r_bps, r_bps_ticked,
    bid_depth, ask_depth, bid_depth_mid, ask_depth_mid, half_bid, half_ask,
    skew_bid, skew_ask, drift_skew_bid, drift_skew_ask, omega_bid, omega_ask,
):  # fmt: skip
    mode = int(params[P_SKEW])
    size = params[P_SIZE]
    qq = q[0] if abs(q[0]) < math.inf else 0.0
    g = gamma[0]
    if not (g >= 0.0 and g < math.inf):
        g = params[P_GAMMA0]
    s = sigma[0]
    if not (s >= 0.0 and s < math.inf):
        s = params[P_SIGMA0]
    s = max(s, params[P_SIGMA_MIN])
    kb = _pos(k_bid[0], params[P_K0])
    ka = _pos(k_ask[0], params[P_K0])
    ab = _pos(a_bid[0], params[P_A0])
    aa = _pos(a_ask[0], params[P_A0])
    mu = mu_hat[0] if abs(mu_hat[0]) < math.inf else params[P_MU0]
    c = r_bps[0] if abs(r_bps[0]) < math.inf else 0.0
    xi = params[P_XI]
    xi_size = (g if xi != xi else xi) * size  # xi = gamma unless set (Gueant's model A)

    ob = glft_omega(g, s, ab, kb, size, xi_size)
    oa = glft_omega(g, s, aa, ka, size, xi_size)
    fee = params[P_FEE]
    hb = glft_half(kb, xi_size) + fee  # a fill earns depth - fee: the optimum shifts by the fee
    ha = glft_half(ka, xi_size) + fee
    sb = 0.0
    sa = 0.0
    db = 0.0
    da = 0.0
    if mode >= 1:  # closed form: half spread gains omega Delta/2, skew omega q
        hb += 0.5 * ob * size
        ha += 0.5 * oa * size
        sb = ob * qq
        sa = -oa * qq
        if mode == 2:  # drift: q -> q - mu/(gamma sigma^2)
            cap = params[P_DRIFT_CAP]
            db = -drift_skew(mu, g, s, ab, kb, size, xi_size, cap)
            da = drift_skew(mu, g, s, aa, ka, size, xi_size, cap)
            sb += db
            sa += da
    bm = hb + sb - c  # distances below / above the mid
    am = ha + sa + c
    floor = params[P_MIN_DEPTH]
    if floor == floor:
        bm = max(bm, floor)
        am = max(am, floor)
    bid_depth_mid[0] = bm
    ask_depth_mid[0] = am
    bid_depth[0] = bm + c
    ask_depth[0] = am - c
    half_bid[0] = hb
    half_ask[0] = ha
    skew_bid[0] = sb
    skew_ask[0] = sa
    drift_skew_bid[0] = db
    drift_skew_ask[0] = da
    omega_bid[0] = ob
    omega_ask[0] = oa
    return EMIT.ALL


class Glft(Node):
    """GLFT quote depths per side (seed 000 Component 3; Gueant 2017 closed form; seed 004 Stage 3).

    Half spread of a side (Gueant 2017 with order size Delta; Delta = 1 is GLFT 2013):

        c1_side = (1/(xi Delta)) ln(1 + xi Delta / k_side)                   [bps]

    with k_side the depth decay of that side's fills, per bps (estimators.kappa k_bid / k_ask;
    NOT the arrival rates kappa_buy/kappa_sell that seed 000 writes: CONVENTIONS.md). Units:
    gamma 1/(bps contract) (quoting.gamma_q), Delta contracts, so xi Delta and k are per bps and
    c1 is bps; xi = gamma (Gueant's model A) unless ``xi`` is set (xi = 0 is model B: c1 = 1/k).

    Closed-form skew (GLFT's asymptotic approximation, Gueant 2017 / Gueant-Lehalle-Fernandez-
    Tapia 2013, drift as in Gueant's book: mu/(gamma sigma^2) is an inventory offset):

        x_side     = xi Delta / k_side
        omega_side = sqrt(gamma sigma^2 / (2 A_side Delta k_side) * (1 + x_side)^(1 + 1/x_side))
        bid depth  = c1_bid + omega_bid Delta/2 + omega_bid (q - mu/(gamma sigma^2))
        ask depth  = c1_ask + omega_ask Delta/2 - omega_ask (q - mu/(gamma sigma^2))

    sigma bps/sqrt(s), A orders/s reaching depth 0 (estimators.kappa a_bid/a_ask), so omega is
    bps per contract; mu_hat bps/s. The paper's symmetric A, k become per side (each side's
    omega from its own A, k): a careful reading for asymmetric flow, exact when symmetric.

    ``skew`` selects what the depths contain:

    * ``none`` - c1 only (seed 000 Component 3: bid = r - c1_bid, ask = r + c1_ask): the
      inventory and drift adjustments live in the reservation price, so wire ``r_bps`` from
      quoting.reservation and read the depths from it (rfc_unified.yaml). No double counting.
    * ``inventory`` - GLFT's closed form: c1 + omega Delta/2 and the inventory skew omega q;
      with r_bps unwired the depths are from the mid (glft_minimal.yaml: plain GLFT, no drift).
    * ``inventory_drift`` - also the drift term -omega mu/(gamma sigma^2) on the bid (+ on the
      ask). It grows like mu/sigma and without bound as gamma sigma^2 -> 0, so it is clipped to
      +-max_drift_skew_bps (continuous) and sigma is floored at sigma_floor.
    ``fee_bps``: the maker fee per fill. A fill at depth delta earns delta - fee, so in the
    GLFT control problem the fee only shifts the optimal depth: c1 + fee (Gueant 2017, with the
    proportional cost; a rebate is a negative fee). Without it a GLFT with k ~ 1.5/bps quotes
    ~0.7 bps from the mid and pays 1.5 bps per fill on Hyperliquid's base maker tier.

    Do not combine a skew mode with a reservation whose inventory/drift terms are on: both
    would skew for the same risk.

    Outputs: ``bid_depth`` / ``ask_depth`` are distances from the center r = mid (1 + r_bps
    1e-4) (r_bps unwired: the mid), ``bid_depth_mid`` / ``ask_depth_mid`` from the mid (bid
    depth_mid = bid_depth - r_bps, ask depth_mid = ask_depth + r_bps; all in bps of mid, additive,
    so bid price = mid (1 - bid_depth_mid 1e-4)). A positive depth is away from the mid; a
    negative ask depth_mid means the ask sits below the mid (the ladder keeps post-only). If
    ``min_depth_bps`` is set, the from-mid depths are floored there (e.g. at the fee) and the
    center depths follow. ``half_*`` = c1 + fee (+ omega Delta/2 in the skew modes), ``skew_*`` the
    total skew added to that side's depth, ``drift_skew_*`` its drift part, ``omega_*``.

    Note on the seed: Component 4 says a higher gamma widens "(1/gamma) ln(1 + gamma/kappa)";
    c1 in fact falls with gamma (from 1/k at gamma = 0); it is the omega Delta/2 term and the
    skew that widen with gamma(q). Everything is continuous in q (omega(gamma(q)) q is smooth).

    Inputs, all optional with fallbacks (NaN, inf or invalid values use them): q (exec.position;
    0), gamma (quoting.gamma_q; gamma_fallback, >= 0), sigma (estimators.vol; sigma_fallback; 0
    is valid and floored at sigma_floor), k_bid / k_ask (> 0; k_fallback), a_bid / a_ask (> 0;
    a_fallback), mu_hat (mu_fallback), r_bps (quoting.reservation; 0). Emits every output on
    every run."""

    type_name = "quoting.glft"

    class Params(NodeParams):
        skew: Literal["none", "inventory", "inventory_drift"] = Field(
            "inventory", description="none: c1 only (skew in r_bps); inventory / inventory_drift: closed form"
        )
        order_size: float = Field(1.0, gt=0, description="Delta, contracts (Gueant 2017; 1 = GLFT)")
        xi: float | None = Field(None, ge=0, description="xi of c1, 1/(bps contract); None = gamma (model A)")
        gamma_fallback: float = Field(0.002, ge=0, description="gamma when unwired / NaN, 1/(bps contract)")
        sigma_fallback: float = Field(1.0, ge=0, description="sigma when unwired / NaN, bps/sqrt(s)")
        sigma_floor: float = Field(0.01, ge=0, description="sigma is at least this, bps/sqrt(s)")
        k_fallback: float = Field(1.0, gt=0, description="depth decay k when unwired / NaN, per bps")
        a_fallback: float = Field(0.7, gt=0, description="A (orders/s at depth 0) when unwired / NaN")
        mu_fallback: float = Field(0.0, description="mu_hat when unwired / NaN, bps/s")
        max_drift_skew_bps: float = Field(25.0, ge=0, description="inventory_drift: |drift skew| cap, bps")
        min_depth_bps: float | None = Field(
            None, description="floor of the depths from the mid, bps (e.g. the fee); None = no floor"
        )
        fee_bps: float = Field(
            0.0, ge=-5, le=50, description="maker fee added to c1, bps (HL base tier 1.5; rebate < 0)"
        )

    inputs = {
        "q": In("f64", optional=True, doc="signed position, contracts (exec.position)"),
        "gamma": In("f64", optional=True, doc="gamma(q), 1/(bps contract) (quoting.gamma_q)"),
        "sigma": In("f64", optional=True, doc="volatility, bps/sqrt(s) (estimators.vol sigma)"),
        "k_bid": In("f64", optional=True, doc="bid depth decay, per bps (estimators.kappa k_bid)"),
        "k_ask": In("f64", optional=True, doc="ask depth decay, per bps (estimators.kappa k_ask)"),
        "a_bid": In("f64", optional=True, doc="bid-side A, orders/s (estimators.kappa a_bid)"),
        "a_ask": In("f64", optional=True, doc="ask-side A, orders/s (estimators.kappa a_ask)"),
        "mu_hat": In(
            "f64", optional=True, doc="drift, bps/s (estimators.kalman_drift); inventory_drift only"
        ),
        "r_bps": In("f64", optional=True, doc="center offset from mid, bps (quoting.reservation r_bps)"),
    }
    outputs = {
        "bid_depth": Out("f64", doc="bid distance below the center, bps"),
        "ask_depth": Out("f64", doc="ask distance above the center, bps"),
        "bid_depth_mid": Out("f64", doc="bid distance below the mid, bps"),
        "ask_depth_mid": Out("f64", doc="ask distance above the mid, bps"),
        "half_bid": Out("f64", doc="c1_bid + fee (+ omega_bid Delta/2 in skew modes), bps"),
        "half_ask": Out("f64", doc="c1_ask + fee (+ omega_ask Delta/2 in skew modes), bps"),
        "skew_bid": Out("f64", doc="skew added to the bid depth, bps"),
        "skew_ask": Out("f64", doc="skew added to the ask depth, bps"),
        "drift_skew_bid": Out("f64", doc="drift part of skew_bid, bps"),
        "drift_skew_ask": Out("f64", doc="drift part of skew_ask, bps"),
        "omega_bid": Out("f64", doc="bid inventory skew per contract, bps"),
        "omega_ask": Out("f64", doc="ask inventory skew per contract, bps"),
    }
    kernel = glft_kernel

    def pack_params(self) -> np.ndarray:
        """Field order; skew as its index in SKEWS, None as NaN."""
        p = self.params
        values = []
        for name in type(p).model_fields:
            v = getattr(p, name)
            if name == "skew":
                v = SKEWS.index(v)
            values.append(math.nan if v is None else float(v))
        return np.array(values, dtype=np.float64)


EMIT = Glft.EMIT  # the kernel's named emit bits (compile-time constants)
