"""quoting.ladder: geometric levels on Hyperliquid's grid, $10 minimum, post-only, continuity."""

from __future__ import annotations

import math

import numpy as np
import pytest
from flowmm.nodes.quoting.ladder import Ladder, ladder_kernel
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from flowmm.core.node import get_node_type
from flowmm.core.ports import (
    ASK_PX,
    BID_PX,
    BOOK_LEVELS,
    LAD_ASK_PX,
    LAD_ASK_SZ,
    LAD_BID_PX,
    LAD_BID_SZ,
    LADDER_LEVELS,
)
from flowmm.execution.hyperliquid_rules import min_size_for_value, tick_at, valid_px
from flowmm.testing import NodeHarness, allocations, example_args

S = 1_000_000_000
HYPE = {"sz_decimals": 2, "is_perp": True}
BTC = {"sz_decimals": 5, "is_perp": True}


def harness(levels=3, **params) -> NodeHarness:
    return NodeHarness("quoting.ladder", {"levels": levels, **params}, sizes={"bid_sizes": 8, "ask_sizes": 8})


def book(best_bid: float, best_ask: float) -> np.ndarray:
    b = np.full((BOOK_LEVELS, 6), np.nan)
    b[0, BID_PX], b[0, ASK_PX] = best_bid, best_ask
    return b


def vec(*xs: float) -> np.ndarray:
    v = np.full(8, np.nan)
    v[: len(xs)] = xs
    return v


def col(out, c, n=3):
    return out["ladder"][:n, c].tolist()


def test_geometric_levels_by_hand_hype():
    # touch 3 bps, gaps 2, 4 (ratio 2): offsets 0, 2, 6 bps around 28.0; grid 0.001
    out = harness(3, level_spacing_bps=2.0, level_ratio=2.0, **HYPE).step(
        0, mid=28.0, bid_depth=3.0, ask_depth=3.0
    )
    # raw bids 27.9916, 27.9860, 27.97480; raw asks 28.0084, 28.0140, 28.0252
    assert col(out, LAD_BID_PX) == [27.991, 27.986, 27.974]  # down, never to nearest
    assert col(out, LAD_ASK_PX) == [28.009, 28.014, 28.026]  # up
    assert col(out, LAD_BID_SZ) == col(out, LAD_ASK_SZ) == [1.0, 1.0, 1.0]  # `size` fallback
    assert np.isnan(out["ladder"][3:]).all()
    assert out["bid_touch_bps"] == pytest.approx((28.0 - 27.991) / 28.0 * 1e4)
    assert out["post_only_bid"] == 0.0 and out["post_only_ask"] == 0.0


def test_btc_integer_grid_five_sig_figs_and_size_decimals():
    # at 97000 the grid is 1 (5 s.f.); sizes rounded down to 5 decimals
    h = harness(2, level_spacing_bps=5.0, **BTC)
    out = h.step(
        0, mid=97000.0, bid_depth=2.0, ask_depth=2.0, bid_sizes=vec(0.0012345, 0.002), ask_sizes=vec(0.001)
    )
    assert col(out, LAD_BID_PX, 2) == [96980.0, 96932.0]  # 96980.6, 96932.1 rounded down
    assert col(out, LAD_ASK_PX, 1) == [97020.0]  # 97019.4 rounded up
    assert col(out, LAD_BID_SZ, 2) == [0.00123, 0.002]
    assert out["ladder"][0, LAD_ASK_SZ] == 0.001 and math.isnan(out["ladder"][1, LAD_ASK_PX])  # vec entry NaN
    out = harness(2, level_spacing_bps=5.0, **BTC).step(0, mid=97000.0, bid_depth=2.0, ask_depth=2.0)
    assert col(out, LAD_ASK_PX, 2) == [97020.0, 97068.0]  # 97067.9 rounded up
    # above 100 000 every integer is valid (6 significant figures allowed)
    out = harness(1, **BTC).step(0, mid=123456.0, bid_depth=1.0, ask_depth=1.0)
    assert col(out, LAD_BID_PX, 1) == [123443.0] and col(out, LAD_ASK_PX, 1) == [123469.0]
    # spacing below one tick: pushed out one tick, strictly monotone
    out = harness(3, level_spacing_bps=0.05, **BTC).step(0, mid=97000.0, bid_depth=1.0, ask_depth=1.0)
    assert col(out, LAD_BID_PX) == [96990.0, 96989.0, 96988.0]
    assert col(out, LAD_ASK_PX) == [97010.0, 97011.0, 97012.0]


