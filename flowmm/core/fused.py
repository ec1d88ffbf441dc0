"""The fused backend: the plan compiled into one numba function per graph.

Calling a numba function from Python costs ~0.4-1 us, a node's kernel tens of ns
(DESIGN.md, "Fusion"). So instead of a Python loop calling each kernel (``engine.py``),
this module *generates* from the plan the source of a module whose one ``@njit(cache=True)``
function, ``run``, processes a whole ``EventTable`` chunk in a single call:

    loop: is a quote cycle due (a boundary before the next batch, one equal to the batch
          just applied, on_book after a batch that ticked the book, or finish())?
            yes -> cycle step: tick source.clock, one block per node in schedule order
                   (tier check, "ticked since it last ran", dt, the kernel call, emitted
                   bits -> versions, seen slots), interrupt check, trace row
          else -> apply the next batch of equal-time events (the per-kind appliers of
                  ``events.APPLIERS``), then the event step (the event-triggered nodes'
                  blocks), interrupt check

The cycle step and the event step each appear once in the source (compile time grows
faster than linearly with function size in numba). The semantics are exactly the
Interpreter's (``engine.py`` docstring, points 1-6), and kernels get the same argument
types, so their compiled specialisations are shared. Engine state (next cycle time, cycle
count, interrupt version, last run per node, versions, seen slots) lives in arrays, so
chunks resume seamlessly. Trace rows and interrupts go into buffers preallocated per chunk
from an upper bound; a ring overflow ends the chunk with an error code and Python raises
the same ``EngineError`` as the Interpreter.

The module is written to a real file (numba's ``cache=True`` cannot cache ``exec``-made
functions) under ``$FLOWMM_CACHE_DIR/fused`` (default ``~/.cache/flowmm/fused``), named by
the graph's name and a hash of the generated source and of every source it calls into
(kernel modules, the event code, this module, numba's version): numba's cache does not
notice a changed callee, the file name does. Params, state and buffers are arguments, not
constants, so a graph whose params change reuses the compiled function; only a change of
structure (nodes, wiring, tiers, clock, trace columns) or of a kernel's code compiles anew.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import re
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numba
import numpy as np
from numba import njit
from numba.core.registry import CPUDispatcher

from flowmm.core import events as E
from flowmm.core import streams as S
from flowmm.core.compile_notice import compile_notice
from flowmm.core.events import EventTable
from flowmm.core.node import kernel_py
from flowmm.core.plan import NodePlan, Plan
from flowmm.core.ports import PORT_TYPES
from flowmm.core.streams import STREAM_INDEX
from flowmm.errors import EngineError, Location

NEVER = int(np.iinfo(np.int64).min)
GENERATOR_VERSION = 2  # bump when the shape of the generated code changes

# engine state vector (int64 ``eng``); POS..FIN let a call that yielded resume exactly
E_HAS_NEXT, E_NEXT, E_N_CYCLES, E_IRQ_SEEN, E_N_TRACE, E_N_IRQ = range(6)
E_ERR, E_ERR_NODE, E_ERR_INPUT, E_ERR_BEHIND = range(6, 10)
E_POS, E_T, E_BOOK_VER, E_AFTER, E_FIN, E_SEL, E_SEL_T, E_SEL_ARR = range(10, 18)
N_ENG = 18
_ENG_NAMES = (
    "E_HAS_NEXT", "E_NEXT", "E_N_CYCLES", "E_IRQ_SEEN", "E_N_TRACE", "E_N_IRQ",
    "E_ERR", "E_ERR_NODE", "E_ERR_INPUT", "E_ERR_BEHIND", "E_POS", "E_T", "E_BOOK_VER", "E_AFTER", "E_FIN",
    "E_SEL", "E_SEL_T", "E_SEL_ARR",
)  # fmt: skip
ERR_RING = 1
RET_DONE, RET_ERROR, RET_YIELD = 0, 1, 2  # run's return: chunk done; eng[ERR] set; buffers full
# the paper broker's arrays (PaperBroker.kernel_args), passed after the engine's
BROKER_ARGS = (
    "bk", "bkf", "pq_t", "pq_r", "log_t", "log_r", "min_v", "min_c", "aux", "work", "mparams", "fill_rng",
    "rec_params", "rec_state", "act_t", "act_r", "act_n", "acct", "aclock", "pend_ctl", "pend_t", "pend_r",
    "mk_stats", "spike_rng",
)  # fmt: skip

# modules the generated code calls into besides the kernels' own (their source is hashed)
_CORE_MODULES = (
    "flowmm.core.events", "flowmm.core.streams", "flowmm.core.ports", "flowmm.core.node", "flowmm.core.fused",
    "flowmm.execution.paper_step", "flowmm.execution.matching", "flowmm.execution.accounting",
    "flowmm.execution.reconciler", "flowmm.execution.fees",
)  # fmt: skip
# engine arrays passed to ``run`` after the event table, before the plan's arrays
_ENGINE_ARGS = ("eng", "ver", "seen", "last_run", "irq_t", "irq_v", "tr_t", "tr_cycle", "tr_data")


@njit(cache=True)
def enter_node(last_run, i, now):
    """A node starts a run at ``now``: its dt (0.0 on its first run, else seconds since it
    last ran, as in the Interpreter); records ``now`` as its last run."""
    last = last_run[i]
    last_run[i] = now
    return 0.0 if last == NEVER else (now - last) * 1e-9


# -- argument layout -------------------------------------------------------------------------
class _Layout:
    """Names of the generated function's arguments and, given buffers, their values.

    One list drives both the generated signature and the Python call, so they cannot drift."""

    def __init__(self, plan: Plan, values: list | None = None, states: list | None = None):
        self.plan = plan
        self._values = values
        self.names: list[str] = []
        self.args: list[Any] = []
        self.comments: dict[int, str] = {}  # position -> comment line before that argument
        self.port: dict[int, Any] = {}  # port id -> array name, or (times, records) names
        self.params: dict[int, str] = {}
        self.state: dict[int, list[str]] = {}
        self.gather: dict[tuple[int, str], tuple[str, str]] = {}
        self.dummy: dict[tuple[int, str], Any] = {}
        self.kernel: dict[int, str] = {}
        self.imports: list[str] = []

        self._comment("streams")
        for p in plan.ports:
            if p.producer is None:
                self._port(p.id, p.address.replace(".", "_"))
        for n in plan.nodes:
            self._comment(f"node {n.name} ({n.type_name})")
            self.params[n.index] = self._add(f"p{n.index}_{n.name}", n.params)
            st = states[n.index] if states is not None else n.state
            self.state[n.index] = [self._add(f"s{n.index}_{k}_{n.name}", a) for k, a in enumerate(st)]
            for b in n.inputs:
                if b.decl.variadic:
                    vals, tks = n.gather[b.name]
                    self.gather[n.index, b.name] = (
                        self._add(f"g{n.index}_{b.name}_v", vals),
                        self._add(f"g{n.index}_{b.name}_k", tks),
                    )
                elif not b.ports:
                    d = n.dummies[b.name]
                    if PORT_TYPES[b.decl.type].batch:
                        self.dummy[n.index, b.name] = (
                            self._add(f"d{n.index}_{b.name}_t", d[0]),
                            self._add(f"d{n.index}_{b.name}_r", d[1]),
                        )
                    else:
                        self.dummy[n.index, b.name] = self._add(f"d{n.index}_{b.name}", d)
            for port, pid in n.outputs:
                self._port(pid, f"o{pid}_{n.name}_{port}")
        # one import per distinct kernel, named after it (suffixed on a clash)
        aliases: dict[tuple[str, str], str] = {}
        for n in plan.nodes:
            py = kernel_py(n.cls.kernel)
            key = (py.__module__, py.__name__)
            if key not in aliases:
                alias, i = f"k_{py.__name__}", 2
                while alias in aliases.values():
                    alias, i = f"k_{py.__name__}_{i}", i + 1
                aliases[key] = alias
                self.imports.append(f"from {key[0]} import {key[1]} as {alias}")
            self.kernel[n.index] = aliases[key]

    def _comment(self, text: str) -> None:
        self.comments[len(self.names)] = text

    def _add(self, name: str, value: Any) -> str:
        self.names.append(name)
        self.args.append(value)
        return name

    def _port(self, pid: int, name: str) -> None:
        v = self._values[pid] if self._values is not None else (None, None)
        if self.plan.ports[pid].batch:
            self.port[pid] = (self._add(name + "_t", v[0]), self._add(name + "_r", v[1]))
        else:
            self.port[pid] = self._add(name, None if self._values is None else v)

    def signature(self, lead: tuple[str, ...], indent: str = "    ") -> str:
        """The parameter list: ``lead`` first, then every array, grouped with comments."""
        lines = [f"{indent}{', '.join(lead)},"]
        for i, name in enumerate(self.names):
            if i in self.comments:
                lines.append(f"{indent}# {self.comments[i]}")
            lines.append(f"{indent}{name},")
        return "\n".join(lines)


def _wrap_call(fn: str, args: list[str], indent: str, width: int = 104) -> str:
    """``fn(a, b, ...)`` wrapped at ``width`` with continuation lines indented once more."""
    head = f"{indent}{fn}("
    one = head + ", ".join(args) + ")"
    if len(one) <= width:
        return one
    lines, cur = [], indent + "    "
    for a in args:
        piece = a + ", "
        if len(cur) + len(piece) > width and cur.strip():
            lines.append(cur.rstrip())
            cur = indent + "    "
        cur += piece
    lines.append(cur.rstrip().rstrip(","))
    return head + "\n" + "\n".join(lines) + "\n" + indent + ")"


# -- code generation -------------------------------------------------------------------------
def _index(shape: tuple[int, ...], flat: int) -> str:
    """``[i, j]`` of element ``flat`` of a C-ordered array of ``shape`` (static)."""
    return "[" + ", ".join(str(int(i)) for i in np.unravel_index(flat, shape)) + "]"


def _node_block(plan: Plan, lay: _Layout, n: NodePlan, base: str, in_cycle: bool) -> list[str]:
    """The statements that run one node in a step, at indent ``base``."""
    ports = plan.ports
    head = f"# -- [{n.index}] {n.name}: {n.type_name}"
    if n.trigger == "cycle":
        head += f", cycle-triggered, tier {n.tier} (cycle % {n.every} == {n.phase})"
    else:
        head += ", event-triggered"
    out = ["", base + head]
    for b in n.inputs:
        src = ", ".join(f"{ports[p].address} [seen {s}]" for p, s in zip(b.ports, b.slots)) or "unwired"
        out.append(f"{base}#    in  {b.name}{'[]' if b.decl.variadic else ''} <- {src}")
    for port, pid in n.outputs:
        out.append(f"{base}#    out {port} -> port {pid}")
    ind = base
    if in_cycle and n.trigger == "cycle" and n.every > 1:
        out.append(f"{ind}if cycle % {n.every} == {n.phase}:")
        ind += "    "
    slots = [(p, s) for b in n.inputs for p, s in zip(b.ports, b.slots)]
    if slots:  # only when an input ticked since this node last ran
        ticked = " or ".join(f"ver[{p}] != seen[{s}]" for p, s in slots)
        if len(ind) + len(ticked) > 100:
            ticked = "(\n" + " or\n".join(f"{ind}    ver[{p}] != seen[{s}]" for p, s in slots) + f"\n{ind})"
        out.append(f"{ind}if {ticked}:")
        ind += "    "
    else:
        out.append(f"{ind}# no wired input: runs in every step it is eligible for")
    # per-node variable names: fewer SSA rewrites, markedly faster numba compiles on big graphs
    dt, mask = f"dt{n.index}", f"mask{n.index}"
    args = ["now", dt, lay.params[n.index], *lay.state[n.index]]
    prep: list[str] = []  # gathers, after the ring checks
    for bi, b in enumerate(n.inputs):
        pt = PORT_TYPES[b.decl.type]
        if b.decl.variadic:
            gv, gk = lay.gather[n.index, b.name]
            for k, (p, s) in enumerate(zip(b.ports, b.slots)):
                prep.append(f"{ind}{gv}[{k}] = {lay.port[p]}")
                prep.append(f"{ind}{gk}[{k}] = ver[{p}] != seen[{s}]")
            args += [gv, gk]
        elif pt.batch:
            if b.ports:
                p, s = b.ports[0], b.slots[0]
                times, recs = lay.port[p]
                st, en = f"start{n.index}_{b.name}", f"end{n.index}_{b.name}"
                out.append(f"{ind}{st} = seen[{s}]")
                out.append(f"{ind}{en} = ver[{p}]")
                out.append(f"{ind}if {en} - {st} > {times}.shape[0]:  # fell a whole ring behind")
                out.append(f"{ind}    eng[ERR] = ERR_RING")
                out.append(f"{ind}    eng[ERR_NODE] = {n.index}")
                out.append(f"{ind}    eng[ERR_INPUT] = {bi}")
                out.append(f"{ind}    eng[ERR_BEHIND] = {en} - {st}")
                out.append(f"{ind}    return 1")
                args += [times, recs, st, en]
            else:
                times, recs = lay.dummy[n.index, b.name]
                args += [times, recs, "ZERO", "ZERO"]
        elif b.ports:
            p, s = b.ports[0], b.slots[0]
            args += [lay.port[p], f"ver[{p}] != seen[{s}]"]
        else:
            args += [lay.dummy[n.index, b.name], "False"]
    for _, pid in n.outputs:
        if ports[pid].batch:
            times, recs = lay.port[pid]
            args += [times, recs, f"ver[{pid}:{pid + 1}]"]
        else:
            args.append(lay.port[pid])
    # dt: 0.0 on the node's first run, else seconds since it last ran (sets last_run = now)
    out.append(f"{ind}{dt} = enter_node(last_run, {n.index}, now)")
    out += prep
    call = _wrap_call(f"{mask} = np.int64({lay.kernel[n.index]}", args, ind).split("\n")
    call[-1] += ")"
    out += call
    for i, (_, pid) in enumerate(n.outputs):
        if not ports[pid].batch:  # batch outputs tick by appending (ring_append)
            bit = f"{mask} & 1" if i == 0 else f"({mask} >> {i}) & 1"
            out.append(f"{ind}if {bit}:")
            out.append(f"{ind}    ver[{pid}] += 1")
    for p, s in slots:
        out.append(f"{ind}seen[{s}] = ver[{p}]")
    return out


def _interrupt(plan: Plan, lay: _Layout, base: str, broker: bool) -> list[str]:
    """After each step: record an interrupt if ``execution.cancel`` ticked (point 6); with a
    broker, cancel that side at once."""
    cp = plan.cancel_port
    if cp is None:
        return []
    out = [
        "",
        f"{base}# -- interrupt: execution.cancel = {plan.ports[cp].address} ticked in this step",
        f"{base}if ver[{cp}] != eng[IRQ_SEEN]:",
        f"{base}    eng[IRQ_SEEN] = ver[{cp}]",
        f"{base}    k = eng[N_IRQ]",
        f"{base}    irq_t[k] = now",
        f"{base}    irq_v[k] = {lay.port[cp]}[0]",
        f"{base}    eng[N_IRQ] = k + 1",
    ]
    if broker:
        out.append(
            _wrap_call("interrupt_step", ["now", f"{lay.port[cp]}[0]", _ORDERS, *_CANCEL_ARGS], base + "    ")
        )
    return out


_ORDERS = "exec_orders"
_SEND_ARGS = ["bk", "bkf", "pq_t", "pq_r", "spike_rng", "ver"]
_CANCEL_ARGS = ["rec_state", "act_t", "act_r", "act_n", *_SEND_ARGS]


def _broker_cycle(plan: Plan, lay: _Layout, base: str) -> list[str]:
    """After a cycle step, before its trace row: the minute-PnL sample and the reconcile."""
    out = ["", f"{base}# -- paper broker after the cycle: minute PnL, reconcile the ladder, send",
           f"{base}minute_pnl(now, acct, bk, min_v, min_c)"]  # fmt: skip
    lp = plan.ladder_port
    if lp is not None:
        args = ["now", lay.port[lp], f"ver[{lp}]", _ORDERS, "rec_params", *_CANCEL_ARGS]
        out.append(_wrap_call("reconcile_step", args, base))
    return out


def _broker_batch(lay: _Layout, base: str, before: bool) -> list[str]:
    """The paper broker around a batch's events: funding and markouts before; matching after."""
    p = lay.port
    if before:
        mk_t, mk_r = p[S.S_MARKOUTS]
        return [
            f"{base}# -- paper broker before the batch: funding, markouts due (the state before it)",
            _wrap_call(
                "before_batch",
                [
                    "t",
                    p[S.S_MID],
                    p[S.S_CTX],
                    "acct",
                    "aclock",
                    "pend_ctl",
                    "pend_t",
                    "pend_r",
                    "mk_stats",
                    mk_t,
                    mk_r,
                    "ver",
                ],
                base,
            ),  # fmt: skip
            f"{base}mid_before = {p[S.S_MID]}[0]",
            f"{base}trades_before = ver[{S.S_TRADES}]",
        ]
    tr_t, tr_r = p[S.S_TRADES]
    fl_t, fl_r = p[S.S_FILLS]
    args = [
        "t", "mid_before", "trades_before", f"ver[{S.S_TRADES}]",
        f"ver[{S.S_BOOK}] + ver[{S.S_BBO}] != book_ver",
        tr_t, tr_r, p[S.S_BOOK], p[S.S_MID], _ORDERS, "aux", "work", "mparams", "fill_rng", fl_t, fl_r, "bk",
        "pq_t", "pq_r", "acct", "aclock", "pend_ctl", "pend_t", "pend_r", "log_t", "log_r", p[S.S_POSITION],
        p[S.S_PNL], "ver",
    ]  # fmt: skip
    guard = ["t", p[S.S_TIMER], _ORDERS, *_CANCEL_ARGS]
    return [
        f"{base}# -- paper broker: matching (trades, book, arrivals), accounting, exec streams",
        _wrap_call("on_batch", args, base),
        f"{base}# -- the live stale guard, when it wraps the broker (a no-op otherwise)",
        _wrap_call("guard_step", guard, base),
    ]


