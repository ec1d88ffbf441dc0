import math

import numpy as np
import pytest
from flowmm.nodes.quoting.gamma_q import gamma_of_q
from flowmm.nodes.quoting.reservation import Reservation, reservation_kernel
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from pydantic import ValidationError

from flowmm.testing import NodeHarness, allocations, example_args

S = 1_000_000_000
P = {"tau_eff_s": 30.0, "tau_remaining_s": 60.0, "tau_funding_s": 600.0}
ALL = {"r_bps", "price", "drift_shift", "drift_shift_raw", "inventory_penalty", "funding_carry"}


def g(q):
    return gamma_of_q(q, 0.002, 4.0, 8.57)


def test_hand_computation_incident_state():
    """q = +4.87, mu = -0.1 bps/s, sigma = 1.2 bps/sqrt(s), funding +5 bps/h, HYPE at 28.32."""
    f_s = 5e-4 / 3600  # +5 bps per hour as a fraction per second
    out = NodeHarness("quoting.reservation", P).step(
        0, mid=28.32, q=4.87, gamma=g(4.87), sigma=1.2, mu_hat=-0.1, f_hat_per_s=f_s
    )
    gamma = 0.002 * (1 + 4 * (4.87 / 8.57) ** 2)
    drift = -0.1 * 30  # -3 bps
    inv = 4.87 * gamma * 1.44 * 60  # 1.9285 bps
    carry = 5.0 / 3600 * 600  # 0.8333 bps: 5 bps/h held 10 min
    r = drift - inv - carry
    assert out["drift_shift"] == pytest.approx(-3.0) and out["drift_shift_raw"] == pytest.approx(-3.0)
    assert out["inventory_penalty"] == pytest.approx(inv, rel=1e-12)
    assert inv == pytest.approx(1.9285, abs=1e-4)
    assert out["funding_carry"] == pytest.approx(0.83333333, rel=1e-6)
    assert out["r_bps"] == pytest.approx(r, rel=1e-12)
    assert out["price"] == pytest.approx(28.32 * (1 + r * 1e-4), rel=1e-14)
    assert out.emitted == ALL


def test_signs():
    h = lambda **kw: NodeHarness("quoting.reservation", P).step(0, mid=100.0, sigma=1.0, **kw)  # noqa: E731
    assert h(q=2.0, gamma=0.01)["r_bps"] < 0 < h(q=-2.0, gamma=0.01)["r_bps"]  # long -> sell-leaning
    assert h(mu_hat=0.05)["r_bps"] == pytest.approx(1.5)  # upward drift raises r
    assert h(f_hat_per_s=1e-8)["r_bps"] < 0 < h(f_hat_per_s=-1e-8)["r_bps"]  # longs pay: r drops
    # the carry is the marginal contract's: the same for any q (not q * f * tau)
    a, b = h(q=5.0, gamma=0.0, f_hat_per_s=1e-8), h(q=-3.0, gamma=0.0, f_hat_per_s=1e-8)
    assert a["funding_carry"] == b["funding_carry"] == pytest.approx(1e-8 * 1e4 * 600)


def test_bayes_variant_caps_at_two_spreads_seed_004_example():
    """Seed 004 Stage 2: mu = -5 bps/s over 30 s = -150 bps, capped at -2 x 7 = -14 bps."""
    p = {**P, "variant": "bayes"}
    out = NodeHarness("quoting.reservation", p).step(0, mid=28.32, mu_hat=-5.0)
    assert out["drift_shift_raw"] == pytest.approx(-150.0)
    assert out["drift_shift"] == pytest.approx(-14.0) and out["r_bps"] == pytest.approx(-14.0)
    assert out["price"] == pytest.approx(28.32 * (1 - 14e-4))
    out = NodeHarness("quoting.reservation", p).step(0, mu_hat=5.0, spread_bps=3.0)  # cap from the input
    assert out["drift_shift"] == pytest.approx(6.0)
    out = NodeHarness("quoting.reservation", p).step(0, mu_hat=0.1, spread_bps=3.0)  # inside: untouched
    assert out["drift_shift"] == pytest.approx(3.0)
    out = NodeHarness("quoting.reservation", p).step(0, mu_hat=-5.0, spread_bps=math.nan)  # fallback 7
    assert out["drift_shift"] == pytest.approx(-14.0)
    # rfc leaves the same drift uncapped
    out = NodeHarness("quoting.reservation", P).step(0, mu_hat=-5.0, spread_bps=3.0)
    assert out["drift_shift"] == pytest.approx(-150.0)


def test_missing_and_nan_inputs_use_fallbacks():
    p = {**P, "gamma_fallback": 0.01, "sigma_fallback": 2.0, "mu_fallback": 0.02}
    h = NodeHarness("quoting.reservation", p)
    out = h.step(0, q=1.0)  # gamma, sigma, mu, funding unwired
    assert out["inventory_penalty"] == pytest.approx(1.0 * 0.01 * 4.0 * 60)
    assert out["drift_shift"] == pytest.approx(0.6) and out["funding_carry"] == 0.0
    out = NodeHarness("quoting.reservation", p).step(
        0, q=math.nan, gamma=math.nan, sigma=-1.0, mu_hat=math.inf, f_hat_per_s=math.nan
    )
    assert out["inventory_penalty"] == 0.0 and out["drift_shift"] == pytest.approx(0.6)
    assert out["funding_carry"] == 0.0
    out = NodeHarness("quoting.reservation", p).step(0, q=1.0, gamma=-0.5, sigma=math.nan)
    assert out["inventory_penalty"] == pytest.approx(0.01 * 4.0 * 60)


