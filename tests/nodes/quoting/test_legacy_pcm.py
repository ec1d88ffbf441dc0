"""quoting.legacy_pcm: Hold / Reduce, effective_inv_ratio and urgency against the incident's log lines."""

import math

import pytest
from flowmm.nodes.quoting.legacy_pcm import LegacyPcm
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from flowmm.testing import NodeHarness

S = 1_000_000_000
T0 = 1_700_000_000 * S


def pcm(q, trend, p, params=None):
    return NodeHarness("quoting.legacy_pcm", params).step(T0, q=q, trend=trend, p_continuation=p)


@pytest.mark.parametrize("q, ratio", [(-0.46, -0.034), (0.19, 0.014), (2.12, 0.15), (4.87, 0.35)])
def test_the_logged_inventory_ratios_are_q_over_13_728(q, ratio):
    """Seed 000: -0.034 at -0.46, 0.014 -> 0.15 at 0.19 -> 2.12; seed 004: 0.35 at 4.87 (each to
    the digits printed; 13.728 is inside the only interval that reproduces all four)."""
    out = pcm(q, -5.0, 0.8)
    assert out["inventory_ratio"] == pytest.approx(q / 13.728)
    assert round(out["inventory_ratio"], 3 if abs(ratio) < 0.1 else 2) == ratio


def test_the_hold_flip_at_22_13_17():
    """Short 0.46: Reduce while the short window bounced up against it (the 22:10:44 sell fill was
    a buyer lifting our ask); the selloff resumes, continuation_p crosses 0.50 -> Hold."""
    h = NodeHarness("quoting.legacy_pcm")
    p = 0.74  # the trend's p_continuation (RFC log, 22:08)
    before = h.step(T0, q=-0.46, trend=+1.2, p_continuation=p)
    assert before["mode"] == -1.0 and before["is_opposed"] == 1.0
    assert before["continuation_p"] == pytest.approx(0.26)
    r = -0.46 / 13.728
    assert before["urgency"] == pytest.approx(1 + 3 * r * r) and before["urgency"] == pytest.approx(
        1.003, abs=5e-4
    )
    assert before["effective_inv_ratio"] == pytest.approx(r * (1 + 3 * r * r))
    assert round(before["effective_inv_ratio"], 2) == -0.03  # "PCM says Reduce, effective_inv_ratio=-0.03"
    after = h.step(T0 + 6 * S, q=-0.46, trend=-2.0, p_continuation=p)
    assert after["mode"] == 1.0 and after["is_opposed"] == 0.0 and after["continuation_p"] == p
    # Phase 4B: Hold passes the raw ratio through, -0.034, not 0
    assert after["effective_inv_ratio"] == pytest.approx(r) and round(r, 3) == -0.034
    assert after["urgency"] == 1.0 and after["effective_q"] == -0.46
    # 22:13:19: the bids are hit through zero to +0.19, now long against the selloff: Reduce again
    long_ = h.step(T0 + 12 * S, q=0.19, trend=-2.0, p_continuation=0.83)
    assert long_["mode"] == -1.0 and long_["is_opposed"] == 1.0
    assert long_["continuation_p"] == pytest.approx(0.17)
    assert round(long_["effective_inv_ratio"], 3) == 0.014


def test_the_trends_own_crossing_of_050_flips_an_aligned_position():
    h = NodeHarness("quoting.legacy_pcm")
    assert h.step(T0, q=-0.46, trend=-3.0, p_continuation=0.49)["mode"] == -1.0
    assert h.step(T0 + S, q=-0.46, trend=-3.0, p_continuation=0.50)["mode"] == -1.0  # not above
    assert h.step(T0 + 2 * S, q=-0.46, trend=-3.0, p_continuation=0.51)["mode"] == 1.0


def test_seed_004_opposed_long_at_0_73():
    out = pcm(4.87, -17.0, 0.73)  # short=-17 bps, continuation_p=0.73, is_opposed=True
    assert out["is_opposed"] == 1.0 and out["continuation_p"] == pytest.approx(0.27)
    assert out["mode"] == -1.0
    r = 4.87 / 13.728
    assert out["urgency"] == pytest.approx(1 + 3 * r * r)  # 1.377
    assert out["effective_q"] == pytest.approx(4.87 * (1 + 3 * r * r))


def test_edges_flat_nan_and_missing_inputs():
    out = pcm(0.0, -5.0, 0.8)
    assert (out["mode"], out["continuation_p"], out["urgency"], out["effective_q"]) == (0.0, 0.5, 1.0, 0.0)
    out = NodeHarness("quoting.legacy_pcm").step(T0)  # nothing wired
    assert out["mode"] == 0.0 and out["inventory_ratio"] == 0.0
    out = pcm(1.0, math.nan, 0.8)  # no trend reading: no view -> Reduce
    assert out["mode"] == -1.0 and out["continuation_p"] == 0.5 and out["is_opposed"] == 0.0
    out = pcm(1.0, 2.0, math.nan)
    assert out["mode"] == -1.0 and out["continuation_p"] == 0.5
    out = pcm(math.inf, 2.0, 0.8)
    assert out["mode"] == 0.0
    out = pcm(0.05, 2.0, 0.8, {"flat_position": 0.1})
    assert out["mode"] == 0.0 and out["urgency"] == 1.0
    with pytest.raises(ValidationError):
        LegacyPcm.Params(ratio_capacity=0.0)


@settings(max_examples=100, deadline=None)
@given(q=st.floats(-20, 20), trend=st.floats(-50, 50), p=st.floats(0, 1))
def test_invariants(q, trend, p):
    """Hold iff continuation_p > 0.5; urgency >= 1 and only in Reduce; effective_q has q's sign and
    at least its size; continuation_p of a position and of its mirror image agree."""
    out = pcm(q, trend, p)
    assert (out["mode"] == 1.0) == (out["continuation_p"] > 0.5 and q != 0.0)
    assert out["urgency"] >= 1.0 and (out["urgency"] == 1.0 or out["mode"] == -1.0)
    assert out["effective_q"] * q >= q * q - 1e-12
    mirror = pcm(-q, -trend, p)
    assert mirror["continuation_p"] == out["continuation_p"] and mirror["mode"] == out["mode"]