def _period(plan: Plan) -> int:
    clock = plan.spec.clock
    return clock.quote_every_ms * 1_000_000 if clock.quote_every_ms else 0


def fused_source(plan: Plan, broker: bool = False) -> str:
    """The Python source of the fused module for ``plan`` (what ``FusedEngine`` compiles);
    ``broker``: with the paper broker's kernels in the loop."""
    return _generate(plan, _Layout(plan), broker)


def _dispatch(lay: _Layout, base: str) -> list[str]:
    """Kind dispatch: each applier gets only the stream arrays it writes (events.APPLIERS)."""
    out: list[str] = []
    for kind, (fn, addrs) in E.APPLIERS.items():
        arrays = []
        for addr in addrs:
            a = lay.port[STREAM_INDEX[addr]]
            arrays += list(a) if isinstance(a, tuple) else [a]
        cond = "if" if not out else "elif"
        out.append(f"{base}{cond} kd == {kind}:  # {E.KIND_NAMES[kind]}")
        out.append(_wrap_call(fn.__name__, ["t", "payload", "o", "ver", *arrays], base + "    "))
    return out


def _header(plan: Plan, lay: _Layout, broker: bool) -> list[str]:
    period = _period(plan)
    if period:
        clock_kind = f"a cycle every {period} ns of event time (cycle = boundary // PERIOD)"
    else:
        clock_kind = "on_book: a cycle after every batch that ticked source.book or source.bbo"
    step_fns = "before_batch, guard_step, interrupt_step, minute_pnl, next_arrival, on_batch, reconcile_step"
    return [
        f'"""Fused engine of graph {plan.spec.name!r}: generated by flowmm.core.fused, do not edit.',
        "",
        f"Clock: {clock_kind}.",
        f"Schedule: {', '.join(n.name for n in plan.nodes) or '(no nodes)'}.",
        f"Execution: {'the paper broker (flowmm.execution.paper_step)' if broker else 'none'}.",
        "Semantics: docs/scheduling.md and docs/execution.md.",
        '"""',
        "",
        "import numpy as np",
        "from numba import njit",
        "",
        f"from flowmm.core.events import {', '.join(fn.__name__ for fn, _ in E.APPLIERS.values())}",
        "from flowmm.core.fused import enter_node",
        *([f"from flowmm.execution.paper_step import NO_ARRIVAL, {step_fns}"] if broker else []),
        *lay.imports,
        "",
        f"NEVER = {NEVER}  # last_run of a node that never ran",
        f"PERIOD = {period}  # ns between cycle boundaries; 0 = on_book clock",
        "ZERO = np.int64(0)",
        "# eng: the engine state vector (see flowmm.core.fused)",
        *(f"{name[2:]} = {i}" for i, name in enumerate(_ENG_NAMES)),
        f"ERR_RING = {ERR_RING}",
        f"RET_DONE, RET_ERROR, RET_YIELD = {RET_DONE}, {RET_ERROR}, {RET_YIELD}",
        "",
        "",
        "@njit(cache=True)",
        "def run(",
        lay.signature(
            (
                "t_arr",
                "kind",
                "off",
                "payload",
                "finish",
                "end_time",
                *_ENGINE_ARGS,
                *(BROKER_ARGS if broker else ()),
            )
        ),  # fmt: skip
        "):",
        '    """Process one chunk of events from eng[POS], then (``finish``) the broker arrivals and',
        "    the cycles up to ``end_time``. Returns RET_DONE; RET_ERROR with eng[ERR] set (Python",
        "    raises it); RET_YIELD when an output buffer is full (Python drains it and calls again).",
        '    """',
        "    n = t_arr.shape[0]",
        "    i = eng[POS]",
        "    t = eng[T]  # time of the batch applied last",
        "    book_ver = eng[BOOK_VER]",
        "    after_batch = eng[AFTER] != 0  # that batch's own cycle check is still due",
    ]


