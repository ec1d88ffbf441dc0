"""Normalised events: a columnar table both engine backends consume.

An ``EventTable`` holds ``t`` (int64 ns, non-decreasing), ``kind`` (int64 code) and each
event's float64 payload in one flat array (``payload[off[i]:off[i+1]]``). Payload layouts:

=========== ===================================================================
kind        payload
=========== ===================================================================
BOOK        n_bid, n_ask, then (px, sz, n) per bid level, then per ask level
BOOK_AGG    as BOOK (aggregated levels)
BBO         bid_px, bid_sz, bid_n, ask_px, ask_sz, ask_n
TRADE       px, sz, side (+1 buyer aggressor, -1 seller), tid
CTX         funding, predicted_funding, oi, mark, oracle, premium
REF_MID     px
SPOT_MID    px
TRUTH       mu (bps/s), sigma (bps/sqrt s), regime
TIMER       code
FILL        px, sz, side (+1 our bid), oid, fee, maker (1/0), mid_ref
MARKOUT     oid, horizon_s, side, px, markout_bps, as_bps
POSITION    q
=========== ===================================================================

One compiled applier per kind writes an event into its stream buffers and bumps their
versions; both backends call these same functions (the interpreter through ``apply_event``,
the fused backend directly, per ``APPLIERS``), so they cannot disagree on what an event does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from flowmm.core import streams as S
from flowmm.core.ports import ASK_PX, BID_PX, BOOK_LEVELS

BOOK, BOOK_AGG, BBO, TRADE, CTX, REF_MID, SPOT_MID, TRUTH, TIMER, FILL, MARKOUT, POSITION = range(1, 13)
KIND_NAMES = {
    BOOK: "book",
    BOOK_AGG: "book_agg",
    BBO: "bbo",
    TRADE: "trade",
    CTX: "ctx",
    REF_MID: "ref_mid",
    SPOT_MID: "spot_mid",
    TRUTH: "truth",
    TIMER: "timer",
    FILL: "fill",
    MARKOUT: "markout",
    POSITION: "position",
}
KIND_CODES = {v: k for k, v in KIND_NAMES.items()}
# the stream each kind writes (BOOK and BBO also write source.mid)
KIND_STREAM = {
    BOOK: "source.book",
    BOOK_AGG: "source.book_agg",
    BBO: "source.bbo",
    TRADE: "source.trades",
    CTX: "source.ctx",
    REF_MID: "source.ref_mid",
    SPOT_MID: "source.spot_mid",
    TRUTH: "source.truth",
    TIMER: "source.timer",
    FILL: "exec.fills",
    MARKOUT: "exec.markouts",
    POSITION: "exec.position",
}


@dataclass
class EventTable:
    t: np.ndarray  # int64 [n]
    kind: np.ndarray  # int64 [n]
    off: np.ndarray  # int64 [n + 1]
    payload: np.ndarray  # float64 [off[-1]]

    def __len__(self) -> int:
        return len(self.t)

    def slice(self, start: int, stop: int) -> EventTable:
        off = self.off[start : stop + 1]
        return EventTable(
            self.t[start:stop], self.kind[start:stop], off - off[0], self.payload[off[0] : off[-1]]
        )

    def kinds_present(self) -> set[str]:
        return {KIND_NAMES[int(k)] for k in np.unique(self.kind)}

    @staticmethod
    def empty() -> EventTable:
        return EventTable(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(0))


@njit(cache=True)
def _write_book(book, payload, o):
    nb = int(payload[o])
    na = int(payload[o + 1])
    book[:, :] = np.nan
    p = o + 2
    for i in range(nb):
        if i < BOOK_LEVELS:
            book[i, 0] = payload[p]
            book[i, 1] = payload[p + 1]
            book[i, 2] = payload[p + 2]
        p += 3
    for i in range(na):
        if i < BOOK_LEVELS:
            book[i, 3] = payload[p]
            book[i, 4] = payload[p + 1]
            book[i, 5] = payload[p + 2]
        p += 3


@njit(cache=True)
def _set_mid(book, mid, ver):
    bid = book[0, BID_PX]
    ask = book[0, ASK_PX]
    # a one-sided or empty book has no mid: keep the last one, do not tick
    if bid == bid and ask == ask:
        mid[0] = 0.5 * (bid + ask)
        ver[S.S_MID] += 1


@njit(cache=True)
def _append(times, records, ver, port, t, payload, o, n):
    i = ver[port] % times.shape[0]
    times[i] = t
    for j in range(n):
        records[i, j] = payload[o + j]
    ver[port] += 1


@njit(cache=True)
def _copy(values, ver, port, payload, o):
    for j in range(values.shape[0]):
        values[j] = payload[o + j]
    ver[port] += 1


# One applier per kind, each taking only the stream arrays it writes: a call that passes all
# 22 stream arrays costs ~0.5 us in numba (reference counting per array argument), one that
# passes two costs tens of ns. The fused backend calls these directly (see APPLIERS).
@njit(cache=True)
def apply_book(t, payload, o, ver, book, mid):
    _write_book(book, payload, o)
    ver[S.S_BOOK] += 1
    _set_mid(book, mid, ver)


@njit(cache=True)
def apply_book_agg(t, payload, o, ver, book_agg):
    _write_book(book_agg, payload, o)
    ver[S.S_BOOK_AGG] += 1


@njit(cache=True)
def apply_bbo(t, payload, o, ver, bbo, mid):
    bbo[:, :] = np.nan
    for j in range(6):
        bbo[0, j] = payload[o + j]
    ver[S.S_BBO] += 1
    _set_mid(bbo, mid, ver)


@njit(cache=True)
def apply_trade(t, payload, o, ver, times, records):
    _append(times, records, ver, S.S_TRADES, t, payload, o, 4)


@njit(cache=True)
def apply_ctx(t, payload, o, ver, ctx):
    _copy(ctx, ver, S.S_CTX, payload, o)


@njit(cache=True)
def apply_ref_mid(t, payload, o, ver, ref_mid):
    _copy(ref_mid, ver, S.S_REF_MID, payload, o)


@njit(cache=True)
def apply_spot_mid(t, payload, o, ver, spot_mid):
    _copy(spot_mid, ver, S.S_SPOT_MID, payload, o)


@njit(cache=True)
def apply_truth(t, payload, o, ver, truth):
    _copy(truth, ver, S.S_TRUTH, payload, o)


@njit(cache=True)
def apply_timer(t, payload, o, ver, timer):
    _copy(timer, ver, S.S_TIMER, payload, o)


@njit(cache=True)
def apply_fill(t, payload, o, ver, times, records):
    _append(times, records, ver, S.S_FILLS, t, payload, o, 7)


@njit(cache=True)
def apply_markout(t, payload, o, ver, times, records):
    _append(times, records, ver, S.S_MARKOUTS, t, payload, o, 6)


@njit(cache=True)
def apply_position(t, payload, o, ver, position):
    _copy(position, ver, S.S_POSITION, payload, o)


# kind -> (applier, the streams whose arrays it takes after ``ver``; a batch stream gives two)
APPLIERS = {
    BOOK: (apply_book, ("source.book", "source.mid")),
    BOOK_AGG: (apply_book_agg, ("source.book_agg",)),
    BBO: (apply_bbo, ("source.bbo", "source.mid")),
    TRADE: (apply_trade, ("source.trades",)),
    CTX: (apply_ctx, ("source.ctx",)),
    REF_MID: (apply_ref_mid, ("source.ref_mid",)),
    SPOT_MID: (apply_spot_mid, ("source.spot_mid",)),
    TRUTH: (apply_truth, ("source.truth",)),
    TIMER: (apply_timer, ("source.timer",)),
    FILL: (apply_fill, ("exec.fills",)),
    MARKOUT: (apply_markout, ("exec.markouts",)),
    POSITION: (apply_position, ("exec.position",)),
}


@njit(cache=True)
def apply_event(
    t, kind, payload, o, ver,
    book, book_agg, bbo, mid, trades_t, trades_r, ctx, ref_mid, spot_mid, truth, timer,
    fills_t, fills_r, markouts_t, markouts_r, position,
):  # fmt: skip
    """Write one event into its stream buffer(s) and tick them (unknown kinds: nothing)."""
    if kind == BOOK:
        apply_book(t, payload, o, ver, book, mid)
    elif kind == BOOK_AGG:
        apply_book_agg(t, payload, o, ver, book_agg)
    elif kind == BBO:
        apply_bbo(t, payload, o, ver, bbo, mid)
    elif kind == TRADE:
        apply_trade(t, payload, o, ver, trades_t, trades_r)
    elif kind == CTX:
        apply_ctx(t, payload, o, ver, ctx)
    elif kind == REF_MID:
        apply_ref_mid(t, payload, o, ver, ref_mid)
    elif kind == SPOT_MID:
        apply_spot_mid(t, payload, o, ver, spot_mid)
    elif kind == TRUTH:
        apply_truth(t, payload, o, ver, truth)
    elif kind == TIMER:
        apply_timer(t, payload, o, ver, timer)
    elif kind == FILL:
        apply_fill(t, payload, o, ver, fills_t, fills_r)
    elif kind == MARKOUT:
        apply_markout(t, payload, o, ver, markouts_t, markouts_r)
    elif kind == POSITION:
        apply_position(t, payload, o, ver, position)
