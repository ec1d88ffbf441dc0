import math

import numpy as np
import pytest
from flowmm.nodes.estimators.vol import Vol, vol_kernel, vol_regime
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from pydantic import ValidationError

from flowmm.core.ports import FI_PX
from flowmm.graph import load_graph
from flowmm.testing import NodeHarness, allocations, example_args

S = 1_000_000_000
T0 = 1_700_000_000 * S


def fill(t, px=28.0, side=1.0):
    return (int(t), px, 1.0, side, 1.0, 0.0, 1.0, px)


def direct(now, samples, fills, t_start, p):
    """Closed-form sums over every sample (t, r bps, dt s) and fill time, as the docstring states."""
    a0, s0 = p["prior_alpha"], p["sigma_prior"]
    b0 = (a0 - 1) * s0 * s0
    alpha, beta, num, den = a0, b0, 0.0, 0.0
    for t, r, d in samples:
        wf = 2.0 ** (-(now - t) / S / p["forget_half_life_s"])
        ws = 2.0 ** (-(now - t) / S / p["sigma_half_life_s"])
        alpha += 0.5 * wf
        beta += 0.5 * wf * r * r / d
        num += ws * r * r
        den += ws * d
    tw, tl = p["fill_window_s"], p["fill_rate_tau_s"]
    ages = np.maximum(0.0, (now - np.asarray(fills, np.int64)) / S) if fills else np.zeros(0)
    cs = np.sum(np.exp(-ages / tw))
    cl = np.sum(np.exp(-ages / tl))
    span = (now - t_start) / S
    rate = (p["fill_rate_prior"] * p["fill_rate_prior_s"] + cl) / (
        p["fill_rate_prior_s"] + tl * (1 - math.exp(-span / tl))
    )
    adj = min(max(cs / (rate * tw), 1.0), p["fill_adj_cap"])
    sigma = math.sqrt(num / den) if den > 0 else math.nan
    return sigma, alpha, beta, adj, math.sqrt(adj * beta / (alpha - 1))


PARAMS = {
    "sigma_half_life_s": 40.0,
    "sample_s": 0.0,
    "max_gap_s": 1e6,
    "sigma_prior": 0.8,
    "prior_alpha": 2.5,
    "forget_half_life_s": 25.0,
    "fill_window_s": 3.0,
    "fill_rate_prior": 0.1,
    "fill_rate_prior_s": 50.0,
    "fill_rate_tau_s": 200.0,
    "fill_adj_cap": 50.0,
}