def _next_batch(broker: bool) -> list[str]:
    """Choose the next batch: the next events, or a broker arrival before them (a batch of its
    own). The choice is made before the cycles that precede that batch run, and holds until it
    is applied: an arrival those cycles send, however soon, waits for the batch after (the
    interpreter's order, which the goldens pin)."""
    b = " " * 12
    L = [
        f"{b}if eng[SEL] == 0:",
        f"{b}    if i < n:",
        f"{b}        eng[SEL], eng[SEL_T], eng[SEL_ARR] = 1, t_arr[i], 0",
    ]
    if broker:
        L += [
            f"{b}    ta = next_arrival(bk, pq_t)",
            f"{b}    if ta != NO_ARRIVAL and eng[FIN] == 0:",
            f"{b}        if (i < n and ta < t_arr[i]) or (i >= n and finish and ta <= end_time):",
            f"{b}            eng[SEL], eng[SEL_T], eng[SEL_ARR] = 1, ta, 1",
        ]
    L += [
        f"{b}    if eng[SEL] == 0 and finish:",
        f"{b}        eng[FIN] = 1  # finish: the arrivals up to end_time are done; the cycles left",
        f"{b}has_batch = eng[SEL] != 0",
        f"{b}tb = eng[SEL_T]",
        f"{b}arrival = eng[SEL_ARR] != 0",
    ]
    return L


