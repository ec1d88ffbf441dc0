import itertools
import math

import numpy as np
import pytest
from flowmm.nodes.estimators.regime_hmm import RegimeHmm, regime_hmm_kernel
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from pydantic import ValidationError
from scipy.linalg import expm
from scipy.special import logsumexp
from scipy.stats import norm

from flowmm.errors import GraphError
from flowmm.graph import load_graph
from flowmm.testing import NodeHarness, allocations, example_args

S = 1_000_000_000
T0 = 1_700_000_000 * S

# a deliberately asymmetric model: unequal rates (one of them 0), skewed prior
PARAMS = {
    "ret_mean_bps_s": (-0.3, 0.25, 0.0, 0.05),
    "ret_sd_bps_sqrt_s": (0.8, 0.7, 0.5, 2.0),
    "p_bid_fill": (0.8, 0.25, 0.5, 0.55),
    "fill_rate_per_s": (0.3, 0.2, 0.1, 0.6),
    "as_mean_bps": (5.0, 4.0, 0.0, 2.0),
    "as_sd_bps": (4.0, 5.0, 2.0, 9.0),
    "rates_per_s": (
        (0.0, 0.02, 0.05, 0.01),
        (0.03, 0.0, 0.04, 0.0),
        (0.01, 0.02, 0.0, 0.06),
        (0.05, 0.01, 0.02, 0.0),
    ),
    "prior": (0.1, 0.2, 0.3, 0.4),
    "as_horizon_s": 5.0,
}


def fill(t, side):
    return (t, 28.0, 1.0, side, 0, 0.0, 1.0, 28.0)


def markout(t, horizon, as_bps):
    return (t, 0, horizon, 1.0, 28.0, -as_bps, as_bps)


def mixed_stream(rng, n):
    """Steps (t_ns, mid or None, fill sides, markouts (horizon, AS)) with irregular dt, zero dt,
    a same-time mid, NaN / non-positive mids, odd fill sides and other markout horizons."""
    steps = []
    t = T0
    mid = 28.0
    for k in range(n):
        t += int(rng.choice([0, 1, 3, 7]) * rng.exponential(1.0) * S)
        if k == 4:
            t += 900 * S  # a long gap
        u = rng.random()
        if u < 0.6:
            mid *= math.exp(rng.normal(0, 2e-4))
            m = mid
        elif u < 0.65:
            m = math.nan
        elif u < 0.68:
            m = -1.0
        else:
            m = None
        sides = list(rng.choice([1.0, -1.0, 1.0, -1.0, 0.0, math.nan], rng.poisson(0.7)))
        mks = [
            (float(rng.choice([1.0, 5.0, 30.0])), float(rng.normal(3, 5))) for _ in range(rng.poisson(0.7))
        ]
        if rng.random() < 0.1:
            mks.append((5.0, math.nan))
        steps.append((t, m, sides, mks))
    return steps


def run_node(steps, params=PARAMS):
    h = NodeHarness("estimators.regime_hmm", params, capacity=4096)
    outs = []
    for t, m, sides, mks in steps:
        given = {"fills": [fill(t, s) for s in sides], "markouts": [markout(t, hz, a) for hz, a in mks]}
        if m is not None:
            given["mid"] = m
        outs.append(h.step(t, **given))
    return outs


def reference_model(params=PARAMS):
    """Independent restatement of the documented model: per-step emission log-likelihoods
    (scipy), the generator, the prior."""
    p = {**RegimeHmm.Params().model_dump(), **params}
    if p["rates_per_s"] is None:
        q = np.full((4, 4), p["switch_rate_per_s"] / 3)
    else:
        q = np.array(p["rates_per_s"], float)
    np.fill_diagonal(q, 0.0)
    np.fill_diagonal(q, -q.sum(1))
    prior = np.array(p["prior"]) / np.sum(p["prior"])
    return p, q, prior


