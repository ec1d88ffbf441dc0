"""The public API: ``load_graph`` -> ``Graph``; ``Graph.run(source)`` -> ``Run``."""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from flowmm.core.events import EventTable
from flowmm.core.plan import Plan, load_plan
from flowmm.errors import Diagnostic, FlowmmError, GraphError

BACKENDS = ("python", "fused")  # the interpreter (brokers with Python hooks only); the generated loop


class Source(Protocol):
    """What an event source provides (``flowmm.sources``)."""

    name: str
    end_time: int | None

    def provides(self) -> set[str]: ...

    def chunks(self): ...


class Broker(Protocol):
    """What an execution layer provides (``flowmm.execution``): the exec streams and the hooks
    the engine calls (docs/execution.md). ``PaperBroker`` also offers ``kernel_args()``, the
    arrays its kernels work on, and then runs inside the compiled loop; a broker without it
    (``kernel_args = None``: the Hyperliquid broker, whose hooks do network I/O) drives the
    interpreter through these hooks."""

    name: str

    def provides(self) -> set[str]: ...

    def bind(self, plan: Plan, values: list, ver: np.ndarray) -> None: ...

    def next_time(self) -> int | None: ...

    def before_batch(self, t: int) -> None: ...

    def on_batch(
        self, t: int, mid_before: float, trades: tuple[int, int] | None, book_ticked: bool
    ) -> None: ...

    def after_cycle(self, t: int) -> None: ...

    def on_interrupt(self, t: int, side: float) -> None: ...

    def finish(self, t: int) -> None: ...

    def summary(self) -> dict[str, Any]: ...

    def fills_table(self) -> pa.Table: ...


@dataclass
class Run:
    """What a run leaves: the trace (one row per quote cycle), interrupts, a summary."""

    trace: pa.Table
    summary: dict[str, Any]
    interrupts: list[tuple[int, float]] = field(default_factory=list)
    out_dir: Path | None = None
    fills: pa.Table | None = None  # with a broker: t, px, sz, side, oid, fee, maker, mid_ref

    def trace_df(self):
        """The trace as a pandas DataFrame (needs pandas installed)."""
        return self.trace.to_pandas()


class Graph:
    """A loaded, validated graph. Use ``flowmm.load_graph``."""

    def __init__(
        self,
        plan: Plan,
        origin: str | dict,
        node_dirs: list,
        strict: bool = False,
        quote_every_ms=None,
        allow_plugins: bool = False,
    ):
        self.plan = plan
        self._allow_plugins = allow_plugins
        self._origin = origin
        self._node_dirs = node_dirs
        self._strict = strict
        self._quote_every_ms = quote_every_ms

    @property
    def name(self) -> str:
        return self.plan.spec.name

    @property
    def version_hash(self) -> str:
        return self.plan.version_hash

    @property
    def warnings(self) -> list[Diagnostic]:
        return self.plan.warnings

    def check_source(self, provides: set[str]) -> dict[str, list[str]]:
        """Re-validate against what a source provides. A stream it lacks never ticks: the inputs
        reading it stay silent, and the result maps each such stream to the nodes reading it
        (a graph loaded with ``strict=True`` raises a located error instead)."""
        plan = load_plan(
            self._origin,
            node_dirs=self._node_dirs,
            provides=provides,
            strict=self._strict,
            quote_every_ms=self._quote_every_ms,
            allow_plugins=self._allow_plugins,
        )
        return plan.missing_streams

    def run(
        self,
        source: Source,
        broker: Broker | None = None,
        out_dir: str | Path | None = None,
        *,
        backend: str | None = None,
        progress: bool = False,
    ) -> Run:
        """Run the graph over a source's events.

        ``backend``: ``"fused"`` (one numba function generated from the plan, with the broker's
        kernels inside when the broker offers them, ``kernel_args``) or ``"python"`` (the
        interpreter, for a broker with Python hooks only: the Hyperliquid broker). ``None`` picks
        fused whenever the broker allows it."""
        provides = source.provides() | (broker.provides() if broker is not None else set())
        missing = self.check_source(provides)
        started = time.perf_counter()
        compiled = broker is None or callable(getattr(broker, "kernel_args", None))
        if backend is None:
            backend = "fused" if compiled else "python"
        if backend == "fused" and not compiled:
            raise FlowmmError(
                f"the broker {type(broker).__name__} has Python hooks only: it runs on the python backend",
                hint="use backend='python' (--backend python), or no backend option",
            )
        if backend == "python":
            from flowmm.core.engine import Interpreter

            engine = Interpreter(self.plan, broker)
        elif backend == "fused":
            from flowmm.core.fused import FusedEngine

            engine = FusedEngine(self.plan, broker)
        else:
            raise ValueError(f"unknown backend {backend!r} (python | fused)")
        bar = _Progress(source.end_time) if progress else None
        n_events = 0
        for chunk in source.chunks():
            engine.process(chunk)
            n_events += len(chunk)
            if bar is not None and len(chunk):
                if bar.start is None:
                    bar.start = int(chunk.t[0])
                bar.update(int(chunk.t[-1]), n_events, engine.n_cycles)
        engine.finish(source.end_time)
        if bar is not None:
            bar.close(n_events, engine.n_cycles)
        elapsed = time.perf_counter() - started
        trace = _trace_table(engine)
        summary = {
            "graph": self.name,
            "version_hash": self.version_hash,
            "source": source.name,
            "backend": backend,
            "events": n_events,
            "cycles": engine.n_cycles,
            "interrupts": len(engine.interrupts),
            "wall_s": round(elapsed, 3),
        }
        if missing:
            summary["missing_streams"] = missing
        if hasattr(source, "summary"):
            summary[source.name] = source.summary()
        fills = None
        if broker is not None:
            summary["broker"] = broker.name
            summary.update(broker.summary())
            fills = broker.fills_table()
        run = Run(trace, summary, list(engine.interrupts), fills=fills)
        if out_dir is not None:
            run.out_dir = write_run(run, Path(out_dir), self._origin)
        return run