def _yield_check(broker: bool) -> list[str]:
    room = ["eng[N_TRACE] >= tr_t.shape[0]", "eng[N_IRQ] >= irq_t.shape[0]"]
    if broker:
        room += ["bk[B_N_FILLS] + exec_fills_t.shape[0] > log_t.shape[0]", "bk[B_N_MIN] >= min_v.shape[0]"]
    return [
        "        # ==== room for a step's outputs, else hand back to Python (it drains, calls again)",
        "        if "
        + " or ".join(room[:2])
        + (" or (\n            " + " or ".join(room[2:]) + "\n        )" if broker else "")
        + ":",
        "            eng[POS], eng[T], eng[BOOK_VER], eng[AFTER] = i, t, book_ver, after_batch",
        "            return RET_YIELD",
    ]


def _generate(plan: Plan, lay: _Layout, broker: bool = False) -> str:
    period = _period(plan)
    b3, b4 = " " * 12, " " * 8  # cycle step / batch indent
    L = _header(plan, lay, broker)
    L += ["    while True:", *_yield_check(broker)]
    L += [
        "        # ==== is a quote cycle due now? (point 2)",
        "        due = False",
        "        now = t",
        "        cycle = ZERO",
        "        has_batch = False",
        "        tb = NEVER",
        "        arrival = False",
        "        if after_batch:",
        "            after_batch = False",
    ]
    if period:
        L += [
            "            if eng[NEXT] == t:  # a boundary equal to t runs after the batch",
            "                due = True",
            "        if not due:",
            *_next_batch(broker),
            "            if has_batch:",
            "                if eng[HAS_NEXT] == 0:",
            "                    eng[NEXT] = -(-tb // PERIOD) * PERIOD",
            "                    eng[HAS_NEXT] = 1",
            "                if eng[NEXT] < tb:  # boundaries strictly before a batch run before it",
            "                    due = True",
            "                    now = eng[NEXT]",
            "            elif finish and eng[HAS_NEXT] == 1 and eng[NEXT] <= end_time:",
            "                due = True  # finish: the cycles left up to end_time (inclusive)",
            "                now = eng[NEXT]",
            "        if due:",
            "            cycle = now // PERIOD",
        ]
    else:
        L += [
            f"            if ver[{S.S_BOOK}] + ver[{S.S_BBO}] != book_ver:  # the batch ticked the book",
            "                due = True",
            "                cycle = eng[N_CYCLES]",
            "        if not due:",
            *_next_batch(broker),
            "        if due:",
        ]
    L += [
        "            # ==== cycle step (point 4): tick source.clock, run eligible nodes, trace row",
        f"            {lay.port[S.S_CLOCK]}[0] = cycle",
        f"            ver[{S.S_CLOCK}] += 1",
    ]
    for n in plan.nodes:
        L += _node_block(plan, lay, n, b3, in_cycle=True)
    L += _interrupt(plan, lay, b3, broker)
    if broker:
        L += _broker_cycle(plan, lay, b3)
    L += [
        "",
        f"{b3}# -- trace row",
        f"{b3}k = eng[N_TRACE]",
        f"{b3}tr_t[k] = now",
        f"{b3}tr_cycle[k] = cycle",
    ]
    for c, col in enumerate(plan.trace):
        shape = PORT_TYPES[plan.ports[col.port].type].shape(plan.ports[col.port].size)
        L.append(f"{b3}tr_data[k, {c}] = {lay.port[col.port]}{_index(shape, col.index)}  # {col.name}")
    L += [f"{b3}eng[N_TRACE] = k + 1", f"{b3}eng[N_CYCLES] += 1"]
    if period:
        L.append(f"{b3}eng[NEXT] = now + PERIOD")
    L += [
        f"{b3}continue",
        "        if not has_batch:",
        "            eng[POS], eng[T], eng[BOOK_VER], eng[AFTER] = i, t, book_ver, False",
        "            return RET_DONE",
        "",
        "        # ==== the batch at tb: every event at that time, applied together (point 1)",
        "        eng[SEL] = 0",
        "        t = tb",
        f"        book_ver = ver[{S.S_BOOK}] + ver[{S.S_BBO}]",
    ]
    if broker:
        L += _broker_batch(lay, b4, before=True)
    L += [
        "        j = i",
        "        if not arrival:",
        "            j = i + 1",
        "            while j < n and t_arr[j] == t:",
        "                j += 1",
        "        for k in range(i, j):",
        "            o = off[k]",
        "            kd = kind[k]",
        *_dispatch(lay, " " * 12),
    ]
    if broker:
        L += [""] + _broker_batch(lay, b4, before=False)
    L += [
        "",
        "        # ==== event step (point 3): event-triggered nodes whose inputs ticked",
        "        now = t",
    ]
    for n in plan.nodes:
        if n.trigger == "event":
            L += _node_block(plan, lay, n, b4, in_cycle=False)
    L += _interrupt(plan, lay, b4, broker)
    L += ["        i = j", "        after_batch = True", ""]
    src = "\n".join(L)
    if broker:  # the broker's bk slots the yield check reads, as constants
        from flowmm.execution import paper_step as P

        src = src.replace("bk[B_N_FILLS]", f"bk[{P.B_N_FILLS}]").replace("bk[B_N_MIN]", f"bk[{P.B_N_MIN}]")
    return src


