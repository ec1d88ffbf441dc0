import math

from hypothesis import given
from hypothesis import strategies as st

from flowmm.testing import NodeHarness


def test_precision_weighted_mean_of_ticked_observations():
    h = NodeHarness("estimators.obs_fusion", variadic={"obs": 3})
    out = h.step(1, obs=[(1.0, 1.0), (4.0, 4.0), None])
    assert math.isclose(out["mean"], (1.0 + 1.0) / 1.25)  # (1/1 + 4/4) / (1 + 1/4)
    assert math.isclose(out["var"], 1 / 1.25) and out["n_used"] == 2
    out = h.step(2, obs=[None, None, (-2.0, 0.5)])  # stale ones are not counted again
    assert out["mean"] == -2.0 and out["var"] == 0.5 and out["n_used"] == 1


def test_bad_observations_are_skipped():
    h = NodeHarness("estimators.obs_fusion", variadic={"obs": 3})
    out = h.step(1, obs=[(math.nan, 1.0), (1.0, 0.0), (1.0, math.inf)])
    assert out["n_used"] == 0 and out.emitted == {"n_used"}


obs = st.tuples(st.floats(-100, 100), st.floats(1e-3, 1e3))


@given(st.lists(obs, min_size=1, max_size=8))
def test_fused_mean_lies_between_inputs_and_variance_below_each(items):
    h = NodeHarness("estimators.obs_fusion", variadic={"obs": len(items)})
    out = h.step(1, obs=items)
    zs = [z for z, _ in items]
    assert min(zs) - 1e-9 <= out["mean"] <= max(zs) + 1e-9
    assert out["var"] <= min(r for _, r in items) * (1 + 1e-12)
