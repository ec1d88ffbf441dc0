"""quoting.reservation: the drift-, inventory- and funding-adjusted reservation price, in bps of mid."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numba import njit
from pydantic import Field

from flowmm.core.node import In, Node, NodeParams, Out

VARIANTS = ("rfc", "bayes")
# packed params (Params field order; variant packed as its index in VARIANTS)
(
    P_VARIANT, P_TAU_EFF, P_TAU_REM, P_TAU_FUND, P_CAP_MULT, P_SPREAD0, P_GAMMA0, P_SIGMA0, P_MU0,
) = range(9)  # fmt: skip
# state: [1.0 once a NaN price was emitted (mid missing)]
S_WITHHELD = 0
# output bits


@njit(cache=True)
def _or(x, fallback):
    """The input value when finite, else the fallback."""
    return x if abs(x) < math.inf else fallback


@njit(cache=True)
def reservation_kernel(
    now, dt, params, state,
    mid, mid_ticked, q, q_ticked, gamma, gamma_ticked, sigma, sigma_ticked,
    mu_hat, mu_hat_ticked, f_hat_per_s, f_hat_per_s_ticked, spread_bps, spread_bps_ticked,
    r_bps, price, drift_shift, drift_shift_raw, inventory_penalty, funding_carry,
):  # fmt: skip
    qq = _or(q[0], 0.0)
    g = gamma[0]
    if not (g >= 0.0 and g < math.inf):
        g = params[P_GAMMA0]
    s = sigma[0]
    if not (s >= 0.0 and s < math.inf):
        s = params[P_SIGMA0]
    mu = _or(mu_hat[0], params[P_MU0])
    f = _or(f_hat_per_s[0], 0.0)

    raw = mu * params[P_TAU_EFF]
    shift = raw
    if params[P_VARIANT] == 1.0:  # bayes: seed 004's cap at +-cap_mult x spread
        sp = spread_bps[0]
        if not (sp >= 0.0 and sp < math.inf):
            sp = params[P_SPREAD0]
        cap = params[P_CAP_MULT] * sp
        shift = min(max(raw, -cap), cap)
    inv = qq * g * s * s * params[P_TAU_REM]
    carry = f * 1e4 * params[P_TAU_FUND]
    r = shift - inv - carry

    r_bps[0] = r
    drift_shift[0] = shift
    drift_shift_raw[0] = raw
    inventory_penalty[0] = inv
    funding_carry[0] = carry
    mask = EMIT.ALL & ~EMIT.PRICE
    m = mid[0]
    if m > 0.0 and m < math.inf:
        price[0] = m * (1.0 + r * 1e-4)
        state[S_WITHHELD] = 0.0
        mask |= EMIT.PRICE
    elif state[S_WITHHELD] == 0.0:
        price[0] = np.nan  # say once that there is no price to quote around
        state[S_WITHHELD] = 1.0
        mask |= EMIT.PRICE
    return mask


class Reservation(Node):
    """Reservation price as an offset from mid (seed 000 Component 3, corrected; seed 004 Stage 2).

        r_bps             = drift_shift - inventory_penalty - funding_carry          [bps of mid]
        drift_shift       = mu_hat * tau_eff                                         (rfc)
                          = clip(mu_hat * tau_eff, -cap_mult*spread, +cap_mult*spread)  (bayes)
        inventory_penalty = q * gamma(q) * sigma^2 * tau_remaining
        funding_carry     = f_hat_per_s * 1e4 * tau_funding
        price             = mid * (1 + r_bps * 1e-4)

    Units: mu_hat bps/s, sigma bps/sqrt(s), q contracts, gamma 1/(bps contract) (quoting.gamma_q),
    f_hat_per_s a signed fraction per second (features.funding), taus in s; every term in bps.

    Corrections of the seed (CONVENTIONS.md wins): seed 000 writes drift_shift = mu tau/(gamma
    sigma^2), which is not a price (it is GLFT's inventory offset, see quoting.glft); here it is
    mu_hat tau_eff bps, as in seed 004. Seed 000's funding_carry = q f tau is a position cost;
    the reservation price takes the marginal carry of one more contract, f 1e4 tau_funding,
    independent of q: positive funding (longs pay) lowers r, so bids back off and asks tighten.

    Variants (``variant``): ``rfc`` (seed 000) leaves the drift shift uncapped (the seed's point:
    the legacy +-3 bps clamp is what failed). ``bayes`` is seed 004 Stage 2: the shift is clipped
    to +-cap_mult x spread, with spread the quoting half-spread (seed 004's 7 bps is the touch's
    distance from mid; its 2 x 7 = 14 bps cap) from the ``spread_bps`` input, else
    ``spread_fallback_bps``. Seed 004 uses one horizon T - t for drift and inventory: set
    tau_eff_s = tau_remaining_s for that reading; seed 004 has no funding term: leave f_hat
    unwired. The clip is continuous, and neither variant depends on q other than through the
    smooth q gamma(q) term, so r_bps is continuous in q.

    Inputs, all optional (a graph may leave a stage out; a replay without the stream still runs):
    mid (source.mid; only for ``price``), q (exec.position; missing/NaN = 0), gamma
    (quoting.gamma_q; missing/NaN/negative = gamma_fallback, i.e. a constant gamma), sigma
    (estimators.vol; missing/NaN/negative = sigma_fallback; 0 is valid and zeroes the inventory
    term), mu_hat (estimators.kalman_drift; missing = mu_fallback), f_hat_per_s
    (features.funding; missing = 0), spread_bps (bayes only; missing/negative = fallback).
    Emission: every run, every term and r_bps. ``price`` is emitted when mid is finite and
    > 0; when it is not, price becomes NaN and is emitted once (quotes withheld), until a valid
    mid returns."""

    type_name = "quoting.reservation"

    class Params(NodeParams):
        variant: Literal["rfc", "bayes"] = Field(
            "rfc", description="rfc: uncapped drift shift (seed 000); bayes: clipped to +-cap_mult x spread"
        )
        tau_eff_s: float = Field(30.0, ge=0, description="drift horizon tau_eff, s (seed 004: 30 s)")
        tau_remaining_s: float = Field(60.0, ge=0, description="inventory-risk horizon tau_remaining, s")
        tau_funding_s: float = Field(600.0, ge=0, description="expected holding time for funding carry, s")
        cap_mult: float = Field(2.0, ge=0, description="bayes: drift shift cap, in half-spreads")
        spread_fallback_bps: float = Field(
            7.0, ge=0, description="bayes: half-spread when spread_bps is missing"
        )
        gamma_fallback: float = Field(0.002, ge=0, description="gamma when unwired / NaN, 1/(bps contract)")
        sigma_fallback: float = Field(1.0, ge=0, description="sigma when unwired / NaN, bps/sqrt(s)")
        mu_fallback: float = Field(0.0, description="mu_hat when unwired / NaN, bps/s")

    inputs = {
        "mid": In("f64", optional=True, doc="mid (source.mid), for the price output"),
        "q": In("f64", optional=True, doc="signed position, contracts (exec.position)"),
        "gamma": In("f64", optional=True, doc="gamma(q), 1/(bps contract) (quoting.gamma_q)"),
        "sigma": In("f64", optional=True, doc="volatility, bps/sqrt(s) (estimators.vol sigma)"),
        "mu_hat": In("f64", optional=True, doc="drift, bps/s (estimators.kalman_drift mu_hat)"),
        "f_hat_per_s": In("f64", optional=True, doc="funding forecast per second (features.funding)"),
        "spread_bps": In("f64", optional=True, doc="bayes: quoting half-spread, bps (the cap's unit)"),
    }
    outputs = {
        "r_bps": Out("f64", doc="reservation offset from mid, bps"),
        "price": Out("f64", doc="reservation price mid (1 + r_bps 1e-4); NaN without a mid"),
        "drift_shift": Out("f64", doc="drift term as used (capped in bayes), bps"),
        "drift_shift_raw": Out("f64", doc="mu_hat tau_eff before any cap, bps"),
        "inventory_penalty": Out("f64", doc="q gamma sigma^2 tau_remaining, bps (subtracted)"),
        "funding_carry": Out("f64", doc="f_hat 1e4 tau_funding, bps (subtracted)"),
    }
    kernel = reservation_kernel

    def pack_params(self) -> np.ndarray:
        """Field order; variant as its index in VARIANTS."""
        p = self.params
        values = [
            float(VARIANTS.index(v)) if name == "variant" else float(v)
            for name, v in ((n, getattr(p, n)) for n in type(p).model_fields)
        ]
        return np.array(values, dtype=np.float64)

    def init_state(self):
        return (np.zeros(1),)


EMIT = Reservation.EMIT  # the kernel's named emit bits (compile-time constants)
