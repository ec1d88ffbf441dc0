"""A test-only node (tests/data/graphs/touch_probe.yaml): one bid at the best bid and one ask
at the best ask of ``source.bbo``, so the order joins the touch queue instead of improving it."""

import numpy as np
from numba import njit
from pydantic import Field

from flowmm.core.node import In, Node, NodeParams, Out
from flowmm.core.ports import ASK_PX, BID_PX, LAD_ASK_PX, LAD_ASK_SZ, LAD_BID_PX, LAD_BID_SZ


@njit(cache=True)
def touch_probe_kernel(now, dt, params, bbo, bbo_ticked, ladder):
    if not bbo_ticked:
        return EMIT.NONE
    ladder[:, :] = np.nan
    bid, ask = bbo[0, BID_PX], bbo[0, ASK_PX]
    if bid > 0.0 and ask > bid and bid * params[0] >= 10.0:  # Hyperliquid's $10 minimum
        ladder[0, LAD_BID_PX] = bid
        ladder[0, LAD_BID_SZ] = params[0]
        ladder[0, LAD_ASK_PX] = ask
        ladder[0, LAD_ASK_SZ] = params[0]
    return EMIT.LADDER


class TouchProbe(Node):
    """Quotes ``size`` at the best bid and the best ask (one level a side), re-stated at every
    bbo change; the execution layer keeps an order whose price is unchanged (its queue place)."""

    type_name = "probe.touch"

    class Params(NodeParams):
        size: float = Field(0.5, gt=0, description="contracts a side (a lot multiple)")

    inputs = {"bbo": In("book", doc="source.bbo")}
    outputs = {"ladder": Out("ladder", doc="one level a side at the touch")}
    kernel = touch_probe_kernel


EMIT = TouchProbe.EMIT
