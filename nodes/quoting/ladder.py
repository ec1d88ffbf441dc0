"""quoting.ladder: the desired-quotes ladder from a center, per-side touch depths and level sizes."""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from pydantic import Field, model_validator

from flowmm.core.node import In, Node, NodeParams, Out
from flowmm.core.ports import ASK_PX, BID_PX, LAD_ASK_PX, LAD_ASK_SZ, LAD_BID_PX, LAD_BID_SZ, LADDER_LEVELS
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

# packed params, in Params field order (None -> NaN)
P_LEVELS, P_SPACING, P_RATIO, P_TOUCH, P_SIZE, P_SZ_DEC, P_PERP, P_MIN_VALUE, P_POST_ONLY = range(9)
# state: quotes withheld (all-NaN ladder emitted), and which optional inputs have ever ticked
S_WITHHELD, S_SEEN_BID_DEPTH, S_SEEN_ASK_DEPTH, S_SEEN_BID_SIZES, S_SEEN_ASK_SIZES = range(5)


@njit(cache=True)
def _ok(x):
    return x > 0.0 and x < math.inf


@njit(cache=True)
def _level_size(sizes, seen, i, fallback):
    """Desired size of level i: the vec entry once the vec ever ticked, else the param (NaN = none)."""
    if seen:
        return sizes[i] if i < sizes.shape[0] else math.nan
    return fallback


@njit(cache=True)
def ladder_kernel(
    now,
    dt,
    params,
    state,
    mid,
    mid_ticked,
    center,
    center_ticked,
    center_bps,
    center_bps_ticked,
    bid_depth,
    bid_depth_ticked,
    ask_depth,
    ask_depth_ticked,
    bid_sizes,
    bid_sizes_ticked,
    ask_sizes,
    ask_sizes_ticked,
    book,
    book_ticked,
    ladder,
    bid_touch_bps,
    ask_touch_bps,
    post_only_bid,
    post_only_ask,
    center_used_bps,
):
    if bid_depth_ticked:
        state[S_SEEN_BID_DEPTH] = 1.0
    if ask_depth_ticked:
        state[S_SEEN_ASK_DEPTH] = 1.0
    if bid_sizes_ticked:
        state[S_SEEN_BID_SIZES] = 1.0
    if ask_sizes_ticked:
        state[S_SEEN_ASK_SIZES] = 1.0
    m = mid[0]
    if not _ok(m):
        if state[S_WITHHELD] == 1.0:
            return EMIT.NONE  # quotes already withheld: say it once
        ladder[:, :] = np.nan
        bid_touch_bps[0] = np.nan
        ask_touch_bps[0] = np.nan
        state[S_WITHHELD] = 1.0
        return EMIT.LADDER | EMIT.BID_TOUCH_BPS | EMIT.ASK_TOUCH_BPS
    state[S_WITHHELD] = 0.0
    szd = int(params[P_SZ_DEC])
    perp = params[P_PERP] > 0.5
    n_levels = int(params[P_LEVELS])
    min_value = params[P_MIN_VALUE]

    # center, in bps of the mid: a center price wins, then center_bps, then the mid itself
    if _ok(center[0]):
        c = (center[0] / m - 1.0) * 1e4
    elif abs(center_bps[0]) < math.inf:
        c = center_bps[0]
    else:
        c = 0.0
    # touch depths: a finite input; NaN before the input ever ticked -> touch_bps; NaN after -> no side
    db = bid_depth[0]
    if not (abs(db) < math.inf):
        db = math.nan if state[S_SEEN_BID_DEPTH] == 1.0 else params[P_TOUCH]
    da = ask_depth[0]
    if not (abs(da) < math.inf):
        da = math.nan if state[S_SEEN_ASK_DEPTH] == 1.0 else params[P_TOUCH]
    # crossed raw touches (db + da < 0): both collapse onto their midpoint, continuously
    if db == db and da == da and db + da < 0.0:
        c += 0.5 * (da - db)
        db = 0.0
        da = 0.0
    center_used_bps[0] = c

    # post-only caps: bids strictly below the best ask, asks strictly above the best bid; without
    # a (valid) book, strictly inside the mid, which implies both
    bid_cap = math.inf
    ask_cap = 0.0
    if params[P_POST_ONLY] > 0.5:
        best_ask = book[0, ASK_PX]
        best_bid = book[0, BID_PX]
        bid_cap = px_below(best_ask if _ok(best_ask) else m, szd, perp)
        ask_cap = px_above(best_bid if _ok(best_bid) else m, szd, perp)
        if bid_cap != bid_cap:
            db = math.nan  # no valid price below the best ask
    post_only_bid[0] = 0.0
    post_only_ask[0] = 0.0

    prev_bid = math.inf
    prev_ask = 0.0
    bid0 = 0.0  # our touch bid: our touch ask stays strictly above it
    offset = 0.0
    gap = params[P_SPACING]
    for i in range(LADDER_LEVELS):
        ladder[i, LAD_BID_PX] = np.nan
        ladder[i, LAD_BID_SZ] = np.nan
        ladder[i, LAD_ASK_PX] = np.nan
        ladder[i, LAD_ASK_SZ] = np.nan
        if i >= n_levels:
            continue
        if i > 0:
            offset += gap
            gap *= params[P_RATIO]
        # bid: round down, under the post-only cap, strictly below the previous level
        if db == db and prev_bid > 0.0:
            bid = round_px(m * (1.0 + (c - db - offset) * 1e-4), szd, perp, ROUND_DOWN)
            if bid == bid and bid > bid_cap:
                bid = bid_cap
                if i == 0:
                    post_only_bid[0] = 1.0
            if bid == bid and bid >= prev_bid:
                bid = px_below(prev_bid, szd, perp)
            if bid == bid:
                prev_bid = bid
                if i == 0:
                    bid0 = bid
                sz = round_sz(_level_size(bid_sizes, state[S_SEEN_BID_SIZES] == 1.0, i, params[P_SIZE]), szd)
                if sz > 0.0 and bid * sz >= min_value:
                    ladder[i, LAD_BID_PX] = bid
                    ladder[i, LAD_BID_SZ] = sz
            else:
                prev_bid = 0.0  # no positive price left below: deeper bids are gone too
        # ask: round up, over the post-only cap, strictly above the previous level
        if da == da:
            ask = round_px(m * (1.0 + (c + da + offset) * 1e-4), szd, perp, ROUND_UP)
            if ask != ask or ask < ask_cap:  # a raw ask at or below 0 sits under any cap
                ask = ask_cap
                if i == 0:
                    post_only_ask[0] = 1.0
            if ask <= prev_ask:
                ask = px_above(prev_ask, szd, perp)
            if i == 0 and ask <= bid0:  # raw touches met on a grid point (or a locked book)
                ask = px_above(bid0, szd, perp)
            if ask == ask:
                prev_ask = ask
                sz = round_sz(_level_size(ask_sizes, state[S_SEEN_ASK_SIZES] == 1.0, i, params[P_SIZE]), szd)
                if sz > 0.0 and ask * sz >= min_value:
                    ladder[i, LAD_ASK_PX] = ask
                    ladder[i, LAD_ASK_SZ] = sz
    # the distances actually quoted at the touch (after rounding and post-only), bps of the mid
    b0 = ladder[0, LAD_BID_PX]
    a0 = ladder[0, LAD_ASK_PX]
    bid_touch_bps[0] = (m - b0) / m * 1e4
    ask_touch_bps[0] = (a0 - m) / m * 1e4
    return EMIT.ALL


