"""quoting.gamma_q: continuous inventory risk aversion gamma(q) = gamma_base (1 + beta (q/q_max)^2)."""

from __future__ import annotations

import math

from numba import njit
from pydantic import Field

from flowmm.core.node import In, Node, NodeParams, Out

# packed params (Params field order)
P_GAMMA, P_BETA, P_QMAX = range(3)


@njit(cache=True)
def gamma_of_q(q, gamma_base, beta, q_max):
    """gamma_base (1 + beta (q/q_max)^2); a non-finite q counts as flat (q = 0)."""
    if not (abs(q) < math.inf):  # NaN or +-inf
        q = 0.0
    u = q / q_max
    return gamma_base * (1.0 + beta * u * u)


@njit(cache=True)
def gamma_q_kernel(now, dt, params, q, q_ticked, clock, clock_ticked, gamma, u, ratio):
    x = q[0]
    if not (abs(x) < math.inf):
        x = 0.0
    q_max = params[P_QMAX]
    g = gamma_of_q(x, params[P_GAMMA], params[P_BETA], q_max)
    gamma[0] = g
    u[0] = x / q_max
    ratio[0] = 1.0 + params[P_BETA] * u[0] * u[0]
    return EMIT.ALL


class GammaQ(Node):
    """Continuous risk aversion gamma(q) (seed 000, Component 4).

        gamma(q) = gamma_base * (1 + beta * (q / q_max)^2)        [1/(bps contract)]

    Unit: gamma is in 1/(bps * contract), so that q * gamma * sigma^2 * tau (sigma in bps/sqrt(s),
    tau in s, q in contracts) is a skew in bps and gamma * Delta (Delta an order size in contracts)
    is the per-bps quantity GLFT's depth formula needs (CONVENTIONS.md). The seed's
    "gamma_base = 0.15" is the old system's own unit and is not reused; the default 0.002 gives
    an inventory penalty of ~1.3 bps at the incident's q = 4.87 with sigma = 1 bps/sqrt(s) and a
    60 s horizon (the legacy skew was 0.73 bps there).

    It replaces the legacy zones: a smooth, convex, even function of q with no threshold, so
    every consumer (reservation price, GLFT depth and skew, optimal size, E[PnL]) is continuous
    in q. Choices: gamma keeps growing quadratically beyond |q| = q_max (no clip: the
    penalty should keep rising if the position overshoots its limit, e.g. after a sweep); the
    consumers that need gamma at another inventory (quoting.sizing's gamma(q + side s)) use
    ``gamma_of_q`` with the same params.

    Inputs: ``q`` the signed position in contracts (exec.position), optional. Unwired, NaN or
    infinite q counts as flat (q = 0, gamma = gamma_base): an unknown position must not blow
    up the quotes; the node with q unwired emits gamma_base on every step it runs. exec.position
    does not tick before the first fill, so wire ``clock: source.clock`` too when the trace
    should show gamma from the first cycle (the consumers' gamma_fallback covers the gap).
    Outputs (every run): ``gamma``; ``u`` = q/q_max (signed, the inventory utilisation);
    ``ratio`` = gamma/gamma_base = 1 + beta u^2 (the seed's table: 1, 1.25, 2, 3.25, 5 at
    u = 0, .25, .5, .75, 1 with beta = 4)."""

    type_name = "quoting.gamma_q"

    class Params(NodeParams):
        gamma_base: float = Field(
            0.002, ge=0, description="risk aversion at q = 0, 1/(bps contract) (our units, not legacy 0.15)"
        )
        beta: float = Field(
            4.0, ge=0, description="inventory curvature: gamma(q_max) = gamma_base (1 + beta)"
        )
        q_max: float = Field(8.57, gt=0, description="position limit, contracts (legacy: 8.57)")

    inputs = {
        "q": In("f64", optional=True, doc="signed position, contracts (exec.position); unwired = 0"),
        "clock": In("f64", optional=True, doc="wire source.clock to emit on every cycle (before any fill)"),
    }
    outputs = {
        "gamma": Out("f64", doc="gamma(q), 1/(bps contract)"),
        "u": Out("f64", doc="q / q_max, signed"),
        "ratio": Out("f64", doc="gamma(q) / gamma_base = 1 + beta u^2"),
    }
    kernel = gamma_q_kernel


EMIT = GammaQ.EMIT  # the kernel's named emit bits (compile-time constants)