def emissions(steps, p):
    """log L[step, regime] and dt[step] (s) as the docstring defines them."""
    ll = np.zeros((len(steps), 4))
    dts = np.zeros(len(steps))
    last_mid, last_t, prev = None, None, None
    rm, rs = np.array(p["ret_mean_bps_s"]), np.array(p["ret_sd_bps_sqrt_s"])
    pb, lam = np.array(p["p_bid_fill"]), np.array(p["fill_rate_per_s"])
    am, asd = np.array(p["as_mean_bps"]), np.array(p["as_sd_bps"])
    for k, (t, m, sides, mks) in enumerate(steps):
        dt = 0.0 if prev is None else (t - prev) / S
        dts[k] = dt
        prev = t
        if m is not None and np.isfinite(m) and m > 0:
            if last_mid is None:
                last_mid, last_t = m, t
            elif t > last_t:
                tau = (t - last_t) / S
                r = 1e4 * np.log(m / last_mid)
                ll[k] += norm.logpdf(r, rm * tau, rs * np.sqrt(tau))
                last_mid, last_t = m, t
        sides = np.array(sides, float)
        nb, ns = np.sum(sides == 1.0), np.sum(sides == -1.0)
        ll[k] += nb * np.log(pb) + ns * np.log1p(-pb)
        if p.get("count_fills", True):
            ll[k] += (nb + ns) * np.log(lam) - lam * dt
        for hz, a in mks:
            if hz == p["as_horizon_s"] and np.isfinite(a):
                ll[k] += norm.logpdf(a, am, asd)
    return ll, dts


def forward_linear(ll, dts, q, prior):
    """Textbook scaled forward algorithm in linear space: alpha_t = (alpha_{t-1} A_t) * L_t."""
    alpha = prior.copy()
    post, logev = [], []
    for lk, dt in zip(ll, dts, strict=True):
        pred = alpha @ expm(q * dt)
        scale = np.max(lk)
        a = pred * np.exp(lk - scale)
        c = a.sum()
        alpha = a / c
        post.append(alpha)
        logev.append(np.log(c) + scale)
    return np.array(post), np.array(logev)


def direct_enumeration(ll, dts, q, prior):
    """P(x_T = j | y_1..T) by summing the joint over all 4^T regime paths (unnormalised)."""
    T = len(ll)
    lA = [np.log(np.maximum(expm(q * dt), 1e-300)) for dt in dts]
    paths = np.array(list(itertools.product(range(4), repeat=T)))
    lj = np.log(prior)[paths[:, 0]] + ll[0, paths[:, 0]]  # dt of step 0 is 0: A = I
    for t in range(1, T):
        lj = lj + lA[t][paths[:, t - 1], paths[:, t]] + ll[t, paths[:, t]]
    last = paths[:, -1]
    lm = np.array([logsumexp(lj[last == j]) for j in range(4)])
    return np.exp(lm - logsumexp(lm)), logsumexp(lj)


def test_posteriors_equal_direct_enumeration_on_short_streams():
    rng = np.random.default_rng(7)
    p, q, prior = reference_model()
    for _ in range(6):
        steps = mixed_stream(rng, 6)
        outs = run_node(steps)
        ll, dts = emissions(steps, p)
        want, logev = direct_enumeration(ll, dts, q, prior)
        np.testing.assert_allclose(outs[-1]["probs"], want, rtol=1e-9, atol=1e-12)
        assert sum(o["loglik"] for o in outs) == pytest.approx(logev, rel=1e-9, abs=1e-9)


def test_posteriors_equal_a_standard_forward_algorithm_on_a_long_mixed_stream():
    rng = np.random.default_rng(11)
    p, q, prior = reference_model()
    steps = mixed_stream(rng, 1500)
    outs = run_node(steps)
    ll, dts = emissions(steps, p)
    want, logev = forward_linear(ll, dts, q, prior)
    got = np.array([o["probs"] for o in outs])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose([o["loglik"] for o in outs], logev, rtol=1e-9, atol=1e-9)
    assert [o["regime"] for o in outs] == list(np.argmax(want, axis=1))
    for o in outs:
        assert o["p_trending_down"] == o["probs"][0] and o["p_volatile"] == o["probs"][3]
        assert o.emitted == set(RegimeHmm.outputs)


