"""Graph spec -> validated plan: a networkx DAG, a fixed schedule, all buffers as arrays.

Everything that can be wrong with a graph file is found here, all at once, each finding
located to its YAML line (``GraphError`` holds the list). The plan is computed once;
engines only index its arrays.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
from pydantic import ValidationError

from flowmm.core.discovery import load_plugin_dir
from flowmm.core.node import In, Node, closest_types, registry
from flowmm.core.ports import PORT_TYPES
from flowmm.core.spec import GraphSpec, NodeSpec, TierSpec
from flowmm.core.streams import STREAM_INDEX, STREAMS
from flowmm.core.yamlloc import Located, load_located, load_located_file
from flowmm.errors import Diagnostic, FlowmmError, GraphError

TRUTH = "source.truth"


@dataclass
class PortInfo:
    id: int
    address: str  # "node.port" or a stream address
    type: str
    size: int | None  # vec size
    producer: str | None  # node name; None for streams

    @property
    def batch(self) -> bool:
        return PORT_TYPES[self.type].batch


@dataclass
class InputBinding:
    name: str
    decl: In
    ports: list[int]  # one per source (variadic: several; unwired optional: none)
    slots: list[int]  # a "seen" slot per source: the version this consumer last read


@dataclass
class NodePlan:
    index: int  # position in the schedule
    name: str
    cls: type[Node]
    node: Node
    trigger: str
    tier: str
    every: int
    phase: int
    inputs: list[InputBinding]
    outputs: list[tuple[str, int]]  # (port name, port id), declaration order
    params: np.ndarray
    state: tuple[np.ndarray, ...]  # a plan-time instance (shapes); each run allocates its own
    gather: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # variadic buffers
    dummies: dict[str, Any] = field(default_factory=dict)  # unwired optional inputs

    @property
    def type_name(self) -> str:
        return self.cls.type_name


@dataclass
class TraceColumn:
    name: str
    port: int
    index: int  # flat index into the port's array


@dataclass
class Plan:
    spec: GraphSpec
    file: str | None
    graph: nx.DiGraph
    ports: list[PortInfo]
    nodes: list[NodePlan]  # in schedule order
    trace: list[TraceColumn]
    ladder_port: int | None
    cancel_port: int | None
    n_slots: int
    version_hash: str
    warnings: list[Diagnostic]
    port_ids: dict[str, int]
    missing_streams: dict[str, list[str]] = field(default_factory=dict)  # stream -> its readers

    def node(self, name: str) -> NodePlan:
        return next(n for n in self.nodes if n.name == name)

    def allocate(self) -> Buffers:
        """Fresh buffers, versions, cursors and node state for one run."""
        caps = self.spec.buffers
        values: list[Any] = []
        for p in self.ports:
            pt = PORT_TYPES[p.type]
            values.append(pt.allocate(p.size, getattr(caps, p.type, 0)) if p.batch else pt.allocate(p.size))
        return Buffers(
            values=values,
            ver=np.zeros(len(self.ports), np.int64),
            seen=np.zeros(self.n_slots, np.int64),
            states=[n.node.checked_state() for n in self.nodes],
        )


@dataclass
class Buffers:
    values: list[Any]  # value port: ndarray; batch port: (times, records)
    ver: np.ndarray  # per port: emissions so far (batch: records written)
    seen: np.ndarray  # per input slot: version when the consumer last ran
    states: list[tuple[np.ndarray, ...]]  # per node, in schedule order: its own state arrays


def load_plan(
    source: str | Path | dict,
    *,
    node_dirs: list[str | Path] = (),
    provides: set[str] | None = None,
    strict: bool = False,
    quote_every_ms: int | None = None,
) -> Plan:
    """Load, validate and plan a graph; raise ``GraphError`` with every finding.

    ``provides``: the streams the chosen source/execution layer write (None = any stream).
    ``strict``: warnings are errors too. ``quote_every_ms``: replaces the graph's ``clock:``
    (a faster or slower quote clock without editing the file; part of the version hash)."""
    if isinstance(source, dict):
        doc = Located(source, {}, None)
        base = Path.cwd()
    elif isinstance(source, Path) or (
        # a one-line string naming a file; YAML text has newlines (and may be too long to stat)
        "\n" not in source and (Path(source).suffix in (".yaml", ".yml") or Path(source).exists())
    ):
        doc = load_located_file(source)
        base = Path(source).resolve().parent
    else:
        doc = load_located(str(source), "<string>")
        base = Path.cwd()
    if quote_every_ms is not None and isinstance(doc.data, dict):  # a bad value: the spec's error
        doc.data = {**doc.data, "clock": {"quote_every_ms": quote_every_ms}}
    return _Builder(doc, base, list(node_dirs), provides, strict).build()


class _Builder:
    def __init__(self, doc: Located, base: Path, node_dirs: list, provides, strict: bool):
        self.doc = doc
        self.base = base
        self.node_dirs = node_dirs
        self.provides = provides
        self.strict = strict
        self.diags: list[Diagnostic] = list(doc.diagnostics)
        self.broken: set[Any] = set()  # nodes dropped for spec errors: references to them stay quiet
        self.spec: GraphSpec | None = None
        self.instances: dict[str, Node] = {}
        self.classes: dict[str, type[Node]] = {}  # every node of a known type
        self.missing: dict[str, list[str]] = {}  # stream the source lacks -> nodes reading it

    # -- reporting -------------------------------------------------------------------
    def err(self, msg: str, path: tuple, node: str | None = None, port: str | None = None, hint=None):
        self.diags.append(Diagnostic(msg, self.doc.loc(path, node, port), "error", hint))

    def warn(self, msg: str, path: tuple, node: str | None = None, port: str | None = None, hint=None):
        self.diags.append(Diagnostic(msg, self.doc.loc(path, node, port), "warning", hint))

    def fail_if_errors(self):
        # in file order: the report reads top to bottom like the file
        self.diags.sort(key=lambda d: (d.location.line or 0, d.location.col or 0))
        if self.strict:
            self.diags = [Diagnostic(d.message, d.location, "error", d.hint) for d in self.diags]
        if any(d.severity == "error" for d in self.diags):
            raise GraphError(self.diags)

    # -- build -----------------------------------------------------------------------
    def build(self) -> Plan:
        data = self.doc.data
        if not isinstance(data, dict):
            self.err("a graph file is a mapping with at least name, clock and nodes", ())
            self.fail_if_errors()
        spec = self.spec = self._spec(data)
        self._plugins(spec)
        reg = registry()
        self._include_params(spec, reg)
        instances: dict[str, Node] = self.instances
        for name, ns in spec.nodes.items():
            node = self._node(name, ns, reg, spec.tiers)
            if node is not None:
                instances[name] = node
        ports, port_ids = self._ports(spec, instances)
        graph, wiring = self._wire(spec, self.classes, ports, port_ids)
        ladder_port = self._exec_ref(
            spec.execution.ladder, ("execution", "ladder"), "ladder", port_ids, ports
        )
        cancel_port = self._exec_ref(spec.execution.cancel, ("execution", "cancel"), "f64", port_ids, ports)
        trace = self._trace(spec, ports, port_ids, instances)
        self._cycles(graph)
        self._unconsumed(spec, instances, graph, trace, ladder_port, cancel_port, port_ids)
        self.fail_if_errors()
        return self._plan(spec, instances, ports, port_ids, graph, wiring, trace, ladder_port, cancel_port)

    def _spec(self, data: dict) -> GraphSpec:
        """Validate the graph-level keys. On errors, report them all and carry on with a
        repaired copy (bad keys reset to defaults, broken nodes dropped), so that the
        checks of every other node still run and one pass reports everything."""
        if not data and not self.doc.diagnostics:
            self.err("the graph file is empty", (), hint="a graph needs at least name, clock and nodes")
            self.fail_if_errors()
        try:
            return GraphSpec.model_validate(data)
        except ValidationError as exc:
            errors = _pydantic_errors(exc, data)
        nodes = dict(data["nodes"]) if isinstance(data.get("nodes"), dict) else {}
        repaired = dict(data)
        for path, kind, msg in errors:
            node = path[1] if len(path) > 1 and path[0] == "nodes" else None
            if kind == "extra_forbidden":
                self.err(f"unknown key {path[-1]!r}", path, node, hint=_allowed_keys_hint(path))
            else:
                what = ".".join(str(x) for x in path) or "graph"
                self.err(f"{what}: {msg}", path + ("<value>",), node)
            if node is not None:
                self.broken.add(node)
                nodes.pop(node, None)
            elif path == ("nodes",):  # bad node names (or not a mapping at all)
                for name in list(nodes):
                    if not isinstance(name, str) or not name.isidentifier() or name in ("source", "exec"):
                        self.broken.add(name)
                        nodes.pop(name)
            elif path:
                repaired.pop(path[0], None)  # back to its default
        repaired["nodes"] = nodes
        repaired.setdefault("name", "<invalid>")
        repaired.setdefault("clock", {"on_book": True})
        try:
            return GraphSpec.model_validate(repaired)
        except ValidationError:  # not repairable: report what was found
            self.fail_if_errors()
            raise

    def _plugins(self, spec: GraphSpec):
        for d in self.node_dirs:
            load_plugin_dir(d)
        for i, d in enumerate(spec.plugins):
            path = Path(d) if Path(d).is_absolute() else self.base / d
            try:
                load_plugin_dir(path, self.doc.loc(("plugins", i)))
            except FlowmmError as exc:  # keep going: report it with the other findings
                self.diags.append(Diagnostic(exc.message, exc.location, "error", exc.hint))

    def _include_params(self, spec: GraphSpec, reg: dict) -> None:
        """Merge the ``params_from:`` files into the nodes' params. A file holds
        ``params: {node: {param: value}}`` and optionally a free-form ``calibration:`` record.
        An unknown node or param, a bad value, or a param also set in the graph (or in an
        earlier file) is an error at its line in the params file, and is not merged."""
        refs = [spec.params_from] if isinstance(spec.params_from, str) else spec.params_from or []
        for i, ref in enumerate(refs):
            where = ("params_from",) if isinstance(spec.params_from, str) else ("params_from", i)
            path = Path(ref) if Path(ref).is_absolute() else self.base / ref
            if not path.is_file():
                self.err(
                    f"params file not found: {path}",
                    where + ("<value>",),
                    hint="paths are relative to the graph file",
                )
                continue
            try:
                doc = load_located_file(path)
            except GraphError as exc:
                self.diags.extend(exc.diagnostics)
                continue
            self.diags.extend(doc.diagnostics)
            data = doc.data if isinstance(doc.data, dict) else None
            if data is None or not isinstance(data.get("params"), dict):
                self.diags.append(
                    Diagnostic(
                        "a params file is a mapping with `params: {node: {param: value}}`", doc.loc(())
                    )
                )
                continue
            for key in data:
                if key not in ("params", "calibration"):
                    self.diags.append(
                        Diagnostic(
                            f"unknown key {key!r} in params file",
                            doc.loc((key,)),
                            hint="allowed keys: params, calibration",
                        )
                    )
            for name, values in data["params"].items():
                self._merge_params(spec, reg, doc, name, values)

    def _merge_params(self, spec: GraphSpec, reg: dict, doc: Located, name: Any, values: Any) -> None:
        ns = spec.nodes.get(name)
        if ns is None:
            close = difflib.get_close_matches(str(name), list(spec.nodes), n=3)
            self.diags.append(
                Diagnostic(
                    f"params file sets node {name!r}, which the graph does not have",
                    doc.loc(("params", name)),
                    hint=(f"did you mean {', '.join(close)}? " if close else "")
                    + "remove it from the params file, or add the node to the graph",
                )
            )
            return
        if not isinstance(values, dict):
            self.diags.append(
                Diagnostic("node params must be a mapping", doc.loc(("params", name, "<value>")))
            )
            return
        cls = reg.get(ns.type)
        fields = cls.Params.model_fields if cls is not None else {}
        good = {}
        for key, value in values.items():
            loc = doc.loc(("params", name, key), node=name)
            if cls is not None and key not in fields:
                self.diags.append(
                    Diagnostic(
                        f"unknown param {key!r} for {ns.type}",
                        loc,
                        hint=f"{ns.type} takes: {', '.join(fields)}",
                    )
                )
            elif key in ns.params:
                self.diags.append(
                    Diagnostic(
                        f"param {key!r} is set both in the graph and in the params file",
                        loc,
                        hint="set it in one place: delete it from the graph's node, or from the params file",
                    )
                )
            else:
                good[key] = value
        if cls is not None and good:
            try:
                cls.Params.model_validate({**ns.params, **good})
            except ValidationError as exc:
                for e in exc.errors():
                    key = e["loc"][0] if e["loc"] else None
                    if key in good:
                        loc = doc.loc(("params", name, key, "<value>"), node=name)
                        self.diags.append(Diagnostic(f"param {key!r}: {_readable(e)}", loc))
                        good.pop(key)
        ns.params.update(good)

    def _node(self, name: str, ns: NodeSpec, reg: dict, tiers: dict[str, TierSpec]) -> Node | None:
        path = ("nodes", name)
        cls = reg.get(ns.type)
        if cls is None:
            close = closest_types(ns.type)
            self.err(
                f"unknown node type {ns.type!r}",
                path + ("type", "<value>"),
                name,
                hint=(f"did you mean {', '.join(close)}? " if close else "")
                + "`flowmm nodes` lists all types",
            )
            return None
        self.classes[name] = cls  # its inputs are checked even if its params are not valid
        tier = ns.tier or cls.tier
        trigger = ns.trigger or cls.trigger
        if ns.tier is not None and trigger == "event":
            self.err(
                f"tier {ns.tier!r} set on an event-triggered node",
                path + ("tier", "<value>"),
                name,
                hint="tiers count quote cycles; set trigger: cycle, or drop tier",
            )
        if tier not in tiers:
            self.err(
                f"unknown tier {tier!r}",
                path + ("tier", "<value>"),
                name,
                hint=f"tiers of this graph: {', '.join(tiers)}",
            )
        try:
            params = cls.Params.model_validate(ns.params)
        except ValidationError as exc:
            for e in exc.errors():
                ppath = path + ("params",) + tuple(e["loc"][:1])
                key = e["loc"][0] if e["loc"] else None
                if e["type"] == "extra_forbidden":
                    fields = list(cls.Params.model_fields)
                    self.err(
                        f"unknown param {key!r} for {ns.type}",
                        ppath,
                        name,
                        hint=f"{ns.type} takes: {', '.join(fields) or 'no params'}",
                    )
                else:
                    msg = _readable(e)
                    self.err(f"param {key!r}: {msg}" if key else msg, ppath + ("<value>",), name)
            return None
        node = cls(params)
        node._spec_tier, node._spec_trigger = tier, trigger  # type: ignore[attr-defined]
        return node

    def _ports(self, spec: GraphSpec, instances: dict[str, Node]):
        ports: list[PortInfo] = []
        for s in STREAMS:
            ports.append(PortInfo(len(ports), s.address, s.type, s.size, None))
        for name, node in instances.items():
            for port, decl in node.outputs.items():
                ports.append(PortInfo(len(ports), f"{name}.{port}", decl.type, node.output_size(port), name))
        return ports, {p.address: p.id for p in ports}

    def _resolve(self, ref: Any, path: tuple, consumer: str, port: str, ports, port_ids, spec) -> int | None:
        """A ``node.port`` or stream reference -> port id, or an error at ``path``."""
        if not isinstance(ref, str) or "." not in ref:
            self.err(f"input {port!r}: expected 'node.port', got {ref!r}", path, consumer, port)
            return None
        if ref in port_ids:
            if ref == TRUTH and not spec.nodes[consumer].diagnostic:
                self.err(
                    f"{consumer} reads {TRUTH} (the synthetic market's ground truth)",
                    path,
                    consumer,
                    port,
                    hint="only a node marked `diagnostic: true` may read it; a strategy must not",
                )
            if ref in STREAM_INDEX and self.provides is not None and ref not in self.provides:
                # the same graph runs on sources with fewer streams (a book-only archive hour):
                # the input never ticks, the node stays silent on it (--strict: an error)
                self.missing.setdefault(ref, []).append(consumer)
                self.warn(
                    f"input {port!r}: stream {ref} is not provided by the chosen source/execution; "
                    "it never ticks",
                    path,
                    consumer,
                    port,
                    hint=f"provided: {', '.join(sorted(self.provides))}",
                )
            return port_ids[ref]
        owner, _, out = ref.partition(".")
        if self._dropped(owner):
            return None  # its own error is reported already
        if owner in ("source", "exec"):
            streams = [s.address for s in STREAMS if s.address.startswith(owner + ".")]
            self.err(f"unknown stream {ref!r}", path, consumer, port, hint=f"streams: {', '.join(streams)}")
        elif owner not in spec.nodes:
            import difflib

            close = difflib.get_close_matches(owner, list(spec.nodes), n=1)
            self.err(
                f"input {port!r} reads unknown node {owner!r}",
                path,
                consumer,
                port,
                hint=f"did you mean {close[0]!r}?" if close else "define it under nodes:",
            )
        elif owner in self._known_outputs(spec):
            outs = self._known_outputs(spec)[owner]
            self.err(
                f"input {port!r}: node {owner!r} has no output {out!r}",
                path,
                consumer,
                port,
                hint=f"{owner} outputs: {', '.join(outs)}",
            )
        return None

    def _dropped(self, owner: str) -> bool:
        """A node that exists in the file but failed its own checks (not re-reported)."""
        return owner in self.broken or (
            self.spec is not None and owner in self.spec.nodes and owner not in self.instances
        )

    def _known_outputs(self, spec: GraphSpec) -> dict[str, list[str]]:
        reg = registry()
        return {n: list(reg[s.type].outputs) for n, s in spec.nodes.items() if s.type in reg}

    def _wire(self, spec: GraphSpec, instances, ports, port_ids):
        graph = nx.DiGraph()
        wiring: dict[str, dict[str, list[int]]] = {}
        for name in spec.nodes:
            graph.add_node(name)
        for name, node in instances.items():
            ns = spec.nodes[name]
            wiring[name] = {}
            for port in ns.in_:
                if port not in node.inputs:
                    self.err(
                        f"{ns.type} has no input {port!r}",
                        ("nodes", name, "in", port),
                        name,
                        port,
                        hint=f"inputs: {', '.join(node.inputs) or 'none'}",
                    )
            for port, decl in node.inputs.items():
                ipath = ("nodes", name, "in", port)
                if port not in ns.in_:
                    if not decl.optional:
                        self.err(
                            f"missing required input {port!r} ({decl.type}{'[]' if decl.variadic else ''})",
                            ("nodes", name, "in")
                            if "in_" in spec.nodes[name].model_fields_set
                            else ("nodes", name),
                            name,
                            port,
                            hint=f"wire it: in: {{{port}: <node>.<port>}}",
                        )
                    wiring[name][port] = []
                    continue
                refs = ns.in_[port]
                if isinstance(refs, list):
                    if not decl.variadic:
                        self.err(
                            f"input {port!r} takes one source, got a list of {len(refs)}",
                            ipath + ("<value>",),
                            name,
                            port,
                        )
                        refs = refs[:1]
                    paths = [ipath + (i,) for i in range(len(refs))]
                else:
                    refs, paths = [refs], [ipath + ("<value>",)]
                ids = []
                for ref, rpath in zip(refs, paths):
                    pid = self._resolve(ref, rpath, name, port, ports, port_ids, spec)
                    if pid is None:
                        continue
                    src = ports[pid]
                    if src.type != decl.type:
                        self.err(
                            f"type mismatch: {src.address} is {src.type}, "
                            f"but {name}.{port} ({ns.type}) takes {decl.type}",
                            rpath,
                            name,
                            port,
                        )
                        continue
                    ids.append(pid)
                    if src.producer is not None:
                        graph.add_edge(src.producer, name, port=port, type=src.type)
                wiring[name][port] = ids
        return graph, wiring

    def _exec_ref(self, ref, path, want: str, port_ids, ports) -> int | None:
        if ref is None:
            return None
        if ref not in port_ids or ref in STREAM_INDEX:
            if self._dropped(ref.partition(".")[0]):
                return None
            self.err(f"execution: {ref!r} is not a node output", path + ("<value>",))
            return None
        p = ports[port_ids[ref]]
        if p.type != want:
            self.err(f"execution.{path[-1]}: {ref} is {p.type}, needs {want}", path + ("<value>",))
            return None
        return p.id

    def _trace(self, spec, ports, port_ids, instances) -> list[TraceColumn]:
        cols: list[TraceColumn] = []
        if spec.trace == "all":
            chosen = [p for p in ports if p.producer in instances]
        else:
            chosen = []
            for i, ref in enumerate(spec.trace):
                if ref not in port_ids:
                    if not self._dropped(ref.partition(".")[0]):
                        self.err(f"trace: unknown output {ref!r}", ("trace", i))
                    continue
                p = ports[port_ids[ref]]
                if not PORT_TYPES[p.type].scalar_columns(p.size):
                    self.err(f"trace: {p.address} is {p.type}, not a scalar type", ("trace", i))
                chosen.append(p)
        for p in chosen:
            suffixes = PORT_TYPES[p.type].scalar_columns(p.size)
            for i, suf in enumerate(suffixes):
                cols.append(TraceColumn(p.address + suf, p.id, i))
        return cols

    def _cycles(self, graph: nx.DiGraph):
        try:
            cycle = nx.find_cycle(graph)
        except nx.NetworkXNoCycle:
            return
        names = [u for u, _ in cycle] + [cycle[0][0]]
        first = cycle[0][1]
        self.err(
            "cycle in the graph: " + " -> ".join(names),
            ("nodes", first, "in"),
            first,
            hint="a node cannot depend on its own output; break the loop (e.g. feed back a lagged value)",
        )

    def _unconsumed(self, spec, instances, graph, trace, ladder_port, cancel_port, port_ids):
        traced = {c.port for c in trace}
        consumed = set()
        raw = self.doc.data.get("nodes")  # every node's inputs, those dropped for errors included
        for ns in raw.values() if isinstance(raw, dict) else ():
            ins = ns.get("in") if isinstance(ns, dict) else None
            for refs in ins.values() if isinstance(ins, dict) else ():
                for r in refs if isinstance(refs, list) else [refs]:
                    if isinstance(r, str):
                        consumed.add(r)
        for name, node in instances.items():
            unused = spec.nodes[name].unused
            for i, port in enumerate(unused):
                if port not in node.outputs:
                    self.err(
                        f"unused: {name} has no output {port!r}",
                        ("nodes", name, "unused", i),
                        name,
                        hint=f"{spec.nodes[name].type} outputs: {', '.join(node.outputs)}",
                    )
            for port in node.outputs:
                addr = f"{name}.{port}"
                pid = port_ids[addr]
                if addr in consumed or pid in traced or pid in (ladder_port, cancel_port) or port in unused:
                    continue
                self.warn(
                    f"output {addr} is neither consumed nor traced",
                    ("nodes", name),
                    name,
                    port,
                    hint="wire it, trace it, list it in the node's unused:, or remove the node "
                    "(--strict makes this an error)",
                )

    def _plan(self, spec, instances, ports, port_ids, graph, wiring, trace, ladder_port, cancel_port) -> Plan:
        tiers = spec.tiers
        order = [n for gen in nx.topological_generations(graph) for n in sorted(gen)]
        nodes: list[NodePlan] = []
        slot = 0
        for name in order:
            node = instances[name]
            tier = node._spec_tier
            bindings = []
            for port, decl in node.inputs.items():
                ids = wiring[name][port]
                bindings.append(InputBinding(port, decl, ids, list(range(slot, slot + len(ids)))))
                slot += len(ids)
            np_ = NodePlan(
                index=len(nodes),
                name=name,
                cls=type(node),
                node=node,
                trigger=node._spec_trigger,
                tier=tier,
                every=tiers[tier].every,
                phase=tiers[tier].phase,
                inputs=bindings,
                outputs=[(p, port_ids[f"{name}.{p}"]) for p in node.outputs],
                params=node.pack_params(),
                state=node.checked_state(),
            )
            for b in bindings:
                pt = PORT_TYPES[b.decl.type]
                if b.decl.variadic:
                    shape = ports[b.ports[0]].size if b.ports else 1
                    base = pt.shape(shape) if pt.name == "vec" else pt.shape()
                    np_.gather[b.name] = (
                        np.full((len(b.ports),) + base, np.nan),
                        np.zeros(len(b.ports), np.bool_),
                    )
                elif not b.ports:
                    cap = getattr(spec.buffers, pt.name, 1) if pt.batch else 0
                    np_.dummies[b.name] = pt.allocate(1, max(cap, 1)) if pt.batch else pt.allocate(1)
            nodes.append(np_)
        return Plan(
            spec=spec,
            file=self.doc.file,
            graph=graph,
            ports=ports,
            nodes=nodes,
            trace=trace,
            ladder_port=ladder_port,
            cancel_port=cancel_port,
            n_slots=slot,
            version_hash=_version_hash(spec, instances),
            warnings=[d for d in self.diags if d.severity == "warning"],
            port_ids=port_ids,
            missing_streams=self.missing,
        )


def _readable(e: dict) -> str:
    """pydantic's message without its 'Value error, ' prefix, with the offending input."""
    msg = e["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if e["type"] not in ("missing", "extra_forbidden") and not isinstance(e.get("input"), (dict, list)):
        msg += f" (got {e.get('input')!r})"
    return msg


def _pydantic_errors(exc: ValidationError, data: Any) -> list[tuple[tuple, str, str]]:
    """pydantic's errors as (path in the YAML document, error type, readable message).

    A union (``int | TierSpec``, ``str | list[str]``) puts branch tags such as ``'int'`` in
    ``loc`` and reports one error per branch. Tags are dropped (they are not in the data);
    when a branch got past the type check (its error lies deeper), only that branch's errors
    are kept, otherwise the alternatives are joined into one message."""
    found: list[tuple[tuple, tuple | None, dict]] = []
    for e in exc.errors():
        path: list[Any] = []
        union_at: tuple | None = None
        cur = data
        for i, x in enumerate(e["loc"]):
            last = i == len(e["loc"]) - 1
            if isinstance(cur, dict) and (x in cur or (last and e["type"] == "missing")):
                path.append(x)
                cur = cur.get(x)
            elif isinstance(cur, list) and isinstance(x, int) and 0 <= x < len(cur):
                path.append(x)
                cur = cur[x]
            elif union_at is None:
                union_at = tuple(path)
        found.append((tuple(path), union_at, e))
    out: list[tuple[tuple, str, str]] = []
    done: set[tuple] = set()
    for path, union_at, e in found:
        if union_at is None:
            out.append((path, e["type"], _readable(e)))
            continue
        if union_at in done:
            continue
        done.add(union_at)
        group = [(p, err) for p, u, err in found if u == union_at]
        deep = [(p, err) for p, err in group if len(p) > len(union_at)]
        if deep:
            out.extend((p, err["type"], _readable(err)) for p, err in deep)
        else:
            msgs = list(dict.fromkeys(err["msg"] for _, err in group))
            joined = dict(group[0][1], msg=" or ".join(msgs))
            out.append((union_at, group[0][1]["type"], _readable(joined)))
    return out


def _allowed_keys_hint(path: tuple) -> str | None:
    from flowmm.core import spec as S

    models = {
        (): S.GraphSpec,
        ("instrument",): S.InstrumentSpec,
        ("clock",): S.ClockSpec,
        ("execution",): S.ExecutionSpec,
        ("buffers",): S.BuffersSpec,
    }
    parent = path[:-1]
    if len(parent) == 2 and parent[0] == "nodes":
        model = S.NodeSpec
        keys = ["type", "in", "params", "tier", "trigger", "diagnostic", "doc"]
        return f"node keys: {', '.join(keys)}"
    model = models.get(parent)
    if model is None:
        return None
    return f"allowed keys: {', '.join(f.alias or k for k, f in model.model_fields.items())}"


def _version_hash(spec: GraphSpec, instances: dict[str, Node]) -> str:
    """sha256 over the spec (params resolved with defaults) and every used kernel's module source."""
    h = hashlib.sha256()
    doc = spec.model_dump(mode="json", by_alias=True)
    if doc.get("params_from") is None:  # a graph without the key keeps the hash it had before it existed
        doc.pop("params_from", None)
    for name, node in instances.items():
        doc["nodes"][name]["params"] = node.params.model_dump(mode="json")
    h.update(json.dumps(doc, sort_keys=True).encode())
    for mod in sorted({type(n).__module__ for n in instances.values()}):
        cls = next(type(n) for n in instances.values() if type(n).__module__ == mod)
        try:
            h.update(inspect.getsource(inspect.getmodule(cls)).encode())
        except (OSError, TypeError):
            h.update(mod.encode())
    return h.hexdigest()[:16]
