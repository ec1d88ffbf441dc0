import math

import numpy as np
import pytest
from flowmm.nodes.features.vol_term import VolTerm, vol_term_kernel
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from pydantic import ValidationError

import flowmm
from flowmm.errors import GraphError
from flowmm.testing import NodeHarness, allocations, example_args, run_node

S = 1_000_000_000
T0 = 1_700_000_000 * S


def direct(times, prices, short=30.0, long=300.0, nu=0.5, base=None, cover=0.5, min_n=3, gap=30.0, cap=None):
    """Slow reference: every output at every step, from the definition (None = not emitted)."""
    samples = []  # (t0, t1, r^2)
    last_p = last_t = None
    rows = []
    for t, p in zip(times, prices):
        row = None
        if p > 0 and math.isfinite(p):
            if last_p is None:
                last_p, last_t = p, t
            elif t > last_t:
                r = math.log(p / last_p) * 1e4
                sample = t - last_t <= gap * S
                if sample:
                    samples.append((last_t, t, r * r))
                last_p, last_t = p, t
                if sample:
                    row = {}
                    kept = samples if cap is None else samples[-cap:]
                    for name, w in (("vol_short", short), ("vol_long", long)):
                        win = []
                        for s in reversed(kept):  # newest first; starts only decrease
                            if s[0] < t - w * S:
                                break
                            win.append(s)
                        span = sum(s[1] - s[0] for s in win) / S
                        if len(win) >= min_n and span >= cover * w:
                            row[name] = math.sqrt(sum(s[2] for s in win) / span)
                    if len(row) == 2 and row["vol_long"] > 0:
                        row["ratio"] = row["vol_short"] / row["vol_long"]
                        row["scale"] = max(1.0, row["ratio"] ** nu)
                        row["sigma_eff"] = (row["vol_long"] if base is None else base) * row["scale"]
        rows.append(row or {})
    return rows


def check(res, ref, rtol=1e-9):
    for port in ("vol_short", "vol_long", "ratio", "scale", "sigma_eff"):
        want = np.array([port in r for r in ref])
        np.testing.assert_array_equal(res.emitted[port], want, err_msg=port)
        got = res[port][want]
        exp = np.array([r[port] for r in ref if port in r])
        np.testing.assert_allclose(got, exp, rtol=rtol, atol=0, err_msg=port)


def walk(n, seed, dt_mean=1.0, sigma=1.0, p0=30.0):
    rng = np.random.default_rng(seed)
    dts = rng.exponential(dt_mean, n)
    times = T0 + np.cumsum(np.maximum(1, (dts * S).astype(np.int64)))
    rets = rng.normal(0, sigma * np.sqrt(dts)) * 1e-4
    return times, p0 * np.exp(np.cumsum(rets))


def test_irregular_samples_match_the_direct_windows():
    times, prices = walk(1500, seed=1, dt_mean=0.7)
    params = {"short_window_s": 20.0, "long_window_s": 120.0, "nu": 0.7, "min_samples": 5}
    res = run_node("features.vol_term", params, times=times, price=prices)
    ref = direct(times, prices, short=20.0, long=120.0, nu=0.7, min_n=5)
    check(res, ref)
    assert res.emitted["ratio"].sum() > 1000


