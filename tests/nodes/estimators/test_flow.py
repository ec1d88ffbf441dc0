import math

import numpy as np
import pytest
from flowmm.nodes.estimators.flow import Flow, flow_kernel
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from pydantic import ValidationError

from flowmm.core.ports import FI_PX, FI_SIDE, TR_PX, TR_SIDE, TR_SZ
from flowmm.graph import load_graph
from flowmm.testing import NodeHarness, allocations, example_args

S = 1_000_000_000
T0 = 1_700_000_000 * S
ALL = {"kappa_buy", "kappa_sell", "kappa_total", "flow_imbalance", "informed_fraction", "obs"}


def trades(ts, sides, px=28.0):
    return [(int(t), px, 1.0, float(s), k) for k, (t, s) in enumerate(zip(ts, sides, strict=True))]


def direct(t_ev, s_ev, now, t0, tau, k0, p0):
    """The definition, summed from scratch: EW counts (prior included) over EW exposure."""
    decay = math.exp(-(now - t0) / S / tau)
    w = np.exp(-np.maximum(now - t_ev, 0) / S / tau) * (t_ev <= now)
    n_buy = k0 * p0 * decay + np.sum(w[s_ev > 0])
    n_sell = k0 * p0 * decay + np.sum(w[s_ev < 0])
    ex = p0 * decay + tau * (1.0 - decay)
    return n_buy / ex, n_sell / ex


def test_rates_imbalance_and_obs_match_the_direct_sums():
    rng = np.random.default_rng(5)
    n = 500
    t_ev = T0 + np.cumsum(rng.exponential(0.6, n) * S).astype(np.int64)
    s_ev = np.where(rng.random(n) < 0.35, 1.0, -1.0)
    p = {"tau_s": 40.0, "kappa_prior": 0.3, "prior_s": 12.0, "scale": 0.07, "sigma_flow": 0.3}
    h = NodeHarness("estimators.flow", p, capacity=4096)
    h.step(T0)
    steps = np.unique(np.concatenate([t_ev[::2], T0 + np.arange(1, 330) * S]))
    prev, n_obs = T0, 0
    for now in steps:
        m = (t_ev > prev) & (t_ev <= now)
        out = h.step(int(now), trades=trades(t_ev[m], s_ev[m]))
        prev = now
        kb, ks = direct(t_ev, s_ev, now, T0, 40.0, 0.3, 12.0)
        imb = (ks - kb) / (ks + kb)
        assert out["kappa_buy"] == pytest.approx(kb, rel=1e-9)
        assert out["kappa_sell"] == pytest.approx(ks, rel=1e-9)
        assert out["kappa_total"] == pytest.approx(kb + ks, rel=1e-9)
        assert out["flow_imbalance"] == pytest.approx(imb, rel=1e-9, abs=1e-12)
        assert out["informed_fraction"] == pytest.approx(abs(imb), rel=1e-9, abs=1e-12)
        if m.any():
            n_obs += 1
            assert out.emitted == ALL
            np.testing.assert_allclose(out["obs"], [-0.07 * imb, 0.09 / (kb + ks)], rtol=1e-9, atol=1e-15)
        else:
            assert out.emitted == ALL - {"obs"}  # decay only: no new information
    assert n_obs > 200


