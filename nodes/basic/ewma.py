import numpy as np
from numba import njit
from pydantic import Field

from flowmm.core.node import In, Node, NodeParams, Out


@njit(cache=True)
def ewma_kernel(now, dt, params, state, x, x_ticked, mean):
    half_life = params[0]
    v = x[0]
    if v != v:  # NaN input: keep the last mean
        return EMIT.NONE
    if state[0] == 0.0:  # first value seeds the mean
        mean[0] = v
        state[0] = 1.0
        return EMIT.ALL
    w = 1.0 - np.exp(-np.log(2.0) * dt / half_life)
    mean[0] += w * (v - mean[0])
    return EMIT.ALL


class Ewma(Node):
    """Time-aware exponentially weighted mean of an ``f64``.

    m_t = m_{t-1} + w (x_t - m_{t-1}),  w = 1 - 2^(-dt / half_life_s),
    dt the event time since this node last ran. The first value seeds the mean; a zero
    dt gives w = 0 (a same-time update carries no time to weight it by); NaN inputs are
    ignored."""

    type_name = "basic.ewma"

    class Params(NodeParams):
        half_life_s: float = Field(60.0, gt=0, description="half-life of the weights, seconds")

    inputs = {"x": In("f64")}
    outputs = {"mean": Out("f64")}
    kernel = ewma_kernel

    def init_state(self):
        return (np.zeros(1),)  # [seeded]


EMIT = Ewma.EMIT  # the kernel's named emit bits (compile-time constants)