# -- the module file -------------------------------------------------------------------------
_LOADED: dict[Path, ModuleType] = {}


def cache_dir() -> Path:
    """Where generated modules (and numba's cache of them, in ``__pycache__``) live."""
    root = os.environ.get("FLOWMM_CACHE_DIR")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "flowmm"
    return base / "fused"


def _callee_modules(dispatchers: list) -> list[str]:
    """Modules of the kernels and of every njit function they call, transitively: numba's
    cache does not notice a changed callee (e.g. flowmm.execution.hyperliquid_rules)."""
    seen: set[int] = set()
    todo, mods = list(dispatchers), []
    while todo:
        d = todo.pop()
        if id(d) in seen:
            continue
        seen.add(id(d))
        py = kernel_py(d)
        mods.append(py.__module__)
        for name in py.__code__.co_names:
            g = py.__globals__.get(name)
            if isinstance(g, CPUDispatcher):
                todo.append(g)
    return sorted(set(mods))


def _module_source_hash(names: list[str]) -> bytes:
    """Source of every module the generated code calls into: numba's cache does not follow
    callees, so a kernel edit must change the file name to force a recompile."""
    h = hashlib.sha256()
    for name in sorted(set(names)):
        mod = sys.modules.get(name)
        if mod is None:  # not imported yet in this process: the name must not stand in for it
            try:
                mod = importlib.import_module(name)
            except ImportError:
                mod = None
        try:
            h.update(inspect.getsource(mod).encode() if mod is not None else name.encode())
        except (OSError, TypeError):
            h.update(name.encode())
    return h.digest()


