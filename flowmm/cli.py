"""The ``flowmm`` command line: validate, render, nodes, run, compare, scenarios, version.

``main(argv)`` returns the exit code, so tests can call it in-process. Exit codes:
0 ok; 1 a tool problem (e.g. Graphviz missing); 2 a bad graph, bad input data or bad usage;
3 an engine failure; 130 interrupted. Every ``FlowmmError`` is printed with its location
and hint, never as a traceback; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic_core import PydanticUndefined

from flowmm.errors import Diagnostic, FlowmmError, GraphError, UsageError
from flowmm.graph import BACKENDS

SOURCES = ("events", "synthetic", "replay", "live")
UNAVAILABLE = {"live": "live feed"}
FORMATS = ("svg", "png", "dot")


# -- helpers -------------------------------------------------------------------------------------


def _load_node_dirs(dirs: Sequence[str]) -> None:
    """Import user node folders given with ``--nodes`` (a bad folder is a usage error)."""
    from flowmm.core.discovery import load_plugin_dir

    for d in dirs:
        try:
            load_plugin_dir(d)
        except UsageError:
            raise
        except FlowmmError as exc:
            raise UsageError(exc.message, exc.location, exc.hint) from exc.__cause__


def _print_diagnostics(diags: Sequence[Diagnostic], file=None) -> None:
    for d in diags:
        print(d.format(), file=file or sys.stdout)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


# -- validate ------------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    from flowmm.core.plan import load_plan

    _load_node_dirs(args.nodes)
    failed = 0
    for graph in args.graphs:
        try:
            plan = load_plan(Path(graph), node_dirs=args.nodes, strict=args.strict)
        except GraphError as exc:
            failed += 1
            _print_diagnostics(exc.diagnostics)
            n_warn = len(exc.diagnostics) - len(exc.errors)
            tail = f", {_plural(n_warn, 'warning')}" if n_warn else ""
            print(f"{graph}: failed ({_plural(len(exc.errors), 'error')}{tail})")
            continue
        except FlowmmError as exc:  # e.g. a node module of the graph's plugins failed to import
            failed += 1
            print(exc.format())
            print(f"{graph}: failed")
            continue
        _print_diagnostics(plan.warnings)
        tail = f", {_plural(len(plan.warnings), 'warning')}" if plan.warnings else ""
        print(f"{graph}: ok ({_plural(len(plan.nodes), 'node')}, hash {plan.version_hash}){tail}")
    if len(args.graphs) > 1:
        print(f"{_plural(len(args.graphs), 'file')}: {len(args.graphs) - failed} ok, {failed} failed")
    return 2 if failed else 0


# -- render --------------------------------------------------------------------------------------


def cmd_render(args: argparse.Namespace) -> int:
    from flowmm.core.plan import load_plan

    _load_node_dirs(args.nodes)
    plan = load_plan(Path(args.graph), node_dirs=args.nodes)
    _print_diagnostics(plan.warnings, sys.stderr)
    from flowmm.render import render  # graphviz is imported only when drawing

    out = args.output or f"{Path(args.graph).stem}.{args.format}"
    path = render(plan, out, fmt=args.format, upstream=args.upstream, downstream=args.downstream)
    print(path)
    return 0


# -- nodes ---------------------------------------------------------------------------------------


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _constraints(metadata: list) -> str:
    ops = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    parts = []
    for m in metadata:
        for attr, op in ops.items():
            v = getattr(m, attr, None)
            if v is not None:
                parts.append(f"{op} {v}")
    return ", ".join(parts)


def _port_flags(decl: Any) -> str:
    flags = [f for f in ("variadic", "optional") if getattr(decl, f, False)]
    return f" ({', '.join(flags)})" if flags else ""


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def describe_node(cls: Any) -> str:
    """Everything a graph author needs about a node type: ports, params, the docstring."""
    lines = [
        f"{cls.type_name}  (trigger: {cls.trigger}"
        + (f", default tier: {cls.tier})" if cls.trigger == "cycle" else ")"),
        f"module: {cls.__module__}",
        "",
        "inputs:",
    ]
    ins = [[n, d.type + _port_flags(d), d.doc] for n, d in cls.inputs.items()]
    lines += _table(ins) if ins else ["  (none)"]
    lines.append("outputs:")
    outs = [
        [n, d.type + (f"[{d.size}]" if d.size is not None else ""), d.doc] for n, d in cls.outputs.items()
    ]
    lines += _table(outs) if outs else ["  (none)"]
    lines.append("params:")
    params = []
    for name, f in cls.Params.model_fields.items():
        default = "required" if f.is_required() else f"default {f.default!r}"
        if f.default is PydanticUndefined and f.default_factory is not None:
            default = "default " + repr(f.default_factory())
        cons = _constraints(f.metadata)
        desc = (f.description or "") + (f"  ({cons})" if cons else "")
        params.append([name, _type_name(f.annotation), default, desc])
    lines += _table(params) if params else ["  (none)"]
    lines += ["", cls.doc()]
    return "\n".join(lines)


def cmd_nodes(args: argparse.Namespace) -> int:
    from flowmm.core.node import closest_types, registry

    _load_node_dirs(args.nodes)
    reg = registry()
    if args.type:
        cls = reg.get(args.type)
        if cls is None:
            close = closest_types(args.type)
            raise UsageError(
                f"unknown node type {args.type!r}",
                hint=(f"did you mean {', '.join(close)}? " if close else "")
                + "`flowmm nodes` lists all types",
            )
        print(describe_node(cls))
        return 0
    # tiers count quote cycles: they do not apply to event-triggered nodes
    rows = [
        [t, c.trigger, c.tier if c.trigger == "cycle" else "-", _first_line(c.doc())]
        for t, c in sorted(reg.items())
    ]
    print("\n".join(_table([["TYPE", "TRIGGER", "TIER", "DESCRIPTION"], *rows], indent="")))
    return 0


# -- run -----------------------------------------------------------------------------------------


def default_backend() -> str:
    """``fused`` when the fused backend can be imported, else the reference ``python`` one."""
    try:
        importlib.import_module("flowmm.core.fused").FusedEngine  # noqa: B018
    except (ImportError, AttributeError):
        return "python"
    return "fused"


def _open_source(args: argparse.Namespace):
    if args.source in UNAVAILABLE:
        issue = UNAVAILABLE[args.source]
        raise UsageError(
            f"source {args.source!r} is not available yet: it arrives with the {issue} issue",
            hint="use --source synthetic --scenario NAME, or --source events --data FILE",
        )
    if args.source == "synthetic":
        from flowmm.sources.synthetic import open_synthetic

        return open_synthetic(args.scenario, seed=args.seed, duration=args.duration)
    if not args.data:
        raise UsageError(
            f"--source {args.source} needs --data",
            hint="a JSON-lines file of normalised events (see flowmm.sources.events)"
            if args.source == "events"
            else "recordings, Hyperliquid archive files, hftbacktest captures or .npz, or a folder of them",
        )
    if args.source == "replay":
        from flowmm.sources.replay import Replay

        try:
            speed = None if args.speed == "max" else float(args.speed)
        except ValueError:
            raise UsageError(f"--speed takes a number or max, not {args.speed!r}") from None
        return Replay(
            args.data, coin=args.coin, ref_coin=args.ref_coin, spot_coin=args.spot_coin,
            sz_decimals=args.sz_decimals, start=args.start, end=args.end, speed=speed,
            cache=not args.no_cache,
        )  # fmt: skip
    if len(args.data) > 1:
        raise UsageError("--source events reads one file", hint="merge the files, or use --source replay")
    from flowmm.sources import Events

    return Events.from_file(args.data[0])


def _draw_graph(graph, out_dir: Path) -> None:
    """The graph's SVG in the run folder; without Graphviz, its .dot and a note."""
    from flowmm.render import GraphvizMissing, render

    try:
        render(graph.plan, out_dir / "graph.svg")
    except GraphvizMissing as exc:
        print(exc.format(), file=sys.stderr)


