import math

import numpy as np
import pytest
import yaml
from flowmm.nodes.estimators.toxicity import Toxicity, as_weight, toxicity_kernel
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from pydantic import ValidationError

from flowmm.core.ports import MK_AS_BPS, MK_HORIZON_S
from flowmm.graph import load_graph
from flowmm.testing import NodeHarness, allocations, example_args

S = 1_000_000_000
T0 = 1_700_000_000 * S
LAM = -math.log(0.95) / 30.0  # the default decay rate, 1/s


def mk(t, as_bps, horizon=5.0, oid=1.0):
    """A markout record (t, oid, horizon_s, side, px, markout_bps, as_bps)."""
    return (int(t), oid, horizon, 1.0, 28.0, -as_bps, as_bps)


def direct(now, recs, spread, a0=1.0, b0=3.0, hi=2.0, lo=0.5, lam=LAM):
    """alpha = prior + sum of seed-004 weights decayed from each record's time to now."""
    ai, au = a0, b0
    for t, a in recs:
        if a >= hi * spread:
            w = 1.0
        elif a <= lo * spread:
            w = 0.0
        else:
            w = (a - lo * spread) / ((hi - lo) * spread)
        k = math.exp(-lam * (now - t) / S)
        ai += w * k
        au += (1 - w) * k
    return ai, au


def test_posterior_by_hand_with_fractional_weights_and_decay():
    h = NodeHarness("estimators.toxicity", {"spread_half_life_s": 0.0})
    first = h.step(T0, spread_bps=4.0)
    assert (first["toxicity"], first["alpha_informed"], first["alpha_uninformed"]) == (0.25, 1.0, 3.0)
    # AS 10 > 8: informed; AS 0 < 2: noise; AS 5: (5 - 2)/6 = 0.5; AS 8 exactly: 1; AS 2 exactly: 0
    recs = [(T0 + S, 10.0), (T0 + 2 * S, 0.0), (T0 + 2 * S, 5.0), (T0 + 40 * S, 8.0), (T0 + 41 * S, 2.0)]
    out = h.step(T0 + 2 * S, markouts=[mk(t, a) for t, a in recs[:3]])
    ai, au = direct(T0 + 2 * S, recs[:3], 4.0)
    assert (out["alpha_informed"], out["alpha_uninformed"]) == pytest.approx((ai, au), rel=1e-12)
    assert ai == pytest.approx(1 + math.exp(-LAM) + 0.5) and au == pytest.approx(3 + 1.5)
    out = h.step(T0 + 60 * S, markouts=[mk(t, a) for t, a in recs[3:]])
    ai, au = direct(T0 + 60 * S, recs, 4.0)
    assert (out["alpha_informed"], out["alpha_uninformed"]) == pytest.approx((ai, au), rel=1e-12)
    n = ai + au
    assert out["toxicity"] == pytest.approx(ai / n, rel=1e-12)
    assert out["toxicity_sd"] == pytest.approx(math.sqrt(ai * au / (n * n * (n + 1))), rel=1e-12)
    assert out.emitted == {"toxicity", "alpha_informed", "alpha_uninformed", "toxicity_sd"}


def test_as_weight_is_continuous_and_monotone():
    s = 3.0
    xs = np.linspace(-10, 20, 3001)
    ws = np.array([as_weight(x, s, 2.0, 0.5) for x in xs])
    assert (np.diff(ws) >= 0).all() and ws[0] == 0.0 and ws[-1] == 1.0
    assert np.max(np.abs(np.diff(ws))) <= (xs[1] - xs[0]) / (1.5 * s) + 1e-12
    assert as_weight(1.5 + 2.25, s, 2.0, 0.5) == pytest.approx(0.5)


@pytest.mark.parametrize("pi", [0.1, 0.3, 0.7])
def test_recovers_a_known_informed_fraction_on_simulated_markouts(pi):
    """Fills at 0.5/s for 2 h; a fraction pi informed (AS 2.5-6 spreads), the rest noise
    (AS ~ N(0, 0.15 spread)): the time-averaged posterior mean is pi within sampling error
    (the prior's pull at ~290 effective fills is < 0.01)."""
    rng = np.random.default_rng(int(pi * 100))
    spread = 3.0
    n = 3600
    t_fill = T0 + np.cumsum(rng.exponential(2.0, n) * S).astype(np.int64)
    informed = rng.random(n) < pi
    as_bps = np.where(informed, rng.uniform(2.5, 6.0, n) * spread, rng.normal(0, 0.15 * spread, n))
    h = NodeHarness("estimators.toxicity", capacity=4096)
    h.step(T0, spread_bps=spread)
    steps = T0 + np.arange(1, int((t_fill[-1] - T0) / S) + 6) * S
    due = t_fill + 5 * S  # each markout arrives when its 5-s horizon elapses
    j, tox = 0, []
    for now in steps:
        recs = []
        while j < n and due[j] <= now:
            recs += [mk(due[j], as_bps[j], 1.0), mk(due[j], as_bps[j], 5.0), mk(due[j], -as_bps[j], 30.0)]
            j += 1
        out = h.step(int(now), markouts=recs, clock=0.0)
        if now - T0 > 1800 * S:
            tox.append(out["toxicity"])
    assert np.mean(tox) == pytest.approx(pi, abs=0.03)
    # the stationary mean the prior implies, for the realised informed share
    lam_eff = n / ((t_fill[-1] - T0) / S) / LAM
    implied = (1 + informed.mean() * lam_eff) / (4 + lam_eff)
    assert np.mean(tox) == pytest.approx(implied, abs=0.025)