def test_default_model_and_count_fills_off_match_the_reference():
    rng = np.random.default_rng(5)
    for params in ({}, {"count_fills": False, "switch_rate_per_s": 0.01}):
        p, q, prior = reference_model(params)
        steps = mixed_stream(rng, 300)
        outs = run_node(steps, params)
        ll, dts = emissions(steps, p)
        want, _ = forward_linear(ll, dts, q, prior)
        np.testing.assert_allclose([o["probs"] for o in outs], want, rtol=1e-9, atol=1e-12)


def test_edges_first_run_zero_dt_nan_empty_batches_and_a_gap():
    h = NodeHarness("estimators.regime_hmm", {"prior": (1, 2, 3, 4)})
    first = h.step(T0)  # nothing observed: the prior
    np.testing.assert_allclose(first["probs"], [0.1, 0.2, 0.3, 0.4], rtol=1e-12)
    assert first["loglik"] == pytest.approx(0.0, abs=1e-15) and first["regime"] == 3.0
    out = h.step(T0, mid=28.0)  # the first mid: no return yet, dt 0: unchanged
    np.testing.assert_allclose(out["probs"], first["probs"], rtol=1e-12)
    out = h.step(T0, mid=27.0)  # same time: folded into the next interval
    np.testing.assert_allclose(out["probs"], first["probs"], rtol=1e-12)
    nan = h.step(T0 + S, mid=math.nan, fills=[], markouts=[])  # no information but the count term
    p, q, prior = reference_model({"prior": (1, 2, 3, 4)})
    lam = np.array(p["fill_rate_per_s"])
    pred = prior @ expm(q)
    want = pred * np.exp(-lam)
    np.testing.assert_allclose(nan["probs"], want / want.sum(), rtol=1e-9)
    # the next return spans from the first mid used (28.0 at T0): 2 s
    out = h.step(T0 + 2 * S, mid=28.0 * math.exp(-1e-4))
    assert out["loglik"] == pytest.approx(
        logsumexp(
            np.log(nan["probs"] @ expm(q))
            + norm.logpdf(-1.0, np.array(p["ret_mean_bps_s"]) * 2, np.array(p["ret_sd_bps_sqrt_s"]) * 2**0.5)
            - lam
        ),
        rel=1e-9,
    )
    gap = h.step(T0 + 10**6 * S)  # a long gap without fills: the count term says "few fills"
    assert gap["regime"] == 2.0 and np.isfinite(gap["probs"]).all()
    h = NodeHarness("estimators.regime_hmm", {"prior": (1, 2, 3, 4), "count_fills": False})
    h.step(T0, mid=28.0)
    gap = h.step(T0 + 10**6 * S)  # without it: the chain's stationary law (uniform here)
    np.testing.assert_allclose(gap["probs"], np.full(4, 0.25), rtol=1e-9)


def test_a_selloff_with_adverse_bid_fills_reads_trending_down():
    h = NodeHarness("estimators.regime_hmm", capacity=4096)
    mid = 28.0
    rng = np.random.default_rng(2)
    for k in range(600):
        t = T0 + k * S
        mid *= math.exp((-0.06 + 0.6 * rng.normal()) * 1e-4)
        fills = [fill(t, 1.0)] if k % 10 == 0 else []
        mks = [markout(t, 5.0, 7.0)] if k % 10 == 5 else []
        out = h.step(t, mid=mid, fills=fills, markouts=mks)
    assert out["regime"] == 0.0 and out["p_trending_down"] > 0.9


def simulate_hmm(rng, q, p, n, dt=1.0):
    """Regimes from the chain, then every observation from the regime's emission law."""
    a = expm(q * dt)
    x = np.empty(n, np.int64)
    x[0] = rng.integers(4)
    for k in range(1, n):
        x[k] = rng.choice(4, p=a[x[k - 1]])
    rm, rs = np.array(p["ret_mean_bps_s"]), np.array(p["ret_sd_bps_sqrt_s"])
    rets = rng.normal(rm[x] * dt, rs[x] * math.sqrt(dt))
    nf = rng.poisson(np.array(p["fill_rate_per_s"])[x] * dt)
    return x, rets, nf