def test_a_day_of_one_second_samples_at_a_large_price_with_a_vol_regime_change():
    # 86,400 samples at a price of 1e7: a loud first half (sigma 50) then a quiet one (0.5):
    # the running sums must not keep the rounding of the loud samples that left
    n = 86_400
    rng = np.random.default_rng(7)
    sig = np.where(np.arange(n) < n // 2, 50.0, 0.5)
    prices = 1e7 * np.exp(np.cumsum(rng.normal(0, sig) * 1e-4))
    times = T0 + np.arange(n, dtype=np.int64) * S
    h = NodeHarness("features.vol_term")
    for t, p in zip(times, prices):
        out = h.step(int(t), price=float(p))
    r = np.diff(np.log(prices)) * 1e4
    assert out["vol_short"] == pytest.approx(np.sqrt(np.mean(r[-30:] ** 2)), rel=1e-9)
    assert out["vol_long"] == pytest.approx(np.sqrt(np.mean(r[-300:] ** 2)), rel=1e-9)
    assert out["ratio"] == pytest.approx(out["vol_short"] / out["vol_long"], rel=1e-12)


def test_ratio_scale_and_fixed_baseline():
    # 60 s of calm (1 bps a second) then 30 s of 4 bps moves: vol_short 4, vol_long over
    # the last 90 s sqrt((60 * 1 + 30 * 16) / 90)
    n_calm, n_loud = 60, 30
    steps = np.r_[np.tile([1.0, -1.0], n_calm // 2), np.tile([4.0, -4.0], n_loud // 2)]
    prices = 100.0 * np.exp(np.r_[0.0, np.cumsum(steps)] * 1e-4)
    times = T0 + np.arange(len(prices), dtype=np.int64) * S
    p = {"long_window_s": 90.0, "nu": 0.5, "sigma_baseline": 0.8}
    res = run_node("features.vol_term", p, times=times, price=prices)
    vol_long = math.sqrt((60 + 30 * 16) / 90)
    assert res["vol_short"][-1] == pytest.approx(4.0, rel=1e-12)
    assert res["vol_long"][-1] == pytest.approx(vol_long, rel=1e-12)
    assert res["ratio"][-1] == pytest.approx(4.0 / vol_long, rel=1e-12)
    assert res["scale"][-1] == pytest.approx(math.sqrt(4.0 / vol_long), rel=1e-12)
    assert res["sigma_eff"][-1] == pytest.approx(0.8 * math.sqrt(4.0 / vol_long), rel=1e-12)
    # in the calm stretch (after the long window is half covered) the ratio is 1: scale 1
    calm = np.flatnonzero(res.emitted["ratio"][:61])
    assert len(calm) and np.allclose(res["ratio"][calm], 1.0) and np.allclose(res["scale"][calm], 1.0)


def test_scale_floors_at_one_and_baseline_defaults_to_the_long_vol():
    steps = np.r_[np.tile([4.0, -4.0], 60), np.tile([1.0, -1.0], 15)]  # vol falls: ratio < 1
    prices = 100.0 * np.exp(np.r_[0.0, np.cumsum(steps)] * 1e-4)
    times = T0 + np.arange(len(prices), dtype=np.int64) * S
    out = run_node("features.vol_term", {"long_window_s": 120.0}, times=times, price=prices)
    assert out["ratio"][-1] < 1.0
    assert out["scale"][-1] == 1.0
    assert out["sigma_eff"][-1] == out["vol_long"][-1]


def test_first_price_nan_inf_and_zero_dt():
    h = NodeHarness("features.vol_term", {"short_window_s": 2.0, "long_window_s": 4.0, "min_samples": 1})
    assert h.step(T0, price=100.0).emitted == set()  # seeds only
    for bad in (np.nan, np.inf, 0.0, -5.0):
        assert h.step(T0 + S, price=bad).emitted == set()
    out = h.step(T0 + 2 * S, price=100.01)  # one sample spanning 2 s from the last good price
    r = math.log(100.01 / 100.0) * 1e4
    assert out["vol_short"] == pytest.approx(abs(r) / math.sqrt(2.0), rel=1e-12)
    assert out.emitted == {"vol_short", "vol_long", "ratio", "scale", "sigma_eff"}
    assert h.step(T0 + 2 * S, price=100.03).emitted == set()  # same time: folded
    out = h.step(T0 + 3 * S, price=100.02)  # the sample spans 2 -> 3 s from 100.01
    r2 = math.log(100.02 / 100.01) * 1e4
    assert out["vol_short"] == pytest.approx(abs(r2), rel=1e-12)  # the first sample began 3 s ago
    assert out["vol_long"] == pytest.approx(math.sqrt((r * r + r2 * r2) / 3.0), rel=1e-12)


def test_gap_is_not_a_sample_and_the_windows_refill():
    p = {"short_window_s": 10.0, "long_window_s": 40.0, "max_gap_s": 5.0, "min_samples": 3}
    times = list(T0 + np.arange(41, dtype=np.int64) * S)  # 40 samples, 1 s apart
    times += list(times[-1] + 60 * S + np.arange(41, dtype=np.int64) * S)  # a 60 s gap, then 40 more
    rng = np.random.default_rng(3)
    prices = 50.0 * np.exp(np.cumsum(rng.normal(0, 1e-4, len(times))))
    res = run_node("features.vol_term", p, times=times, price=prices)
    check(res, direct(times, prices, short=10.0, long=40.0, gap=5.0))
    after = 41  # the step right after the gap: nothing, then the short window refills first
    assert not res.emitted["vol_short"][after]
    assert res.emitted["vol_short"][after + 5] and not res.emitted["vol_long"][after + 5]
    assert res.emitted["vol_long"][after + 20]


def test_flat_price_gives_zero_vol_and_no_ratio():
    times = T0 + np.arange(40, dtype=np.int64) * S
    res = run_node("features.vol_term", {"long_window_s": 35.0}, times=times, price=np.full(40, 28.0))
    assert res.emitted["vol_long"][-1] and res["vol_long"][-1] == 0.0 and res["vol_short"][-1] == 0.0
    assert not res.emitted["ratio"].any() and not res.emitted["sigma_eff"].any()


def test_spike_leaving_the_window_leaves_no_rounding():
    # one 5,000 bps move among 0.01 bps ones: when it leaves, the sums come back exact
    steps = np.full(200, 0.01)
    steps[10] = 5000.0
    prices = 20.0 * np.exp(np.r_[0.0, np.cumsum(steps * np.tile([1, -1], 100))] * 1e-4)
    times = T0 + np.arange(len(prices), dtype=np.int64) * S
    res = run_node("features.vol_term", {"long_window_s": 60.0}, times=times, price=prices)
    check(res, direct(times, prices, long=60.0), rtol=1e-9)


def test_full_ring_truncates_the_long_window():
    times, prices = walk(400, seed=5, dt_mean=0.2)
    p = {"short_window_s": 5.0, "long_window_s": 60.0, "capacity": 64, "min_coverage": 0.05}
    res = run_node("features.vol_term", p, times=times, price=prices)
    check(res, direct(times, prices, short=5.0, long=60.0, cover=0.05, cap=64))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 4_000), st.floats(-30.0, 30.0)), min_size=5, max_size=120),
    st.floats(0.5, 5.0),
)
def test_property_matches_direct_and_scale_at_least_one(steps, short):
    dts_ms, moves = zip(*steps)
    times = T0 + np.cumsum(np.array(dts_ms, np.int64) * 1_000_000)
    prices = 10.0 * np.exp(np.cumsum(moves) * 1e-4)
    p = {"short_window_s": short, "long_window_s": 3 * short, "max_gap_s": 3.0, "min_samples": 2}
    res = run_node("features.vol_term", p, times=times, price=prices)
    check(res, direct(times, prices, short=short, long=3 * short, gap=3.0, min_n=2))
    assert np.all(res["scale"][res.emitted["scale"]] >= 1.0)


