"""Draw a planned graph with Graphviz: ``to_dot`` builds the drawing, ``render`` writes it.

What the drawing shows:

* clusters: ``sources`` (the ``source.*`` streams the graph reads), one cluster per node-type
  group (``features``, ``estimators``, ``quoting``, ``basic``, ... from ``type_name``), and
  ``execution`` (the ``exec.*`` streams read, plus a sink per ``execution.ladder`` /
  ``execution.cancel``);
* nodes: name (bold), type, trigger/tier, and up to four ``key=value`` params, those that differ
  from the type's default first (defaults in grey); filled with the tier's colour; an
  event-triggered node is white with a thick purple double border (its tier does not apply); a
  ``diagnostic: true`` node is dashed;
* edges: one per wired input source, labelled ``out_port -> in_port : type`` (``in_port[i]`` for
  a variadic input); batch ports (trades/fills/markouts/actions) bold; the cancel interrupt dashed
  red;
* a legend, and a graph label with the name, version hash and clock.

``upstream`` / ``downstream`` restrict the drawing to a node and its ancestors / descendants
(the union when both are given); streams read by the kept nodes stay in.
"""

from __future__ import annotations

import difflib
import html
import math
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import graphviz
import networkx as nx
from pydantic_core import PydanticUndefined

from flowmm.core.plan import NodePlan, Plan, PortInfo
from flowmm.core.ports import PORT_TYPES
from flowmm.errors import FlowmmError, Location

FORMATS = ("svg", "png", "dot")
GROUP_ORDER = ("features", "estimators", "quoting", "basic")
MAX_PARAM_LINES = 4

FONT = "Helvetica"
TIER_COLOURS = {"hot": "#f6b09a", "warm": "#fde4a4", "cold": "#b9d6f2"}
EXTRA_COLOURS = ("#c5e5c2", "#e3c8ea", "#d9cfc8", "#b5e0db", "#eef2b8", "#f3c6da")
EVENT_BORDER = "#6a3d9a"
STREAM_FILL = "#eeeeee"
SINK_FILL = "#d8d8d8"
INTERRUPT_COLOUR = "#d62728"
DEFAULT_GREY = "#7a7a7a"

INSTALL_HINT = (
    "install Graphviz: `apt-get install graphviz` on Debian/Ubuntu, `brew install graphviz` on macOS; "
    "or use --format dot"
)


class GraphvizMissing(FlowmmError):
    """The Graphviz ``dot`` program is not installed; the ``.dot`` source was written instead."""

    exit_code = 1


# -- public API --------------------------------------------------------------------------------


def to_dot(plan: Plan, *, upstream: str | None = None, downstream: str | None = None) -> graphviz.Digraph:
    """Build the Graphviz drawing of ``plan`` (see the module docstring for what it shows).

    ``upstream``: keep only that node and its ancestors; ``downstream``: that node and its
    descendants (and an execution sink its outputs reach). Both: the union. An unknown node name
    raises ``FlowmmError`` listing the closest names."""
    kept, sink_producers = _select(plan, upstream, downstream)
    dot = graphviz.Digraph(name=plan.spec.name, strict=False)
    dot.attr(
        "graph",
        rankdir="LR",
        fontname=FONT,
        label=_graph_label(plan, upstream, downstream),
        labelloc="t",
        fontsize="16",
        nodesep="0.25",
        ranksep="0.6",
        newrank="true",
    )
    dot.attr("node", fontname=FONT, fontsize="11", shape="box", style="rounded,filled", margin="0.12,0.06")
    dot.attr("edge", fontname=FONT, fontsize="9", color="#555555", arrowsize="0.7")

    nodes = [n for n in plan.nodes if n.name in kept]
    colours = tier_colours(plan)
    read = _streams_read(plan, nodes)

    sources = [p for p in read if p.address.startswith("source.")]
    if sources:
        with dot.subgraph(name="cluster_sources") as c:
            _cluster_style(c, "sources")
            for p in sources:
                _stream_node(c, p)

    for group, members in _groups(nodes):
        with dot.subgraph(name=f"cluster_group_{group}") as c:
            _cluster_style(c, group)
            for n in members:
                _plan_node(c, plan, n, colours)

    execs = [p for p in read if not p.address.startswith("source.")]
    sinks = _sinks(plan, sink_producers)
    if execs or sinks:
        with dot.subgraph(name="cluster_execution") as c:
            _cluster_style(c, "execution")
            for p in execs:
                _stream_node(c, p)
            for sink_id, label, _port, _interrupt in sinks:
                c.node(sink_id, label=label, shape="box", style="filled", fillcolor=SINK_FILL, penwidth="1.5")

    for n in nodes:
        _input_edges(dot, plan, n, kept)
    for sink_id, _label, port, interrupt in sinks:
        p = plan.ports[port]
        short = p.address.split(".", 1)[1]
        attrs: dict[str, str] = {"label": graphviz.nohtml(f"{short} : {p.type}")}
        if interrupt:
            attrs = {
                "label": graphviz.nohtml(f"interrupt\\n{short} : {p.type}"),
                "style": "dashed",
                "color": INTERRUPT_COLOUR,
                "fontcolor": INTERRUPT_COLOUR,
                "penwidth": "1.6",
            }
        dot.edge(p.producer, sink_id, **attrs)

    _legend(dot, plan, colours)
    return dot