def test_center_price_and_center_bps():
    h = harness(1, post_only=False, **HYPE)  # the ask lands below the mid: allowed here
    # center 27.972 = mid - 10 bps; depths from it in bps of the mid: 27.972 -+ 28.0 x 7e-4
    out = h.step(0, mid=28.0, center=27.972, bid_depth=7.0, ask_depth=7.0)
    assert out["center_used_bps"] == pytest.approx(-10.0)
    assert col(out, LAD_BID_PX, 1) == [27.952] and col(out, LAD_ASK_PX, 1) == [27.992]
    out = harness(1, post_only=False, **HYPE).step(
        0, mid=28.0, center_bps=-10.0, bid_depth=7.0, ask_depth=7.0
    )
    assert col(out, LAD_BID_PX, 1) == [27.952] and col(out, LAD_ASK_PX, 1) == [27.992]
    # post-only (no book): the ask may not sit below the mid
    out = harness(1, **HYPE).step(0, mid=28.0, center_bps=-10.0, bid_depth=7.0, ask_depth=7.0)
    assert col(out, LAD_ASK_PX, 1) == [28.001] and out["post_only_ask"] == 1.0


def test_minimum_order_value_drops_the_level_not_the_geometry():
    # 0.36 HYPE: $10 needs px >= 27.78; levels at 50, 100, 150 bps
    out = harness(3, level_spacing_bps=50.0, size=0.36, **HYPE).step(
        0, mid=28.0, bid_depth=50.0, ask_depth=50.0
    )
    assert col(out, LAD_BID_PX)[0] == 27.86 and col(out, LAD_BID_SZ)[0] == 0.36  # $10.03
    assert np.isnan(out["ladder"][1:3, [LAD_BID_PX, LAD_BID_SZ]]).all()  # 27.72 x 0.36 = 9.98
    assert col(out, LAD_ASK_PX) == [28.14, 28.28, 28.42]
    # a size rounding down below the minimum drops the level too: 0.369 -> 0.36 at 27.72
    out = harness(2, level_spacing_bps=50.0, **HYPE).step(
        0, mid=28.0, bid_depth=50.0, ask_depth=50.0, bid_sizes=vec(0.369, 0.369), ask_sizes=vec(0.0, -1.0)
    )
    assert col(out, LAD_BID_SZ, 2)[0] == 0.36 and math.isnan(col(out, LAD_BID_SZ, 2)[1])
    assert np.isnan(out["ladder"][:2, LAD_ASK_PX]).all()  # zero / negative size: no order
    # min_order_value 0 keeps every positive size
    out = harness(1, min_order_value=0.0, **BTC).step(0, mid=97000.0, bid_sizes=vec(0.00001))
    assert out["ladder"][0, LAD_BID_SZ] == 0.00001


def test_post_only_against_the_book():
    # a bullish center pushes the raw bid through the best ask: capped one tick below it
    h = harness(3, level_spacing_bps=1.0, **HYPE)
    out = h.step(0, mid=28.0, center_bps=20.0, bid_depth=5.0, ask_depth=5.0, book=book(27.999, 28.001))
    bids = col(out, LAD_BID_PX)
    assert bids[0] == 28.0 and out["post_only_bid"] == 1.0  # raw 28.042 -> below the best ask 28.001
    assert bids == [28.0, 27.999, 27.998]  # raw 28.0392, 28.0364 also over the cap: one tick apart
    assert col(out, LAD_ASK_PX)[0] == 28.07 and out["post_only_ask"] == 0.0
    # bearish center: asks capped one tick above the best bid
    out = h.step(S, mid=28.0, center_bps=-20.0, bid_depth=5.0, ask_depth=5.0, book=book(27.999, 28.001))
    assert col(out, LAD_ASK_PX) == [28.0, 28.001, 28.002] and out["post_only_ask"] == 1.0
    assert col(out, LAD_BID_PX)[0] == 27.93


