import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from flowmm.testing import NodeHarness, run_node

S = 1_000_000_000


def test_ewma_matches_hand_computed_weights():
    # half-life 1 s: w = 1 - 2^-dt
    res = run_node("basic.ewma", {"half_life_s": 1.0}, times=[0, S, 3 * S], x=[1.0, 3.0, 0.0])
    m1 = 1.0 + 0.5 * (3.0 - 1.0)  # dt = 1 s -> w = 0.5
    m2 = m1 + 0.75 * (0.0 - m1)  # dt = 2 s -> w = 0.75
    np.testing.assert_allclose(res["mean"], [1.0, m1, m2])
    assert res.emitted["mean"].all()


def test_ewma_first_value_seeds_zero_dt_keeps_and_nan_is_ignored():
    h = NodeHarness("basic.ewma", {"half_life_s": 10.0})
    assert h.step(5 * S, x=2.0)["mean"] == 2.0  # first event
    assert h.step(5 * S, x=100.0)["mean"] == 2.0  # zero dt: w = 0
    out = h.step(6 * S, x=math.nan)
    assert out["mean"] == 2.0 and out.emitted == set()


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=30), st.floats(0.01, 100.0))
def test_ewma_stays_within_the_range_of_its_inputs(xs, half_life):
    res = run_node("basic.ewma", {"half_life_s": half_life}, times=np.arange(len(xs)) * S, x=xs)
    assert np.all(res["mean"] >= min(xs) - 1e-6) and np.all(res["mean"] <= max(xs) + 1e-6)
