"""The paper broker's matching core: our resting orders against the market stream.

Everything that runs per event is an ``@njit(cache=True)`` kernel over preallocated arrays and
scalars (no allocation, no wall clock, randomness only from a caller-owned state array).
Latency is not modelled here: the engine delays each action by its latency and calls
``apply_action`` at the action's *arrival* time.

Broker state (``new_state()`` allocates it once)
------------------------------------------------
* ``orders`` ``float64[MAX_ORDERS, 8]``: the contract's orders table (``flowmm.core.ports``
  ``ORD_*`` columns). A row whose status is ``ORD_PENDING_NEW`` (sent, not yet arrived) is not on
  the exchange: it never fills; ``apply_action(PLACE)`` for its oid turns that very row into a
  resting order. Rows with status ``RESTING``, ``PENDING_CANCEL`` or ``PENDING_MODIFY`` (a cancel
  or modify in flight) are on the exchange and keep filling until the action arrives. A fully
  filled, cancelled or rejected order's row is freed (all NaN).
* ``aux`` ``float64[MAX_ORDERS, AUX_WIDTH]``: per-order model state: ``AUX_SEQ`` (arrival
  sequence number: time priority among our own orders), ``AUX_PREV_DISP`` (displayed size at
  our price in the last book seen; NaN = not seen), ``AUX_CUM_TRADE`` (tape volume at our price
  since that book, so the probabilistic model does not count a trade twice).
* ``work`` ``int64[MAX_ORDERS + 1]``: scratch for priority ordering; the last cell is the
  sequence counter.
* ``params`` ``float64[P_COUNT]``: ``MatchParams.pack()``.

Kernels and the caller's duties
-------------------------------
``apply_action(now, kind, side, px, sz, oid, book, orders, aux, work, params) -> status``
    ``kind`` is ``ACT_PLACE``/``ACT_CANCEL``/``ACT_MODIFY``; ``book`` is the market book at the
    arrival time. Returns ``ST_OK`` (placed / cancelled / modified: emit the ack),
    ``ST_REJECT_CROSS`` (post-only would cross: emit a reject; for a modify the *old order is
    gone too*, since Hyperliquid's modify is a cancel-replace, see nautilus_trader PR #3831),
    ``ST_NOT_FOUND`` (cancel/modify of an oid not on the exchange: already filled, cancelled,
    or its place has not arrived yet; emit a cancel/modify reject), ``ST_FULL`` (no free row),
    ``ST_INVALID`` (bad side/price/size/oid, or a place reusing a live oid).
``on_trade(now, px, sz, side, orders, aux, work, params, mid_ref, fill_t, fill_r, fill_n)``
    one tape print; returns the number of fills appended to the fills ring.
``on_trades(times, records, start, end, ...)`` the same over a trades ring range.
``on_book(now, book, orders, aux, work, params, mid_ref, fill_t, fill_r, fill_n)``
    a new book (full L2 or a BBO written as level 0): queue models, and trade-through seen on
    the book; returns the number of fills.
``intensity_fills(now, dt, mid, orders, aux, work, params, rng, fill_t, fill_r, fill_n)``
    the A·exp(−k·δ) model of textbook scenarios (no book, no tape).

Call order within one exchange timestamp batch: **trades before the book** (a trade at our
price also shows up as a depth decrease in the next book; ``AUX_CUM_TRADE`` discounts it only
if the trade came first), then actions arriving at that time. ``mid_ref`` is the last mid
strictly before the event (the caller passes the mid *before* applying the book). Every fill
is a maker fill at our price with the maker fee (``flowmm.execution.fees``); the caller turns
the appended fill records into ``exec.fills`` events and position updates.

Fill rules (queue-position model, for tape-driven sources)
----------------------------------------------------------
* A place rests at the **back** of its level: ``queue_ahead`` = displayed size at exactly
  that price (0 when the level is empty or the price improves the best; NaN when the price lies
  beyond the book's deepest visible level: unknown until a book shows that level, when it is set
  to the displayed size, and an order with an unknown queue fills only by trade-through).
* A seller print (side −1) at ``p`` against our bid at ``b``: ``p < b`` trade-through, the whole
  remaining size fills at ``b``; ``p == b`` the print consumes the displayed queue ahead, the
  excess fills us (partial fills); ``p > b`` nothing. Mirror for asks and buyer prints. One
  print fills our orders in price-time priority (better price first, then arrival) and its size
  is used up in that order: trade-through fills consume it first (the aggressor met them
  first), then at our price the queue ahead of each order, then the order. Among our orders at
  one price, a later one also waits behind the earlier ones (not displayed in a paper book).
* Queue models for depth changes (``P_QUEUE_MODEL``), following hftbacktest
  (nkaz001/hftbacktest, ``hftbacktest/src/backtest/models/queue.rs`` ``RiskAdverseQueueModel``,
  ``ProbQueueModel`` with ``PowerProbQueueFunc``; Python ``hftbacktest/models/queue.py``):

  - ``QUEUE_RISK_AVERSE`` (0): the queue ahead shrinks only by trades at our price, and is capped
    at the level's displayed size (``min(queue_ahead, displayed)``).
  - ``QUEUE_PROB`` (1): a decrease of the displayed size at our price, net of tape volume at that
    price since the last book, ``d = prev − new − traded``, is cancellations; the share
    ``f(front)/(f(front)+f(back))`` of it was ahead of us, ``f(x) = x**power``, ``front`` =
    queue ahead, ``back`` = prev displayed − front (− our own size when ``own_in_book``, i.e.
    when the displayed book includes our orders; a paper book's market stream does not). As in
    hftbacktest, a decrease larger than ``back`` spills into the front:
    ``front' = front − share·d + min(back − (1 − share)·d, 0)``, then clipped to
    ``[0, displayed]``. An increase only caps. hftbacktest states its probability as the
    *back* share ``f(back)/(f(back)+f(front))``; this is its complement.
* Trade-through on the book: a best ask at or below our bid (best bid at or above our ask) fills
  the whole remaining size at our price.

Intensity model (textbook scenarios, e.g. ``as2008``)
-----------------------------------------------------
Each live order at signed distance ``δ = side·(mid − px)`` (the paper's units: dollars, ``k`` per
dollar) fills ``min(fill_unit, remaining)`` with probability ``1 − exp(−A·exp(−k·δ)·dt)`` in a
step of length ``dt``. For an order on its own side of mid ``δ = |px − mid|``; the signed form
keeps Avellaneda & Stoikov's ``δ^b = s − p^b`` for a quote pushed across mid (intensity above
``A``) instead of folding it back. ``intensity_prob = "paper"`` uses the paper's own
discretisation, probability ``λ·dt`` (capped at 1), instead of the exact Poisson chance.
One uniform draw per live order per step, in slot order.

PRNG: splitmix64 (Steele, Lea & Flood 2014; the seeding generator of xoshiro) over a
caller-owned ``uint64[1]`` state (``rng_state(seed)``): ``state += 0x9E3779B97F4A7C15``, then
two xor-shift-multiply mixing rounds; a uniform in [0, 1) takes the top 53 bits. The same seed
and the same calls give the same draws on every machine, independent of numpy's global state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from numba import njit
from pydantic import BaseModel, ConfigDict, Field

from flowmm.core.node import ring_append
from flowmm.core.ports import (
    ACT_CANCEL,
    ACT_MODIFY,
    ACT_PLACE,
    ASK_PX,
    ASK_SZ,
    BID_PX,
    BID_SZ,
    BOOK_LEVELS,
    FI_FEE,
    FI_MAKER,
    FI_MID_REF,
    FI_OID,
    FI_PX,
    FI_SIDE,
    FI_SZ,
    MAX_ORDERS,
    ORD_OID,
    ORD_ORIG_SZ,
    ORD_PENDING_NEW,
    ORD_PX,
    ORD_QUEUE_AHEAD,
    ORD_RESTING,
    ORD_SIDE,
    ORD_STATUS,
    ORD_SZ,
    ORD_T_PLACED_S,
    PORT_TYPES,
    TR_PX,
    TR_SIDE,
    TR_SZ,
)
from flowmm.execution.fees import FeeSchedule, fee_amount

# apply_action status codes
ST_OK, ST_REJECT_CROSS, ST_NOT_FOUND, ST_FULL, ST_INVALID = 0, 1, 2, 3, 4
STATUS_NAMES = {
    ST_OK: "ok",
    ST_REJECT_CROSS: "reject_cross",
    ST_NOT_FOUND: "not_found",
    ST_FULL: "full",
    ST_INVALID: "invalid",
}
# queue models
QUEUE_RISK_AVERSE, QUEUE_PROB = 0, 1
# params layout (MatchParams.pack)
P_QUEUE_MODEL, P_POWER, P_MAKER_RATE, P_TAKER_RATE, P_A, P_K, P_FILL_UNIT, P_OWN_IN_BOOK, P_LINEAR = range(9)
P_COUNT = 9
# aux layout
AUX_SEQ, AUX_PREV_DISP, AUX_CUM_TRADE = range(3)
AUX_WIDTH = 3

PX_REL_EPS = 1e-9  # prices equal within this relative tolerance (tick-rounding noise)
SZ_EPS = 1e-12  # remaining sizes at or below this are fully filled

_SM_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_SM_M1 = np.uint64(0xBF58476D1CE4E5B9)
_SM_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TWO_M53 = 1.0 / 9007199254740992.0


class MatchParams(BaseModel):
    """Configuration of the matching core (packed into a float64 array for the kernels)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    queue_model: Literal["risk_averse", "probabilistic"] = "risk_averse"
    power: float = Field(2.0, gt=0.0, le=10.0, description="f(x) = x**power of the probabilistic model")
    fees: FeeSchedule = FeeSchedule()
    intensity_A: float = Field(140.0, ge=0.0, description="A of A*exp(-k*delta), fills per second")
    intensity_k: float = Field(1.5, ge=0.0, description="k of A*exp(-k*delta), per price unit")
    fill_unit: float = Field(1.0, gt=0.0, description="size of one intensity-model fill")
    own_in_book: bool = Field(False, description="the displayed book includes our own orders")
    intensity_prob: Literal["poisson", "paper"] = Field(
        "poisson",
        description="fill chance per step: poisson 1-exp(-lambda dt); paper lambda*dt (capped at 1), "
        "the discretisation Avellaneda & Stoikov simulate",
    )

    def pack(self) -> np.ndarray:
        p = np.zeros(P_COUNT)
        p[P_QUEUE_MODEL] = QUEUE_PROB if self.queue_model == "probabilistic" else QUEUE_RISK_AVERSE
        p[P_POWER] = self.power
        p[P_MAKER_RATE] = self.fees.maker_rate
        p[P_TAKER_RATE] = self.fees.taker_rate
        p[P_A] = self.intensity_A
        p[P_K] = self.intensity_k
        p[P_FILL_UNIT] = self.fill_unit
        p[P_OWN_IN_BOOK] = 1.0 if self.own_in_book else 0.0
        p[P_LINEAR] = 1.0 if self.intensity_prob == "paper" else 0.0
        return p