def _run_name(graph: str, args: argparse.Namespace) -> str:
    """``<graph>-<source>[-<scenario>-<seed>]-<YYYYmmdd-HHMMSS>``: a run folder says what ran."""
    parts = [graph, args.source]
    if args.source == "synthetic":
        parts += [Path(args.scenario).stem, str(args.seed)]
    elif args.source == "replay" and args.coin:
        parts.append(args.coin.replace(":", "_"))
    return "-".join(parts + [time.strftime("%Y%m%d-%H%M%S")])


def cmd_run(args: argparse.Namespace) -> int:
    from flowmm.graph import load_graph
    from flowmm.io.report import console_summary, write_report

    if args.source in UNAVAILABLE:  # before any work: say so at once
        _open_source(args)
    _load_node_dirs(args.nodes)
    graph = load_graph(
        Path(args.graph), node_dirs=args.nodes, strict=args.strict, quote_every_ms=args.quote_every_ms
    )
    _print_diagnostics(graph.warnings, sys.stderr)
    from flowmm.execution.paper import paper_broker_for

    source = _open_source(args)
    coin, data_coin = graph.plan.spec.instrument.coin, getattr(source, "coin", None)
    if data_coin and coin != data_coin:
        print(
            f"warning: the graph instrument is {coin} but the data is {data_coin}: "
            "sizes and the price grid follow the graph's instrument",
            file=sys.stderr,
        )
    broker = paper_broker_for(graph.plan, source)  # a graph that quotes gets paper execution
    # the paper broker runs on the reference engine until the fused loop drives it
    backend = args.backend or ("python" if broker is not None else default_backend())
    if backend == "fused" and default_backend() != "fused":
        raise UsageError("backend 'fused' is not available in this installation", hint="use --backend python")
    out = Path(args.out) if args.out else Path("runs") / _run_name(graph.name, args)
    # the status line redraws itself: only on a terminal, never into a log file
    progress = not args.no_progress and sys.stderr.isatty()
    run = graph.run(source, broker=broker, out_dir=out, backend=backend, progress=progress)
    s = run.summary
    print(f"graph {s['graph']} (hash {s['version_hash']}), backend {s['backend']}, source {s['source']}")
    print(
        f"  {s['events']:,} events, {s['cycles']:,} cycles, {s['interrupts']:,} interrupts, "
        f"{run.trace.num_rows:,} trace rows in {s['wall_s']} s"
    )
    for stream, readers in s.get("missing_streams", {}).items():
        print(f"  {stream}: not in this source; silent in {', '.join(readers)}")
    if "replay" in s:
        p = s["replay"]["parse"]
        print(
            f"  replay of {s['replay']['coin']}: {p['frames']:,} frames, {p['malformed']:,} malformed, "
            f"{p['late_clamped']:,} late, cache {s['replay']['cache'].split(' ')[0]}"
        )
    if broker is not None:
        print(console_summary(s))
    _draw_graph(graph, run.out_dir)
    report = write_report(run.out_dir)
    print(f"  written to {run.out_dir} (report: {report.name})")
    return 0


