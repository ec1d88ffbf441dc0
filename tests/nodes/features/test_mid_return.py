import math

from flowmm.testing import NodeHarness

S = 1_000_000_000


def test_return_in_bps_and_rate_per_second():
    h = NodeHarness("features.mid_return")
    first = h.step(0, price=100.0)
    assert first.emitted == set()  # the first price only seeds
    out = h.step(2 * S, price=100.5)
    r = 1e4 * math.log(100.5 / 100.0)
    assert out.emitted == {"ret_bps", "rate_bps_s"}
    assert math.isclose(out["ret_bps"], r) and math.isclose(out["rate_bps_s"], r / 2.0)


def test_zero_dt_folds_into_next_interval_and_bad_prices_are_ignored():
    h = NodeHarness("features.mid_return")
    h.step(0, price=100.0)
    assert h.step(0, price=101.0).emitted == set()  # same timestamp
    assert h.step(S, price=math.nan).emitted == set()
    assert h.step(S, price=-1.0).emitted == set()
    out = h.step(S, price=102.0)
    assert math.isclose(out["ret_bps"], 1e4 * math.log(1.02))  # measured from the seed at t=0
