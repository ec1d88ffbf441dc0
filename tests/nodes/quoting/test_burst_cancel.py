from flowmm.testing import NodeHarness

MS = 1_000_000


def sells(t0, n, gap_ms):
    return [(t0 + k * gap_ms * MS, 28.0, 1.0, -1, k) for k in range(n)]


def test_fires_on_n_same_side_trades_within_the_window():
    h = NodeHarness("quoting.burst_cancel", {"n_trades": 3, "window_s": 1.0, "cooldown_s": 5.0})
    assert h.step(0, trades=sells(0, 2, 100)).emitted == set()
    out = h.step(300 * MS, trades=sells(300 * MS, 1, 0))
    assert out.emitted == {"cancel"} and out["cancel"] == 1.0  # sellers: cancel our bids


def test_slow_trades_do_not_fire_and_buyers_cancel_asks():
    h = NodeHarness("quoting.burst_cancel", {"n_trades": 3, "window_s": 1.0})
    assert h.step(10_000 * MS, trades=sells(0, 5, 600)).emitted == set()  # 1.2 s for 3 trades
    buys = [(20_000 * MS + k * MS, 28.0, 1.0, 1, k) for k in range(3)]
    out = h.step(20_010 * MS, trades=buys)
    assert out["cancel"] == -1.0


def test_cooldown_limits_firing():
    h = NodeHarness("quoting.burst_cancel", {"n_trades": 2, "window_s": 1.0, "cooldown_s": 5.0})
    assert h.step(1, trades=sells(0, 2, 10)).emitted == {"cancel"}
    assert h.step(2, trades=sells(1000 * MS, 2, 10)).emitted == set()  # 1 s later: cooling down
    assert h.step(3, trades=sells(6000 * MS, 2, 10)).emitted == {"cancel"}
