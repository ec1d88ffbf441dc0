from numba import njit

from flowmm.core.node import In, Node, NodeParams, Out


@njit(cache=True)
def affine_kernel(now, dt, params, x, x_ticked, y):
    y[0] = params[0] * x[0] + params[1]
    return EMIT.ALL


class Affine(Node):
    """y = scale * x + offset.

    Plumbing for unit conversions and tests (the engine benchmarks chain it)."""

    type_name = "basic.affine"

    class Params(NodeParams):
        scale: float = 1.0
        offset: float = 0.0

    inputs = {"x": In("f64")}
    outputs = {"y": Out("f64")}
    kernel = affine_kernel


EMIT = Affine.EMIT  # the kernel's named emit bits (compile-time constants)
