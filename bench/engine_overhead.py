"""Engine overhead per node-step: the Python Interpreter vs the fused (generated numba) backend.

A chain of N trivial ``basic.affine`` nodes (the first fed by ``source.mid``) on an
``on_book`` clock, so every synthetic book event is one quote cycle in which every node runs.
Printed per chain length and backend:

* steps/s (= events/s: one event, one cycle step);
* ns per node-step = wall / (events * nodes): what the engine costs around each kernel call
  (the affine kernel itself is ~1 ns of arithmetic), event application and trace writing
  included; and the marginal cost of one more node (slope between the two chain lengths);
* for the fused backend, the first compile and the cached load of the generated function,
  each timed in a fresh subprocess (python, numba and flowmm already imported, the plan
  loaded) around ``FusedEngine(plan)`` + processing a one-event chunk: the first subprocess
  has an empty ``FLOWMM_CACHE_DIR`` (generate, write, compile and write numba's cache), the
  second the same folder (read the module and numba's cached machine code);
* for comparison, the cost of one numba dispatch from Python: the affine kernel called with
  the engine's argument types, and a no-argument ``@njit`` function.

Figures only, no asserts (DESIGN.md: measured, not assumed). Usage::

    python bench/engine_overhead.py            # 200k events fused, 5k python
    python bench/engine_overhead.py --quick    # a smoke run in well under a minute
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

T0 = 1_700_000_000_000_000_000


def chain_graph(n: int) -> dict:
    nodes = {"a0": {"type": "basic.affine", "in": {"x": "source.mid"}}}
    for i in range(1, n):
        nodes[f"a{i}"] = {"type": "basic.affine", "in": {"x": f"a{i - 1}.y"}, "params": {"scale": 1.0001}}
    return {"name": f"bench_chain{n}", "clock": {"on_book": True}, "nodes": nodes}


def book_events(n: int, seed: int = 0):
    """``n`` one-level book events 1 ms apart, mid a random walk (an EventTable, built directly)."""
    from flowmm.core.events import BOOK, EventTable

    rng = np.random.default_rng(seed)
    mid = 100.0 + np.cumsum(rng.normal(0, 0.01, n))
    payload = np.empty((n, 8))
    payload[:, 0] = payload[:, 1] = 1.0  # one level per side
    payload[:, 2], payload[:, 3], payload[:, 4] = mid - 0.01, 1.0, 1.0
    payload[:, 5], payload[:, 6], payload[:, 7] = mid + 0.01, 1.0, 1.0
    return EventTable(
        T0 + np.arange(n, dtype=np.int64) * 1_000_000,
        np.full(n, BOOK, np.int64),
        np.arange(n + 1, dtype=np.int64) * 8,
        payload.ravel(),
    )


def run_engine(backend: str, n_nodes: int, table) -> tuple[float, int]:
    """Wall seconds to process ``table`` in 64k-event chunks (as Graph.run does), and cycles."""
    import flowmm
    from flowmm.sources.events import Events

    plan = flowmm.load_graph(chain_graph(n_nodes)).plan
    if backend == "python":
        from flowmm.core.engine import Interpreter

        engine = Interpreter(plan)
    else:
        from flowmm.core.fused import FusedEngine

        engine = FusedEngine(plan)
        engine.process(book_events(1, seed=1))  # load/compile outside the timed region
        engine = FusedEngine(plan)
    chunks = list(Events(table).chunks())
    start = time.perf_counter()
    for chunk in chunks:
        engine.process(chunk)
    wall = time.perf_counter() - start
    return wall, engine.n_cycles


_LOAD_SCRIPT = """
import json, sys, time
sys.path.insert(0, {bench_dir!r})
import flowmm
from flowmm.core.fused import FusedEngine
from engine_overhead import book_events, chain_graph
plan = flowmm.load_graph(chain_graph({n})).plan
table = book_events(1)
start = time.perf_counter()
engine = FusedEngine(plan)
engine.process(table)
wall = time.perf_counter() - start
stats = engine.module.run.stats
print(json.dumps([wall, sum(stats.cache_hits.values()), sum(stats.cache_misses.values())]))
"""


def compile_and_load(n_nodes: int, cache: str) -> tuple[float, float, str]:
    """(first compile s, cached load s, numba cache hits/misses) in two fresh subprocesses."""
    script = _LOAD_SCRIPT.format(bench_dir=os.path.dirname(os.path.abspath(__file__)), n=n_nodes)
    env = dict(os.environ, FLOWMM_CACHE_DIR=cache)
    out = []
    for _ in range(2):
        res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
        if res.returncode:
            raise SystemExit(res.stderr)
        out.append(json.loads(res.stdout.strip().splitlines()[-1]))
    (first, h1, m1), (cached, h2, m2) = out
    return first, cached, f"hits/misses: first {h1}/{m1}, second {h2}/{m2}"


def dispatch_cost(calls: int) -> tuple[float, float]:
    """ns per call from Python: the affine kernel with engine argument types; an empty njit."""
    from flowmm.nodes.basic.affine import affine_kernel
    from numba import njit

    @njit
    def noop():
        return 0

    params, x, y = np.array([1.0, 0.0]), np.array([1.0]), np.zeros(1)
    now, dt = T0, 0.001
    affine_kernel(now, dt, params, x, True, y)
    noop()
    start = time.perf_counter()
    for _ in range(calls):
        affine_kernel(now, dt, params, x, True, y)
    kernel_ns = (time.perf_counter() - start) / calls * 1e9
    start = time.perf_counter()
    for _ in range(calls):
        noop()
    noop_ns = (time.perf_counter() - start) / calls * 1e9
    return kernel_ns, noop_ns


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=200_000, help="book events for the fused backend")
    ap.add_argument("--python-events", type=int, default=5_000, help="book events for the python backend")
    ap.add_argument("--chains", default="10,40", help="chain lengths, comma-separated")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per case (the best is printed)")
    ap.add_argument("--quick", action="store_true", help="small sizes, one repeat: a smoke run")
    args = ap.parse_args(argv)
    if args.quick:
        args.events, args.python_events, args.repeat = 20_000, 1_000, 1
    chains = [int(c) for c in args.chains.split(",")]

    import numba

    print(f"flowmm engine overhead: python {sys.version.split()[0]}, numba {numba.__version__}, "
          f"{os.cpu_count()} cpus")  # fmt: skip
    kernel_ns, noop_ns = dispatch_cost(20_000 if args.quick else 200_000)
    print(f"numba dispatch from Python: affine kernel {kernel_ns:,.0f} ns/call, "
          f"empty njit {noop_ns:,.0f} ns/call")  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="flowmm-bench-") as cache:
        os.environ["FLOWMM_CACHE_DIR"] = cache  # a fresh cache: the compile figures are real
        per_node: dict[str, list[tuple[int, float]]] = {"python": [], "fused": []}
        for n in chains:
            first, cached, stats = compile_and_load(n, cache)
            print(f"\nchain of {n} affine nodes, on_book clock (one cycle per event, every node runs)")
            print(f"  fused compile: first {first:.2f} s, cached load {cached:.3f} s  (numba cache {stats})")
            for backend, n_events in (("python", args.python_events), ("fused", args.events)):
                table = book_events(n_events)
                wall, cycles = min(run_engine(backend, n, table) for _ in range(args.repeat))
                assert cycles == n_events  # one cycle per book event, or the figure means nothing
                node_ns = wall / (n_events * n) * 1e9
                per_node[backend].append((n, wall / n_events))
                rate = n_events / wall
                print(f"  {backend:6s}: {n_events:>9,} events in {wall:7.3f} s = {rate:>12,.0f} steps/s, "
                      f"{node_ns:8.1f} ns per node-step")  # fmt: skip
        if len(chains) >= 2:
            print("\nmarginal cost of one more node per step (slope between the chain lengths):")
            for backend, pts in per_node.items():
                (n0, s0), (n1, s1) = pts[0], pts[-1]
                print(f"  {backend:6s}: {(s1 - s0) / (n1 - n0) * 1e9:8.1f} ns per node-step")
        os.environ.pop("FLOWMM_CACHE_DIR")


if __name__ == "__main__":
    main()