def test_evidence_decays_toward_the_prior_at_095_per_30_s():
    h = NodeHarness("estimators.toxicity", {"spread_half_life_s": 0.0})
    h.step(T0, spread_bps=2.0)
    out = h.step(T0, markouts=[mk(T0, 10.0, oid=k) for k in range(20)] + [mk(T0, 0.0)] * 10)
    assert (out["alpha_informed"], out["alpha_uninformed"]) == (21.0, 13.0)
    for k in range(1, 28):
        out = h.step(T0 + k * 30 * S, clock=float(k))
        assert out["alpha_informed"] - 1.0 == pytest.approx(20 * 0.95**k, rel=1e-12)
        assert out["alpha_uninformed"] - 3.0 == pytest.approx(10 * 0.95**k, rel=1e-12)
        assert "toxicity" in out.emitted
    half = 30 * math.log(2) / -math.log(0.95)
    g = NodeHarness("estimators.toxicity", {"spread_half_life_s": 0.0})
    g.step(T0, spread_bps=2.0, markouts=[mk(T0, 10.0)] * 8)
    assert g.step(T0 + int(round(half * S)), clock=1.0)["alpha_informed"] == pytest.approx(5.0, rel=1e-9)
    assert half == pytest.approx(405.4, abs=0.05)
    far = g.step(T0 + 10**6 * S, clock=2.0)
    assert (far["alpha_informed"], far["alpha_uninformed"], far["toxicity"]) == pytest.approx((1, 3, 0.25))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 8))
def test_result_does_not_depend_on_when_the_node_runs(seed, k):
    rng = np.random.default_rng(seed)
    t = np.sort(T0 + rng.integers(0, 600 * S, 30))
    a = rng.normal(3.0, 4.0, 30)
    end = int(t[-1]) + int(rng.integers(0, 100 * S))
    cuts = np.sort(rng.choice(t, size=k, replace=False))
    outs = []
    for steps in ([end], [*cuts.tolist(), end]):
        h = NodeHarness("estimators.toxicity", {"spread_half_life_s": 0.0})
        h.step(T0, spread_bps=2.5)
        prev = T0 - 1
        for now in steps:
            m = (t > prev) & (t <= now)
            out = h.step(int(now), markouts=[mk(x, y) for x, y in zip(t[m], a[m], strict=True)])
            prev = now
        outs.append(out)
    ai, au = direct(end, list(zip(t, a, strict=True)), 2.5)
    for out in outs:
        assert (out["alpha_informed"], out["alpha_uninformed"]) == pytest.approx((ai, au), rel=1e-9)


def test_spread_sources_smoothing_and_fallback():
    book = np.full((20, 6), np.nan)
    book[0, 0], book[0, 3] = 27.99, 28.01  # 7.1429 bps
    s_book = 0.02 / 28.0 * 1e4
    # no spread yet: markouts are skipped (unless a fallback is set)
    h = NodeHarness("estimators.toxicity")
    out = h.step(T0, markouts=[mk(T0, 50.0)])
    assert out["alpha_informed"] == 1.0 and math.isnan(out["spread_used"])
    fb = NodeHarness("estimators.toxicity", {"spread_fallback_bps": 10.0})
    assert fb.step(T0, markouts=[mk(T0, 15.0)])["alpha_informed"] == pytest.approx(1 + (15 - 5) / 15)
    # the book, then a time-weighted EW mean of the piecewise-constant spread (half-life 60 s)
    out = h.step(T0 + S, book=book)
    assert out["spread_used"] == pytest.approx(s_book) and "spread_used" in out.emitted
    out = h.step(T0 + 31 * S, spread_bps=2.0)  # the f64 wins; 30 s of s_book first
    assert out["spread_used"] == pytest.approx(s_book)
    out = h.step(T0 + 91 * S, markouts=[mk(T0 + 91 * S, 3.0)])  # 60 s of 2.0 bps: halfway
    m = 2.0 + (s_book - 2.0) * 0.5
    assert out["spread_used"] == pytest.approx(s_book) and "spread_used" not in out.emitted
    assert out["alpha_informed"] == pytest.approx(1 + max(0.0, (3.0 - 0.5 * m) / (1.5 * m)), rel=1e-12)
    crossed = book.copy()
    crossed[0, 3] = 27.98
    out = h.step(T0 + 92 * S, book=crossed, spread_bps=math.nan)  # neither is a spread
    assert "spread_used" not in out.emitted


