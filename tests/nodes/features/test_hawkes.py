import math

import numpy as np
import pytest
from flowmm.nodes.features.hawkes import Hawkes, hawkes_kernel
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from pydantic import ValidationError

from flowmm.core.ports import TR_PX, TR_SIDE, TR_SZ
from flowmm.errors import GraphError
from flowmm.graph import load_graph
from flowmm.testing import NodeHarness, allocations, example_args

S = 1_000_000_000
T0 = 1_700_000_000 * S


def random_events(rng, n, rate=1.5):
    """n orders, one print each (a distinct timestamp or side per print): (t, side)."""
    t = T0 + np.cumsum(rng.exponential(1.0 / rate, n) * S).astype(np.int64)
    return t, np.where(rng.random(n) < 0.5, 1.0, -1.0)


def direct(t_ev, s_ev, side, now, a, beta, big_t, t0, n):
    """O(n^2) over evaluation times: excitation sum and the normalised EW base rate."""
    m = (s_ev == side) & (t_ev <= now)
    age = (now - t_ev[m]) / S
    exc = np.sum(a * np.exp(-beta * age))
    span = (now - t0) / S
    base = (1 - n) * np.sum(np.exp(-age / big_t)) / (big_t * (1 - math.exp(-span / big_t)))
    return exc, base


def test_intensity_matches_the_direct_sum():
    rng = np.random.default_rng(3)
    t_ev, s_ev = random_events(rng, 600)
    a, beta, big_t = 0.3, 0.7, 120.0
    params = {
        "excitation": a,
        "decay": beta,
        "base_tau_s": big_t,
        "warmup_s": 5.0,
        "alpha": 0.1,
        "sigma": 0.4,
    }
    h = NodeHarness("features.hawkes", params, capacity=4096)
    start = T0
    h.step(start)  # the first run starts the base-rate history
    steps = np.unique(np.concatenate([t_ev[::3], T0 + np.arange(1, 420) * S]))
    prev = start
    checked = 0
    for now in steps:
        m = (t_ev > prev) & (t_ev <= now)
        out = h.step(
            int(now), trades=[(int(t), 28.0, 1.0, s, 0) for t, s in zip(t_ev[m], s_ev[m], strict=True)]
        )
        prev = now
        eb, bb = direct(t_ev, s_ev, 1.0, now, a, beta, big_t, start, a / beta)
        es, bs = direct(t_ev, s_ev, -1.0, now, a, beta, big_t, start, a / beta)
        assert out["excess_buy"] == pytest.approx(eb, rel=1e-9, abs=1e-15)
        assert out["excess_sell"] == pytest.approx(es, rel=1e-9, abs=1e-15)
        if now - start < 5 * S:
            assert out.emitted == {"excess_buy", "excess_sell"}  # warming up
            continue
        checked += 1
        assert out["base_buy"] == pytest.approx(bb, rel=1e-9)
        assert out["base_sell"] == pytest.approx(bs, rel=1e-9)
        assert out["lam_buy"] == pytest.approx(bb + eb, rel=1e-9)
        assert out["lam_sell"] == pytest.approx(bs + es, rel=1e-9)
        np.testing.assert_allclose(
            out["obs"], [0.1 * (eb - es), 0.16 / (bb + eb + bs + es)], rtol=1e-9, atol=1e-15
        )
        assert "obs" in out.emitted
    assert checked > 400


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), beta=st.floats(0.05, 5.0), n=st.floats(0.0, 0.95))
def test_result_does_not_depend_on_when_the_node_runs(seed, beta, n):
    rng = np.random.default_rng(seed)
    t_ev, s_ev = random_events(rng, 40)
    end = int(t_ev[-1]) + int(rng.integers(0, 10 * S))
    cuts = np.sort(rng.choice(t_ev, size=5, replace=False))
    params = {"excitation": n * beta, "decay": beta, "warmup_s": 0.0}
    outs = []
    for steps in ([end], [*cuts.tolist(), end]):
        h = NodeHarness("features.hawkes", params)
        h.step(T0)
        prev = T0
        for now in steps:
            m = (t_ev > prev) & (t_ev <= now)
            out = h.step(
                int(now), trades=[(int(t), 28.0, 1.0, s, 0) for t, s in zip(t_ev[m], s_ev[m], strict=True)]
            )
            prev = now
        outs.append(out)
    for k in ("excess_buy", "excess_sell", "base_buy", "base_sell", "lam_buy", "lam_sell"):
        assert outs[0][k] == pytest.approx(outs[1][k], rel=1e-9, abs=1e-300)
        assert outs[0][k] >= 0.0


def test_an_order_is_one_event_and_per_print_counts_prints():
    t = T0
    tape = [
        (t, 28.001, 1.0, 1, 0),  # a buyer walks 3 levels (2 prints at the first: 2 makers)
        (t, 28.001, 1.0, 1, 1),
        (t, 28.002, 1.0, 1, 2),
        (t, 28.004, 1.0, 1, 3),
        (t, 28.001, 1.0, 1, 4),  # back at the touch: a second order
        (t, 28.000, 1.0, -1, 5),  # a seller
    ]
    h = NodeHarness("features.hawkes", {"excitation": 0.5, "decay": 1.0})
    out = h.step(t, trades=tape)
    assert (out["excess_buy"], out["excess_sell"]) == (1.0, 0.5)
    h = NodeHarness("features.hawkes", {"excitation": 0.5, "decay": 1.0, "per_print": True})
    out = h.step(t, trades=tape)
    assert (out["excess_buy"], out["excess_sell"]) == (2.5, 0.5)
    # an order split across two steps at the same timestamp is still one event
    h = NodeHarness("features.hawkes", {"excitation": 0.5, "decay": 1.0})
    h.step(t, trades=tape[:2])
    assert h.step(t, trades=tape[2:4])["excess_buy"] == 0.5