def test_post_only_without_a_book_uses_the_mid_and_can_be_off():
    out = harness(1, **HYPE).step(0, mid=28.0005, center_bps=-20.0, bid_depth=5.0, ask_depth=5.0)
    assert col(out, LAD_ASK_PX, 1) == [28.001] and out["post_only_ask"] == 1.0  # strictly above the mid
    out = harness(1, **HYPE).step(0, mid=28.0, center_bps=-20.0, bid_depth=5.0, ask_depth=5.0)
    assert col(out, LAD_ASK_PX, 1) == [28.001]  # mid on the grid: one tick above
    # a one-sided book: the missing side falls back to the mid
    out = harness(1, **HYPE).step(
        0, mid=28.0, center_bps=-20.0, bid_depth=5.0, ask_depth=5.0, book=book(math.nan, 28.01)
    )
    assert col(out, LAD_ASK_PX, 1) == [28.001]
    out = harness(1, post_only=False, **HYPE).step(
        0, mid=28.0, center_bps=-20.0, bid_depth=5.0, ask_depth=5.0
    )
    assert col(out, LAD_ASK_PX, 1) == [27.958]  # raw 27.958: allowed to cross (taker)


def test_crossed_touches_collapse_to_their_midpoint():
    # depths -3 and +1 bps: raw bid 28.0084 above raw ask 28.0028 -> both at 28 x (1 + 2e-4)
    out = harness(1, post_only=False, **HYPE).step(0, mid=28.0, bid_depth=-3.0, ask_depth=1.0)
    assert out["center_used_bps"] == pytest.approx(2.0)
    assert col(out, LAD_BID_PX, 1) == [28.005] and col(out, LAD_ASK_PX, 1) == [28.006]
    # exactly on the grid: the ask goes one tick above
    out = harness(1, post_only=False, **HYPE).step(0, mid=28.0, bid_depth=-1.0, ask_depth=-1.0)
    assert col(out, LAD_BID_PX, 1) == [28.0] and col(out, LAD_ASK_PX, 1) == [28.001]
    # a locked book (best bid = best ask = 28.0): bid below 28.0, ask above it
    out = harness(1, **HYPE).step(0, mid=28.0, bid_depth=0.0, ask_depth=0.0, book=book(28.0, 28.0))
    assert col(out, LAD_BID_PX, 1) == [27.999] and col(out, LAD_ASK_PX, 1) == [28.001]


def test_depth_and_size_fallbacks():
    h = harness(2, touch_bps=3.0, size=0.5, **HYPE)
    out = h.step(0, mid=28.0)  # nothing ticked yet: touch_bps and size
    assert col(out, LAD_BID_PX, 1) == [27.991] and col(out, LAD_BID_SZ, 2) == [0.5, 0.5]
    out = h.step(S, mid=28.0, bid_depth=5.0, bid_sizes=vec(0.7))
    assert col(out, LAD_BID_PX, 1) == [27.986] and col(out, LAD_BID_SZ, 1) == [0.7]
    assert math.isnan(out["ladder"][1, LAD_BID_SZ])  # the vec has no level 1 any more
    assert col(out, LAD_ASK_SZ, 2) == [0.5, 0.5]  # the ask vec never ticked
    out = h.step(2 * S, mid=28.0, bid_depth=math.nan)  # NaN after it ticked: no bids
    assert np.isnan(out["ladder"][:, LAD_BID_PX]).all() and out["ladder"][0, LAD_ASK_PX] == 28.009
    assert math.isnan(out["bid_touch_bps"])
    # size null: no quotes until sizes arrive
    out = harness(1, size=None, **HYPE).step(0, mid=28.0)
    assert np.isnan(out["ladder"]).all() and out.emitted >= {"ladder"}
    out = harness(1, touch_bps=None, **HYPE).step(0, mid=28.0, ask_depth=3.0)
    assert math.isnan(out["ladder"][0, LAD_BID_PX]) and out["ladder"][0, LAD_ASK_PX] == 28.009


