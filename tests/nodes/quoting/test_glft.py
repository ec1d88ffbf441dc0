import math

import numpy as np
import pytest
from flowmm.nodes.quoting.gamma_q import gamma_of_q
from flowmm.nodes.quoting.glft import Glft, glft_kernel
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from pydantic import ValidationError

from flowmm.testing import NodeHarness, allocations, example_args

MARKET = {"sigma": 0.5, "k_bid": 0.8, "k_ask": 1.25, "a_bid": 0.6, "a_ask": 0.9}


def c1(gamma, size, k):
    """(1/(gamma Delta)) ln(1 + gamma Delta/k), written out by hand."""
    return 1.0 / (gamma * size) * math.log(1.0 + gamma * size / k)


def omega(gamma, sigma, a, k, size):
    """Gueant's sqrt(gamma sigma^2/(2 A Delta k) (1 + gamma Delta/k)^(1 + k/(gamma Delta)))."""
    x = gamma * size / k
    return math.sqrt(gamma * sigma**2 / (2 * a * size * k) * (1 + x) ** (1 + 1 / x))


def run(params, **inputs):
    return NodeHarness("quoting.glft", params).step(0, **inputs)


def test_half_spread_only_around_the_reservation():
    """skew none: depths from the center are c1 per side; from the mid they move by r_bps."""
    out = run({"skew": "none", "order_size": 2.0}, gamma=0.05, r_bps=-4.0, **MARKET)
    b, a = c1(0.05, 2.0, 0.8), c1(0.05, 2.0, 1.25)
    assert out["bid_depth"] == pytest.approx(b, rel=1e-12) and out["ask_depth"] == pytest.approx(a, rel=1e-12)
    assert out["bid_depth_mid"] == pytest.approx(b + 4.0) and out["ask_depth_mid"] == pytest.approx(a - 4.0)
    assert out["skew_bid"] == out["skew_ask"] == 0.0
    assert b == pytest.approx(1.17783, abs=1e-5)  # 10 ln(1.125): a bit under 1/k = 1.25
    assert out.emitted == set(Glft.outputs)


def test_closed_form_inventory_skew_hand_values():
    q, gam, size = 3.0, 0.02, 1.5
    out = run({"skew": "inventory", "order_size": size}, q=q, gamma=gam, **MARKET)
    wb = omega(gam, 0.5, 0.6, 0.8, size)
    wa = omega(gam, 0.5, 0.9, 1.25, size)
    assert out["omega_bid"] == pytest.approx(wb, rel=1e-10) and out["omega_ask"] == pytest.approx(
        wa, rel=1e-10
    )
    bid = c1(gam, size, 0.8) + wb * size / 2 + wb * q
    ask = c1(gam, size, 1.25) + wa * size / 2 - wa * q
    assert out["bid_depth"] == pytest.approx(bid, rel=1e-10) and out["ask_depth"] == pytest.approx(
        ask, rel=1e-10
    )
    assert out["bid_depth_mid"] == out["bid_depth"]  # r_bps unwired: the center is the mid
    assert out["skew_bid"] == pytest.approx(wb * q) and out["skew_ask"] == pytest.approx(-wa * q)
    assert out["drift_skew_bid"] == 0.0
    # long: bids further out, asks closer in; the symmetric market of GLFT 2013 (Delta = 1)
    sym = run({}, q=2.0, gamma=0.002, sigma=0.5, k_bid=1.0, k_ask=1.0, a_bid=0.7, a_ask=0.7)
    w = omega(0.002, 0.5, 0.7, 1.0, 1.0)
    assert w == pytest.approx(0.03117, abs=1e-5)  # bps per contract: tiny at gamma_base
    assert sym["bid_depth"] - sym["ask_depth"] == pytest.approx(2 * w * 2.0)


def test_drift_enters_as_an_inventory_offset():
    gam, mu, sig = 0.02, 0.05, 0.5
    base = run({"skew": "inventory"}, q=1.0, gamma=gam, **MARKET)
    out = run({"skew": "inventory_drift", "max_drift_skew_bps": 1e9}, q=1.0, gamma=gam, mu_hat=mu, **MARKET)
    q_d = mu / (gam * sig**2)  # contracts
    assert out["drift_skew_bid"] == pytest.approx(-out["omega_bid"] * q_d, rel=1e-10)
    assert out["drift_skew_ask"] == pytest.approx(out["omega_ask"] * q_d, rel=1e-10)
    assert out["bid_depth"] == pytest.approx(base["bid_depth"] - out["omega_bid"] * q_d)
    assert out["ask_depth"] == pytest.approx(base["ask_depth"] + out["omega_ask"] * q_d)
    # with q = mu/(gamma sigma^2) the drift cancels the inventory skew exactly
    flat = run({"skew": "inventory_drift", "max_drift_skew_bps": 1e9}, q=q_d, gamma=gam, mu_hat=mu, **MARKET)
    assert flat["skew_bid"] == pytest.approx(0.0, abs=1e-12) and flat["skew_ask"] == pytest.approx(
        0.0, abs=1e-12
    )


