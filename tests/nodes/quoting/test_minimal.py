"""quoting.minimal: a symmetric ladder around mid on Hyperliquid's price grid."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowmm.core.node import get_node_type
from flowmm.core.ports import LAD_ASK_PX, LAD_ASK_SZ, LAD_BID_PX, LAD_BID_SZ, LADDER_LEVELS
from flowmm.execution.hyperliquid_rules import valid_px
from flowmm.testing import NodeHarness, run_node

S = 1_000_000_000
HYPE = {"sz_decimals": 2, "is_perp": True}
BTC = {"sz_decimals": 5, "is_perp": True}


def quoter(**params) -> NodeHarness:
    return NodeHarness("quoting.minimal", params)


def sides(ladder: np.ndarray, levels: int):
    return (
        ladder[:levels, LAD_BID_PX].tolist(),
        ladder[:levels, LAD_BID_SZ].tolist(),
        ladder[:levels, LAD_ASK_PX].tolist(),
        ladder[:levels, LAD_ASK_SZ].tolist(),
    )


def test_hype_ladder_by_hand():
    # d_i = 3 + 2i bps around 28.0; grid 0.001 (5 s.f.; 6 - 2 = 4 decimals); bids down, asks up
    h = quoter(half_spread_bps=3.0, level_spacing_bps=2.0, levels=3, size=1.0, **HYPE)
    out = h.step(0, mid=28.0)
    assert out.emitted == {"ladder"}  # first event (dt = 0) emits
    bid_px, bid_sz, ask_px, ask_sz = sides(out["ladder"], 3)
    # raw bids 27.9916, 27.9860, 27.9804; raw asks 28.0084, 28.0140, 28.0196
    assert bid_px == [27.991, 27.986, 27.980]  # 27.9916 rounds down, not to nearest 27.992
    assert ask_px == [28.009, 28.014, 28.020]  # 28.0084 rounds up, not to nearest 28.008
    assert bid_sz == ask_sz == [1.0, 1.0, 1.0]
    assert np.isnan(out["ladder"][3:]).all()  # levels beyond `levels` are empty


def test_btc_ladder_by_hand_spacing_below_one_tick_is_pushed_out():
    # at 97000 the grid is 1 (5 s.f.); 1 bp = 9.7; spacing 0.05 bp = 0.485 < one tick
    h = quoter(half_spread_bps=1.0, level_spacing_bps=0.05, levels=4, size=0.001, **BTC)
    bid_px, bid_sz, ask_px, _ = sides(h.step(0, mid=97000.0)["ladder"], 4)
    # raw bids 96990.30, 96989.815, 96989.33 (-> 96989 again: pushed to 96988), 96988.845 (-> 96987)
    assert bid_px == [96990.0, 96989.0, 96988.0, 96987.0]
    # raw asks 97009.70, 97010.185, 97010.67 (-> 97011 again: pushed to 97012), 97011.155 (-> 97013)
    assert ask_px == [97010.0, 97011.0, 97012.0, 97013.0]
    assert bid_sz == [0.001] * 4


def test_btc_ladder_wide_levels_and_size_rounding():
    h = quoter(half_spread_bps=2.0, level_spacing_bps=5.0, levels=2, size=0.0012345, **BTC)
    bid_px, bid_sz, ask_px, ask_sz = sides(h.step(0, mid=97000.0)["ladder"], 2)
    assert bid_px == [96980.0, 96932.0]  # 96980.6 and 96932.1 rounded down
    assert ask_px == [97020.0, 97068.0]  # 97019.4 and 97067.9 rounded up
    assert bid_sz == ask_sz == [0.00123, 0.00123]  # size rounded down to szDecimals 5


def test_levels_under_the_minimum_order_value_are_dropped():
    # 0.36 contracts: $10 needs px >= 27.78; d = 50, 100, 150 bps around 28.0
    h = quoter(half_spread_bps=50.0, level_spacing_bps=50.0, levels=3, size=0.36, **HYPE)
    bid_px, bid_sz, ask_px, ask_sz = sides(h.step(0, mid=28.0)["ladder"], 3)
    assert bid_px[0] == 27.86 and bid_sz[0] == 0.36  # 27.86 * 0.36 = 10.03
    assert math.isnan(bid_px[1]) and math.isnan(bid_sz[1])  # 27.72 * 0.36 = 9.98 < 10
    assert math.isnan(bid_px[2])  # 27.58: dropped too
    assert ask_px == [28.14, 28.28, 28.42] and ask_sz == [0.36] * 3  # level i stays at d_i
    # the whole ladder goes when no level is worth $10 (BTC 0.0001 = $9.70)
    out = quoter(half_spread_bps=1.0, levels=2, size=0.0001, **BTC).step(0, mid=97000.0)
    assert out.emitted == {"ladder"} and np.isnan(out["ladder"]).all()
    # and min_order_value: 0 keeps them
    out = quoter(half_spread_bps=1.0, levels=2, size=0.0001, min_order_value=0.0, **BTC).step(0, mid=97000.0)
    assert out["ladder"][0, LAD_BID_PX] == 96990.0


def test_nan_mid_withholds_quotes_once_then_quotes_resume():
    h = quoter(half_spread_bps=3.0, levels=2, **HYPE)
    assert not np.isnan(h.step(1 * S, mid=28.0)["ladder"][:2]).any()
    out = h.step(2 * S, mid=math.nan)
    assert out.emitted == {"ladder"} and np.isnan(out["ladder"]).all()
    for t, bad in ((3, math.nan), (4, -1.0), (5, 0.0), (6, math.inf)):
        out = h.step(t * S, mid=bad)
        assert out.emitted == set() and np.isnan(out["ladder"]).all()  # said once
    out = h.step(7 * S, mid=28.0)
    assert out.emitted == {"ladder"} and out["ladder"][0, LAD_BID_PX] == 27.991
    assert h.step(8 * S, mid=math.inf).emitted == {"ladder"}  # withheld again after quoting


def test_invalid_first_mid_emits_an_empty_ladder():
    out = quoter(**HYPE).step(0, mid=math.nan)
    assert out.emitted == {"ladder"} and np.isnan(out["ladder"]).all()


def test_emits_on_every_mid_tick_including_zero_dt_and_not_without_one():
    h = quoter(half_spread_bps=3.0, levels=1, **HYPE)
    a = h.step(5 * S, mid=28.0)
    b = h.step(5 * S, mid=28.0)  # zero dt: same ladder, emitted again
    assert b.emitted == {"ladder"} and np.array_equal(a["ladder"], b["ladder"], equal_nan=True)
    c = h.step(6 * S)  # the mid did not tick: nothing to do
    assert c.emitted == set() and np.array_equal(c["ladder"], a["ladder"], equal_nan=True)
    d = h.step(6 * S, mid=30.0)
    assert d["ladder"][0, LAD_BID_PX] == 29.991 and d["ladder"][0, LAD_ASK_PX] == 30.009


def test_ladder_follows_the_mid_over_a_run():
    mids = [28.0, 28.01, math.nan, 27.5]
    res = run_node("quoting.minimal", {"half_spread_bps": 3.0, **HYPE}, times=np.arange(4) * S, mid=mids)
    assert res.emitted["ladder"].tolist() == [True, True, True, True]
    bids = res["ladder"][:, 0, LAD_BID_PX]
    assert bids[0] == 27.991 and bids[1] == 28.001 and math.isnan(bids[2]) and bids[3] == 27.491


def test_params_are_checked():
    cls = get_node_type("quoting.minimal")
    from pydantic import ValidationError

    for bad in (
        {"levels": 0},
        {"levels": LADDER_LEVELS + 1},
        {"half_spread_bps": 0.0},
        {"size": 0.0},
        {"sz_decimals": 7},  # perps have 6 price decimals at most
        {"half_spread_bps": 5, "typo": 1},
    ):
        with pytest.raises(ValidationError):
            cls.Params(**bad)
    assert cls.Params(sz_decimals=7, is_perp=False).sz_decimals == 7  # spot: 8


@settings(max_examples=300, deadline=None)
@given(
    mid=st.floats(1e-3, 2e6),
    half=st.floats(0.01, 500.0),
    spacing=st.floats(0.0, 200.0),
    levels=st.integers(1, LADDER_LEVELS),
    szd=st.integers(0, 5),
    size=st.floats(1e-5, 1e4),
    min_value=st.sampled_from([0.0, 10.0]),
    is_perp=st.booleans(),
)
def test_every_emitted_ladder_is_ordered_and_on_the_grid(
    mid, half, spacing, levels, szd, size, min_value, is_perp
):
    h = quoter(
        half_spread_bps=half,
        level_spacing_bps=spacing,
        levels=levels,
        size=size,
        sz_decimals=szd,
        is_perp=is_perp,
        min_order_value=min_value,
    )
    lad = h.step(0, mid=mid)["ladder"]
    assert np.isnan(lad[levels:]).all()
    for px_col, sz_col, sign in ((LAD_BID_PX, LAD_BID_SZ, 1), (LAD_ASK_PX, LAD_ASK_SZ, -1)):
        px = lad[:, px_col]
        sz = lad[:, sz_col]
        live = ~np.isnan(px)
        assert np.array_equal(live, ~np.isnan(sz))
        p = px[live]
        assert all(valid_px(float(x), szd, is_perp) for x in p)
        assert np.all(sign * (mid - p) > 0)  # bids < mid < asks
        assert np.all(sign * np.diff(p) < 0)  # bids strictly decrease, asks strictly increase
        assert np.all(p * sz[live] >= min_value)
        assert np.all(sz[live] > 0) and np.all(
            sz[live] <= size + 1e-7 * 10.0**-szd
        )  # down, up to float noise