def test_params_are_checked_with_a_location():
    with pytest.raises(ValidationError, match="must be longer"):
        VolTerm.Params(short_window_s=300, long_window_s=30)
    spec = {
        "name": "bad",
        "clock": {"quote_every_ms": 1000},
        "nodes": {"v": {"type": "features.vol_term", "in": {"price": "source.mid"}, "params": {"nu": 2}}},
    }
    with pytest.raises(GraphError) as exc:
        flowmm.load_graph(spec)
    assert "nu" in str(exc.value) and "v" in str(exc.value)


@njit
def _drive(n, kernel, params, floats, ints, r2s, t1s, dts, price, o1, o2, o3, o4, o5):
    total = 0
    for k in range(n):
        price[0] = 100.0 + 0.01 * (k % 7)
        now = np.int64(T0 + (k + 1) * S)
        total += kernel(now, 1.0, params, floats, ints, r2s, t1s, dts, price, True, o1, o2, o3, o4, o5)
    return total


def test_kernel_does_not_allocate():
    a = example_args(VolTerm(VolTerm.Params(capacity=64)))
    # a = [now, dt, params, floats, ints, r2s, t1s, dts, price, ticked, 5 outputs]
    args = (*a[2:9], *a[10:])
    _drive(1, vol_term_kernel, *args)
    one = allocations(_drive, 1, vol_term_kernel, *args)
    many = allocations(_drive, 500, vol_term_kernel, *args)  # wraps the ring, resyncs
    assert many == one
