import math

import numpy as np

from flowmm.testing import NodeHarness, run_node

S = 1_000_000_000


def test_sigma_against_an_independent_computation():
    rng = np.random.default_rng(7)
    dts = rng.uniform(0.2, 3.0, 200)
    times = np.cumsum(np.r_[0.0, dts]) * S
    times = times.astype(np.int64)
    prices = 100.0 * np.exp(np.cumsum(np.r_[0.0, rng.normal(0, 2e-4, 200)]))
    res = run_node("estimators.ewma_vol", {"half_life_s": 30.0}, times=times, price=prices)
    # independent recursion on the same definition
    var = None
    for k in range(1, len(prices)):
        dt = (times[k] - times[k - 1]) / 1e9
        inst = (1e4 * math.log(prices[k] / prices[k - 1])) ** 2 / dt
        w = 1 - 2 ** (-dt / 30.0)
        var = inst if var is None else var + w * (inst - var)
    assert math.isclose(res["sigma"][-1], math.sqrt(var), rel_tol=1e-9)


def test_random_walk_recovers_its_volatility():
    rng = np.random.default_rng(1)
    sigma = 1.5  # bps per sqrt(s)
    n = 20_000
    times = (np.arange(n) * 0.5 * S).astype(np.int64)
    rets = rng.normal(0, sigma * math.sqrt(0.5), n) * 1e-4
    prices = 50.0 * np.exp(np.cumsum(rets))
    res = run_node("estimators.ewma_vol", {"half_life_s": 2000.0}, times=times, price=prices)
    assert abs(res["sigma"][-1] - sigma) / sigma < 0.05


def test_edge_cases_first_event_zero_dt_nan():
    h = NodeHarness("estimators.ewma_vol")
    assert h.step(0, price=100.0).emitted == set()
    assert h.step(0, price=100.2).emitted == set()  # zero dt
    assert h.step(S, price=math.nan).emitted == set()
    out = h.step(S, price=100.1)
    assert math.isclose(out["sigma"], abs(1e4 * math.log(100.1 / 100.0)))  # first return seeds
