import math

import numpy as np
import pytest
from flowmm.nodes.estimators.kappa import Kappa, kappa_kernel
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from pydantic import ValidationError

from flowmm.core.ports import TR_PX, TR_SIDE, TR_SZ
from flowmm.graph import load_graph
from flowmm.testing import NodeHarness, allocations, example_args

S = 1_000_000_000
T0 = 1_700_000_000 * S
ALL = {"a_bid", "a_ask", "k_bid", "k_ask", "n_bid", "n_ask"}


def prints(ts, pxs, sides):
    return [
        (int(t), float(p), 1.0, float(s), k) for k, (t, p, s) in enumerate(zip(ts, pxs, sides, strict=True))
    ]


def simulate(rng, a_bid, a_ask, k_bid, k_ask, horizon, mid=28.0):
    """Poisson orders per side, each reaching a depth ~ Exp(k) bps from a fixed mid."""
    out = []
    for side, a, k in ((-1.0, a_bid, k_bid), (1.0, a_ask, k_ask)):
        n = rng.poisson(a * horizon)
        t = rng.uniform(0.0, horizon, n)
        d = rng.exponential(1.0 / k, n)
        out.append((t, mid * (1.0 + side * d * 1e-4), np.full(n, side), d))
    t, px, s, d = (np.concatenate(x) for x in zip(*out, strict=True))
    o = np.argsort(t, kind="stable")
    return T0 + (t[o] * S).astype(np.int64), px[o], s[o], d[o]


def test_estimates_match_a_direct_computation_with_a_moving_mid():
    """Depths from the mid before each batch; EW sums, posterior-mean k and A, to 1e-9."""
    rng = np.random.default_rng(2)
    tau, k0, n0, a0, p0 = 50.0, 0.8, 4.0, 0.3, 20.0
    p = {"tau_s": tau, "k_prior": k0, "n_prior": n0, "a_prior": a0, "prior_s": p0}
    h = NodeHarness("estimators.kappa", p, capacity=256)
    mid = 28.0
    h.step(T0, mid=mid)
    recs = []  # (t, side, depth) as the node should see them
    now = T0
    for _ in range(400):
        now += int(rng.uniform(0.05, 3.0) * S)
        n = int(rng.integers(0, 4))
        side = np.where(rng.random(n) < 0.4, 1.0, -1.0)
        depth = rng.exponential(1.5, n) - 0.2  # a few through the mid: clamped to 0
        px = mid * (1.0 + side * depth * 1e-4)
        ts = now - (rng.uniform(0, 0.05, n) * S).astype(np.int64)
        ts = np.sort(ts)
        recs += [(t, s, max(d, 0.0)) for t, s, d in zip(ts, side, depth, strict=True)]
        new_mid = mid * math.exp(rng.normal(0, 2e-4))
        out = h.step(now, trades=prints(ts, px, side), mid=new_mid)  # the mid after the batch
        mid = new_mid
        t = np.array([r[0] for r in recs], np.int64)
        s = np.array([r[1] for r in recs])
        d = np.array([r[2] for r in recs])
        w = np.exp(-(now - t) / S / tau)
        decay = math.exp(-(now - T0) / S / tau)
        ex = p0 * decay + tau * (1 - decay)
        for name, side_v in (("bid", -1.0), ("ask", 1.0)):
            m = s == side_v
            nn, dd = np.sum(w[m]), np.sum(w[m] * d[m])
            assert out[f"n_{name}"] == pytest.approx(nn, rel=1e-9, abs=1e-12)
            assert out[f"k_{name}"] == pytest.approx((n0 + nn) / (n0 / k0 + dd), rel=1e-9)
            assert out[f"a_{name}"] == pytest.approx((nn + a0 * p0 * decay) / ex, rel=1e-9)
        assert out.emitted == ALL
    assert len(recs) > 400