class Ladder(Node):
    """The desired-quotes ladder (the port execution.ladder reads), from a center and per-side depths.

    Seed 000 Component 8's ladder loop and seed 004 Stage 6's tick-grid allocation, without the
    allocation itself (sizes come in per level, e.g. from quoting.sizing). With m the mid, c the
    center's offset from the mid in bps, and level i = 0..levels-1 (0 = the touch):

        offset_i = level_spacing_bps (level_ratio^i - 1) / (level_ratio - 1)     (i spacing if ratio 1)
        bid_i = round_down(m (1 + (c - bid_depth - offset_i) 1e-4))
        ask_i = round_up  (m (1 + (c + ask_depth + offset_i) 1e-4))

    i.e. geometric spacing: the first gap is level_spacing_bps, each next gap x level_ratio (the
    same grid as quoting.epnl's: give both the same levels / level_spacing_bps / level_ratio so
    level i is the same quote in both). Depths are in bps of the **mid** (CONVENTIONS), measured
    from the center, which is the `center` price (e.g. quoting.reservation's reservation price),
    else `center_bps` (an offset from mid, e.g. r_bps), else the mid. Wire depths that are
    already from the mid (quoting.spread_decomposition) with no center.

    Hyperliquid's rules (flowmm.execution.hyperliquid_rules): prices on the grid of 5
    significant figures and MAX_DECIMALS - szDecimals decimals (6 perp, 8 spot), integer prices
    always valid; bids rounded **down** and asks **up** (rounding never improves a quote);
    sizes rounded down to szDecimals (the lot); a level with px x size < min_order_value ($10,
    MinTradeNtl) is left empty (NaN), so level i always means offset_i. A level that rounds onto
    or inside the level before it is pushed one tick out: bids strictly decrease, asks
    strictly increase.

    Post-only (`post_only: true`): every bid is at most the largest valid price strictly below
    the best ask, every ask at least the smallest valid price strictly above the best bid
    (`book`, source.book or source.bbo; level 0). Without a valid best price (book unwired, or
    that side empty) the mid stands in: bids strictly below the mid, asks strictly above it,
    which is post-only safe whatever the book. A clamped touch stays on the cap (it is not
    dropped) and the flags post_only_bid / post_only_ask say so. Crossed touches (bid_depth +
    ask_depth < 0, e.g. a reservation shift beyond the half spread) collapse both onto their
    midpoint before rounding, so our bid stays strictly below our ask; this is continuous in
    the depths.

    Continuity: every step (round down/up, the caps, the one-tick push) is monotone in the raw
    price, so as the touch depths, center or mid vary continuously each quoted price moves by at
    most one tick at a time. A size moves by at most one lot at a time, except when a level
    crosses the $10 minimum, where it appears or vanishes with its whole size: at most the
    smallest $10 size on the lot grid, min_size_for_value(px) < 10/px + lot.

    Fallbacks. mid NaN, inf or <= 0 withholds the quotes: the ladder is emitted once all NaN
    (the execution layer cancels) and not again until a valid mid. bid_depth / ask_depth: a
    finite value is used; NaN before the input ever ticked (unwired, or its producer silent so
    far) means touch_bps; NaN after it ticked means that side is not quoted. bid_sizes /
    ask_sizes (vec, entry i = level i; entries beyond the vec or NaN or <= 0 = no order): until
    the vec ever ticked, every level has `size` (null = no quotes on that side until sizes
    arrive). center / center_bps NaN = the mid.

    Outputs: ladder (16 levels; NaN price = no level); bid_touch_bps / ask_touch_bps, the
    distance of the quoted touch from the mid after rounding and post-only (NaN = no touch
    order); post_only_bid / post_only_ask (1 = that touch sat on its post-only cap);
    center_used_bps (the center used, bps from mid). All emitted on every run with a valid mid.
    Cycle-triggered."""

    type_name = "quoting.ladder"

    class Params(NodeParams):
        levels: int = Field(6, ge=1, le=LADDER_LEVELS, description="levels per side (legacy: 6)")
        level_spacing_bps: float = Field(
            2.0, ge=0, le=5000, description="gap between the touch and level 1, bps (below a tick: pushed)"
        )
        level_ratio: float = Field(
            1.0, gt=0, le=10, description="each next gap = previous gap x this (1 = linear, geometric > 1)"
        )
        touch_bps: float | None = Field(
            5.0, description="touch depth while bid_depth / ask_depth never ticked, bps (null = no side)"
        )
        size: float | None = Field(
            1.0,
            gt=0,
            description="contracts per level while bid_sizes / ask_sizes never ticked (null = none)",
        )
        sz_decimals: int = Field(
            2, ge=0, le=SPOT_MAX_DECIMALS, description="the asset's szDecimals (meta): HYPE 2, BTC 5"
        )
        is_perp: bool = Field(True, description="perp (6 max price decimals) or spot (8)")
        min_order_value: float = Field(
            10.0, ge=0, description="levels with px x size below this (USDC) are dropped; Hyperliquid: $10"
        )
        post_only: bool = Field(
            True, description="never cross the opposite best (the mid when there is no book)"
        )

        @model_validator(mode="after")
        def _sz_decimals_fit(self):
            top = PERP_MAX_DECIMALS if self.is_perp else SPOT_MAX_DECIMALS
            if self.sz_decimals > top:
                kind = "perp" if self.is_perp else "spot"
                raise ValueError(f"sz_decimals {self.sz_decimals} exceeds the {kind} maximum {top}")
            return self

    inputs = {
        "mid": In("f64", doc="the mid (source.mid); depths are bps of it"),
        "center": In("f64", optional=True, doc="center price (quoting.reservation's price); unwired = mid"),
        "center_bps": In("f64", optional=True, doc="center offset from mid, bps (r_bps), if no center"),
        "bid_depth": In("f64", optional=True, doc="bid touch depth below the center, bps"),
        "ask_depth": In("f64", optional=True, doc="ask touch depth above the center, bps"),
        "bid_sizes": In("vec", optional=True, doc="bid size per level, contracts (quoting.sizing)"),
        "ask_sizes": In("vec", optional=True, doc="ask size per level, contracts (quoting.sizing)"),
        "book": In("book", optional=True, doc="source.book or source.bbo: best prices for post-only"),
    }
    outputs = {
        "ladder": Out("ladder", doc="desired quotes; all NaN = quotes withheld"),
        "bid_touch_bps": Out("f64", doc="quoted bid touch below the mid, bps (after rounding)"),
        "ask_touch_bps": Out("f64", doc="quoted ask touch above the mid, bps (after rounding)"),
        "post_only_bid": Out("f64", doc="1 when the bid touch sits on its post-only cap"),
        "post_only_ask": Out("f64", doc="1 when the ask touch sits on its post-only cap"),
        "center_used_bps": Out(
            "f64", doc="the center used, bps from the mid (after a crossed-touch collapse)"
        ),
    }
    kernel = ladder_kernel

    def init_state(self):
        return (np.zeros(5),)  # see S_*


EMIT = Ladder.EMIT  # the kernel's named emit bits (compile-time constants)
