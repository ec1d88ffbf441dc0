"""hftbacktest's ``.npz`` event files, read and written, so one file replays in both tools.

The format (hftbacktest >= 2, ``py-hftbacktest/hftbacktest/types.py``; hftbacktest itself is not
a dependency: it pins older numba and numpy) is one structured array saved as
``np.savez_compressed(path, data=arr)`` (or ``np.savez``), dtype :data:`EVENT_DTYPE` (64-byte aligned rows)::

    ev u8 | exch_ts i8 | local_ts i8 | px f8 | qty f8 | order_id u8 | ival i8 | fval f8

``ev`` is the kind in its low 8 bits (:data:`KINDS`) or-ed with flags: ``EXCH_EVENT`` (1<<31, the
exchange processor handles the row at ``exch_ts``), ``LOCAL_EVENT`` (1<<30, the local processor
at ``local_ts``), ``BUY_EVENT`` (1<<29: bid side; for a trade, a buyer aggressor) and
``SELL_EVENT`` (1<<28). Timestamps are ns. EXCH rows are in non-decreasing ``exch_ts``, LOCAL
rows in non-decreasing ``local_ts``; a row carrying both flags is in both orders, and where the
two clocks disagree hftbacktest's ``correct_event_order`` splits a row into an EXCH-only and a
LOCAL-only copy.

**Reading** (:func:`read_npz`). ``clock="exch"`` (default) replays the exchange's view: the
rows with ``EXCH_EVENT``, at ``exch_ts``, in file order; ``clock="local"`` the bot's view (rows
with ``LOCAL_EVENT`` at ``local_ts``). Skipped, counted per reason and per kind: rows with
neither flag (no hftbacktest processor looks at them); rows with only the other clock's flag
(the other half of a split row); order-level kinds 10-13 (market-by-order, not market-by-price:
flowmm's books are aggregated levels); unknown kinds; depth/snapshot/bbo rows with no side
flag (hftbacktest ignores them too). A time that goes back is clamped to the latest one and
counted (``clamped``): rows are applied in file order, as hftbacktest applies them.

A book is kept as price -> qty per side, applying hftbacktest's L2 semantics
(``hftbacktest/src/depth/hashmapmarketdepth.rs``, ``fuse.rs``):

* ``DEPTH_EVENT`` (1) and ``DEPTH_SNAPSHOT_EVENT`` (4) set the side's level at ``px`` to ``qty``;
  ``qty <= 0`` (or NaN) deletes it (hftbacktest: ``qty`` rounding to 0 lots). A level that
  crosses the other side does not delete anything: the book is passed on as the data says.
* ``DEPTH_CLEAR_EVENT`` (3), ``clear_depth(side, clear_upto_price)``: with ``BUY_EVENT`` it
  removes the bids priced ``>= px`` (the ticks from ``px`` up to the best bid), with
  ``SELL_EVENT`` the asks priced ``<= px``; a non-finite ``px`` clears the whole side; with no
  side flag both sides are cleared and ``px`` is ignored.
* ``DEPTH_BBO_EVENT`` (5) sets the level, then, as ``FusedHashMapMarketDepth.update_best_*``
  does, drops the same side's levels better than it and the other side's levels it crosses.

Prices are compared exactly (hftbacktest rounds to ticks; the tick is not in the file, and the
same decimal string always parses to the same float). After each run of consecutive depth rows
sharing a time, one BOOK event carries the top ``levels`` (20) per side, best first, with the
order count ``n`` unknown (NaN). ``TRADE_EVENT`` rows become TRADE events: ``px``, ``sz = qty``,
``side`` +1 with ``BUY_EVENT`` else -1 (trades with neither flag are counted, ``trades_no_side``),
``tid`` NaN: the format has no documented trade-id field.

**Writing** (:func:`write_npz`). hftbacktest's converters emit diffs and its live bot ignores
kinds 3/4/5, so a BOOK event is written as ``DEPTH_EVENT`` rows only: the first book one row per
level; later books first a ``qty = 0`` row per level that left the book, then one row per level
inserted or changed. A book equal to the one before writes no rows and so does not come back
(hftbacktest could not tell it apart either), and of books sharing a time with no trade between
them only the last comes back (their rows form one run); levels with a non-finite price or a size that is
not positive cannot be expressed and are not written; ``n`` is lost. TRADE events become
``TRADE_EVENT`` rows with ``BUY_EVENT`` when ``side > 0`` else ``SELL_EVENT``; the tid is lost.
Other kinds are not written. Every row has ``exch_ts = t`` and ``local_ts`` from the given
receive times (or ``t``), and both flags; where ``local_ts`` is not non-decreasing in that order,
rows are split as ``correct_event_order`` does (an EXCH-only and a LOCAL-only copy, merged by
``exch_ts`` then ``local_ts``), so the file passes hftbacktest's
``validate_event_order``. hftbacktest also expects ``local_ts >= exch_ts`` (its
``correct_local_timestamp``); that is left to the caller's receive times.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from numba import njit

from flowmm.core import events as E
from flowmm.core.events import EventTable
from flowmm.core.ports import BOOK_LEVELS
from flowmm.errors import Location, SourceError, UsageError

EVENT_DTYPE = np.dtype(
    [
        ("ev", "u8"),
        ("exch_ts", "i8"),
        ("local_ts", "i8"),
        ("px", "f8"),
        ("qty", "f8"),
        ("order_id", "u8"),
        ("ival", "i8"),
        ("fval", "f8"),
    ],
    align=True,
)

DEPTH_EVENT, TRADE_EVENT, DEPTH_CLEAR_EVENT, DEPTH_SNAPSHOT_EVENT, DEPTH_BBO_EVENT = 1, 2, 3, 4, 5
ADD_ORDER_EVENT, CANCEL_ORDER_EVENT, MODIFY_ORDER_EVENT, FILL_EVENT = 10, 11, 12, 13
EXCH_EVENT, LOCAL_EVENT, BUY_EVENT, SELL_EVENT = 1 << 31, 1 << 30, 1 << 29, 1 << 28
KINDS = {
    DEPTH_EVENT: "depth",
    TRADE_EVENT: "trade",
    DEPTH_CLEAR_EVENT: "depth_clear",
    DEPTH_SNAPSHOT_EVENT: "depth_snapshot",
    DEPTH_BBO_EVENT: "depth_bbo",
    ADD_ORDER_EVENT: "add_order",
    CANCEL_ORDER_EVENT: "cancel_order",
    MODIFY_ORDER_EVENT: "modify_order",
    FILL_EVENT: "fill",
}
_REQUIRED = {"ev": "u", "exch_ts": "iu", "local_ts": "iu", "px": "f", "qty": "f"}
_HINT = "an hftbacktest >= 2 event file: np.savez_compressed(path, data=<array of hftbacktest's event_dtype>)"


# --------------------------------------------------------------------------- reading


@njit(cache=True)
def _set_level(keys, vals, n, key, val):
    """Set (val > 0) or delete a level in a side kept sorted by key; returns the new count."""
    if not np.isfinite(key):
        return n  # a level without a price: nothing to set
    i = np.searchsorted(keys[:n], key)
    if i < n and keys[i] == key:
        if val > 0.0:
            vals[i] = val
            return n
        for j in range(i, n - 1):
            keys[j] = keys[j + 1]
            vals[j] = vals[j + 1]
        return n - 1
    if not val > 0.0:
        return n
    for j in range(n, i, -1):
        keys[j] = keys[j - 1]
        vals[j] = vals[j - 1]
    keys[i] = key
    vals[i] = val
    return n + 1


@njit(cache=True)
def _drop_front(keys, vals, n, k):
    """Remove the first ``k`` (best) levels."""
    if k <= 0:
        return n
    for j in range(k, n):
        keys[j - k] = keys[j]
        vals[j - k] = vals[j]
    return n - k


@njit(cache=True)
def _decode(kind, side, t, px, qty, bid_cap, ask_cap, levels):
    """Clean market-by-price rows -> (t, kind, off, payload) of BOOK and TRADE events.

    Bids are stored under key ``-px`` and asks under ``px``, both ascending, so a side's best
    levels are its first entries and "better than" / "up to" are prefixes.
    """
    out_t, out_k, off, payload, _, _ = _decode_from(
        kind, side, t, px, qty, np.empty(bid_cap + 1), np.empty(bid_cap + 1), 0,
        np.empty(ask_cap + 1), np.empty(ask_cap + 1), 0, levels,
    )  # fmt: skip
    return out_t, out_k, off, payload


@njit(cache=True)
def _decode_from(kind, side, t, px, qty, bk, bv, nb, ak, av, na, levels):
    """``_decode`` from a given book state (``bk, bv, nb`` bids, ``ak, av, na`` asks, updated in
    place, room enough for the rows given); returns the events and the new level counts."""
    n = kind.shape[0]
    out_t = np.empty(n, np.int64)
    out_k = np.empty(n, np.int64)
    off = np.zeros(n + 1, np.int64)
    payload = np.empty(max(16, 4 * n))
    m = 0
    p = 0
    for i in range(n):
        k = kind[i]
        need = p + 2 + 6 * levels if k != TRADE_EVENT else p + 4
        if need > payload.shape[0]:
            grown = np.empty(max(2 * payload.shape[0], need))
            grown[:p] = payload[:p]
            payload = grown
        if k == TRADE_EVENT:
            payload[p] = px[i]
            payload[p + 1] = qty[i]
            payload[p + 2] = 1.0 if side[i] > 0 else -1.0
            payload[p + 3] = np.nan
            p += 4
            out_t[m] = t[i]
            out_k[m] = E.TRADE
            m += 1
            off[m] = p
            continue
        s = side[i]
        if k == DEPTH_CLEAR_EVENT:
            if s == 0:
                nb = 0
                na = 0
            elif not np.isfinite(px[i]):
                if s > 0:
                    nb = 0
                else:
                    na = 0
            elif s > 0:  # bids priced >= px
                nb = _drop_front(bk, bv, nb, np.searchsorted(bk[:nb], -px[i], side="right"))
            else:  # asks priced <= px
                na = _drop_front(ak, av, na, np.searchsorted(ak[:na], px[i], side="right"))
        elif s > 0:
            nb = _set_level(bk, bv, nb, -px[i], qty[i])
            if k == DEPTH_BBO_EVENT:
                nb = _drop_front(bk, bv, nb, np.searchsorted(bk[:nb], -px[i]))
                na = _drop_front(ak, av, na, np.searchsorted(ak[:na], px[i], side="right"))
        else:
            na = _set_level(ak, av, na, px[i], qty[i])
            if k == DEPTH_BBO_EVENT:
                na = _drop_front(ak, av, na, np.searchsorted(ak[:na], px[i]))
                nb = _drop_front(bk, bv, nb, np.searchsorted(bk[:nb], -px[i], side="right"))
        if i + 1 < n and kind[i + 1] != TRADE_EVENT and t[i + 1] == t[i]:
            continue  # the book is emitted once its same-time run of depth rows ends
        ob = min(nb, levels)
        oa = min(na, levels)
        payload[p] = ob
        payload[p + 1] = oa
        p += 2
        for j in range(ob):
            payload[p] = -bk[j]
            payload[p + 1] = bv[j]
            payload[p + 2] = np.nan
            p += 3
        for j in range(oa):
            payload[p] = ak[j]
            payload[p + 1] = av[j]
            payload[p + 2] = np.nan
            p += 3
        out_t[m] = t[i]
        out_k[m] = E.BOOK
        m += 1
        off[m] = p
    return out_t[:m], out_k[:m], off[: m + 1], payload[:p], nb, na


def _load(path: Path) -> np.ndarray:
    loc = Location(str(path))
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise SourceError("not an npz archive but a bare .npy array", loc, hint=_HINT)
        with npz:
            if "data" not in npz.files:
                raise SourceError(
                    f"no 'data' array in the npz (it holds {', '.join(npz.files) or 'nothing'})",
                    loc,
                    hint=_HINT,
                )
            arr = npz["data"]
    except SourceError:
        raise
    except FileNotFoundError:
        raise SourceError("no such file", loc) from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise SourceError(f"cannot read as an npz archive: {exc}", loc, hint=_HINT) from None
    names = arr.dtype.names or ()
    if arr.ndim == 2 and not names and arr.dtype.kind == "f":
        raise SourceError(
            f"a plain {arr.shape[1]}-column float array: hftbacktest's version 1 format",
            loc,
            hint="convert it with hftbacktest.data.utils.migration2 (hftbacktest >= 2), then read it",
        )
    bad = [f for f, kinds in _REQUIRED.items() if f not in names or arr.dtype[f].kind not in kinds]
    if arr.ndim != 1 or bad:
        raise SourceError(
            f"'data' has dtype {arr.dtype} and shape {arr.shape}, not hftbacktest's event rows"
            + (f" (missing or mistyped: {', '.join(bad)})" if bad else ""),
            loc,
            hint=_HINT,
        )
    return arr


_U_KIND, _U_EXCH, _U_LOCAL = np.uint64(0xFF), np.uint64(EXCH_EVENT), np.uint64(LOCAL_EVENT)
_U_BUY, _U_SELL = np.uint64(BUY_EVENT), np.uint64(SELL_EVENT)
_REASONS = ("no_flag", "other_clock", "order_level", "unknown_kind", "no_side")  # codes 1..5


@njit(cache=True)
def _select(ev, ts, px, qty, flag):
    """One pass over the file's rows: the market-by-price rows of the chosen clock, compacted,
    their times clamped to non-decreasing; per row the reason it was skipped (0: used)."""
    out = _select_from(ev, ts, px, qty, flag, np.iinfo(np.int64).min)
    return out[0], out[1], out[2], out[3], out[4], out[5], out[6], out[7], out[8]


@njit(cache=True)
def _select_from(ev, ts, px, qty, flag, last):
    """``_select`` after rows whose last used time was ``last``; also returns the new ``last``."""
    n = ev.shape[0]
    kind = np.empty(n, np.int64)
    side = np.empty(n, np.int8)
    t = np.empty(n, np.int64)
    p = np.empty(n)
    q = np.empty(n)
    reason = np.zeros(n, np.int8)
    m = 0
    clamped = 0
    n_bid = 0
    n_ask = 0
    for i in range(n):
        e = ev[i]
        k = np.int64(e & _U_KIND)
        s = 1 if e & _U_BUY else (-1 if e & _U_SELL else 0)  # BUY first, as hftbacktest checks
        if not e & (_U_EXCH | _U_LOCAL):
            reason[i] = 1
        elif not e & flag:
            reason[i] = 2
        elif ADD_ORDER_EVENT <= k <= FILL_EVENT:
            reason[i] = 3
        elif k < DEPTH_EVENT or k > DEPTH_BBO_EVENT:
            reason[i] = 4
        elif s == 0 and k != TRADE_EVENT and k != DEPTH_CLEAR_EVENT:
            reason[i] = 5
        if reason[i]:
            continue
        tt = ts[i]
        if tt < last:
            tt = last
            clamped += 1
        last = tt
        if k != TRADE_EVENT and k != DEPTH_CLEAR_EVENT:
            if s > 0:
                n_bid += 1
            else:
                n_ask += 1
        kind[m] = k
        side[m] = s
        t[m] = tt
        p[m] = px[i]
        q[m] = qty[i]
        m += 1
    return kind[:m], side[:m], t[:m], p[:m], q[:m], reason, clamped, n_bid, n_ask, last


def read_npz(path: str | Path, *, clock: str = "exch", levels: int = BOOK_LEVELS) -> tuple[EventTable, dict]:
    """Read an hftbacktest event file into flowmm BOOK and TRADE events (see the module doc).

    Returns the table and counts: ``rows`` (in the file), ``used``, ``books``, ``trades``,
    ``trades_no_side``, ``clamped``, ``skipped`` (per reason) and ``skipped_kinds`` (per kind).
    """
    if clock not in ("exch", "local"):
        raise UsageError(f"clock must be 'exch' or 'local', not {clock!r}")
    path = Path(path)
    arr = _load(path)
    ev = arr["ev"].astype(np.uint64, copy=False)
    kind, side, t, px, qty, reason, clamped, n_bid, n_ask = _select(
        ev,
        arr["exch_ts" if clock == "exch" else "local_ts"].astype(np.int64, copy=False),
        arr["px"].astype(np.float64, copy=False),
        arr["qty"].astype(np.float64, copy=False),
        _U_EXCH if clock == "exch" else _U_LOCAL,
    )
    out_t, out_k, off, payload = _decode(kind, side, t, px, qty, n_bid, n_ask, int(levels))
    by_reason = np.bincount(reason, minlength=len(_REASONS) + 1)
    ks, cs = np.unique(ev[reason != 0] & _U_KIND, return_counts=True)
    trades = kind == TRADE_EVENT
    counts = {
        "rows": len(arr),
        "used": len(kind),
        "books": int(np.count_nonzero(out_k == E.BOOK)),
        "trades": int(trades.sum()),
        "trades_no_side": int(np.count_nonzero(trades & (side == 0))),
        "clamped": int(clamped),
        "skipped": {r: int(by_reason[i + 1]) for i, r in enumerate(_REASONS)},
        "skipped_kinds": {KINDS.get(k, f"kind_{k}"): c for k, c in zip(ks.tolist(), cs.tolist())},
    }
    return EventTable(out_t, out_k, off, payload), counts


def _row_blocks(path: Path, block: int) -> Iterator[np.ndarray] | None:
    """The 'data' rows of an npz, ``block`` at a time, read from the zip member as a stream
    (compressed or not); None if the file is not a plain 1-d array of hftbacktest's rows, so
    that ``read_npz`` reports what is wrong with it."""
    try:
        zf = zipfile.ZipFile(path)
        f = zf.open("data.npy")
        version = np.lib.format.read_magic(f)
        read = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read(f)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
    names = dtype.names or ()
    if (
        len(shape) != 1
        or fortran
        or any(k not in names or dtype[k].kind not in v for k, v in _REQUIRED.items())
    ):
        f.close()
        zf.close()
        return None

    def rows() -> Iterator[np.ndarray]:
        with zf, f:
            for lo in range(0, shape[0], block):
                k = min(block, shape[0] - lo)
                buf = f.read(k * dtype.itemsize)
                if len(buf) != k * dtype.itemsize:
                    raise SourceError("the npz's data ends early", Location(str(path)), hint=_HINT)
                yield np.frombuffer(buf, dtype=dtype, count=k)

    return rows()


def read_npz_blocks(
    path: str | Path, counts: dict, *, clock: str = "exch", levels: int = BOOK_LEVELS, block: int = 1 << 16
) -> Iterator[EventTable]:
    """``read_npz`` as a stream: the same events, in tables decoded from ``block`` rows of the
    file at a time, so memory stays flat in the file's length; ``counts`` is filled in at the end.
    A same-time run of depth rows is never cut (its rows wait for the next block), so the books
    are those of the whole file."""
    if clock not in ("exch", "local"):
        raise UsageError(f"clock must be 'exch' or 'local', not {clock!r}")
    path = Path(path)
    blocks = _row_blocks(path, block)
    if blocks is None:  # not streamable as it is: read it whole (and report what is wrong)
        table, c = read_npz(path, clock=clock, levels=levels)
        counts.update(c)
        yield table
        return
    flag = _U_EXCH if clock == "exch" else _U_LOCAL
    last = np.iinfo(np.int64).min
    bk, bv, ak, av = np.empty(1), np.empty(1), np.empty(1), np.empty(1)
    nb = na = 0
    carry = None  # selected rows of the last time of the previous block (its run may go on)
    n_rows = used = clamped = no_side = books = trades = 0
    by_reason = np.zeros(len(_REASONS) + 1, np.int64)
    kinds: dict[int, int] = {}
    for arr in blocks:
        ev = arr["ev"].astype(np.uint64)
        sel = _select_from(
            ev, arr["exch_ts" if clock == "exch" else "local_ts"].astype(np.int64),
            arr["px"].astype(np.float64), arr["qty"].astype(np.float64), flag, last,
        )  # fmt: skip
        kind, side, t, px, qty, reason = sel[:6]
        clamped, last = clamped + sel[6], sel[9]
        n_rows += len(arr)
        by_reason += np.bincount(reason, minlength=len(_REASONS) + 1)
        for k, c in zip(*np.unique(ev[reason != 0] & _U_KIND, return_counts=True)):
            kinds[int(k)] = kinds.get(int(k), 0) + int(c)
        if carry is not None:
            kind, side, t, px, qty = (np.concatenate([a, b]) for a, b in zip(carry, (kind, side, t, px, qty)))
        cut = int(np.searchsorted(t, t[-1], "left")) if len(t) else 0
        carry = tuple(a[cut:] for a in (kind, side, t, px, qty))
        table, nb, na, bk, bv, ak, av = _decode_block(
            (kind[:cut], side[:cut], t[:cut], px[:cut], qty[:cut]), bk, bv, nb, ak, av, na, levels
        )
        used, books = used + cut, books + int(np.count_nonzero(table.kind == E.BOOK))
        trades += int(np.count_nonzero(kind[:cut] == TRADE_EVENT))
        no_side += int(np.count_nonzero((kind[:cut] == TRADE_EVENT) & (side[:cut] == 0)))
        yield table
    if carry is not None and len(carry[0]):
        table, nb, na, bk, bv, ak, av = _decode_block(carry, bk, bv, nb, ak, av, na, levels)
        kind, side = carry[0], carry[1]
        used, books = used + len(kind), books + int(np.count_nonzero(table.kind == E.BOOK))
        trades += int(np.count_nonzero(kind == TRADE_EVENT))
        no_side += int(np.count_nonzero((kind == TRADE_EVENT) & (side == 0)))
        yield table
    counts.update(
        rows=n_rows,
        used=used,
        books=books,
        trades=trades,
        trades_no_side=no_side,
        clamped=int(clamped),
        skipped={r: int(by_reason[i + 1]) for i, r in enumerate(_REASONS)},
        skipped_kinds={KINDS.get(k, f"kind_{k}"): c for k, c in sorted(kinds.items())},
    )


def _decode_block(rows, bk, bv, nb, ak, av, na, levels):
    """Decode selected rows from the book state, growing the sides to fit the rows."""
    kind, side, t, px, qty = rows
    need_b = nb + int(np.count_nonzero(side > 0)) + 1
    need_a = na + int(np.count_nonzero(side < 0)) + 1
    if bk.shape[0] < need_b:
        bk, bv = (
            np.concatenate([bk[:nb], np.empty(need_b - nb)]),
            np.concatenate([bv[:nb], np.empty(need_b - nb)]),
        )
    if ak.shape[0] < need_a:
        ak, av = (
            np.concatenate([ak[:na], np.empty(need_a - na)]),
            np.concatenate([av[:na], np.empty(need_a - na)]),
        )
    out_t, out_k, off, payload, nb, na = _decode_from(kind, side, t, px, qty, bk, bv, nb, ak, av, na, levels)
    return EventTable(out_t, out_k, off, payload), nb, na, bk, bv, ak, av


# --------------------------------------------------------------------------- writing


@njit(cache=True)
def _side_levels(payload, p, n, sign):
    """A book side's valid levels as (keys, qty) sorted by key (sign * px), duplicates: last wins."""
    keys = np.empty(n)
    vals = np.empty(n)
    m = 0
    for j in range(n):
        x = payload[p + 3 * j]
        q = payload[p + 3 * j + 1]
        if np.isfinite(x) and q > 0.0:
            keys[m] = sign * x
            vals[m] = q
            m += 1
    order = np.argsort(keys[:m], kind="mergesort")
    ok = np.empty(m)
    ov = np.empty(m)
    u = 0
    for j in range(m):
        if j + 1 < m and keys[order[j + 1]] == keys[order[j]]:
            continue
        ok[u] = keys[order[j]]
        ov[u] = vals[order[j]]
        u += 1
    return ok[:u], ov[:u]


