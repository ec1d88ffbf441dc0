import numpy as np
from numba import njit
from pydantic import Field

from flowmm.core.node import In, Node, NodeParams, Out


@njit(cache=True)
def ewma_vol_kernel(now, dt, params, state, price, price_ticked, sigma):
    half_life = params[0]
    p = price[0]
    if not (p > 0.0):
        return EMIT.NONE
    last = state[0]
    if last != last:
        state[0] = p
        state[1] = now
        return EMIT.NONE
    elapsed = (now - state[1]) * 1e-9
    if elapsed <= 0.0:
        return EMIT.NONE
    r = np.log(p / last) * 1e4
    inst = r * r / elapsed  # bps^2 per second
    w = 1.0 - np.exp(-np.log(2.0) * elapsed / half_life)
    if state[2] != state[2]:
        state[2] = inst
    else:
        state[2] += w * (inst - state[2])
    state[0] = p
    state[1] = now
    sigma[0] = np.sqrt(state[2])
    return EMIT.ALL


class EwmaVol(Node):
    """Exponentially weighted realised volatility sigma in bps per sqrt(second).

    sigma^2_t = sigma^2_{t-1} + w (r^2/dt - sigma^2_{t-1}),  r = 1e4 ln(p_t/p_{t-1}),
    w = 1 - 2^(-dt/half_life_s), dt the time between the two prices (seed 000, Component 5,
    "sigma online, ~300 s"). r^2/dt is the variance rate of one interval, so irregular
    sampling is weighted by the time each return spans. The first return seeds sigma^2;
    zero-dt updates are folded into the next interval."""

    type_name = "estimators.ewma_vol"

    class Params(NodeParams):
        half_life_s: float = Field(300.0, gt=0, description="half-life of the variance average, seconds")

    inputs = {"price": In("f64")}
    outputs = {"sigma": Out("f64")}
    kernel = ewma_vol_kernel

    def init_state(self):
        return (np.array([np.nan, 0.0, np.nan]),)  # [last price, its time ns, variance rate]


EMIT = EwmaVol.EMIT  # the kernel's named emit bits (compile-time constants)
