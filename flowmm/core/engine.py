"""The interpreter: a Python loop over the plan that calls each node's kernel.

The engine is the generated numba loop (``fused.py``), paper execution included. This loop
remains for a broker whose hooks are Python only (the real Hyperliquid broker: network I/O at
every batch) and is held to the same traces. Semantics (docs/scheduling.md), shared exactly:

1. Events are consumed in batches of equal exchange time ``t``.
2. Clock ``quote_every_ms = P``: cycle boundaries are the multiples of P (ns) in event time;
   the cycle number is ``boundary // P``, so replay and live fire tiers on the same cycles.
   Boundaries strictly before ``t`` run before the batch is applied; a boundary equal to
   ``t`` runs after it. Clock ``on_book``: a cycle runs after every batch that ticked
   ``source.book`` or ``source.bbo``; cycles are numbered 0, 1, 2, ...
3. After a batch is applied (``apply_event``), the *event step* runs every event-triggered
   node with an input that ticked since that node last ran, in schedule order.
4. A *cycle step* ticks ``source.clock`` and runs, in schedule order, every node with an
   input that ticked since it last ran that is event-triggered, or cycle-triggered with
   ``cycle % every == phase`` for its tier; then the trace row is written.
5. A node with no wired input runs in every step it is eligible for (it has nothing to wait for).
6. After each step, if the graph's ``execution.cancel`` output ticked, an interrupt is
   recorded at that step's time (the execution layer acts on it at once, between cycles).
"""

from __future__ import annotations

import numpy as np

from flowmm.core import events as E
from flowmm.core import streams as S
from flowmm.core.events import EventTable
from flowmm.core.plan import Plan
from flowmm.core.ports import PORT_TYPES
from flowmm.errors import EngineError, Location

NEVER = np.iinfo(np.int64).min


class TraceBuilder:
    """Collects one row per quote cycle."""

    def __init__(self, plan: Plan):
        self.columns = [c.name for c in plan.trace]
        self._cols = [(c.port, c.index) for c in plan.trace]
        self.t: list[int] = []
        self.cycle: list[int] = []
        self.rows: list[np.ndarray] = []

    def add(self, t: int, cycle: int, values: list) -> None:
        self.t.append(t)
        self.cycle.append(cycle)
        self.rows.append(np.array([values[p].flat[i] for p, i in self._cols], np.float64))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        data = np.vstack(self.rows) if self.rows else np.zeros((0, len(self.columns)))
        return np.array(self.t, np.int64), np.array(self.cycle, np.int64), data


