"""Reconciler: the graph's desired ladder -> order actions (place / cancel / modify) under a rate budget.

Used by the paper broker and, later, by real Hyperliquid execution. Two numba kernels take only
arrays and scalars, allocate nothing and never read the wall clock, so the engine can call them
from its Python interpreter and from the fused numba loop alike:

* ``reconcile(now, ladder, orders, params, state, act_t, act_r, act_count) -> n`` once per quote
  cycle (or whenever the ladder ticks);
* ``cancel_side(now, side, orders, state, act_t, act_r, act_count) -> n`` on the interrupt path
  (the graph's ``execution.cancel`` output).

Both append their actions to the ``actions`` batch ring (``ACT_KIND, ACT_SIDE, ACT_PX, ACT_SZ,
ACT_OID``; :func:`flowmm.core.node.ring_append`) and return how many they appended. One call
emits at most ``MAX_ORDERS + 2 * LADDER_LEVELS`` = 96 actions: size the ring (and read it every
cycle) accordingly.

Semantics
---------
**Desired levels.** Level ``i`` of a side is ``(ladder[i, px], ladder[i, sz])``. It is *not a
level* when its price or size is NaN/inf or <= 0, or when its notional ``px * sz`` is below
``min_order_value`` (Hyperliquid rejects orders under $10 notional; such a level is dropped and
counted in ``state[S_N_BELOW_MIN]``, one count per level per call). Levels are independent: a NaN
in one level removes that level only. A ladder with no level at all (all NaN, e.g. a node upstream
produced NaN and withholds quotes) cancels every live order (within the budget, cancels first;
the unconditional path is ``cancel_side``). Prices are used as given: the quoter
puts them on the tick grid (the reconciler does not round, so prices stay bit-identical to what
the graph computed and the broker can compare them with book prices exactly).

**Live orders.** A slot of ``orders`` is live when its oid is not NaN and its status is
``ORD_RESTING``, ``ORD_PENDING_NEW`` or ``ORD_PENDING_MODIFY``. ``ORD_PENDING_CANCEL`` orders
are already going away: they match nothing and are never acted on again (a level they used to
cover is placed afresh). An order's price and size for matching are its slot values (``sz`` is
the *remaining* size), except for a ``ORD_PENDING_MODIFY`` order, which is compared at its
modify target (kept in ``state``, see below) so an in-flight modify is not sent twice.

**Matching (no churn).** Per side, a live order matches a desired level when
``|px_o - px_l| <= px_tol_ticks * tick_size`` and ``|sz_o - sz_l| <= sz_tol_frac * sz_l``
(with a 1e-6-tick / 1e-9 relative slop for float noise). Matching is one-to-one: greedy by price
distance first (the closest (order, level) pair in tolerance is matched first, ties to the lower
level index then the lower slot), then augmenting paths grow it to a maximum matching, so as many
orders as possible keep their queue place (closest-first alone would move one order per side when
a one-tick-spaced ladder shifts by one tick under a one-tick tolerance). Matched orders need no
action.

**Moves.** Unmatched desired levels and unmatched live orders of a side are then paired, again
greedily by price distance (no tolerance), and each pair becomes one ``ACT_MODIFY`` when
``allow_modify`` is set -- only for ``ORD_RESTING`` orders: an order with a request in flight
(pending new or pending modify) is cancelled instead, so each order has at most one modify in
flight and an ack can never be mistaken for a later request's. Without modify, or for orders
that cannot be modified, the order is cancelled and the level placed. Leftover levels are placed
(``ACT_PLACE``) with a new client order id; leftover orders are cancelled (``ACT_CANCEL``).
A Hyperliquid modify costs one action instead of two but loses queue priority like a
cancel-and-replace; either way the order joins the back of its new level.

**Rate budget.** A token bucket: ``max_actions_per_s`` tokens per second of event time, capped
at ``burst``; it starts full and each action costs one token (Hyperliquid's address-based rate
limit counts every order, cancel and modify of a batch). ``reconcile`` never spends a token it
does not have: in any interval of length ``L`` it emits at most ``burst + max_actions_per_s * L``
actions. When tokens run short the order is: risk-reducing actions first -- cancels, and modifies
that move an order away from the touch (bid down / ask up, or same price and smaller size) --
then the other modifies and the places; within each group the most aggressive price goes first
(the order's current price for risk-reducing actions, the target otherwise), measured as the
signed distance ``side * (ref - px) / ref`` behind a reference mid: the mid of the best desired
bid and ask; the best level of the one side that has levels; else the same from our live orders.
So after a jump up, a stale ask now under the new mid (the one most likely to be lifted) is
cancelled first, and new quotes go in touch first. Exact ties alternate bid-first / ask-first
between calls, so a symmetric ladder under a tight budget does not favour one side. What does
not fit waits: the reconciler keeps no memory of the ladder, the next call recomputes the
difference (deferred actions are counted in ``state[S_N_DEFERRED]``).
``cancel_side`` ignores the limit but still spends the tokens: the bucket may go negative and
later placements wait until it refills.

**What an action does to ``orders``** (the broker's own view of its requests, immediately):

* place: the lowest free slot (NaN oid) gets ``oid`` (the next client order id), side, px, sz,
  ``orig_sz = sz``, ``queue_ahead = NaN``, ``t_placed_s = now * 1e-9`` and ``ORD_PENDING_NEW``.
  No free slot (slots are freed by the broker only, on cancel acks, full fills and rejects):
  the place is skipped, costs no token and is counted in ``state[S_N_NO_SLOT]``;
* cancel: status ``ORD_PENDING_CANCEL``; the record carries the order's current px and sz;
* modify: status ``ORD_PENDING_MODIFY``; the slot keeps the OLD px/sz (the order can still be
  filled there until the modify lands); the record carries the NEW px and the new remaining
  size, and the oid is unchanged (Hyperliquid keeps the cloid across a modify). The target is
  also kept in ``state`` per slot, keyed by oid, for matching.

Client order ids come from ``state[S_NEXT_OID]``: strictly increasing, never reused (float64
holds them exactly up to 2**53); the live adapter maps them to Hyperliquid cloids.

**What the broker must do** (the reconciler relies on it):

* apply the actions of one oid in the order they were emitted (a cancel or a modify must not
  overtake the place of the same order; if it arrives first it waits for the place's ack);
* an ack moves a status forward only from the status it answers: a place ack sets
  ``ORD_RESTING`` only if the slot is still ``ORD_PENDING_NEW``, a modify ack writes the new
  px/sz/orig_sz (and resets queue position) and sets ``ORD_RESTING`` only if the slot is still
  ``ORD_PENDING_MODIFY`` (a ``ORD_PENDING_CANCEL`` set meanwhile stays);
* free the slot (oid = NaN, whole row NaN) on a cancel ack, a full fill or a rejected place; on
  a rejected modify, restore ``ORD_RESTING`` with the old values (or free the slot if the
  exchange cancelled the order).

**When to call.** ``reconcile`` is idempotent: right after a call that left nothing undone
(``state[S_LAST_UNDONE] == 0``: nothing deferred for budget, no place skipped for want of a slot),
the same ladder against the same orders yields no action. So the engine may skip the call while
the ladder has not ticked, no ack or fill has changed ``orders`` and ``state[S_LAST_UNDONE] == 0``;
otherwise (deferred work waits for tokens) it must keep calling, e.g. every quote cycle.

``params`` is :meth:`ReconcilerParams.pack`; ``state`` is :func:`reconciler_state` (a flat
float64 array: header, per-slot modify targets, then fixed-size scratch for matching and for
sorting candidates, so the kernels allocate nothing).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from pydantic import BaseModel, ConfigDict, Field

from flowmm.core.node import ring_append
from flowmm.core.ports import (
    ACT_CANCEL,
    ACT_KIND,
    ACT_MODIFY,
    ACT_OID,
    ACT_PLACE,
    ACT_PX,
    ACT_SIDE,
    ACT_SZ,
    LAD_ASK_PX,
    LAD_ASK_SZ,
    LAD_BID_PX,
    LAD_BID_SZ,
    LADDER_LEVELS,
    MAX_ORDERS,
    ORD_OID,
    ORD_ORIG_SZ,
    ORD_PENDING_CANCEL,
    ORD_PENDING_MODIFY,
    ORD_PENDING_NEW,
    ORD_PX,
    ORD_QUEUE_AHEAD,
    ORD_RESTING,
    ORD_SIDE,
    ORD_STATUS,
    ORD_SZ,
    ORD_T_PLACED_S,
    PORT_TYPES,
)

__all__ = [
    "ReconcilerParams",
    "cancel_side",
    "empty_orders",
    "ladder_from",
    "read_actions",
    "reconcile",
    "reconciler_state",
    "reconciler_stats",
]

# -- params layout (field order of ReconcilerParams) ---------------------------------------------
P_TICK, P_PX_TOL_TICKS, P_SZ_TOL_FRAC, P_RATE, P_BURST, P_MIN_VALUE, P_ALLOW_MODIFY = range(7)

# -- state layout (flat float64) -----------------------------------------------------------------
S_TOKENS = 0  # token bucket level (may be negative after cancel_side)
S_RATE = 1  # copies of max_actions_per_s and burst, so cancel_side can refill without params
S_BURST = 2
S_LAST_SEC = 3  # last refill time as whole seconds + ns remainder: exact in float64 (NaN = never)
S_LAST_NS = 4
S_NEXT_OID = 5  # next client order id
S_TIE = 6  # 0: bid first on exact priority ties, 1: ask first; flips every reconcile call
S_N_ACTIONS = 7  # cumulative counters (diagnostics)
S_N_DEFERRED = 8
S_N_NO_SLOT = 9
S_N_BELOW_MIN = 10
S_N_CALLS = 11
S_N_CANCEL_SIDE = 12
S_LAST_UNDONE = 13  # actions the last reconcile call left undone (budget or no slot): call again
_HEADER = 16
S_PEND_OID = _HEADER  # per slot: oid whose modify target is kept below
S_PEND_PX = S_PEND_OID + MAX_ORDERS
S_PEND_SZ = S_PEND_PX + MAX_ORDERS
# matching scratch, one side at a time, over compact lists ("a" indexes the side's live orders, "b"
# its valid levels, in ladder order)
S_SO = S_PEND_SZ + MAX_ORDERS  # per side (bids at +0, asks at +MAX_ORDERS) and a: slot
S_EPX = S_SO + 2 * MAX_ORDERS  # per side and a: price and size compared at (modify target in flight)
S_ESZ = S_EPX + 2 * MAX_ORDERS
S_OM = S_ESZ + 2 * MAX_ORDERS  # per side and a: matched b, -1 free
S_VISITED = S_OM + 2 * MAX_ORDERS  # per a: seen by the current augmenting-path search
S_SL = S_VISITED + MAX_ORDERS  # per b: ladder row
S_LM = S_SL + LADDER_LEVELS  # per b: matched a, -1 free
S_LP0 = S_LM + LADDER_LEVELS  # per b: its in-tolerance pairs are S_PD/S_PA[S_LP0[b]:S_LP1[b]]
S_LP1 = S_LP0 + LADDER_LEVELS
MAX_PAIRS = LADDER_LEVELS * MAX_ORDERS
S_PD = S_LP1 + LADDER_LEVELS  # per pair: price distance
S_PA = S_PD + MAX_PAIRS  # per pair: a
S_STK_B = S_PA + MAX_PAIRS  # depth-first search stack: level b, chosen pair, resume pair
S_STK_P = S_STK_B + LADDER_LEVELS + 1
S_STK_R = S_STK_P + LADDER_LEVELS + 1
MAX_CAND = MAX_ORDERS + 2 * LADDER_LEVELS  # cancels <= live orders; modifies + places <= levels
C_KIND, C_SIDE, C_PX, C_SZ, C_SLOT, C_CLASS, C_KEY = range(7)
C_W = 7
S_CAND = S_STK_R + LADDER_LEVELS + 1
S_PERM = S_CAND + MAX_CAND * C_W  # priority order of the candidates
STATE_SIZE = S_PERM + MAX_CAND

_NS = 1_000_000_000
_PX_SLOP_TICKS = 1e-6  # float noise: 100.01 - 100.00 is 0.010000000000005116
_SZ_SLOP = 1e-9

ACTION_NAMES = {ACT_PLACE: "place", ACT_CANCEL: "cancel", ACT_MODIFY: "modify"}


class ReconcilerParams(BaseModel):
    """Reconciler settings; ``pack()`` gives the kernel's float64 ``params`` (``P_*`` order)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tick_size: float = Field(0.01, gt=0, description="price grid of the instrument (quote currency)")
    px_tol_ticks: float = Field(
        1.0, ge=0, description="a live order within this many ticks of a desired level keeps its place"
    )
    sz_tol_frac: float = Field(
        0.1, ge=0, description="a live order within this fraction of a level's size keeps its place"
    )
    max_actions_per_s: float = Field(5.0, gt=0, description="token-bucket refill: actions per second")
    burst: float = Field(40.0, ge=1, description="token-bucket capacity: actions in one burst")
    min_order_value: float = Field(
        10.0, ge=0, description="levels with px*sz below this notional are not placed (Hyperliquid: $10)"
    )
    allow_modify: bool = Field(
        True, description="move orders with one modify (loses queue priority) instead of cancel + place"
    )

    def pack(self) -> np.ndarray:
        return np.array(
            [
                self.tick_size,
                self.px_tol_ticks,
                self.sz_tol_frac,
                self.max_actions_per_s,
                self.burst,
                self.min_order_value,
                1.0 if self.allow_modify else 0.0,
            ],
            dtype=np.float64,
        )