def test_recovers_k_and_a_on_1e5_simulated_orders():
    """1e5 orders at depths ~ Exp(k) per side (A 1.2 / 0.8 per s, k 0.6 / 1.5 per bps): with a
    long memory k is within 2 % (the issue asks 10 %); with the default 300 s memory every
    estimate after warm-up is within 25 % and their mean within 3 %."""
    rng = np.random.default_rng(17)
    a_bid, a_ask, k_bid, k_ask = 1.2, 0.8, 0.6, 1.5
    horizon = 50_000.0
    t, px, s, d = simulate(rng, a_bid, a_ask, k_bid, k_ask, horizon)
    assert len(t) > 99_000
    mle = 1.0 / d[s < 0].mean(), 1.0 / d[s > 0].mean()  # the plain MLE on the same draws
    step = 50 * S
    edges = np.searchsorted(t, T0 + np.arange(1, int(horizon) // 50 + 1) * step, side="right")
    for tau in (1e9, 300.0):
        h = NodeHarness("estimators.kappa", {"tau_s": tau}, capacity=1 << 8)
        h.step(T0, mid=28.0)
        lo, got = 0, []
        for j, hi in enumerate(edges):
            out = h.step(int(T0 + (j + 1) * step), trades=prints(t[lo:hi], px[lo:hi], s[lo:hi]), mid=28.0)
            lo = hi
            if j >= 30:  # after 1500 s
                got.append((out["k_bid"], out["k_ask"], out["a_bid"], out["a_ask"]))
        got = np.array(got)
        if tau > 1e6:
            kb, ka, ab, aa = got[-1]
            assert kb == pytest.approx(k_bid, rel=0.02) and ka == pytest.approx(k_ask, rel=0.02)
            assert kb == pytest.approx(mle[0], rel=2e-3) and ka == pytest.approx(mle[1], rel=2e-3)
            assert ab == pytest.approx(a_bid, rel=0.02) and aa == pytest.approx(a_ask, rel=0.02)
        else:
            true = np.array([k_bid, k_ask, a_bid, a_ask])
            assert np.all(np.abs(got / true - 1) < 0.25)
            np.testing.assert_allclose(got.mean(axis=0), true, rtol=0.03)


def test_sparse_data_fall_back_to_the_prior():
    p = {"tau_s": 60.0, "k_prior": 0.8, "n_prior": 10.0}
    h = NodeHarness("estimators.kappa", p)
    first = h.step(T0, mid=28.0)
    assert first["k_bid"] == first["k_ask"] == 0.8 and first["n_bid"] == 0.0
    assert first["a_bid"] == pytest.approx(0.7)  # the A prior (0.7) at t0
    # one order at 5 bps: the posterior mean moves a little toward 1/5, not to it
    out = h.step(T0 + S, trades=[(T0 + S, 28.0 * (1 - 5e-4), 1.0, -1.0, 0)], mid=28.0)
    assert out["k_bid"] == pytest.approx(11.0 / (10.0 / 0.8 + 5.0), rel=1e-9)
    assert out["k_ask"] == 0.8
    # many orders at 0.5 bps: the data dominate
    t = T0 + 2 * S + np.arange(2000) * S // 20
    out = h.step(int(t[-1]), trades=prints(t, 28.0 * (1 - 0.5e-4) * np.ones(2000), -np.ones(2000)), mid=28.0)
    assert out["k_bid"] == pytest.approx(2.0, rel=0.03)
    # an hour of silence: the data are forgotten, k returns to its prior, A falls toward 0
    gap = h.step(int(t[-1]) + 3600 * S, mid=28.0)
    assert gap["k_bid"] == pytest.approx(0.8, rel=1e-9) and gap["a_bid"] < 1e-20
    # no prior and no data: no k
    h = NodeHarness("estimators.kappa", {"n_prior": 0.0, "prior_s": 0.0})
    assert h.step(T0, mid=28.0).emitted == {"n_bid", "n_ask"}


def test_a_sweep_counts_once_at_its_deepest_print_and_per_print_counts_each():
    mid = 28.0
    t = T0 + S
    tape = [
        (t, mid * (1 - 1e-4), 1.0, -1.0, 0),  # a seller walks the bid: 1, 2, 4 bps
        (t, mid * (1 - 2e-4), 1.0, -1.0, 1),
        (t, mid * (1 - 4e-4), 1.0, -1.0, 2),
        (t, mid * (1 - 1e-4), 1.0, -1.0, 3),  # back at 1 bps: a second order
    ]
    p = {"tau_s": 1e12, "n_prior": 0.0}
    h = NodeHarness("estimators.kappa", p)
    h.step(T0, mid=mid)
    out = h.step(t, trades=tape)
    assert out["n_bid"] == pytest.approx(2.0) and out["k_bid"] == pytest.approx(2.0 / 5.0, rel=1e-9)
    h = NodeHarness("estimators.kappa", {**p, "per_print": True})
    h.step(T0, mid=mid)
    out = h.step(t, trades=tape)
    assert out["n_bid"] == pytest.approx(4.0) and out["k_bid"] == pytest.approx(4.0 / 8.0, rel=1e-9)
    # an order split across two runs at one timestamp still counts once, at its deepest print
    h = NodeHarness("estimators.kappa", p)
    h.step(T0, mid=mid)
    h.step(t, trades=tape[:2])
    out = h.step(t, trades=tape[2:3])
    assert out["n_bid"] == pytest.approx(1.0) and out["k_bid"] == pytest.approx(1.0 / 4.0, rel=1e-9)


def test_depths_use_the_mid_before_the_batch_and_edges():
    p = {"tau_s": 1e12, "n_prior": 0.0, "max_depth_bps": 50.0}
    h = NodeHarness("estimators.kappa", p)
    t = T0
    # prints before any mid are dropped
    out = h.step(t, trades=[(t, 28.0, 1.0, 1.0, 0)], mid=28.0)
    assert out["n_ask"] == 0.0 and "k_ask" not in out.emitted
    # a buyer sweeps 3 bps up; the book after it (same batch) has a mid 3 bps higher
    t += S
    out = h.step(t, trades=[(t, 28.0 * (1 + 3e-4), 1.0, 1.0, 1)], mid=28.0 * (1 + 3e-4))
    assert out["k_ask"] == pytest.approx(1.0 / 3.0, rel=1e-9)
    ref = 28.0 * (1 + 3e-4)
    t += S
    bad = [
        (t, math.nan, 1.0, 1.0, 2),
        (t, ref, 1.0, math.nan, 3),
        (t, ref, 1.0, 0.0, 4),
        (t, -ref, 1.0, 1.0, 5),
        (t, ref * (1 + 60e-4), 1.0, 1.0, 6),  # 60 bps: beyond max_depth_bps
    ]
    out = h.step(t, trades=bad, mid=math.nan)  # a NaN mid does not replace the last one
    assert out["n_ask"] == pytest.approx(1.0) and out["k_ask"] == pytest.approx(1.0 / 3.0, rel=1e-9)
    t += S
    out = h.step(t, trades=[(t, ref * (1 - 1e-4), 1.0, 1.0, 7)])  # a buyer below the mid: depth 0
    assert out["n_ask"] == pytest.approx(2.0) and out["k_ask"] == pytest.approx(2.0 / 3.0, rel=1e-9)
    again = h.step(t)  # zero dt: nothing changes
    assert (again["k_ask"], again["a_ask"]) == (out["k_ask"], out["a_ask"])
    out = h.step(t, trades=[(t + 5 * S, ref * (1 + 3e-4), 1.0, 1.0, 8)])  # stamped after now: undecayed
    assert out["n_ask"] == pytest.approx(3.0)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), tau=st.floats(0.5, 500.0), n0=st.floats(0.0, 50.0))