def test_base_rate_recovers_a_simulated_hawkes_process():
    """Ogata thinning of a one-sided Hawkes process (lambda_0 1/s, n 0.6, decay 0.2/s): the
    node's base rate, averaged after warm-up, is lambda_0 within sampling error."""
    rng = np.random.default_rng(11)
    lam0, a, beta, horizon = 1.0, 0.12, 0.2, 6000.0
    t, exc, times = 0.0, 0.0, []
    while True:
        bound = lam0 + exc
        w = rng.exponential(1.0 / bound)
        t += w
        exc *= math.exp(-beta * w)
        if t > horizon:
            break
        if rng.random() * bound <= lam0 + exc:
            times.append(t)
            exc += a
    times = T0 + (np.array(times) * S).astype(np.int64)
    assert len(times) / horizon == pytest.approx(lam0 / (1 - a / beta), rel=0.15)
    h = NodeHarness(
        "features.hawkes", {"excitation": a, "decay": beta, "base_tau_s": 600.0}, capacity=1 << 16
    )
    h.step(T0)
    bases = []
    prev = T0
    for k in range(1, int(horizon)):
        now = T0 + k * S
        m = (times > prev) & (times <= now)
        out = h.step(now, trades=[(int(x), 28.0, 1.0, 1, 0) for x in times[m]])
        prev = now
        if k > 600:
            bases.append(out["base_buy"])
    assert np.mean(bases) == pytest.approx(lam0, rel=0.15)


def test_edges_first_run_nan_prints_zero_dt_future_prints_and_a_gap():
    h = NodeHarness("features.hawkes", {"excitation": 0.2, "decay": 0.5, "warmup_s": 1.0})
    first = h.step(T0)
    assert first.emitted == {"excess_buy", "excess_sell"} and first["excess_buy"] == 0.0
    t = T0 + S
    bad = [
        (t, math.nan, 1.0, 1, 0),
        (t, 28.0, math.nan, 1, 1),
        (t, 28.0, 1.0, math.nan, 2),
        (t, 28.0, 0.0, 1, 3),
    ]
    out = h.step(t, trades=bad)
    assert out["excess_buy"] == 0.0 and out["lam_buy"] == 0.0
    assert out.emitted == {
        "lam_buy",
        "lam_sell",
        "base_buy",
        "base_sell",
        "excess_buy",
        "excess_sell",
    }  # no obs: no events
    out = h.step(t, trades=[(t, 28.0, 1.0, -1, 4)])
    assert out["excess_sell"] == pytest.approx(0.2)
    assert h.step(t)["excess_sell"] == pytest.approx(0.2)  # zero dt
    out = h.step(t + S, trades=[(t + 3 * S, 28.0, 1.0, 1, 5)])  # stamped after now: undecayed
    assert out["excess_buy"] == pytest.approx(0.2)
    gap = h.step(t + 3600 * S)  # an hour without prints: excess gone, base rate low but defined
    assert gap["excess_sell"] < 1e-300 and 0.0 < gap["base_sell"] < 1e-3


def test_params_are_checked_and_located_in_a_graph():
    with pytest.raises(ValidationError):
        Hawkes.Params(excitation=0.5, decay=0.5)  # branching 1: not stationary
    with pytest.raises(ValidationError):
        Hawkes.Params(decay=0.0)
    graph = {
        "name": "h",
        "instrument": {"coin": "HYPE"},
        "clock": {"quote_every_ms": 1000},
        "nodes": {
            "hk": {
                "type": "features.hawkes",
                "in": {"trades": "source.trades"},
                "params": {"excitation": 2.0},
            }
        },
    }
    with pytest.raises(GraphError) as err:
        load_graph(graph)
    assert "branching" in str(err.value.format() if hasattr(err.value, "format") else err.value)


def test_runs_in_a_graph_on_the_synthetic_market_with_both_backends():
    from flowmm.sources.synthetic import Synthetic

    graph = {
        "name": "h",
        "instrument": {"coin": "HYPE"},
        "clock": {"quote_every_ms": 1000},
        "nodes": {
            "hk": {"type": "features.hawkes", "in": {"trades": "source.trades", "clock": "source.clock"}}
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
    lam = np.asarray(py.column("hk.lam_sell").to_numpy(zero_copy_only=False), float)
    assert np.isnan(lam[:50]).all()  # warm-up
    assert (lam[70:] > 0).all() and np.isfinite(lam[70:]).all()  # refreshed every cycle


@njit
def _drive(n, params, fs, ts, tr_t, tr_r, clock, *outs):
    cap = tr_t.shape[0]
    total = 0
    for k in range(n):
        now = np.int64(k + 1) * 100_000_000
        i = k % cap
        tr_t[i] = now
        tr_r[i, TR_PX] = 28.0
        tr_r[i, TR_SZ] = 1.0
        tr_r[i, TR_SIDE] = 1.0 if k % 2 else -1.0
        total += hawkes_kernel(
            now, 0.1, params, fs, ts, tr_t, tr_r, np.int64(k), np.int64(k + 1), clock, False, *outs
        )
    return total


def test_kernel_allocates_nothing_per_update():
    a = example_args(
        Hawkes(Hawkes.Params(warmup_s=0.0)), capacity=16
    )  # now, dt, params, 2 states, 4 trades, 2 clock, 7 outs
    args = (a[2], a[3], a[4], a[5], a[6], a[9], *a[11:])
    assert _drive(10, *args) == 48 + 9 * 127  # the first run has no history: excess only
    assert allocations(_drive, 1, *args) == allocations(_drive, 400, *args)
