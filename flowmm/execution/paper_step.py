"""The paper broker's per-batch and per-cycle work as numba kernels over arrays.

One implementation of paper execution: the generated engine loop (``flowmm.core.fused``) calls
these between its steps, and ``PaperBroker``'s Python methods call the same functions (the
Hyperliquid broker and the stale guard still drive those). The call order per batch at time
``t`` (docs/execution.md): ``before_batch`` (funding, markouts due, on the state before the
batch), the batch's events, ``on_batch`` (matching: trades, then the book, then the actions
arriving at ``t``; accounting; the exec streams tick); after each quote cycle ``minute_pnl``
and ``reconcile_step``; on an interrupt ``interrupt_step``.

State lives in arrays so a run resumes across calls:

* ``bk`` (int64, ``B_*``): flags, counters, the pending-action ring's head and length, the
  latencies in ns, the logs' lengths;
* ``bkf`` (float64, ``BF_*``): the latency spike's probability and multiplier;
* the pending-action ring ``pq_t`` (arrival ns) / ``pq_r`` (kind, side, px, sz, oid): actions
  sent and not yet arrived, in arrival order (arrivals never decrease: one connection);
* the fill log ``log_t`` / ``log_r`` (every fill, for ``fills.parquet``) and the minute-PnL log
  ``min_v`` / ``min_c`` (the total PnL at each minute boundary of event time, run-length coded:
  the minutes one cycle passes share one value).

The latency spikes draw from a numpy ``Generator`` passed in (numba shares its state with
Python), so the stream is exactly ``default_rng(seed).random()``, one draw per action sent
when the spike probability is not zero.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from flowmm.core.streams import S_FILLS, S_MARKOUTS, S_ORDERS, S_PNL, S_POSITION, S_TIMER
from flowmm.execution import accounting as A
from flowmm.execution import matching as M
from flowmm.execution import reconciler as R

NO_ARRIVAL = np.iinfo(np.int64).max  # next_arrival with nothing pending
MINUTE_NS = 60 * 1_000_000_000
PQ_CAPACITY = 65536  # pending actions (sent, not arrived); far above what the token budget allows

# bk layout
B_INTENSITY = 0  # 1: the intensity fill model runs at every batch
B_HAS_INT_T = 1  # the intensity model ran once (B_LAST_INT_T is set)
B_LAST_INT_T = 2
B_LAST_ARRIVAL = 3
B_LADDER_SEEN = 4  # version of execution.ladder at the last reconcile
B_DIRTY = 5  # our orders changed (ack, fill, action sent) since the last reconcile
B_REJECTS = 6
B_SENT = 7
B_HAS_MINUTE = 8
B_NEXT_MINUTE = 9
B_PQ_HEAD = 10
B_PQ_N = 11
B_N_FILLS = 12  # rows of the fill log
B_N_MIN = 13  # rows of the minute-PnL log
B_LAT = 14  # B_LAT + kind: latency of ACT_PLACE (1), ACT_CANCEL (2), ACT_MODIFY (3) in ns
B_ERR = 18  # 1: the pending-action ring overflowed
# the live stale guard (flowmm.sources.live.guard), when it wraps the broker
B_GUARD = 19  # 1: guard_step acts on staleness timers
B_STALE = 20  # the book is stale: orders cancelled, the ladder not reconciled
B_TIMER_SEEN = 21
B_STALE_EVENTS = 22
B_CANCEL_ALL = 23
B_WITHDRAWN = 24  # quote cycles not reconciled because the book was stale
B_COUNT = 25
STALE_BASE, STALE_BOOK, STALE_END = 100, 1, 164  # staleness timer codes (flowmm.sources.live.staleness)
# bkf layout
BF_SPIKE_PROB, BF_SPIKE_MULT = 0, 1
BF_COUNT = 2
LOG_WIDTH = 7  # px, sz, side, oid, fee, maker, mid_ref (the first fields of a fill record)


@njit(cache=True)
def next_arrival(bk, pq_t):
    """Arrival time of the oldest pending action (NO_ARRIVAL when none)."""
    if bk[B_PQ_N] == 0:
        return NO_ARRIVAL
    return pq_t[bk[B_PQ_HEAD]]


@njit(cache=True)
def before_batch(t, mid_arr, ctx, acct, clock, pend_ctl, pend_t, pend_r, mk_stats, mk_t, mk_r, ver):
    """Funding settlements and markouts due by ``t``, on the state before the batch."""
    mid = mid_arr[0]
    if t >= clock[A.T_NEXT_FUNDING]:
        px = mid  # the oracle price, else the mark, else the mid
        if ctx[4] == ctx[4]:
            px = ctx[4]
        elif ctx[3] == ctx[3]:
            px = ctx[3]
        A.funding_due(t, ctx[0], px, acct, clock)
    if t >= clock[A.T_NEXT_MARKOUT] and mid == mid:
        A.markouts_due(
            t, mid, pend_ctl, pend_t, pend_r, mk_stats, clock, mk_t, mk_r, ver[S_MARKOUTS : S_MARKOUTS + 1]
        )


@njit(cache=True)
def book_fills(fill_t, fill_r, first, end, acct, clock, pend_ctl, pend_t, pend_r, log_t, log_r, bk, pos, ver):
    """Fills ``first:end`` of the exec.fills ring: accounting, the fill log, exec.position."""
    A.on_fills(fill_t, fill_r, first, end, acct, clock, pend_ctl, pend_t, pend_r)
    cap = fill_t.shape[0]
    k = bk[B_N_FILLS]
    for i in range(first, end):
        log_t[k] = fill_t[i % cap]
        for c in range(LOG_WIDTH):
            log_r[k, c] = fill_r[i % cap, c]
        k += 1
    bk[B_N_FILLS] = k
    pos[0] = acct[A.A_Q]
    ver[S_POSITION] += 1
    bk[B_DIRTY] = 1


@njit(cache=True)
def orders_and_mark(t, mid_arr, orders, acct, clock, pnl, bk, ver):
    """After matching: exec.orders ticks when our orders changed; mark to the mid; exec.pnl
    ticks when the marked total changes."""
    if bk[B_DIRTY] != 0:
        ver[S_ORDERS] += 1
        A.quoting_from_orders(t, orders, acct, clock)
    mid = mid_arr[0]
    if mid == mid:
        A.mark(t, mid, acct, clock)
        total = acct[A.A_TOTAL_PNL]
        if total != pnl[0]:
            pnl[0] = total
            ver[S_PNL] += 1


@njit(cache=True)
def on_batch(
    t, mid_before, tr_start, tr_end, book_ticked, tr_t, tr_r, book, mid_arr, orders, aux, work, mparams,
    fill_rng, fill_t, fill_r, bk, pq_t, pq_r, acct, clock, pend_ctl, pend_t, pend_r, log_t, log_r, pos,
    pnl, ver,
):  # fmt: skip
    """Matching for one batch: its trades, its book, then the actions arriving at ``t``."""
    fill_n = ver[S_FILLS : S_FILLS + 1]
    first = fill_n[0]
    if tr_end > tr_start:
        M.on_trades(
            tr_t, tr_r, tr_start, tr_end, orders, aux, work, mparams, mid_before, fill_t, fill_r, fill_n
        )
    if book_ticked:
        M.on_book(t, book, orders, aux, work, mparams, mid_before, fill_t, fill_r, fill_n)
    if bk[B_INTENSITY] != 0 and mid_before == mid_before:
        # quotes that rested over (last, t] fill at A*exp(-k*delta), delta from the mid then
        dt = 0.0 if bk[B_HAS_INT_T] == 0 else (t - bk[B_LAST_INT_T]) * 1e-9
        bk[B_HAS_INT_T] = 1
        bk[B_LAST_INT_T] = t
        M.intensity_fills(t, dt, mid_before, orders, aux, work, mparams, fill_rng, fill_t, fill_r, fill_n)
    cap = pq_t.shape[0]
    while bk[B_PQ_N] > 0 and pq_t[bk[B_PQ_HEAD]] == t:
        h = bk[B_PQ_HEAD]
        status = M.apply_action(
            t, np.int64(pq_r[h, 0]), pq_r[h, 1], pq_r[h, 2], pq_r[h, 3], pq_r[h, 4], book, orders, aux, work,
            mparams,
        )  # fmt: skip
        bk[B_PQ_HEAD] = (h + 1) % cap
        bk[B_PQ_N] -= 1
        if status != M.ST_OK:
            bk[B_REJECTS] += 1
        bk[B_DIRTY] = 1
    if fill_n[0] > first:
        book_fills(fill_t, fill_r, first, fill_n[0], acct, clock, pend_ctl, pend_t, pend_r, log_t, log_r, bk,
                   pos, ver)  # fmt: skip
    orders_and_mark(t, mid_arr, orders, acct, clock, pnl, bk, ver)


@njit(cache=True)
def send(t, start, act_t, act_r, act_n, bk, bkf, pq_t, pq_r, spike_rng, ver):
    """Actions ``start:act_n`` leave now: each arrives at ``t`` plus its latency (spiked with
    probability BF_SPIKE_PROB), never before one sent earlier."""
    end = act_n[0]
    if end == start:
        return
    bk[B_DIRTY] = 1
    ver[S_ORDERS] += 1  # statuses moved to pending
    ring = act_t.shape[0]
    cap = pq_t.shape[0]
    for i in range(start, end):
        r = i % ring
        kind = np.int64(act_r[r, 0])
        latency = bk[B_LAT + kind]
        if bkf[BF_SPIKE_PROB] != 0.0 and spike_rng.random() < bkf[BF_SPIKE_PROB]:
            latency = np.int64(latency * bkf[BF_SPIKE_MULT])
        arrival = max(t + latency, bk[B_LAST_ARRIVAL])  # one connection: requests stay in order
        bk[B_LAST_ARRIVAL] = arrival
        if bk[B_PQ_N] >= cap:
            bk[B_ERR] = 1
            return
        k = (bk[B_PQ_HEAD] + bk[B_PQ_N]) % cap
        pq_t[k] = arrival
        pq_r[k, 0] = kind
        for c in range(1, 5):
            pq_r[k, c] = act_r[r, c]
        bk[B_PQ_N] += 1
        bk[B_SENT] += 1


@njit(cache=True)
def minute_pnl(t, acct, bk, min_v, min_c):
    """The total PnL at every minute boundary of event time up to ``t`` (the Sharpe's samples)."""
    if bk[B_HAS_MINUTE] == 0:
        bk[B_HAS_MINUTE] = 1
        bk[B_NEXT_MINUTE] = t
    # the boundaries passed, in closed form (numba 0.68 crashes compiling the counting loop)
    n = 0 if t < bk[B_NEXT_MINUTE] else (t - bk[B_NEXT_MINUTE]) // MINUTE_NS + 1
    if n > 0:
        bk[B_NEXT_MINUTE] += n * MINUTE_NS
        k = bk[B_N_MIN]
        min_v[k] = acct[A.A_TOTAL_PNL]
        min_c[k] = n
        bk[B_N_MIN] = k + 1


@njit(cache=True)
def reconcile_due(t, ladder, ladder_ver, orders, rec_params, rec_state, act_t, act_r, act_n, bk):
    """After a quote cycle: reconcile the ladder when it (or our orders) changed, or work was
    left undone. Returns where the new actions start in the action ring (-1: not reconciled)."""
    if bk[B_STALE] != 0:  # the stale guard withdrew the quotes
        bk[B_WITHDRAWN] += 1
        return -1
    ticked = ladder_ver != bk[B_LADDER_SEEN]
    undone = rec_state[R.S_LAST_UNDONE] != 0
    if not (ticked or bk[B_DIRTY] != 0 or undone):
        return -1
    bk[B_LADDER_SEEN] = ladder_ver
    bk[B_DIRTY] = 0
    start = act_n[0]
    R.reconcile(t, ladder, orders, rec_params, rec_state, act_t, act_r, act_n)
    return start


@njit(cache=True)
def reconcile_step(
    t, ladder, ladder_ver, orders, rec_params, rec_state, act_t, act_r, act_n, bk, bkf, pq_t, pq_r, spike_rng,
    ver,
):  # fmt: skip
    """``reconcile_due``, then its actions leave (``send``)."""
    start = reconcile_due(t, ladder, ladder_ver, orders, rec_params, rec_state, act_t, act_r, act_n, bk)
    if start >= 0:
        send(t, start, act_t, act_r, act_n, bk, bkf, pq_t, pq_r, spike_rng, ver)


@njit(cache=True)
def interrupt_step(t, side, orders, rec_state, act_t, act_r, act_n, bk, bkf, pq_t, pq_r, spike_rng, ver):
    """execution.cancel ticked: cancel every live order of ``side`` at once."""
    start = act_n[0]
    R.cancel_side(t, side, orders, rec_state, act_t, act_r, act_n)
    send(t, start, act_t, act_r, act_n, bk, bkf, pq_t, pq_r, spike_rng, ver)


@njit(cache=True)
def book_stale(value):
    """1 / 0 when ``value`` is a staleness timer code saying the book is stale / fresh, -1 when
    it is not a staleness code (``flowmm.sources.live.staleness.book_stale``)."""
    if not value == value or value < STALE_BASE or value >= STALE_END:
        return -1
    return 1 if (np.int64(value) - STALE_BASE) & STALE_BOOK else 0


@njit(cache=True)
def guard_step(t, timer, orders, rec_state, act_t, act_r, act_n, bk, bkf, pq_t, pq_r, spike_rng, ver):
    """After a batch, the stale guard: a timer saying the book went stale cancels every order
    and withdraws the quotes; one saying it is fresh again has the next cycle reconcile."""
    if bk[B_GUARD] == 0 or ver[S_TIMER] == bk[B_TIMER_SEEN]:
        return
    bk[B_TIMER_SEEN] = ver[S_TIMER]
    stale = book_stale(timer[0])
    if stale < 0 or stale == bk[B_STALE]:
        return
    bk[B_STALE] = stale
    if stale:
        bk[B_STALE_EVENTS] += 1
        bk[B_CANCEL_ALL] += 1
        interrupt_step(t, 0.0, orders, rec_state, act_t, act_r, act_n, bk, bkf, pq_t, pq_r, spike_rng, ver)
    else:
        bk[B_DIRTY] = 1  # reconcile at the next cycle


@njit(cache=True)
def finish_step(t, mid_arr, acct, clock):
    mid = mid_arr[0]
    if mid == mid:
        A.mark(t, mid, acct, clock)
