"""A diagnostic test node that reads the synthetic market's ground truth (``source.truth``)."""

from numba import njit

from flowmm.core.node import In, Node, Out


@njit(cache=True)
def truth_mu_kernel(now, dt, params, truth, truth_ticked, mu):
    mu[0] = truth[0]
    return EMIT.ALL


class TruthMu(Node):
    """The latent drift mu of ``source.truth`` (bps/s), for plots and tests only.

    mu = truth[0]. A graph may wire it only with ``diagnostic: true``."""

    type_name = "testing.truth_mu"
    inputs = {"truth": In("vec")}
    outputs = {"mu": Out("f64")}
    kernel = truth_mu_kernel


EMIT = TruthMu.EMIT  # the kernel's named emit bits (compile-time constants)