def render(
    plan: Plan,
    out: str | Path,
    *,
    fmt: str = "svg",
    upstream: str | None = None,
    downstream: str | None = None,
) -> Path:
    """Write the drawing of ``plan`` to ``out`` and return the path written.

    ``fmt``: ``svg``, ``png`` or ``dot`` (the DOT source only; needs no Graphviz binary).
    Suffix rule: if ``out`` already ends in ``.{fmt}`` it is used as is; if it ends in another of
    ``.svg``/``.png``/``.dot`` that suffix is replaced by ``.{fmt}``; otherwise ``.{fmt}`` is
    appended (``graph`` -> ``graph.svg``, ``graph.png`` with fmt svg -> ``graph.svg``,
    ``graph.v2`` -> ``graph.v2.svg``). Missing parent folders are created.

    If the Graphviz ``dot`` program is missing, the DOT source is written next to the requested
    output (same name, suffix ``.dot``) and ``GraphvizMissing`` is raised naming that file."""
    if fmt not in FORMATS:
        raise FlowmmError(f"unknown render format {fmt!r}", hint=f"formats: {', '.join(FORMATS)}")
    path = output_path(out, fmt)
    dot = to_dot(plan, upstream=upstream, downstream=downstream)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "dot":
        path.write_text(dot.source)
        return path
    if shutil.which("dot") is None:
        _missing(dot, path)
    try:
        data = dot.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        _missing(dot, path)
    except graphviz.CalledProcessError as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr
        raise FlowmmError(
            f"Graphviz failed to render {path}: {(stderr or '').strip() or exc}",
            Location(file=plan.file),
            hint="render with --format dot to inspect the DOT source",
        ) from None
    path.write_bytes(data)
    return path


def output_path(out: str | Path, fmt: str) -> Path:
    """The file ``render`` writes for ``out`` and ``fmt`` (see ``render`` for the suffix rule)."""
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix == f".{fmt}":
        return path
    if suffix in {f".{f}" for f in FORMATS}:
        return path.with_suffix(f".{fmt}")
    return path.with_name(f"{path.name}.{fmt}")


def tier_colours(plan: Plan) -> dict[str, str]:
    """Fill colour per tier of the graph: hot/warm/cold fixed, other tiers from a small palette."""
    colours: dict[str, str] = {}
    extra = iter(EXTRA_COLOURS)
    for name in plan.spec.tiers:
        colours[name] = TIER_COLOURS.get(name) or next(extra, "#ffffff")
    return colours


def format_value(v: Any) -> str:
    """Compact text of a param value: ``300`` not ``300.0``, 4 significant digits, short lists."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        text = f"{v:.4g}"
        if "e" in text:  # 1e-05 -> 1e-5
            mant, _, exp = text.partition("e")
            text = f"{mant}e{int(exp)}"
        return text
    if isinstance(v, (list, tuple)):
        items = [format_value(x) for x in v[:4]]
        return "[" + ", ".join(items) + (", …" if len(v) > 4 else "") + "]"
    text = str(v)
    return text if len(text) <= 24 else text[:23] + "…"


def key_params(n: NodePlan) -> list[tuple[str, str, bool]]:
    """``(key, value text, is_default)`` of a node's params: non-default ones first, then defaults."""
    params = n.node.params
    changed, default = [], []
    for key, field in type(params).model_fields.items():
        value = getattr(params, key)
        if field.default is PydanticUndefined and field.default_factory is None:
            is_default = False  # a required param is always worth showing
        else:
            is_default = value == field.get_default(call_default_factory=True)
        (default if is_default else changed).append((key, format_value(value), is_default))
    return changed + default


# -- selection ---------------------------------------------------------------------------------


