"""Accounting: position, cash, fees, funding, realised/unrealised PnL, and per-fill markouts.

Everything the engine calls per event is an ``@njit(cache=True)`` kernel over preallocated arrays
and scalars (no allocation, no wall clock); :func:`accounting_state` sizes the arrays once and
:func:`summary` turns them into a dict at the end of a run.

Conventions
-----------
* Fill sides as in ``exec.fills``: ``+1`` our bid filled (we bought), ``-1`` our ask filled.
  Position ``q`` is signed contracts (long > 0). Cash is quote currency: a buy spends
  ``px * sz``, a sell receives it; the fill's ``fee`` field (positive = paid, negative = rebate,
  see ``flowmm.execution.fees``) is taken from cash and summed into ``fees``.
* **Average cost**, as Hyperliquid's own entry price ("Entry price and PNL",
  https://hyperliquid.gitbook.io/hyperliquid-docs/trading/entry-price-and-pnl): a fill that
  increases ``|q|`` (or opens from flat) moves the entry price to the size-weighted average of the
  old entry and the fill price; a fill that reduces ``|q|`` keeps the entry price and realises
  ``(px - avg) * closed * sign(q)`` on the ``closed = min(sz, |q|)`` contracts; a fill that
  crosses through zero closes the whole position that way and opens the remainder at ``px``
  (entry = ``px``). Flat: entry price 0. A position within ``Q_REL_EPS`` of the traded size of
  zero is float noise and is snapped to flat. Unlike Hyperliquid's "closed pnl", our realised
  PnL excludes fees (they are their own line).
* Unrealised ``= q * (mark - avg)``, where ``mark`` is the last mid passed to :func:`mark` (before
  the first mid, the last fill price). Equity ``= cash + q * mark``; total PnL ``= equity -
  initial_cash``. The identity, kept to float rounding after every call::

      realised + unrealised - fees + funding == (cash + q * mark) - initial_cash

* **Funding** (Hyperliquid perps): settled **hourly, on the hour** (epoch multiples of 3600 s),
  at the hourly rate Hyperliquid quotes (``ctx.funding``), as ``payment = -q * px * rate`` added
  to cash and to the ``funding`` total (positive = received): with a positive rate longs pay
  shorts, with a negative rate shorts pay longs. Hyperliquid's funding page
  (https://hyperliquid.gitbook.io/hyperliquid-docs/trading/funding, as restated by
  https://docs.notional.xyz/protocol/funding: "Funding is paid every hour at one eighth of the
  computed 8-hour rate ... payment = position size x O x F_1h", "uses the spot oracle price ...
  not the mark price"; "If the perp trades above spot, longs pay shorts", docs.hyena.trade
  funding-rates) values the position at the **oracle** price: the engine should pass
  ``ctx.oracle``, falling back to ``ctx.mark`` and then the mid when a source has no oracle.
  A settlement with a NaN rate or price (e.g. a synthetic source without ``ctx``) is skipped
  and counted (``funding_skipped`` in the summary), never silently applied as zero.
* **Markouts** (``/work/shared/CONVENTIONS.md``): for every fill and every configured horizon
  ``h`` (default 1, 5, 30, 60 s; up to ``MAX_HORIZONS``; ``h = 0`` is allowed and measures the
  mid just after the fill's own batch) ``markout_bps(h) = side * (mid(t+h) - px) / px * 1e4``
  (positive = the fill made money) and ``AS_bps(h) = -markout_bps(h)``. ``mid(t+h)`` is the mid
  in force when the first event batch at or after ``t + h`` arrives, *before* that batch is
  applied (:func:`markouts_due` is called before each batch): the mid in force at ``t + h``,
  except that a batch at exactly ``t + h`` is not yet seen (the same left limit as a fill's
  ``mid_ref``). One ``markouts`` record (``flowmm.core.ports`` ``MK_*`` columns) is
  appended per (fill, horizon), stamped with its due time ``t + h``, in due-time order (ties:
  earlier fill first). A NaN mid gives a NaN record that the running averages skip.

State (``accounting_state()`` returns an :class:`AccountingState` of these arrays)
----------------------------------------------------------------------------------
* ``acct`` ``float64[A_COUNT]``: the ledger; columns ``A_*`` below (position, cash, entry, PnL
  lines, counts, volumes, max |q|, drawdown, time-weighted stats, markout counters).
* ``clock`` ``int64[T_COUNT]``: ``T_START`` (first event seen), ``T_LAST`` (time integrals are
  accrued up to here), ``T_NEXT_FUNDING`` (next hourly settlement; ``UNSET`` before the first
  call), ``T_NEXT_MARKOUT`` (earliest pending markout due time; ``NO_MARKOUT`` when none).
  The last two are the engine's fast-path guards (see "Cost" below).
* ``pend_ctl`` ``int64[H, PC_COUNT]``, ``pend_t`` ``int64[H, cap]``, ``pend_r``
  ``float64[H, cap, PD_COUNT]``: the pending-markout queue, one FIFO ring per horizon (fills
  arrive in time order, so each horizon's FIFO is sorted by due time and a merge of the ``H``
  heads emits in due-time order). ``pend_ctl[k]`` = (horizon in ns, head slot, number queued);
  ``pend_t`` holds due times; ``pend_r`` (oid, side, px, fill sequence number). A full FIFO
  drops the new entry and counts it in ``acct[A_MK_DROPPED]`` (reported by :func:`summary`):
  size ``pending_capacity`` for the fill rate times the longest horizon.
* ``mk_stats`` ``float64[H, MS_COUNT]``: running sums of the emitted markouts per horizon
  (count, sum and sum of squares of AS bps, and per side), for the summary.

Kernels
-------
``on_fill(now, px, sz, side, fee, maker, acct, clock) -> bool``
    one fill; ``False`` (and ``acct[A_N_INVALID_FILLS] += 1``) when the record is malformed.
``on_fills(fill_t, fill_r, start, end, acct, clock, pend_ctl, pend_t, pend_r) -> n``
    records ``[start, end)`` of the fills ring: ``on_fill`` then ``markouts_push`` for each.
``mark(now, mid, acct, clock)``
    a new mid (a NaN or non-positive mid only advances time).
``on_funding(now, rate, px, acct, clock) -> payment``
    one settlement at ``now``.
``funding_due(now, rate, px, acct, clock) -> n``
    every hourly settlement at or before ``now`` not yet made, each with ``rate`` and ``px``.
``next_funding_time(now_ns) -> ns``
    the first top of the hour strictly after ``now_ns``.
``markouts_push(now, oid, side, px, pend_ctl, pend_t, pend_r, acct, clock) -> dropped``
``markouts_due(now, mid, pend_ctl, pend_t, pend_r, mk_stats, clock, mk_t, mk_r, mk_n) -> n``
``set_quoting(now, n_bid, n_ask, acct, clock)`` / ``quoting_from_orders(now, orders, acct, clock)``
    which sides are quoted from ``now`` on (for "time one-sided").
``record_pnl(now, acct, pnl_t, pnl_r, pnl_n)``
    append one PnL sample (``PNL_*`` columns) to a caller-sampled ring.

Time-weighted statistics are integrals over event time of the state *held* between calls:
every kernel first accrues ``[T_LAST, now)`` with the position and quoting state as they were,
then applies its change (so call them in event-time order; an earlier ``now`` accrues nothing).

Engine call order within one batch at event time ``T``
------------------------------------------------------
1. ``funding_due(T, ctx.funding, oracle_px, ...)`` (when ``T >= clock[T_NEXT_FUNDING]``): hours
   up to and including ``T`` are settled on the position held *before* the batch.
2. ``markouts_due(T, mid, ...)`` (when ``T >= clock[T_NEXT_MARKOUT]``) with the mid *before*
   the batch.
3. Apply the batch (market events, broker matching, acks) ...
4. ``on_fills(...)`` over the fills appended by this batch (accounting + markout queue).
5. ``mark(T, mid, ...)`` with the mid after the batch (every batch, or whenever it ticked).
6. ``quoting_from_orders(T, orders, ...)`` after the orders table changed.
7. On each quote cycle (after 5): ``record_pnl(T, ...)``.
At the end of a run: ``mark`` with the last mid and ``markouts_due(T_end, mid)``; markouts whose
horizon had not elapsed stay pending and are counted as such in the summary.

Cost
----
A call from compiled code to a kernel that is not inlined pays an NRT incref and decref (an
atomic each) per array argument, ~100 ns for ``markouts_due``'s eight arrays on the 2-core dev
box, whatever the kernel then does. The per-batch steps 1 and 2 therefore have int64 guards the
caller can test without a call: ``T >= clock[T_NEXT_FUNDING]`` and ``T >= clock[T_NEXT_MARKOUT]``
(the kernels test them too). Measured in a numba loop with ~120 ns of other work per event
(mark every event, a fill every 10 events, default horizons): ~65 ns/event guarded against
~260 ns calling both kernels on every batch; ~20 ns/event with a fill every 100 events.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numba import njit
from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowmm.core.node import ring_append
from flowmm.core.ports import (
    FI_FEE,
    FI_MAKER,
    FI_OID,
    FI_PX,
    FI_SIDE,
    FI_SZ,
    MK_AS_BPS,
    MK_HORIZON_S,
    MK_MARKOUT_BPS,
    MK_OID,
    MK_PX,
    MK_SIDE,
    ORD_OID,
    ORD_PENDING_NEW,
    ORD_SIDE,
    ORD_STATUS,
    PORT_TYPES,
)

HOUR_NS = 3_600_000_000_000
UNSET = np.iinfo(np.int64).min  # clock value before the first event
MAX_HORIZONS = 8
DEFAULT_HORIZONS_S = (1.0, 5.0, 30.0, 60.0)
Q_REL_EPS = 1e-9  # |q| below this fraction of the traded size is float noise: flat

# acct columns
(
    A_Q,
    A_CASH,
    A_INITIAL_CASH,
    A_AVG_PX,
    A_REALISED,
    A_UNREALISED,
    A_FEES,
    A_FUNDING,
    A_MARK_PX,
    A_EQUITY,
    A_TOTAL_PNL,
    A_N_BUYS,
    A_N_SELLS,
    A_N_MAKER,
    A_VOL_BOUGHT,
    A_VOL_SOLD,
    A_NOTIONAL_BOUGHT,
    A_NOTIONAL_SOLD,
    A_MAX_ABS_Q,
    A_N_INVALID_FILLS,
    A_N_FUNDING,
    A_N_FUNDING_SKIPPED,
    A_PEAK_PNL,
    A_MAX_DRAWDOWN,
    A_T_LONG_S,
    A_T_SHORT_S,
    A_TW_ABS_Q,
    A_TW_Q,
    A_QUOTE_BID,
    A_QUOTE_ASK,
    A_T_QUOTED_S,
    A_T_ONE_SIDED_S,
    A_T_NO_QUOTES_S,
    A_MK_SEQ,
    A_MK_PUSHED,
    A_MK_DROPPED,
    A_MAX_LONG,
    A_MAX_SHORT,
    A_TW_Q2,
) = range(39)
A_COUNT = 39
# clock columns
T_START, T_LAST, T_NEXT_FUNDING, T_NEXT_MARKOUT = range(4)
T_COUNT = 4
NO_MARKOUT = np.iinfo(np.int64).max  # T_NEXT_MARKOUT with nothing pending
# pending-markout control (per horizon) and record columns
PC_HORIZON_NS, PC_HEAD, PC_SIZE = range(3)
PC_COUNT = 3
PD_OID, PD_SIDE, PD_PX, PD_SEQ = range(4)
PD_COUNT = 4
# markout running sums (per horizon); AS bps
MS_N_EMITTED, MS_N, MS_SUM, MS_SUM2, MS_N_BID, MS_SUM_BID, MS_N_ASK, MS_SUM_ASK = range(8)
MS_COUNT = 8
# PnL sample record (record_pnl)
PNL_TOTAL, PNL_REALISED, PNL_UNREALISED, PNL_FEES, PNL_FUNDING, PNL_Q, PNL_MARK, PNL_CASH = range(8)
PNL_FIELDS = ("total", "realised", "unrealised", "fees", "funding", "q", "mark", "cash")
PNL_COUNT = 8


class AccountingParams(BaseModel):
    """Configuration of the accounting state."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    initial_cash: float = Field(0.0, description="starting cash, quote currency")
    horizons_s: tuple[float, ...] = Field(
        DEFAULT_HORIZONS_S, description=f"markout horizons in seconds, increasing, at most {MAX_HORIZONS}"
    )
    pending_capacity: int = Field(
        4096, ge=1, le=1 << 22, description="pending markouts per horizon (fills in the longest horizon)"
    )

    @field_validator("horizons_s")
    @classmethod
    def _horizons(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not 1 <= len(v) <= MAX_HORIZONS:
            raise ValueError(f"between 1 and {MAX_HORIZONS} markout horizons")
        if any(not (h >= 0.0 and math.isfinite(h)) for h in v):
            raise ValueError("markout horizons must be finite and >= 0 s")
        if any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError("markout horizons must be strictly increasing")
        return v


class AccountingState(NamedTuple):
    """The arrays the kernels work on (see the module docstring)."""

    acct: np.ndarray
    clock: np.ndarray
    pend_ctl: np.ndarray
    pend_t: np.ndarray
    pend_r: np.ndarray
    mk_stats: np.ndarray


def accounting_state(params: AccountingParams | None = None, **kw: Any) -> AccountingState:
    """A fresh state for ``params`` (or ``AccountingParams(**kw)``): flat, no history."""
    p = params if params is not None else AccountingParams(**kw)
    acct = np.zeros(A_COUNT)
    acct[A_CASH] = acct[A_INITIAL_CASH] = p.initial_cash
    acct[A_MARK_PX] = np.nan  # no mid yet
    acct[A_QUOTE_BID] = acct[A_QUOTE_ASK] = np.nan  # quoting state unknown until set
    clock = np.full(T_COUNT, UNSET, np.int64)
    clock[T_NEXT_MARKOUT] = NO_MARKOUT
    h = len(p.horizons_s)
    pend_ctl = np.zeros((h, PC_COUNT), np.int64)
    pend_ctl[:, PC_HORIZON_NS] = [round(x * 1e9) for x in p.horizons_s]
    pend_t = np.zeros((h, p.pending_capacity), np.int64)
    pend_r = np.full((h, p.pending_capacity, PD_COUNT), np.nan)
    mk_stats = np.zeros((h, MS_COUNT))
    return AccountingState(acct, clock, pend_ctl, pend_t, pend_r, mk_stats)


def markouts_ring(capacity: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An ``exec.markouts`` ring ``(times, records, count)`` of ``capacity`` records."""
    t, r = PORT_TYPES["markouts"].allocate(capacity=capacity)
    return t, r, np.zeros(1, np.int64)


def pnl_ring(capacity: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A PnL sample ring ``(times, records, count)`` for :func:`record_pnl`."""
    return np.zeros(capacity, np.int64), np.full((capacity, PNL_COUNT), np.nan), np.zeros(1, np.int64)


# -- time ---------------------------------------------------------------------------------


@njit(cache=True)
def next_funding_time(now_ns: int) -> int:
    """The first top of the hour (epoch multiple of 3600 s) strictly after ``now_ns``."""
    return (now_ns // HOUR_NS + 1) * HOUR_NS


@njit(cache=True)
def _accrue(now, acct, clock):
    """Integrate the held state over ``[T_LAST, now)``; start the clock on the first call."""
    if clock[T_START] == UNSET:
        clock[T_START] = now
        clock[T_LAST] = now
        clock[T_NEXT_FUNDING] = next_funding_time(now)
        return
    dt_ns = now - clock[T_LAST]
    if dt_ns <= 0:
        return
    dt = dt_ns / 1e9
    q = acct[A_Q]
    if q > 0.0:
        acct[A_T_LONG_S] += dt
    elif q < 0.0:
        acct[A_T_SHORT_S] += dt
    acct[A_TW_ABS_Q] += abs(q) * dt
    acct[A_TW_Q] += q * dt
    acct[A_TW_Q2] += q * q * dt
    b = acct[A_QUOTE_BID]
    a = acct[A_QUOTE_ASK]
    if b == b and a == a:  # quoting state known
        acct[A_T_QUOTED_S] += dt
        if b > 0.0 and a > 0.0:
            pass
        elif b > 0.0 or a > 0.0:
            acct[A_T_ONE_SIDED_S] += dt
        else:
            acct[A_T_NO_QUOTES_S] += dt
    clock[T_LAST] = now


@njit(cache=True)
def _remark(acct):
    """Recompute unrealised, equity, total PnL and drawdown from the current mark."""
    q = acct[A_Q]
    m = acct[A_MARK_PX]
    if q == 0.0:
        acct[A_UNREALISED] = 0.0
        acct[A_EQUITY] = acct[A_CASH]
    else:
        acct[A_UNREALISED] = q * (m - acct[A_AVG_PX])
        acct[A_EQUITY] = acct[A_CASH] + q * m
    total = acct[A_EQUITY] - acct[A_INITIAL_CASH]
    acct[A_TOTAL_PNL] = total
    if total > acct[A_PEAK_PNL]:
        acct[A_PEAK_PNL] = total
    dd = acct[A_PEAK_PNL] - total
    if dd > acct[A_MAX_DRAWDOWN]:
        acct[A_MAX_DRAWDOWN] = dd


# -- fills, marks, funding ------------------------------------------------------------------


@njit(cache=True)
def on_fill(now, px, sz, side, fee, maker, acct, clock):
    """Apply one fill (side +1 we bought, -1 we sold); ``False`` if the record is malformed."""
    if not (math.isfinite(px) and px > 0.0 and math.isfinite(sz) and sz > 0.0 and math.isfinite(fee)) or not (
        side == 1.0 or side == -1.0
    ):
        acct[A_N_INVALID_FILLS] += 1.0
        return False
    _accrue(now, acct, clock)
    notional = px * sz
    if side > 0.0:
        acct[A_CASH] -= notional
        acct[A_N_BUYS] += 1.0
        acct[A_VOL_BOUGHT] += sz
        acct[A_NOTIONAL_BOUGHT] += notional
    else:
        acct[A_CASH] += notional
        acct[A_N_SELLS] += 1.0
        acct[A_VOL_SOLD] += sz
        acct[A_NOTIONAL_SOLD] += notional
    acct[A_CASH] -= fee
    acct[A_FEES] += fee
    if maker == 1.0:
        acct[A_N_MAKER] += 1.0

    q = acct[A_Q]
    aq = abs(q)
    avg = acct[A_AVG_PX]
    q_new = q + side * sz
    if abs(q_new) <= Q_REL_EPS * max(aq, sz):
        q_new = 0.0
    if q == 0.0 or q * side > 0.0:  # opening or adding: size-weighted entry
        acct[A_AVG_PX] = (aq * avg + sz * px) / (aq + sz)
    else:  # reducing, closing or flipping: realise on the closed part at the entry price
        closed = aq if (q_new == 0.0 or q_new * q < 0.0) else sz
        acct[A_REALISED] += (px - avg) * closed * (1.0 if q > 0.0 else -1.0)
        if q_new == 0.0:
            acct[A_AVG_PX] = 0.0
        elif q_new * q < 0.0:  # flipped: the remainder opens at px
            acct[A_AVG_PX] = px
    if q_new == 0.0:
        acct[A_AVG_PX] = 0.0
    acct[A_Q] = q_new
    if abs(q_new) > acct[A_MAX_ABS_Q]:
        acct[A_MAX_ABS_Q] = abs(q_new)
    if q_new > acct[A_MAX_LONG]:
        acct[A_MAX_LONG] = q_new
    if -q_new > acct[A_MAX_SHORT]:
        acct[A_MAX_SHORT] = -q_new
    if acct[A_MARK_PX] != acct[A_MARK_PX]:  # no mid yet: mark at the fill price
        acct[A_MARK_PX] = px
    _remark(acct)
    return True


@njit(cache=True)
def mark(now, mid, acct, clock):
    """Mark the position at a new ``mid`` (a NaN or non-positive mid only advances time)."""
    _accrue(now, acct, clock)
    if math.isfinite(mid) and mid > 0.0:
        acct[A_MARK_PX] = mid
        _remark(acct)


@njit(cache=True)
def on_funding(now, rate, px, acct, clock):
    """One funding settlement: ``payment = -q * px * rate`` into cash and the funding total.

    ``rate`` is the hourly rate as Hyperliquid quotes it; ``px`` the oracle price. Returns the
    payment (positive = received); a NaN rate or price skips the settlement and counts it.
    """
    _accrue(now, acct, clock)
    if not (math.isfinite(rate) and math.isfinite(px) and px > 0.0):
        acct[A_N_FUNDING_SKIPPED] += 1.0
        return 0.0
    payment = -acct[A_Q] * px * rate
    if payment == 0.0:
        payment = 0.0  # no -0.0 in the books
    acct[A_CASH] += payment
    acct[A_FUNDING] += payment
    acct[A_N_FUNDING] += 1.0
    _remark(acct)
    return payment


@njit(cache=True)
def funding_due(now, rate, px, acct, clock):
    """Make every hourly settlement at or before ``now`` not yet made; returns how many.

    Call before applying the batch at ``now``, so an hour that coincides with a batch is
    settled on the position held before it. After a gap in the data every missed hour is
    settled with the same ``rate`` and ``px`` (the last known ones).
    """
    if clock[T_START] == UNSET:
        _accrue(now, acct, clock)  # starts the clock; the first settlement is the next hour
        return 0
    n = 0
    while clock[T_NEXT_FUNDING] <= now:
        t = clock[T_NEXT_FUNDING]
        on_funding(t, rate, px, acct, clock)
        clock[T_NEXT_FUNDING] = t + HOUR_NS
        n += 1
    return n


# -- quoting state --------------------------------------------------------------------------


@njit(cache=True)
def set_quoting(now, n_bid, n_ask, acct, clock):
    """From ``now`` on, ``n_bid`` bid and ``n_ask`` ask orders are live (> 0 = side quoted)."""
    _accrue(now, acct, clock)
    acct[A_QUOTE_BID] = n_bid
    acct[A_QUOTE_ASK] = n_ask


@njit(cache=True)
def quoting_from_orders(now, orders, acct, clock):
    """:func:`set_quoting` from an ``orders`` table: rows on the exchange (not pending new)."""
    nb = 0.0
    na = 0.0
    for i in range(orders.shape[0]):
        if orders[i, ORD_OID] == orders[i, ORD_OID] and orders[i, ORD_STATUS] != ORD_PENDING_NEW:
            if orders[i, ORD_SIDE] > 0.0:
                nb += 1.0
            elif orders[i, ORD_SIDE] < 0.0:
                na += 1.0
    set_quoting(now, nb, na, acct, clock)


# -- markouts -------------------------------------------------------------------------------


@njit(cache=True)
def markouts_push(now, oid, side, px, pend_ctl, pend_t, pend_r, acct, clock):
    """Queue one fill's markouts (one per horizon); returns how many were dropped (queue full)."""
    seq = acct[A_MK_SEQ]
    acct[A_MK_SEQ] += 1.0
    cap = pend_t.shape[1]
    dropped = 0
    for k in range(pend_ctl.shape[0]):
        size = pend_ctl[k, PC_SIZE]
        if size >= cap:
            dropped += 1
            continue
        i = pend_ctl[k, PC_HEAD] + size
        if i >= cap:  # wrap by comparison: a 64-bit modulo costs tens of cycles
            i -= cap
        due = now + pend_ctl[k, PC_HORIZON_NS]
        pend_t[k, i] = due
        if due < clock[T_NEXT_MARKOUT]:
            clock[T_NEXT_MARKOUT] = due
        pend_r[k, i, PD_OID] = oid
        pend_r[k, i, PD_SIDE] = side
        pend_r[k, i, PD_PX] = px
        pend_r[k, i, PD_SEQ] = seq
        pend_ctl[k, PC_SIZE] = size + 1
    acct[A_MK_PUSHED] += pend_ctl.shape[0] - dropped
    acct[A_MK_DROPPED] += dropped
    return dropped


@njit(cache=True)
def markouts_due(now, mid, pend_ctl, pend_t, pend_r, mk_stats, clock, mk_t, mk_r, mk_n):
    """Emit every pending markout due at or before ``now``, valued at ``mid``; returns how many.

    Records go to the ``markouts`` ring ``(mk_t, mk_r, mk_n)`` stamped with their due time, in
    due-time order (ties: earlier fill first). Call before applying the batch at ``now`` with
    the mid in force before it (see the module docstring). Returns at once while
    ``now < clock[T_NEXT_MARKOUT]`` (the earliest pending due time), which the caller may also
    test itself to skip the call.
    """
    if now < clock[T_NEXT_MARKOUT]:
        return 0
    cap = pend_t.shape[1]
    nh = pend_ctl.shape[0]
    n = 0
    while True:
        best = -1
        best_t = 0
        best_seq = 0.0
        nxt = NO_MARKOUT
        for k in range(nh):
            if pend_ctl[k, PC_SIZE] > 0:
                i = pend_ctl[k, PC_HEAD]
                t = pend_t[k, i]
                if t < nxt:
                    nxt = t
                if t <= now:
                    s = pend_r[k, i, PD_SEQ]
                    if best < 0 or t < best_t or (t == best_t and s < best_seq):
                        best = k
                        best_t = t
                        best_seq = s
        if best < 0:
            clock[T_NEXT_MARKOUT] = nxt  # every head is later than now
            return n
        i = pend_ctl[best, PC_HEAD]
        side = pend_r[best, i, PD_SIDE]
        px = pend_r[best, i, PD_PX]
        mko = side * (mid - px) / px * 1e4
        j = ring_append(mk_t, mk_r, mk_n, best_t)
        mk_r[j, MK_OID] = pend_r[best, i, PD_OID]
        mk_r[j, MK_HORIZON_S] = pend_ctl[best, PC_HORIZON_NS] / 1e9
        mk_r[j, MK_SIDE] = side
        mk_r[j, MK_PX] = px
        mk_r[j, MK_MARKOUT_BPS] = mko
        mk_r[j, MK_AS_BPS] = -mko
        pend_ctl[best, PC_HEAD] = i + 1 if i + 1 < cap else 0
        pend_ctl[best, PC_SIZE] -= 1
        mk_stats[best, MS_N_EMITTED] += 1.0
        if math.isfinite(mko):
            a = -mko
            mk_stats[best, MS_N] += 1.0
            mk_stats[best, MS_SUM] += a
            mk_stats[best, MS_SUM2] += a * a
            if side > 0.0:
                mk_stats[best, MS_N_BID] += 1.0
                mk_stats[best, MS_SUM_BID] += a
            else:
                mk_stats[best, MS_N_ASK] += 1.0
                mk_stats[best, MS_SUM_ASK] += a
        n += 1


@njit(cache=True)
def on_fills(fill_t, fill_r, start, end, acct, clock, pend_ctl, pend_t, pend_r):
    """Records ``[start, end)`` of a fills ring: accounting and the markout queue; returns applied."""
    cap = fill_t.shape[0]
    n = 0
    for c in range(start, end):
        i = c % cap
        now = fill_t[i]
        px = fill_r[i, FI_PX]
        side = fill_r[i, FI_SIDE]
        if on_fill(now, px, fill_r[i, FI_SZ], side, fill_r[i, FI_FEE], fill_r[i, FI_MAKER], acct, clock):
            markouts_push(now, fill_r[i, FI_OID], side, px, pend_ctl, pend_t, pend_r, acct, clock)
            n += 1
    return n


@njit(cache=True)
def record_pnl(now, acct, pnl_t, pnl_r, pnl_n):
    """Append one PnL sample (``PNL_*`` columns) to a ring; call after :func:`mark`."""
    j = ring_append(pnl_t, pnl_r, pnl_n, now)
    pnl_r[j, PNL_TOTAL] = acct[A_TOTAL_PNL]
    pnl_r[j, PNL_REALISED] = acct[A_REALISED]
    pnl_r[j, PNL_UNREALISED] = acct[A_UNREALISED]
    pnl_r[j, PNL_FEES] = acct[A_FEES]
    pnl_r[j, PNL_FUNDING] = acct[A_FUNDING]
    pnl_r[j, PNL_Q] = acct[A_Q]
    pnl_r[j, PNL_MARK] = acct[A_MARK_PX]
    pnl_r[j, PNL_CASH] = acct[A_CASH]


# -- summary --------------------------------------------------------------------------------


def _num(x: float) -> float | None:
    """A JSON-safe number: None for NaN/inf."""
    x = float(x)
    return x if math.isfinite(x) else None


def _mean(s: float, n: float) -> float | None:
    return float(s / n) if n > 0 else None


def horizon_label(h_s: float) -> str:
    """``1.0 -> '1s'``, ``0.5 -> '0.5s'``: the key of a horizon in :func:`summary`."""
    return f"{h_s:g}s"


def summary(state: AccountingState) -> dict[str, Any]:
    """The run's accounting figures as a JSON-ready dict (None where undefined)."""
    a, clock = state.acct, state.clock
    started = int(clock[T_START]) != UNSET
    duration = (int(clock[T_LAST]) - int(clock[T_START])) / 1e9 if started else 0.0
    t_long, t_short = float(a[A_T_LONG_S]), float(a[A_T_SHORT_S])
    markouts = []
    pending = 0
    for k in range(state.pend_ctl.shape[0]):
        st = state.mk_stats[k]
        n = float(st[MS_N])
        var = (st[MS_SUM2] - st[MS_SUM] ** 2 / n) / (n - 1) if n > 1 else math.nan
        pending += int(state.pend_ctl[k, PC_SIZE])
        markouts.append(
            {
                "horizon_s": float(state.pend_ctl[k, PC_HORIZON_NS]) / 1e9,
                "n": int(n),
                "emitted": int(st[MS_N_EMITTED]),
                "as_bps_mean": _mean(st[MS_SUM], n),
                "as_bps_se": _num(math.sqrt(max(var, 0.0) / n)) if n > 1 else None,
                "bid_n": int(st[MS_N_BID]),
                "bid_as_bps_mean": _mean(st[MS_SUM_BID], st[MS_N_BID]),
                "ask_n": int(st[MS_N_ASK]),
                "ask_as_bps_mean": _mean(st[MS_SUM_ASK], st[MS_N_ASK]),
            }
        )
    return {
        "duration_s": duration,
        "fills_buys": int(a[A_N_BUYS]),
        "fills_sells": int(a[A_N_SELLS]),
        "fills_maker": int(a[A_N_MAKER]),
        "fills_invalid": int(a[A_N_INVALID_FILLS]),
        "volume_bought": float(a[A_VOL_BOUGHT]),
        "volume_sold": float(a[A_VOL_SOLD]),
        "notional_bought": float(a[A_NOTIONAL_BOUGHT]),
        "notional_sold": float(a[A_NOTIONAL_SOLD]),
        "final_q": float(a[A_Q]),
        "max_abs_q": float(a[A_MAX_ABS_Q]),
        "max_long": float(a[A_MAX_LONG]),
        "max_short": float(a[A_MAX_SHORT]),
        "avg_entry_px": float(a[A_AVG_PX]),
        "mark_px": _num(a[A_MARK_PX]),
        "realised_pnl": float(a[A_REALISED]),
        "unrealised_pnl": _num(a[A_UNREALISED]),
        "total_pnl": _num(a[A_TOTAL_PNL]),
        "fees": float(a[A_FEES]),
        "funding": float(a[A_FUNDING]),
        "funding_settlements": int(a[A_N_FUNDING]),
        "funding_skipped": int(a[A_N_FUNDING_SKIPPED]),
        "initial_cash": float(a[A_INITIAL_CASH]),
        "cash": float(a[A_CASH]),
        "equity": _num(a[A_EQUITY]),
        "max_drawdown": float(a[A_MAX_DRAWDOWN]),
        "time_long_s": t_long,
        "time_short_s": t_short,
        "time_in_position_s": t_long + t_short,
        "mean_abs_q": float(a[A_TW_ABS_Q]) / duration if duration > 0 else None,
        "mean_q": float(a[A_TW_Q]) / duration if duration > 0 else None,
        "q_var": _num(max(a[A_TW_Q2] / duration - (a[A_TW_Q] / duration) ** 2, 0.0))
        if duration > 0
        else None,
        "time_quoted_s": float(a[A_T_QUOTED_S]),
        "time_one_sided_s": float(a[A_T_ONE_SIDED_S]),
        "time_no_quotes_s": float(a[A_T_NO_QUOTES_S]),
        "avg_as_bps": {horizon_label(m["horizon_s"]): m["as_bps_mean"] for m in markouts},
        "markouts": markouts,
        "markouts_pending": pending,
        "markouts_dropped": int(a[A_MK_DROPPED]),
    }
