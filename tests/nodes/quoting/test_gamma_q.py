import math

import numpy as np
import pytest
from flowmm.nodes.quoting.gamma_q import GammaQ, gamma_of_q, gamma_q_kernel
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from pydantic import ValidationError

from flowmm.testing import NodeHarness, allocations, example_args

P = {"gamma_base": 0.002, "beta": 4.0, "q_max": 8.57}


@pytest.mark.parametrize("u, ratio", [(0.0, 1.0), (0.25, 1.25), (0.5, 2.0), (0.75, 3.25), (1.0, 5.0)])
def test_seed_table(u, ratio):
    """Seed 000 Component 4's table (beta = 4), both signs of q."""
    for sign in (1.0, -1.0):
        out = NodeHarness("quoting.gamma_q", P).step(0, q=sign * u * 8.57)
        assert out["ratio"] == pytest.approx(ratio)
        assert out["gamma"] == pytest.approx(0.002 * ratio)
        assert out["u"] == pytest.approx(sign * u)
        assert out.emitted == {"gamma", "u", "ratio"}


def test_hand_value_and_growth_beyond_q_max():
    out = NodeHarness("quoting.gamma_q", {"gamma_base": 0.01, "beta": 2.0, "q_max": 4.0}).step(0, q=-6.0)
    assert out["gamma"] == pytest.approx(0.01 * (1 + 2.0 * 1.5**2))  # no clip past the limit


@pytest.mark.parametrize("q", [math.nan, math.inf, -math.inf])
def test_non_finite_position_counts_as_flat(q):
    out = NodeHarness("quoting.gamma_q", P).step(0, q=q)
    assert out["gamma"] == 0.002 and out["u"] == 0.0 and out["ratio"] == 1.0


def test_unwired_position_gives_gamma_base():
    h = NodeHarness("quoting.gamma_q", P)
    out = h.step(0)
    assert out["gamma"] == 0.002 and out.emitted == {"gamma", "u", "ratio"}


def test_clock_alone_emits_gamma_then_q_takes_over():
    h = NodeHarness("quoting.gamma_q", P)
    out = h.step(0, clock=0.0)  # no fill yet: the position has not ticked
    assert out["gamma"] == 0.002 and "gamma" in out.emitted
    out = h.step(1, q=8.57)
    assert out["gamma"] == pytest.approx(0.01)
    assert h.step(2, clock=1.0)["gamma"] == pytest.approx(0.01)  # keeps the last position


def test_helper_matches_kernel():
    h = NodeHarness("quoting.gamma_q", P)
    for q in np.linspace(-10, 10, 41):
        assert h.step(0, q=q)["gamma"] == gamma_of_q(q, 0.002, 4.0, 8.57)


@settings(max_examples=80, deadline=None)
@given(
    q=st.floats(-20, 20, allow_nan=False),
    gb=st.floats(0, 1),
    beta=st.floats(0, 20),
    qmax=st.floats(0.1, 50),
)
def test_even_convex_and_at_least_gamma_base(q, gb, beta, qmax):
    g = gamma_of_q(q, gb, beta, qmax)
    assert g == pytest.approx(gamma_of_q(-q, gb, beta, qmax), rel=1e-12, abs=0)
    assert g >= gb * (1 - 1e-12)
    assert gamma_of_q(abs(q) + 0.1, gb, beta, qmax) >= g  # grows with |q|


def test_continuous_in_q_no_zone_jumps():
    """Sweep q across [-q_max, q_max]: halving the step halves the largest jump (no step anywhere)."""

    def max_jump(n):
        qs = np.linspace(-8.57, 8.57, n)
        return np.abs(np.diff([gamma_of_q(q, 0.002, 4.0, 8.57) for q in qs])).max()

    j1, j2 = max_jump(1001), max_jump(2001)
    assert j2 < 0.55 * j1
    assert j1 <= 0.002 * 4.0 * 2 / 8.57 * (2 * 8.57 / 1000) * 1.01  # |dgamma/dq| <= 2 gb beta/q_max


def test_params_are_validated():
    with pytest.raises(ValidationError):
        GammaQ.Params(q_max=0.0)
    with pytest.raises(ValidationError):
        GammaQ.Params(gamma_base=-1.0)
    with pytest.raises(ValidationError):
        GammaQ.Params(zones=3)


@njit
def _drive(n, params, q, *outs):
    total = 0
    for k in range(n):
        q[0] = 0.1 * (k % 17) - 0.8
        total += gamma_q_kernel(np.int64(k), 1.0, params, q, True, q, False, *outs)
    return total


def test_kernel_allocates_nothing():
    a = example_args(GammaQ())  # [now, dt, params, q, ticked, clock, ticked, 3 outputs]
    args = (a[2], a[3], *a[7:])
    assert _drive(10, *args) == 70
    assert allocations(_drive, 1, *args) == allocations(_drive, 400, *args)
