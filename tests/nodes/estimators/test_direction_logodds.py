import math

import numpy as np
import pytest
from flowmm.nodes.estimators.direction_logodds import DirectionLogodds, direction_logodds_kernel
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from pydantic import ValidationError

from flowmm.core.node import get_node_type
from flowmm.core.ports import FI_SIDE, FI_SZ
from flowmm.testing import NodeHarness, allocations, example_args

S = 1_000_000_000
T0 = 1_700_000_000 * S
THETA = 0.02


def fill(t, side, px=28.0, sz=1.0):
    return (t, px, sz, side, 1.0, 0.0, 1.0, px)


def markout(t, side, as_bps, horizon=5.0):
    return (t, 1.0, horizon, side, 28.0, -as_bps, as_bps)


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


# -- an independent reference: every piece of evidence with its event time -----------------
def ref_logodds(fills, markouts, prices, now, p):
    """L(now) = sum_i e_i exp(-theta (now - t_i)), evidence listed from scratch (no clamp)."""
    ev = []
    for idx, (t, side) in enumerate(fills):
        s = 1.0 if side > 0 else -1.0
        # same-side fills in (t - 2 s, t] up to this one (same-time fills count in list order)
        n = sum(1 for t2, s2 in fills[: idx + 1] if (s2 > 0) == (side > 0) and t - 2 * S < t2 <= t)
        e = p["lambda_fill"] + (p["lambda_burst"] * (n - 3) if n >= 4 else 0.0)
        ev.append((t, s * e))
    for t, side, a, h in markouts:
        if h == 5.0 and a - 1.5 > 0:
            ev.append((t, (1.0 if side > 0 else -1.0) * 0.15 * (a - 1.5) / 20.0))
    for (_, p0, _), (t1, p1, sig) in zip(prices[:-1], prices[1:]):
        r = math.log(p1 / p0) * 1e4
        ev.append((t1, -2.0 * 0.1 * r / sig**2))
    return sum(e * math.exp(-THETA * max(0.0, (now - t) / S)) for t, e in ev)


def test_eight_same_side_fills_give_p_above_095():
    h = NodeHarness("estimators.direction_logodds", {"lambda_burst": 0.0})
    for k in range(8):
        out = h.step(T0 + k * S, fills=[fill(T0 + k * S, 1.0)])
    expected = 0.45 * sum(math.exp(-THETA * k) for k in range(8))
    assert out["log_odds"] == pytest.approx(expected, abs=1e-12)
    assert out["p_down"] > 0.95 and out["p_down"] == pytest.approx(0.9664, abs=1e-4)
    assert out["mu_posterior"] == pytest.approx(-0.1 * (2 * out["p_down"] - 1), abs=1e-12)
    assert out["confidence"] == pytest.approx(2 * out["p_down"] - 1, abs=1e-12)
    # the seed's 0.35 misses the target (why CONVENTIONS.md sets 0.45)
    h = NodeHarness("estimators.direction_logodds", {"lambda_burst": 0.0, "lambda_fill": 0.35})
    for k in range(8):
        out = h.step(T0 + k * S, fills=[fill(T0 + k * S, 1.0)])
    assert out["p_down"] < 0.95


def test_half_life_without_evidence_is_about_35_s():
    h = NodeHarness("estimators.direction_logodds")
    l0 = h.step(T0, fills=[fill(T0, 1.0), fill(T0, 1.0)])["log_odds"]
    half = math.log(2) / THETA
    assert half == pytest.approx(34.66, abs=0.01)
    out = h.step(T0 + round(half * S), clock=1.0)
    assert out["log_odds"] == pytest.approx(l0 / 2, rel=1e-9)
    out = h.step(T0 + 35 * S, clock=1.0)
    assert out["log_odds"] / l0 == pytest.approx(0.5, abs=0.01)
    assert out["log_odds"] == pytest.approx(l0 * math.exp(-THETA * 35), rel=1e-12)


