"""The paper broker: our orders simulated against the market stream, driven by the engine.

It composes the execution kernels (docs/execution.md) in the engine's call order:

* after every quote cycle: ``reconcile`` the graph's ``execution.ladder`` against our orders
  (only when the ladder ticked, an ack or fill changed the orders, or the budget left work
  undone); on an interrupt (``execution.cancel``): ``cancel_side``. Each action is delayed by
  its latency (constant per kind; with probability ``latency_spike_prob`` it spikes to
  ``latency_spike_mult`` times that, drawn from a seeded generator) and arrives as a broker
  event at ``sent + latency`` — never earlier than an action sent before it, so one
  connection's requests stay in order;
* at every batch of equal event time ``T`` (source events and broker arrivals merged): before
  it, hourly funding and the markouts that came due (with the mid before the batch); after the
  source events are written, matching: the batch's trades, then its book, then the actions
  arriving at ``T``; the fills go to ``exec.fills``, the accounting books them, and
  ``exec.position`` / ``exec.orders`` tick, and ``exec.pnl`` when the marked total changes.

The orders table *is* the ``exec.orders`` stream buffer (nodes read it; only the broker writes
it). Reference implementation for the Python interpreter; the fused backend does not drive a
broker yet.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from flowmm.core import streams as S
from flowmm.core.ports import PORT_TYPES
from flowmm.execution import accounting as A
from flowmm.execution import matching as M
from flowmm.execution import reconciler as R
from flowmm.execution.fees import FeeSchedule

ACTION_RING = 4096


class PaperParams(BaseModel):
    """Paper broker settings: latencies, matching, reconciliation, accounting."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    place_latency_ms: float = Field(50.0, gt=0, description="order -> resting on the exchange")
    modify_latency_ms: float = Field(50.0, gt=0)
    cancel_latency_ms: float = Field(30.0, gt=0)
    latency_spike_prob: float = Field(0.0, ge=0, le=1, description="chance an action's latency spikes")
    latency_spike_mult: float = Field(10.0, ge=1, description="a spiked latency is this many times longer")
    seed: int = Field(0, ge=0, description="seed of the latency draws")
    queue_model: str = Field("risk_averse", pattern="^(risk_averse|probabilistic)$")
    fees: FeeSchedule = FeeSchedule()
    tick_size: float = Field(0.001, gt=0, description="price grid of the tolerance (instrument tick)")
    px_tol_ticks: float = Field(1.0, ge=0)
    sz_tol_frac: float = Field(0.1, ge=0)
    max_actions_per_s: float = Field(5.0, gt=0)
    burst: float = Field(40.0, gt=0)
    min_order_value: float = Field(10.0, ge=0)
    horizons_s: tuple[float, ...] = (0.0, 1.0, 5.0, 30.0, 60.0)
    fill_model: str = Field("queue", pattern="^(queue|intensity)$", description="queue: the tape and book")
    intensity_A: float = Field(140.0, ge=0, description="intensity model: A of A*exp(-k*delta), per second")
    intensity_k: float = Field(1.5, ge=0, description="intensity model: k, per price unit")
    fill_unit: float = Field(1.0, gt=0, description="intensity model: size of one fill")
    intensity_prob: str = Field("poisson", pattern="^(poisson|paper)$", description="see MatchParams")

    @classmethod
    def as2008(cls, seed: int = 0) -> PaperParams:
        """Avellaneda & Stoikov (2008): intensity fills, no fees, no latency to speak of, no budget."""
        return cls(
            seed=seed,
            fill_model="intensity", intensity_prob="paper",
            place_latency_ms=0.001, modify_latency_ms=0.001, cancel_latency_ms=0.001,
            fees=FeeSchedule(maker_bps=0.0, taker_bps=0.0), tick_size=0.01, px_tol_ticks=0.0,
            max_actions_per_s=1e9, burst=1e9, min_order_value=0.0,
        )  # fmt: skip


