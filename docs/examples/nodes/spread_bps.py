"""An example user node (docs/writing-a-node.md): the top-of-book spread in bps and its EW mean."""

import numpy as np
from numba import njit
from pydantic import Field

from flowmm.core.node import In, Node, NodeParams, Out
from flowmm.core.ports import ASK_PX, BID_PX


@njit(cache=True)
def spread_bps_kernel(now, dt, params, state, book, book_ticked, spread_bps, mean_bps):
    half_life_s = params[0]
    bid = book[0, BID_PX]
    ask = book[0, ASK_PX]
    if not (bid > 0.0 and ask > bid):  # a missing side (NaN) or a crossed book: no value
        return EMIT.NONE
    s = (ask - bid) / (0.5 * (ask + bid)) * 1e4
    spread_bps[0] = s
    if state[0] == 0.0:  # the first spread seeds the mean
        state[0] = 1.0
        mean_bps[0] = s
    else:
        w = 1.0 - np.exp(-np.log(2.0) * dt / half_life_s)
        mean_bps[0] += w * (s - mean_bps[0])
    return EMIT.SPREAD_BPS | EMIT.MEAN_BPS  # both outputs emitted (EMIT.ALL says the same)


class SpreadBps(Node):
    """Top-of-book spread in bps of mid, and its time-weighted EW mean.

    s = (ask_1 - bid_1) / mid * 1e4,  mid = (ask_1 + bid_1) / 2;
    m_t = m_{t-1} + w (s_t - m_{t-1}),  w = 1 - 2^(-dt / half_life_s), dt the event time since
    the node last ran. A raw feature (seed 000, Component 7 lists the spread among the book
    features). The first spread seeds the mean; a one-sided or crossed book emits nothing and
    leaves both outputs at their last values."""

    type_name = "user.spread_bps"

    class Params(NodeParams):
        half_life_s: float = Field(10.0, gt=0, description="half-life of the mean, seconds")

    inputs = {"book": In("book", doc="L2 book; only level 0 is read")}
    outputs = {
        "spread_bps": Out("f64", doc="spread of the last book, bps of mid"),
        "mean_bps": Out("f64", doc="its EW mean, bps"),
    }
    tier, trigger = "hot", "cycle"
    kernel = spread_bps_kernel

    def init_state(self):
        return (np.zeros(1),)  # [seeded: 0/1]


EMIT = SpreadBps.EMIT  # named emit bits: EMIT.SPREAD_BPS = 1, EMIT.MEAN_BPS = 2, NONE, ALL
