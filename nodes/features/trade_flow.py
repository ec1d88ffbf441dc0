from numba import njit
from pydantic import Field

from flowmm.core.node import In, Node, NodeParams, Out
from flowmm.core.ports import OBS_R, OBS_Z, TR_SIDE, TR_SZ


@njit(cache=True)
def trade_flow_kernel(
    now, dt, params, trades_t, trades_r, trades_start, trades_end, buy_sz, sell_sz, imbalance, count, obs
):
    alpha, sigma = params[0], params[1]
    cap = trades_t.shape[0]
    b = 0.0
    s = 0.0
    for i in range(trades_start, trades_end):
        row = i % cap
        sz = trades_r[row, TR_SZ]
        if sz != sz:
            continue
        if trades_r[row, TR_SIDE] > 0:
            b += sz
        else:
            s += sz
    n = trades_end - trades_start
    buy_sz[0] = b
    sell_sz[0] = s
    count[0] = n
    if b + s > 0.0:
        imbalance[0] = (b - s) / (b + s)
        obs[OBS_Z] = alpha * imbalance[0]
        obs[OBS_R] = sigma * sigma / max(1.0, n)
        return EMIT.ALL
    imbalance[0] = 0.0
    return EMIT.BUY_SZ | EMIT.SELL_SZ | EMIT.IMBALANCE | EMIT.COUNT


class TradeFlow(Node):
    """Aggressor volume and its imbalance over the trades since this node last ran.

    I = (V_buy - V_sell) / (V_buy + V_sell), V the summed size by aggressor side
    (CONVENTIONS: B = buyer lifted the ask). Observation of the drift (seed 000,
    Component 7 interface): z = alpha * I in bps/s, R = sigma^2 / max(1, n), n the trades
    read. With no volume the imbalance is 0 and no observation is emitted."""

    type_name = "features.trade_flow"

    class Params(NodeParams):
        alpha: float = Field(0.05, description="bps/s of drift per unit of imbalance")
        sigma: float = Field(0.2, gt=0, description="observation noise, bps/s")

    inputs = {"trades": In("trades")}
    outputs = {
        "buy_sz": Out("f64"),
        "sell_sz": Out("f64"),
        "imbalance": Out("f64"),
        "count": Out("f64"),
        "obs": Out("obs"),
    }
    kernel = trade_flow_kernel


EMIT = TradeFlow.EMIT  # the kernel's named emit bits (compile-time constants)