def module_path(plan: Plan, source: str | None = None) -> Path:
    """The file the fused module of ``plan`` is written to."""
    source = fused_source(plan) if source is None else source
    h = hashlib.sha256(source.encode())
    kernel_mods = _callee_modules([n.cls.kernel for n in plan.nodes])
    h.update(_module_source_hash(kernel_mods + list(_CORE_MODULES)))
    for n in plan.nodes:  # also the kernels' bytecode: a module without source (a notebook) counts too
        code = kernel_py(n.cls.kernel).__code__
        h.update(code.co_code + repr(code.co_consts).encode() + repr(code.co_names).encode())
    h.update(f"{numba.__version__} {np.__version__} {sys.version_info[:2]} {GENERATOR_VERSION}".encode())
    name = re.sub(r"\W", "_", plan.spec.name)[:40]
    return cache_dir() / f"g_{name}_{h.hexdigest()[:20]}.py"


def _check_kernels(plan: Plan) -> None:
    for n in plan.nodes:
        py = kernel_py(n.cls.kernel)
        mod = sys.modules.get(py.__module__)
        if getattr(mod, py.__name__, None) is not n.cls.kernel:
            raise EngineError(
                f"kernel {py.__module__}.{py.__name__} of {n.type_name} cannot be imported by name",
                Location(plan.file, node=n.name),
                hint="define node kernels at module level in an importable module (see flowmm.core.node)",
            )


