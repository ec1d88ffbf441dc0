"""The ``flowmm`` command line: validate, render, nodes, run, serve, compare, scenarios, version.

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
    if args.source == "live":
        return _open_live(args)
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
    from flowmm.sources.events import EventFile

    return EventFile(args.data[0])  # streamed: memory flat in the file's length


def _open_live(args: argparse.Namespace):
    from flowmm.sources.live import Live, LiveConfig, reads_stream, resolve_network
    from flowmm.sources.synthetic.scenario import parse_duration

    if not args.coin:
        raise UsageError("--source live needs --coin", hint="e.g. --coin BTC, or --coin xyz:XYZ100 --dex xyz")
    if getattr(args, "execute", False):  # real orders: testnet unless --mainnet (docs/runbook.md)
        from flowmm.execution.hyperliquid.config import resolve_exec_network

        url, network, args.exec_network = resolve_exec_network(args.url, args.testnet, args.mainnet)
    else:
        url, network = resolve_network(args.url, args.testnet, args.mainnet)
    stale = {"book": args.stale_ms} if args.stale_ms else {}
    duration = parse_duration(args.duration) if args.duration else None
    # the aggregated book only for a graph that reads it (3 significant figures unless told)
    agg = args.agg_sig_figs or (3 if reads_stream(args.spec, "source.book_agg") else None)
    cfg = LiveConfig(
        url=url, network=network, coin=args.coin, dex=args.dex or "", ref_coin=args.ref_coin,
        spot_coin=args.spot_coin, address=args.address, max_frames=args.max_frames,
        max_reconnects=args.max_reconnects, flush_ms=args.flush_ms, agg_sig_figs=agg,
        fast_book=args.fast_book, duration_s=duration, **({"stale_ms": stale} if stale else {}),
    )  # fmt: skip
    record = None if args.record == "none" else Path(args.record or Path(args.out_dir) / "feed.rec.lz4")
    return Live(cfg, record=record)


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

    _load_node_dirs(args.nodes)
    graph = load_graph(
        Path(args.graph), node_dirs=args.nodes, strict=args.strict, quote_every_ms=args.quote_every_ms
    )
    _print_diagnostics(graph.warnings, sys.stderr)
    from flowmm.execution.paper import paper_broker_for
    from flowmm.sources.live import guard_for

    out = Path(args.out) if args.out else Path("runs") / _run_name(graph.name, args)
    args.out_dir, args.spec = out, graph.plan.spec  # the live feed records into the run folder
    signer = _execute_checks(args, graph) if args.execute else None
    source = _open_source(args)
    coin, data_coin = graph.plan.spec.instrument.coin, getattr(source, "coin", None)
    if data_coin and coin != data_coin:
        print(
            f"warning: the graph instrument is {coin} but the data is {data_coin}: "
            "sizes and the price grid follow the graph's instrument",
            file=sys.stderr,
        )
    if args.execute:
        try:
            broker = _real_broker(args, graph, source, signer)
        except BaseException:
            if getattr(source, "writer", None) is not None:
                source.writer.close()  # the feed never started: close its recording
            raise
    else:
        broker = paper_broker_for(graph.plan, source)  # a graph that quotes gets paper execution
    broker = guard_for(broker, source)  # live, or a live recording: stale book and stop cancel all
    # the paper broker runs on the reference engine until the fused loop drives it
    backend = args.backend or ("python" if broker is not None else default_backend())
    if backend == "fused" and default_backend() != "fused":
        raise UsageError("backend 'fused' is not available in this installation", hint="use --backend python")
    # the status line redraws itself: only on a terminal, never into a log file
    progress = not args.no_progress and sys.stderr.isatty()
    try:
        run = graph.run(source, broker=broker, out_dir=out, backend=backend, progress=progress)
    finally:
        if args.execute:  # whatever happened: nothing of ours stays resting (idempotent)
            broker.emergency_stop()
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
    if "live" in s:
        lv, f = s["live"], s["live"]["faults"]
        print(
            f"  live {lv['coin']} ({lv['network']}, {lv['url']}): {lv['frames']:,} frames,"
            f" stop: {lv['stop']}; "
            f"{f['reconnects']} reconnects, {f['malformed']} malformed, {f['duplicate_frames']} duplicate, "
            f"{f['out_of_order']} out of order, stale {f['stale'] or 'never'}"
        )
        print(f"  recorded to {', '.join(lv['record']) or '(not recorded)'}")
    if broker is not None:
        print(console_summary(s))
    if "hyperliquid" in s:
        h = s["hyperliquid"]
        c = h["counts"]
        print(
            f"  executed on {h['network']} as {h['account']}: {c.get('placed', 0)} placed, "
            f"{c.get('modified', 0)} modified, {c.get('cancelled', 0)} cancelled, "
            f"{c.get('refused', 0)} refused, {sum(h['rejects'].values())} rejected; "
            f"halted: {h['halted']}; open at exit: {h['open_at_exit']}"
        )
    _draw_graph(graph, run.out_dir)
    report = write_report(run.out_dir)
    print(f"  written to {run.out_dir} (report: {report.name})")
    if getattr(source, "fault", None):
        print(f"flowmm: fault: {source.fault} (orders cancelled, run written)", file=sys.stderr)
        return 3
    return 130 if getattr(source, "stop_reason", None) == "interrupted" else 0


def _execute_checks(args: argparse.Namespace, graph):
    """``--execute``: the live feed, hard limits and a key, before anything connects."""
    from flowmm.execution.hyperliquid import load_signer

    if args.source != "live":
        raise UsageError("--execute needs --source live", hint="a replay or a simulation trades on paper")
    if graph.plan.ladder_port is None:
        raise UsageError("--execute: the graph names no execution.ladder; there is nothing to trade")
    if args.max_position is None or args.max_notional is None:
        raise UsageError(
            "--execute needs --max-position and --max-notional",
            hint="the hard stops: e.g. --max-position 0.01 --max-notional 1000 (contracts, USDC)",
        )
    if not (args.max_position > 0 and args.max_notional > 0):
        raise UsageError("--max-position and --max-notional must be > 0")
    signer = load_signer()
    if args.address and args.address.lower() != signer.account.lower():
        raise UsageError("--address differs from the account of the key (FLOWMM_HL_ACCOUNT)")
    args.address = signer.account  # the feed records the account's userFills and orderUpdates
    return signer


def _real_broker(args: argparse.Namespace, graph, source, signer):
    from flowmm.execution.hyperliquid import ExecConfig, HyperliquidBroker
    from flowmm.execution.paper import PaperParams

    cfg = ExecConfig(
        url=source.cfg.url, network=args.exec_network, coin=source.coin,
        max_position=args.max_position, max_notional=args.max_notional,
    )  # fmt: skip
    tick = graph.plan.spec.instrument.tick_size or source.tick_size
    broker = HyperliquidBroker(cfg, signer, PaperParams(tick_size=tick) if tick else None)
    print(
        f"flowmm: EXECUTING real orders on {cfg.network} ({cfg.url}) for {signer.account}: "
        f"{cfg.coin}, max position {cfg.max_position:g}, max notional {cfg.max_notional:g} USDC",
        file=sys.stderr,
    )
    return broker


# -- serve ---------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from flowmm.hyperliquid.loopback import Faults, LoopbackServer

    try:
        speed = None if args.speed == "max" else float(args.speed)
    except ValueError:
        raise UsageError(f"--speed takes a number or max, not {args.speed!r}") from None
    faults = Faults()
    for spec in args.fault:
        kind, frame, arg = Faults.parse(spec)
        faults.at(frame, kind, arg)
    server = LoopbackServer(
        args.data, host=args.host, port=args.port, speed=speed, faults=faults,
        rebase_time=not args.keep_times, exchange=args.exchange,
    ).start()  # fmt: skip
    n = len(server.rec.frames)
    print(
        f"serving {args.data} ({n:,} frames, coins {', '.join(server.rec.coins)}) at {server.url}"
        + (" with /exchange (paper matching)" if args.exchange else ""),
        flush=True,
    )
    try:
        while not server.finished.wait(0.5):
            pass
        print(f"  all {n:,} frames streamed; still answering (Ctrl+C to stop)", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print(f"\nstopped: {dict(server.stats)}", file=sys.stderr)
    finally:
        server.stop()
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


# -- calibrate -----------------------------------------------------------------------------------


def _seconds(value: str, option: str) -> float:
    from flowmm.sources.synthetic.scenario import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _previous_params(path: str | None) -> dict | None:
    """The params file a recalibration is compared with (read before --out may overwrite it)."""
    if path is None:
        return None
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"--previous: cannot read {path}: {exc}".splitlines()[0]) from None
    if not isinstance(doc, dict):
        raise UsageError(f"--previous: {path} is not a params file (a mapping with params:)")
    return doc


def cmd_calibrate(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from flowmm.calibrate import CalibrateConfig, calibrate, replay_segments, synthetic_segments, write_params
    from flowmm.calibrate.report import console, write_report
    from flowmm.calibrate.segments import parse_knobs
    from flowmm.compare import parse_seeds

    node_h = {}
    for item in args.node_horizon:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(
                f"--node-horizon: {item!r} is not NODE=DURATION", hint="e.g. --node-horizon funding=1h"
            )
        node_h[name] = _seconds(value, "--node-horizon")
    try:
        cfg = CalibrateConfig(
            horizon_s=_seconds(args.horizon, "--horizon"), node_horizons=node_h,
            features=args.features.split(",") if args.features else None, quote_every_ms=args.quote_every_ms,
            block_s=_seconds(args.block, "--block"), folds=args.folds, window=args.window,
            r2_min=args.r2_min, incr_r2_min=args.incr_r2_min, fee_bps=args.fee_bps,
            spread_cost_bps=args.spread_cost_bps, cost_gate=args.cost_gate,
        )  # fmt: skip
    except ValidationError as exc:
        e = exc.errors()[0]
        raise UsageError(f"{'.'.join(map(str, e['loc']))}: {e['msg']}") from None
    if args.source == "synthetic":
        segments = synthetic_segments(
            args.scenario, parse_seeds(args.seeds), args.duration, parse_knobs(args.knobs)
        )
        what = f"synthetic {args.scenario} seeds {args.seeds}" + (
            f" knobs {args.knobs}" if args.knobs else ""
        )
    elif args.source == "replay":
        if not args.data:
            raise UsageError(
                "--source replay needs --data", hint="one file or folder per segment (day), in time order"
            )
        segments = replay_segments(
            args.data, coin=args.coin, ref_coin=args.ref_coin, spot_coin=args.spot_coin,
            sz_decimals=args.sz_decimals, cache=not args.no_cache,
        )  # fmt: skip
        what = f"replay of {_plural(len(args.data), 'segment')}"
    else:
        raise UsageError(f"calibrate reads --source synthetic or replay, not {args.source!r}")
    _load_node_dirs(args.nodes)
    progress = not args.no_progress
    calib = calibrate(
        Path(args.graph), segments, cfg, node_dirs=args.nodes, progress=progress, source_name=what
    )
    out = Path(args.out)
    previous = _previous_params(args.previous)
    write_params(calib, out)
    report_dir = Path(args.report) if args.report else out.with_name(out.stem + "-report")
    md = write_report(calib, report_dir, previous)
    print(console(calib, previous))
    print(f"  params written to {out} (include with `params_from: {out.name}`), report {md}")
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


def _add_replay_group(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The replay options that say which instruments the data holds (run and calibrate)."""
    g = p.add_argument_group("replay")
    g.add_argument("--coin", help="the instrument (default: the recording's, else the first coin seen)")
    g.add_argument("--ref-coin", metavar="COIN", help="reference asset whose book gives source.ref_mid (BTC)")
    g.add_argument("--spot-coin", metavar="COIN", help="spot market whose book gives source.spot_mid (@107)")
    g.add_argument(
        "--sz-decimals", type=int, metavar="N", help="size decimals when the data has no meta frame"
    )
    return g


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
            file of normalised events, --data FILE), `live` (the Hyperliquid feed, --coin COIN,
            --url for any server, e.g. `flowmm serve`; paper execution, or real orders with
            --execute (docs/runbook.md); recorded into the run folder; exit 3 on a feed fault,
            130 on Ctrl+C, orders cancelled either way).
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
    g = _add_replay_group(p)
    g.add_argument("--start", metavar="T", help="first event time: ISO (UTC) or ns")
    g.add_argument("--end", metavar="T", help="last event time: ISO (UTC) or ns")
    g.add_argument("--speed", default="max", help="1 = real time, 10 = ten times, max (default)")
    g.add_argument(
        "--no-cache", action="store_true", help="parse again; do not read or write the columnar cache"
    )
    g = p.add_argument_group("live (paper execution; also --coin --ref-coin --spot-coin --duration)")
    g.add_argument("--url", help="REST base URL, the websocket at <url>/ws (default: the network's)")
    net = g.add_mutually_exclusive_group()
    net.add_argument("--testnet", action="store_true", help="Hyperliquid testnet (feed and orders)")
    net.add_argument(
        "--mainnet",
        action="store_true",
        help="Hyperliquid mainnet (the feed's default; mainnet orders need it)",
    )
    g.add_argument("--dex", help="HIP-3 dex of the coin (default: the main dex, or dex:COIN's)")
    g.add_argument("--address", help="your address: userFills and orderUpdates")
    g.add_argument(
        "--record", metavar="FILE", help="recording (.rec.lz4; default <out>/feed.rec.lz4; none: off)"
    )
    g.add_argument("--stale-ms", type=float, metavar="MS", help="book stale after MS without a frame (2000)")
    g.add_argument("--max-frames", type=int, metavar="N", help="stop after N market-data frames")
    g.add_argument(
        "--agg-sig-figs", type=int, metavar="N", help="aggregated book (default 3 if the graph reads it)"
    )
    g.add_argument(
        "--fast-book",
        action="store_true",
        help="also the 5-level l2Book pushed every ~0.5 s (fast: true), merged into source.book",
    )
    g.add_argument(
        "--flush-ms", type=float, default=5.0, metavar="MS", help="quiet this long closes a batch (5)"
    )
    g.add_argument(
        "--max-reconnects",
        type=int,
        default=10,
        metavar="N",
        help="failed reconnects in a row before a fault (10)",
    )
    g = p.add_argument_group("real execution (docs/runbook.md)")
    g.add_argument(
        "--execute",
        action="store_true",
        help="send real orders (key from FLOWMM_HL_SECRET_KEY; testnet unless --mainnet)",
    )
    g.add_argument("--max-position", type=float, metavar="Q", help="hard stop: |position| above Q contracts")
    g.add_argument("--max-notional", type=float, metavar="USDC", help="hard stop: |position| x mid > USDC")
    p.add_argument("--seed", type=int, default=0, help="synthetic market seed (default: 0)")
    p.add_argument(
        "--duration",
        metavar="D",
        help="synthetic run length, e.g. 90s, 20m, 1h (default: the scenario's own length); "
        "live: stop after this much wall time",
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
        "serve",
        help="a loopback Hyperliquid server streaming a recording (REST /info + websocket)",
        description=inspect.cleandoc(
            """
            Serve a recording (flowmm .rec.lz4 or an hftbacktest capture) as a local Hyperliquid:
            POST /info and the websocket /ws on one port, with subscription acks, pongs and the
            recorded frames paced at --speed, their exchange times moved onto the wall clock.
            --fault KIND@FRAME[:ARG] injects drop, garbage, stall (ARG seconds), duplicate or
            reorder before the FRAME-th data frame. Runs until Ctrl+C.
            """
        ),
        epilog="example: flowmm serve --data feed.rec.lz4 --port 8765 --speed 10 --fault drop@1000",
        formatter_class=fmt,
    )
    p.add_argument("--data", required=True, metavar="FILE", help="the recording to stream")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default: 8765; 0: any free one)")
    p.add_argument("--speed", default="1", help="1 = real time, 10 = ten times, max (default: 1)")
    p.add_argument("--fault", action="append", default=[], metavar="KIND@FRAME[:ARG]", help="repeatable")
    p.add_argument("--keep-times", action="store_true", help="send the recorded exchange times unchanged")
    p.add_argument(
        "--exchange", action="store_true", help="also accept signed /exchange orders (rehearse --execute)"
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "calibrate",
        help="estimate feature and drift-filter params from data, and gate the features",
        description=inspect.cleandoc(
            """
            Run the graph's feature nodes (every obs wired into an estimator, or --features)
            over the data, regress the forward return over --horizon on each feature
            walk-forward (--folds, --window) and gate them: admitted if the out-of-sample R2
            is > --r2-min and the incremental R2 over the features already admitted (in
            order of R2) is > --incr-r2-min; the cost check (predicted edge vs fee + spread)
            is reported, and enforced with --cost-gate. Estimates the drift filter's
            kappa_mu and sigma_mu by maximum likelihood of the OU drift model on the prices,
            and c_fill and sigma_fill by regressing post-fill moves on the fill signal.
            Writes --out (include it in a graph with `params_from:`) and a report folder
            (report.md, r2_folds.png); prints the table. docs/calibration.md.
            """
        ),
        epilog="examples:\n"
        "  flowmm calibrate graphs/rfc_unified.yaml --source synthetic --scenario mixed --knobs book=1 "
        "--seeds 0-3 --duration 6h --quote-every-ms 1000 --out params.yaml\n"
        "  flowmm calibrate graphs/rfc_unified.yaml --source replay --data d1/ d2/ --coin HYPE --out p.yaml",
        formatter_class=fmt,
    )
    p.add_argument("graph", metavar="GRAPH", help="graph file (YAML)")
    p.add_argument(
        "--source", required=True, choices=("synthetic", "replay"), help="where the data comes from"
    )
    p.add_argument("--out", required=True, metavar="FILE", help="params file to write (YAML)")
    p.add_argument("--report", metavar="DIR", help="report folder (default: <out stem>-report beside --out)")
    p.add_argument("--previous", metavar="FILE", help="a previous params file: report what changed")
    p.add_argument("--horizon", default="10s", metavar="D", help="forward-return horizon (default: 10s)")
    p.add_argument(
        "--node-horizon", action="append", default=[], metavar="NODE=D",
        help="another horizon for one feature, e.g. funding=1h (Appendix A: next-hour return); repeatable",
    )  # fmt: skip
    p.add_argument("--features", metavar="A,B", help="feature nodes to calibrate (default: every wired obs)")
    p.add_argument("--folds", type=int, default=5, help="walk-forward test folds (default: 5)")
    p.add_argument("--window", choices=("expanding", "rolling"), default="expanding", help="training window")
    p.add_argument(
        "--block", default="1h", metavar="D", help="statistics block, the unit of folds (default: 1h)"
    )
    p.add_argument("--r2-min", type=float, default=0.01, help="gate: out-of-sample R2 (default: 0.01)")
    p.add_argument("--incr-r2-min", type=float, default=0.003, help="gate: incremental R2 (default: 0.003)")
    p.add_argument("--fee-bps", type=float, default=1.5, help="cost check: fee, bps (default: maker 1.5)")
    p.add_argument("--spread-cost-bps", type=float, default=0.45, help="cost check: half spread, bps")
    p.add_argument("--cost-gate", action="store_true", help="admit only features whose edge beats the cost")
    p.add_argument(
        "--quote-every-ms", type=int, metavar="MS", help="sampling clock (default: the graph's own clock)"
    )
    _add_scenario_option(p)
    p.add_argument(
        "--seeds", default="0", metavar="SEEDS", help="synthetic seeds, one segment each (0-3, 0,5)"
    )
    p.add_argument("--duration", metavar="D", help="synthetic length per seed (e.g. 6h)")
    p.add_argument("--knobs", metavar="K=V,...", help="synthetic channel knobs, e.g. book=1,lead=1")
    p.add_argument(
        "--data", metavar="PATH", nargs="+", help="replay: one file or folder per segment, in time order"
    )
    g = _add_replay_group(p)
    g.add_argument("--no-cache", action="store_true", help="parse again; do not use the columnar cache")
    _add_nodes_option(p)
    _add_quiet_option(p, "no progress over segments and folds on stderr")
    p.set_defaults(func=cmd_calibrate)

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
