"""quoting.legacy_margin: the legacy's margin split between bids and asks (38.5 / 58.9 at ratio 0.35)."""

from __future__ import annotations

from numba import njit
from pydantic import Field

from flowmm.core.node import In, Node, NodeParams, Out

# packed params (Params field order)
P_USABLE, P_SPLIT = range(2)


@njit(cache=True)
def margin_shares(ratio, split):
    """(bid share, ask share) of the usable margin: 1/2 (1 -+ split ratio), clipped to [0, 1]."""
    if not (ratio == ratio) or abs(ratio) == float("inf"):
        ratio = 0.0  # no inventory reading: even split
    b = min(max(0.5 * (1.0 - split * ratio), 0.0), 1.0)
    return b, 1.0 - b


@njit(cache=True)
def legacy_margin_kernel(
    now,
    dt,
    params,
    inventory_ratio,
    inventory_ratio_ticked,
    margin_bid,
    margin_ask,
    bid_size_scale,
    ask_size_scale,
):
    b, a = margin_shares(inventory_ratio[0], params[P_SPLIT])
    margin_bid[0] = params[P_USABLE] * b
    margin_ask[0] = params[P_USABLE] * a
    bid_size_scale[0] = 2.0 * b  # relative to the even split at q = 0: the flat ladder is unchanged
    ask_size_scale[0] = 2.0 * a
    return EMIT.ALL


class LegacyMargin(Node):
    """Legacy margin allocation: the inventory ratio splits the margin, and so the size, between sides.

    Seed 004, section 1 (the legacy at 00:52:37, long 4.87): "Margin allocation |
    inventory_ratio=0.35 | Split margin 38.5 bid / 58.9 ask", and Stage 5 ("the current margin
    allocation already has the right idea (inventory-driven split: 38.5 bid / 58.9 ask), but it
    doesn't go far enough"). With r the inventory ratio (quoting.legacy_pcm.inventory_ratio,
    q / 13.728):

        share_bid = clip(1/2 (1 - split r), 0, 1),   share_ask = 1 - share_bid
        margin_bid = usable_margin * share_bid,       margin_ask = usable_margin * share_ask
        bid_size_scale = 2 share_bid,                 ask_size_scale = 2 share_ask

    Fit to the one logged point: 38.5 + 58.9 = 97.4 (the usable margin, in the log's units:
    percent of the account, 2.6 % held back), and (58.9 - 38.5) / 97.4 = 0.2094 = split x r with
    r = 4.87 / 13.728 = 0.3548 (the ratio as quoting.legacy_pcm computes it; the log prints
    0.35), so split = 0.5904: long 4.87 gives 38.50 / 58.90. The legacy sized each side
    from its margin, so the size scales are the shares relative to the even split at q = 0: the
    flat ladder keeps its logged sizes and a long position shrinks the bids and grows the asks
    (0.79 / 1.21 at r = 0.355) - a slight asymmetry, which is what seed 004 criticises. The
    quoter applies them on top of the toxicity and zone multipliers (and under the red zone's
    reduce-only cap). A consistency check against seed 000 (not a fit): RC3's "total bid exposure
    went from ~5.66 to ~4.71" while bid_size_mult went 0.98 -> 0.89 is a 0.832 ratio, which the
    toxicity multiplier alone (0.908) does not reach; with the split between the logged positions
    0.74 and 2.12 (bid scale 0.968 -> 0.909) the two give 0.852.

    Edge cases: r NaN/inf or not wired -> an even split (scales 1); |split r| > 1 -> the whole
    margin to one side. Emitted on every run. Cycle-triggered, hot."""

    type_name = "quoting.legacy_margin"
    tier = "hot"
    trigger = "cycle"

    class Params(NodeParams):
        usable_margin: float = Field(
            97.4, gt=0, description="margin split between the sides (logged 38.5 + 58.9)"
        )
        split: float = Field(
            0.5904, ge=0, description="share shift per unit of inventory ratio (fit to 38.5/58.9)"
        )

    inputs = {
        "inventory_ratio": In("f64", optional=True, doc="q / capacity (quoting.legacy_pcm.inventory_ratio)")
    }
    outputs = {
        "margin_bid": Out("f64", doc="bid side's margin, in usable_margin's units"),
        "margin_ask": Out("f64", doc="ask side's margin"),
        "bid_size_scale": Out("f64", doc="bid sizes x this (1 at q = 0)"),
        "ask_size_scale": Out("f64", doc="ask sizes x this (1 at q = 0)"),
    }
    kernel = legacy_margin_kernel


EMIT = LegacyMargin.EMIT  # the kernel's named emit bits (compile-time constants)