def test_edges_horizon_filter_nan_as_empty_batch_future_record():
    h = NodeHarness("estimators.toxicity", {"spread_half_life_s": 0.0, "horizon_s": 30.0})
    h.step(T0, spread_bps=1.0)
    out = h.step(T0 + S, markouts=[mk(T0 + S, 9.0, 5.0), mk(T0 + S, 9.0, 60.0), mk(T0 + S, math.nan, 30.0)])
    assert (out["alpha_informed"], out["alpha_uninformed"]) == (1.0, 3.0)
    assert out.emitted == set()  # nothing applied, no clock: no emission
    out = h.step(T0 + 2 * S, markouts=[])
    assert out.emitted == set()
    out = h.step(T0 + 3 * S, markouts=[mk(T0 + 10 * S, 9.0, 30.0)])  # stamped after now: undecayed
    assert out["alpha_informed"] == 2.0
    out = h.step(T0 + 10 * S, markouts=[mk(T0 + 4 * S, -1.0, 30.0)])  # older than the evidence
    assert out["alpha_uninformed"] == pytest.approx(3.0 + math.exp(-6 * LAM), rel=1e-12)
    with pytest.raises(ValidationError):
        Toxicity.Params(uninformed_mult=2.0, informed_mult=2.0)
    with pytest.raises(ValidationError):
        Toxicity.Params(decay_factor=1.0)


def test_runs_on_paper_fills_in_a_graph():
    from flowmm.execution.paper import paper_broker_for
    from flowmm.sources.synthetic import Synthetic

    with open("graphs/minimal.yaml") as f:
        spec = yaml.safe_load(f)
    spec["nodes"]["quote"]["params"]["half_spread_bps"] = 1.0
    spec["nodes"]["tox"] = {
        "type": "estimators.toxicity",
        "in": {"markouts": "exec.markouts", "book": "source.book", "clock": "source.clock"},
    }
    spec["trace"] = ["exec.position", "tox.toxicity", "tox.alpha_informed", "tox.alpha_uninformed"]
    g = load_graph(spec)
    src = Synthetic("calm", seed=3, duration="4m")
    tr = g.run(src, broker=paper_broker_for(g.plan, src), backend="python").trace  # broker: python only

    def col(c):
        return np.asarray(tr.column(c).to_numpy(zero_copy_only=False), float)

    evidence = col("tox.alpha_informed") + col("tox.alpha_uninformed") - 4.0
    assert evidence[-1] > 3.0  # fills were classified
    tox = col("tox.toxicity")
    assert ((tox > 0) & (tox < 1)).all()


@njit
def _drive(n, params, fs, ts, mk_t, mk_r, book, spread, clock, *outs):
    cap = mk_t.shape[0]
    total = 0
    for k in range(n):
        now = np.int64(k + 1) * 1_000_000_000
        i = k % cap
        mk_t[i] = now
        mk_r[i, MK_HORIZON_S] = 5.0
        mk_r[i, MK_AS_BPS] = float(k % 7)
        spread[0] = 2.0 + 0.1 * (k % 3)
        total += toxicity_kernel(
            now, 1.0, params, fs, ts, mk_t, mk_r, np.int64(k), np.int64(k + 1),
            book, False, spread, True, clock, False, *outs,
        )  # fmt: skip
    return total


def test_kernel_allocates_nothing_per_update():
    a = example_args(Toxicity(), capacity=16)  # now, dt, params, 2 states, 4 mk, 2 book, 2 spread, 2 clock, 5
    args = (a[2], a[3], a[4], a[5], a[6], a[9], a[11], a[13], *a[15:])
    assert _drive(3, *args) == 31 * 3
    assert allocations(_drive, 1, *args) == allocations(_drive, 400, *args)


def test_side_keeps_one_side_of_our_fills_as_the_legacy_bid_and_ask_toxicity():
    """side: bid counts only markouts of our bid fills (+1), ask only our ask fills (-1); both
    (the default) counts all, so the default posterior is the one-sided ones' evidence summed."""

    def rec(t, as_bps, side):
        return (int(t), 1.0, 5.0, side, 28.0, -as_bps, as_bps)

    # spread 4 bps: AS 10 informed (w 1), AS 0 noise (w 0), AS 5 half (w 0.5)
    recs = [rec(T0 + S, 10.0, 1.0), rec(T0 + S, 0.0, -1.0), rec(T0 + S, 5.0, 1.0), rec(T0 + S, 10.0, -1.0)]
    outs = {}
    for side in ("both", "bid", "ask"):
        h = NodeHarness("estimators.toxicity", {"spread_half_life_s": 0.0, "side": side})
        h.step(T0, spread_bps=4.0)
        outs[side] = h.step(T0 + S, markouts=recs)
    assert (outs["bid"]["alpha_informed"], outs["bid"]["alpha_uninformed"]) == pytest.approx((2.5, 3.5))
    assert (outs["ask"]["alpha_informed"], outs["ask"]["alpha_uninformed"]) == pytest.approx((2.0, 4.0))
    assert (outs["both"]["alpha_informed"], outs["both"]["alpha_uninformed"]) == pytest.approx((3.5, 4.5))
    assert outs["bid"]["toxicity"] == pytest.approx(2.5 / 6.0)
    with pytest.raises(ValidationError):
        Toxicity.Params(side="buy")