def test_invalid_mid_withholds_once_then_resumes():
    h = harness(2, **HYPE)
    assert not np.isnan(h.step(0, mid=28.0)["ladder"][:2]).any()
    out = h.step(S, mid=math.nan)
    assert "ladder" in out.emitted and np.isnan(out["ladder"]).all()
    for t, bad in ((2, math.nan), (3, 0.0), (4, -5.0), (5, math.inf)):
        assert h.step(t * S, mid=bad).emitted == set()
    assert h.step(6 * S, mid=28.0)["ladder"][0, LAD_BID_PX] == 27.986
    # tiny prices: bids that would round to <= 0 vanish with everything below them
    out = harness(3, level_spacing_bps=4000.0, min_order_value=0.0, **HYPE).step(
        0, mid=1e-4, bid_depth=5000.0
    )
    assert math.isnan(out["ladder"][1, LAD_BID_PX]) and math.isnan(out["ladder"][2, LAD_BID_PX])


def _sweep_ladders(h, mid, depths, sizes, bk):
    out = []
    for k, (d, s) in enumerate(zip(depths, sizes, strict=True)):
        sv = vec(*[s] * 8)
        o = h.step(k * S, mid=mid, bid_depth=d, ask_depth=d, bid_sizes=sv, ask_sizes=sv, book=bk)
        out.append(o["ladder"].copy())
    return out


def _assert_continuous(ladders, szd, levels, dpx, dsz):
    """Between consecutive ladders: |price jump| <= one tick, |size jump| <= max(lot, $10 size).

    The inputs move in finite steps, so each bound gets the step of the raw input itself (dpx:
    the raw price step, dsz: the desired size step); a continuous sweep is the limit dpx, dsz -> 0."""
    lot = 10.0**-szd
    for a, b in zip(ladders, ladders[1:], strict=False):
        for i in range(levels):
            for pc, sc in ((LAD_BID_PX, LAD_BID_SZ), (LAD_ASK_PX, LAD_ASK_SZ)):
                pa, pb = a[i, pc], b[i, pc]
                if pa == pa and pb == pb:
                    tick = max(tick_at(pa, szd, True), tick_at(pb, szd, True))
                    assert abs(pb - pa) <= tick * (1 + 1e-9) + dpx, (i, pa, pb, tick)
                sa = a[i, sc] if a[i, sc] == a[i, sc] else 0.0
                sb = b[i, sc] if b[i, sc] == b[i, sc] else 0.0
                if sa != sb:
                    # a level appears / vanishes at the $10 minimum with its whole size: at most the
                    # smallest $10 size on the lot grid (min_size_for_value < 10/px + lot)
                    px = min(x for x in (pa, pb) if x == x)
                    bound = max(lot, min_size_for_value(px, szd))
                    assert abs(sb - sa) <= bound * (1 + 1e-9) + dsz + 1e-12, (i, sa, sb, bound)


@settings(max_examples=25, deadline=None)
@given(
    mid=st.floats(0.5, 150_000.0),
    d0=st.floats(-20.0, 60.0),
    width=st.floats(-8.0, 8.0),
    s0=st.floats(0.0, 3.0),
    s1=st.floats(0.0, 3.0),
    szd=st.integers(0, 5),
    ratio=st.floats(1.0, 2.0),
    with_book=st.booleans(),
)
def test_continuity_of_prices_and_sizes(mid, d0, width, s0, s1, szd, ratio, with_book):
    # as the touch depth and the size move continuously (fine steps: ~0.03 bps, well under a tick
    # of 0.07-1 bps), no price jumps more than a tick and no size more than max(lot, $10 size)
    n = 250
    depths = np.linspace(d0, d0 + width, n)
    sizes = np.linspace(s0, s1, n) * 10.0 / mid * 3  # around the $10 minimum and a few multiples
    bk = book(mid * (1 - 2e-4), mid * (1 + 2e-4)) if with_book else book(math.nan, math.nan)
    h = harness(4, level_spacing_bps=1.5, level_ratio=ratio, sz_decimals=szd, is_perp=True)
    dpx = mid * abs(width) / (n - 1) * 1e-4 * 1.01
    dsz = abs(sizes[1] - sizes[0]) * 1.01
    _assert_continuous(_sweep_ladders(h, mid, depths, sizes, bk), szd, 4, dpx, dsz)


