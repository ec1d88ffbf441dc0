"""quoting.legacy_pre_fill_as: the legacy's per-side AS feedback, toxicity -> p_informed -> wider side."""

from __future__ import annotations

from numba import njit
from pydantic import Field

from flowmm.core.node import In, Node, NodeParams, Out

# packed params (Params field order)
P_THRESHOLD, P_SLOPE, P_FEEDBACK = range(3)
LOGGED_TOX, LOGGED_P_INFORMED = 0.68, 0.323  # seed 004: toxicity 0.68 -> p_informed 0.323
LOGGED_KAPPA = (2161.0, 1813.0)  # seed 004: "reduced kappa from 2161 -> 1813" at alpha 0.323


@njit(cache=True)
def p_informed(tox, threshold, slope):
    """p_informed = clip(slope (toxicity - threshold), 0, 1); NaN toxicity -> 0."""
    if not (tox == tox):
        return 0.0
    return min(max(slope * (tox - threshold), 0.0), 1.0)


@njit(cache=True)
def legacy_pre_fill_as_kernel(
    now, dt, params, toxicity_bid, toxicity_bid_ticked, toxicity_ask, toxicity_ask_ticked,
    p_informed_bid, p_informed_ask, bid_kappa_mult, ask_kappa_mult, bid_spread_mult, ask_spread_mult,
):  # fmt: skip
    for side in range(2):
        tox = toxicity_bid[0] if side == 0 else toxicity_ask[0]
        pi = p_informed(tox, params[P_THRESHOLD], params[P_SLOPE])
        k = 1.0 - params[P_FEEDBACK] * pi
        if side == 0:
            p_informed_bid[0] = pi
            bid_kappa_mult[0] = k
            bid_spread_mult[0] = 1.0 / k
        else:
            p_informed_ask[0] = pi
            ask_kappa_mult[0] = k
            ask_spread_mult[0] = 1.0 / k
    return EMIT.ALL


class LegacyPreFillAs(Node):
    """Legacy pre-fill AS multipliers: per-side toxicity -> p_informed -> kappa cut -> wider half-spread.

    The RFC's "What Gets Removed" lists "`pre_fill_as` multipliers (asymmetric spread hacks)"
    (seed 000; Component 3 replaces them); seed 004's table gives the chain as it ran:
    "Toxicity estimator | toxicity=0.68 | Set p_informed=0.323" and "AS feedback | alpha=0.323 |
    Reduced kappa from 2161->1813". Per side (bid from bid_toxicity, ask from ask_toxicity):

        p_informed = clip(slope (toxicity - threshold), 0, 1)
        kappa_mult = 1 - as_feedback p_informed                  (kappa_side = kappa kappa_mult)
        spread_mult = 1 / kappa_mult                             (the side's half-spread x this)

    Fits: threshold 0.5 (the legacy toxicity multiplier's own threshold, CONVENTIONS.md); slope
    0.323 / (0.68 - 0.5) = 1.794 so that 0.68 -> 0.323; as_feedback (1 - 1813/2161) / 0.323
    = 0.161 / 0.323 = 0.4986. spread_mult: GLFT's depth (1/gamma) ln(1 + gamma/kappa) ~ 1/kappa for
    gamma << kappa (kappa ~ 2000 here), so cutting a side's kappa by kappa_mult widens that
    side's half-spread by 1/kappa_mult: x1.19 at toxicity 0.68, +0.5 bps on the legacy's 2.85 -
    an asymmetry of a fraction of a tick, the "hack" the RFC removes. At the incident's bid
    toxicities 0.524 / 0.61 / 0.67: x1.02 / 1.11 / 1.18. Below the threshold nothing changes.

    Edge cases: toxicity NaN or not wired -> p_informed 0, multipliers 1; as_feedback < 1 keeps
    kappa_mult > 0. Emitted on every run. Cycle-triggered, hot."""

    type_name = "quoting.legacy_pre_fill_as"
    tier = "hot"
    trigger = "cycle"

    class Params(NodeParams):
        threshold: float = Field(0.5, ge=0, le=1, description="toxicity above which p_informed > 0")
        slope: float = Field(
            LOGGED_P_INFORMED / (LOGGED_TOX - 0.5), ge=0, description="p_informed per unit of toxicity"
        )
        as_feedback: float = Field(
            (1.0 - LOGGED_KAPPA[1] / LOGGED_KAPPA[0]) / LOGGED_P_INFORMED,
            ge=0,
            lt=1,
            description="kappa cut per unit of p_informed (fit: 2161 -> 1813 at 0.323)",
        )

    inputs = {
        "toxicity_bid": In("f64", optional=True, doc="bid_toxicity (estimators.toxicity, side bid)"),
        "toxicity_ask": In("f64", optional=True, doc="ask_toxicity (estimators.toxicity, side ask)"),
    }
    outputs = {
        "p_informed_bid": Out("f64", doc="p_informed of the bid side"),
        "p_informed_ask": Out("f64", doc="p_informed of the ask side"),
        "bid_kappa_mult": Out("f64", doc="bid-side kappa x this"),
        "ask_kappa_mult": Out("f64", doc="ask-side kappa x this"),
        "bid_spread_mult": Out("f64", doc="bid half-spread x this (pre_fill_as)"),
        "ask_spread_mult": Out("f64", doc="ask half-spread x this (pre_fill_as)"),
    }
    kernel = legacy_pre_fill_as_kernel


EMIT = LegacyPreFillAs.EMIT  # the kernel's named emit bits (compile-time constants)