class _Progress:
    """One status line on stderr, in event time: how far through the source the run is."""

    WIDTH = 24

    def __init__(self, end_time: int | None):
        self.end = end_time
        self.start: int | None = None
        self.shown = 0.0

    def update(self, t: int | None, events: int, cycles: int, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.shown < 0.2:  # redraw at most 5 times a second
            return
        self.shown = now
        line = f"{events:,} events, {cycles:,} cycles"
        if t is not None and self.start is not None and self.end and self.end > self.start:
            frac = min(1.0, max(0.0, (t - self.start) / (self.end - self.start)))
            done = int(frac * self.WIDTH)
            span = _clock((self.end - self.start) / 1e9)
            line = (
                f"[{'#' * done}{'.' * (self.WIDTH - done)}] {frac:4.0%}  "
                f"{_clock((t - self.start) / 1e9)} / {span} event time, {line}"
            )
        print(f"\r  {line}", end="", file=sys.stderr, flush=True)

    def close(self, events: int, cycles: int) -> None:
        self.update(self.end, events, cycles, force=True)
        print(file=sys.stderr)


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _trace_table(engine) -> pa.Table:
    t, cycle, data = engine.trace.arrays()
    cols = {"t": pa.array(t, pa.int64()), "cycle": pa.array(cycle, pa.int64())}
    for i, name in enumerate(engine.trace.columns):
        cols[name] = pa.array(data[:, i], pa.float64())
    return pa.table(cols)


def write_run(run: Run, out_dir: Path, origin: str | dict) -> Path:
    """Write trace.parquet, fills.parquet (with a broker), interrupts.csv, summary.json, the graph."""
    import pyarrow.parquet as pq

    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {b"flowmm.version_hash": run.summary["version_hash"].encode()}
    pq.write_table(run.trace.replace_schema_metadata(meta), out_dir / "trace.parquet")
    with open(out_dir / "interrupts.csv", "w") as f:
        f.write("t,value\n")
        f.writelines(f"{t},{v}\n" for t, v in run.interrupts)
    if run.fills is not None:
        pq.write_table(run.fills.replace_schema_metadata(meta), out_dir / "fills.parquet")
    (out_dir / "summary.json").write_text(json.dumps(run.summary, indent=2) + "\n")
    if isinstance(origin, (str, Path)) and Path(origin).is_file():
        shutil.copy(origin, out_dir / "graph.yaml")
    return out_dir


def load_graph(
    path_or_dict: str | Path | dict,
    *,
    node_dirs: list[str | Path] = (),
    strict: bool = False,
    quote_every_ms: int | None = None,
    allow_plugins: bool = False,
) -> Graph:
    """Load and validate a graph file (or an equivalent dict); raises ``GraphError``.
    ``quote_every_ms`` replaces the file's ``clock:`` (e.g. a faster clock for a 6-s graph).
    ``allow_plugins``: import the graph's ``plugins:`` folders (off: a located error)."""
    node_dirs = list(node_dirs)
    plan = load_plan(
        path_or_dict,
        node_dirs=node_dirs,
        strict=strict,
        quote_every_ms=quote_every_ms,
        allow_plugins=allow_plugins,
    )
    return Graph(plan, path_or_dict, node_dirs, strict, quote_every_ms, allow_plugins)


__all__ = ["Broker", "Graph", "GraphError", "Run", "Source", "load_graph", "EventTable", "np"]
