"""quoting.emergency_cancel: cancel the swept side at once on a burst of our own fills."""

from __future__ import annotations

import numpy as np
from numba import njit
from pydantic import Field

from flowmm.core.node import In, Node, NodeParams, Out
from flowmm.core.ports import FI_SIDE, FI_SZ

# packed params (Params field order)
P_N, P_WINDOW = range(2)
# cnt (int64 state) per side row: write position in the ring, fills held, firings so far
C_POS, C_HELD, C_FIRED = range(3)
MAX_BURST = 64  # n_fills upper bound (MAX_ORDERS: a ladder cannot fill more orders than it has)


@njit(cache=True)
def emergency_cancel_kernel(
    now, dt, params, ring, cnt, fills_t, fills_r, fills_start, fills_end, cancel, n_fired
):
    n = int(params[P_N])
    window_ns = params[P_WINDOW] * 1e9
    cap = fills_t.shape[0]
    fired_bid = False
    fired_ask = False
    for i in range(fills_start, fills_end):
        row = i % cap
        side = fills_r[row, FI_SIDE]
        sz = fills_r[row, FI_SZ]
        if not (sz > 0.0 and (side > 0.0 or side < 0.0)):
            continue  # malformed record (NaN side or size): not a fill of either side
        k = 0 if side > 0.0 else 1  # 0: our bid filled, 1: our ask filled
        t = fills_t[row]
        pos = cnt[k, C_POS]
        ring[k, pos] = t
        cnt[k, C_POS] = (pos + 1) % n
        if cnt[k, C_HELD] < n:
            cnt[k, C_HELD] += 1
        if cnt[k, C_HELD] == n:
            oldest = ring[k, cnt[k, C_POS]]  # after the write: the n-th newest fill of the side
            if t - oldest <= window_ns:
                cnt[k, C_HELD] = 0  # re-arm: the next firing needs n fresh fills
                cnt[k, C_FIRED] += 1
                if k == 0:
                    fired_bid = True
                else:
                    fired_ask = True
    if not (fired_bid or fired_ask):
        return EMIT.NONE
    # our bids swept (bid fills) -> cancel our bids (+1); asks -> -1; both in one step -> 0
    if fired_bid and fired_ask:
        cancel[0] = 0.0
    elif fired_bid:
        cancel[0] = 1.0
    else:
        cancel[0] = -1.0
    n_fired[0] = float(cnt[0, C_FIRED] + cnt[1, C_FIRED])
    return EMIT.ALL


class EmergencyCancel(Node):
    """Emergency cancel of the swept side on a burst of our own fills (seed 004 Stage 6, §7).

    Seed 004, Stage 6 "emergency cancel pathway" and §7 ``fill_processor``: "On burst detection
    (4+ same-side fills in 2s), immediately cancel all orders on the swept side via a direct
    path to the executor. Don't wait for the next quote cycle." Parameters from §8:
    burst_threshold = 4, max_burst_age = 2 s.

    Rule: a burst on a side is ``n_fills`` of OUR fills (``exec.fills``) of that side whose
    event times span at most ``window_s``: with t_1 <= ... <= t_n the side's n newest fills,
    fire when ``t_n - t_1 <= window_s`` (inclusive), evaluated at every fill record, so the
    firing happens in the very step that delivers the n-th fill. Every fill record counts
    (several levels filled by one sweeping print are several fills: that is the sweep).

    Output ``cancel`` (for ``execution: {cancel: <node>.cancel}``): +1 cancel our bids (our bid
    side was swept: fills with side +1, a seller hit us), -1 cancel our asks, 0 both (both
    sides burst in the same step). ``n_fired`` counts firings since start (for the trace).

    Event-triggered and hot: it runs in the event step of the batch that carries the fills,
    and the engine acts on a ticked ``execution.cancel`` right after that step
    (docs/scheduling.md "Interrupts"), between quote cycles. After firing, the side re-arms:
    its fill history is cleared, so the next firing needs ``n_fills`` fresh fills (a sweep
    that goes on, e.g. orders whose cancel is still in flight, fires again once it has
    filled ``n_fills`` more orders, not at every further fill).

    Edge cases: a fill record with NaN or non-positive size, or a side that is not +-1, is
    ignored. Unwired ``fills`` (a replay without a broker): the node never fires and the
    outputs stay NaN."""

    type_name = "quoting.emergency_cancel"
    tier = "hot"
    trigger = "event"

    class Params(NodeParams):
        n_fills: int = Field(
            4, ge=2, le=MAX_BURST, description="same-side own fills that make a burst (seed 004: 4)"
        )
        window_s: float = Field(
            2.0, gt=0, le=3600, description="the n fills' maximum time span, s (seed 004: 2 s)"
        )

    inputs = {"fills": In("fills", optional=True, doc="our fills (exec.fills)")}
    outputs = {
        "cancel": Out("f64", doc="interrupt: +1 cancel our bids, -1 our asks, 0 both"),
        "n_fired": Out("f64", doc="firings since start"),
    }
    kernel = emergency_cancel_kernel

    def init_state(self):
        n = self.params.n_fills
        return (np.zeros((2, n), np.int64), np.zeros((2, 3), np.int64))


EMIT = EmergencyCancel.EMIT  # the kernel's named emit bits (compile-time constants)