def reconciler_state(params: ReconcilerParams | None = None, first_oid: int = 1) -> np.ndarray:
    """A fresh state: a full bucket, client order ids from ``first_oid``, empty scratch."""
    p = params or ReconcilerParams()
    if not 1 <= first_oid < 2**53:
        raise ValueError("first_oid must be in [1, 2**53)")
    st = np.full(STATE_SIZE, np.nan)
    st[S_TOKENS] = p.burst
    st[S_RATE] = p.max_actions_per_s
    st[S_BURST] = p.burst
    st[S_NEXT_OID] = float(first_oid)
    st[S_TIE] = 0.0
    st[S_N_ACTIONS : S_LAST_UNDONE + 1] = 0.0
    return st


def reconciler_stats(state: np.ndarray) -> dict[str, float]:
    """The state's counters, for run summaries and tests."""
    return {
        "tokens": float(state[S_TOKENS]),
        "next_oid": float(state[S_NEXT_OID]),
        "actions": float(state[S_N_ACTIONS]),
        "deferred": float(state[S_N_DEFERRED]),
        "no_slot": float(state[S_N_NO_SLOT]),
        "below_min_value": float(state[S_N_BELOW_MIN]),
        "calls": float(state[S_N_CALLS]),
        "cancel_side_actions": float(state[S_N_CANCEL_SIDE]),
        "last_undone": float(state[S_LAST_UNDONE]),
    }


