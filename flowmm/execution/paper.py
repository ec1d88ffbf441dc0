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
from flowmm.execution import paper_step as P
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
        p = self.params
        self.bk = np.zeros(P.B_COUNT, np.int64)
        self.bk[P.B_INTENSITY] = p.fill_model == "intensity"
        for kind, ns in self._latency_ns.items():
            self.bk[P.B_LAT + kind] = ns
        self.bkf = np.array([p.latency_spike_prob, p.latency_spike_mult], np.float64)
        self.pq_t = np.zeros(P.PQ_CAPACITY, np.int64)  # pending actions: (t, kind, side, px, sz, oid)
        self.pq_r = np.zeros((P.PQ_CAPACITY, 5), np.float64)
        self.log_t = np.zeros(4096, np.int64)  # every fill, for fills.parquet
        self.log_r = np.zeros((4096, P.LOG_WIDTH), np.float64)
        self.min_v = np.zeros(1024, np.float64)  # total PnL at each minute of event time (Sharpe)
        self.min_c = np.zeros(1024, np.int64)

    # the kernels keep these in ``bk``; the Hyperliquid broker reads and sets them by name
    orders_dirty = property(lambda s: bool(s.bk[P.B_DIRTY]), lambda s, v: s.bk.__setitem__(P.B_DIRTY, v))
    actions_sent = property(lambda s: int(s.bk[P.B_SENT]), lambda s, v: s.bk.__setitem__(P.B_SENT, v))
    rejects = property(lambda s: int(s.bk[P.B_REJECTS]), lambda s, v: s.bk.__setitem__(P.B_REJECTS, v))

    def grow_logs(self, fills: int, minutes: int) -> None:
        """Room for ``fills`` more fill-log rows and ``minutes`` more minute-PnL rows."""
        while self.bk[P.B_N_FILLS] + fills > len(self.log_t):
            self.log_t = np.concatenate([self.log_t, np.zeros_like(self.log_t)])
            self.log_r = np.concatenate([self.log_r, np.zeros_like(self.log_r)])
        while self.bk[P.B_N_MIN] + minutes > len(self.min_v):
            self.min_v = np.concatenate([self.min_v, np.zeros_like(self.min_v)])
            self.min_c = np.concatenate([self.min_c, np.zeros_like(self.min_c)])

    def kernel_args(self) -> tuple:
        """The arrays the compiled loop's broker kernels work on, in ``fused.BROKER_ARGS`` order."""
        a = self.acct
        return (
            self.bk, self.bkf, self.pq_t, self.pq_r, self.log_t, self.log_r, self.min_v, self.min_c,
            self.aux, self.work, self.match_params, self.fill_rng, self.rec_packed, self.rec_state,
            self.act_t, self.act_r, self.act_n, a.acct, a.clock, a.pend_ctl, a.pend_t, a.pend_r, a.mk_stats,
            self.rng,
        )  # fmt: skip

    def check(self) -> None:
        if self.bk[P.B_ERR]:
            raise RuntimeError(f"paper broker: more than {P.PQ_CAPACITY} actions in flight")

    # -- engine hooks (the compiled loop calls the same kernels, flowmm.execution.paper_step) --
    def next_time(self) -> int | None:
        t = int(P.next_arrival(self.bk, self.pq_t))
        return None if t == P.NO_ARRIVAL else t

    def before_batch(self, t: int) -> None:
        """Funding settlements and markouts due by ``t``, on the state before the batch."""
        a, v = self.acct, self.values
        mk_t, mk_r = v[S.S_MARKOUTS]
        P.before_batch(t, v[S.S_MID], v[S.S_CTX], a.acct, a.clock, a.pend_ctl, a.pend_t, a.pend_r,
                       a.mk_stats, mk_t, mk_r, self.ver)  # fmt: skip

    def on_batch(self, t: int, mid_before: float, trades: tuple[int, int] | None, book_ticked: bool) -> None:
        """Matching for one batch: its trades, its book, then the actions arriving at ``t``."""
        v, a = self.values, self.acct
        fill_t, fill_r = v[S.S_FILLS]
        tr_t, tr_r = v[S.S_TRADES]
        start, end = trades if trades is not None else (0, 0)
        self.grow_logs(len(fill_t), 0)
        P.on_batch(t, mid_before, start, end, book_ticked, tr_t, tr_r, v[S.S_BOOK], v[S.S_MID], self.orders,
                   self.aux, self.work, self.match_params, self.fill_rng, fill_t, fill_r, self.bk, self.pq_t,
                   self.pq_r, a.acct, a.clock, a.pend_ctl, a.pend_t, a.pend_r, self.log_t, self.log_r,
                   v[S.S_POSITION], v[S.S_PNL], self.ver)  # fmt: skip

    def after_cycle(self, t: int) -> None:
        """Reconcile the desired ladder when it (or our orders) changed, or work was left undone."""
        self.grow_logs(0, 1)
        P.minute_pnl(t, self.acct.acct, self.bk, self.min_v, self.min_c)
        if self.ladder_port is None:
            return
        lp = self.ladder_port
        start = P.reconcile_due(t, self.values[lp], self.ver[lp], self.orders, self.rec_packed,
                                self.rec_state, self.act_t, self.act_r, self.act_n, self.bk)  # fmt: skip
        if start >= 0:
            self._send(t, int(start))

    def on_interrupt(self, t: int, side: float) -> None:
        start = int(self.act_n[0])
        R.cancel_side(t, side, self.orders, self.rec_state, self.act_t, self.act_r, self.act_n)
        self._send(t, start)

    def finish(self, t: int) -> None:
        P.finish_step(t, self.values[S.S_MID], self.acct.acct, self.acct.clock)

    # -- results --------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        out = A.summary(self.acct)
        out.update(actions_sent=self.actions_sent, rejects=int(self.rejects), sharpe_1h=self._sharpe_1h())
        return out

    def _sharpe_1h(self) -> float | None:
        """mean/sd of one-minute PnL changes, times sqrt(60): the seed's "Sharpe (1h)". None when
        undefined (under three changes, or no variation)."""
        n = int(self.bk[P.B_N_MIN])
        d = np.diff(np.repeat(self.min_v[:n], self.min_c[:n]))
        if len(d) < 3 or not d.std(ddof=1) > 0:
            return None
        return float(d.mean() / d.std(ddof=1) * np.sqrt(60.0))

    def fills_table(self) -> pa.Table:
        n = int(self.bk[P.B_N_FILLS])
        cols = {"t": pa.array(self.log_t[:n], pa.int64())}
        for i, c in enumerate(("px", "sz", "side", "oid", "fee", "maker", "mid_ref")):
            cols[c] = pa.array(self.log_r[:n, i], pa.float64())
        return pa.table(cols)

    # -- internals ------------------------------------------------------------------------------
    def _send(self, t: int, start: int) -> None:
        P.send(t, start, self.act_t, self.act_r, self.act_n, self.bk, self.bkf, self.pq_t, self.pq_r,
               self.rng, self.ver)  # fmt: skip
        self.check()

    def _book_fills(self, t: int, fill_t, fill_r, first: int, end: int) -> None:
        a = self.acct
        self.grow_logs(end - first, 0)
        P.book_fills(fill_t, fill_r, first, end, a.acct, a.clock, a.pend_ctl, a.pend_t, a.pend_r, self.log_t,
                     self.log_r, self.bk, self.values[S.S_POSITION], self.ver)  # fmt: skip


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