def test_recovers_the_true_regime_on_data_simulated_from_the_hmm():
    """20,000 one-second steps from the default emissions with switching at 0.01/s (mean
    dwell 100 s): the filtered argmax matches the true regime on ~80 % of steps (chance 25 %,
    the most frequent regime ~26 %)."""
    rng = np.random.default_rng(2024)
    params = {"switch_rate_per_s": 0.01}
    p, q, _ = reference_model(params)
    n = 20_000
    x, rets, nf = simulate_hmm(rng, q, p, n)
    pb, am, asd = np.array(p["p_bid_fill"]), np.array(p["as_mean_bps"]), np.array(p["as_sd_bps"])
    h = NodeHarness("estimators.regime_hmm", params, capacity=1 << 12)
    mid = 28.0
    hits = 0
    for k in range(n):
        t = T0 + k * S
        mid *= math.exp(rets[k] * 1e-4)
        r = x[k]
        fills = [fill(t, 1.0 if rng.random() < pb[r] else -1.0) for _ in range(nf[k])]
        mks = [markout(t, 5.0, rng.normal(am[r], asd[r])) for _ in range(nf[k])]
        out = h.step(t, mid=mid if k else 28.0, fills=fills, markouts=mks)
        hits += out["regime"] == r
    acc = hits / n
    assert np.bincount(x, minlength=4).max() / n < 0.35
    assert acc > 0.7, acc


@njit
def _drive(n, seed, params, fs, ts, logb, loga, ll, scr, mid, fl_t, fl_r, mk_t, mk_r, outs, bad):
    """n kernel calls on hostile inputs: 50 bps jumps, long gaps, zero dt, NaN mids,
    bursts of same-side fills; counts the steps whose posterior is not a distribution."""
    np.random.seed(seed)
    now = np.int64(1_700_000_000_000_000_000)
    cap = fl_t.shape[0]
    nf = np.int64(0)
    nm = np.int64(0)
    prev = now
    for k in range(n):
        u = np.random.random()
        step = np.int64(0) if u < 0.1 else (np.int64(3_600_000_000_000) if u < 0.101 else np.int64(1e9))
        now += step
        jump = 50.0 if np.random.random() < 0.01 else 1.0
        mid[0] = mid[0] * np.exp(np.random.normal() * 1e-4 * jump)
        if np.random.random() < 0.01:
            mid[0] = np.nan
        elif mid[0] != mid[0]:
            mid[0] = 28.0
        f0 = nf
        for _ in range(np.random.poisson(0.5) * (8 if np.random.random() < 0.02 else 1)):
            fl_r[nf % cap, 2] = 1.0
            nf += 1
        m0 = nm
        if np.random.random() < 0.2:
            mk_r[nm % cap, 1] = 5.0
            mk_r[nm % cap, 5] = np.random.normal() * 30.0
            nm += 1
        dt = (now - prev) * 1e-9 if k else 0.0
        prev = now
        regime_hmm_kernel(
            now, dt, params, fs, ts, logb, loga, ll, scr, mid, True,
            fl_t, fl_r, f0, nf, mk_t, mk_r, m0, nm,
            outs[0], outs[1], outs[2], outs[3], outs[4], outs[5], outs[6],
        )  # fmt: skip
        tot = 0.0
        ok = True
        for r in range(4):
            v = outs[0][r]
            ok = ok and v >= 0.0 and v <= 1.0
            tot += v
        if not ok or abs(tot - 1.0) > 1e-12:
            bad[0] += 1
    return nf


def _drive_args(node, n_outs=7):
    fs, ts, logb, loga, ll, scr = node.init_state()
    fl_t = np.zeros(64, np.int64)
    fl_r = np.full((64, 7), np.nan)
    mk_t = np.zeros(64, np.int64)
    mk_r = np.full((64, 6), np.nan)
    outs = (np.full(4, np.nan), *(np.full(1, np.nan) for _ in range(n_outs - 1)))
    mid = np.array([28.0])
    return (node.pack_params(), fs, ts, logb, loga, ll, scr, mid, fl_t, fl_r, mk_t, mk_r, outs)


