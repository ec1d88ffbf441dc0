"""quoting.legacy_margin: the margin split 38.5 / 58.9 of seed 004's table, and its size scales."""

import math

import pytest
from flowmm.nodes.quoting.legacy_margin import LegacyMargin, margin_shares
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from flowmm.testing import NodeHarness

S = 1_000_000_000
T0 = 1_700_000_000 * S


def test_the_logged_split_at_long_4_87():
    """Seed 004 at 00:52:37, long 4.87, inventory_ratio 0.35: 'Split margin 38.5 bid / 58.9 ask'.
    The ratio comes from the PCM (4.87 / 13.728), as in legacy.yaml."""
    r = NodeHarness("quoting.legacy_pcm").step(T0, q=4.87)["inventory_ratio"]
    assert round(r, 2) == 0.35
    out = NodeHarness("quoting.legacy_margin").step(T0, inventory_ratio=r)
    assert round(out["margin_bid"], 1) == 38.5 and round(out["margin_ask"], 1) == 58.9
    assert out["margin_bid"] + out["margin_ask"] == pytest.approx(97.4)
    # by hand: 97.4 / 2 (1 -+ 0.5904 r)
    assert out["margin_bid"] == pytest.approx(48.7 * (1 - 0.5904 * 4.87 / 13.728))
    assert out["bid_size_scale"] == pytest.approx(1 - 0.5904 * 4.87 / 13.728)  # 0.79
    assert out["ask_size_scale"] == pytest.approx(1 + 0.5904 * 4.87 / 13.728)  # 1.21
    assert out.emitted == {"margin_bid", "margin_ask", "bid_size_scale", "ask_size_scale"}


def test_flat_nan_and_extremes():
    flat = NodeHarness("quoting.legacy_margin").step(T0, inventory_ratio=0.0)
    assert (flat["margin_bid"], flat["margin_ask"], flat["bid_size_scale"], flat["ask_size_scale"]) == (
        48.7,
        48.7,
        1.0,
        1.0,
    )
    assert margin_shares(math.nan, 0.59) == (0.5, 0.5)
    assert margin_shares(math.inf, 0.59) == (0.5, 0.5)
    assert margin_shares(5.0, 0.59) == (0.0, 1.0)  # a big long: the whole margin to the asks
    assert margin_shares(-5.0, 0.59) == (1.0, 0.0)
    with pytest.raises(ValidationError):
        LegacyMargin.Params(split=-0.1)


@settings(max_examples=100, deadline=None)
@given(r=st.floats(-3, 3), split=st.floats(0, 2))
def test_shares_sum_to_one_and_mirror(r, split):
    b, a = margin_shares(r, split)
    assert 0.0 <= b <= 1.0 and a == pytest.approx(1.0 - b)
    assert margin_shares(-r, split)[0] == pytest.approx(a)
    if r > 0:
        assert b <= 0.5  # long: the bids never get more than half
