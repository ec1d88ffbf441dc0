"""quoting.sizing: the RFC optimum against hand computation, posterior sizing and its hysteresis."""

from __future__ import annotations

import numpy as np
import pytest
from flowmm.nodes.quoting.sizing import Sizing, inventory_size, optimal_size, sizing_kernel, target_inventory
from hypothesis import example, given, settings
from hypothesis import strategies as st
from numba import njit
from pydantic import ValidationError

from flowmm.testing import NodeHarness, allocations, example_args

T = 1_000_000_000
Q = 8.57


def _rfc(params=None, **inp):
    h = NodeHarness("quoting.sizing", {"levels": 3, **(params or {})}, sizes={"bid_epnl": 3, "ask_epnl": 3})
    return h.step(T, **inp)


def _grid_argmax(e, q, side, c, b, cap):
    s = np.linspace(0, cap, 200_001)
    f = s * e - c * (1 + b * (q + side * s) ** 2) * s * s
    return s[np.argmax(f)]


def test_closed_form_current_gamma():
    e = np.array([0.5, 0.2, -0.1])
    out = _rfc({"gamma_at": "current", "gamma_base": 0.002, "beta": 4.0, "tau_s": 60.0}, bid_epnl=e,
               ask_epnl=e, q=2.0, sigma=1.5)  # fmt: skip
    c = 0.002 * 1.5**2 * 60.0
    q = 2.0
    s0 = 0.5 / (2 * c * (1 + 4 * (q / Q) ** 2))
    s1 = 0.2 / (2 * c * (1 + 4 * ((q + s0) / Q) ** 2))  # level 1 at the inventory after level 0
    assert out["bid_sizes"][0] == pytest.approx(s0)
    assert out["bid_sizes"][1] == pytest.approx(s1)
    assert out["bid_sizes"][2] == 0.0  # E <= 0: no size
    a0 = 0.5 / (2 * c * (1 + 4 * (q / Q) ** 2))
    assert out["ask_sizes"][0] == pytest.approx(a0)
    assert out["ask_sizes"][1] == pytest.approx(0.2 / (2 * c * (1 + 4 * ((q - a0) / Q) ** 2)))
    assert out["bid_total"] == pytest.approx(s0 + s1)


@settings(max_examples=80, deadline=None)
@given(
    e=st.floats(0.01, 50.0), q=st.floats(-Q, Q), side=st.sampled_from([1.0, -1.0]),
    c=st.floats(0.01, 2.0), beta=st.floats(0.0, 8.0),
)  # fmt: skip
def test_post_fill_is_global_argmax(e, q, side, c, beta):
    b = beta / Q**2
    cap = max(Q - side * q, 0.0)
    s = optimal_size(e, q, side, c, b, cap, True)
    ref = _grid_argmax(e, q, side, c, b, cap)

    def f(x):
        return x * e - c * (1 + b * (q + side * x) ** 2) * x * x

    assert f(s) >= f(ref) - 1e-9 * max(1.0, abs(f(ref)))
    assert 0.0 <= s <= cap + 1e-12


def test_post_fill_side_aware_hand():
    # long q: the bid's post-fill gamma is higher than the ask's, so the bid is smaller
    e, q, c, b = 1.0, 4.0, 0.12, 4.0 / Q**2
    sb = optimal_size(e, q, 1.0, c, b, Q - q, True)
    sa = optimal_size(e, q, -1.0, c, b, Q + q, True)
    assert sb < sa
    # stationarity: E = 2 c s [1 + b (q + side s)(q + 2 side s)]
    assert e == pytest.approx(2 * c * sb * (1 + b * (q + sb) * (q + 2 * sb)), rel=1e-9)


@settings(max_examples=80, deadline=None)
@given(y=st.floats(-500.0, 500.0), beta=st.floats(0.0, 8.0))
@example(y=16.0, beta=5.960464477539063e-08)  # b ~ 1e-9: u = 8 - 8.3e-7, not y/2
def test_target_inventory_is_the_real_root_of_the_marginal(y, beta):
    b = beta / Q**2
    u = target_inventory(y, b)
    assert 2 * u + 4 * b * u**3 == pytest.approx(y, rel=1e-9, abs=1e-9)
    # reference: bisection of the increasing h'(u) - y on a bracket [-|y|/2, |y|/2] (exact at
    # any b, where numpy's companion matrix is ill-conditioned as b -> 0)
    lo, hi = -abs(y) / 2 - 1.0, abs(y) / 2 + 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if 2 * mid + 4 * b * mid**3 < y else (lo, mid)
    assert u == pytest.approx(0.5 * (lo + hi), rel=1e-9, abs=1e-12)  # the only real root


