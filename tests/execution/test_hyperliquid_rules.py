"""Hyperliquid price/size rules against the docs' examples, hand cases and the SDK's own rounding."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from hyperliquid.exchange import Exchange
from hyperliquid.utils.signing import float_to_wire
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from flowmm.execution.hyperliquid_rules import (
    MIN_ORDER_VALUE,
    ROUND_DOWN,
    ROUND_NEAREST,
    ROUND_UP,
    max_px_decimals,
    min_size_for_value,
    px_above,
    px_below,
    px_decimals,
    round_px,
    round_sz,
    tick_at,
    valid_px,
)

NOISE = 1e-12  # relative float noise allowed where a result is compared with a raw price


def sdk_round(px: float, sz_decimals: int, is_perp: bool) -> float:
    """The SDK's own price rounding: ``Exchange._slippage_price`` with zero slippage
    (``round(float(f"{px:.5g}"), MAX_DECIMALS - szDecimals)``), on a stub ``info``."""
    asset = 0 if is_perp else 10_000  # the SDK tells spot by asset id >= 10000
    info = SimpleNamespace(
        name_to_coin={"X": "X"}, coin_to_asset={"X": asset}, asset_to_sz_decimals={asset: sz_decimals}
    )
    return Exchange._slippage_price(SimpleNamespace(info=info), "X", True, 0.0, px)


def example_round(px: float, sz_decimals: int, is_perp: bool) -> float:
    """examples/rounding.py of hyperliquid-python-sdk: integers above 100k, else as the SDK."""
    if px > 100_000:
        return float(round(px))
    return round(float(f"{px:.5g}"), (6 if is_perp else 8) - sz_decimals)


# -- the docs' own examples ("Tick and lot size") ----------------------------------------------


@pytest.mark.parametrize(
    "px, sz_decimals, is_perp, ok",
    [
        (1234.5, 0, True, True),
        (1234.56, 0, True, False),  # too many significant figures
        (0.001234, 0, True, True),
        (0.0012345, 0, True, False),  # more than 6 decimals
        (0.01234, 1, True, True),
        (0.012345, 1, True, False),  # more than 6 - szDecimals decimals
        (0.0001234, 0, False, True),  # spot: 8 - szDecimals decimals
        (0.0001234, 1, False, True),
        (0.0001234, 2, False, False),  # 7 decimals > 8 - 2
        (0.0001234, 3, False, False),
        (123456.0, 0, True, True),  # integers are always allowed
        (12345.6, 0, True, False),
        (1234567.0, 5, True, True),
    ],
)
def test_valid_px_on_the_docs_examples(px, sz_decimals, is_perp, ok):
    assert valid_px(px, sz_decimals, is_perp) is ok


def test_valid_px_rejects_non_prices():
    for bad in (0.0, -1.0, math.nan, math.inf, -math.inf):
        assert not valid_px(bad, 2, True)


# -- hand cases ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "px, sz_decimals, is_perp, down, nearest, up",
    [
        # BTC, szDecimals 5: 1 decimal at most (below 10 000), integers from 10 000 up
        (9876.54, 5, True, 9876.5, 9876.5, 9876.6),
        (97012.7, 5, True, 97012.0, 97013.0, 97013.0),
        (97000.0, 5, True, 97000.0, 97000.0, 97000.0),
        (123456.7, 5, True, 123456.0, 123457.0, 123457.0),  # >= 100 000: any integer
        (1234567.89, 0, True, 1234567.0, 1234568.0, 1234568.0),
        # HYPE, szDecimals 2: 28.123
        (28.12345, 2, True, 28.123, 28.123, 28.124),
        (28.1236, 2, True, 28.123, 28.124, 28.124),
        (28.123, 2, True, 28.123, 28.123, 28.123),  # on the grid: kept exactly
        (99.99996, 2, True, 99.999, 100.0, 100.0),  # up across a decade: 100.0 is valid
        # tiny prices: the decimals cap, not the significant figures, binds
        (0.0012345, 0, True, 0.001234, 0.001235, 0.001235),
        (0.012345, 1, True, 0.01234, 0.01235, 0.01235),
        (0.00012345, 2, True, 0.0001, 0.0001, 0.0002),  # 4 decimals for szDecimals 2
        (0.000123456, 1, False, 0.0001234, 0.0001235, 0.0001235),  # spot: 7 decimals
    ],
)
def test_round_px_hand_cases(px, sz_decimals, is_perp, down, nearest, up):
    assert round_px(px, sz_decimals, is_perp, ROUND_DOWN) == down
    assert round_px(px, sz_decimals, is_perp, ROUND_NEAREST) == nearest
    assert round_px(px, sz_decimals, is_perp, ROUND_UP) == up


def test_side_modes_are_the_contract_sides():
    # +1 (a bid) rounds down, -1 (an ask) rounds up: never toward the other side of the book
    assert round_px(28.1234, 2, True, 1) == 28.123
    assert round_px(28.1234, 2, True, -1) == 28.124


def test_round_px_returns_nan_when_no_price_is_left():
    assert math.isnan(round_px(0.0000004, 0, True, ROUND_DOWN))  # below the smallest tick
    assert math.isnan(round_px(0.00001234, 2, True, ROUND_DOWN))  # 4 decimals for szDecimals 2
    assert round_px(0.0000004, 0, True, ROUND_UP) == 0.000001
    for bad in (0.0, -28.0, math.nan, math.inf):
        assert math.isnan(round_px(bad, 2, True, ROUND_NEAREST))


def test_decimals_and_ticks():
    assert max_px_decimals(5, True) == 1 and max_px_decimals(2, True) == 4
    assert max_px_decimals(2, False) == 6 and max_px_decimals(7, True) == 0
    assert px_decimals(9999.9, 5, True) == 1 and px_decimals(10000.0, 5, True) == 0
    assert px_decimals(28.0, 2, True) == 3 and px_decimals(1.5, 2, True) == 4
    assert px_decimals(1000.0, 0, True) == 1  # exact power of ten: log10 must not be off by one
    assert px_decimals(0.001, 0, True) == 6 and px_decimals(150_000.0, 0, True) == 0
    assert tick_at(28.0, 2, True) == 0.001 and tick_at(97000.0, 5, True) == 1.0
    assert tick_at(9000.0, 5, True) == 0.1 and math.isnan(tick_at(-1.0, 5, True))


def test_neighbouring_prices():
    assert px_below(100.0, 2, True) == 99.999  # the decade below has a finer tick
    assert px_above(99.999, 2, True) == 100.0
    assert px_above(100.0, 2, True) == 100.01
    assert px_below(100_000.0, 5, True) == 99_999.0
    assert px_below(10_000.0, 5, True) == 9_999.9
    assert px_below(28.1234, 2, True) == 28.123  # off the grid: just round down
    assert px_above(28.1234, 2, True) == 28.124
    assert math.isnan(px_below(0.000001, 0, True))  # nothing positive below the smallest tick


def test_round_sz_rounds_toward_zero_to_sz_decimals():
    assert round_sz(1.23456789, 5) == 1.23456
    assert round_sz(0.001, 3) == 0.001
    assert round_sz(0.3, 2) == 0.3  # 0.3 * 100 = 30.000000000000004: on the lot grid
    assert round_sz(0.29, 1) == 0.2
    assert round_sz(12.9, 0) == 12.0
    assert round_sz(0.00009, 4) == 0.0
    assert round_sz(-1.239, 2) == -1.23
    assert math.isnan(round_sz(math.nan, 2))


def test_min_size_for_value():
    assert MIN_ORDER_VALUE == 10.0
    assert min_size_for_value(28.0, 2) == 0.36  # 0.35 * 28 = 9.8 < 10
    assert min_size_for_value(97000.0, 5) == 0.00011  # 0.0001 * 97000 = 9.7
    assert min_size_for_value(10.0, 0) == 1.0  # exactly $10 is enough
    assert min_size_for_value(4.0, 0, 10.0) == 3.0
    assert min_size_for_value(28.0, 2, 0.0) == 0.0
    assert math.isnan(min_size_for_value(0.0, 2))


# -- properties and the SDK ---------------------------------------------------------------------

prices = st.floats(1e-6, 5e6, allow_nan=False, allow_infinity=False)
perp_szd = st.integers(0, 5)


@settings(max_examples=400, deadline=None)
@given(prices, perp_szd, st.booleans())
def test_nearest_agrees_with_the_sdk(px, sz_decimals, is_perp):
    mine = round_px(px, sz_decimals, is_perp, ROUND_NEAREST)
    if math.isnan(mine):  # rounds to zero: the SDK gives 0.0, not a price either
        assert example_round(px, sz_decimals, is_perp) == 0.0
        return
    assert valid_px(mine, sz_decimals, is_perp)
    ref = example_round(px, sz_decimals, is_perp)
    sdk = sdk_round(px, sz_decimals, is_perp)
    if px < 100_000:
        assert ref == sdk
    else:  # the SDK's helper keeps 5 significant figures there: valid, but coarser
        assert valid_px(sdk, sz_decimals, is_perp) and abs(sdk - px) >= abs(mine - px) - 1e-9
    # equal, except at the rare halfway points the SDK's double rounding (5 s.f., then decimals)
    # or round-half-even resolve the other way: there ours is at least as close
    assert mine == ref or abs(mine - px) <= abs(ref - px) + NOISE * px


@settings(max_examples=400, deadline=None)
@given(prices, perp_szd, st.booleans())
def test_directed_rounding_gives_the_neighbouring_grid_prices(px, sz_decimals, is_perp):
    down = round_px(px, sz_decimals, is_perp, ROUND_DOWN)
    up = round_px(px, sz_decimals, is_perp, ROUND_UP)
    assert valid_px(up, sz_decimals, is_perp) and up >= px * (1 - NOISE)
    # nothing valid strictly between: the next price above `down` is at or beyond px
    if not math.isnan(down):
        assert valid_px(down, sz_decimals, is_perp) and down <= px * (1 + NOISE)
        assert px_above(down, sz_decimals, is_perp) >= px * (1 - NOISE) or down >= px * (1 - NOISE)
    below_up = px_below(up, sz_decimals, is_perp)
    assert math.isnan(below_up) or below_up <= px * (1 + NOISE) or up <= px * (1 + NOISE)
    # every rounded price goes over the wire unchanged (the SDK's float_to_wire, 8 decimals)
    for p in (down, up):
        if not math.isnan(p):
            assert float(float_to_wire(p)) == p


@settings(max_examples=300, deadline=None)
@given(st.floats(1e-3, 2e5), st.integers(0, 5))
def test_neighbours_are_strict_and_adjacent(px, sz_decimals):
    p = round_px(px, sz_decimals, True, ROUND_NEAREST)
    assume(not math.isnan(p))  # below half the smallest tick
    lo, hi = px_below(p, sz_decimals, True), px_above(p, sz_decimals, True)
    assert hi > p and valid_px(hi, sz_decimals, True)
    assert px_below(hi, sz_decimals, True) == p  # adjacent: nothing valid in between
    if not math.isnan(lo):
        assert lo < p and valid_px(lo, sz_decimals, True)
        assert px_above(lo, sz_decimals, True) == p


@settings(max_examples=300, deadline=None)
@given(st.floats(1e-4, 1e6), st.integers(0, 5), st.floats(1.0, 1000.0))
def test_min_size_is_the_smallest_lot_worth_min_value(px, sz_decimals, min_value):
    sz = min_size_for_value(px, sz_decimals, min_value)
    lot = 10.0**-sz_decimals
    assert round_sz(sz, sz_decimals) == sz  # on the lot grid
    assert px * sz >= min_value
    assert px * (sz - lot) < min_value * (1 + 1e-9)


@settings(max_examples=300, deadline=None)
@given(st.floats(0.0, 1e6), st.integers(0, 8))
def test_round_sz_is_on_the_grid_and_never_larger(sz, sz_decimals):
    r = round_sz(sz, sz_decimals)
    lot = 10.0**-sz_decimals
    assert r <= sz * (1 + NOISE) and sz - r < lot * (1 + 1e-6)
    assert round_sz(r, sz_decimals) == r
