"""Fusion readiness: every kernel compiles in nopython mode on arrays and scalars only."""

import numpy as np
import pytest
from numba.core import types

import flowmm
from flowmm.core.node import registry
from flowmm.testing import example_args

SCALARS = (types.Integer, types.Float, types.Boolean)


@pytest.mark.parametrize("type_name", sorted(registry()))
def test_kernel_compiles_nopython_on_arrays_and_scalars(type_name):
    cls = registry()[type_name]
    node = cls()
    args = example_args(node)
    assert all(isinstance(a, (np.ndarray, np.integer, float, bool)) for a in args)
    mask = cls.kernel(*args)
    assert isinstance(mask, int)  # the emitted bitmask
    sigs = cls.kernel.nopython_signatures
    assert sigs, "no nopython compilation"
    for sig in sigs:
        for t in sig.args:
            assert isinstance(t, (types.Array, *SCALARS)), f"{type_name}: argument type {t}"
        assert isinstance(sig.return_type, types.Integer)


def test_plan_holds_buffers_state_and_params_as_numpy_arrays(root):
    g = flowmm.load_graph(root / "graphs" / "demo.yaml")
    bufs = g.plan.allocate()
    for port, value in zip(g.plan.ports, bufs.values):
        arrays = value if port.batch else (value,)
        assert all(isinstance(a, np.ndarray) for a in arrays), port.address
    assert bufs.ver.dtype == np.int64 and bufs.seen.dtype == np.int64
    for n in g.plan.nodes:
        assert isinstance(n.params, np.ndarray) and n.params.dtype == np.float64
        assert all(isinstance(s, np.ndarray) for s in n.state)
        for vals, ticked in n.gather.values():
            assert isinstance(vals, np.ndarray) and ticked.dtype == np.bool_