@settings(max_examples=80, deadline=None)
@given(
    e=st.floats(-20.0, 20.0), q=st.floats(-Q, Q), side=st.sampled_from([1.0, -1.0]),
    c=st.floats(0.01, 2.0), beta=st.floats(0.0, 8.0),
)  # fmt: skip
def test_inventory_risk_size_is_the_argmax(e, q, side, c, beta):
    """s E - c [h(q + side s) - h(q)], h(x) = x^2 (1 + b x^2): brute force on a grid."""
    b = beta / Q**2
    cap = max(Q - side * q, 0.0)
    s = inventory_size(e, q, side, c, b, cap)
    grid = np.linspace(0, cap, 200_001)

    def f(x):
        u = q + side * x
        return x * e - c * (u * u * (1 + b * u * u) - q * q * (1 + b * q * q))

    assert f(s) >= f(grid).max() - 1e-9 * max(1.0, abs(f(grid).max()))
    assert 0.0 <= s <= cap + 1e-12


def test_inventory_risk_keeps_the_reducing_side_quoting():
    """Long 6 with E[PnL] of the ask negative (its price under the mid): the literal forms quote
    nothing and the position is stranded; the inventory form sells down toward its target."""
    e_bid = np.array([-2.0, -3.0, -4.0])
    e_ask = np.array([-0.5, -1.0, -1.5])
    literal = _rfc({"gamma_at": "current"}, bid_epnl=e_bid, ask_epnl=e_ask, q=6.0, sigma=1.0)
    assert literal["ask_total"] == 0.0 and literal["bid_total"] == 0.0
    out = _rfc({"gamma_at": "inventory"}, bid_epnl=e_bid, ask_epnl=e_ask, q=6.0, sigma=1.0)
    assert out["bid_total"] == 0.0
    c, b = 0.002 * 60.0, 4.0 / Q**2  # defaults: gamma_base 0.002, tau 60 s, beta 4, sigma 1
    u0 = target_inventory(0.5 / c, b)  # h'(u) = side E / c with side -1, E -0.5
    assert out["ask_sizes"][0] == pytest.approx(6.0 - u0)
    u1 = target_inventory(1.0 / c, b)
    assert out["ask_sizes"][1] == pytest.approx(max(u0 - u1, 0.0), abs=1e-12)
    flat = _rfc({"gamma_at": "inventory"}, bid_epnl=e_bid, ask_epnl=e_ask, q=0.0, sigma=1.0)
    assert flat["ask_total"] == 0.0 and flat["bid_total"] == 0.0  # flat: nothing to reduce, E < 0


def test_edge_cases():
    assert optimal_size(-1.0, 0.0, 1.0, 0.1, 0.05, 5.0, True) == 0.0
    assert optimal_size(np.nan, 0.0, 1.0, 0.1, 0.05, 5.0, True) == 0.0
    assert optimal_size(1.0, 0.0, 1.0, 0.0, 0.05, 5.0, True) == 5.0  # sigma 0: the whole headroom
    e = np.array([5.0, 5.0, 5.0])
    at_max = _rfc(bid_epnl=e, ask_epnl=e, q=Q, sigma=1.0)
    assert np.all(at_max["bid_sizes"] == 0.0) and at_max["ask_sizes"][0] > 0  # no bid headroom at +q_max
    at_min = _rfc(bid_epnl=e, ask_epnl=e, q=-Q, sigma=1.0)
    assert np.all(at_min["ask_sizes"] == 0.0)
    h = NodeHarness("quoting.sizing", {"levels": 3})
    assert h.step(T, q=1.0).emitted == set()  # rfc without E[PnL]: silent
    zero_sigma = _rfc({"gamma_at": "current"}, bid_epnl=e, ask_epnl=e, q=0.0, sigma=0.0)
    assert zero_sigma["bid_total"] == pytest.approx(Q)  # headroom-capped, never beyond


def test_headroom_never_exceeded():
    e = np.full(3, 40.0)
    out = _rfc({"gamma_base": 1e-5}, bid_epnl=e, ask_epnl=e, q=6.0, sigma=1.0)
    assert out["bid_total"] <= Q - 6.0 + 1e-9
    assert out["ask_total"] <= Q + 6.0 + 1e-9


def _sweep_max_jump(params):
    h = NodeHarness("quoting.sizing", {"levels": 6, **params}, sizes={"bid_epnl": 6, "ask_epnl": 6})
    e = np.array([0.8, 0.5, 0.3, 0.2, 0.1, 0.05])
    prev, worst = None, 0.0
    for k, q in enumerate(np.linspace(-Q, Q, 4001)):
        out = h.step((k + 1) * T, bid_epnl=e, ask_epnl=e, q=q, sigma=1.0)
        cur = np.concatenate([out["bid_sizes"], out["ask_sizes"]])
        if prev is not None:
            worst = max(worst, float(np.max(np.abs(cur - prev))))
        prev = cur
    return worst