def test_fills_count_as_the_aggressor_that_hit_us_and_add_to_the_tape():
    h = NodeHarness("estimators.flow", {"tau_s": 10.0, "kappa_prior": 0.0, "prior_s": 0.0})
    h.step(T0)
    t = T0 + 2 * S
    # our bid filled (+1): a seller; our ask filled (-1): a buyer; one tape buyer
    fills = [(t, 27.99, 1.0, 1.0, 7, 0.0, 1.0, 28.0), (t + S, 28.01, 1.0, -1.0, 8, 0.0, 1.0, 28.0)]
    out = h.step(t + S, fills=fills, trades=[(t + S // 2, 28.0, 1.0, 1.0, 0)])
    ex = 10.0 * (1 - math.exp(-0.3))
    assert out["kappa_sell"] == pytest.approx(math.exp(-0.1) / ex, rel=1e-12)
    assert out["kappa_buy"] == pytest.approx((1.0 + math.exp(-0.05)) / ex, rel=1e-12)
    assert out["flow_imbalance"] < 0  # more buyers


def test_an_order_is_one_arrival_and_per_print_counts_prints():
    t = T0 + S
    tape = [
        (t, 28.001, 1.0, 1.0, 0),  # a buyer walks up 3 levels (2 makers at the first)
        (t, 28.001, 1.0, 1.0, 1),
        (t, 28.002, 1.0, 1.0, 2),
        (t, 28.004, 1.0, 1.0, 3),
        (t, 28.001, 1.0, 1.0, 4),  # back at the touch: a second order
        (t, 28.000, 1.0, -1.0, 5),  # a seller
    ]
    p = {"tau_s": 1e9, "kappa_prior": 0.0, "prior_s": 0.0}
    for per_print, nb in ((False, 2), (True, 5)):
        h = NodeHarness("estimators.flow", {**p, "per_print": per_print})
        h.step(T0)
        out = h.step(t, trades=tape)
        assert out["kappa_buy"] == pytest.approx(nb, rel=1e-6) and out["kappa_sell"] == pytest.approx(
            1, rel=1e-6
        )
    # our bids hit at three prices by one seller walking down, in one batch: one arrival
    h = NodeHarness("estimators.flow", p)
    h.step(T0)
    fills = [(t, px, 1.0, 1.0, k, 0.0, 1.0, 28.0) for k, px in enumerate((27.99, 27.98, 27.97))]
    assert h.step(t, fills=fills)["kappa_sell"] == pytest.approx(1.0, rel=1e-6)


def test_recovers_known_poisson_rates():
    rng = np.random.default_rng(21)
    lam_b, lam_s, horizon = 0.8, 1.7, 20_000.0
    tb = np.sort(rng.uniform(0, horizon, rng.poisson(lam_b * horizon)))
    tsl = np.sort(rng.uniform(0, horizon, rng.poisson(lam_s * horizon)))
    t_ev = T0 + (np.concatenate([tb, tsl]) * S).astype(np.int64)
    s_ev = np.r_[np.ones(len(tb)), -np.ones(len(tsl))]
    order = np.argsort(t_ev, kind="stable")
    t_ev, s_ev = t_ev[order], s_ev[order]
    for tau, rel_each in ((120.0, None), (1e7, 0.02)):
        h = NodeHarness("estimators.flow", {"tau_s": tau}, capacity=1 << 12)
        h.step(T0)
        edges = np.searchsorted(t_ev, T0 + np.arange(1, int(horizon) // 10 + 1) * 10 * S, side="right")
        lo, kb, ks, imb = 0, [], [], []
        for k, hi in enumerate(edges):
            out = h.step(T0 + (k + 1) * 10 * S, trades=trades(t_ev[lo:hi], s_ev[lo:hi]))
            lo = hi
            if k >= 100:  # after 1000 s: the prior is forgotten
                kb.append(out["kappa_buy"])
                ks.append(out["kappa_sell"])
                imb.append(out["flow_imbalance"])
        kb, ks = np.array(kb), np.array(ks)
        assert np.mean(kb) == pytest.approx(lam_b, rel=0.03)
        assert np.mean(ks) == pytest.approx(lam_s, rel=0.03)
        assert np.mean(imb) == pytest.approx((lam_s - lam_b) / (lam_s + lam_b), abs=0.02)
        if rel_each is None:  # EW rate over tau: sd = sqrt(lambda / (2 tau))
            assert np.std(ks) == pytest.approx(math.sqrt(lam_s / 240.0), rel=0.2)
        else:
            assert kb[-1] == pytest.approx(lam_b, rel=rel_each) and ks[-1] == pytest.approx(
                lam_s, rel=rel_each
            )


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), tau=st.floats(0.5, 500.0), prior_s=st.floats(0.0, 100.0))
def test_values_do_not_depend_on_when_the_node_runs(seed, tau, prior_s):
    rng = np.random.default_rng(seed)
    t_ev = T0 + S + np.cumsum(rng.exponential(0.5, 40) * S).astype(np.int64)
    s_ev = np.where(rng.random(40) < 0.5, 1.0, -1.0)
    end = int(t_ev[-1]) + int(rng.integers(0, 10 * S))
    cuts = np.sort(rng.choice(t_ev, size=5, replace=False))
    outs = []
    for steps in ([end], [*cuts.tolist(), end]):
        h = NodeHarness("estimators.flow", {"tau_s": tau, "prior_s": prior_s, "kappa_prior": 0.4})
        h.step(T0)
        prev = T0
        for now in steps:
            m = (t_ev > prev) & (t_ev <= now)
            out = h.step(int(now), trades=trades(t_ev[m], s_ev[m]))
            prev = now
        outs.append(out)
    for k in ("kappa_buy", "kappa_sell", "kappa_total", "flow_imbalance"):
        assert outs[0][k] == pytest.approx(outs[1][k], rel=1e-9, abs=1e-12)
    assert outs[0]["kappa_buy"] >= 0 and -1.0 <= outs[0]["flow_imbalance"] <= 1.0


def test_edges_cold_start_nan_zero_dt_future_events_gap_and_a_first_backlog():
    h = NodeHarness("estimators.flow", {"tau_s": 10.0, "kappa_prior": 0.4, "prior_s": 5.0})
    first = h.step(T0)  # no events yet: the prior, no observation
    assert first.emitted == ALL - {"obs"}
    assert (first["kappa_buy"], first["kappa_sell"], first["flow_imbalance"]) == (0.4, 0.4, 0.0)
    t = T0 + S
    bad = [
        (t, math.nan, 1.0, 1.0, 0),
        (t, 28.0, 1.0, math.nan, 1),
        (t, 28.0, 1.0, 0.0, 2),
        (t, -1.0, 1, 1, 3),
    ]
    out = h.step(t, trades=bad)
    assert out.emitted == ALL - {"obs"}  # nothing counted
    ex = 5.0 * math.exp(-0.1) + 10.0 * (1 - math.exp(-0.1))
    assert out["kappa_buy"] == pytest.approx(0.4 * 5.0 * math.exp(-0.1) / ex, rel=1e-12)
    again = h.step(t)  # zero dt: nothing changes
    assert again["kappa_buy"] == out["kappa_buy"]
    out = h.step(t, trades=[(t + 2 * S, 28.0, 1.0, -1.0, 4)])  # stamped after now: undecayed
    assert out["kappa_sell"] - out["kappa_buy"] == pytest.approx(1.0 / ex, rel=1e-12)
    assert out.emitted == ALL and out["obs"][0] < 0  # selling is bearish
    gap = h.step(t + 3600 * S)  # an hour without events: rates gone, exposure saturated at tau
    assert gap["kappa_total"] < 1e-100 and math.isfinite(gap["flow_imbalance"])
    # no prior at all: no rate before time has elapsed, no imbalance before an event
    h = NodeHarness("estimators.flow", {"kappa_prior": 0.0, "prior_s": 0.0})
    assert h.step(T0).emitted == set()
    assert h.step(T0 + S).emitted == {"kappa_buy", "kappa_sell", "kappa_total"}
    # a first run with a backlog starts the history at its earliest event
    h = NodeHarness("estimators.flow", {"tau_s": 10.0, "kappa_prior": 0.0, "prior_s": 0.0})
    out = h.step(T0 + 4 * S, trades=trades([T0, T0 + 2 * S], [1.0, 1.0]))
    ex = 10.0 * (1 - math.exp(-0.4))
    assert out["kappa_buy"] == pytest.approx((math.exp(-0.4) + math.exp(-0.2)) / ex, rel=1e-12)


def test_params_are_checked():
    for bad in ({"tau_s": 0.0}, {"kappa_prior": -1.0}, {"prior_s": -1.0}, {"sigma_flow": 0.0}, {"tau": 1}):
        with pytest.raises(ValidationError):
            Flow.Params(**bad)


def test_runs_in_a_graph_on_the_synthetic_market_with_both_backends():
    from flowmm.sources.synthetic import Synthetic

    graph = {
        "name": "f",
        "instrument": {"coin": "HYPE"},
        "clock": {"quote_every_ms": 1000},
        "trace": ["fl.kappa_buy", "fl.kappa_sell", "fl.flow_imbalance", "fl.obs"],
        "nodes": {
            "fl": {"type": "estimators.flow", "in": {"trades": "source.trades", "clock": "source.clock"}}
        },
    }
    g = load_graph(graph)
    py, fused = (
        g.run(Synthetic("trend_down", seed=1, duration="2m"), backend=b).trace for b in ("python", "fused")
    )
    assert py.column_names == fused.column_names
    for c in py.column_names:
        a, b = (np.asarray(x.column(c).to_numpy(zero_copy_only=False), float) for x in (py, fused))
        assert np.array_equal(a, b, equal_nan=True), c
    kb = np.asarray(py.column("fl.kappa_buy").to_numpy(zero_copy_only=False), float)
    assert np.isfinite(kb).all() and (kb > 0).all()  # from the first cycle: cold start at the prior
    imb = np.asarray(py.column("fl.flow_imbalance").to_numpy(zero_copy_only=False), float)
    assert (np.abs(imb) <= 1).all()


@njit
def _drive(n, params, fs, ts, tr_t, tr_r, fi_t, fi_r, clock, *outs):
    cap = tr_t.shape[0]
    total = 0
    for k in range(n):
        now = np.int64(k + 1) * 100_000_000
        i = k % cap
        tr_t[i] = now
        tr_r[i, TR_PX] = 28.0
        tr_r[i, TR_SZ] = 1.0
        tr_r[i, TR_SIDE] = 1.0 if k % 3 else -1.0
        fi_t[i] = now
        fi_r[i, FI_PX] = 28.0
        fi_r[i, FI_SIDE] = -1.0
        total += flow_kernel(
            now, 0.1, params, fs, ts, tr_t, tr_r, np.int64(k), np.int64(k + 1),
            fi_t, fi_r, np.int64(k), np.int64(k + 1), clock, False, *outs,
        )  # fmt: skip
    return total


def test_kernel_allocates_nothing_per_update():
    a = example_args(Flow(), capacity=16)  # now, dt, params, 2 states, 4 trades, 4 fills, 2 clock, 6 outs
    args = (a[2], a[3], a[4], a[5], a[6], a[9], a[10], a[13], *a[15:])
    assert _drive(10, *args) == 10 * 63
    assert allocations(_drive, 1, *args) == allocations(_drive, 400, *args)
