"""quoting.legacy_pre_fill_as: toxicity -> p_informed -> kappa cut -> spread multiplier, per side."""

import math

import pytest
from flowmm.nodes.quoting.legacy_pre_fill_as import LegacyPreFillAs, p_informed
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from flowmm.testing import NodeHarness

S = 1_000_000_000
T0 = 1_700_000_000 * S


def test_seed_004_chain_toxicity_0_68_p_informed_0_323_kappa_2161_to_1813():
    out = NodeHarness("quoting.legacy_pre_fill_as").step(T0, toxicity_bid=0.68, toxicity_ask=0.3)
    assert out["p_informed_bid"] == pytest.approx(0.323)
    assert 2161 * out["bid_kappa_mult"] == pytest.approx(1813, abs=0.5)
    assert out["bid_spread_mult"] == pytest.approx(1 / (1 - 0.161 / 0.323 * 0.323), rel=1e-3)  # 1.19
    # the other side is untouched: separate bid and ask toxicity
    assert (out["p_informed_ask"], out["ask_kappa_mult"], out["ask_spread_mult"]) == (0.0, 1.0, 1.0)


@pytest.mark.parametrize("tox, mult", [(0.524, 1.022), (0.61, 1.109), (0.67, 1.179)])
def test_at_the_incidents_bid_toxicities(tox, mult):
    """RC3's bid_toxicity 0.524 / 0.61 / 0.67: the bid half-spread widened 2-18 %, by hand:
    p = 1.7944 (tox - 0.5), m = 1 / (1 - 0.49857 p)."""
    out = NodeHarness("quoting.legacy_pre_fill_as").step(T0, toxicity_bid=tox)
    p = 0.323 / 0.18 * (tox - 0.5)
    assert out["p_informed_bid"] == pytest.approx(p)
    assert out["bid_spread_mult"] == pytest.approx(1 / (1 - (1 - 1813 / 2161) / 0.323 * p))
    assert out["bid_spread_mult"] == pytest.approx(mult, abs=1e-3)
    assert out["ask_spread_mult"] == 1.0  # not wired: no AS feedback


def test_edges():
    assert p_informed(math.nan, 0.5, 1.8) == 0.0
    assert p_informed(0.2, 0.5, 1.8) == 0.0
    assert p_informed(1.0, 0.5, 10.0) == 1.0
    with pytest.raises(ValidationError):
        LegacyPreFillAs.Params(as_feedback=1.0)  # kappa would reach 0


@settings(max_examples=100, deadline=None)
@given(a=st.floats(0, 1), b=st.floats(0, 1))
def test_monotone_and_at_least_one(a, b):
    lo, hi = min(a, b), max(a, b)
    h = NodeHarness("quoting.legacy_pre_fill_as")
    m_lo = h.step(T0, toxicity_bid=lo)["bid_spread_mult"]
    m_hi = h.step(T0 + S, toxicity_bid=hi)["bid_spread_mult"]
    assert 1.0 <= m_lo <= m_hi <= 1.0 / (1.0 - (1 - 1813 / 2161) / 0.323) + 1e-12