def test_post_fill_jumps_where_documented():
    """The literal gamma(q + side s) objective is non-concave on the reducing side at large |q|."""
    assert _sweep_max_jump({"gamma_at": "post_fill"}) > 1.0
    assert _sweep_max_jump({"gamma_at": "post_fill", "beta": 2.0}) < 0.01  # beta (q/q_max)^2 <= 2


@pytest.mark.parametrize("gamma_at", ["current", "inventory"])
def test_q_sweep_continuous_rfc(gamma_at):
    """Sizes continuous in q from -q_max to q_max (gamma_at current / inventory, realistic E)."""
    h = NodeHarness(
        "quoting.sizing", {"levels": 6, "gamma_at": gamma_at}, sizes={"bid_epnl": 6, "ask_epnl": 6}
    )
    e = np.array([0.8, 0.5, 0.3, 0.2, 0.1, 0.05])
    prev = None
    for k, q in enumerate(np.linspace(-Q, Q, 4001)):
        out = h.step((k + 1) * T, bid_epnl=e, ask_epnl=e, q=q, sigma=1.0)
        cur = np.concatenate([out["bid_sizes"], out["ask_sizes"]])
        if prev is not None:
            assert np.max(np.abs(cur - prev)) < 0.01  # step dq = 0.0043
        prev = cur


def test_posterior_hand_and_hysteresis():
    h = NodeHarness(
        "quoting.sizing", {"mode": "posterior", "levels": 3, "base_size": 0.6, "level_decay": 0.5}
    )
    out = h.step(T, q=2.0, p_down=0.6)
    w = np.array([1.0, 0.5, 0.25])
    np.testing.assert_allclose(out["bid_sizes"], 0.6 * w * 0.4 * (Q - 2.0) / Q)
    np.testing.assert_allclose(out["ask_sizes"], 0.6 * w * 0.6 * 1.0)
    assert out["reduce_only"] == 0.0
    out = h.step(2 * T, q=2.0, p_down=0.86)  # enters reduce-only: ask-only, the position in total
    assert out["reduce_only"] == 1.0 and out["bid_total"] == 0.0
    np.testing.assert_allclose(out["ask_sizes"], 2.0 * w / w.sum())
    assert h.step(3 * T, q=2.0, p_down=0.75)["reduce_only"] == 1.0  # between 0.70 and 0.85: stays
    out = h.step(4 * T, q=2.0, p_down=0.69)  # below p_resume: leaves
    assert out["reduce_only"] == 0.0 and out["bid_total"] > 0
    assert h.step(5 * T, q=2.0, p_down=0.75)["reduce_only"] == 0.0  # does not re-enter at 0.75
    # mirrored for a short; leaving also when flat
    assert h.step(6 * T, q=-1.0, p_down=0.1)["reduce_only"] == -1.0
    assert h.step(7 * T, q=-1.0, p_down=0.2)["reduce_only"] == -1.0
    assert h.step(8 * T, q=0.0, p_down=0.2)["reduce_only"] == 0.0
    # long but bullish: no reduce-only
    assert h.step(9 * T, q=3.0, p_down=0.1)["reduce_only"] == 0.0


def test_posterior_defaults_nan_and_max_reduce():
    h = NodeHarness("quoting.sizing", {"mode": "posterior", "levels": 2, "max_reduce_size": 1.0})
    out = h.step(T)  # nothing wired: flat, p = 0.5
    np.testing.assert_allclose(out["bid_sizes"], [0.3, 0.3])
    out = h.step(2 * T, q=4.0, p_down=0.99)
    assert out["ask_total"] == pytest.approx(1.0)
    with pytest.raises(ValidationError):
        Sizing.Params(p_reduce=0.7, p_resume=0.8)


def test_posterior_epnl_gate():
    h = NodeHarness("quoting.sizing", {"mode": "posterior", "levels": 2, "epnl_gate": True},
                    sizes={"bid_epnl": 2, "ask_epnl": 2})  # fmt: skip
    out = h.step(T, q=0.0, p_down=0.5, bid_epnl=np.array([0.1, -0.1]), ask_epnl=np.array([np.nan, 0.2]))
    np.testing.assert_allclose(out["bid_sizes"], [0.3, 0.0])
    np.testing.assert_allclose(out["ask_sizes"], [0.0, 0.3])


def test_kernel_does_not_allocate():
    a = tuple(example_args(Sizing(Sizing.Params(levels=6))))
    _drive2(1, sizing_kernel, a)
    assert allocations(_drive2, 1, sizing_kernel, a) == allocations(_drive2, 200, sizing_kernel, a)


@njit
def _drive2(n, kernel, a):
    total = 0
    for k in range(n):
        a[4][0] = 0.5
        a[6][0] = 0.4
        a[8][0] = -4.0 + 0.01 * k
        total += kernel(
            np.int64(k), 1.0, a[2], a[3], a[4], True, a[6], True, a[8], True, a[10], False, a[12], False,
            a[14], a[15], a[16], a[17], a[18],
        )  # fmt: skip
    return total