# -- compare -------------------------------------------------------------------------------------


def cmd_compare(args: argparse.Namespace) -> int:
    from flowmm.compare import compare, parse_seeds

    if args.source != "synthetic":  # the same stream per seed needs a seeded source
        raise UsageError(
            f"compare runs on --source synthetic only, not {args.source!r}",
            hint="flowmm compare A.yaml B.yaml --source synthetic --scenario NAME --seeds 0-19",
        )
    seeds = parse_seeds(args.seeds)
    _load_node_dirs(args.nodes)
    backend = args.backend or default_backend()
    if backend == "fused" and default_backend() != "fused":
        raise UsageError("backend 'fused' is not available in this installation", hint="use --backend python")
    out = (
        Path(args.out)
        if args.out
        else Path("runs") / f"compare-{args.scenario}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    result = compare(
        [Path(g) for g in args.graphs],
        scenario=args.scenario,
        seeds=seeds,
        duration=args.duration,
        out_dir=out,
        backend=backend,
        jobs=args.jobs,
        progress=not args.no_progress,
        node_dirs=args.nodes,
    )
    print(result.format_table())
    print(f"  written to {out / 'compare.csv'} and {out / 'compare.md'}, run folders under {out}")
    return 0


# -- scenarios -----------------------------------------------------------------------------------


def cmd_scenarios(args: argparse.Namespace) -> int:
    from flowmm.sources.synthetic import list_scenarios

    items = list_scenarios()
    width = max((len(name) for name, _ in items), default=0)
    for name, description in items:
        print(f"{name:<{width}}  {description}")
    return 0


# -- version -------------------------------------------------------------------------------------


def cmd_version(args: argparse.Namespace) -> int:
    import numba
    import numpy

    from flowmm import __version__

    print(f"flowmm {__version__}")
    print(f"python {platform.python_version()}, numba {numba.__version__}, numpy {numpy.__version__}")
    return 0


# -- parser --------------------------------------------------------------------------------------


