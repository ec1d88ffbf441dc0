"""Peak memory of a run against the length of its data: replay 1 h vs 8 h, synthetic 20 min vs 8 h.

Each run is its own process (``--child``), so its peak RSS (``getrusage`` ``ru_maxrss``) is
its own: the parent builds the data, starts the children one at a time and prints a table.

* replay: the real BTC archive hour (5,587 twenty-level ``l2Book`` frames) written as a flowmm
  recording, once and repeated 8 times with shifted times (``bench/replay_throughput.py``'s
  builder). Two runs each: the first parses into the replay cache (the chunk store), the second
  reads it back. Load as you go means the 8 h peak stays within ~10 % of the 1 h peak.
* synthetic: the simulated market (``--scenario``, seed 0) for 20 min and for 8 h.

The graph (default ``graphs/rfc_unified.yaml``) runs with paper execution, as ``flowmm run``
does; ``--backend`` as there (default: what ``flowmm run`` picks). Printed per run: events,
cycles, fills, wall time, RSS before the run (imports, graph, source opened) and the peak.
Figures only, no asserts. Usage::

    python bench/memory.py                  # 1 h vs 8 h replay, 20 min vs 8 h synthetic
    python bench/memory.py --quick          # 1 h vs 2 h replay, 2 min vs 16 min synthetic
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _engine import engine_kwargs  # bench/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FLOWMM_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KB


def _now_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(kind: str, arg: str, graph_path: str, backend: str | None) -> None:
    """One run in this process; prints one JSON line."""
    import flowmm
    from flowmm.execution.paper import paper_broker_for

    graph = flowmm.load_graph(graph_path)
    if kind == "replay":
        from flowmm.sources.replay import Replay

        t0 = time.perf_counter()
        source = Replay(arg)
        opened = time.perf_counter() - t0
    else:
        from flowmm.sources.synthetic import open_synthetic

        scenario, duration = arg.split(":")
        t0 = time.perf_counter()
        source = open_synthetic(scenario, seed=0, duration=duration)
        opened = time.perf_counter() - t0
    broker = paper_broker_for(graph.plan, source)
    before = _now_rss_mb()
    t0 = time.perf_counter()
    run = graph.run(source, broker=broker, **engine_kwargs(broker, backend))
    backend = run.summary.get("backend", "?")
    wall = time.perf_counter() - t0
    s = run.summary
    out = {
        "events": s.get("events"),
        "cycles": s.get("cycles"),
        "fills": s.get("fills_buys", 0) + s.get("fills_sells", 0),
        "open_s": round(opened, 2),
        "run_s": round(wall, 2),
        "rss_before_mb": round(before, 1),
        "peak_mb": round(_rss_mb(), 1),
        "backend": backend,
        "cache": getattr(source, "cache_state", "-").split(" ")[0],
    }
    print(json.dumps(out))


def _spawn(kind: str, arg: str, args: argparse.Namespace, env: dict) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, arg, "--graph", args.graph]
    if args.backend:
        cmd += ["--backend", args.backend]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(f"child {kind} {arg} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _builder():
    path = ROOT / "bench" / "replay_throughput.py"
    spec = importlib.util.spec_from_file_location("replay_throughput", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(label: str, r: dict, base: dict | None) -> str:
    rel = f"{r['peak_mb'] / base['peak_mb'] - 1:+.1%}" if base else ""
    return (
        f"  {label:<30} {r['events'] or 0:>11,} ev {r['cycles'] or 0:>8,} cyc {r['fills'] or 0:>6,} fills "
        f"{r['open_s']:>7.2f} s open {r['run_s']:>8.2f} s run   RSS before {r['rss_before_mb']:>7.1f} MB "
        f"peak {r['peak_mb']:>7.1f} MB {rel:>7}  ({r['backend']}, cache {r['cache']})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graph", default=str(ROOT / "graphs" / "rfc_unified.yaml"))
    ap.add_argument("--backend", choices=("python", "fused"), default=None)
    ap.add_argument("--hours", type=int, default=8, help="the long replay, in copies of the hour")
    ap.add_argument("--scenario", default="trend_down")
    ap.add_argument("--short", default="20m", help="the short synthetic run")
    ap.add_argument("--long", default="8h", help="the long synthetic run")
    ap.add_argument("--quick", action="store_true", help="smoke: 1 h vs 2 h, 2 min vs 16 min")
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "ARG"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.graph, args.backend)
        return
    if args.quick:
        args.hours, args.short, args.long = 2, "2m", "16m"
    archive = SHARED / "hyperliquid/s3_archive_l2book/market_data_20240101_12_l2Book_BTC.lz4"
    build = _builder().build_recording
    print(f"graph {Path(args.graph).name} + paper; python {sys.version.split()[0]}; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, FLOWMM_CACHE_DIR=str(Path(tmp) / "cache"))
        print("replay (the BTC archive hour as a recording, repeated):")
        base = None
        for hours in sorted({1, args.hours}):  # the recording writer appends: each file once
            rec = Path(tmp) / f"btc-{hours}h.rec.lz4"
            frames = build(archive, rec, hours)
            for phase in ("parse", "cached"):
                r = _spawn("replay", str(rec), args, env)
                label = f"{hours} h ({frames:,} frames), {phase}"
                print(_row(label, r, base if phase == "cached" and base and hours > 1 else None), flush=True)
                if hours == 1 and phase == "cached":
                    base = r
        if args.skip_synthetic:
            return
        print(f"synthetic ({args.scenario}, seed 0):")
        short = None
        for dur in (args.short, args.long):
            r = _spawn("synthetic", f"{args.scenario}:{dur}", args, env)
            print(_row(dur, r, short), flush=True)
            short = short or r


if __name__ == "__main__":
    main()