def test_drift_skew_clipped_and_sigma_floored():
    p = {"skew": "inventory_drift", "max_drift_skew_bps": 10.0, "sigma_floor": 0.0}
    out = run(p, gamma=0.002, mu_hat=-0.5, **{**MARKET, "sigma": 0.0})  # mu/(gamma sigma^2) -> inf
    assert out["drift_skew_bid"] == 10.0 and out["drift_skew_ask"] == -10.0  # downtrend: bids back off
    assert out["omega_bid"] == 0.0 and math.isfinite(out["bid_depth"])
    out = run(p, gamma=0.0, mu_hat=0.5, **MARKET)  # risk-neutral: the cap binds
    assert out["drift_skew_bid"] == -10.0 and out["bid_depth"] == pytest.approx(1 / 0.8 - 10.0)


def test_zero_sigma_and_zero_gamma_limits():
    out = run({"skew": "inventory", "sigma_floor": 0.0}, q=5.0, gamma=0.02, **{**MARKET, "sigma": 0.0})
    assert out["skew_bid"] == 0.0 and out["bid_depth"] == pytest.approx(c1(0.02, 1.0, 0.8))
    g0 = run({"skew": "none"}, gamma=0.0, **MARKET)
    g1 = run({"skew": "none"}, gamma=1e-12, **MARKET)
    assert g0["bid_depth"] == 1 / 0.8 and g1["bid_depth"] == pytest.approx(1 / 0.8, rel=1e-11)


def test_model_b_xi_zero():
    out = run({"skew": "inventory", "xi": 0.0}, q=1.0, gamma=0.02, **MARKET)
    w = math.sqrt(0.02 * 0.25 * math.e / (2 * 0.6 * 0.8))
    assert out["omega_bid"] == pytest.approx(w, rel=1e-12)
    assert out["bid_depth"] == pytest.approx(1 / 0.8 + w / 2 + w)


def test_missing_and_invalid_inputs_use_fallbacks():
    p = {"gamma_fallback": 0.01, "sigma_fallback": 0.7, "k_fallback": 0.9, "a_fallback": 0.5}
    ref = run(p, q=2.0, gamma=0.01, sigma=0.7, k_bid=0.9, k_ask=0.9, a_bid=0.5, a_ask=0.5)
    for kw in (
        {"q": 2.0},
        {"q": 2.0, "gamma": math.nan, "sigma": -1.0, "k_bid": 0.0, "k_ask": -2.0, "a_bid": math.inf},
        {"q": 2.0, "a_ask": 0.0, "k_bid": math.nan, "mu_hat": math.nan, "r_bps": math.nan},
    ):
        out = run(p, **kw)
        for port in Glft.outputs:
            assert out[port] == pytest.approx(ref[port], rel=1e-12), (kw, port)
    assert run(p, q=math.nan)["skew_bid"] == 0.0  # unknown position: flat


def test_floor_on_the_depth_from_mid():
    out = run({"skew": "none", "min_depth_bps": 1.5}, gamma=0.01, r_bps=-20.0, **MARKET)
    assert out["ask_depth_mid"] == 1.5  # r 20 bps under the mid would put the ask through it
    assert out["ask_depth"] == pytest.approx(21.5)  # from the center, consistently
    assert out["bid_depth_mid"] == pytest.approx(c1(0.01, 1.0, 0.8) + 20.0)


def test_the_maker_fee_shifts_both_depths_by_itself():
    """A fill at depth d earns d - fee: the fee adds to c1 and nothing else moves (skew, omega)."""
    for skew in ("none", "inventory", "inventory_drift"):
        base = run({"skew": skew}, q=2.0, gamma=0.01, mu_hat=-0.05, r_bps=-1.0, **MARKET)
        fee = run({"skew": skew, "fee_bps": 1.5}, q=2.0, gamma=0.01, mu_hat=-0.05, r_bps=-1.0, **MARKET)
        for port in ("bid_depth", "ask_depth", "bid_depth_mid", "ask_depth_mid", "half_bid", "half_ask"):
            assert fee[port] == pytest.approx(base[port] + 1.5, rel=1e-12), (skew, port)
        for port in ("skew_bid", "skew_ask", "omega_bid", "omega_ask"):
            assert fee[port] == base[port]
    rebate = run({"skew": "none", "fee_bps": -0.2}, gamma=0.01, **MARKET)
    assert rebate["half_bid"] == pytest.approx(c1(0.01, 1.0, 0.8) - 0.2)


