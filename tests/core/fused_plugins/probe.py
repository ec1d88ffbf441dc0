"""Test-only nodes for tests/core/test_fused.py: the kernel-contract paths no built-in node
uses yet (batch outputs, unwired optional inputs, nodes with no wired input)."""

import numpy as np
from numba import njit

from flowmm.core.node import In, Node, Out, ring_append
from flowmm.core.ports import ACT_KIND, ACT_PX, ACT_SIDE, ACT_SZ


@njit(cache=True)
def emitter_kernel(now, dt, params, state, acts_t, acts_r, acts_count, runs, last_dt):
    state[0] += 1.0
    runs[0] = state[0]
    last_dt[0] = dt
    for _ in range(int(state[0]) % 3):  # 0, 1 or 2 records per run
        i = ring_append(acts_t, acts_r, acts_count, now)
        acts_r[i, ACT_KIND] = 1.0
        acts_r[i, ACT_SIDE] = 1.0 if int(state[0]) % 2 else -1.0
        acts_r[i, ACT_PX] = state[0]
        acts_r[i, ACT_SZ] = dt
    # every 4th run emits nothing; last_dt is written but never emitted (the bits the probe always had)
    return EMIT_EMITTER.RUNS if int(state[0]) % 4 else EMIT_EMITTER.NONE


class Emitter(Node):
    """Counts its runs and appends 0-2 action records per run (test-only)."""

    type_name = "fusedprobe.emitter"
    inputs = {}
    outputs = {"acts": Out("actions"), "runs": Out("f64"), "last_dt": Out("f64")}
    kernel = emitter_kernel

    def init_state(self):
        return (np.zeros(1),)


EMIT_EMITTER = Emitter.EMIT  # the kernel's named emit bits (compile-time constants)


@njit(cache=True)
def reader_kernel(
    now,
    dt,
    params,
    acts_t,
    acts_r,
    acts_start,
    acts_end,
    x,
    x_ticked,
    trades_t,
    trades_r,
    trades_start,
    trades_end,
    total,
    n_read,
    x_nan,
    tr_range,
):
    cap = acts_t.shape[0]
    s = 0.0
    for i in range(acts_start, acts_end):
        s += acts_r[i % cap, ACT_PX] * acts_r[i % cap, ACT_SIDE] + (acts_t[i % cap] % 1000) * 1e-3
    total[0] = s
    n_read[0] = acts_end - acts_start
    x_nan[0] = 1.0 if (x[0] != x[0] and not x_ticked) else 0.0
    tr_range[0] = trades_end - trades_start
    return EMIT_READER.ALL


class Reader(Node):
    """Reads an actions batch; its optional inputs are left unwired (test-only)."""

    type_name = "fusedprobe.reader"
    inputs = {
        "acts": In("actions"),
        "x": In("f64", optional=True),
        "trades": In("trades", optional=True),
    }
    outputs = {"total": Out("f64"), "n_read": Out("f64"), "x_nan": Out("f64"), "tr_range": Out("f64")}
    kernel = reader_kernel


EMIT_READER = Reader.EMIT  # the kernel's named emit bits (compile-time constants)