def empty_orders() -> np.ndarray:
    """An ``orders`` array with every slot free."""
    return PORT_TYPES["orders"].allocate()


def ladder_from(
    bids: list[tuple[float, float]] | tuple = (), asks: list[tuple[float, float]] | tuple = ()
) -> np.ndarray:
    """A ``ladder`` array from ``[(px, sz), ...]`` per side (level 0 first); the rest NaN."""
    if len(bids) > LADDER_LEVELS or len(asks) > LADDER_LEVELS:
        raise ValueError(f"at most {LADDER_LEVELS} levels per side")
    lad = PORT_TYPES["ladder"].allocate()
    for i, (px, sz) in enumerate(bids):
        lad[i, LAD_BID_PX], lad[i, LAD_BID_SZ] = px, sz
    for i, (px, sz) in enumerate(asks):
        lad[i, LAD_ASK_PX], lad[i, LAD_ASK_SZ] = px, sz
    return lad


def read_actions(act_t: np.ndarray, act_r: np.ndarray, start: int, end: int) -> list[tuple]:
    """Records ``start..end-1`` of an actions ring as ``(t_ns, kind, side, px, sz, oid)``."""
    cap = act_t.shape[0]
    if end - start > cap:
        raise ValueError(f"{end - start} records asked from a ring of {cap}: older ones are overwritten")
    out = []
    for i in range(start, end):
        r = act_r[i % cap]
        out.append(
            (
                int(act_t[i % cap]),
                ACTION_NAMES.get(float(r[ACT_KIND]), str(r[ACT_KIND])),
                int(r[ACT_SIDE]),
                float(r[ACT_PX]),
                float(r[ACT_SZ]),
                int(r[ACT_OID]) if not math.isnan(r[ACT_OID]) else -1,
            )
        )
    return out


