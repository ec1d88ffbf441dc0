"""``StaleGuard``: the execution side of staleness and of stopping, around any broker.

The engine drives a broker through hooks (``bind``, ``before_batch``, ``on_batch``,
``after_cycle``, ``on_interrupt``, ``finish``; docs/execution.md). The guard passes them all
through and adds two rules, both driven by events only, so a replay of a live recording
does exactly what the live run did:

* **stale book** — after a batch in which ``source.timer`` ticked with a staleness code
  (:mod:`flowmm.sources.live.staleness`) saying the book is stale: cancel every resting order
  (the interrupt path, both sides) and withdraw the quotes: the desired ladder is not
  reconciled while the book is stale. When a later timer says the book is fresh, the next
  quote cycle reconciles the ladder again.
* **stop** — at the end of the run (``finish``), whatever ended it (the end of a replay, Ctrl+C,
  a fault): cancel all, then let the cancels (and any order still in flight) arrive, so no
  order is left resting. The trace is complete by then: this adds no trace row.

In the compiled loop (the paper broker) the per-batch rule is ``paper_step.guard_step`` and
withdrawal is the ``B_STALE`` flag the reconcile reads; on the interpreter (the Hyperliquid
broker) these hooks do the same in Python, withdrawal hiding the ladder port from the broker's
reconcile (``ladder_port``). The stop rule runs in Python after the loop in both cases.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flowmm.core import streams as S
from flowmm.execution import paper_step as P
from flowmm.sources.live.staleness import book_stale

_OID = 0  # orders table column: a NaN oid is a free slot (docs/graph-reference.md, port layouts)


class StaleGuard:
    """Wraps a broker (the paper broker, or the Hyperliquid one): an explicit wrapper, every hook
    it passes on is spelled out. Its state lives in the wrapped broker's ``bk`` array, so the
    compiled loop (``flowmm.execution.paper_step.guard_step``, for the paper broker) and these
    Python hooks (the interpreter, for the Hyperliquid broker) keep one state."""

    def __init__(self, broker: Any):
        self.broker = broker
        self.name = broker.name
        self.resting_at_end: int | None = None
        self._ladder_port = None

    # the guard's state, in the broker's bk
    stale = property(lambda s: bool(s.broker.bk[P.B_STALE]))
    stale_events = property(lambda s: int(s.broker.bk[P.B_STALE_EVENTS]))
    cancel_all = property(lambda s: int(s.broker.bk[P.B_CANCEL_ALL]))
    withdrawn_cycles = property(lambda s: int(s.broker.bk[P.B_WITHDRAWN]))
    orders = property(lambda s: s.broker.orders)

    def provides(self) -> set[str]:
        return self.broker.provides()

    def bind(self, plan, values: list, ver: np.ndarray) -> None:
        self.broker.bind(plan, values, ver)
        self.values, self.ver = values, ver
        self._ladder_port = plan.ladder_port
        bk = self.broker.bk
        bk[P.B_GUARD] = 1
        bk[P.B_TIMER_SEEN] = ver[S.S_TIMER]

    @property
    def kernel_args(self):
        """The wrapped broker's kernel arrays when it runs inside the compiled loop (there
        ``guard_step`` does what ``on_batch`` does here), else None."""
        return getattr(self.broker, "kernel_args", None)

    def grow_logs(self, fills: int, minutes: int) -> None:
        self.broker.grow_logs(fills, minutes)

    def check(self) -> None:
        self.broker.check()

    def next_time(self) -> int | None:
        return self.broker.next_time()

    def before_batch(self, t: int) -> None:
        self.broker.before_batch(t)

    def on_interrupt(self, t: int, side: float) -> None:
        self.broker.on_interrupt(t, side)

    def on_batch(self, t: int, mid_before: float, trades, book_ticked: bool) -> None:
        self.broker.on_batch(t, mid_before, trades, book_ticked)
        bk = self.broker.bk
        if self.ver[S.S_TIMER] == bk[P.B_TIMER_SEEN]:
            return
        bk[P.B_TIMER_SEEN] = self.ver[S.S_TIMER]
        stale = book_stale(float(self.values[S.S_TIMER][0]))
        if stale is None or stale == self.stale:
            return
        bk[P.B_STALE] = stale
        if stale:
            bk[P.B_STALE_EVENTS] += 1
            bk[P.B_CANCEL_ALL] += 1
            self.broker.on_interrupt(t, 0.0)
            self.broker.ladder_port = None  # withdrawn: the ladder is not reconciled
        else:
            self.broker.ladder_port = self._ladder_port
            self.broker.orders_dirty = True  # reconcile at the next cycle

    def after_cycle(self, t: int) -> None:
        if self.stale and self._ladder_port is not None:
            self.broker.bk[P.B_WITHDRAWN] += 1
        self.broker.after_cycle(t)

    def finish(self, t: int) -> None:
        """Cancel all, then deliver every action still in flight (after the last event)."""
        self.broker.bk[P.B_CANCEL_ALL] += 1
        self.broker.ladder_port = None
        self.broker.on_interrupt(t, 0.0)
        last = t
        while self.broker.next_time() is not None:
            last = self.broker.next_time()
            mid = float(self.values[S.S_MID][0])
            self.broker.before_batch(last)
            self.broker.on_batch(last, mid, None, False)
        self.broker.finish(max(t, last))
        oid = self.broker.orders[:, _OID]
        self.resting_at_end = int(np.sum(oid == oid))  # pending or resting: any order not gone

    def emergency_stop(self) -> None:
        """The Hyperliquid broker's cancel-everything (``flowmm run --execute``)."""
        self.broker.emergency_stop()

    def fills_table(self):
        return self.broker.fills_table()

    def summary(self) -> dict[str, Any]:
        out = self.broker.summary()
        out["stale_guard"] = {
            "stale_events": self.stale_events,
            "cancel_all": self.cancel_all,
            "withdrawn_cycles": self.withdrawn_cycles,
            "resting_at_end": self.resting_at_end,
        }
        return out


def guard_for(broker: Any, source: Any) -> Any:
    """The broker a run uses with ``source``: guarded for the live feed and for a replay of a
    live recording (its session header says ``"source": "live"``), as is otherwise."""
    if broker is None:
        return None
    live = getattr(source, "name", None) == "live"
    session = (getattr(source, "info", None) or {}).get("session") or {}
    if live or session.get("source") == "live":
        return StaleGuard(broker)
    return broker
