import math

import numpy as np
import pytest
from flowmm.nodes.features.fill_size import FillSize, fill_size_kernel
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from pydantic import ValidationError

from flowmm.core.ports import TR_PX, TR_SIDE, TR_SZ
from flowmm.testing import NodeHarness, allocations, example_args

S = 1_000_000_000
T0 = 1_700_000_000 * S


def weighted(x, t, now, tau):
    """Weighted mean and (population) sd, weights exp(-(now - t)/tau), two passes."""
    w = np.exp(-(now - t) / S / tau)
    m = np.sum(w * x) / np.sum(w)
    return m, math.sqrt(np.sum(w * (x - m) ** 2) / np.sum(w)), np.sum(w)


def random_orders(rng, n):
    t = T0 + np.cumsum(rng.integers(1, 30, n)) * (S // 10)  # one order per timestamp
    side = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    size = np.round(np.exp(rng.normal(1.1, 1.3, n)), 2) + 0.01
    return t, side, size


def feed(h, t, side, size, steps, px=28.0):
    prev = -(2**62)
    outs = []
    for now in steps:
        m = (t > prev) & (t <= now)
        outs.append(
            h.step(
                int(now),
                trades=[(int(a), px, c, b, 0) for a, b, c in zip(t[m], side[m], size[m], strict=True)],
            )
        )
        prev = now
    return outs


@pytest.mark.parametrize("log_size", [True, False])
def test_moments_and_zscores_match_the_direct_computation(log_size):
    rng = np.random.default_rng(5)
    t, side, size = random_orders(rng, 1500)
    params = {
        "recent_s": 20.0,
        "baseline_s": 300.0,
        "log_size": log_size,
        "min_recent": 1.0,
        "min_baseline": 10.0,
    }
    params |= {"alpha": 0.1, "sigma": 0.7}
    h = NodeHarness("features.fill_size", params, capacity=4096)
    steps = np.unique(np.concatenate([t[::7], T0 + np.arange(1, int((t[-1] - T0) / S) + 2) * S]))
    x = np.log(size) if log_size else size
    f = np.exp if log_size else (lambda v: v)
    n_obs = 0
    for now, out in zip(steps, feed(h, t, side, size, steps), strict=True):
        z_sum, n_sum, defined = 0.0, 0.0, 0
        for s, name in ((1.0, "buy"), (-1.0, "sell")):
            m = (side == s) & (t <= now)
            if not m.any():
                continue
            mr, _, wr = weighted(x[m], t[m], now, 20.0)
            mb, sd, wb = weighted(x[m], t[m], now, 300.0)
            if wb >= 10.0:
                assert out[f"base_{name}"] == pytest.approx(f(mb), rel=1e-9)
                assert f"base_{name}" in out.emitted
            if wr >= 1.0:
                assert out[f"recent_{name}"] == pytest.approx(f(mr), rel=1e-9)
                if wb >= 10.0:
                    z = (mr - mb) / sd
                    assert out[f"zscore_{name}"] == pytest.approx(z, rel=1e-9, abs=1e-12)
                    z_sum += s * z
                    n_sum += wr
                    defined += 1
            else:
                assert f"zscore_{name}" not in out.emitted and f"recent_{name}" not in out.emitted
        if defined:
            n_obs += 1
            np.testing.assert_allclose(out["obs"], [0.1 * z_sum, 0.49 / n_sum], rtol=1e-9, atol=1e-12)
        else:
            assert "obs" not in out.emitted
    assert n_obs > 500


def test_moments_are_stable_on_a_large_offset():
    """Sizes 1e7 + U(0, 1): sum-of-squares variance would cancel to noise; centred updates keep
    the sd (and so the z-score) to the two-pass value."""
    rng = np.random.default_rng(9)
    n = 4000
    t = T0 + np.arange(1, n + 1) * (S // 4)
    side = np.ones(n)
    size = 1e7 + rng.random(n)
    params = {"recent_s": 5.0, "baseline_s": 600.0, "log_size": False, "min_baseline": 5.0}
    h = NodeHarness("features.fill_size", params, capacity=8192)
    out = feed(h, t, side, size, [int(t[-1])])[0]
    mr, _, _ = weighted(size, t, t[-1], 5.0)
    mb, sd, _ = weighted(size, t, t[-1], 600.0)
    assert sd == pytest.approx(math.sqrt(1 / 12), rel=0.05)
    assert out["zscore_buy"] == pytest.approx((mr - mb) / sd, rel=1e-6, abs=1e-6)


def test_an_order_is_its_prints_and_buy_sizes_growing_is_bullish():
    t = T0
    h = NodeHarness("features.fill_size", {"min_recent": 0.5, "min_baseline": 1.0, "log_size": False})
    out = h.step(
        t,
        trades=[
            (t, 28.001, 1.0, 1, 0),  # one buy order of 6 walking 3 levels
            (t, 28.002, 2.0, 1, 1),
            (t, 28.003, 3.0, 1, 2),
            (t, 28.001, 2.0, 1, 3),  # back at the touch: a second buy order of 2
            (t, 28.000, 4.0, -1, 4),  # a sell order of 4
        ],
    )
    assert out["recent_buy"] == pytest.approx(4.0) and out["base_buy"] == pytest.approx(4.0)
    assert out["recent_sell"] == pytest.approx(4.0)
    assert out["zscore_buy"] == pytest.approx(0.0, abs=1e-12)
    h2 = NodeHarness(
        "features.fill_size", {"min_recent": 0.5, "min_baseline": 1.0, "log_size": False, "per_print": True}
    )
    assert h2.step(t, trades=[(t, 28.001, 1.0, 1, 0), (t, 28.002, 2.0, 1, 1)])["recent_buy"] == pytest.approx(
        1.5
    )
    # bigger buys than usual: bullish; bigger sells: bearish
    rng = np.random.default_rng(1)
    times = T0 + np.arange(1, 801) * (S // 2)
    sides = np.where(rng.random(800) < 0.5, 1.0, -1.0)
    sizes = np.exp(rng.normal(1.0, 1.0, 800))
    for s, sign in ((1.0, 1.0), (-1.0, -1.0)):
        h = NodeHarness("features.fill_size", capacity=2048)
        big = sizes.copy()
        big[(times > times[-1] - 30 * S) & (sides == s)] *= 5.0
        out = feed(h, times, sides, big, [int(times[-1])])[0]
        assert sign * out["obs"][0] > 0.05


def test_edges_first_run_nan_prints_zero_dt_and_a_gap():
    params = {"recent_s": 5.0, "baseline_s": 100.0, "min_recent": 2.0, "min_baseline": 3.0}
    h = NodeHarness("features.fill_size", params)
    assert h.step(T0).emitted == set()  # nothing yet
    t = T0 + S
    bad = [
        (t, math.nan, 1.0, 1, 0),
        (t, 28.0, math.nan, 1, 1),
        (t, 28.0, 1.0, math.nan, 2),
        (t, 28.0, -2.0, 1, 3),
    ]
    assert h.step(t, trades=bad).emitted == set()
    for k in range(6):  # alternating buy sizes 1, 3
        tk = t + k * S
        out = h.step(tk, trades=[(tk, 28.0, 1.0 + 2.0 * (k % 2), 1, k)])
    assert {"zscore_buy", "recent_buy", "base_buy", "obs"} <= out.emitted
    assert "zscore_sell" not in out.emitted  # no sells at all
    same = h.step(t + 5 * S)  # zero dt: the same values
    assert same["zscore_buy"] == out["zscore_buy"] and same["obs"][1] == out["obs"][1]
    gap = h.step(t + 60 * S)  # a gap: the recent weight decayed below min_recent -> no value
    assert gap.emitted == {"base_buy"}
    assert gap["zscore_buy"] == out["zscore_buy"]  # left as it was


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_cuts=st.integers(0, 20))
def test_result_does_not_depend_on_when_the_node_runs(seed, n_cuts):
    rng = np.random.default_rng(seed)
    t, side, size = random_orders(rng, 120)
    end = int(t[-1])
    cuts = np.sort(rng.choice(t[:-1], size=min(n_cuts, len(t) - 1), replace=False)).tolist()
    params = {"min_recent": 0.1, "min_baseline": 1.0, "recent_s": 3.0, "baseline_s": 50.0}
    a = feed(NodeHarness("features.fill_size", params), t, side, size, [end])[0]
    b = feed(NodeHarness("features.fill_size", params), t, side, size, [*cuts, end])[-1]
    assert a.emitted == b.emitted
    for k in a.emitted:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-9, atol=1e-12)


def test_params_are_checked():
    with pytest.raises(ValidationError):
        FillSize.Params(recent_s=60.0, baseline_s=60.0)
    with pytest.raises(ValidationError):
        FillSize.Params(min_recent=0.0)


@njit
def _drive(n, params, fs, ts, tr_t, tr_r, clock, *outs):
    cap = tr_t.shape[0]
    total = 0
    for k in range(n):
        now = np.int64(k + 1) * 100_000_000
        for j in range(2):  # a buy and a sell order each step
            i = (2 * k + j) % cap
            tr_t[i] = now
            tr_r[i, TR_PX] = 28.0
            tr_r[i, TR_SZ] = 1.0 + (k % 5) + j
            tr_r[i, TR_SIDE] = 1.0 - 2.0 * j
        s, e = np.int64(2 * k), np.int64(2 * k + 2)
        total += fill_size_kernel(now, 0.1, params, fs, ts, tr_t, tr_r, s, e, clock, False, *outs)
    return total


def test_kernel_allocates_nothing_per_update():
    node = FillSize(FillSize.Params(min_recent=0.5, min_baseline=0.5))
    a = example_args(node, capacity=16)  # now, dt, params, 2 states, trades (4), clock (2), 7 outputs
    args = (a[2], a[3], a[4], a[5], a[6], a[9], *a[11:])
    assert _drive(10, *args) > 0
    assert allocations(_drive, 1, *args) == allocations(_drive, 400, *args)
