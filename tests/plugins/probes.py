"""Probe nodes for engine tests, loaded as a user node folder (``--nodes tests/plugins``)."""

import numpy as np
from numba import njit

from flowmm.core.node import In, Node, Out
from flowmm.core.ports import TR_SZ


@njit(cache=True)
def tick_probe_kernel(now, dt, params, state, x, x_ticked, runs, ticks, last_dt, value):
    state[0] += 1.0
    if x_ticked:
        state[1] += 1.0
    runs[0] = state[0]
    ticks[0] = state[1]
    last_dt[0] = dt
    value[0] = x[0]
    return EMIT_TICKPROBE.ALL


class TickProbe(Node):
    """Counts its runs and the runs in which its input ticked; echoes dt and the input."""

    type_name = "probe.ticks"
    inputs = {"x": In("f64")}
    outputs = {"runs": Out("f64"), "ticks": Out("f64"), "last_dt": Out("f64"), "value": Out("f64")}
    kernel = tick_probe_kernel

    def init_state(self):
        return (np.zeros(2),)


EMIT_TICKPROBE = TickProbe.EMIT  # the kernel's named emit bits (compile-time constants)


@njit(cache=True)
def batch_probe_kernel(
    now,
    dt,
    params,
    state,
    trades_t,
    trades_r,
    trades_start,
    trades_end,
    y,
    y_ticked,
    n_last,
    n_total,
    vol,
    y_seen,
):
    n = trades_end - trades_start
    state[0] += n
    v = 0.0
    for i in range(trades_start, trades_end):
        v += trades_r[i % trades_t.shape[0], TR_SZ]
    state[1] += v
    n_last[0] = n
    n_total[0] = state[0]
    vol[0] = state[1]
    y_seen[0] = 1.0 if y_ticked else 0.0
    return EMIT_BATCHPROBE.ALL


class BatchProbe(Node):
    """Counts trade records read per run and in total (and their summed size); optional y."""

    type_name = "probe.batch"
    inputs = {"trades": In("trades"), "y": In("f64", optional=True)}
    outputs = {"n_last": Out("f64"), "n_total": Out("f64"), "vol": Out("f64"), "y_seen": Out("f64")}
    kernel = batch_probe_kernel

    def init_state(self):
        return (np.zeros(2),)


EMIT_BATCHPROBE = BatchProbe.EMIT  # the kernel's named emit bits (compile-time constants)