class Interpreter:
    """Runs a plan event by event in Python, driving a broker through its Python hooks."""

    def __init__(self, plan: Plan, broker=None):
        self.plan = plan
        self.broker = broker  # the execution layer's hooks (flowmm.execution.paper), or None
        self.bufs = plan.allocate()
        self.values = self.bufs.values
        self.ver = self.bufs.ver
        self.seen = self.bufs.seen
        self.states = self.bufs.states
        self.last_run = np.full(len(plan.nodes), NEVER, np.int64)
        clock = plan.spec.clock
        self.period = clock.quote_every_ms * 1_000_000 if clock.quote_every_ms else 0
        self.next_cycle: int | None = None
        self.n_cycles = 0
        self.last_t: int | None = None
        self.trace = TraceBuilder(plan)
        self.interrupts: list[tuple[int, float]] = []
        self._irq_seen = 0
        self._stream_args = self._streams()
        if broker is not None:
            broker.bind(plan, self.values, self.ver)

    def _streams(self) -> tuple:
        v = self.values
        return (
            v[S.S_BOOK], v[S.S_BOOK_AGG], v[S.S_BBO], v[S.S_MID], *v[S.S_TRADES], v[S.S_CTX],
            v[S.S_REF_MID], v[S.S_SPOT_MID], v[S.S_TRUTH], v[S.S_TIMER], *v[S.S_FILLS],
            *v[S.S_MARKOUTS], v[S.S_POSITION],
        )  # fmt: skip

    # -- driving -------------------------------------------------------------------------
    def process(self, table: EventTable) -> None:
        t_arr = table.t
        n = len(t_arr)
        i = 0
        if n and self.last_t is not None and int(t_arr[0]) <= self.last_t:
            raise EngineError(
                f"events out of order or a same-time batch split across chunks (t={int(t_arr[0])})"
            )
        while i < n:
            t = int(t_arr[i])
            tb = self.broker.next_time() if self.broker is not None else None
            if tb is not None and tb < t:  # a broker arrival (ack) is a batch of its own
                self._batch(tb, None, 0, 0)
                continue
            j = i
            while j < n and t_arr[j] == t:
                j += 1
            self._batch(t, table, i, j)
            i = j

    def _batch(self, t: int, table: EventTable | None, i: int, j: int) -> None:
        """One batch at ``t``: cycles before it, its events (and broker work), the event step."""
        if self.period:
            if self.next_cycle is None:
                self.next_cycle = -(-t // self.period) * self.period
            while self.next_cycle < t:
                self._cycle(self.next_cycle, self.next_cycle // self.period)
                self.next_cycle += self.period
        broker = self.broker
        book_ver = self.ver[S.S_BOOK] + self.ver[S.S_BBO]
        if broker is not None:
            broker.before_batch(t)
            mid_before = float(self.values[S.S_MID][0])
            trades_before = int(self.ver[S.S_TRADES])
        if table is not None:
            kind, off, payload = table.kind, table.off, table.payload
            for k in range(i, j):
                E.apply_event(t, int(kind[k]), payload, int(off[k]), self.ver, *self._stream_args)
        if broker is not None:
            book_ticked = self.ver[S.S_BOOK] + self.ver[S.S_BBO] != book_ver
            broker.on_batch(t, mid_before, (trades_before, int(self.ver[S.S_TRADES])), book_ticked)
        self._step(t, None)
        if self.period:
            if self.next_cycle == t:
                self._cycle(t, t // self.period)
                self.next_cycle += self.period
        elif self.ver[S.S_BOOK] + self.ver[S.S_BBO] != book_ver:
            self._cycle(t, self.n_cycles)
        self.last_t = t

    def finish(self, end_time: int | None) -> None:
        """Run the broker arrivals and the cycles left up to ``end_time`` (inclusive)."""
        if end_time is None:
            return
        while self.broker is not None and self.broker.next_time() is not None:
            tb = self.broker.next_time()
            if tb > end_time:
                break
            self._batch(tb, None, 0, 0)
        if self.period and self.next_cycle is not None:
            while self.next_cycle <= end_time:
                self._cycle(self.next_cycle, self.next_cycle // self.period)
                self.next_cycle += self.period
        if self.broker is not None:
            self.broker.finish(end_time)

    # -- steps ---------------------------------------------------------------------------
    def _cycle(self, t: int, cycle: int) -> None:
        self.values[S.S_CLOCK][0] = cycle
        self.ver[S.S_CLOCK] += 1
        self._step(t, cycle)
        if self.broker is not None:
            self.broker.after_cycle(t)
        self.trace.add(t, cycle, self.values)
        self.n_cycles += 1

    def _step(self, t: int, cycle: int | None) -> None:
        for n in self.plan.nodes:
            if n.trigger == "cycle" and (cycle is None or cycle % n.every != n.phase):
                continue
            self._maybe_run(n, t)
        cp = self.plan.cancel_port
        if cp is not None and self.ver[cp] != self._irq_seen:
            self._irq_seen = int(self.ver[cp])
            self.interrupts.append((t, float(self.values[cp][0])))
            if self.broker is not None:
                self.broker.on_interrupt(t, float(self.values[cp][0]))

    def _maybe_run(self, n, now: int) -> None:
        ver, seen, values = self.ver, self.seen, self.values
        wired = False
        ticked = False
        for b in n.inputs:
            for p, s in zip(b.ports, b.slots):
                wired = True
                if ver[p] != seen[s]:
                    ticked = True
        if wired and not ticked:
            return
        last = self.last_run[n.index]
        dt = 0.0 if last == NEVER else (now - last) * 1e-9
        args: list = [now, dt, n.params, *self.states[n.index]]
        for b in n.inputs:
            pt = PORT_TYPES[b.decl.type]
            if b.decl.variadic:
                vals, tks = n.gather[b.name]
                for k, (p, s) in enumerate(zip(b.ports, b.slots)):
                    vals[k] = values[p]
                    tks[k] = ver[p] != seen[s]
                args += [vals, tks]
            elif pt.batch:
                if b.ports:
                    p, s = b.ports[0], b.slots[0]
                    times, recs = values[p]
                    start, end = int(seen[s]), int(ver[p])
                    if end - start > len(times):
                        raise EngineError(
                            f"{n.name} fell {end - start} records behind on {self.plan.ports[p].address}, "
                            f"more than the ring holds ({len(times)})",
                            Location(self.plan.file, node=n.name, port=b.name),
                            hint=f"raise buffers.{pt.name} in the graph file, or run {n.name} more often",
                        )
                    args += [times, recs, start, end]
                else:
                    times, recs = n.dummies[b.name]
                    args += [times, recs, 0, 0]
            elif b.ports:
                p, s = b.ports[0], b.slots[0]
                args += [values[p], bool(ver[p] != seen[s])]
            else:
                args += [n.dummies[b.name], False]
        for _, p in n.outputs:
            if self.plan.ports[p].batch:
                times, recs = values[p]
                args += [times, recs, ver[p : p + 1]]
            else:
                args.append(values[p])
        mask = int(n.cls.kernel(*args))
        for i, (_, p) in enumerate(n.outputs):
            if (mask >> i) & 1 and not self.plan.ports[p].batch:
                ver[p] += 1
        for b in n.inputs:
            for p, s in zip(b.ports, b.slots):
                seen[s] = ver[p]
        self.last_run[n.index] = now
