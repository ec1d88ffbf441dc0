from __future__ import annotations

import numpy as np
from numba import njit
from pydantic import Field

from flowmm.core.node import In, Node, NodeParams, Out
from flowmm.core.ports import BOOK_LEVELS, OBS_R, OBS_Z

from ._book import book_mid_cover, cover_inflation, imbalance

P_DEPTH, P_LAG, P_MAX_GAP, P_ALPHA, P_SIGMA, P_POWER = range(6)
M_COUNT, M_HEAD = range(2)  # meta: books held in the ring, slot of the newest
MC_MID, MC_COVER = range(2)


@njit(cache=True)
def dbim_kernel(
    now, dt, params, books, times, mid_cover, meta, book, book_ticked, dbim, rate, covered_bps, obs
):
    if not book_ticked:  # nothing new: the same book must not be observed twice
        return EMIT.NONE
    mid, cover = book_mid_cover(book)
    if mid != mid:  # empty, one-sided or crossed: a gap, start again
        meta[M_COUNT] = 0.0
        return EMIT.NONE
    size = books.shape[0]  # lag + 1
    cnt = int(meta[M_COUNT])
    head = int(meta[M_HEAD])
    if cnt > 0:
        elapsed = (now - times[head]) * 1e-9
        if elapsed == 0.0:  # same time as the last book: it replaces it, no new value
            _store(books, times, mid_cover, head, book, now, mid, cover)
            return EMIT.NONE
        if elapsed > params[P_MAX_GAP] or elapsed < 0.0:  # a gap (or time went back): start again
            cnt = 0
    head = (head + 1) % size
    _store(books, times, mid_cover, head, book, now, mid, cover)
    cnt = min(cnt + 1, size)
    meta[M_COUNT] = cnt
    meta[M_HEAD] = head
    if cnt < size:  # warming up
        return EMIT.NONE
    old = (head + 1) % size  # the oldest: lag books back
    d = params[P_DEPTH]
    dc = min(d, min(cover, mid_cover[old, MC_COVER]))
    b_now, _ = imbalance(book, mid, dc)
    b_old, _ = imbalance(books[old], mid_cover[old, MC_MID], dc)
    if b_now != b_now or b_old != b_old:
        return EMIT.NONE
    span = (now - times[old]) * 1e-9
    dbim[0] = b_now - b_old
    rate[0] = dbim[0] / span
    covered_bps[0] = dc
    sigma = params[P_SIGMA]
    obs[OBS_Z] = params[P_ALPHA] * rate[0]
    obs[OBS_R] = sigma * sigma * cover_inflation(d, dc, params[P_POWER]) / max(1.0, params[P_LAG])
    return EMIT.ALL


@njit(cache=True)
def _store(books, times, mid_cover, slot, book, now, mid, cover):
    for i in range(books.shape[1]):
        for j in range(books.shape[2]):
            books[slot, i, j] = book[i, j]
    times[slot] = now
    mid_cover[slot, MC_MID] = mid
    mid_cover[slot, MC_COVER] = cover


class Dbim(Node):
    """Book acceleration: the change of BIM(d) over the last `lag_cycles` books, and its rate.

    dBIM = BIM_t(d_c) - BIM_{t-L}(d_c),  rate = dBIM / (t - t_L) in 1/s  (seed 000,
    Component 7, A3: "dBIM = (BIM(t) - BIM(t - dt)) / dt, dt = 1-3 quote cycles"), BIM as in
    `features.bim` (levels within d bps of each book's own mid). L = `lag_cycles` books back,
    one book per run of this node (a cycle node runs once per cycle when the book ticked).
    Both ends are measured at the same window d_c = min(d, coverage now, coverage then),
    so a change of how far the book reaches does not show up as a change of imbalance; the
    L + 1 books are kept in a preallocated ring (O(levels) per update). `covered_bps` = d_c.

    Observation (seed 000 interface; z bps/s, R (bps/s)^2):
        z = alpha * rate              (alpha in bps: bps/s of drift per unit of BIM per second)
        R = sigma^2 * (d / d_c)^cover_power / max(1, n),  n = lag_cycles
    The seed's n_observations is ambiguous; here n is the number of book-to-book steps the
    difference accumulates (lag_cycles): the rate over a longer span is less noisy, and the
    seed's 1-3 cycles give n = 1-3. The coverage factor is `features.bim`'s (1 when both
    books reach d).

    Defaults: lag_cycles = 3, the seed's upper end: on the synthetic market (knob `book` = 1,
    1-s cycles, 20 seeds) corr(rate, next-10-s return) was 0.030 at lag 1, 0.031 at 2 and
    0.053 at 3 (the tilt follows the coming 10 s, so a longer span sees more of its change);
    alpha = 0.04 bps, the slope of the next-10-s return rate on `rate` there at lag 3.

    Edge cases: a step without a new book emits nothing; an empty, one-sided or crossed book
    emits nothing and restarts the warm-up (it is a gap), as does a gap longer than
    `max_gap_s` between consecutive books (or a time earlier than the last book's); the
    first L books only fill the ring; a book at the same time as the previous one replaces
    it and emits nothing (zero dt); a window with no size at either end emits nothing.
    Outputs not emitted keep their last values."""

    type_name = "features.dbim"

    class Params(NodeParams):
        depth_bps: float = Field(10.0, gt=0, description="depth d of the BIM, bps of mid")
        lag_cycles: int = Field(3, ge=1, le=16, description="L: books (runs) back; the seed says 1-3 cycles")
        max_gap_s: float = Field(
            30.0, gt=0, description="a longer time between consecutive books restarts the warm-up, s"
        )
        alpha: float = Field(0.04, description="bps/s of drift per unit of dBIM per second (unit: bps)")
        sigma: float = Field(0.2, gt=0, description="observation noise at n = 1, bps/s")
        cover_power: float = Field(
            2.0, ge=0, description="R is multiplied by (d / d_covered)^cover_power when a book is short"
        )

    inputs = {"book": In("book", doc="L2 book (source.book)")}
    outputs = {
        "dbim": Out("f64", doc="BIM now minus BIM lag_cycles books back, same window"),
        "rate": Out("f64", doc="dbim per second of the span, 1/s"),
        "covered_bps": Out("f64", doc="the window both ends were measured at, bps (<= depth_bps)"),
        "obs": Out("obs", doc="z = alpha rate bps/s, R (bps/s)^2"),
    }
    tier, trigger = "hot", "cycle"
    kernel = dbim_kernel

    def init_state(self):
        size = self.params.lag_cycles + 1
        return (
            np.full((size, BOOK_LEVELS, 6), np.nan),  # the last L + 1 books
            np.zeros(size, np.int64),  # their times, ns
            np.full((size, 2), np.nan),  # their mid and coverage (bps)
            np.zeros(2),  # [books held, slot of the newest]
        )


EMIT = Dbim.EMIT  # the kernel's named emit bits (compile-time constants)
