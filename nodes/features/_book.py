"""Book-window helpers shared by the book features (bim, dbim, bpg): numba, O(levels), no allocation.

The window of a depth d is every level within d bps of the book's own mid, inclusive:
``(mid - px) / mid * 1e4 <= d`` for bids, ``(px - mid) / mid * 1e4 <= d`` for asks (the
definition tests/sources/synthetic/conftest.py uses). The *coverage* of a book is how far
both sides are known: a side is known up to its deepest listed level (anything beyond may
exist but is not shown), so the book covers ``min(deepest bid, deepest ask)`` bps. A depth
the book does not reach is measured at the coverage on both sides, never wider on one side
than the other (that would bias the imbalance toward the deeper-listed side).

Levels are read as the book port lists them, best first (an unsorted book is not detected):
the deepest listed level is the last one, and a window stops at its first level beyond d.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from flowmm.core.ports import ASK_PX, ASK_SZ, BID_PX, BID_SZ


@njit(cache=True)
def book_mid_cover(book):
    """(mid, coverage in bps) of a two-sided, uncrossed book; (NaN, NaN) otherwise.

    Levels are listed best first until the first NaN price (rows past the last level are NaN)."""
    bid = book[0, BID_PX]
    ask = book[0, ASK_PX]
    if not (bid > 0.0 and ask > bid and ask < np.inf):
        return np.nan, np.nan
    mid = 0.5 * (bid + ask)
    # levels are best first: a side is known up to its last listed level
    nb = 1
    while nb < book.shape[0] and book[nb, BID_PX] == book[nb, BID_PX]:
        nb += 1
    na = 1
    while na < book.shape[0] and book[na, ASK_PX] == book[na, ASK_PX]:
        na += 1
    cb = (mid - book[nb - 1, BID_PX]) / mid * 1e4
    ca = (book[na - 1, ASK_PX] - mid) / mid * 1e4
    return mid, min(cb, ca)


@njit(cache=True)
def window_sizes(book, mid, depth_bps):
    """(V_bid, V_ask, USD notional of both) within depth_bps of mid.

    A NaN, zero or negative size counts as nothing; levels are read best first until the first
    NaN price or the first level beyond the window (the book port lists levels best first)."""
    vb = 0.0
    va = 0.0
    usd = 0.0
    for i in range(book.shape[0]):
        px = book[i, BID_PX]
        if px != px:
            break
        if (mid - px) / mid * 1e4 > depth_bps:  # levels are best first: the rest is deeper
            break
        sz = book[i, BID_SZ]
        if sz > 0.0:
            vb += sz
            usd += sz * px
    for i in range(book.shape[0]):
        px = book[i, ASK_PX]
        if px != px:
            break
        if (px - mid) / mid * 1e4 > depth_bps:
            break
        sz = book[i, ASK_SZ]
        if sz > 0.0:
            va += sz
            usd += sz * px
    return vb, va, usd


@njit(cache=True)
def imbalance(book, mid, depth_bps):
    """(BIM, USD depth) within depth_bps of mid; BIM is NaN when the window holds no size."""
    vb, va, usd = window_sizes(book, mid, depth_bps)
    if vb + va > 0.0:
        return (vb - va) / (vb + va), usd
    return np.nan, usd


@njit(cache=True)
def cover_inflation(depth_bps, covered_bps, power):
    """R multiplier for a window measured at covered_bps instead of depth_bps: (d / d_cov)^power."""
    if covered_bps >= depth_bps:
        return 1.0
    return (depth_bps / covered_bps) ** power