def test_continuity_sweep_catches_a_jump():
    # the checker itself: a ladder whose touch moves two ticks fails it
    a = np.full((LADDER_LEVELS, 4), np.nan)
    a[0] = [27.99, 1.0, 28.01, 1.0]
    b = a.copy()
    b[0, LAD_BID_PX] = 27.988
    with pytest.raises(AssertionError):
        _assert_continuous([a, b], 2, 1, 0.0, 0.0)
    c = a.copy()
    c[0, LAD_ASK_SZ] = np.nan  # a 1-contract level vanishing: 1 > $10/28 = 0.36
    with pytest.raises(AssertionError):
        _assert_continuous([a, c], 2, 1, 0.0, 0.0)
    _assert_continuous([a, a], 2, 1, 0.0, 0.0)


@settings(max_examples=200, deadline=None)
@given(
    mid=st.floats(1e-3, 2e6),
    center_bps=st.floats(-100.0, 100.0),
    db=st.floats(-50.0, 500.0),
    da=st.floats(-50.0, 500.0),
    spacing=st.floats(0.0, 200.0),
    ratio=st.floats(0.5, 3.0),
    szd=st.integers(0, 5),
    size=st.floats(1e-5, 1e4),
    spread_bps=st.floats(0.0, 50.0),
    with_book=st.booleans(),
)
def test_every_ladder_is_valid_ordered_and_post_only(
    mid, center_bps, db, da, spacing, ratio, szd, size, spread_bps, with_book
):
    bb, ba = mid * (1 - spread_bps * 1e-4 / 2), mid * (1 + spread_bps * 1e-4 / 2)
    h = harness(LADDER_LEVELS, level_spacing_bps=spacing, level_ratio=ratio, size=size, sz_decimals=szd)
    kw = {"book": book(bb, ba)} if with_book else {}
    out = h.step(0, mid=mid, center_bps=center_bps, bid_depth=db, ask_depth=da, **kw)
    lad = out["ladder"]
    bids, asks = lad[:, LAD_BID_PX], lad[:, LAD_ASK_PX]
    for px_col, sz_col in ((LAD_BID_PX, LAD_BID_SZ), (LAD_ASK_PX, LAD_ASK_SZ)):
        px, sz = lad[:, px_col], lad[:, sz_col]
        assert np.array_equal(np.isnan(px), np.isnan(sz))
        for p, s in zip(px[~np.isnan(px)], sz[~np.isnan(sz)], strict=True):
            assert valid_px(p, szd, True) and p * s >= 10.0 and s <= size * (1 + 1e-9)
            assert abs(s * 10**szd - round(s * 10**szd)) < 1e-6  # on the lot grid
    qb, qa = bids[~np.isnan(bids)], asks[~np.isnan(asks)]
    assert np.all(np.diff(qb) < 0) and np.all(np.diff(qa) > 0)
    if len(qb) and len(qa):
        assert qb[0] < qa[0]  # never crossed with ourselves
    best_ask, best_bid = (ba, bb) if with_book else (mid, mid)
    assert np.all(qb < best_ask) and np.all(qa > best_bid)  # post-only


def test_params_and_doc():
    cls = get_node_type("quoting.ladder")
    assert cls is Ladder and "post-only" in cls.doc().lower() and "$10" in cls.doc()
    from pydantic import ValidationError

    for bad in (
        {"levels": 0},
        {"levels": LADDER_LEVELS + 1},
        {"level_ratio": 0.0},
        {"size": 0.0},
        {"sz_decimals": 7},
        {"typo": 1},
    ):
        with pytest.raises(ValidationError):
            cls.Params(**bad)


@njit
def _drive(n, a):
    total = 0
    for k in range(n):
        a[4][0] = 28.0 + 0.001 * (k % 7)  # mid
        a[10][0] = 3.0 + 0.01 * k  # bid_depth
        total += ladder_kernel(
            np.int64(k), 1.0, a[2], a[3], a[4], True, a[6], False, a[8], False, a[10], True, a[12], False,
            a[14], False, a[16], False, a[18], True, a[20], a[21], a[22], a[23], a[24], a[25],
        )  # fmt: skip
    return total


def test_kernel_does_not_allocate():
    a = tuple(example_args(Ladder(Ladder.Params(levels=6))))
    assert len(a) == 26
    a[18][0, BID_PX], a[18][0, ASK_PX] = 27.99, 28.01
    assert _drive(1, a) == 0b111111
    assert allocations(_drive, 1, a) == allocations(_drive, 200, a)