@njit(cache=True)
def _diff(prev_k, prev_v, cur_k, cur_v, deletes, out_k, out_v, r):
    """Append to (out_k, out_v) from r the deleted (deletes=True) or the set levels."""
    i = 0
    j = 0
    while i < prev_k.shape[0] or j < cur_k.shape[0]:
        if j >= cur_k.shape[0] or (i < prev_k.shape[0] and prev_k[i] < cur_k[j]):
            if deletes:
                out_k[r] = prev_k[i]
                out_v[r] = 0.0
                r += 1
            i += 1
        elif i >= prev_k.shape[0] or cur_k[j] < prev_k[i]:
            if not deletes:
                out_k[r] = cur_k[j]
                out_v[r] = cur_v[j]
                r += 1
            j += 1
        else:
            if not deletes and cur_v[j] != prev_v[i]:
                out_k[r] = cur_k[j]
                out_v[r] = cur_v[j]
                r += 1
            i += 1
            j += 1
    return r


@njit(cache=True)
def _encode(t, kind, off, payload, local_ts, cap):
    """BOOK and TRADE events -> hftbacktest rows (ev, exch_ts, local_ts, px, qty), diffs for books."""
    ev = np.empty(cap, np.uint64)
    xt = np.empty(cap, np.int64)
    lt = np.empty(cap, np.int64)
    px = np.empty(cap)
    qty = np.empty(cap)
    kk = np.empty(cap)  # scratch for one side's diff
    kv = np.empty(cap)
    base = np.uint64(EXCH_EVENT | LOCAL_EVENT)
    bid_f = base | np.uint64(DEPTH_EVENT | BUY_EVENT)
    ask_f = base | np.uint64(DEPTH_EVENT | SELL_EVENT)
    pbk = np.empty(0)
    pbv = np.empty(0)
    pak = np.empty(0)
    pav = np.empty(0)
    r = 0
    for e in range(t.shape[0]):
        o = off[e]
        if kind[e] == E.TRADE:
            s = payload[o + 2]
            ev[r] = base | np.uint64(TRADE_EVENT) | np.uint64(BUY_EVENT if s > 0 else SELL_EVENT)
            xt[r] = t[e]
            lt[r] = local_ts[e]
            px[r] = payload[o]
            qty[r] = payload[o + 1]
            r += 1
            continue
        if kind[e] != E.BOOK:
            continue
        nb = int(payload[o])
        na = int(payload[o + 1])
        bk, bv = _side_levels(payload, o + 2, nb, -1.0)
        ak, av = _side_levels(payload, o + 2 + 3 * nb, na, 1.0)
        for phase in range(2):  # removals first, so hftbacktest's best prices never cross
            for sd in range(2):
                if sd == 0:
                    m = _diff(pbk, pbv, bk, bv, phase == 0, kk, kv, 0)
                else:
                    m = _diff(pak, pav, ak, av, phase == 0, kk, kv, 0)
                for j in range(m):
                    ev[r] = bid_f if sd == 0 else ask_f
                    xt[r] = t[e]
                    lt[r] = local_ts[e]
                    px[r] = -kk[j] if sd == 0 else kk[j]
                    qty[r] = kv[j]
                    r += 1
        pbk, pbv, pak, pav = bk, bv, ak, av
    return ev[:r], xt[:r], lt[:r], px[:r], qty[:r]


