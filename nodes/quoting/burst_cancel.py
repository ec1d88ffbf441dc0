import numpy as np
from numba import njit
from pydantic import Field

from flowmm.core.node import In, Node, NodeParams, Out
from flowmm.core.ports import TR_SIDE


@njit(cache=True)
def burst_cancel_kernel(now, dt, params, times, trades_t, trades_r, trades_start, trades_end, cancel):
    n_trades = int(params[0])
    window_ns = params[1] * 1e9
    cooldown_ns = params[2] * 1e9
    cap = trades_t.shape[0]
    fired = EMIT.NONE
    for i in range(trades_start, trades_end):
        row = i % cap
        side = trades_r[row, TR_SIDE]
        k = 0 if side > 0 else 1
        # times[k, 0] = write position; times[k, 1:] = last n_trades times of that side
        pos = int(times[k, 0])
        times[k, 1 + pos] = trades_t[row]
        pos = (pos + 1) % n_trades
        times[k, 0] = pos
        oldest = times[k, 1 + pos]  # after the write, the slot to be overwritten next
        if oldest == oldest and trades_t[row] - oldest <= window_ns:
            if (
                trades_t[row] - times[k, n_trades + 1] >= cooldown_ns
                or times[k, n_trades + 1] != times[k, n_trades + 1]
            ):
                times[k, n_trades + 1] = trades_t[row]
                # sellers sweeping the bids -> cancel our bids (+1); buyers -> our asks (-1)
                cancel[0] = -1.0 if k == 0 else 1.0
                fired = EMIT.ALL
    return fired


class BurstCancel(Node):
    """Emergency cancel on a same-side trade burst (seed 004, Stage 6, simplified).

    Fires when ``n_trades`` aggressor trades of one side arrive within ``window_s``:
    sellers (side -1) hitting the bids -> cancel our bids (output +1); buyers -> cancel
    our asks (-1). At most one firing per side per ``cooldown_s``. Event-triggered, and
    meant for ``execution.cancel``: the engine acts on it between quote cycles."""

    type_name = "quoting.burst_cancel"
    trigger = "event"

    class Params(NodeParams):
        n_trades: int = Field(5, ge=2, le=256, description="trades of one side that make a burst")
        window_s: float = Field(1.0, gt=0, description="the burst's maximum duration")
        cooldown_s: float = Field(5.0, ge=0, description="minimum time between firings per side")

    inputs = {"trades": In("trades")}
    outputs = {"cancel": Out("f64")}
    kernel = burst_cancel_kernel

    def init_state(self):
        n = self.params.n_trades
        st = np.full((2, n + 2), np.nan)
        st[:, 0] = 0.0
        return (st,)


EMIT = BurstCancel.EMIT  # the kernel's named emit bits (compile-time constants)