def _select(plan: Plan, upstream: str | None, downstream: str | None) -> tuple[set[str], set[str]]:
    """Node names to draw, and the producers whose execution sinks are drawn."""
    names = [n.name for n in plan.nodes]
    if upstream is None and downstream is None:
        return set(names), set(names)
    kept: set[str] = set()
    sinks: set[str] = set()
    if upstream is not None:
        _check_node(plan, upstream, "--upstream")
        kept |= {upstream} | set(nx.ancestors(plan.graph, upstream))
    if downstream is not None:
        _check_node(plan, downstream, "--downstream")
        down = {downstream} | set(nx.descendants(plan.graph, downstream))
        kept |= down
        sinks = down  # a sink is downstream of its producer, never upstream of anything
    return kept, sinks


def _check_node(plan: Plan, name: str, option: str) -> None:
    names = [n.name for n in plan.nodes]
    if name in names:
        return
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    if close:
        hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
    else:
        shown = sorted(names)
        hint = "nodes of this graph: " + ", ".join(shown[:20]) + (", …" if len(shown) > 20 else "")
    raise FlowmmError(
        f"{option}: no node named {name!r} in graph {plan.spec.name!r}", Location(file=plan.file), hint
    )


# -- drawing helpers ---------------------------------------------------------------------------


def _graph_label(plan: Plan, upstream: str | None, downstream: str | None) -> str:
    clock = plan.spec.clock
    clock_text = (
        f"quote every {clock.quote_every_ms} ms" if clock.quote_every_ms else "quote on every book update"
    )
    parts = [f"<b>{_esc(plan.spec.name)}</b>", f"version {_esc(plan.version_hash)}", clock_text]
    sub = []
    if upstream:
        sub.append(f"upstream of {_esc(upstream)}")
    if downstream:
        sub.append(f"downstream of {_esc(downstream)}")
    if sub:
        parts.append(" + ".join(sub))
    return "<" + "  ·  ".join(parts) + ">"


def _cluster_style(c: graphviz.Digraph, label: str) -> None:
    c.attr(label=label, style="rounded,filled", fillcolor="#fafafa", color="#bbbbbb", fontsize="13")


def _streams_read(plan: Plan, nodes: Iterable[NodePlan]) -> list[PortInfo]:
    ids = {pid for n in nodes for b in n.inputs for pid in b.ports if plan.ports[pid].producer is None}
    return [plan.ports[i] for i in sorted(ids)]  # stream order of the stream table


def _stream_node(c: graphviz.Digraph, p: PortInfo) -> None:
    size = f"[{p.size}]" if p.size else ""
    label = f'<<b>{_esc(p.address)}</b><br/><font point-size="9">{_esc(p.type)}{size}</font>>'
    c.node(p.address, label=label, shape="box", style="filled", fillcolor=STREAM_FILL, color="#888888")


def _groups(nodes: list[NodePlan]) -> list[tuple[str, list[NodePlan]]]:
    by: dict[str, list[NodePlan]] = {}
    for n in nodes:
        by.setdefault(n.type_name.split(".")[0], []).append(n)
    order = [g for g in GROUP_ORDER if g in by] + sorted(g for g in by if g not in GROUP_ORDER)
    return [(g, sorted(by[g], key=lambda n: n.index)) for g in order]


def _plan_node(c: graphviz.Digraph, plan: Plan, n: NodePlan, colours: dict[str, str]) -> None:
    event = n.trigger == "event"
    diagnostic = plan.spec.nodes[n.name].diagnostic
    if event:
        when = "event"
    else:
        t = plan.spec.tiers[n.tier]
        when = f"{n.tier} (every {t.every}" + (f", phase {t.phase})" if t.phase else ")")
    rows = [
        f"<b>{_esc(n.name)}</b>",
        f'<font point-size="9">{_esc(n.type_name)}  ·  {_esc(when)}</font>',
    ]
    params = key_params(n)
    if len(params) > MAX_PARAM_LINES:
        shown = params[: MAX_PARAM_LINES - 1]
        more = len(params) - len(shown)
    else:
        shown, more = params, 0
    for key, value, is_default in shown:
        text = _esc(f"{key}={value}")
        colour = DEFAULT_GREY if is_default else "#000000"
        rows.append(f'<font point-size="9" color="{colour}">{text}</font>')
    if more:
        rows.append(f'<font point-size="9" color="{DEFAULT_GREY}">… {more} more</font>')
    label = "<" + '<br align="left"/>'.join(rows) + '<br align="left"/>>'
    style = ["rounded", "filled"]
    if diagnostic:
        style.append("dashed")
    attrs = {"label": label, "style": ",".join(style), "tooltip": f"{n.name} ({n.type_name})"}
    if event:
        attrs.update(
            fillcolor="#ffffff", color=EVENT_BORDER, penwidth="2.5", peripheries="2", style=",".join(style)
        )
    else:
        attrs.update(fillcolor=colours.get(n.tier, "#ffffff"), color="#444444")
    c.node(n.name, **attrs)


