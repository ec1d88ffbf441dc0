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
from flowmm.errors import Diagnostic, GraphError


class Source(Protocol):
    """What an event source provides (``flowmm.sources``)."""

    name: str
    end_time: int | None

    def provides(self) -> set[str]: ...

    def chunks(self): ...


@dataclass
class Run:
    """What a run leaves: the trace (one row per quote cycle), interrupts, a summary."""

    trace: pa.Table
    summary: dict[str, Any]
    interrupts: list[tuple[int, float]] = field(default_factory=list)
    out_dir: Path | None = None

    def trace_df(self):
        """The trace as a pandas DataFrame (needs pandas installed)."""
        return self.trace.to_pandas()


class Graph:
    """A loaded, validated graph. Use ``flowmm.load_graph``."""

    def __init__(self, plan: Plan, origin: str | dict, node_dirs: list):
        self.plan = plan
        self._origin = origin
        self._node_dirs = node_dirs

    @property
    def name(self) -> str:
        return self.plan.spec.name

    @property
    def version_hash(self) -> str:
        return self.plan.version_hash

    @property
    def warnings(self) -> list[Diagnostic]:
        return self.plan.warnings

    def check_source(self, provides: set[str]) -> None:
        """Re-validate against what a source provides (a stream it lacks is a located error)."""
        load_plan(self._origin, node_dirs=self._node_dirs, provides=provides)

    def run(
        self,
        source: Source,
        broker: Any = None,
        out_dir: str | Path | None = None,
        *,
        backend: str = "python",
        progress: bool = False,
    ) -> Run:
        """Run the graph over a source's events.

        ``backend``: ``"python"`` (the reference interpreter) or ``"fused"`` (one numba
        function generated from the plan; same trace, much faster)."""
        if broker is not None:
            raise NotImplementedError("brokers arrive with the execution layer")
        self.check_source(source.provides())
        started = time.perf_counter()
        if backend == "python":
            from flowmm.core.engine import Interpreter

            engine = Interpreter(self.plan)
        elif backend == "fused":
            from flowmm.core.fused import FusedEngine

            engine = FusedEngine(self.plan)
        else:
            raise ValueError(f"unknown backend {backend!r} (python | fused)")
        n_events = 0
        for chunk in source.chunks():
            engine.process(chunk)
            n_events += len(chunk)
            if progress:
                print(f"\r  {n_events:,} events, {engine.n_cycles:,} cycles", end="", file=sys.stderr)
        engine.finish(source.end_time)
        if progress:
            print(file=sys.stderr)
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
        run = Run(trace, summary, list(engine.interrupts))
        if out_dir is not None:
            run.out_dir = write_run(run, Path(out_dir), self._origin)
        return run


def _trace_table(engine) -> pa.Table:
    t, cycle, data = engine.trace.arrays()
    cols = {"t": pa.array(t, pa.int64()), "cycle": pa.array(cycle, pa.int64())}
    for i, name in enumerate(engine.trace.columns):
        cols[name] = pa.array(data[:, i], pa.float64())
    return pa.table(cols)


def write_run(run: Run, out_dir: Path, origin: str | dict) -> Path:
    """Write trace.parquet, interrupts.csv, summary.json and a copy of the graph file."""
    import pyarrow.parquet as pq

    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {b"flowmm.version_hash": run.summary["version_hash"].encode()}
    pq.write_table(run.trace.replace_schema_metadata(meta), out_dir / "trace.parquet")
    with open(out_dir / "interrupts.csv", "w") as f:
        f.write("t,value\n")
        f.writelines(f"{t},{v}\n" for t, v in run.interrupts)
    (out_dir / "summary.json").write_text(json.dumps(run.summary, indent=2) + "\n")
    if isinstance(origin, (str, Path)) and Path(origin).is_file():
        shutil.copy(origin, out_dir / "graph.yaml")
    return out_dir


def load_graph(
    path_or_dict: str | Path | dict, *, node_dirs: list[str | Path] = (), strict: bool = False
) -> Graph:
    """Load and validate a graph file (or an equivalent dict); raises ``GraphError``."""
    node_dirs = list(node_dirs)
    plan = load_plan(path_or_dict, node_dirs=node_dirs, strict=strict)
    return Graph(plan, path_or_dict, node_dirs)


__all__ = ["Graph", "GraphError", "Run", "load_graph", "EventTable", "np"]
