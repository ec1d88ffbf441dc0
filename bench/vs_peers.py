"""flowmm against its peers on one event file: hftbacktest's replay and GLFT loops, csp's nodes.

One run writes an hftbacktest ``.npz`` event file (uncompressed; 20-level book diffs and trades,
``--rows`` about 1.5 M) from the synthetic market (``--scenario``, HYPE, the instrument of the
flagship graphs), then measures, interleaved over ``--rounds`` rounds (each measurement its own
process, after a warm-up on a small file so compile time is not counted):

==================== ================================================= ========================
flowmm               what                                              compared with
==================== ================================================= ========================
replay               vol_minimal (no ladder), the book through a small  hftbacktest replay
                     graph: replay throughput                           (``elapse`` to the end)
glft_minimal @100ms  + paper, a quote cycle every 100 ms of event time  tutorial GLFT loop (100 ms)
glft_minimal @book   + paper, a cycle on every book update              event-driven GLFT loop
rfc_unified @6s      + paper, its own 6-s clock                         event-driven GLFT loop
rfc_unified @book    + paper, a cycle per book update (no target)       event-driven GLFT loop
chain fused/python   10 ``basic.affine`` nodes, one cycle per event     csp C++ / Python nodes
==================== ================================================= ========================

flowmm's load (opening the replay: its chunk store, parsed from the ``.npz`` once before the
rounds, that first parse printed on its own) and run (``Graph.run``, which streams the chunks)
are timed apart, as are hftbacktest's (building the backtester; it reads the file lazily, inside
its loop) and its loop. The GLFT loops use ``--peer-gamma`` 0.5 (the tutorial's 0.05 is fitted
to its ETH data; on this file 0.5 puts their fill counts within 0.5-2x of glft_minimal's).
Every figure has its cadence, cycles and fills beside it; the table at the end has medians, rows
per second and the ratios of run time. hftbacktest and csp run with ``--peers-python`` (or
``$FLOWMM_PEERS_PYTHON``; default ``/work/peers-venv/bin/python`` when it exists), a virtualenv
of their own (docs/performance.md); they are never flowmm dependencies, and are skipped when
not importable. Figures only, no asserts. Usage::

    python bench/vs_peers.py                          # 1.5 M rows, 3 rounds (long today)
    python bench/vs_peers.py --rows 60000 --rounds 1  # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _engine import engine_kwargs  # bench/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
ROWS_PER_MIN = 2400  # npz rows per minute of the synthetic market (calm; measured)
COIN = "HYPE"

# name: (what, graph, clock) for flowmm; the peer each is compared with
FLOWMM = {
    "replay": ("vol_minimal, run only", "vol_minimal.yaml", None),
    "glft_minimal@100ms": ("glft_minimal + paper", "glft_minimal.yaml", {"quote_every_ms": 100}),
    "glft_minimal@book": ("glft_minimal + paper", "glft_minimal.yaml", {"on_book": True}),
    "rfc_unified@6s": ("rfc_unified + paper", "rfc_unified.yaml", None),
    "rfc_unified@book": ("rfc_unified + paper", "rfc_unified.yaml", {"on_book": True}),
}
PEER_OF = {
    "replay": "hbt replay",
    "glft_minimal@100ms": "hbt tutorial GLFT@100ms",
    "glft_minimal@book": "hbt event GLFT@feed",
    "rfc_unified@6s": "hbt event GLFT@feed",
    "rfc_unified@book": "hbt event GLFT@feed",
    "chain fused": "csp C++ nodes",
    "chain python": "csp Python nodes",
}


# -- the event file ---------------------------------------------------------------------------


def make_file(path: Path, rows: int, scenario: str, seed: int) -> dict:
    """Synthetic books and trades as an uncompressed hftbacktest .npz of about ``rows`` rows."""
    from flowmm.io.hftbacktest import write_npz
    from flowmm.sources.store import concat
    from flowmm.sources.synthetic import open_synthetic

    minutes = max(1, round(rows / ROWS_PER_MIN))
    t0 = time.perf_counter()
    src = open_synthetic(scenario, seed=seed, duration=f"{minutes}m")
    table = concat(list(src.chunks()))
    n = write_npz(table, path, compress=False)
    from flowmm.core import events as E

    return {
        "rows": n,
        "minutes": minutes,
        "books": int((table.kind == E.BOOK).sum()),
        "trades": int((table.kind == E.TRADE).sum()),
        "mb": round(path.stat().st_size / 1e6, 1),
        "build_s": round(time.perf_counter() - t0, 1),
    }


# -- flowmm children ----------------------------------------------------------------------------


def _graph(name: str):
    import yaml

    import flowmm

    what, file, clock = FLOWMM[name]
    path = ROOT / "graphs" / file
    if clock is None:
        return flowmm.load_graph(path)
    if "quote_every_ms" in clock:
        return flowmm.load_graph(path, quote_every_ms=clock["quote_every_ms"])
    spec = yaml.safe_load(path.read_text())
    spec["clock"] = clock
    return flowmm.load_graph(spec)


def flowmm_child(name: str, data: str, warmup: str) -> dict:
    from flowmm.execution.paper import paper_broker_for
    from flowmm.sources.replay import Replay

    graph = _graph(name)

    def once(path: str) -> tuple[float, float, dict, str]:
        t0 = time.perf_counter()
        src = Replay(path, coin=COIN)
        load = time.perf_counter() - t0
        broker = paper_broker_for(graph.plan, src)
        t0 = time.perf_counter()
        run = graph.run(src, broker=broker, **engine_kwargs(broker))
        return load, time.perf_counter() - t0, run.summary, run.summary.get("backend", "?")

    once(warmup)  # compile / load kernels and the generated loop outside the timed run
    load, wall, s, backend = once(data)
    return {
        "load_s": load,
        "run_s": wall,
        "cycles": s["cycles"],
        "fills": s.get("fills_buys", 0) + s.get("fills_sells", 0),
        "backend": backend,
        "events": s["events"],
    }


def chain_child(backend: str, events: int) -> dict:
    sys.path.insert(0, str(BENCH))
    from engine_overhead import book_events, run_engine

    wall, cycles = run_engine(backend, 10, book_events(events))
    return {"load_s": 0.0, "run_s": wall, "cycles": cycles, "fills": 0, "events": events, "backend": backend}


# -- the parent ---------------------------------------------------------------------------------


def _run_json(cmd: list[str], env: dict | None = None) -> dict | str:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode:
        return f"failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def _peers_python(arg: str | None) -> str | None:
    cand = arg or os.environ.get("FLOWMM_PEERS_PYTHON") or "/work/peers-venv/bin/python"
    return cand if Path(cand).exists() else None


def _importable(py: str, module: str) -> str | None:
    r = subprocess.run(
        [py, "-c", f"import {module}; print({module}.__version__)"], capture_output=True, text=True
    )
    return r.stdout.strip() if r.returncode == 0 else None


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _cadence(name: str) -> str:
    return {
        "replay": "-",
        "hbt replay": "-",
        "chain fused": "per event",
        "chain python": "per event",
        "csp C++ nodes": "per event",
        "csp Python nodes": "per event",
        "hbt tutorial GLFT@100ms": "100 ms",
        "hbt event GLFT@feed": "per feed",
    }.get(name, name.split("@")[-1] if "@" in name else "-")


def _line(name: str, r: dict | str, rows: int) -> str:
    if isinstance(r, str):
        return f"  {name:<26} {r}"
    per = (
        rows
        if name not in ("chain fused", "chain python", "csp C++ nodes", "csp Python nodes")
        else r["events"]
    )
    unit = "rows/s" if per == rows else "ticks/s"
    return (
        f"  {name:<26} load {r['load_s']:7.2f} s  run {r['run_s']:8.2f} s"
        f"  {per / r['run_s']:>12,.0f} {unit:<7}"
        f"  cadence {_cadence(name):<9} cycles {r['cycles']:>9,}  fills {r['fills']:>7,}"
        + (f"  ({r['backend']})" if "backend" in r else "")
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_500_000, help="npz rows of the event file (about)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scenario", default="calm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chain-events", type=int, default=200_000, help="events through the 10-node chains")
    ap.add_argument("--peers-python", help="python of the peers' virtualenv ($FLOWMM_PEERS_PYTHON)")
    # 0.5, not the tutorial's 0.05 (fitted to ETH): on this HYPE file it puts the loops' fill counts
    # within 0.5-2x of glft_minimal's (0.05 gives a quarter of them), so the loops compare like for like
    ap.add_argument("--peer-gamma", type=float, default=0.5, help="the GLFT loops' gamma")
    ap.add_argument("--peer-qty", type=float, default=1.0, help="the GLFT loops' order size")
    ap.add_argument("--only", help="comma-separated names to run (default: all)")
    ap.add_argument("--keep", metavar="DIR", help="write the event file here and keep it")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind = args.child[0]
        out = (
            chain_child(args.child[1], int(args.child[2]))
            if kind == "chain"
            else flowmm_child(*args.child[1:])
        )
        print(json.dumps(out))
        return

    py = _peers_python(args.peers_python)
    hbt_v = _importable(py, "hftbacktest") if py else None
    csp_v = _importable(py, "csp") if py else None
    import numba
    import numpy

    print(f"CPU: {_cpu()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}")
    print(
        f"python {platform.python_version()}, numpy {numpy.__version__}, numba {numba.__version__}; "
        f"hftbacktest {hbt_v or 'not importable'}, csp {csp_v or 'not importable'} "
        f"({py or 'no peers python'})"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        data, warm = folder / "events.npz", folder / "warmup.npz"
        info = make_file(data, args.rows, args.scenario, args.seed)
        make_file(warm, 6 * ROWS_PER_MIN, args.scenario, args.seed + 1)
        print(
            f"event file: {info['rows']:,} rows ({info['books']:,} books, {info['trades']:,} trades, "
            f"{info['minutes']} min of {args.scenario} seed {args.seed}), {info['mb']} MB uncompressed, "
            f"built in {info['build_s']} s: {data}"
        )
        env = dict(os.environ, FLOWMM_CACHE_DIR=str(Path(tmp) / "cache"))
        from flowmm.sources.replay import Replay

        os.environ["FLOWMM_CACHE_DIR"] = env["FLOWMM_CACHE_DIR"]
        t0 = time.perf_counter()
        first = Replay(data, coin=COIN)
        print(f"flowmm first load (decode the npz into the chunk store): {time.perf_counter() - t0:.2f} s")
        Replay(warm, coin=COIN)
        tick = first.tick_size
        me = [sys.executable, __file__, "--child"]
        jobs: dict[str, list[str]] = {}
        if hbt_v:
            peer = [
                py,
                str(BENCH / "peers" / "hftbacktest_loops.py"),
                "--data",
                str(data),
                "--warmup",
                str(warm),
            ]
            peer += ["--tick", str(tick), "--gamma", str(args.peer_gamma), "--qty", str(args.peer_qty)]
            jobs["hbt replay"] = [*peer, "--loop", "replay"]
            jobs["hbt tutorial GLFT@100ms"] = [*peer, "--loop", "tutorial", "--step-ms", "100"]
            jobs["hbt event GLFT@feed"] = [*peer, "--loop", "event"]
        for name in FLOWMM:
            jobs[name] = [*me, "flowmm", name, str(data), str(warm)]
        jobs["chain fused"] = [*me, "chain", "fused", str(args.chain_events)]
        jobs["chain python"] = [*me, "chain", "python", str(min(args.chain_events, 20_000))]
        if csp_v:
            csp = [py, str(BENCH / "peers" / "csp_chain.py"), "--events", str(args.chain_events)]
            jobs["csp C++ nodes"] = [*csp, "--kind", "cpp"]
            jobs["csp Python nodes"] = [*csp, "--kind", "python"]
        if args.only:
            keep = set(args.only.split(","))
            jobs = {k: v for k, v in jobs.items() if k in keep}
        results: dict[str, list[dict]] = {k: [] for k in jobs}
        for rnd in range(args.rounds):
            print(f"round {rnd + 1}/{args.rounds} (load average {os.getloadavg()[0]:.2f}):", flush=True)
            for name, cmd in jobs.items():
                r = _run_json(cmd, env)
                print(_line(name, r, info["rows"]), flush=True)
                if isinstance(r, dict):
                    results[name].append(r)
        _table(results, info["rows"])
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


def _table(results: dict[str, list[dict]], rows: int) -> None:
    med: dict[str, dict] = {}
    for name, rs in results.items():
        if rs:
            m = {k: statistics.median(r[k] for r in rs) for k in ("load_s", "run_s")}
            m |= {k: int(statistics.median(r[k] for r in rs)) for k in ("cycles", "fills")}
            med[name] = {**rs[0], **m}
    print("\nmedians; ratio = peer run time / flowmm run time (> 1: flowmm faster)")
    for name, m in med.items():
        line = _line(name, m, rows)
        peer = PEER_OF.get(name)
        if peer in med:
            ratio = med[peer]["run_s"] / m["run_s"]
            scale = (m["events"] / med[peer]["events"]) if name.startswith("chain") else 1.0
            fills = f", fills {m['fills'] / med[peer]['fills']:.2f}x" if med[peer]["fills"] else ""
            line += f"   vs {peer}: {ratio * scale:.2f}x{fills}"
        print(line)


if __name__ == "__main__":
    main()
