import numpy as np
from numba import njit

from flowmm.core.node import In, Node, Out
from flowmm.core.ports import OBS_R, OBS_Z


@njit(cache=True)
def obs_fusion_kernel(now, dt, params, obs, obs_ticked, mean, var, n_used):
    precision = 0.0
    weighted = 0.0
    n = 0
    for k in range(obs.shape[0]):
        if not obs_ticked[k]:
            continue  # each observation counts once, in the step it ticked
        z = obs[k, OBS_Z]
        r = obs[k, OBS_R]
        if z != z or not (r > 0.0) or r == np.inf:
            continue
        precision += 1.0 / r
        weighted += z / r
        n += 1
    n_used[0] = n
    if n == 0:
        return EMIT.N_USED
    mean[0] = weighted / precision
    var[0] = 1.0 / precision
    return EMIT.ALL


class ObsFusion(Node):
    """Precision-weighted combination of the drift observations that ticked in this step.

    mean = sum(z_i / R_i) / sum(1 / R_i),  var = 1 / sum(1 / R_i), over the inputs that
    ticked since the node last ran (a stale observation is not counted again). Observations
    with NaN z, R <= 0 or R = inf are skipped. It assumes independent noises, which
    features of one book are not (CONVENTIONS.md); the Kalman drift filter supersedes it."""

    type_name = "estimators.obs_fusion"
    inputs = {"obs": In("obs", variadic=True)}
    outputs = {"mean": Out("f64"), "var": Out("f64"), "n_used": Out("f64")}
    kernel = obs_fusion_kernel


EMIT = ObsFusion.EMIT  # the kernel's named emit bits (compile-time constants)