def test_six_fill_burst_adds_the_documented_evidence():
    # 6 bid fills 0.2 s apart: the 4th, 5th, 6th add 0.25 * (1, 2, 3)
    times = [T0 + k * S // 5 for k in range(6)]
    outs = {}
    for lb in (0.0, 0.25):
        h = NodeHarness("estimators.direction_logodds", {"lambda_burst": lb})
        for t in times:
            outs[lb] = h.step(t, fills=[fill(t, 1.0)])["log_odds"]
    extra = sum(0.25 * (c - 3) * math.exp(-THETA * (times[-1] - times[c - 1]) / S) for c in (4, 5, 6))
    assert outs[0.25] - outs[0.0] == pytest.approx(extra, abs=1e-12)
    # one sweep through 6 of our bids in one batch: exactly 0.25 * (1 + 2 + 3) = 1.5 on top
    h = NodeHarness("estimators.direction_logodds")
    out = h.step(T0, fills=[fill(T0, 1.0, px=28.0 - 0.01 * k) for k in range(6)])
    assert out["log_odds"] == pytest.approx(6 * 0.45 + 1.5, abs=1e-12)
    # the same 6 fills 2 s apart are no burst (the window (t - 2 s, t] holds one fill)
    h = NodeHarness("estimators.direction_logodds")
    for k in range(6):
        out = h.step(T0 + k * 2 * S, fills=[fill(T0 + k * 2 * S, 1.0)])
    assert out["log_odds"] == pytest.approx(0.45 * sum(math.exp(-THETA * 2 * k) for k in range(6)), abs=1e-12)


def test_signs_ask_fills_bullish_price_down_bearish():
    out = NodeHarness("estimators.direction_logodds").step(T0, fills=[fill(T0, -1.0)] * 3)
    assert out["p_down"] < 0.5 and out["mu_posterior"] > 0
    h = NodeHarness("estimators.direction_logodds", {"sigma_bps": 2.0})
    h.step(T0, price=100.0)
    out = h.step(T0 + S, price=99.9)
    r = math.log(99.9 / 100.0) * 1e4
    assert out["log_odds"] == pytest.approx(-2 * 0.1 * r / 4.0, abs=1e-12)
    assert out["p_down"] > 0.5 and out["mu_posterior"] < 0
    # the sigma input overrides the param; a non-positive sigma falls back to it
    h = NodeHarness("estimators.direction_logodds", {"sigma_bps": 2.0})
    h.step(T0, price=100.0, sigma=1.0)
    assert h.step(T0 + S, price=99.9)["log_odds"] == pytest.approx(-2 * 0.1 * r, abs=1e-12)
    h = NodeHarness("estimators.direction_logodds", {"sigma_bps": 2.0})
    h.step(T0, price=100.0, sigma=-1.0)
    assert h.step(T0 + S, price=99.9)["log_odds"] == pytest.approx(-2 * 0.1 * r / 4.0, abs=1e-12)


def test_adverse_selection_term():
    h = NodeHarness("estimators.direction_logodds", {"lambda_fill": 0.0})
    out = h.step(T0, markouts=[markout(T0, 1.0, 18.0), markout(T0, 1.0, 50.0, horizon=30.0)])
    assert out["log_odds"] == pytest.approx(0.15 * (18.0 - 1.5) / 20.0, abs=1e-12)  # seed: 0.124
    out = h.step(T0, markouts=[markout(T0, -1.0, 1.0), markout(T0, -1.0, float("nan"))])
    assert out["log_odds"] == pytest.approx(0.15 * 16.5 / 20.0, abs=1e-12)  # below fee / NaN: nothing
    out = h.step(T0, markouts=[markout(T0, -1.0, 21.5)])
    assert out["log_odds"] == pytest.approx(0.15 * 16.5 / 20.0 - 0.15, abs=1e-12)


def test_edge_cases():
    h = NodeHarness("estimators.direction_logodds")
    out = h.step(T0, clock=1.0)  # nothing yet
    assert (out["p_down"], out["mu_posterior"], out["confidence"], out["log_odds"]) == (0.5, 0.0, 0.0, 0.0)
    bad = [fill(T0, float("nan")), fill(T0, 0.0)]
    out = h.step(T0, fills=bad, price=float("nan"))
    assert out["log_odds"] == 0.0
    out = h.step(T0, price=100.0)  # first price seeds
    assert out["log_odds"] == 0.0
    out = h.step(T0, price=100.0)  # zero dt, no move
    assert out["log_odds"] == 0.0
    # clamp: a huge move cannot push |L| past max_abs_logodds; p stays finite
    out = h.step(T0 + S, price=50.0)
    assert out["log_odds"] == 10.0 and 0.9999 < out["p_down"] < 1.0
    h = NodeHarness("estimators.direction_logodds", {"max_abs_logodds": 800.0})
    h.step(T0, price=100.0)
    out = h.step(T0 + S, price=1e-6)
    assert out["log_odds"] == 800.0 and out["p_down"] == 1.0 and out["mu_posterior"] == -0.1
    out = h.step(T0 + 2 * S, price=1e6)
    assert out["log_odds"] == -800.0 and out["p_down"] == 0.0 and out["mu_posterior"] == 0.1
    with pytest.raises(ValidationError):
        DirectionLogodds.Params(theta_decay=-1.0)


def test_random_stream_matches_reference():
    rng = np.random.default_rng(7)
    p = {"lambda_fill": 0.45, "lambda_burst": 0.25}
    fills, marks, prices = [], [], []
    h = NodeHarness("estimators.direction_logodds", {"max_abs_logodds": 1e9})
    t = T0
    px = 28.0
    for _ in range(300):
        t += int(rng.exponential(0.7) * S)
        given = {}
        if rng.random() < 0.5:
            k = int(rng.integers(1, 4))
            side = 1.0 if rng.random() < 0.6 else -1.0
            recs = [(t, side)] * k if rng.random() < 0.3 else [(t, side)]
            fills += recs
            given["fills"] = [fill(tt, s) for tt, s in recs]
        if rng.random() < 0.3:
            m = (
                t - int(rng.integers(0, 2 * S)),
                1.0 if rng.random() < 0.5 else -1.0,
                rng.uniform(-5, 30),
                5.0,
            )
            if rng.random() < 0.2:
                m = m[:3] + (60.0,)
            marks.append(m)
            given["markouts"] = [markout(m[0], m[1], m[2], m[3])]
        if rng.random() < 0.5:
            px *= math.exp(rng.normal(0, 2e-4))
            sig = float(rng.uniform(0.5, 3.0))
            prices.append((t, px, sig))
            given["price"], given["sigma"] = px, sig
        out = h.step(t, **given)
    assert out["log_odds"] == pytest.approx(ref_logodds(fills, marks, prices, t, p), abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 20_000), st.sampled_from([1.0, -1.0])), min_size=1, max_size=30),
    st.lists(st.integers(0, 20_000), max_size=10),
    st.integers(20_000, 60_000),
)
def test_independent_of_run_schedule_and_antisymmetric(evs, cuts, end_ms):
    """Fills fed in one run or spread over several runs give the same L; flipping every side
    negates it."""
    evs = sorted(evs)
    ms = 1_000_000

    def run(cut_points, flip=1.0):
        h = NodeHarness("estimators.direction_logodds", {"max_abs_logodds": 1e9})
        bounds = sorted(set(cut_points)) + [end_ms]
        lo = -1
        out = None
        for b in bounds:
            chunk = [fill(T0 + e * ms, s * flip) for e, s in evs if lo < e <= b]
            out = h.step(T0 + b * ms, fills=chunk)
            lo = b
        return out["log_odds"]

    one = run([])
    assert run(cuts) == pytest.approx(one, abs=1e-9)
    assert run(cuts, -1.0) == pytest.approx(-one, abs=1e-9)