def test_outputs_equal_the_closed_form_sums_on_irregular_prices_and_fills():
    rng = np.random.default_rng(5)
    n = 400
    times = T0 + np.cumsum(rng.exponential(0.8, n) * S).astype(np.int64)
    prices = 28.0 * np.exp(np.cumsum(rng.normal(0, 1e-4, n)))
    fill_times = np.sort(rng.choice(times, 60) - rng.integers(0, S // 2, 60))
    p = {**Vol.Params().model_dump(), **PARAMS}
    h = NodeHarness("estimators.vol", PARAMS)
    samples, seen, prev = [], [], None
    checked = 0
    for k, now in enumerate(times):
        new = [f for f in fill_times if (k == 0 or f > times[k - 1]) and f <= now]
        seen += new
        out = h.step(int(now), price=prices[k], fills=[fill(f) for f in new])
        if prev is not None:
            samples.append((now, 1e4 * math.log(prices[k] / prev[1]), (now - prev[0]) / S))
        prev = (now, prices[k])
        sigma, alpha, beta, adj, post = direct(now, samples, seen, times[0], p)
        assert out["alpha"] == pytest.approx(alpha, rel=1e-9)
        assert out["beta"] == pytest.approx(beta, rel=1e-9)
        assert out["fill_adj"] == pytest.approx(adj, rel=1e-9)
        assert out["sigma_post"] == pytest.approx(post, rel=1e-9)
        if k:
            assert out["sigma"] == pytest.approx(sigma, rel=1e-9)
            assert out.emitted == {"sigma", "sigma_post", "alpha", "beta", "fill_adj", "regime"}
            checked += adj > 1.0
    assert checked > 20  # the fill adjustment was exercised


def test_sample_s_folds_moves_into_the_next_sample():
    """Prices every 0.3 s, sample_s 1: a sample at the first run >= 1 s after the last one."""
    times = T0 + np.arange(40) * 300_000_000
    prices = 28.0 * (1 + 1e-4 * np.sin(np.arange(40)))
    params = {**PARAMS, "sample_s": 1.0}
    h = NodeHarness("estimators.vol", params)
    p = {**Vol.Params().model_dump(), **params}
    samples, ref = [], (times[0], prices[0])
    for k, now in enumerate(times):
        out = h.step(int(now), price=prices[k])
        if (now - ref[0]) >= S:
            samples.append((now, 1e4 * math.log(prices[k] / ref[1]), (now - ref[0]) / S))
            ref = (now, prices[k])
            assert "sigma" in out.emitted
        elif k:
            assert "sigma" not in out.emitted
    sigma, alpha, beta, _, _ = direct(times[-1], samples, [], times[0], p)
    assert len(samples) == 9
    assert (out["sigma"], out["alpha"], out["beta"]) == pytest.approx((sigma, alpha, beta), rel=1e-9)


@pytest.mark.parametrize("regular", [True, False])
def test_recovers_a_known_sigma_of_a_gbm(regular):
    """GBM, sigma 1.5 bps/sqrt(s), 3 hours: regular 1-s or Poisson (mean 0.5 s) sampling."""
    rng = np.random.default_rng(2 if regular else 3)
    sig = 1.5
    n = 12_000 if regular else 20_000
    dts = np.full(n, 1.0) if regular else rng.exponential(0.5, n)
    times = T0 + np.cumsum(dts * S).astype(np.int64)
    steps = np.diff(times, prepend=T0) / S
    prices = 28.0 * np.exp(np.cumsum(rng.normal(0, sig * np.sqrt(steps))) * 1e-4)
    h = NodeHarness("estimators.vol", {"sample_s": 0.0})
    ew, post = [], []
    for k in range(n):
        out = h.step(int(times[k]), price=prices[k])
        if k > 1000:
            ew.append(out["sigma"])
            post.append(out["sigma_post"] ** 2)
    assert np.mean(ew) == pytest.approx(sig, rel=0.03)
    assert math.sqrt(np.mean(post)) == pytest.approx(sig, rel=0.05)  # the prior shrinks it ~2 %
    assert out["regime"] == 2.0  # 1.5 / 0.6 = 2.5 > 1.5 (1 + 0.1)


def test_forgetting_tracks_a_vol_step_a_non_forgetting_posterior_does_not():
    rng = np.random.default_rng(8)
    n = 1500
    sig = np.where(np.arange(n) < 600, 0.6, 1.8)
    prices = 28.0 * np.exp(np.cumsum(rng.normal(0, sig)) * 1e-4)
    times = T0 + np.arange(n) * S
    res = {}
    for hl in (60.0, 1e9):
        h = NodeHarness("estimators.vol", {"forget_half_life_s": hl})
        rows = [h.step(int(t), price=px) for t, px in zip(times, prices, strict=True)]
        res[hl] = np.array([r["sigma_post"] for r in rows]), np.array([r["regime"] for r in rows])
    post, reg = res[60.0]
    assert np.mean(post[300:600]) == pytest.approx(0.6, rel=0.08)
    assert np.mean(post[1000:1500]) == pytest.approx(1.8, rel=0.08)
    assert (reg[1000:] == 2.0).all() and (reg[300:600] == 1.0).mean() > 0.9
    # without forgetting the posterior is the session mean: still far below 1.8 at the end
    session = math.sqrt((600 * 0.36 + 900 * 3.24) / 1500)
    assert res[1e9][0][-1] == pytest.approx(session, rel=0.08) and res[1e9][0][-1] < 1.5


def test_forgetting_rate_over_a_gap_is_the_documented_half_life():
    h = NodeHarness("estimators.vol", {"forget_half_life_s": 40.0, "max_gap_s": 10.0})
    t = T0
    for k in range(30):
        out = h.step(t + k * S, price=28.0 * (1 + 2e-4 * (k % 3)))
    a0, b0 = 3.0, 2.0 * 0.36
    before = out
    after = h.step(t + 29 * S + 40 * S, price=28.5)  # the return over the gap is not a sample
    assert after["alpha"] - a0 == pytest.approx(0.5 * (before["alpha"] - a0), rel=1e-12)
    assert after["beta"] - b0 == pytest.approx(0.5 * (before["beta"] - b0), rel=1e-12)
    assert after["sigma"] == pytest.approx(before["sigma"], rel=1e-12)  # the EW ratio is unchanged
    assert "sigma" not in after.emitted
    late = h.step(t + 10 * 3600 * S)
    assert (late["alpha"], late["beta"], late["sigma_post"]) == pytest.approx((a0, b0, 0.6), rel=1e-9)


def test_fill_clustering_adjustment_by_hand():
    h = NodeHarness("estimators.vol", {"fill_adj_cap": 100.0})
    h.step(T0, price=28.0)
    out = h.step(T0 + 10 * S, fills=[fill(T0 + 10 * S)] * 6)  # a 6-fill sweep 10 s in
    w = 600 * (1 - math.exp(-10 / 600))
    rate = (0.05 * 120 + 6) / (120 + w)
    adj = 6 / (rate * 5)
    assert out["fill_adj"] == pytest.approx(adj, rel=1e-12)
    assert out["sigma_post"] == pytest.approx(math.sqrt(adj * out["beta"] / (out["alpha"] - 1)), rel=1e-12)
    out = h.step(T0 + 25 * S)  # 15 s later, no more fills
    w = 600 * (1 - math.exp(-25 / 600))
    rate = (0.05 * 120 + 6 * math.exp(-15 / 600)) / (120 + w)
    assert out["fill_adj"] == pytest.approx(max(1.0, 6 * math.exp(-3) / (rate * 5)), rel=1e-12)
    capped = NodeHarness("estimators.vol")  # default cap 4: sigma at most doubled
    capped.step(T0, price=28.0)
    out = capped.step(T0 + 10 * S, fills=[fill(T0 + 10 * S)] * 6)
    # the unchanged price over 10 s was a zero-return sample: alpha 3.5, beta 0.72
    assert out["fill_adj"] == 4.0 and out["sigma_post"] == pytest.approx(math.sqrt(4 * 0.72 / 2.5), rel=1e-12)
    assert out["regime"] == 2.0  # 1.79 x the prior vol: past 1.5 (1 + 0.1)


def test_regime_thresholds_and_hysteresis():
    low, high, h = 0.75, 1.5, 0.1
    nan = math.nan
    assert vol_regime(0.7, nan, low, high, h) == 0.0
    assert vol_regime(0.75, nan, low, high, h) == 1.0
    assert vol_regime(1.5, nan, low, high, h) == 1.0
    assert vol_regime(1.51, nan, low, high, h) == 2.0
    assert vol_regime(1.6, 1.0, low, high, h) == 1.0  # not past 1.5 x 1.1
    assert vol_regime(1.66, 1.0, low, high, h) == 2.0
    assert vol_regime(1.4, 2.0, low, high, h) == 2.0  # still above 1.5 / 1.1
    assert vol_regime(1.36, 2.0, low, high, h) == 1.0
    assert vol_regime(0.8, 0.0, low, high, h) == 0.0  # below 0.75 x 1.1
    assert vol_regime(0.83, 0.0, low, high, h) == 1.0
    assert vol_regime(0.7, 1.0, low, high, h) == 1.0  # not below 0.75 / 1.1
    assert vol_regime(0.68, 1.0, low, high, h) == 0.0
    assert vol_regime(3.0, 0.0, low, high, h) == 2.0 and vol_regime(0.1, 2.0, low, high, h) == 0.0
    assert vol_regime(nan, 2.0, low, high, h) == 2.0
    with pytest.raises(ValidationError):
        Vol.Params(low_ratio=1.4, high_ratio=1.5)  # no room for the hysteresis
    with pytest.raises(ValidationError):
        Vol.Params(prior_alpha=1.0)  # the prior mean of sigma^2 would not exist


def test_edges_first_price_zero_dt_bad_prices_and_fills():
    h = NodeHarness("estimators.vol")
    first = h.step(T0, price=28.0)
    assert math.isnan(first["sigma"]) and "sigma" not in first.emitted
    assert (first["sigma_post"], first["alpha"], first["beta"], first["regime"]) == (0.6, 3.0, 0.72, 1.0)
    assert h.step(T0, price=28.1)["alpha"] == 3.0  # zero dt: nothing added
    for bad in (math.nan, -1.0, 0.0, math.inf):
        out = h.step(T0 + S, price=bad)
        assert out["alpha"] == 3.0 and "sigma" not in out.emitted
    out = h.step(T0 + S, fills=[fill(T0 + S, px=math.nan)])  # the price value is still inf
    assert out["fill_adj"] == 1.0 and math.isnan(out["sigma"]) and out["alpha"] == 3.0
    out = h.step(T0 + 2 * S, price=28.0028)
    assert out["sigma"] == pytest.approx(abs(1e4 * math.log(28.0028 / 28.0)) / math.sqrt(2), rel=1e-12)
    out = h.step(T0 + 3 * S, fills=[fill(T0 + 9 * S)])  # stamped after now: counts undecayed
    fresh = NodeHarness("estimators.vol")
    fresh.step(T0)
    ref = fresh.step(T0 + 3 * S, fills=[fill(T0 + 3 * S)])
    assert out["fill_adj"] == pytest.approx(ref["fill_adj"], rel=1e-12) and out["fill_adj"] > 1.0
    late = h.step(T0 + 4 * S, fills=[], price=math.nan)  # an empty batch, no price: only decays
    assert late["alpha"] - 3.0 == pytest.approx((out["alpha"] - 3.0) * 2 ** (-1 / 60), rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 60),
    sample_s=st.floats(0.0, 3.0),
    cap=st.floats(1.0, 10.0),
)
def test_invariants_on_random_streams(seed, n, sample_s, cap):
    rng = np.random.default_rng(seed)
    h = NodeHarness("estimators.vol", {"sample_s": sample_s, "fill_adj_cap": cap})
    t = T0
    for _ in range(n):
        t += int(rng.choice([0, rng.exponential(2.0) * S, 100 * S], p=[0.1, 0.85, 0.05]))
        px = float(rng.choice([28.0 * math.exp(rng.normal(0, 1e-3)), math.nan, -1.0], p=[0.8, 0.1, 0.1]))
        nf = int(rng.integers(0, 4))
        out = h.step(t, price=px, fills=[fill(t - int(rng.integers(0, 2 * S)))] * nf)
        assert out["alpha"] >= 3.0 - 1e-12 and out["beta"] >= 0.72 * (1 - 1e-12)
        assert 1.0 <= out["fill_adj"] <= cap
        assert out["sigma_post"] > 0 and math.isfinite(out["sigma_post"])
        assert out["regime"] in (0.0, 1.0, 2.0)


def test_spike_on_the_synthetic_market_with_both_backends():
    from flowmm.sources.synthetic import Synthetic

    spec = {
        "name": "v",
        "instrument": {"coin": "HYPE"},
        "clock": {"quote_every_ms": 1000},
        "trace": ["source.truth", "v.sigma", "v.sigma_post", "v.regime"],
        "nodes": {"v": {"type": "estimators.vol", "in": {"price": "source.mid", "clock": "source.clock"}}},
    }
    g = load_graph(spec)
    py, fused = (
        g.run(Synthetic("vol_spike", seed=1, duration="10m"), backend=b).trace for b in ("python", "fused")
    )
    assert py.column_names == fused.column_names

    def col(tr, c):
        return np.asarray(tr.column(c).to_numpy(zero_copy_only=False), float)

    for c in py.column_names:
        assert np.array_equal(col(py, c), col(fused, c), equal_nan=True), c
    truth, post, reg = col(py, "source.truth.1"), col(py, "v.sigma_post"), col(py, "v.regime")
    quiet = slice(60, 300)
    spike = slice(420, 540)  # the volatile phase is 300-540 s; 2 forget half-lives in
    assert np.mean(post[quiet]) == pytest.approx(np.mean(truth[quiet]), rel=0.25)
    assert np.mean(post[spike]) > 2.0 * np.mean(post[quiet])
    assert (reg[spike] == 2.0).all() and (reg[quiet] < 2.0).all()


@njit
def _drive(n, params, fs, ts, price, fi_t, fi_r, clock, *outs):
    cap = fi_t.shape[0]
    total = 0
    for k in range(n):
        now = np.int64(k + 1) * 1_000_000_000
        price[0] = 28.0 + 0.001 * (k % 5)
        i = k % cap
        fi_t[i] = now
        fi_r[i, FI_PX] = 28.0
        total += vol_kernel(
            now,
            1.0,
            params,
            fs,
            ts,
            price,
            True,
            fi_t,
            fi_r,
            np.int64(k),
            np.int64(k + 1),
            clock,
            False,
            *outs,
        )
    return total


def test_kernel_allocates_nothing_per_update():
    a = example_args(Vol(), capacity=16)  # now, dt, params, 2 states, 2 price, 4 fills, 2 clock, 6 outs
    args = (a[2], a[3], a[4], a[5], a[7], a[8], a[11], *a[13:])
    assert _drive(3, *args) == 62 + 63 + 63  # the first run seeds the price: no sigma
    assert allocations(_drive, 1, *args) == allocations(_drive, 400, *args)