def _sweep(params, n, q_max=8.57, **inputs):
    h = NodeHarness("quoting.glft", params)
    rows = []
    for q in np.linspace(-q_max, q_max, n):
        out = h.step(0, q=q, gamma=gamma_of_q(q, 0.002, 4.0, q_max), **inputs)
        rows.append((out["bid_depth_mid"], out["ask_depth_mid"], out["skew_bid"]))
    return np.array(rows)


@pytest.mark.parametrize("skew", ["none", "inventory", "inventory_drift"])
def test_q_sweep_is_continuous(skew):
    kw = {**MARKET, "mu_hat": -0.05, "r_bps": -1.0}
    a, b = _sweep({"skew": skew}, 801, **kw), _sweep({"skew": skew}, 1601, **kw)
    ja, jb = np.abs(np.diff(a, axis=0)).max(), np.abs(np.diff(b, axis=0)).max()
    if skew == "none":  # depths move only through gamma(q) in c1: tiny but smooth
        assert jb <= 0.55 * ja + 1e-15
    else:
        assert jb < 0.55 * ja
    if skew == "inventory":  # omega(gamma(q)) q is increasing (the drift part varies as 1/sqrt(gamma(q)))
        assert np.all(np.diff(a[:, 2]) > 0)


@settings(max_examples=40, deadline=None)
@given(
    gb=st.floats(1e-4, 0.1),
    beta=st.floats(0, 10),
    size=st.floats(0.1, 5),
    sigma=st.floats(0.05, 3),
    k=st.floats(0.05, 5),
    a=st.floats(0.05, 5),
)
def test_symmetric_market_skew_is_odd_and_spread_even_in_q(gb, beta, size, sigma, k, a):
    m = {"sigma": sigma, "k_bid": k, "k_ask": k, "a_bid": a, "a_ask": a}
    p = {"order_size": size}
    for q in (0.3, 2.0, 8.57):
        up = run(p, q=q, gamma=gamma_of_q(q, gb, beta, 8.57), **m)
        dn = run(p, q=-q, gamma=gamma_of_q(-q, gb, beta, 8.57), **m)
        assert up["bid_depth"] == pytest.approx(dn["ask_depth"], rel=1e-9)
        assert up["bid_depth"] + up["ask_depth"] == pytest.approx(dn["bid_depth"] + dn["ask_depth"], rel=1e-9)
        assert up["bid_depth"] > up["ask_depth"]  # long: the bid backs off


def test_params_are_validated():
    with pytest.raises(ValidationError):
        Glft.Params(skew="zones")
    with pytest.raises(ValidationError):
        Glft.Params(order_size=0.0)
    with pytest.raises(ValidationError):
        Glft.Params(k_fallback=0.0)
    packed = Glft(Glft.Params(skew="inventory_drift")).pack_params()
    assert packed[0] == 2.0 and math.isnan(packed[2])  # skew index, xi None


@njit
def _drive(n, params, q, gam, sig, kb, ka, ab, aa, mu, r, *outs):
    total = 0
    for k in range(n):
        q[0] = 0.5 * (k % 13) - 3.0
        total += glft_kernel(
            np.int64(k), 1.0, params, q, True, gam, True, sig, True, kb, True, ka, True,
            ab, True, aa, True, mu, True, r, True, *outs,
        )  # fmt: skip
    return total


def test_kernel_allocates_nothing():
    a = example_args(Glft(Glft.Params(skew="inventory_drift", min_depth_bps=0.5)))
    # [now, dt, params, 9 x (value, ticked), 12 outputs]
    vals = [a[3 + 2 * i] for i in range(9)]
    for v, x in zip(vals[1:], (0.004, 0.5, 0.8, 1.2, 0.6, 0.9, -0.05, -1.0)):
        v[0] = x
    args = (a[2], *vals, *a[21:])
    assert _drive(10, *args) == 10 * 4095
    assert allocations(_drive, 1, *args) == allocations(_drive, 400, *args)
