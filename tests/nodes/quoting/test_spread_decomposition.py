"""quoting.spread_decomposition: seed 004 Stages 3-4 depths, term by term, against hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from flowmm.nodes.quoting.spread_decomposition import SpreadDecomposition, spread_decomposition_kernel
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from flowmm.core.node import get_node_type
from flowmm.testing import NodeHarness, allocations, example_args

T = 1_000_000_000
# all premia off, no gamma: only the terms a test turns on contribute
QUIET = {
    "gamma_base": 0.0,
    "trend_premium_bps": 0.0,
    "volatile_premium_bps": 0.0,
    "burst_premium_bps": 0.0,
    "k_fallback": 0.1,
}


def _step(params=None, sizes=None, **inputs):
    h = NodeHarness("quoting.spread_decomposition", {**QUIET, **(params or {})}, sizes=sizes)
    return h.step(T, **inputs)


def test_seed_004_stage_4_example():
    # half 10 (1/k = 10), shift 8 (p_down 0.9 x 20 = 0.4 x 20), skew 3, burst 5 on the bid:
    # bid 10 + 8 + 3 + 5 = 26; ask 10 - 8 - 3 = -1 -> floored at the fee 1.5
    # skew = q gamma sigma^2 tau = 3 with q = 3, gamma = 0.01, sigma = 1, tau = 100 (gamma is only
    # wired into the skew here: order_size tiny makes the base's gamma terms vanish)
    out = _step(
        {"burst_premium_bps": 5.0, "tau_s": 100.0, "order_size": 1e-12},
        q=3.0, gamma=0.01, sigma=1.0, p_down=0.9, burst_bid=6.0,
    )  # fmt: skip
    assert out["base_bid"] == pytest.approx(10.0) and out["half_spread_ask"] == pytest.approx(10.0)
    assert out["directional_shift"] == pytest.approx(8.0)
    assert out["inventory_skew"] == pytest.approx(3.0)
    assert out["burst_bid_premium"] == 5.0 and out["burst_ask_premium"] == 0.0
    assert out["bid_raw"] == pytest.approx(26.0) and out["bid_depth"] == pytest.approx(26.0)
    assert out["ask_raw"] == pytest.approx(-1.0) and out["ask_depth"] == 1.5
    assert len(out.emitted) == 14


def test_base_half_spread_is_glft_with_order_size_per_side():
    g, d, s, tau, kb, ka = 0.05, 2.0, 1.5, 60.0, 0.4, 0.8
    out = _step(
        {"tau_s": tau, "order_size": d, "inventory_skew": False}, gamma=g, sigma=s, k_bid=kb, k_ask=ka
    )
    for k, name in ((kb, "base_bid"), (ka, "base_ask")):
        hand = math.log(1 + g * d / k) / (g * d) + 0.5 * g * d * s * s * tau
        assert out[name] == pytest.approx(hand, rel=1e-12)
    assert out["base_bid"] > out["base_ask"]  # a slower decay (smaller k) quotes wider
    # gamma -> 0: the seed's 1/k, continuously
    small = _step({"inventory_skew": False}, gamma=1e-14, k_bid=0.4)
    assert small["base_bid"] == pytest.approx(2.5, rel=1e-9)
    assert _step({"inventory_skew": False}, gamma=0.0, k_bid=0.4)["base_bid"] == 2.5


def test_toxicity_and_regime_premia():
    probs = np.array([0.6, 0.1, 0.2, 0.1])  # down, up, mean-reverting, volatile
    out = _step(
        {"trend_premium_bps": 5.0, "volatile_premium_bps": 4.0, "as_scale_bps": 21.0},
        sizes={"regime_probs": 4},
        toxicity=0.68,
        regime_probs=probs,
    )
    assert out["tox_premium"] == pytest.approx(0.68 * 21.0)  # seed 004 Stage 3: 14.3 bps
    assert out["regime_premium"] == pytest.approx(5.0 * 0.7 + 4.0 * 0.1)
    assert out["half_spread_bid"] == pytest.approx(10.0 + 0.68 * 21.0 + 3.9)
    # an as_scale input overrides the param; the baseline counts only the excess toxicity
    out = _step({"toxicity_baseline": 0.5}, toxicity=0.7, as_scale=15.0)
    assert out["tox_premium"] == pytest.approx(0.2 * 15.0)
    assert _step({"toxicity_baseline": 0.5}, toxicity=0.3)["tox_premium"] == 0.0


def test_directional_shift_sources_signs_and_cap():
    # p_down: skew_sensitivity (p - 0.5); seed 004: P(down) = 0.75 -> bids ~5 bps further
    out = _step(p_down=0.75)
    assert out["directional_shift"] == pytest.approx(5.0)
    assert out["bid_depth"] == pytest.approx(15.0) and out["ask_depth"] == pytest.approx(5.0)
    assert _step(p_down=0.25)["directional_shift"] == pytest.approx(-5.0)  # bullish: asks further
    # mu_hat: -mu tau (bearish mu < 0 -> positive shift); p_down ignored in this mode
    out = _step({"direction": "mu_hat", "drift_tau_s": 30.0}, mu_hat=-0.1, p_down=0.99)
    assert out["directional_shift"] == pytest.approx(3.0)
    assert _step({"direction": "none"}, mu_hat=-0.1, p_down=0.99)["directional_shift"] == 0.0
    # cap at 2 x mean half spread (Stage 2: shift -150 capped at -14 with half 7)
    out = _step({"direction": "mu_hat", "k_fallback": 1 / 7}, mu_hat=5.0)
    assert out["directional_shift"] == pytest.approx(-14.0)
    out = _step({"direction": "mu_hat", "k_fallback": 1 / 7, "shift_cap_mult": None}, mu_hat=5.0)
    assert out["directional_shift"] == pytest.approx(-150.0)


def test_inventory_skew_signs_and_fee_floor():
    p = {"gamma_base": 0.002, "tau_s": 60.0}
    long_ = _step(p, q=4.87, sigma=1.0)
    assert long_["inventory_skew"] == pytest.approx(4.87 * 0.002 * 60.0)
    assert long_["bid_depth"] > long_["ask_depth"]  # long: bids further, asks closer
    short = _step(p, q=-4.87, sigma=1.0)
    assert short["inventory_skew"] == pytest.approx(-long_["inventory_skew"])
    assert short["bid_depth"] == pytest.approx(long_["ask_depth"])
    assert _step({**p, "inventory_skew": False}, q=4.87)["inventory_skew"] == 0.0
    # both depths at least the fee, whatever the skew
    huge = _step({"gamma_base": 1.0, "fee_bps": 2.0}, q=100.0, sigma=1.0)
    assert huge["ask_raw"] < 0 and huge["ask_depth"] == 2.0


def test_burst_premium_threshold_and_ramp():
    p = {"burst_premium_bps": 5.0, "burst_per_fill_bps": 1.0, "burst_max_bps": 6.5}
    assert _step(p, burst_bid=3.0)["burst_bid_premium"] == 0.0  # below the threshold 4
    assert _step(p, burst_bid=4.0)["burst_bid_premium"] == 5.0
    assert _step(p, burst_bid=5.0)["burst_bid_premium"] == 6.0
    assert _step(p, burst_bid=9.0)["burst_bid_premium"] == 6.5  # capped
    out = _step(p, burst_ask=4.0)
    assert out["burst_ask_premium"] == 5.0 and out["burst_bid_premium"] == 0.0
    assert out["ask_depth"] == pytest.approx(15.0) and out["bid_depth"] == pytest.approx(10.0)


def test_nan_and_missing_inputs_take_fallbacks():
    base = _step({"gamma_base": 0.002})
    assert base["bid_depth"] == pytest.approx(base["ask_depth"])  # symmetric with nothing wired
    nan = _step(
        {"gamma_base": 0.002},
        sizes={"regime_probs": 4},
        q=math.nan, gamma=math.nan, sigma=math.inf, k_bid=-1.0, k_ask=0.0, toxicity=math.nan,
        regime_probs=np.full(4, np.nan), p_down=1.7, mu_hat=math.nan, burst_bid=math.nan,
    )  # fmt: skip
    for k in base:
        assert nan[k] == pytest.approx(base[k]), k
    assert all(math.isfinite(v) for v in nan.values())
    # zero sigma: no inventory terms at all
    z = _step({"gamma_base": 0.01}, q=5.0, sigma=0.0)
    assert z["inventory_skew"] == 0.0 and z["base_bid"] == pytest.approx(math.log1p(0.1) / 0.01)


@settings(max_examples=60, deadline=None)
@given(
    gamma=st.floats(0.0, 0.05),
    sigma=st.floats(0.0, 5.0),
    p_down=st.floats(0.0, 1.0),
    q0=st.floats(-10.0, 10.0),
)
def test_continuous_and_monotone_in_q(gamma, sigma, p_down, q0):
    # depths are continuous (Lipschitz, slope gamma sigma^2 tau) and monotone in q: bid up, ask down
    p = {"gamma_base": gamma, "tau_s": 60.0}
    a = _step(p, q=q0, sigma=sigma, p_down=p_down)
    b = _step(p, q=q0 + 1e-3, sigma=sigma, p_down=p_down)
    lip = gamma * sigma * sigma * 60.0 * 1e-3 + 1e-9
    assert 0.0 <= b["bid_depth"] - a["bid_depth"] <= lip
    assert 0.0 <= a["ask_depth"] - b["ask_depth"] <= lip
    assert a["bid_depth"] >= 1.5 and a["ask_depth"] >= 1.5


def test_params_and_doc():
    cls = get_node_type("quoting.spread_decomposition")
    assert cls is SpreadDecomposition and "floored" in cls.doc() and "Stage" in cls.doc()
    from pydantic import ValidationError

    for bad in ({"k_fallback": 0.0}, {"direction": "up"}, {"toxicity_baseline": 2.0}, {"typo": 1}):
        with pytest.raises(ValidationError):
            cls.Params(**bad)


@njit
def _drive(n, a):
    total = 0
    for k in range(n):
        a[3][0] = -3.0 + 0.01 * k
        total += spread_decomposition_kernel(
            np.int64(k), 1.0, a[2], a[3], True, a[5], False, a[7], False, a[9], False, a[11], False,
            a[13], False, a[15], False, a[17], False, a[19], True, a[21], False, a[23], False, a[25], False,
            a[27], a[28], a[29], a[30], a[31], a[32], a[33], a[34], a[35], a[36], a[37], a[38], a[39], a[40],
        )  # fmt: skip
    return total


def test_kernel_does_not_allocate():
    a = tuple(example_args(SpreadDecomposition()))
    assert len(a) == 41
    a[19][0] = 0.8
    assert _drive(1, a) == (1 << 14) - 1
    assert allocations(_drive, 1, a) == allocations(_drive, 200, a)