def load_module(plan: Plan, broker: bool = False) -> ModuleType:
    """Write (once, atomically) and import the fused module of ``plan``."""
    _check_kernels(plan)
    source = fused_source(plan, broker)
    path = module_path(plan, source)
    if path in _LOADED:
        return _LOADED[path]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != source:
            # tmp + rename: a concurrent process never imports half a file
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                f.write(source)
            os.replace(tmp, path)
    except OSError as exc:
        raise EngineError(
            f"cannot write the fused module to {path.parent}: {exc.strerror or exc}",
            Location(plan.file),
            hint="set FLOWMM_CACHE_DIR to a writable folder, or use backend='python'",
        ) from None
    modname = f"flowmm_fused_{path.stem}"
    spec = importlib.util.spec_from_file_location(modname, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    spec.loader.exec_module(module)
    _LOADED[path] = module
    return module


# -- the engine ------------------------------------------------------------------------------
class FusedTrace:
    """The trace of a fused run: one row per quote cycle, gathered chunk by chunk."""

    def __init__(self, plan: Plan):
        self.columns = [c.name for c in plan.trace]
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, t: np.ndarray, cycle: np.ndarray, data: np.ndarray) -> None:
        if len(t):
            self._parts.append((t.copy(), cycle.copy(), data.copy()))

    def __len__(self) -> int:
        return sum(len(p[0]) for p in self._parts)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self._parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, len(self.columns)))
        t, c, d = zip(*self._parts)
        return np.concatenate(t), np.concatenate(c), np.vstack(d)


