"""quoting.epnl against hand computations (units of CONVENTIONS.md: bps, bps/s, per-second funding)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from flowmm.nodes.quoting.epnl import Epnl, epnl_kernel, level_offset
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from flowmm.core.node import get_node_type
from flowmm.testing import NodeHarness, allocations, example_args

T = 1_000_000_000


def _step(params=None, **inputs):
    h = NodeHarness("quoting.epnl", {"levels": 3, **(params or {})})
    return h.step(T, **inputs)


def _hand(edge, a, k, horizon, fee, adv, carry):
    lam = a * math.exp(-k * max(edge, 0.0))
    p = 1.0 - math.exp(-lam * horizon)
    return p * (edge - fee - adv - carry)


def test_hand_computation_both_sides():
    inp = dict(
        bid_depth=3.0, ask_depth=4.0, center_bps=-1.0, mid=25.0, mu_hat=-0.05, sigma=2.0,
        kappa_buy=0.5, kappa_sell=0.9, informed_fraction=0.3, as_factor=1.2,
        a_bid=0.8, a_ask=0.6, k_bid=1.1, k_ask=0.9, f_hat_per_s=2e-9,
    )  # fmt: skip
    out = _step(
        {"level_spacing_bps": 2.0, "level_ratio": 1.5, "fee_bps": 1.0, "informed_move_bps": 8.0}, **inp
    )
    # edges from the mid: bid d - c, ask d + c; levels 0, 2, 2 + 3
    bid_edges = np.array([4.0, 6.0, 9.0])
    ask_edges = np.array([3.0, 5.0, 8.0])
    np.testing.assert_allclose(out["bid_edge"], bid_edges)
    np.testing.assert_allclose(out["ask_edge"], ask_edges)
    # tau_hold: bid fill unwound by buyers reaching our ask touch (edge 3, k_ask 0.9)
    th_b = math.exp(0.9 * 3.0) / 0.5
    th_a = math.exp(1.1 * 4.0) / 0.9
    assert out["tau_hold_bid"] == pytest.approx(th_b)
    assert out["tau_hold_ask"] == pytest.approx(th_a)
    inf_move = 0.3 * 8.0 * 1.2
    adv_b = 0.05 * th_b + inf_move  # bid: -mu tau + ...
    adv_a = -0.05 * th_a + inf_move  # ask: +mu tau + ...
    assert out["adverse_bid"] == pytest.approx(adv_b)
    assert out["adverse_ask"] == pytest.approx(adv_a)
    assert out["as_ratio_bid"] == pytest.approx(inf_move / (2.0 * math.sqrt(th_b)))
    car_b = 2e-9 * 1e4 * th_b
    car_a = -2e-9 * 1e4 * th_a
    assert out["carry_bid"] == pytest.approx(car_b)
    assert out["carry_ask"] == pytest.approx(car_a)
    for i in range(3):
        eb = _hand(bid_edges[i], 0.8, 1.1, 6.0, 1.0, adv_b, car_b)
        ea = _hand(ask_edges[i], 0.6, 0.9, 6.0, 1.0, adv_a, car_a)
        assert out["bid_epnl"][i] == pytest.approx(eb)
        assert out["ask_epnl"][i] == pytest.approx(ea)
        assert out["bid_epnl_quote"][i] == pytest.approx(eb * 1e-4 * 25.0)
    assert out["bid_pfill"][0] == pytest.approx(1.0 - math.exp(-0.8 * math.exp(-1.1 * 4.0) * 6.0))


def test_downtrend_hurts_bids_helps_asks():
    base = dict(bid_depth=3.0, ask_depth=3.0)
    flat = _step(**base)
    down = _step(mu_hat=-0.1, **base)
    assert np.all(down["bid_epnl"] < flat["bid_epnl"])
    assert np.all(down["ask_epnl"] > flat["ask_epnl"])


def test_positive_funding_costs_bids_pays_asks():
    out = _step(bid_depth=3.0, ask_depth=3.0, f_hat_per_s=1e-7)
    assert out["carry_bid"] > 0 > out["carry_ask"]
    assert out["carry_bid"] == pytest.approx(-out["carry_ask"])  # symmetric depths: same tau_hold


def test_fallbacks_equal_explicit_defaults():
    implicit = _step(bid_depth=3.0, ask_depth=3.0)
    explicit = _step(
        bid_depth=3.0, ask_depth=3.0, center_bps=0.0, mu_hat=0.0, kappa_buy=0.7, kappa_sell=0.7,
        informed_fraction=0.0, as_factor=1.0, a_bid=0.7, a_ask=0.7, k_bid=1.0, k_ask=1.0, f_hat_per_s=0.0,
    )  # fmt: skip
    for k in ("bid_epnl", "ask_epnl", "bid_pfill"):
        np.testing.assert_allclose(implicit[k], explicit[k])
    nan_in = _step(bid_depth=3.0, ask_depth=3.0, mu_hat=np.nan, kappa_buy=np.inf, f_hat_per_s=np.nan)
    np.testing.assert_allclose(nan_in["bid_epnl"], implicit["bid_epnl"])
    assert np.all(np.isnan(implicit["bid_epnl_quote"]))  # no mid


def test_silent_without_depths_and_nan_side():
    h = NodeHarness("quoting.epnl", {"levels": 3})
    assert h.step(T, mu_hat=0.1).emitted == set()
    out = h.step(2 * T, bid_depth=np.nan, ask_depth=3.0)
    assert np.all(np.isnan(out["bid_epnl"])) and np.all(np.isfinite(out["ask_epnl"]))


def test_zero_sigma_and_no_flow():
    out = _step(bid_depth=3.0, ask_depth=3.0, sigma=0.0, informed_fraction=0.5, kappa_buy=0.0)
    assert np.isnan(out["as_ratio_ask"])
    assert np.all(np.isfinite(out["ask_epnl"]))
    assert out["tau_hold_bid"] == 3600.0  # nobody to unwind to: the clip


def test_depth_vec_override_and_levels_beyond():
    h = NodeHarness("quoting.epnl", {"levels": 4}, sizes={"bid_depths": 3})
    out = h.step(T, bid_depth=3.0, ask_depth=3.0, bid_depths=np.array([2.0, 7.0, 11.0]))
    np.testing.assert_allclose(out["bid_edge"][:3], [2.0, 7.0, 11.0])
    assert np.isnan(out["bid_edge"][3]) and np.isnan(out["bid_epnl"][3])
    np.testing.assert_allclose(out["ask_edge"], [3.0, 5.0, 7.0, 9.0])


def test_level_offset_geometric():
    assert level_offset(0, 2.0, 1.5) == 0.0
    assert level_offset(3, 2.0, 1.5) == pytest.approx(2.0 + 3.0 + 4.5)
    assert level_offset(3, 2.0, 1.0) == pytest.approx(6.0)


@settings(max_examples=60, deadline=None)
@given(
    c=st.floats(-20, 20),
    mu=st.floats(-1, 1),
    d=st.floats(0.0, 30.0),
    dc=st.floats(-1e-3, 1e-3),
)
def test_continuous_in_center(c, mu, d, dc):
    """E[PnL] is continuous in every input: a tiny change of the center (inventory skew) moves it little."""
    a = _step(bid_depth=d, ask_depth=d, center_bps=c, mu_hat=mu)
    b = _step(bid_depth=d, ask_depth=d, center_bps=c + dc, mu_hat=mu)
    # Lipschitz bound: |dP/de| net + P (1 + |mu| k tau_hold), P' <= 1/e, |net| <= 52 + 3600 |mu|, k = 1
    lip = 25.0 + 2.0 * 3600.0 * abs(mu)
    for k in ("bid_epnl", "ask_epnl"):
        assert np.max(np.abs(a[k] - b[k])) <= lip * abs(dc) + 1e-9


@settings(max_examples=40, deadline=None)
@given(mu=st.floats(-1, 1), inf=st.floats(0, 1))
def test_pfill_decreases_with_depth(mu, inf):
    out = _step({"levels": 6}, bid_depth=1.0, ask_depth=1.0, mu_hat=mu, informed_fraction=inf)
    assert np.all(np.diff(out["bid_pfill"]) < 0) and np.all((out["bid_pfill"] >= 0) & (out["bid_pfill"] <= 1))


def test_doc_and_registry():
    cls = get_node_type("quoting.epnl")
    assert cls is Epnl and "E[carry | fill]" in cls.doc()


@njit
def _drive(n, kernel, a):
    total = 0
    for k in range(n):
        a[3][0] = 3.0 + 0.01 * k
        a[5][0] = 3.0
        total += kernel(
            np.int64(k), 1.0, a[2], a[3], True, a[5], True, a[7], False, a[9], False, a[11], False,
            a[13], False, a[15], False, a[17], False, a[19], False, a[21], False, a[23], False, a[25], False,
            a[27], False, a[29], False, a[31], False, a[33], False, a[35], False,
            a[37], a[38], a[39], a[40], a[41], a[42], a[43], a[44], a[45], a[46], a[47], a[48], a[49], a[50],
            a[51], a[52],
        )  # fmt: skip
    return total


def test_kernel_does_not_allocate():
    a = tuple(example_args(Epnl(Epnl.Params(levels=6))))
    assert len(a) == 53
    _drive(1, epnl_kernel, a)
    assert allocations(_drive, 1, epnl_kernel, a) == allocations(_drive, 200, epnl_kernel, a)