def test_values_do_not_depend_on_when_the_node_runs(seed, tau, n0):
    rng = np.random.default_rng(seed)
    t, px, s, _ = simulate(rng, 1.0, 1.0, 0.7, 1.3, 60.0)
    t = t + S
    end = int(t[-1]) + int(rng.integers(0, 10 * S))
    cuts = np.sort(rng.choice(t, size=min(5, len(t)), replace=False))
    outs = []
    for steps in ([end], [*cuts.tolist(), end]):
        h = NodeHarness("estimators.kappa", {"tau_s": tau, "n_prior": n0}, capacity=256)
        h.step(T0, mid=28.0)
        prev = T0
        for now in steps:
            m = (t > prev) & (t <= now)
            out = h.step(int(now), trades=prints(t[m], px[m], s[m]))
            prev = now
        outs.append(out)
    for k in ALL:
        assert outs[0][k] == pytest.approx(outs[1][k], rel=1e-9, abs=1e-12)
    assert outs[0]["k_bid"] > 0 and outs[0]["a_ask"] > 0


def test_params_are_checked():
    for bad in ({"tau_s": 0.0}, {"k_prior": 0.0}, {"n_prior": -1.0}, {"max_depth_bps": 0.0}, {"k": 1}):
        with pytest.raises(ValidationError):
            Kappa.Params(**bad)


def test_runs_in_a_graph_on_the_synthetic_market_with_both_backends():
    from flowmm.sources.synthetic import Synthetic

    graph = {
        "name": "k",
        "instrument": {"coin": "HYPE"},
        "clock": {"quote_every_ms": 1000},
        "trace": ["kp.k_bid", "kp.k_ask", "kp.a_bid", "kp.a_ask", "kp.n_bid"],
        "nodes": {"kp": {"type": "estimators.kappa", "in": {"trades": "source.trades", "mid": "source.mid"}}},
    }
    g = load_graph(graph)
    py, fused = (
        g.run(Synthetic("calm", seed=3, duration="3m"), backend=b).trace for b in ("python", "fused")
    )
    assert py.column_names == fused.column_names
    for c in py.column_names:
        a, b = (np.asarray(x.column(c).to_numpy(zero_copy_only=False), float) for x in (py, fused))
        assert np.array_equal(a, b, equal_nan=True), c
    k = np.asarray(py.column("kp.k_bid").to_numpy(zero_copy_only=False), float)
    n = np.asarray(py.column("kp.n_bid").to_numpy(zero_copy_only=False), float)
    assert np.isfinite(k).all() and (k > 0).all() and n[-1] > 50  # orders seen, k defined throughout


@njit
def _drive(n, params, fs, ts, tr_t, tr_r, mid, *outs):
    cap = tr_t.shape[0]
    total = 0
    for k in range(n):
        now = np.int64(k + 1) * 100_000_000
        i = k % cap
        tr_t[i] = now
        s = 1.0 if k % 3 else -1.0
        tr_r[i, TR_PX] = 28.0 * (1.0 + s * 1e-4 * (k % 5))
        tr_r[i, TR_SZ] = 1.0
        tr_r[i, TR_SIDE] = s
        mid[0] = 28.0
        total += kappa_kernel(
            now, 0.1, params, fs, ts, tr_t, tr_r, np.int64(k), np.int64(k + 1), mid, True, *outs
        )
    return total


def test_kernel_allocates_nothing_per_update():
    a = example_args(Kappa(), capacity=16)  # now, dt, params, 2 states, 4 trades, 2 mid, 6 outs
    args = (a[2], a[3], a[4], a[5], a[6], a[9], *a[11:])
    assert _drive(10, *args) == 10 * 63
    assert allocations(_drive, 1, *args) == allocations(_drive, 400, *args)
