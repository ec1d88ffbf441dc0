import math

import numpy as np

from flowmm.testing import NodeHarness


def test_imbalance_and_observation():
    h = NodeHarness("features.trade_flow", {"alpha": 0.1, "sigma": 0.3})
    out = h.step(10, trades=[(1, 28.0, 3.0, 1, 1), (2, 28.0, 1.0, -1, 2), (3, 28.0, 1.0, 1, 3)])
    assert (out["buy_sz"], out["sell_sz"], out["count"]) == (4.0, 1.0, 3.0)
    assert math.isclose(out["imbalance"], 3.0 / 5.0)
    np.testing.assert_allclose(out["obs"], [0.1 * 0.6, 0.09 / 3])
    assert "obs" in out.emitted


def test_reads_only_new_trades_and_empty_batch_emits_no_observation():
    h = NodeHarness("features.trade_flow")
    h.step(10, trades=[(1, 28.0, 2.0, -1, 1)])
    out = h.step(20)  # nothing new
    assert out["count"] == 0.0 and out["imbalance"] == 0.0
    assert "obs" not in out.emitted
    out = h.step(30, trades=[(25, 28.0, 1.0, 1, 2)])
    assert out["count"] == 1.0 and out["imbalance"] == 1.0  # the old sell is not read again