def new_state(max_orders: int = MAX_ORDERS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fresh broker state ``(orders, aux, work)`` (all rows free)."""
    orders = np.full((max_orders, len(PORT_TYPES["orders"].fields)), np.nan)
    aux = np.full((max_orders, AUX_WIDTH), np.nan)
    work = np.zeros(max_orders + 1, np.int64)
    return orders, aux, work


def rng_state(seed: int) -> np.ndarray:
    """A splitmix64 state array for ``seed`` (any int; taken modulo 2**64)."""
    return np.array([seed % (1 << 64)], dtype=np.uint64)


# -- PRNG ----------------------------------------------------------------------------------


@njit(cache=True)
def splitmix64_next(state: np.ndarray) -> np.uint64:
    """Advance the splitmix64 state in place and return the next 64-bit output."""
    state[0] += _SM_GAMMA
    z = state[0]
    z = (z ^ (z >> _S30)) * _SM_M1
    z = (z ^ (z >> _S27)) * _SM_M2
    return z ^ (z >> _S31)


@njit(cache=True)
def uniform01(state: np.ndarray) -> float:
    """A uniform double in [0, 1) from the top 53 bits of the next splitmix64 output."""
    return float(splitmix64_next(state) >> _S11) * _TWO_M53


# -- helpers -------------------------------------------------------------------------------


@njit(cache=True)
def _same_px(a, b):
    return abs(a - b) <= PX_REL_EPS * max(abs(a), abs(b))


@njit(cache=True)
def _live(orders, i):
    """On the exchange: a used row whose place has arrived."""
    return orders[i, ORD_OID] == orders[i, ORD_OID] and orders[i, ORD_STATUS] != ORD_PENDING_NEW


@njit(cache=True)
def _find(orders, oid):
    for i in range(orders.shape[0]):
        if orders[i, ORD_OID] == oid:
            return i
    return -1


@njit(cache=True)
def _free_slot(orders):
    for i in range(orders.shape[0]):
        if orders[i, ORD_OID] != orders[i, ORD_OID]:
            return i
    return -1


@njit(cache=True)
def _clear(orders, aux, i):
    orders[i, :] = np.nan
    aux[i, :] = np.nan


@njit(cache=True)
def _crosses(book, side, px):
    """Would a post-only order at px cross (or touch) the opposite best?"""
    if side > 0:
        a = book[0, ASK_PX]
        return a == a and (px > a or _same_px(px, a))
    b = book[0, BID_PX]
    return b == b and (px < b or _same_px(px, b))


@njit(cache=True)
def _level_size(book, side, px):
    """Displayed size at exactly px on our side: ``(size, known)``.

    0 when the price improves the best or falls in a gap between visible levels (or the side is
    empty); unknown (NaN, False) beyond the deepest visible level."""
    pc = BID_PX if side > 0 else ASK_PX
    sc = BID_SZ if side > 0 else ASK_SZ
    n = 0
    for lv in range(book.shape[0]):
        lp = book[lv, pc]
        if lp != lp:
            break
        if _same_px(lp, px):
            return book[lv, sc], True
        n += 1
    if n == 0:
        return 0.0, True
    worst = book[n - 1, pc]
    beyond = px < worst if side > 0 else px > worst
    if beyond:
        return np.nan, False
    return 0.0, True


@njit(cache=True)
def _better(orders, aux, i, j):
    """Does order i have priority over order j (same side): better price, then arrival?"""
    pi = orders[i, ORD_PX]
    pj = orders[j, ORD_PX]
    if not _same_px(pi, pj):
        return pi > pj if orders[i, ORD_SIDE] > 0 else pi < pj
    return aux[i, AUX_SEQ] < aux[j, AUX_SEQ]


@njit(cache=True)
def _collect(orders, aux, work, side, start):
    """Write the live orders of ``side`` into ``work[start:]`` in priority order; returns the end."""
    n = start
    for i in range(orders.shape[0]):
        if _live(orders, i) and orders[i, ORD_SIDE] == side:
            # insertion sort: at most MAX_ORDERS rows
            j = n
            while j > start and _better(orders, aux, i, work[j - 1]):
                work[j] = work[j - 1]
                j -= 1
            work[j] = i
            n += 1
    return n


@njit(cache=True)
def _rest(now, i, side, px, sz, oid, book, orders, aux, work):
    """Write a resting order at the back of its level into row i."""
    disp, known = _level_size(book, side, px)
    orders[i, ORD_OID] = oid
    orders[i, ORD_SIDE] = side
    orders[i, ORD_PX] = px
    orders[i, ORD_SZ] = sz
    orders[i, ORD_ORIG_SZ] = sz
    orders[i, ORD_QUEUE_AHEAD] = disp if known else np.nan
    orders[i, ORD_T_PLACED_S] = now * 1e-9
    orders[i, ORD_STATUS] = ORD_RESTING
    k = work.shape[0] - 1
    work[k] += 1
    aux[i, AUX_SEQ] = work[k]
    aux[i, AUX_PREV_DISP] = disp if known else np.nan
    aux[i, AUX_CUM_TRADE] = 0.0


@njit(cache=True)
def _fill(now, orders, aux, i, sz, params, mid_ref, fill_t, fill_r, fill_n):
    """Append a maker fill of sz for order i at its price; free the row when done."""
    px = orders[i, ORD_PX]
    r = ring_append(fill_t, fill_r, fill_n, now)
    fill_r[r, FI_PX] = px
    fill_r[r, FI_SZ] = sz
    fill_r[r, FI_SIDE] = orders[i, ORD_SIDE]
    fill_r[r, FI_OID] = orders[i, ORD_OID]
    fill_r[r, FI_FEE] = fee_amount(params[P_MAKER_RATE], px, sz)
    fill_r[r, FI_MAKER] = 1.0
    fill_r[r, FI_MID_REF] = mid_ref
    rem = orders[i, ORD_SZ] - sz
    if rem <= SZ_EPS:
        _clear(orders, aux, i)
    else:
        orders[i, ORD_SZ] = rem


# -- kernels -------------------------------------------------------------------------------


@njit(cache=True)
def apply_action(now, kind, side, px, sz, oid, book, orders, aux, work, params):
    """Apply one arriving action; returns an ``ST_*`` status (see the module docstring)."""
    if kind == ACT_PLACE:
        if not (side == 1.0 or side == -1.0) or not (px > 0.0) or not (sz > 0.0) or oid != oid:
            return ST_INVALID
        if px == np.inf or sz == np.inf:
            return ST_INVALID
        i = _find(orders, oid)
        if i >= 0 and orders[i, ORD_STATUS] != ORD_PENDING_NEW:
            return ST_INVALID  # a live order already has this oid
        if _crosses(book, side, px):
            if i >= 0:
                _clear(orders, aux, i)  # the pending row never made it
            return ST_REJECT_CROSS
        if i < 0:
            i = _free_slot(orders)
            if i < 0:
                return ST_FULL
        _rest(now, i, side, px, sz, oid, book, orders, aux, work)
        return ST_OK
    if kind == ACT_CANCEL or kind == ACT_MODIFY:
        i = _find(orders, oid) if oid == oid else -1
        if i < 0 or not _live(orders, i):
            return ST_NOT_FOUND
        if kind == ACT_CANCEL:
            _clear(orders, aux, i)
            return ST_OK
        if not (px > 0.0) or not (sz > 0.0) or px == np.inf or sz == np.inf:
            return ST_INVALID
        s = orders[i, ORD_SIDE]
        if _crosses(book, s, px):
            _clear(orders, aux, i)  # cancel-replace: the old order is cancelled, the new rejected
            return ST_REJECT_CROSS
        _rest(now, i, s, px, sz, oid, book, orders, aux, work)  # back of the queue
        return ST_OK
    return ST_INVALID


@njit(cache=True)
def on_trade(now, px, sz, side, orders, aux, work, params, mid_ref, fill_t, fill_r, fill_n):
    """Match one tape print against our resting orders; returns the number of fills."""
    if not (sz > 0.0) or not (side == 1.0 or side == -1.0) or px != px:
        return 0
    our = -side  # a seller print (-1) hits bids (+1)
    n = _collect(orders, aux, work, our, 0)
    remaining = sz
    level_consumed = 0.0  # displayed volume at px used up by this print so far
    nf = 0
    for j in range(n):
        i = work[j]
        b = orders[i, ORD_PX]
        if _same_px(b, px):
            aux[i, AUX_CUM_TRADE] += sz  # the real print at our level, for the book's next diff
            qa = orders[i, ORD_QUEUE_AHEAD]
            if qa != qa:
                continue  # unknown queue: fills only by trade-through
            eff = max(qa - level_consumed, 0.0)
            take = min(eff, remaining)
            level_consumed += take
            remaining -= take
            orders[i, ORD_QUEUE_AHEAD] = eff - take
            f = min(orders[i, ORD_SZ], remaining)
            if f > SZ_EPS:
                remaining -= f
                _fill(now, orders, aux, i, f, params, mid_ref, fill_t, fill_r, fill_n)
                nf += 1
        elif (our > 0 and px < b) or (our < 0 and px > b):
            f = orders[i, ORD_SZ]
            remaining = max(remaining - f, 0.0)
            _fill(now, orders, aux, i, f, params, mid_ref, fill_t, fill_r, fill_n)
            nf += 1
        else:
            break  # priority order: every later order is at a worse price
    return nf


@njit(cache=True)
def on_trades(times, records, start, end, orders, aux, work, params, mid_ref, fill_t, fill_r, fill_n):
    """``on_trade`` over records ``start..end-1`` of a trades ring; returns the number of fills."""
    cap = times.shape[0]
    nf = 0
    for k in range(start, end):
        r = k % cap
        nf += on_trade(
            times[r],
            records[r, TR_PX],
            records[r, TR_SZ],
            records[r, TR_SIDE],
            orders,
            aux,
            work,
            params,
            mid_ref,
            fill_t,
            fill_r,
            fill_n,
        )
    return nf


@njit(cache=True)
def _book_update(now, book, i, orders, aux, params, mid_ref, fill_t, fill_r, fill_n):
    """One order against a new book; returns 1 when it filled by trade-through, else 0."""
    side = orders[i, ORD_SIDE]
    px = orders[i, ORD_PX]
    if _crosses(book, side, px):
        _fill(now, orders, aux, i, orders[i, ORD_SZ], params, mid_ref, fill_t, fill_r, fill_n)
        return 1
    disp, known = _level_size(book, side, px)
    if not known:
        aux[i, AUX_PREV_DISP] = np.nan
        aux[i, AUX_CUM_TRADE] = 0.0
        return 0
    own = orders[i, ORD_SZ] if params[P_OWN_IN_BOOK] > 0.0 else 0.0
    avail = max(disp - own, 0.0)  # displayed size that can be ahead of us
    qa = orders[i, ORD_QUEUE_AHEAD]
    prev = aux[i, AUX_PREV_DISP]
    if qa != qa:
        qa = avail  # first sight of our level: join the back of what is displayed
    elif params[P_QUEUE_MODEL] == QUEUE_PROB and prev == prev:
        d = prev - disp - aux[i, AUX_CUM_TRADE]
        if d > 0.0:
            front = qa
            back = max(prev - own - front, 0.0)
            ff = front ** params[P_POWER]
            fb = back ** params[P_POWER]
            share = ff / (ff + fb) if ff + fb > 0.0 else 0.0
            qa = front - share * d + min(back - (1.0 - share) * d, 0.0)
    orders[i, ORD_QUEUE_AHEAD] = min(max(qa, 0.0), avail)
    aux[i, AUX_PREV_DISP] = disp
    aux[i, AUX_CUM_TRADE] = 0.0
    return 0


@njit(cache=True)
def on_book(now, book, orders, aux, work, params, mid_ref, fill_t, fill_r, fill_n):
    """Apply a new market book to our orders (queue models, trade-through); returns fills."""
    nb = _collect(orders, aux, work, 1.0, 0)
    n = _collect(orders, aux, work, -1.0, nb)
    nf = 0
    for j in range(n):
        nf += _book_update(now, book, work[j], orders, aux, params, mid_ref, fill_t, fill_r, fill_n)
    return nf


@njit(cache=True)
def intensity_fills(now, dt, mid, orders, aux, work, params, rng, fill_t, fill_r, fill_n):
    """One step of the A·exp(−k·δ) fill model; returns the number of fills."""
    if mid != mid or not (dt > 0.0):
        return 0
    a = params[P_A]
    k = params[P_K]
    unit = params[P_FILL_UNIT]
    nf = 0
    for i in range(orders.shape[0]):
        if not _live(orders, i):
            continue
        delta = orders[i, ORD_SIDE] * (mid - orders[i, ORD_PX])
        rate_dt = a * np.exp(-k * delta) * dt
        p = min(1.0, rate_dt) if params[P_LINEAR] != 0.0 else -np.expm1(-rate_dt)
        if uniform01(rng) < p:
            _fill(now, orders, aux, i, min(unit, orders[i, ORD_SZ]), params, mid, fill_t, fill_r, fill_n)
            nf += 1
    return nf


# -- Python helper -------------------------------------------------------------------------

FILL_FIELDS = PORT_TYPES["fills"].fields


class PaperBook:
    """Owns the broker arrays for tests and Python callers; every method calls the kernels.

    Time is an int ns clock advanced by 1 ms per call unless ``now`` is given. The market book is
    kept here: ``book(bids, asks)`` sets it (and runs ``on_book``); ``mid_ref`` of a fill is the
    mid of the book before the event (or the ``mid`` argument of ``intensity``)."""

    def __init__(
        self,
        params: MatchParams | None = None,
        seed: int = 0,
        fill_capacity: int = 4096,
        max_orders: int = MAX_ORDERS,
    ):
        self.params = params or MatchParams()
        self.p = self.params.pack()
        self.orders, self.aux, self.work = new_state(max_orders)
        self.market = np.full((BOOK_LEVELS, 6), np.nan)
        self.rng = rng_state(seed)
        self.fill_t, self.fill_r = PORT_TYPES["fills"].allocate(capacity=fill_capacity)
        self.fill_n = np.zeros(1, np.int64)
        self.now = 0
        self._oid = 0

    # clock and market ----------------------------------------------------------------
    def _tick(self, now: int | None) -> int:
        self.now = self.now + 1_000_000 if now is None else int(now)
        return self.now

    @property
    def mid(self) -> float:
        return 0.5 * (self.market[0, BID_PX] + self.market[0, ASK_PX])

    def book(
        self,
        bids: Sequence[tuple[float, float]] = (),
        asks: Sequence[tuple[float, float]] = (),
        now: int | None = None,
    ) -> int:
        """Set the market book (levels best first, ``(px, sz)``) and apply it; returns fills."""
        mid_ref = self.mid
        m = np.full((BOOK_LEVELS, 6), np.nan)
        for lv, (px, sz) in enumerate(bids):
            m[lv, 0:3] = (px, sz, 1.0)
        for lv, (px, sz) in enumerate(asks):
            m[lv, 3:6] = (px, sz, 1.0)
        self.market = m
        args = (self.orders, self.aux, self.work, self.p, mid_ref, self.fill_t, self.fill_r, self.fill_n)
        return int(on_book(self._tick(now), m, *args))

    # actions -------------------------------------------------------------------------
    def place(self, side: int, px: float, sz: float, oid: float | None = None, now: int | None = None):
        """Place a post-only order; returns ``(status, oid)``."""
        if oid is None:
            self._oid += 1
            oid = self._oid
        st = apply_action(
            self._tick(now), ACT_PLACE, float(side), px, sz, float(oid), self.market, *self._state()
        )
        return int(st), oid

    def cancel(self, oid: float, now: int | None = None) -> int:
        return int(
            apply_action(
                self._tick(now), ACT_CANCEL, 0.0, np.nan, np.nan, float(oid), self.market, *self._state()
            )
        )

    def modify(self, oid: float, px: float, sz: float, now: int | None = None) -> int:
        return int(
            apply_action(self._tick(now), ACT_MODIFY, 0.0, px, sz, float(oid), self.market, *self._state())
        )

    def _state(self):
        return self.orders, self.aux, self.work, self.p

    # market events -------------------------------------------------------------------
    def trade(self, px: float, sz: float, side: int, now: int | None = None) -> int:
        """A tape print (side +1 buyer lifted the ask, -1 seller hit the bid); returns fills."""
        return int(
            on_trade(
                self._tick(now),
                px,
                sz,
                float(side),
                *self._state(),
                self.mid,
                self.fill_t,
                self.fill_r,
                self.fill_n,
            )
        )

    def intensity(self, dt: float, mid: float, now: int | None = None) -> int:
        """One step of the intensity model at ``mid``; returns fills."""
        return int(
            intensity_fills(
                self._tick(now), dt, mid, *self._state(), self.rng, self.fill_t, self.fill_r, self.fill_n
            )
        )

    # views ---------------------------------------------------------------------------
    def fills(self) -> list[dict[str, float]]:
        """Every fill so far (oldest first) as dicts of the fills layout plus ``t``."""
        n = int(self.fill_n[0])
        cap = self.fill_t.shape[0]
        if n > cap:
            raise RuntimeError(f"fill ring overflowed ({n} fills, capacity {cap})")
        return [
            {"t": int(self.fill_t[i]), **{f: float(self.fill_r[i, c]) for c, f in enumerate(FILL_FIELDS)}}
            for i in range(n)
        ]

    def order(self, oid: float) -> dict[str, float] | None:
        """The row of ``oid`` as a dict, or None when it is not in the table."""
        i = int(_find(self.orders, float(oid)))
        if i < 0:
            return None
        return {f: float(self.orders[i, c]) for c, f in enumerate(PORT_TYPES["orders"].fields)}

    def queue_ahead(self, oid: float) -> float:
        row = self.order(oid)
        if row is None:
            raise KeyError(oid)
        return row["queue_ahead"]
