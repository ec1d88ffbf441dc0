import math

import numpy as np
import pytest
from flowmm.nodes.features.kurtosis import (
    F_M2,
    F_M4,
    F_MEAN,
    F_N,
    Kurtosis,
    kurtosis_kernel,
    moments_push,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from pydantic import ValidationError

from flowmm.testing import NodeHarness, allocations, example_args, run_node

S = 1_000_000_000
T0 = 1_700_000_000 * S


def numpy_kurt(x, unbiased=False):
    """Direct two-pass plug-in excess kurtosis (and the adjusted G2), independent of scipy."""
    x = np.asarray(x, float)
    n = len(x)
    d = x - x.mean()
    g2 = n * np.sum(d**4) / np.sum(d**2) ** 2 - 3.0
    if unbiased:
        return ((n + 1) * g2 + 6) * (n - 1) / ((n - 2) * (n - 3))
    return g2


def std_returns(times, prices):
    r = np.log(prices[1:] / prices[:-1]) * 1e4  # not diff(log p): log(1e7) would cost 10 digits
    return r / np.sqrt(np.diff(times) * 1e-9)


def fat_walk(n, seed, p0=30.0, dt_mean=1.0):
    rng = np.random.default_rng(seed)
    dts = np.maximum(1_000_000, (rng.exponential(dt_mean, n) * S).astype(np.int64))
    x = rng.standard_t(4, n) * np.sqrt(dts * 1e-9)  # fat tails, bps
    return T0 + np.cumsum(dts), p0 * np.exp(np.cumsum(x) * 1e-4)


def test_rolling_window_matches_scipy_and_numpy_at_every_step():
    stats = pytest.importorskip("scipy.stats")
    times, prices = fat_walk(700, seed=1, dt_mean=0.8)
    p = {"window": 100, "min_samples": 20, "kappa_tail": 0.3, "horizon_s": 0.0}
    res = run_node("features.kurtosis", p, times=times, price=prices)
    x = std_returns(times, prices)
    emitted = res.emitted["kurt"]
    assert not emitted[:20].any() and emitted[20:].all()  # step i holds samples 0..i-1
    for i in np.flatnonzero(emitted):
        win = x[max(0, i - 100) : i]
        want = stats.kurtosis(win, fisher=True, bias=True)
        assert res["kurt"][i] == pytest.approx(want, rel=1e-9, abs=1e-12)
        assert res["kurt"][i] == pytest.approx(numpy_kurt(win), rel=1e-9, abs=1e-12)
        assert res["as_factor"][i] == pytest.approx(1 + 0.3 * max(0.0, res["kurt"][i]), rel=1e-15)
    assert (res["kurt"][emitted] > 0).mean() > 0.5  # t(4) returns are fat-tailed


def test_unbiased_estimator_matches_scipy_bias_false():
    stats = pytest.importorskip("scipy.stats")
    times, prices = fat_walk(200, seed=2)
    res = run_node(
        "features.kurtosis", {"window": 50, "unbiased": True, "horizon_s": 0.0}, times=times, price=prices
    )
    x = std_returns(times, prices)
    for i in np.flatnonzero(res.emitted["kurt"]):
        win = x[max(0, i - 50) : i]
        want = stats.kurtosis(win, fisher=True, bias=False)
        assert res["kurt"][i] == pytest.approx(want, rel=1e-9)
        assert res["kurt"][i] == pytest.approx(numpy_kurt(win, unbiased=True), rel=1e-9)


def test_a_day_of_samples_at_a_large_price_with_a_tail_regime_change():
    # 86,400 one-second returns at a price of 1e7: a loud, fat-tailed morning (with a few
    # 2,000 bps jumps), then a quiet Gaussian afternoon; the last window must be exact
    n = 86_400
    rng = np.random.default_rng(11)
    r = np.where(np.arange(n) < n // 2, 30.0 * rng.standard_t(3, n), 0.2 * rng.normal(size=n))
    r[[1000, 20_000, n // 2 - 50]] = 2_000.0
    prices = 1e7 * np.exp(np.cumsum(r) * 1e-4)
    times = T0 + np.arange(n, dtype=np.int64) * S
    h = NodeHarness("features.kurtosis", {"window": 300, "horizon_s": 0.0})
    k = []
    for i, (t, p) in enumerate(zip(times, prices)):
        out = h.step(int(t), price=float(p))
        if i in (n // 2 - 1, n // 2 + 100, n - 1):
            k.append(out["kurt"])
    x = std_returns(times, prices)
    assert k[0] == pytest.approx(numpy_kurt(x[n // 2 - 301 : n // 2 - 1]), rel=1e-9)
    assert k[1] == pytest.approx(numpy_kurt(x[n // 2 - 200 : n // 2 + 100]), rel=1e-9)
    assert k[2] == pytest.approx(numpy_kurt(x[-300:]), rel=1e-9)
    assert abs(k[2]) < 1.5  # a Gaussian window: no leftover of the morning's tails


@njit
def _push_all(st, it, ring, xs, out):
    for i in range(xs.shape[0]):
        moments_push(st, it, ring, xs[i])
        n = st[F_N]
        out[i] = n * st[F_M4] / (st[F_M2] * st[F_M2]) - 3.0 if st[F_M2] > 0.0 else np.nan


def naive_kurt(x):
    """From raw power sums: what the centred updates avoid."""
    m = x.mean()
    e = [np.mean(x**k) for k in range(5)]
    m2 = e[2] - m * m
    return (e[4] - 4 * e[3] * m + 6 * e[2] * m * m - 3 * m**4) / (m2 * m2) - 3.0


def test_streaming_moments_survive_a_large_common_offset():
    # samples 1e5 + t(5): raw power sums lose every digit; the centred sums keep 1e-9
    rng = np.random.default_rng(4)
    xs = 1e5 + rng.standard_t(5, 50_000)
    window = 500
    node = Kurtosis(Kurtosis.Params(window=window))
    floats, ints, ring = node.init_state()
    out = np.empty(len(xs))
    _push_all(floats, ints, ring, xs, out)
    for i in (window - 1, 1234, 20_000, 33_333, len(xs) - 1):
        win = xs[max(0, i + 1 - window) : i + 1]
        assert out[i] == pytest.approx(numpy_kurt(win - 1e5), rel=1e-9)
        assert abs(naive_kurt(win) - out[i]) > 1.0  # the test would catch a naive implementation
    assert floats[F_MEAN] == pytest.approx(xs[-window:].mean(), rel=1e-14)


def test_standardises_returns_by_the_time_they_span():
    # the same 1 bps/sqrt(s) diffusion sampled at 1 s and 4 s: returns 1 and 2 bps, all of one
    # magnitude once divided by sqrt(dt) -> alternating signs give kurtosis -2 exactly
    h = NodeHarness("features.kurtosis", {"window": 4, "min_samples": 4, "horizon_s": 0.0})
    t, lp = T0, 0.0
    h.step(t, price=100.0)
    out = None
    for k, (dt, r) in enumerate([(1, 1.0), (4, -2.0), (1, 1.0), (4, -2.0)]):
        t += dt * S
        lp += r * 1e-4
        out = h.step(t, price=100.0 * math.exp(lp))
        assert ("kurt" in out.emitted) == (k == 3)
    assert out["kurt"] == pytest.approx(-2.0, rel=1e-9)
    assert out["as_factor"] == 1.0  # max(0, kurt) = 0


def test_horizon_aggregates_runs_into_returns_of_at_least_horizon_s():
    stats = pytest.importorskip("scipy.stats")
    # irregular runs (0.2-3 s apart) with 30 s gaps now and then; 10 s returns
    rng = np.random.default_rng(9)
    dts = rng.uniform(0.2, 3.0, 4000)
    dts[rng.random(4000) < 0.01] = 40.0
    times = T0 + np.cumsum((dts * S).astype(np.int64))
    prices = 25.0 * np.exp(np.cumsum(rng.standard_t(4, 4000) * np.sqrt(dts)) * 1e-4)
    p = {"window": 60, "min_samples": 10, "horizon_s": 10.0, "max_gap_s": 30.0}
    res = run_node("features.kurtosis", p, times=times, price=prices)
    samples, t0, p0, last = [], times[0], prices[0], times[0]  # the definition, directly
    for i in range(1, len(times)):
        gap, last = times[i] - last > 30 * S, times[i]
        if gap:
            t0, p0 = times[i], prices[i]
        elif times[i] - t0 >= 10 * S:
            samples.append(math.log(prices[i] / p0) * 1e4 / math.sqrt((times[i] - t0) / S))
            t0, p0 = times[i], prices[i]
            if len(samples) >= 10:
                want = stats.kurtosis(samples[-60:], fisher=True, bias=True)
                assert res.emitted["kurt"][i]
                assert res["kurt"][i] == pytest.approx(want, rel=1e-9)
                continue
        assert not res.emitted["kurt"][i]  # runs that close no sample emit nothing
    assert len(samples) > 200


def test_first_price_nan_zero_dt_and_gap():
    h = NodeHarness("features.kurtosis", {"window": 4, "min_samples": 4, "max_gap_s": 5.0, "horizon_s": 0.0})
    assert h.step(T0, price=10.0).emitted == set()
    for bad in (np.nan, -1.0, np.inf):
        assert h.step(T0 + S, price=bad).emitted == set()
    lp = [1.0, -1.0, 3.0, 0.0, 2.0]
    t = T0 + 2 * S
    h.step(t, price=10.0 * math.exp(lp[0] * 1e-4))  # sample 1 spans 2 s from the last good price
    assert h.step(t, price=99.0).emitted == set()  # same time: folded, not a sample
    for v in lp[1:3]:
        t += S
        assert h.step(t, price=10.0 * math.exp(v * 1e-4)).emitted == set()
    t += 60 * S  # a gap: not a sample, nothing emitted
    assert h.step(t, price=10.0 * math.exp(lp[3] * 1e-4)).emitted == set()
    t += S
    out = h.step(t, price=10.0 * math.exp(lp[4] * 1e-4))  # the 4th sample
    x = [1.0 / math.sqrt(2.0), -2.0, 4.0, 2.0]
    assert out.emitted == {"kurt", "as_factor"}
    assert out["kurt"] == pytest.approx(numpy_kurt(x), rel=1e-9)


def test_flat_price_is_undefined_and_keeps_the_last_value():
    times = T0 + np.arange(80, dtype=np.int64) * S
    prices = np.r_[30.0 * np.exp(np.cumsum(np.tile([1.0, -2.0, 1.5, 0.3], 10)) * 1e-4), np.full(40, 29.0)]
    res = run_node(
        "features.kurtosis", {"window": 20, "min_samples": 10, "horizon_s": 0.0}, times=times, price=prices
    )
    assert res.emitted["kurt"][10:41].all()
    # once the window holds only flat returns (steps 41-60 on step 60) nothing is emitted
    assert res.emitted["kurt"][59] and not res.emitted["kurt"][60:].any()
    assert res["kurt"][-1] == res["kurt"][59]


def test_factor_cap_and_kappa():
    times = T0 + np.arange(41, dtype=np.int64) * S
    steps = np.tile([0.1, -0.1], 20)
    steps[30] = 50.0  # one jump: a large kurtosis
    prices = 20.0 * np.exp(np.r_[0.0, np.cumsum(steps)] * 1e-4)
    p = {"window": 40, "min_samples": 10, "kappa_tail": 0.5, "horizon_s": 0.0}
    free = run_node("features.kurtosis", p, times=times, price=prices)
    capped = run_node("features.kurtosis", {**p, "max_factor": 3.0}, times=times, price=prices)
    assert free["kurt"][-1] > 25
    assert free["as_factor"][-1] == pytest.approx(1 + 0.5 * free["kurt"][-1], rel=1e-12)
    assert capped["as_factor"][-1] == 3.0 and capped["kurt"][-1] == free["kurt"][-1]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 3_000), st.floats(-50.0, 50.0)), min_size=8, max_size=80),
    st.integers(4, 12),
)
def test_property_matches_numpy_and_factor_at_least_one(steps, window):
    dts_ms, moves = zip(*steps)
    times = T0 + np.cumsum(np.array(dts_ms, np.int64) * 1_000_000)
    prices = 10.0 * np.exp(np.cumsum(moves) * 1e-4)
    p = {"window": window, "min_samples": 4, "max_gap_s": 2.0, "horizon_s": 0.0}
    res = run_node("features.kurtosis", p, times=times, price=prices)
    x = std_returns(times, prices)
    samples = []  # the window as the definition says: gaps are not samples
    for i in range(1, len(times)):
        if times[i] - times[i - 1] <= 2 * S:
            samples.append(x[i - 1])
            win = np.array(samples[-window:])
            d = win - win.mean()
            defined = len(win) >= 4 and np.sum(d**2) > 1e-20 * win.mean() ** 2 * len(win)
            if defined and np.sum(d**2) > 1e-9 * np.sum(win**2):  # away from the rounding edge
                assert res.emitted["kurt"][i]
                assert res["kurt"][i] == pytest.approx(numpy_kurt(win), rel=1e-9, abs=1e-9)
        else:
            assert not res.emitted["kurt"][i]
    assert np.all(res["as_factor"][res.emitted["as_factor"]] >= 1.0)
    assert np.all(res["kurt"][res.emitted["kurt"]] >= -2.0 - 1e-9)  # plug-in bound


def test_params_are_checked():
    with pytest.raises(ValidationError, match="exceeds window"):
        Kurtosis.Params(window=10, min_samples=20)
    with pytest.raises(ValidationError):
        Kurtosis.Params(max_factor=0.5)


@njit
def _drive(n, kernel, params, floats, ints, ring, price, kurt, factor):
    total = 0
    for k in range(n):
        price[0] = 100.0 + 0.01 * ((k * 7) % 11)
        total += kernel(
            np.int64(T0 + (k + 1) * S), 1.0, params, floats, ints, ring, price, True, kurt, factor
        )
    return total


def test_kernel_does_not_allocate():
    a = example_args(Kurtosis(Kurtosis.Params(window=16, min_samples=4, horizon_s=0.0)))
    args = (a[2], a[3], a[4], a[5], a[6], a[8], a[9])  # params, state x3, price, outputs x2
    _drive(1, kurtosis_kernel, *args)
    one = allocations(_drive, 1, kurtosis_kernel, *args)
    many = allocations(_drive, 500, kurtosis_kernel, *args)  # wraps the ring, resyncs
    assert many == one