def test_zero_sigma_zeroes_the_inventory_term():
    out = NodeHarness("quoting.reservation", P).step(0, q=8.57, gamma=g(8.57), sigma=0.0, mu_hat=0.1)
    assert out["inventory_penalty"] == 0.0 and out["r_bps"] == pytest.approx(3.0)


def test_q_at_the_limits_is_symmetric():
    h = lambda q: NodeHarness("quoting.reservation", P).step(0, q=q, gamma=g(q), sigma=1.0)  # noqa: E731
    hi, lo = h(8.57), h(-8.57)
    assert hi["inventory_penalty"] == pytest.approx(8.57 * 0.01 * 60)  # gamma(q_max) = 5 gamma_base
    assert lo["r_bps"] == pytest.approx(-hi["r_bps"])


def test_price_withheld_once_without_a_mid_and_back():
    h = NodeHarness("quoting.reservation", P)
    out = h.step(0, mu_hat=0.1)  # no mid yet
    assert math.isnan(out["price"]) and "price" in out.emitted and "r_bps" in out.emitted
    out = h.step(S, mu_hat=0.2)
    assert "price" not in out.emitted and out["r_bps"] == pytest.approx(6.0)
    out = h.step(2 * S, mid=50.0)
    assert out["price"] == pytest.approx(50.0 * (1 + 6e-4)) and "price" in out.emitted
    out = h.step(3 * S, mid=-1.0)
    assert math.isnan(out["price"]) and "price" in out.emitted


def _sweep(p, n, **inputs):
    h = NodeHarness("quoting.reservation", p)
    qs = np.linspace(-8.57, 8.57, n)
    return np.array([h.step(0, q=q, gamma=g(q), mid=30.0, **inputs)["r_bps"] for q in qs])


@pytest.mark.parametrize("variant", ["rfc", "bayes"])
def test_q_sweep_is_continuous_and_decreasing(variant):
    """r_bps over q in [-q_max, q_max]: no jump (halving the step halves the largest move)."""
    p = {**P, "variant": variant}
    kw = {"sigma": 1.0, "mu_hat": -0.3, "f_hat_per_s": 1e-8, "spread_bps": 5.0}
    r1, r2 = _sweep(p, 801, **kw), _sweep(p, 1601, **kw)
    j1, j2 = np.abs(np.diff(r1)).max(), np.abs(np.diff(r2)).max()
    assert j2 < 0.55 * j1
    assert np.all(np.diff(r1) < 0)  # q gamma(q) is increasing: more long, lower r
    assert r1[0] - r1[-1] == pytest.approx(2 * 8.57 * 0.01 * 60)


@settings(max_examples=60, deadline=None)
@given(
    mu=st.floats(-20, 20, allow_nan=False),
    spread=st.floats(0, 50, allow_nan=False),
    mult=st.floats(0, 5, allow_nan=False),
    tau=st.floats(0, 300, allow_nan=False),
)
def test_bayes_cap_bounds_the_shift(mu, spread, mult, tau):
    p = {**P, "variant": "bayes", "cap_mult": mult, "tau_eff_s": tau}
    out = NodeHarness("quoting.reservation", p).step(0, mu_hat=mu, spread_bps=spread)
    cap = mult * spread
    assert abs(out["drift_shift"]) <= cap + 1e-12
    if abs(mu * tau) <= cap:
        assert out["drift_shift"] == out["drift_shift_raw"]
    else:
        assert out["drift_shift"] == pytest.approx(math.copysign(cap, mu * tau))


def test_params_are_validated():
    with pytest.raises(ValidationError):
        Reservation.Params(variant="capped")
    with pytest.raises(ValidationError):
        Reservation.Params(tau_eff_s=-1.0)
    assert Reservation(Reservation.Params(variant="bayes")).pack_params()[0] == 1.0


@njit
def _drive(n, params, state, mid, q, gamma, sigma, mu, f, spread, *outs):
    total = 0
    for k in range(n):
        q[0] = 0.5 * (k % 13) - 3.0
        mid[0] = np.nan if k % 7 == 0 else 30.0
        total += reservation_kernel(
            np.int64(k), 1.0, params, state, mid, True, q, True, gamma, True, sigma, True,
            mu, True, f, True, spread, True, *outs,
        )  # fmt: skip
    return total


def test_kernel_allocates_nothing():
    a = example_args(Reservation(Reservation.Params(variant="bayes")))
    # [now, dt, params, state, 7 x (value, ticked), 6 outputs]
    vals = [a[4 + 2 * i] for i in range(7)]
    for v, x in zip(vals[2:], (0.004, 1.0, -0.2, 1e-8, 4.0)):
        v[0] = x
    args = (a[2], a[3], *vals, *a[18:])
    assert _drive(10, *args) > 0
    assert allocations(_drive, 1, *args) == allocations(_drive, 400, *args)