class FusedEngine:
    """Runs a plan through its generated numba function, with the paper broker's kernels in
    the loop when given one (``flowmm.execution.paper.PaperBroker``)."""

    TRACE_ROWS = 1 << 16  # trace rows per call at most (the call yields, Python drains, resumes)
    IRQ_ROWS = 1 << 12

    def __init__(self, plan: Plan, broker: Any = None):
        self.plan = plan
        self.broker = broker
        self.bufs = plan.allocate()
        self.values = self.bufs.values
        self.ver = self.bufs.ver
        self.seen = self.bufs.seen
        self.states = self.bufs.states
        self.last_run = np.full(len(plan.nodes), NEVER, np.int64)
        self.period = _period(plan)
        self.last_t: int | None = None
        self.trace = FusedTrace(plan)
        self.interrupts: list[tuple[int, float]] = []
        if broker is not None:
            broker.bind(plan, self.values, self.ver)
        self.module = load_module(plan, broker is not None)
        self._run = self.module.run
        self._eng = np.zeros(N_ENG, np.int64)
        self._eng[E_T] = NEVER
        self._arrays = tuple(_Layout(plan, self.values, self.states).args)
        ncols = len(plan.trace)
        self._tr = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, ncols)))
        self._irq = (np.zeros(1, np.int64), np.zeros(1, np.float64))
        self._empty = EventTable.empty()
        self._first = True
        # compile (or load from numba's cache) now, before the first event: a live feed must not
        # go stale while numba compiles; an empty call changes no state
        self._call(self._empty, 1, False, 0)

    @property
    def n_cycles(self) -> int:
        return int(self._eng[E_N_CYCLES])

    def _kernel_labels(self) -> dict[Any, str]:
        """Each node kernel (and, with a broker, each paper-broker kernel) -> what it is."""
        labels: dict[Any, str] = {}
        for n in self.plan.nodes:
            name = f"{n.type_name} ({n.name})"
            labels[n.cls.kernel] = f"{labels[n.cls.kernel]}, {n.name}" if n.cls.kernel in labels else name
        if self.broker is not None:
            from flowmm.execution import paper_step as P

            for fn in (P.before_batch, P.on_batch, P.minute_pnl, P.reconcile_step, P.interrupt_step):
                labels[fn] = f"paper broker: {fn.__name__}"
        return labels

    # -- driving -----------------------------------------------------------------------------
    def process(self, table: EventTable) -> None:
        n = len(table)
        if not n:
            return
        t0, t1 = int(table.t[0]), int(table.t[-1])
        if self.last_t is not None and t0 <= self.last_t:
            raise EngineError(f"events out of order or a same-time batch split across chunks (t={t0})")
        if self.period:
            start = int(self._eng[E_NEXT]) if self._eng[E_HAS_NEXT] else -(-t0 // self.period) * self.period
            cycles = max(0, (t1 - start) // self.period + 1)
        else:
            cycles = n  # at most one cycle per batch
        self._call(table, cycles, False, 0)
        self.last_t = t1

    def finish(self, end_time: int | None) -> None:
        """Run the broker arrivals and the cycles left up to ``end_time`` (inclusive)."""
        if end_time is None:
            return
        if self.broker is None and (not self.period or not self._eng[E_HAS_NEXT]):
            return
        cycles = 1
        if self.period and self._eng[E_HAS_NEXT]:
            cycles = max(1, (int(end_time) - int(self._eng[E_NEXT])) // self.period + 1)
        self._call(self._empty, cycles, True, int(end_time))
        if self.broker is not None:
            self.broker.finish(int(end_time))

    def _call(self, table: EventTable, max_cycles: int, finish: bool, end_time: int) -> None:
        rows = max(1, min(max_cycles, self.TRACE_ROWS))
        if len(self._tr[0]) < rows:
            ncols = self._tr[2].shape[1]
            self._tr = (np.zeros(rows, np.int64), np.zeros(rows, np.int64), np.zeros((rows, ncols)))
        if self.plan.cancel_port is not None and len(self._irq[0]) < self.IRQ_ROWS:
            self._irq = (np.zeros(self.IRQ_ROWS, np.int64), np.zeros(self.IRQ_ROWS, np.float64))
        eng = self._eng
        eng[E_POS] = 0
        # contiguous int64/float64 views: one compiled specialisation for every chunk
        t = np.ascontiguousarray(table.t, np.int64)
        kind = np.ascontiguousarray(table.kind, np.int64)
        off = np.ascontiguousarray(table.off, np.int64)
        payload = np.ascontiguousarray(table.payload, np.float64)
        while True:
            eng[E_N_TRACE] = eng[E_N_IRQ] = 0
            extra = ()
            if self.broker is not None:
                self.broker.grow_logs(len(self.values[S.S_FILLS][0]), 1)
                extra = self.broker.kernel_args()
            args = (
                t, kind, off, payload, finish, end_time,
                eng, self.ver, self.seen, self.last_run, *self._irq, *self._tr, *extra, *self._arrays,
            )  # fmt: skip
            if self._first:  # numba compiles (or loads from its cache) at the first call
                self._first = False
                with compile_notice(self.plan.spec.name, self._kernel_labels(), self._run, str(cache_dir())):
                    ret = self._run(*args)
            else:
                ret = self._run(*args)
            k = int(eng[E_N_TRACE])
            self.trace.add(self._tr[0][:k], self._tr[1][:k], self._tr[2][:k])
            m = int(eng[E_N_IRQ])
            self.interrupts += [(int(a), float(b)) for a, b in zip(self._irq[0][:m], self._irq[1][:m])]
            if self.broker is not None:
                self.broker.check()
            if ret == RET_ERROR:
                self._raise()
            if ret == RET_DONE:
                return

    def _raise(self) -> None:
        eng = self._eng
        code = int(eng[E_ERR])
        if code != ERR_RING:  # a bug of this module, not of the graph
            raise RuntimeError(f"fused engine: internal error (code {code})")
        n = self.plan.nodes[int(eng[E_ERR_NODE])]
        b = n.inputs[int(eng[E_ERR_INPUT])]
        pt = PORT_TYPES[b.decl.type]
        cap = len(self.values[b.ports[0]][0])
        address = self.plan.ports[b.ports[0]].address
        raise EngineError(
            f"{n.name} fell {int(eng[E_ERR_BEHIND])} records behind on {address}, "
            f"more than the ring holds ({cap})",
            Location(self.plan.file, node=n.name, port=b.name),
            hint=f"raise buffers.{pt.name} in the graph file, or run {n.name} more often",
        )


__all__ = ["FusedEngine", "FusedTrace", "cache_dir", "fused_source", "load_module", "module_path"]