class PaperBroker:
    """Paper execution for ``Graph.run(source, broker=PaperBroker())``."""

    name = "paper"

    def __init__(self, params: PaperParams | None = None, **kw: Any):
        self.params = params or PaperParams(**kw)
        p = self.params
        self._latency_ns = {
            1: int(p.place_latency_ms * 1e6),  # ACT_PLACE
            2: int(p.cancel_latency_ms * 1e6),  # ACT_CANCEL
            3: int(p.modify_latency_ms * 1e6),  # ACT_MODIFY
        }
        self.match_params = M.MatchParams(
            queue_model=p.queue_model, fees=p.fees, intensity_A=p.intensity_A, intensity_k=p.intensity_k,
            fill_unit=p.fill_unit, intensity_prob=p.intensity_prob,
        ).pack()  # fmt: skip
        self.rec_params = R.ReconcilerParams(
            tick_size=p.tick_size,
            px_tol_ticks=p.px_tol_ticks,
            sz_tol_frac=p.sz_tol_frac,
            max_actions_per_s=p.max_actions_per_s,
            burst=p.burst,
            min_order_value=p.min_order_value,
        )
        self.rec_packed = self.rec_params.pack()

    def provides(self) -> set[str]:
        return {"exec.fills", "exec.markouts", "exec.position", "exec.orders", "exec.pnl"}

    # -- binding to one run's buffers ---------------------------------------------------------
    def bind(self, plan, values: list, ver: np.ndarray) -> None:
        self.values, self.ver = values, ver
        self.ladder_port = plan.ladder_port
        self.orders = values[S.S_ORDERS]
        self.orders[:] = np.nan
        _, self.aux, self.work = M.new_state()
        self.rec_state = R.reconciler_state(self.rec_params)
        self.acct = A.accounting_state(A.AccountingParams(horizons_s=self.params.horizons_s))
        self.act_t, self.act_r = PORT_TYPES["actions"].allocate(capacity=ACTION_RING)
        self.act_n = np.zeros(1, np.int64)
        self.rng = np.random.default_rng(self.params.seed)  # latency spikes: seeded, reproducible
        self.fill_rng = M.rng_state(self.params.seed)  # the intensity model's draws
        self.last_intensity_t: int | None = None
        self.pending: list[tuple[int, int, float, float, float, float]] = []  # (t, kind, side, px, sz, oid)
        self.last_arrival = 0
        self.ladder_seen = 0
        self.orders_dirty = False
        self.fills: list[tuple] = []
        self.rejects = 0
        self.actions_sent = 0
        self.pnl_minutes: list[float] = []  # total PnL at each minute of event time (Sharpe)
        self.next_minute: int | None = None

    # -- engine hooks ---------------------------------------------------------------------------
    def next_time(self) -> int | None:
        return self.pending[0][0] if self.pending else None

    def before_batch(self, t: int) -> None:
        """Funding settlements and markouts due by ``t``, on the state before the batch."""
        a, v, ver = self.acct, self.values, self.ver
        mid = float(v[S.S_MID][0])
        if t >= a.clock[A.T_NEXT_FUNDING]:
            ctx = v[S.S_CTX]
            px = next((x for x in (ctx[4], ctx[3], mid) if x == x), mid)  # oracle, mark, mid
            A.funding_due(t, float(ctx[0]), float(px), a.acct, a.clock)
        if t >= a.clock[A.T_NEXT_MARKOUT] and mid == mid:
            mk_t, mk_r = v[S.S_MARKOUTS]
            A.markouts_due(t, mid, a.pend_ctl, a.pend_t, a.pend_r, a.mk_stats, a.clock, mk_t, mk_r,
                           ver[S.S_MARKOUTS : S.S_MARKOUTS + 1])  # fmt: skip

    def on_batch(self, t: int, mid_before: float, trades: tuple[int, int] | None, book_ticked: bool) -> None:
        """Matching for one batch: its trades, its book, then the actions arriving at ``t``."""
        v, ver = self.values, self.ver
        fill_t, fill_r = v[S.S_FILLS]
        fill_n = ver[S.S_FILLS : S.S_FILLS + 1]
        first = int(fill_n[0])
        args = (self.orders, self.aux, self.work, self.match_params, mid_before, fill_t, fill_r, fill_n)
        if trades is not None and trades[1] > trades[0]:
            tr_t, tr_r = v[S.S_TRADES]
            M.on_trades(tr_t, tr_r, trades[0], trades[1], *args)
        if book_ticked:
            M.on_book(t, v[S.S_BOOK], *args)
        if self.params.fill_model == "intensity" and mid_before == mid_before:
            # quotes that rested over (last, t] fill at A*exp(-k*delta), delta from the mid then
            dt = 0.0 if self.last_intensity_t is None else (t - self.last_intensity_t) * 1e-9
            self.last_intensity_t = t
            M.intensity_fills(t, dt, mid_before, self.orders, self.aux, self.work, self.match_params,
                              self.fill_rng, fill_t, fill_r, fill_n)  # fmt: skip
        while self.pending and self.pending[0][0] == t:
            _, kind, side, px, sz, oid = self.pending.pop(0)
            status = M.apply_action(t, kind, side, px, sz, oid, v[S.S_BOOK], self.orders, self.aux, self.work,
                                    self.match_params)  # fmt: skip
            self.rejects += status != M.ST_OK
            self.orders_dirty = True
        if int(fill_n[0]) > first:
            self._book_fills(t, fill_t, fill_r, first, int(fill_n[0]))
        if self.orders_dirty:
            ver[S.S_ORDERS] += 1
            A.quoting_from_orders(t, self.orders, self.acct.acct, self.acct.clock)
        mid = float(v[S.S_MID][0])
        if mid == mid:
            A.mark(t, mid, self.acct.acct, self.acct.clock)
            pnl = float(self.acct.acct[A.A_TOTAL_PNL])
            if pnl != v[S.S_PNL][0]:  # ticks when the mark-to-market total changes
                v[S.S_PNL][0] = pnl
                ver[S.S_PNL] += 1

    def after_cycle(self, t: int) -> None:
        """Reconcile the desired ladder when it (or our orders) changed, or work was left undone."""
        if self.next_minute is None:
            self.next_minute = t
        while t >= self.next_minute:
            self.pnl_minutes.append(float(self.acct.acct[A.A_TOTAL_PNL]))
            self.next_minute += 60 * 1_000_000_000
        if self.ladder_port is None:
            return
        ticked = self.ver[self.ladder_port] != self.ladder_seen
        undone = self.rec_state[R.S_LAST_UNDONE] != 0
        if not (ticked or self.orders_dirty or undone):
            return
        self.ladder_seen = int(self.ver[self.ladder_port])
        self.orders_dirty = False
        start = int(self.act_n[0])
        R.reconcile(t, self.values[self.ladder_port], self.orders, self.rec_packed, self.rec_state,
                    self.act_t, self.act_r, self.act_n)  # fmt: skip
        self._send(t, start)

    def on_interrupt(self, t: int, side: float) -> None:
        start = int(self.act_n[0])
        R.cancel_side(t, side, self.orders, self.rec_state, self.act_t, self.act_r, self.act_n)
        self._send(t, start)

    def finish(self, t: int) -> None:
        mid = float(self.values[S.S_MID][0])
        if mid == mid:
            A.mark(t, mid, self.acct.acct, self.acct.clock)

    # -- results --------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        out = A.summary(self.acct)
        out.update(actions_sent=self.actions_sent, rejects=int(self.rejects), sharpe_1h=self._sharpe_1h())
        return out

    def _sharpe_1h(self) -> float | None:
        """mean/sd of one-minute PnL changes, times sqrt(60): the seed's "Sharpe (1h)". None when
        undefined (under three changes, or no variation)."""
        d = np.diff(self.pnl_minutes)
        if len(d) < 3 or not d.std(ddof=1) > 0:
            return None
        return float(d.mean() / d.std(ddof=1) * np.sqrt(60.0))

    def fills_table(self) -> pa.Table:
        cols = ("t", "px", "sz", "side", "oid", "fee", "maker", "mid_ref")
        rows = list(zip(*self.fills)) if self.fills else [[] for _ in cols]
        return pa.table(
            {c: pa.array(r, pa.int64() if c == "t" else pa.float64()) for c, r in zip(cols, rows)}
        )

    # -- internals ------------------------------------------------------------------------------
    def _send(self, t: int, start: int) -> None:
        end = int(self.act_n[0])
        if end == start:
            return
        self.orders_dirty = True
        self.ver[S.S_ORDERS] += 1  # statuses moved to pending
        for i in range(start, end):
            r = self.act_r[i % ACTION_RING]
            kind = int(r[0])
            latency = self._latency_ns[kind]
            if self.params.latency_spike_prob and self.rng.random() < self.params.latency_spike_prob:
                latency = int(latency * self.params.latency_spike_mult)
            arrival = max(t + latency, self.last_arrival)  # one connection: requests stay in order
            self.last_arrival = arrival
            self.pending.append((arrival, kind, float(r[1]), float(r[2]), float(r[3]), float(r[4])))
            self.actions_sent += 1

    def _book_fills(self, t: int, fill_t, fill_r, first: int, end: int) -> None:
        a = self.acct
        cap = len(fill_t)
        A.on_fills(fill_t, fill_r, first, end, a.acct, a.clock, a.pend_ctl, a.pend_t, a.pend_r)
        for i in range(first, end):
            r = fill_r[i % cap]
            self.fills.append((int(fill_t[i % cap]), *map(float, r[:7])))
        self.values[S.S_POSITION][0] = a.acct[A.A_Q]
        self.ver[S.S_POSITION] += 1
        self.orders_dirty = True


def paper_broker_for(plan, source: Any = None) -> PaperBroker | None:
    """The default execution of a graph: paper, when it names a ladder (never real orders);
    the intensity model when the source asks for it (``as2008``)."""
    if plan.ladder_port is None:
        return None
    seed = int(getattr(source, "seed", 0))  # the broker's draws vary with the market's seed
    if getattr(source, "fill_model", "queue") == "intensity":
        return PaperBroker(PaperParams.as2008(seed=seed))
    tick = plan.spec.instrument.tick_size or getattr(source, "tick_size", None)
    return PaperBroker(tick_size=tick, seed=seed) if tick else PaperBroker(seed=seed)
