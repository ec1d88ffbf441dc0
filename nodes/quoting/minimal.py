import math

import numpy as np
from numba import njit
from pydantic import Field, model_validator

from flowmm.core.node import In, Node, NodeParams, Out
from flowmm.core.ports import LAD_ASK_PX, LAD_ASK_SZ, LAD_BID_PX, LAD_BID_SZ, LADDER_LEVELS
from flowmm.execution.hyperliquid_rules import (
    PERP_MAX_DECIMALS,
    ROUND_DOWN,
    ROUND_UP,
    SPOT_MAX_DECIMALS,
    px_above,
    px_below,
    round_px,
    round_sz,
)

# packed params, in Params field order
P_HALF, P_SPACING, P_LEVELS, P_SIZE, P_SZ_DEC, P_PERP, P_MIN_VALUE = range(7)


@njit(cache=True)
def minimal_quoter_kernel(now, dt, params, state, mid, mid_ticked, ladder):
    if not mid_ticked:
        return EMIT.NONE
    m = mid[0]
    if not (m > 0.0) or math.isinf(m):
        if state[0] == 1.0:
            return EMIT.NONE  # quotes already withheld: say it once
        ladder[:, :] = np.nan
        state[0] = 1.0
        return EMIT.ALL
    half = params[P_HALF]
    spacing = params[P_SPACING]
    n_levels = int(params[P_LEVELS])
    szd = int(params[P_SZ_DEC])
    perp = params[P_PERP] > 0.5
    min_value = params[P_MIN_VALUE]
    sz = round_sz(params[P_SIZE], szd)
    prev_bid = m  # level i must lie strictly beyond level i-1 (and the touch beyond mid)
    prev_ask = m
    for i in range(LADDER_LEVELS):
        ladder[i, LAD_BID_PX] = np.nan
        ladder[i, LAD_BID_SZ] = np.nan
        ladder[i, LAD_ASK_PX] = np.nan
        ladder[i, LAD_ASK_SZ] = np.nan
        if i >= n_levels:
            continue
        d = (half + i * spacing) * 1e-4
        bid = round_px(m * (1.0 - d), szd, perp, ROUND_DOWN)
        if bid == bid and bid >= prev_bid:
            bid = px_below(prev_bid, szd, perp)
        ask = round_px(m * (1.0 + d), szd, perp, ROUND_UP)
        if ask <= prev_ask:
            ask = px_above(prev_ask, szd, perp)
        if bid == bid:
            prev_bid = bid
            if sz > 0.0 and bid * sz >= min_value:
                ladder[i, LAD_BID_PX] = bid
                ladder[i, LAD_BID_SZ] = sz
        else:
            prev_bid = 0.0  # no positive price left below: deeper bids are gone too
        if ask == ask:
            prev_ask = ask
            if sz > 0.0 and ask * sz >= min_value:
                ladder[i, LAD_ASK_PX] = ask
                ladder[i, LAD_ASK_SZ] = sz
    state[0] = 0.0
    return EMIT.ALL


class MinimalQuoter(Node):
    """A minimal quoter: a symmetric ladder around mid.

    The baseline the execution layer is built and tested against (issue 4), not a strategy: no
    inventory, drift or volatility in it. Level i = 0..levels-1 (0 = the touch) sits at a
    linear distance from the mid m,

        d_i = half_spread_bps + i * level_spacing_bps            (bps of mid)
        bid_i = round_down(m * (1 - d_i * 1e-4)),  ask_i = round_up(m * (1 + d_i * 1e-4)),

    rounded to Hyperliquid's price grid (5 significant figures, MAX_DECIMALS - szDecimals
    decimals, integers always valid; ``flowmm.execution.hyperliquid_rules``) away from the mid,
    so rounding never improves a post-only quote. A level that rounds onto or inside the level
    before it (spacing under one tick) is pushed one tick out: bids strictly decrease, asks
    strictly increase, and bid_0 < m < ask_0. Every level has ``size`` contracts, rounded down
    to ``sz_decimals``; a level whose value px * size is below ``min_order_value`` (Hyperliquid
    rejects orders under $10) is left empty (NaN), so level i always means distance d_i.

    Emits the ladder whenever the mid ticks with a finite value > 0. A NaN, inf or non-positive
    mid withholds the quotes: the ladder is emitted once as all NaN (the execution layer then
    cancels), and not again until a valid mid brings the quotes back."""

    type_name = "quoting.minimal"

    class Params(NodeParams):
        half_spread_bps: float = Field(
            5.0, gt=0, le=5000, description="touch half-spread: level 0's distance from mid, bps"
        )
        level_spacing_bps: float = Field(
            2.0, ge=0, le=5000, description="added distance per level (linear), bps; at least one tick"
        )
        levels: int = Field(3, ge=1, le=LADDER_LEVELS, description="levels per side")
        size: float = Field(1.0, gt=0, description="contracts per level, rounded down to sz_decimals")
        sz_decimals: int = Field(
            2, ge=0, le=SPOT_MAX_DECIMALS, description="the asset's szDecimals (meta): HYPE 2, BTC 5"
        )
        is_perp: bool = Field(True, description="perp (6 max price decimals) or spot (8)")
        min_order_value: float = Field(
            10.0, ge=0, description="levels with px * size below this (USDC) are dropped; Hyperliquid: $10"
        )

        @model_validator(mode="after")
        def _sz_decimals_fit(self):
            top = PERP_MAX_DECIMALS if self.is_perp else SPOT_MAX_DECIMALS
            if self.sz_decimals > top:
                kind = "perp" if self.is_perp else "spot"
                raise ValueError(f"sz_decimals {self.sz_decimals} exceeds the {kind} maximum {top}")
            return self

    inputs = {"mid": In("f64", doc="the mid (source.mid)")}
    outputs = {"ladder": Out("ladder", doc="desired quotes; all NaN = quotes withheld")}
    kernel = minimal_quoter_kernel

    def init_state(self):
        return (np.zeros(1),)  # [1.0 once an all-NaN ladder was emitted]


EMIT = MinimalQuoter.EMIT  # the kernel's named emit bits (compile-time constants)
