import math

from flowmm.testing import NodeHarness


def test_affine_maps_and_propagates_nan():
    h = NodeHarness("basic.affine", {"scale": -2.0, "offset": 0.5})
    out = h.step(0, x=3.0)
    assert out["y"] == -5.5 and out.emitted == {"y"}
    assert math.isnan(h.step(1, x=math.nan)["y"])
