"""The worked example of docs/scheduling.md: which nodes run in which step, and what they see.

Run it from the repository root: ``python docs/examples/scheduling_example.py``. It prints the
tables quoted in the doc (the doc's numbers are this script's output). It instruments the
reference engine (``flowmm.core.engine.Interpreter``) only to *log* each kernel call; the run
itself is the engine's, and the script checks that ``Graph.run`` gives the same trace with
both backends.
"""

from __future__ import annotations

import math

import flowmm
from flowmm.core.engine import Interpreter
from flowmm.core.ports import PORT_TYPES
from flowmm.sources import Events

MS = 1_000_000  # ns per ms

GRAPH = {
    "name": "scheduling_example",
    "clock": {"quote_every_ms": 1000},
    "tiers": {"hot": 1, "warm": {"every": 2, "phase": 1}},  # warm runs on odd cycles
    "execution": {"cancel": "burst.cancel"},
    "nodes": {
        # cycle-triggered (the type's default), hot: every cycle
        "ret": {"type": "features.mid_return", "in": {"price": "source.mid"}},
        # the same type made event-triggered: runs in the step of each book event
        "ret_ev": {"type": "features.mid_return", "trigger": "event", "in": {"price": "source.mid"}},
        # two readers of the tape, each with its own cursor: hot and warm
        "flow": {"type": "features.trade_flow", "in": {"trades": "source.trades"}},
        "flow_w": {"type": "features.trade_flow", "tier": "warm", "in": {"trades": "source.trades"}},
        # event-triggered, wired to execution.cancel: an interrupt
        "burst": {
            "type": "quoting.burst_cancel",
            "in": {"trades": "source.trades"},
            "params": {"n_trades": 2, "window_s": 1.0},
        },
    },
}


def book(t_ms: int, bid: float, ask: float) -> dict:
    return {"t": t_ms * MS, "kind": "book", "bids": [[bid, 1.0, 1]], "asks": [[ask, 1.0, 1]]}


def trade(t_ms: int, side: str, sz: float, tid: int) -> dict:
    return {"t": t_ms * MS, "kind": "trade", "px": 100.0, "sz": sz, "side": side, "tid": tid}


EVENTS = [
    book(200, 100.00, 100.02),  # mid 100.01
    trade(500, "B", 1.0, 1),
    trade(1000, "A", 2.0, 2),  # a trade and a book at the same exchange time: one batch
    book(1000, 99.98, 100.00),  # mid 99.99
    trade(1300, "A", 1.0, 3),  # two sells at one time: one batch, the burst fires
    trade(1300, "A", 0.5, 4),
    book(2600, 100.02, 100.04),  # mid 100.03
    trade(4200, "B", 3.0, 5),
]
END_MS = 5000


class LoggingInterpreter(Interpreter):
    """The reference engine, logging every kernel call (step, node, dt, what it read/emitted)."""

    def __init__(self, plan):
        super().__init__(plan)
        self.log: list[tuple[str, float, str, str]] = []
        self._label = ""
        for n in plan.nodes:
            n.cls = type(n.cls.__name__, (n.cls,), {"kernel": staticmethod(self._wrap(n, n.cls.kernel))})

    def _step(self, t, cycle):
        self._label = "event" if cycle is None else f"cycle {cycle}"
        super()._step(t, cycle)

    def _wrap(self, n, kernel):
        def logged(*args):
            now, dt = args[0], args[1]
            mask = int(kernel(*args))
            seen = []
            i = 3 + len(n.state)
            for b in n.inputs:
                if PORT_TYPES[b.decl.type].batch:
                    start, end = args[i + 2], args[i + 3]
                    seen.append(f"reads {end - start} trade{'s' if end - start != 1 else ''}")
                    i += 4
                else:
                    seen.append(f"{b.name}={float(args[i][0]):g}" + (" (ticked)" if args[i + 1] else ""))
                    i += 2
            outs = [p for k, (p, _) in enumerate(n.outputs) if (mask >> k) & 1]
            values = {p: float(self.values[pid].flat[0]) for p, pid in n.outputs if p in outs}
            emitted = ", ".join(_fmt(p, v) for p, v in values.items() if p != "obs") or "nothing"
            self.log.append(
                (self._label, now / 1e9, n.name, f"dt={dt:g}; {'; '.join(seen)}; emits {emitted}")
            )
            return mask

        return logged


def _fmt(port: str, v: float) -> str:
    return f"{port}={_num(v)}"


def _num(v: float) -> str:
    return "NaN" if math.isnan(v) else f"{v:.6g}"


def main() -> None:
    graph = flowmm.load_graph(GRAPH)
    order = [n.name for n in graph.plan.nodes]
    print(f"schedule order: {', '.join(order)}\n")
    src = Events(EVENTS, end_time=END_MS * MS)
    eng = LoggingInterpreter(flowmm.load_graph(GRAPH).plan)
    for chunk in src.chunks():
        eng.process(chunk)
    eng.finish(src.end_time)

    print("| step | t (s) | node | dt (s), what it sees, what it emits |")
    print("|---|---|---|---|")
    for label, t, name, what in eng.log:
        print(f"| {label} | {t:g} | `{name}` | {what} |")

    cols = ["ret.ret_bps", "ret.rate_bps_s", "ret_ev.ret_bps", "flow.count", "flow_w.count", "burst.cancel"]
    run = graph.run(Events(EVENTS, end_time=END_MS * MS))
    trace = run.trace.to_pydict()
    print("\n| cycle | t (s) | " + " | ".join(f"`{c}`" for c in cols) + " |")
    print("|---" * (len(cols) + 2) + "|")
    for r in range(run.trace.num_rows):
        vals = [trace[c][r] for c in cols]
        cells = [_num(v) for v in vals]
        print(f"| {trace['cycle'][r]} | {trace['t'][r] / 1e9:g} | " + " | ".join(cells) + " |")
    print(f"\ninterrupts: {[(t / 1e9, v) for t, v in run.interrupts]}")

    # the logging engine, Graph.run and the fused backend must agree (the log changed nothing)
    t2, c2, d2 = eng.trace.arrays()
    assert list(c2) == trace["cycle"], "cycle numbers differ"
    assert eng.interrupts == run.interrupts, "interrupts differ"
    fused = graph.run(Events(EVENTS, end_time=END_MS * MS), backend="fused")
    assert fused.interrupts == run.interrupts, "fused interrupts differ"
    for j, name in enumerate(eng.trace.columns):
        for other in (d2[:, j], fused.trace[name].to_pylist()):
            assert all(_same(x, y) for x, y in zip(other, trace[name], strict=True)), name
    print("checked: Graph.run (python and fused backends) gives the same trace and interrupts")


def _same(x: float, y: float) -> bool:
    return x == y or (math.isnan(x) and math.isnan(y))


if __name__ == "__main__":
    main()
