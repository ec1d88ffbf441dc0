"""Run one node's kernel on arrays of inputs, exactly as the engine would call it.

Node tests use this instead of building a graph::

    from flowmm.testing import NodeHarness, run_node

    h = NodeHarness("estimators.ewma_vol", {"half_life_s": 60})
    h.step(1_000_000_000, price=100.0)           # ticks `price`; returns the outputs
    out = h.step(2_000_000_000, price=100.1)
    out["sigma"], out.emitted                    # value after the step, ports that ticked

    res = run_node("basic.ewma", {"half_life_s": 1.0}, times=t_ns, x=values)
    res["mean"]                                  # one row per step; res.emitted["mean"]: bool per step

Inputs given to ``step`` tick; inputs not given keep their last value and do not tick
(``run_node`` ticks every given input at every step unless ``ticked={port: bool array}``
says otherwise). Value inputs take a float or an array of the port's shape; variadic inputs a
list with one entry per source (``None`` = that source did not tick); batch inputs a list of
records ``(t_ns, field0, field1, ...)`` that arrived since the previous step.
``dt`` is 0.0 on the first step, then the seconds since the previous step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from flowmm.core.node import Node, get_node_type
from flowmm.core.ports import PORT_TYPES


class StepResult(dict):
    """Output values after one step (copies), plus ``emitted``: the ports that ticked."""

    emitted: set[str]


def _node(node: str | type[Node] | Node, params: dict | None) -> Node:
    if isinstance(node, Node):
        return node
    cls = get_node_type(node) if isinstance(node, str) else node
    return cls(cls.Params(**(params or {})))


class NodeHarness:
    """One node with its own buffers; ``step`` calls its kernel once."""

    def __init__(
        self,
        node: str | type[Node] | Node,
        params: dict | None = None,
        *,
        sizes: dict[str, int] | None = None,
        variadic: dict[str, int] | None = None,
        capacity: int = 1024,
    ):
        """``sizes``: vec sizes of inputs; ``variadic``: number of sources per variadic input."""
        self.node = _node(node, params)
        self.params = self.node.pack_params()
        self.state = self.node.checked_state()
        self.capacity = capacity
        sizes, variadic = sizes or {}, variadic or {}
        self.inputs: dict[str, Any] = {}
        self.ticked: dict[str, Any] = {}
        self.cursor: dict[str, int] = {}
        self.count: dict[str, np.ndarray] = {}
        for name, decl in self.node.inputs.items():
            pt = PORT_TYPES[decl.type]
            if pt.batch:
                self.inputs[name] = pt.allocate(capacity=capacity)
                self.count[name] = np.zeros(1, np.int64)
                self.cursor[name] = 0
            elif decl.variadic:
                n = variadic.get(name, 1)
                self.inputs[name] = np.full((n,) + pt.shape(sizes.get(name, 1)), np.nan)
                self.ticked[name] = np.zeros(n, np.bool_)
            else:
                self.inputs[name] = pt.allocate(sizes.get(name, 1))
        self.outputs: dict[str, Any] = {}
        self.out_count: dict[str, np.ndarray] = {}
        for name, decl in self.node.outputs.items():
            pt = PORT_TYPES[decl.type]
            if pt.batch:
                self.outputs[name] = pt.allocate(capacity=capacity)
                self.out_count[name] = np.zeros(1, np.int64)
            else:
                self.outputs[name] = pt.allocate(self.node.output_size(name))
        self.last: int | None = None

    def step(self, now: int, **given: Any) -> StepResult:
        unknown = set(given) - set(self.node.inputs)
        if unknown:
            raise KeyError(f"{self.node.type_name} has no input(s) {sorted(unknown)}")
        dt = 0.0 if self.last is None else (now - self.last) * 1e-9
        args: list[Any] = [np.int64(now), dt, self.params, *self.state]
        for name, decl in self.node.inputs.items():
            pt = PORT_TYPES[decl.type]
            buf = self.inputs[name]
            if pt.batch:
                times, recs = buf
                for rec in given.get(name, ()):
                    i = int(self.count[name][0]) % self.capacity
                    times[i] = int(rec[0])
                    recs[i, :] = np.nan
                    recs[i, : len(rec) - 1] = rec[1:]
                    self.count[name][0] += 1
                args += [times, recs, np.int64(self.cursor[name]), np.int64(self.count[name][0])]
                self.cursor[name] = int(self.count[name][0])
            elif decl.variadic:
                tk = self.ticked[name]
                tk[:] = False
                for k, v in enumerate(given.get(name, [None] * len(buf))):
                    if v is not None:
                        buf[k] = v
                        tk[k] = True
                args += [buf, tk]
            else:
                tick = name in given
                if tick:
                    buf[...] = given[name]
                args += [buf, tick]
        for name, decl in self.node.outputs.items():
            if PORT_TYPES[decl.type].batch:
                args += [*self.outputs[name], self.out_count[name]]
            else:
                args.append(self.outputs[name])
        before = {k: int(c[0]) for k, c in self.out_count.items()}
        mask = int(type(self.node).kernel(*args))  # via the class: a dispatcher binds as a method
        self.last = now
        result = StepResult()
        result.emitted = set()
        for i, (name, decl) in enumerate(self.node.outputs.items()):
            if PORT_TYPES[decl.type].batch:
                n = int(self.out_count[name][0]) - before[name]
                times, recs = self.outputs[name]
                rows = [(int(self.out_count[name][0]) - n + j) % self.capacity for j in range(n)]
                result[name] = (times[rows].copy(), recs[rows].copy())
                if n:
                    result.emitted.add(name)
            else:
                out = self.outputs[name]
                result[name] = float(out[0]) if out.shape == (1,) else out.copy()
                if (mask >> i) & 1:
                    result.emitted.add(name)
        return result


class RunResult(dict):
    """Per-port arrays of output values (one row per step) plus ``emitted[port]`` bool arrays."""

    emitted: dict[str, np.ndarray]


def run_node(
    node: str | type[Node] | Node,
    params: dict | None = None,
    *,
    times: Sequence[int] | np.ndarray,
    ticked: dict[str, Sequence[bool]] | None = None,
    **inputs: Any,
) -> RunResult:
    """Step a node over ``times`` (int ns); value inputs are sequences indexed by step."""
    times = np.asarray(times, np.int64)
    ticked = ticked or {}
    h = NodeHarness(node, params)
    rows: dict[str, list] = {name: [] for name in h.node.outputs}
    emitted: dict[str, list] = {name: [] for name in h.node.outputs}
    for i, t in enumerate(times):
        given = {}
        for name, seq in inputs.items():
            mask = ticked.get(name)
            if mask is None or mask[i]:
                given[name] = seq[i]
        out = h.step(int(t), **given)
        for name in rows:
            rows[name].append(out[name])
            emitted[name].append(name in out.emitted)
    res = RunResult({k: np.array(v) for k, v in rows.items() if v and not isinstance(v[0], tuple)})
    res.emitted = {k: np.array(v, bool) for k, v in emitted.items()}
    return res


def example_args(node: Node, capacity: int = 8) -> list[Any]:
    """Arguments of the right types for a node's kernel (compile checks, benchmarks)."""
    h = NodeHarness(node, capacity=capacity)
    args: list[Any] = [np.int64(0), 0.0, h.params, *h.state]
    for name, decl in node.inputs.items():
        pt = PORT_TYPES[decl.type]
        if pt.batch:
            args += [*h.inputs[name], np.int64(0), np.int64(0)]
        elif decl.variadic:
            args += [h.inputs[name], h.ticked[name]]
        else:
            args += [h.inputs[name], False]
    for name, decl in node.outputs.items():
        if PORT_TYPES[decl.type].batch:
            args += [*h.outputs[name], h.out_count[name]]
        else:
            args.append(h.outputs[name])
    return args


def allocations(fn: Any, *args: Any) -> int:
    """Numba heap allocations made by one call ``fn(*args)`` (compile it first).

    Kernel tests use it to show a hot path allocates nothing per event: drive the kernel in a
    loop of 1 and of N iterations and compare (the call boundary's own unboxing is constant)."""
    from numba.core.runtime import _nrt_python, rtsys

    was_on = _nrt_python.memsys_stats_enabled()
    _nrt_python.memsys_enable_stats()
    try:
        before = rtsys.get_allocation_stats().alloc
        fn(*args)
        return rtsys.get_allocation_stats().alloc - before
    finally:
        if not was_on:
            _nrt_python.memsys_disable_stats()
