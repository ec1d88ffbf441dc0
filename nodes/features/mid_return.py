import numpy as np
from numba import njit

from flowmm.core.node import In, Node, Out


@njit(cache=True)
def mid_return_kernel(now, dt, params, state, price, price_ticked, ret_bps, rate_bps_s):
    p = price[0]
    if not (p > 0.0):  # NaN or non-positive: not a price
        return EMIT.NONE
    last = state[0]
    if last != last:  # first price: nothing to difference yet
        state[0] = p
        state[1] = now
        return EMIT.NONE
    elapsed = (now - state[1]) * 1e-9
    if elapsed <= 0.0:  # same timestamp: fold into the next interval
        return EMIT.NONE
    ret_bps[0] = np.log(p / last) * 1e4
    rate_bps_s[0] = ret_bps[0] / elapsed
    state[0] = p
    state[1] = now
    return EMIT.ALL


class MidReturn(Node):
    """Log return of a price between its updates, in bps, and its rate in bps/s.

    r = 1e4 * ln(p_t / p_{t-1});  rate = r / (t - t_{t-1}) in seconds.
    The first price only seeds; a zero elapsed time emits nothing (the move is folded
    into the next interval); NaN or non-positive prices are ignored."""

    type_name = "features.mid_return"
    inputs = {"price": In("f64")}
    outputs = {"ret_bps": Out("f64"), "rate_bps_s": Out("f64")}
    kernel = mid_return_kernel

    def init_state(self):
        return (np.array([np.nan, 0.0]),)  # [last price, its time ns]


EMIT = MidReturn.EMIT  # the kernel's named emit bits (compile-time constants)