def _input_edges(dot: graphviz.Digraph, plan: Plan, n: NodePlan, kept: set[str]) -> None:
    for b in n.inputs:
        for i, pid in enumerate(b.ports):
            p = plan.ports[pid]
            if p.producer is not None and p.producer not in kept:
                continue  # cut off by --upstream/--downstream
            tail = p.address if p.producer is None else p.producer
            out_port = p.address.split(".", 1)[1]
            in_port = f"{b.name}[{i}]" if b.decl.variadic else b.name
            attrs = {"label": graphviz.nohtml(f"{out_port} -> {in_port} : {p.type}")}
            if PORT_TYPES[p.type].batch:
                attrs.update(style="bold", penwidth="2.2")
            dot.edge(tail, n.name, **attrs)


def _sinks(plan: Plan, producers: set[str]) -> list[tuple[str, str, int, bool]]:
    """``(dot id, label, port id, is interrupt)`` of the execution sinks to draw."""
    out = []
    ex = plan.spec.execution
    if plan.ladder_port is not None and plan.ports[plan.ladder_port].producer in producers:
        label = f'<<b>execution.ladder</b><br/><font point-size="9">{_esc(ex.ladder or "")}</font>>'
        out.append(("execution.ladder", label, plan.ladder_port, False))
    if plan.cancel_port is not None and plan.ports[plan.cancel_port].producer in producers:
        label = f'<<b>execution.cancel</b><br/><font point-size="9">{_esc(ex.cancel or "")}</font>>'
        out.append(("execution.cancel", label, plan.cancel_port, True))
    return out


def _legend(dot: graphviz.Digraph, plan: Plan, colours: dict[str, str]) -> None:
    """Legend: one HTML-table node in its own cluster (id ``legend.table``: the dot means no node
    name can collide). A table, not sample nodes and edges, because sample edges would have to
    span a global rank gap and blow the legend up to the width of the graph."""
    rows = []

    def row(swatch: str, text: str, colour: str = "#000000") -> None:
        rows.append(f'<tr>{swatch}<td align="left"><font color="{colour}">{_esc(text)}</font></td></tr>')

    def box(fill: str, border: str = "#444444", width: int = 1, style: str = "") -> str:
        st = f' style="{style}"' if style else ""
        return f'<td bgcolor="{fill}" color="{border}" border="{width}"{st} width="34" height="14"></td>'

    def line(colour: str, height: int) -> str:
        bar = f'<td fixedsize="true" width="34" height="{height}" bgcolor="{colour}" border="0"></td>'
        return f'<td border="0"><table border="0" cellspacing="0" cellpadding="0"><tr>{bar}</tr></table></td>'

    for name, t in plan.spec.tiers.items():
        text = f"{name}: every {t.every} cycle{'s' if t.every != 1 else ''}"
        if t.phase:
            text += f", phase {t.phase}"
        row(box(colours[name]), text)
    row(box("#ffffff", EVENT_BORDER, 3), "event-triggered (runs per event; tier does not apply)")
    row(box("#ffffff", style="dashed"), "diagnostic: true (may read source.truth)")
    row(box(STREAM_FILL, "#888888"), "stream (source.* / exec.*)")
    row(box(SINK_FILL), "execution sink (ladder / cancel)")
    row(line("#555555", 1), "value edge: out_port -> in_port : type")
    row(line("#555555", 3), "batch edge (trades, fills, markouts, actions)")
    dashes = f'<td border="0"><font color="{INTERRUPT_COLOUR}"><b>- - - -</b></font></td>'
    row(dashes, "interrupt (execution.cancel)", INTERRUPT_COLOUR)
    table = '<table border="0" cellspacing="4" cellpadding="2">' + "".join(rows) + "</table>"
    with dot.subgraph(name="cluster_legend") as c:
        c.attr(label="legend", style="rounded", color="#bbbbbb", fillcolor="#ffffff", fontsize="12")
        c.node("legend.table", label=f"<{table}>", shape="plain", style="", fontsize="9")


def _missing(dot: graphviz.Digraph, path: Path) -> None:
    dot_path = path.with_suffix(".dot")
    dot_path.write_text(dot.source)
    raise GraphvizMissing(
        f"the Graphviz `dot` program was not found; wrote the DOT source to {dot_path} instead of {path}",
        hint=INSTALL_HINT,
    )


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)