# -- kernels -------------------------------------------------------------------------------------


@njit(cache=True)
def _refill(now, state):
    """Credit the tokens earned since the last refill (event time; time never runs backwards)."""
    if state[S_LAST_SEC] == state[S_LAST_SEC]:
        last = np.int64(state[S_LAST_SEC]) * _NS + np.int64(state[S_LAST_NS])
        if now <= last:
            return
        tokens = state[S_TOKENS] + (now - last) * 1e-9 * state[S_RATE]
        state[S_TOKENS] = min(tokens, state[S_BURST])
    state[S_LAST_SEC] = float(now // _NS)
    state[S_LAST_NS] = float(now % _NS)


# Helpers in loops take scalars only: a helper taking arrays costs an atomic incref/decref pair per
# call (numba's reference-count pruning does not remove them here), which dominated the kernel.


@njit(cache=True)
def _is_live(oid, status):
    return oid == oid and (status == ORD_RESTING or status == ORD_PENDING_NEW or status == ORD_PENDING_MODIFY)


@njit(cache=True)
def _eff(status, oid, pend_oid, pend_value, value):
    """The value an order is compared at: its modify target while the modify is in flight."""
    if status == ORD_PENDING_MODIFY and pend_oid == oid:
        return pend_value
    return value


@njit(cache=True)
def _is_level(px, sz, min_value):
    # written so that NaN fails every comparison
    return px > 0.0 and sz > 0.0 and px < np.inf and sz < np.inf and px * sz >= min_value


@njit(cache=True)
def _append_cancel(now, orders, j, act_t, act_r, act_count):
    row = ring_append(act_t, act_r, act_count, now)
    act_r[row, ACT_KIND] = ACT_CANCEL
    act_r[row, ACT_SIDE] = orders[j, ORD_SIDE]
    act_r[row, ACT_PX] = orders[j, ORD_PX]
    act_r[row, ACT_SZ] = orders[j, ORD_SZ]
    act_r[row, ACT_OID] = orders[j, ORD_OID]
    orders[j, ORD_STATUS] = ORD_PENDING_CANCEL


@njit(cache=True)
def _add_cand(state, n, kind, side, px, sz, slot, cls, key):
    base = S_CAND + n * C_W
    state[base + C_KIND] = kind
    state[base + C_SIDE] = side
    state[base + C_PX] = px
    state[base + C_SZ] = sz
    state[base + C_SLOT] = slot
    state[base + C_CLASS] = cls
    state[base + C_KEY] = key
    return n + 1


@njit(cache=True)
def _key(px, side, ref):
    """Aggressiveness: signed distance behind the reference (negative = through it, most urgent)."""
    if ref > 0.0:
        return side * (ref - px) / ref
    return 0.0


@njit(cache=True)
def _before(cls_a, key_a, side_a, a, cls_b, key_b, side_b, b, bid_first):
    """Priority order of two candidates: class, key, side (alternating), insertion order."""
    if cls_a != cls_b:
        return cls_a < cls_b
    if key_a != key_b:
        return key_a < key_b
    if side_a != side_b:
        return (side_a > 0.0) == bid_first
    return a < b


@njit(cache=True)
def _augment(state, nl, o):
    """Grow the keep-matching to maximum size (Kuhn's augmenting paths, iterative, no allocation).

    Closest-first alone can strand a level: a one-tick-spaced ladder shifted by one tick with a
    one-tick tolerance would move one order per side although every order is within tolerance of
    some level. A path from a free level through matched orders to a free order re-pairs them; every
    pair stays within tolerance, so matched levels stay matched."""
    for s in range(nl):
        if state[S_LM + s] != -1.0:
            continue
        for k in range(MAX_ORDERS):
            state[S_VISITED + k] = 0.0
        depth = 0
        state[S_STK_B] = s
        state[S_STK_R] = state[S_LP0 + s]
        found = False
        while depth >= 0:
            b = int(state[S_STK_B + depth])
            p = int(state[S_STK_R + depth])
            p1 = int(state[S_LP1 + b])
            descended = False
            while p < p1:
                a = int(state[S_PA + p])
                if state[S_VISITED + a] == 0.0:
                    state[S_VISITED + a] = 1.0
                    state[S_STK_R + depth] = p + 1
                    state[S_STK_P + depth] = p
                    if state[S_OM + o + a] == -1.0:
                        found = True
                    else:  # try to re-seat the level that holds order a
                        b2 = int(state[S_OM + o + a])
                        depth += 1
                        state[S_STK_B + depth] = b2
                        state[S_STK_R + depth] = state[S_LP0 + b2]
                        descended = True
                    break
                p += 1
            if found:
                break
            if not descended:
                depth -= 1
        if found:
            for d in range(depth + 1):
                b = int(state[S_STK_B + d])
                a = int(state[S_PA + int(state[S_STK_P + d])])
                state[S_LM + b] = a
                state[S_OM + o + a] = b


@njit(cache=True)
def _side_candidates(
    ladder, orders, state, side, o, no, px_col, sz_col, px_tol, px_eps, sz_tol, min_value, modify, n
):
    """Match one side (its live orders at ``S_* + o``, ``no`` of them) and append its candidate
    actions from ``n`` on, with their key price in ``C_KEY``; returns (count, best level price)."""
    best = np.nan
    nl = 0
    np_ = 0  # in-tolerance (level, order) pairs, grouped by level
    for i in range(ladder.shape[0]):
        lpx = ladder[i, px_col]
        lsz = ladder[i, sz_col]
        if not _is_level(lpx, lsz, min_value):
            if lpx > 0.0 and lsz > 0.0 and lpx < np.inf and lsz < np.inf:
                state[S_N_BELOW_MIN] += 1.0
            continue
        if not (side * (lpx - best) <= 0.0):  # NaN best or a better level
            best = lpx
        state[S_SL + nl] = i
        state[S_LM + nl] = -1.0
        state[S_LP0 + nl] = np_
        for a in range(no):
            d = abs(state[S_EPX + o + a] - lpx)
            if d <= px_tol and abs(state[S_ESZ + o + a] - lsz) <= sz_tol * lsz:
                state[S_PD + np_] = d
                state[S_PA + np_] = a
                np_ += 1
        state[S_LP1 + nl] = np_
        nl += 1

    # 1) keep: closest pairs first (ties: lower level, then lower slot) ...
    while True:
        best_d = np.inf
        best_b = -1
        best_a = -1
        for b in range(nl):
            if state[S_LM + b] != -1.0:
                continue
            for p in range(int(state[S_LP0 + b]), int(state[S_LP1 + b])):
                a = int(state[S_PA + p])
                if state[S_OM + o + a] == -1.0 and state[S_PD + p] < best_d:
                    best_d = state[S_PD + p]
                    best_b = b
                    best_a = a
        if best_b < 0:
            break
        state[S_LM + best_b] = best_a
        state[S_OM + o + best_a] = best_b
    # ... then augmenting paths, so that as many levels as possible keep an order
    _augment(state, nl, o)

    # 2) move: pair the rest greedily by price distance; a modify only for resting orders
    if modify:
        while True:
            best_d = np.inf
            best_b = -1
            best_a = -1
            for b in range(nl):
                if state[S_LM + b] != -1.0:
                    continue
                lpx = ladder[int(state[S_SL + b]), px_col]
                for a in range(no):
                    if state[S_OM + o + a] != -1.0:
                        continue
                    if orders[int(state[S_SO + o + a]), ORD_STATUS] != ORD_RESTING:
                        continue
                    d = abs(state[S_EPX + o + a] - lpx)
                    if d < best_d:
                        best_d = d
                        best_b = b
                        best_a = a
            if best_b < 0:
                break
            state[S_LM + best_b] = best_a
            state[S_OM + o + best_a] = best_b
            i = int(state[S_SL + best_b])
            j = int(state[S_SO + o + best_a])
            new_px = ladder[i, px_col]
            new_sz = ladder[i, sz_col]
            old_px = orders[j, ORD_PX]
            dpx = side * (new_px - old_px)
            if dpx < -px_eps or (abs(dpx) <= px_eps and new_sz < orders[j, ORD_SZ]):
                # moving away from the touch reduces risk: ranked with the cancels, by where it sits
                n = _add_cand(state, n, ACT_MODIFY, side, new_px, new_sz, j, 0.0, old_px)
            else:
                n = _add_cand(state, n, ACT_MODIFY, side, new_px, new_sz, j, 1.0, new_px)

    # 3) leftovers: cancel the orders, place the levels
    for a in range(no):
        if state[S_OM + o + a] == -1.0:
            j = int(state[S_SO + o + a])
            px = orders[j, ORD_PX]
            n = _add_cand(state, n, ACT_CANCEL, side, px, orders[j, ORD_SZ], j, 0.0, px)
    for b in range(nl):
        if state[S_LM + b] == -1.0:
            i = int(state[S_SL + b])
            px = ladder[i, px_col]
            n = _add_cand(state, n, ACT_PLACE, side, px, ladder[i, sz_col], -1.0, 1.0, px)
    return n, best


@njit(cache=True)
def reconcile(now, ladder, orders, params, state, act_t, act_r, act_count):
    """Turn the desired ``ladder`` into actions against ``orders``; see the module docstring."""
    # the scratch in ``state`` is sized for the contract's layouts (numba does not bounds-check)
    if ladder.shape[0] > LADDER_LEVELS or orders.shape[0] > MAX_ORDERS or state.shape[0] < STATE_SIZE:
        raise ValueError("reconcile: ladder, orders or state does not have the contract's shape")
    state[S_RATE] = params[P_RATE]
    state[S_BURST] = params[P_BURST]
    _refill(now, state)
    state[S_N_CALLS] += 1.0
    tick = params[P_TICK]
    px_eps = _PX_SLOP_TICKS * tick
    px_tol = params[P_PX_TOL_TICKS] * tick + px_eps
    sz_tol = params[P_SZ_TOL_FRAC] + _SZ_SLOP
    min_value = params[P_MIN_VALUE]
    modify = params[P_ALLOW_MODIFY] > 0.5

    # one pass over the orders: each side's live orders as a compact list
    nb = 0
    na = 0
    live_bb = -np.inf
    live_ba = np.inf
    for j in range(orders.shape[0]):
        oid = orders[j, ORD_OID]
        status = orders[j, ORD_STATUS]
        if not _is_live(oid, status):
            continue
        epx = _eff(status, oid, state[S_PEND_OID + j], state[S_PEND_PX + j], orders[j, ORD_PX])
        esz = _eff(status, oid, state[S_PEND_OID + j], state[S_PEND_SZ + j], orders[j, ORD_SZ])
        if orders[j, ORD_SIDE] > 0.0:
            o = 0
            a = nb
            nb += 1
            live_bb = max(live_bb, epx)
        else:
            o = MAX_ORDERS
            a = na
            na += 1
            live_ba = min(live_ba, epx)
        state[S_SO + o + a] = j
        state[S_EPX + o + a] = epx
        state[S_ESZ + o + a] = esz
        state[S_OM + o + a] = -1.0

    nc, best_bid = _side_candidates(
        ladder,
        orders,
        state,
        1.0,
        0,
        nb,
        LAD_BID_PX,
        LAD_BID_SZ,
        px_tol,
        px_eps,
        sz_tol,
        min_value,
        modify,
        0,
    )
    nc, best_ask = _side_candidates(
        ladder,
        orders,
        state,
        -1.0,
        MAX_ORDERS,
        na,
        LAD_ASK_PX,
        LAD_ASK_SZ,
        px_tol,
        px_eps,
        sz_tol,
        min_value,
        modify,
        nc,
    )

    # reference mid for priorities: the desired ladder's, else our live orders'
    if best_bid != best_bid and best_ask != best_ask:
        best_bid = live_bb if live_bb > -np.inf else np.nan
        best_ask = live_ba if live_ba < np.inf else np.nan
    if best_bid == best_bid and best_ask == best_ask:
        ref = 0.5 * (best_bid + best_ask)
    elif best_bid == best_bid:
        ref = best_bid
    else:
        ref = best_ask  # NaN when there is nothing at all: every key is then 0
    for r in range(nc):
        base = S_CAND + r * C_W
        state[base + C_KEY] = _key(state[base + C_KEY], state[base + C_SIDE], ref)

    # priority order: insertion sort of a permutation (<= 96 candidates, no allocation)
    bid_first = state[S_TIE] == 0.0
    state[S_TIE] = 1.0 - state[S_TIE]
    for r in range(nc):
        state[S_PERM + r] = r
        k = r
        while k > 0:
            a = int(state[S_PERM + k])
            b = int(state[S_PERM + k - 1])
            ca = S_CAND + a * C_W
            cb = S_CAND + b * C_W
            if not _before(
                state[ca + C_CLASS],
                state[ca + C_KEY],
                state[ca + C_SIDE],
                a,
                state[cb + C_CLASS],
                state[cb + C_KEY],
                state[cb + C_SIDE],
                b,
                bid_first,
            ):
                break
            state[S_PERM + k] = b
            state[S_PERM + k - 1] = a
            k -= 1

    n = 0
    n_ord = orders.shape[0]
    state[S_LAST_UNDONE] = 0.0
    for r in range(nc):
        if state[S_TOKENS] < 1.0:
            state[S_N_DEFERRED] += nc - r
            state[S_LAST_UNDONE] += nc - r
            break
        base = S_CAND + int(state[S_PERM + r]) * C_W
        kind = state[base + C_KIND]
        if kind == ACT_CANCEL:
            _append_cancel(now, orders, int(state[base + C_SLOT]), act_t, act_r, act_count)
        elif kind == ACT_MODIFY:
            j = int(state[base + C_SLOT])
            row = ring_append(act_t, act_r, act_count, now)
            act_r[row, ACT_KIND] = ACT_MODIFY
            act_r[row, ACT_SIDE] = orders[j, ORD_SIDE]
            act_r[row, ACT_PX] = state[base + C_PX]
            act_r[row, ACT_SZ] = state[base + C_SZ]
            act_r[row, ACT_OID] = orders[j, ORD_OID]
            orders[j, ORD_STATUS] = ORD_PENDING_MODIFY
            state[S_PEND_OID + j] = orders[j, ORD_OID]
            state[S_PEND_PX + j] = state[base + C_PX]
            state[S_PEND_SZ + j] = state[base + C_SZ]
        else:
            j = -1
            for k in range(n_ord):
                if orders[k, ORD_OID] != orders[k, ORD_OID]:
                    j = k
                    break
            if j < 0:
                state[S_N_NO_SLOT] += 1.0
                state[S_LAST_UNDONE] += 1.0
                continue
            oid = state[S_NEXT_OID]
            state[S_NEXT_OID] = oid + 1.0
            px = state[base + C_PX]
            sz = state[base + C_SZ]
            orders[j, ORD_OID] = oid
            orders[j, ORD_SIDE] = state[base + C_SIDE]
            orders[j, ORD_PX] = px
            orders[j, ORD_SZ] = sz
            orders[j, ORD_ORIG_SZ] = sz
            orders[j, ORD_QUEUE_AHEAD] = np.nan
            orders[j, ORD_T_PLACED_S] = now * 1e-9
            orders[j, ORD_STATUS] = ORD_PENDING_NEW
            row = ring_append(act_t, act_r, act_count, now)
            act_r[row, ACT_KIND] = ACT_PLACE
            act_r[row, ACT_SIDE] = state[base + C_SIDE]
            act_r[row, ACT_PX] = px
            act_r[row, ACT_SZ] = sz
            act_r[row, ACT_OID] = oid
        state[S_TOKENS] -= 1.0
        n += 1
    state[S_N_ACTIONS] += n
    return np.int64(n)


@njit(cache=True)
def cancel_side(now, side, orders, state, act_t, act_r, act_count):
    """Interrupt path: cancel every live order of ``side`` (+1 bids, -1 asks, 0 both; NaN none).

    Ignores the budget's limit but spends its tokens (the bucket may go negative)."""
    if side != side:
        return np.int64(0)
    if state.shape[0] < STATE_SIZE:
        raise ValueError("cancel_side: state is not a reconciler_state()")
    _refill(now, state)
    n = 0
    for j in range(orders.shape[0]):
        if not _is_live(orders[j, ORD_OID], orders[j, ORD_STATUS]):
            continue
        s = orders[j, ORD_SIDE]
        if (side > 0.0 and s < 0.0) or (side < 0.0 and s > 0.0):
            continue
        _append_cancel(now, orders, j, act_t, act_r, act_count)
        n += 1
    state[S_TOKENS] -= n
    state[S_N_ACTIONS] += n
    state[S_N_CANCEL_SIDE] += n
    return np.int64(n)