@njit(cache=True)
def _order_split(xt, lt, lorder):
    """Rows in exch order, ``lorder`` the stable local order -> (row, flags) as hftbacktest's
    ``correct_event_order``: one row with both flags where both orders agree, else an EXCH-only
    and a LOCAL-only copy, merged by exch_ts then local_ts."""
    n = xt.shape[0]
    rows = np.empty(2 * n, np.int64)
    flags = np.empty(2 * n, np.uint64)
    both = np.uint64(EXCH_EVENT | LOCAL_EVENT)
    i = 0
    j = 0
    m = 0
    while i < n or j < n:
        if i < n and j < n and lorder[j] == i:
            rows[m] = i
            flags[m] = both
            i += 1
            j += 1
        elif i < n and (
            j >= n or xt[i] < xt[lorder[j]] or (xt[i] == xt[lorder[j]] and lt[i] <= lt[lorder[j]])
        ):
            rows[m] = i
            flags[m] = np.uint64(EXCH_EVENT)
            i += 1
        else:
            rows[m] = lorder[j]
            flags[m] = np.uint64(LOCAL_EVENT)
            j += 1
        m += 1
    return rows[:m], flags[:m]


def write_npz(
    table: EventTable, path: str | Path, local_ts: np.ndarray | None = None, *, compress: bool = True
) -> int:
    """Write the BOOK and TRADE events of ``table`` as an hftbacktest event file; returns the
    number of rows written (see the module doc for what is and is not expressed).

    ``compress=False`` stores the array uncompressed (``np.savez``; both tools read it): deflate
    is most of the cost, ~4 us per row written and ~0.7 us per row read."""
    path = Path(path)
    n = len(table)
    if local_ts is None:
        lts = np.asarray(table.t, np.int64)
    else:
        lts = np.asarray(local_ts)
        if lts.shape != (n,) or lts.dtype.kind not in "iu":
            raise UsageError(
                f"local_ts must be an integer array of one receive time (ns) per event: {n}, "
                f"got shape {lts.shape} dtype {lts.dtype}",
                Location(str(path)),
            )
        lts = lts.astype(np.int64)
    kind = np.asarray(table.kind, np.int64)
    off = np.asarray(table.off, np.int64)
    payload = np.asarray(table.payload, np.float64)
    books = np.nonzero(kind == E.BOOK)[0]
    levels = payload[off[books]] + payload[off[books] + 1] if len(books) else np.zeros(0)
    # every level is written at most twice (set, then removed), plus one row per trade
    cap = int(2 * levels.sum()) + int(np.count_nonzero(kind == E.TRADE)) + 1
    ev, xt, lt, px, qty = _encode(np.asarray(table.t, np.int64), kind, off, payload, lts, cap)
    if len(lt) and np.any(np.diff(lt) < 0):
        rows, flags = _order_split(xt, lt, np.argsort(lt, kind="stable"))
        ev = (ev[rows] & ~np.uint64(EXCH_EVENT | LOCAL_EVENT)) | flags
        xt, lt, px, qty = xt[rows], lt[rows], px[rows], qty[rows]
    arr = np.zeros(len(ev), EVENT_DTYPE)
    arr["ev"], arr["exch_ts"], arr["local_ts"], arr["px"], arr["qty"] = ev, xt, lt, px, qty
    try:
        with open(path, "wb") as f:  # a file object: savez would append ".npz" to a bare name
            (np.savez_compressed if compress else np.savez)(f, data=arr)
    except OSError as exc:
        raise SourceError(f"cannot write: {exc.strerror or exc}", Location(str(path))) from None
    return len(arr)