def test_finite_over_a_million_steps_and_no_allocation():
    node = RegimeHmm()
    args = _drive_args(node)
    bad = np.zeros(1, np.int64)
    _drive(1_000_000, 3, *args, bad)
    assert bad[0] == 0
    assert np.all(np.isfinite(args[3]))  # the log belief itself
    assert np.all(np.isfinite(args[-1][0]))
    args = _drive_args(node)
    _drive(10, 1, *args, bad)
    assert allocations(_drive, 1, 1, *args, bad) == allocations(_drive, 5000, 1, *args, bad)


@settings(max_examples=40, deadline=None)
@given(
    rate=st.floats(0.0, 0.5),
    d1=st.floats(0.0, 5000.0),
    d2=st.floats(0.001, 5000.0),
    prior=st.lists(st.floats(0.01, 1.0), min_size=4, max_size=4),
)
def test_prediction_is_time_consistent(rate, d1, d2, prior):
    """Without observations, predicting over d1 then d2 equals predicting over d1 + d2
    (Chapman-Kolmogorov), and the belief stays a distribution."""
    params = {"switch_rate_per_s": rate, "prior": tuple(prior), "count_fills": False}
    outs = []
    for cuts in ([d1, d2], [d1 + d2]):
        h = NodeHarness("estimators.regime_hmm", params)
        h.step(T0)
        t = T0
        for d in cuts:
            t += int(d * S)
            out = h.step(t)
        outs.append(out["probs"])
    assert outs[0].sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-6, atol=1e-12)  # ns rounding of the cuts


def test_params_are_checked_and_located_in_a_graph():
    with pytest.raises(ValidationError):
        RegimeHmm.Params(p_bid_fill=(0.5, 1.0, 0.5, 0.5))
    with pytest.raises(ValidationError):
        RegimeHmm.Params(as_sd_bps=(1.0, 0.0, 1.0, 1.0))
    with pytest.raises(ValidationError):
        RegimeHmm.Params(rates_per_s=((0, 1, 1), (1, 0, 1), (1, 1, 0)))
    with pytest.raises(ValidationError):
        RegimeHmm.Params(rates_per_s=tuple(tuple(-1.0 if i != j else 0 for j in range(4)) for i in range(4)))
    graph = {
        "name": "h",
        "instrument": {"coin": "HYPE"},
        "clock": {"quote_every_ms": 1000},
        "nodes": {
            "rg": {
                "type": "estimators.regime_hmm",
                "in": {"mid": "source.mid"},
                "params": {"fill_rate_per_s": [0.1, -0.1, 0.1, 0.1]},
            }
        },
    }
    with pytest.raises(GraphError) as err:
        load_graph(graph)
    assert "fill_rate_per_s" in err.value.format()


def test_kernel_compiles_with_engine_argument_types():
    node = RegimeHmm()
    assert regime_hmm_kernel(*example_args(node)) == 127


def test_runs_in_a_graph_on_the_synthetic_market_with_both_backends():
    from flowmm.sources.synthetic import Synthetic

    graph = {
        "name": "h",
        "instrument": {"coin": "HYPE"},
        "clock": {"quote_every_ms": 1000},
        "nodes": {
            "rg": {
                "type": "estimators.regime_hmm",
                "in": {"mid": "source.mid"},
                "params": {"count_fills": False, "prior": [1, 1, 1, 1]},
            }
        },
    }
    g = load_graph(graph)
    py, fused = (
        g.run(Synthetic("trend_down", seed=1, duration="2m"), backend=b).trace for b in ("python", "fused")
    )
    cols = [c for c in py.column_names if c.startswith("rg.probs")]
    assert len(cols) == 4
    a, b = (
        np.array([np.asarray(x.column(c).to_numpy(zero_copy_only=False), float) for c in cols]).T
        for x in (py, fused)
    )
    assert np.array_equal(a, b, equal_nan=True)
    assert np.isfinite(a[5:]).all() and np.allclose(a[5:].sum(1), 1.0)