@njit
def _drive(n, params, fs, ts, bq, fl_t, fl_r, mk_t, mk_r, price, sigma, clock, *outs):
    cap = fl_t.shape[0]
    total = 0
    for k in range(n):
        now = np.int64(k + 1) * 100_000_000
        i = k % cap
        fl_t[i] = now
        fl_r[i, FI_SZ] = 1.0
        fl_r[i, FI_SIDE] = 1.0 if k % 3 else -1.0
        price[0] = 28.0 + 0.001 * (k % 7)
        total += direction_logodds_kernel(
            now, 0.1, params, fs, ts, bq, fl_t, fl_r, np.int64(k), np.int64(k + 1),
            mk_t, mk_r, np.int64(0), np.int64(0), price, True, sigma, False, clock, False, *outs,
        )  # fmt: skip
    return total


def test_kernel_allocates_nothing_per_update():
    a = example_args(DirectionLogodds(), capacity=16)
    # now, dt, params, 3 states, fills(4), markouts(4), price(2), sigma(2), clock(2), 4 outs
    args = (a[2], a[3], a[4], a[5], a[6], a[7], a[10], a[11], a[14], a[16], a[18], *a[20:])
    assert _drive(10, *args) == 150
    assert allocations(_drive, 1, *args) == allocations(_drive, 400, *args)


def test_registered_with_doc():
    cls = get_node_type("estimators.direction_logodds")
    assert cls.trigger == "event" and "lambda_fill = 0.45" in cls.doc()
