"""quoting.legacy_pcm: the legacy position continuation manager (Hold / Reduce, effective_inv_ratio)."""

from __future__ import annotations

import math

from numba import njit
from pydantic import Field

from flowmm.core.node import In, Node, NodeParams, Out

# packed params (Params field order)
P_CAPACITY, P_URGENCY, P_HOLD_P, P_FLAT = range(4)
MODE_REDUCE, MODE_FLAT, MODE_HOLD = -1.0, 0.0, 1.0


@njit(cache=True)
def position_continuation(q, trend, p_cont, flat):
    """(continuation_p, is_opposed) of position q: P(the move the position rides continues)."""
    if abs(q) <= flat or not (p_cont >= 0.0 and p_cont <= 1.0) or not (trend == trend) or trend == 0.0:
        return 0.5, 0.0  # flat, or no trend reading: no view
    if (trend > 0.0) == (q > 0.0):
        return p_cont, 0.0
    return 1.0 - p_cont, 1.0


@njit(cache=True)
def legacy_pcm_kernel(
    now, dt, params, q, q_ticked, trend, trend_ticked, p_continuation, p_continuation_ticked,
    mode, continuation_p, is_opposed, inventory_ratio, effective_inv_ratio, urgency, effective_q,
):  # fmt: skip
    qv = q[0]
    if not (qv == qv) or math.isinf(qv):
        qv = 0.0  # no position stream yet: flat
    flat = params[P_FLAT]
    c, o = position_continuation(qv, trend[0], p_continuation[0], flat)
    r = qv / params[P_CAPACITY]
    if abs(qv) <= flat:
        m = MODE_FLAT
    elif c > params[P_HOLD_P]:
        m = MODE_HOLD
    else:
        m = MODE_REDUCE
    u = 1.0 + params[P_URGENCY] * r * r if m == MODE_REDUCE else 1.0
    mode[0] = m
    continuation_p[0] = c
    is_opposed[0] = o
    inventory_ratio[0] = r
    urgency[0] = u
    effective_inv_ratio[0] = r * u  # Phase 4B: Hold passes the raw ratio (no longer 0)
    effective_q[0] = qv * u
    return EMIT.ALL


class LegacyPcm(Node):
    """Legacy position continuation manager: Hold or Reduce from p_continuation, effective_inv_ratio.

    Seed 000, Deep Log Analysis: "22:10:50-22:13:19 Position -0.46, PCM says Reduce,
    effective_inv_ratio=-0.03", "22:13:17 PCM flips to Hold - p_continuation crosses 0.50" (the
    buys start two seconds later), RC4 ("effective_inv_ratio was only 0.014 -> 0.15; PCM said
    Hold then Reduce with urgency ~1.003") and "Phase 4B (Hold -> raw_ratio) is working - when
    PCM said Hold at 22:13:17, effective_inv_ratio was -0.034, not 0.000"; seed 004's table
    ("Position continuation: continuation_p=0.73, is_opposed=True - Logged it"). With q the
    position (contracts), trend the signed trend (bps; graphs/legacy.yaml wires
    estimators.trend.short_bps) and p the trend's p_continuation:

        is_opposed      = 1 if sign(trend) != sign(q) else 0
        continuation_p  = p if not opposed else 1 - p   (P(the move the position rides continues))
        mode            = Hold (+1) if continuation_p > 0.50, Reduce (-1) otherwise, 0 when flat
        inventory_ratio = q / ratio_capacity
        urgency         = 1 + urgency_coef * inventory_ratio^2 in Reduce, 1 in Hold
        effective_inv_ratio = inventory_ratio * urgency,   effective_q = q * urgency (contracts)

    Fits to the logs (our reading; the seed gives the values, not the formulas):

    * ratio_capacity = 13.728 contracts: every logged ratio is q / 13.728 to its printed digits -
      0.46 -> 0.034, 0.19 -> 0.014, 2.12 -> 0.15 (seed 000) and 4.87 -> 0.35 (seed 004's
      inventory_ratio); the four together leave only 13.725-13.731. It is 0.8 x max_pos (17.18
      on the start line, 17.16 at a mid 0.1 % higher): the un-reduced max position with a 20 %
      margin buffer, not the q_max 8.57 the gate and zones use.
    * urgency = 1 + 3 r^2, the Phase 2 utilisation curve of the inventory scalar: 1.0034 at the
      logged |q| = 0.46 ("urgency ~1.003").
    * The direction is the short window's: the first fill (22:10:44) was a SELL, a buyer lifting
      our ask in a bounce, so the short was opposed to the short-window move (Reduce) until the
      selloff resumed at 22:13:17 and continuation_p crossed 0.50 (Hold) - just before the bids
      were hit. Seed 004's continuation_p = 0.73 with is_opposed = True is the trend's own
      p_continuation; ours for an opposed position is 1 - 0.73 = 0.27 (legacy.yaml traces the
      trend's p_continuation beside it).

    What it changes downstream: only the skew. After Phase 4A ("removed inventory_dampen") Hold
    and Reduce no longer damp anything; the legacy quoter's skew reads effective_q, so Reduce
    adds the urgency (cosmetic at small q, as logged) and Hold passes q through (Phase 4B).

    Edge cases: q NaN/inf or not wired -> flat; |q| <= flat_position -> mode 0, continuation_p
    0.5, urgency 1; trend NaN or 0, or p_continuation outside [0, 1] -> continuation_p 0.5
    (Reduce: the legacy held only on evidence). Every output emitted on every run;
    cycle-triggered, hot."""

    type_name = "quoting.legacy_pcm"
    tier = "hot"
    trigger = "cycle"

    class Params(NodeParams):
        ratio_capacity: float = Field(
            13.728, gt=0, description="contracts: inventory_ratio = q / this (fits the logged ratios)"
        )
        urgency_coef: float = Field(3.0, ge=0, description="Reduce urgency 1 + coef ratio^2 (logged ~1.003)")
        hold_p: float = Field(0.5, ge=0, le=1, description="Hold when continuation_p is above this")
        flat_position: float = Field(0.0, ge=0, description="|q| at or below this is flat, contracts")

    inputs = {
        "q": In("f64", optional=True, doc="signed position, contracts (exec.position)"),
        "trend": In("f64", optional=True, doc="signed trend, bps (estimators.trend.short_bps)"),
        "p_continuation": In("f64", optional=True, doc="the trend's p_continuation"),
    }
    outputs = {
        "mode": Out("f64", doc="+1 Hold, -1 Reduce, 0 flat"),
        "continuation_p": Out("f64", doc="P(the move the position rides continues)"),
        "is_opposed": Out("f64", doc="1 when the position is against the trend"),
        "inventory_ratio": Out("f64", doc="q / ratio_capacity"),
        "effective_inv_ratio": Out("f64", doc="inventory_ratio x urgency (Hold: the raw ratio)"),
        "urgency": Out("f64", doc="1 + urgency_coef ratio^2 in Reduce, 1 otherwise"),
        "effective_q": Out("f64", doc="q x urgency, contracts (the position the legacy skew sees)"),
    }
    kernel = legacy_pcm_kernel


EMIT = LegacyPcm.EMIT  # the kernel's named emit bits (compile-time constants)