def _add_nodes_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--nodes",
        metavar="DIR",
        action="append",
        default=[],
        help="a folder of user node modules (*.py) to load; repeatable",
    )


def _add_scenario_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scenario",
        default="calm",
        metavar="NAME",
        help="synthetic scenario: a name from `flowmm scenarios` or a YAML file (default: calm)",
    )


def _add_backend_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        help="engine: the reference interpreter or one generated numba loop "
        "(default: fused when available, else python; graphs that quote run on python for now)",
    )


def _add_quiet_option(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--no-progress", "--quiet", action="store_true", help=help)


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="flowmm",
        description="Declarative dataflow graphs for market making on Hyperliquid perps.",
        epilog="Run `flowmm COMMAND --help` for the options of a command.",
        formatter_class=fmt,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "validate",
        help="check graph files and report every problem, located",
        description=inspect.cleandoc(
            """
            Load and validate graph files. For each file, print `FILE: ok (N nodes, hash H)` or
            its diagnostics, each as `file:line:col [node.port]: error|warning: message` with a
            hint. Every file is checked and all problems of a file are reported at once.

            Exit status: 0 if every file is valid (warnings allowed), 2 if any file has an
            error (with --strict, warnings count as errors).
            """
        ),
        epilog="example: flowmm validate graphs/*.yaml --strict",
        formatter_class=fmt,
    )
    p.add_argument("graphs", nargs="+", metavar="GRAPH", help="graph files (YAML)")
    p.add_argument("--strict", action="store_true", help="treat warnings as errors (exit 2)")
    _add_nodes_option(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "render",
        help="draw a graph with Graphviz (svg, png or dot)",
        description=inspect.cleandoc(
            """
            Draw a graph: nodes grouped by kind and coloured by tier, edges labelled with ports
            and types, a legend. Prints the path written. Without Graphviz's `dot` program the
            DOT source is written instead and the command says how to install Graphviz (exit 1).
            """
        ),
        epilog="example: flowmm render graphs/demo.yaml -o demo.svg --upstream fused",
        formatter_class=fmt,
    )
    p.add_argument("graph", metavar="GRAPH", help="graph file (YAML)")
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="output file (default: <graph stem>.<format> in the current folder)",
    )
    p.add_argument("--format", choices=FORMATS, default="svg", help="output format (default: svg)")
    p.add_argument("--upstream", metavar="NODE", help="draw only NODE and what feeds it")
    p.add_argument("--downstream", metavar="NODE", help="draw only NODE and what it feeds")
    _add_nodes_option(p)
    p.set_defaults(func=cmd_render)

    p = sub.add_parser(
        "nodes",
        help="list node types, or describe one",
        description=inspect.cleandoc(
            """
            Without TYPE: one line per registered node type (type, trigger, default tier, first
            line of its docstring). With TYPE: its input and output ports (type, variadic,
            optional), its params (type, default, constraints, description) and its docstring.
            """
        ),
        epilog="example: flowmm nodes features.trade_flow",
        formatter_class=fmt,
    )
    p.add_argument("type", nargs="?", metavar="TYPE", help="a node type, e.g. estimators.ewma_vol")
    _add_nodes_option(p)
    p.set_defaults(func=cmd_nodes)

    p = sub.add_parser(
        "run",
        help="run a graph over a source of events",
        description=inspect.cleandoc(
            """
            Run a graph over the events of a source and write the run folder: trace.parquet
            (one row per quote cycle), interrupts.csv, summary.json and a copy of the graph.
            Sources: `synthetic` (the simulated market: --scenario NAME --seed N --duration 20m;
            `flowmm scenarios` lists them), `replay` (recorded Hyperliquid data: flowmm
            recordings, the public archive's l2Book and asset_ctxs files, hftbacktest captures
            and .npz; --data FILE|DIR ..., several merged in time order), `events` (a JSON-lines
            file of normalised events, --data FILE); `live` arrives with a later issue.
            Prints the graph's warnings, progress on stderr, then a short summary.
            """
        ),
        epilog="examples:\n"
        "  flowmm run graphs/minimal.yaml --source synthetic --scenario trend_down --seed 3\n"
        "  flowmm run graphs/vol_minimal.yaml --source replay --data BTC.lz4 --coin BTC --speed max",
        formatter_class=fmt,
    )
    p.add_argument("graph", metavar="GRAPH", help="graph file (YAML)")
    p.add_argument("--source", required=True, choices=SOURCES, help="where events come from")
    p.add_argument(
        "--data",
        metavar="PATH",
        nargs="+",
        help="files or folders for --source replay; one .jsonl for events",
    )
    _add_scenario_option(p)
    g = p.add_argument_group("replay")
    g.add_argument("--coin", help="the instrument (default: the recording's, else the first coin seen)")
    g.add_argument("--ref-coin", metavar="COIN", help="reference asset whose book gives source.ref_mid (BTC)")
    g.add_argument("--spot-coin", metavar="COIN", help="spot market whose book gives source.spot_mid (@107)")
    g.add_argument(
        "--sz-decimals", type=int, metavar="N", help="size decimals when the data has no meta frame"
    )
    g.add_argument("--start", metavar="T", help="first event time: ISO (UTC) or ns")
    g.add_argument("--end", metavar="T", help="last event time: ISO (UTC) or ns")
    g.add_argument("--speed", default="max", help="1 = real time, 10 = ten times, max (default)")
    g.add_argument(
        "--no-cache", action="store_true", help="parse again; do not read or write the columnar cache"
    )
    p.add_argument("--seed", type=int, default=0, help="synthetic market seed (default: 0)")
    p.add_argument(
        "--duration",
        metavar="D",
        help="synthetic run length, e.g. 90s, 20m, 1h (default: the scenario's own length)",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="run folder (default: runs/<graph>-<source>[-<scenario>-<seed>]-<YYYYmmdd-HHMMSS>)",
    )
    _add_backend_option(p)
    _add_nodes_option(p)
    p.add_argument("--strict", action="store_true", help="treat graph warnings as errors")
    p.add_argument(
        "--quote-every-ms",
        type=int,
        metavar="MS",
        help="replace the graph's clock: a quote cycle every MS ms of event time (e.g. 1000 for a 6-s graph)",
    )
    _add_quiet_option(p, "no progress line on stderr (it is shown only when stderr is a terminal)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "compare",
        help="run several graphs on the same synthetic event streams, side by side",
        description=inspect.cleandoc(
            """
            Run every graph on every seed of a synthetic scenario; per seed, all graphs see the
            same event stream. Runs go to parallel processes, each writing its own run folder
            (OUT/<graph>/<scenario>-seed<N>/). Prints a table with, for each graph and each
            numeric summary metric, the median and the worst over seeds ("median (worst)";
            worst is the max for metrics where larger is worse -- max |q|, AS, drawdown, fees,
            interrupts -- and the min otherwise), and writes it as OUT/compare.csv and
            OUT/compare.md. Every graph is validated before any run starts.
            """
        ),
        epilog="example: flowmm compare graphs/minimal.yaml my.yaml --source synthetic "
        "--scenario trend_down --seeds 0-19 --out runs/cmp",
        formatter_class=fmt,
    )
    p.add_argument("graphs", nargs="+", metavar="GRAPH", help="graph files (YAML); columns in this order")
    p.add_argument("--source", default="synthetic", choices=SOURCES, help="only synthetic (the default)")
    _add_scenario_option(p)
    p.add_argument(
        "--seeds",
        default="0-19",
        metavar="SEEDS",
        help="seeds to run: a range 0-19, a list 0,3,5, a single 7, or a mix 0-9,15 (default: 0-19)",
    )
    p.add_argument(
        "--duration",
        metavar="D",
        help="length of each run, e.g. 90s, 20m, 1h (default: the scenario's own length)",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (default: runs/compare-<scenario>-<YYYYmmdd-HHMMSS>)",
    )
    _add_backend_option(p)
    p.add_argument(
        "-j",
        "--jobs",
        type=int,
        metavar="N",
        help="parallel processes (default: the number of CPUs; 1 runs in this process)",
    )
    _add_nodes_option(p)
    _add_quiet_option(p, "no 'runs done / total' progress on stderr")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "scenarios",
        help="list the synthetic market's scenarios",
        description="List the scenarios of the synthetic market (graphs/scenarios/): name and description.",
    )
    p.set_defaults(func=cmd_scenarios)

    p = sub.add_parser(
        "version",
        help="print the flowmm version",
        description="Print the flowmm version and those of Python, numba and numpy.",
    )
    p.set_defaults(func=cmd_version)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``flowmm`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except FlowmmError as exc:
        sys.stdout.flush()
        print(exc.format(), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `flowmm nodes | head`: the reader left, nothing to report
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
