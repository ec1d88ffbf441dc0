"""Hyperliquid's order price and size rules, as numba functions on scalars.

The rules (Hyperliquid docs, "Tick and lot size",
https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/tick-and-lot-size):

* a **price** has at most 5 significant figures and at most ``MAX_DECIMALS - szDecimals``
  decimal places, ``MAX_DECIMALS`` = 6 for perps and 8 for spot; **integer prices are always
  allowed**, whatever their number of significant figures (``123456`` is valid, ``12345.6`` is
  not). Perp examples from the page: ``1234.5`` valid, ``1234.56`` not; ``0.001234`` valid,
  ``0.0012345`` not; with ``szDecimals = 1``, ``0.01234`` valid, ``0.012345`` not;
* a **size** has at most ``szDecimals`` decimals (``szDecimals`` comes from the ``meta`` info
  response: BTC 5, HYPE 2);
* an order's value must be at least **$10** (error ``MinTradeNtl``, "Order must have minimum
  value of $10.", https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/error-responses).

So the price grid is decimal with a tick that depends on the price's decade: with
``e = floor(log10(px))`` the tick is ``10**-d``, ``d = max(0, min(MAX_DECIMALS - szDecimals,
4 - e))``. BTC (szDecimals 5, 1 decimal at most): tick 0.1 below 10 000, 1 from 10 000 up;
HYPE (szDecimals 2, 4 decimals at most): 28.123 (tick 0.001); any price >= 100 000: tick 1.
(Some third-party guides show 97000.5 as a valid BTC price: it is not, 6 significant figures.)

The SDK rounds to nearest: ``round(float(f"{px:.5g}"), MAX_DECIMALS - szDecimals)`` in
``Exchange._slippage_price`` and, with ``round(px)`` above 100 000, in
``examples/rounding.py`` of hyperliquid-python-sdk. :func:`round_px` rounds once to the grid
(no double rounding), and a quote can be rounded away from the mid instead: a bid **down**, an
ask **up**, so that rounding never improves a post-only quote. Results are built as
``integer / 10**d`` (both exact doubles), i.e. the double nearest to the decimal price, which
the SDK's ``float_to_wire`` (8 decimals) sends unchanged.

All functions are ``@njit(cache=True)`` on scalars (no allocation): node kernels and the
execution layer call them per cycle. ``is_perp`` may be a bool or a float (0/1) from a packed
params array. numba's on-disk cache does not follow callees: after editing this module, clear
the ``__pycache__`` of the kernels that call it (e.g. ``nodes/quoting``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

PERP_MAX_DECIMALS = 6
SPOT_MAX_DECIMALS = 8
MAX_SIG_FIGS = 5
MIN_ORDER_VALUE = 10.0  # USDC, Hyperliquid's MinTradeNtl

# side_mode of round_px: the contract's side signs (+1 bid, -1 ask), 0 = nearest
ROUND_NEAREST = 0
ROUND_DOWN = 1  # a bid: never above the raw price
ROUND_UP = -1  # an ask: never below the raw price

# A value within this many grid units of a grid point (plus a few ulps of the value itself, for
# large sizes) is on it: absorbs float error such as 28.123 * 1000 = 28122.999999999996, far
# below any real price or size difference.
_SNAP = 1e-7
_SNAP_REL = 1e-15


@njit(cache=True)
def _on_grid(x: float, n: float) -> bool:
    """Is ``x`` (a value in grid units) the grid point ``n`` up to float noise?"""
    return abs(x - n) <= _SNAP + abs(x) * _SNAP_REL


@njit(cache=True)
def max_px_decimals(sz_decimals: int, is_perp: bool) -> int:
    """``MAX_DECIMALS - szDecimals`` (6 for perps, 8 for spot), never below 0."""
    md = PERP_MAX_DECIMALS if is_perp else SPOT_MAX_DECIMALS
    d = md - int(sz_decimals)
    return d if d > 0 else 0


# exact 10**k and correctly rounded 10**-k (float("1e-k")): numba freezes global arrays as
# constants, and a table lookup is several times cheaper than log10()/pow() in a kernel
_POW10 = np.array([float(10**k) for k in range(23)])
_NEG10 = np.array([float(f"1e-{k}") for k in range(23)])


@njit(cache=True)
def _pow10(k: int) -> float:
    """``10.0**k`` (the correctly rounded double, also for k < 0)."""
    if 0 <= k <= 22:
        return _POW10[k]
    if -22 <= k < 0:
        return _NEG10[-k]
    return 10.0**k


@njit(cache=True)
def _decade(px: float) -> int:
    """``floor(log10(px))`` for finite px > 0, exactly (by comparison with the powers of ten)."""
    if px >= 1.0:
        e = 0
        while e < 22 and _POW10[e + 1] <= px:
            e += 1
        if e == 22:
            e = int(math.floor(math.log10(px)))  # beyond any price; log10 is close enough
        return e
    e = -1
    while e > -22 and px < _NEG10[-e]:
        e -= 1
    if e == -22:
        e = int(math.floor(math.log10(px)))
    return e


@njit(cache=True)
def px_decimals(px: float, sz_decimals: int, is_perp: bool) -> int:
    """Decimals allowed at ``px``: ``max(0, min(MAX_DECIMALS - szDecimals, 4 - floor(log10 px)))``.

    0 from 100 000 up, where every integer is valid. ``px`` must be finite and > 0."""
    d = MAX_SIG_FIGS - 1 - _decade(px)
    md = max_px_decimals(sz_decimals, is_perp)
    if d > md:
        d = md
    return d if d > 0 else 0


@njit(cache=True)
def tick_at(px: float, sz_decimals: int, is_perp: bool) -> float:
    """The price grid's step in ``px``'s decade (``10**-px_decimals``); NaN if px is not > 0."""
    if not (px > 0.0) or math.isinf(px):
        return math.nan
    return _pow10(-px_decimals(px, sz_decimals, is_perp))


@njit(cache=True)
def round_px(px: float, sz_decimals: int, is_perp: bool, side_mode: int) -> float:
    """``px`` on Hyperliquid's price grid (see the module docstring).

    ``side_mode``: ``ROUND_DOWN`` (+1, a bid: the largest valid price <= px), ``ROUND_UP``
    (-1, an ask: the smallest valid price >= px) or ``ROUND_NEAREST`` (0, halves away from
    zero). A price already on the grid (within float noise) is returned as the exact grid
    double. NaN when px is NaN, inf or <= 0, or when rounding down leaves no positive price."""
    if not (px > 0.0) or math.isinf(px):
        return math.nan
    scale = _pow10(px_decimals(px, sz_decimals, is_perp))
    x = px * scale
    n = math.floor(x + 0.5)
    if not _on_grid(x, n):
        if side_mode > 0:
            n = math.floor(x)
        elif side_mode < 0:
            n = math.ceil(x)
    if n <= 0.0:
        return math.nan
    # a round-up that crosses into the next decade (99.9996 -> 100.0) lands on a power of ten,
    # which is on both grids; a round-down never leaves px's decade
    return n / scale


@njit(cache=True)
def valid_px(px: float, sz_decimals: int, is_perp: bool) -> bool:
    """True when Hyperliquid accepts ``px`` as a price (up to float noise in the last ulps)."""
    if not (px > 0.0) or math.isinf(px):
        return False
    if px == math.floor(px):
        return True  # integer prices are always allowed
    x = px * _pow10(px_decimals(px, sz_decimals, is_perp))
    return _on_grid(x, math.floor(x + 0.5))


@njit(cache=True)
def px_below(px: float, sz_decimals: int, is_perp: bool) -> float:
    """The largest valid price strictly below ``px`` (NaN if there is none > 0)."""
    if not (px > 0.0) or math.isinf(px):
        return math.nan
    if not valid_px(px, sz_decimals, is_perp):
        return round_px(px, sz_decimals, is_perp, ROUND_DOWN)
    q = round_px(px, sz_decimals, is_perp, ROUND_NEAREST)  # the exact grid double
    # one tick of the decade just below q: 100.0 -> 99.999 at 3 decimals
    t = tick_at(q * (1.0 - 1e-12), sz_decimals, is_perp)
    return round_px(q - 0.5 * t, sz_decimals, is_perp, ROUND_DOWN)


@njit(cache=True)
def px_above(px: float, sz_decimals: int, is_perp: bool) -> float:
    """The smallest valid price strictly above ``px`` (NaN if px is not finite and > 0)."""
    if not (px > 0.0) or math.isinf(px):
        return math.nan
    if not valid_px(px, sz_decimals, is_perp):
        return round_px(px, sz_decimals, is_perp, ROUND_UP)
    q = round_px(px, sz_decimals, is_perp, ROUND_NEAREST)
    t = tick_at(q, sz_decimals, is_perp)
    return round_px(q + 0.5 * t, sz_decimals, is_perp, ROUND_UP)


@njit(cache=True)
def round_sz(sz: float, sz_decimals: int) -> float:
    """``sz`` rounded toward zero to ``szDecimals`` decimals (the lot size); NaN stays NaN.

    Toward zero so a rounded order never exceeds the size asked for (a value that is on the lot
    grid up to float noise, such as 0.29999999999999998, keeps its value)."""
    if sz != sz or math.isinf(sz):
        return math.nan
    scale = _pow10(int(sz_decimals))
    x = abs(sz) * scale
    n = math.floor(x + 0.5)
    if not _on_grid(x, n):
        n = math.floor(x)
    return math.copysign(n / scale, sz) if n > 0.0 else 0.0


@njit(cache=True)
def min_size_for_value(px: float, sz_decimals: int, min_value: float = MIN_ORDER_VALUE) -> float:
    """The smallest size on the lot grid with ``px * sz >= min_value`` (NaN if px is not > 0).

    Hyperliquid's minimum order value is $10 (``MinTradeNtl``); a level quoted smaller than
    this is rejected by the exchange, so a quoter drops it or sizes it up to this."""
    if not (px > 0.0) or math.isinf(px) or min_value != min_value:
        return math.nan
    if min_value <= 0.0:
        return 0.0
    scale = _pow10(int(sz_decimals))
    x = min_value / px * scale
    n = math.floor(x + 0.5)
    if not _on_grid(x, n) or n / scale * px < min_value:
        n = math.ceil(x)
    while n / scale * px < min_value:  # float noise at the boundary: at most one more lot
        n += 1.0
    return n / scale
