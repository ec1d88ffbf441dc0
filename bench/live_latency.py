"""In-process latency of the live path: a frame's arrival -> the desired ladder, on the loopback server.

A loopback server streams a recording (the archive hour's BTC ``l2Book`` frames from the shared
data, or ``--data FILE``) at ``--speed`` x real time; the live source receives it over a real
websocket on 127.0.0.1, records and parses each frame, and the reference engine (with the
paper broker behind the stale guard, as ``flowmm run --source live`` uses) runs a minimal
quoting graph on an ``on_book`` clock, so every book is one quote cycle that recomputes the
ladder. For each book event the latency is

    (wall time when the engine has processed the chunk holding it) - (the frame's receive
    time, stamped by the websocket reader thread)

so it counts the queue hop to the engine thread, recording, parsing, the hold of a batch until
it is known complete (the next frame with a later exchange time, or ``flush_ms`` of quiet),
the engine step and the broker. The REST bootstrap snapshot (it waits for the stream) is left
out. Printed: p50 / p90 / p99 / max, and the same without the engine (arrival -> the chunk's
release by the source), so the two costs are told apart.

Figures only, no asserts (DESIGN.md). Usage::

    python bench/live_latency.py                     # 1,500 frames at 50x (~20 s)
    python bench/live_latency.py --frames 300 --speed 20
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT.parent / "shared/data/hyperliquid/s3_archive_l2book/market_data_20240101_12_l2Book_BTC.lz4"
GRAPH = {
    "name": "latency_probe",
    "instrument": {"coin": "BTC", "sz_decimals": 5},
    "clock": {"on_book": True},
    "execution": {"ladder": "quote.ladder"},
    "nodes": {
        "vol": {"type": "estimators.ewma_vol", "in": {"price": "source.mid"}, "params": {"half_life_s": 60}},
        "quote": {
            "type": "quoting.minimal",
            "in": {"mid": "source.mid"},
            "params": {
                "half_spread_bps": 1.0,
                "level_spacing_bps": 1.0,
                "levels": 3,
                "size": 0.001,
                "sz_decimals": 5,
            },
        },  # fmt: skip
    },
}


def archive_recording(n: int, folder: Path) -> Path:
    import lz4.frame

    from flowmm.hyperliquid.messages import iso_to_ns

    raw = lz4.frame.decompress(ARCHIVE.read_bytes()).splitlines()[:n]
    path = folder / "archive.rec"
    with open(path, "w") as f:
        for line in raw:
            d = json.loads(line)
            f.write(f"{iso_to_ns(d['time'])} {json.dumps(d['raw'], separators=(',', ':'))}\n")
    return path


def pct(name: str, xs_ns: list[int]) -> str:
    a = np.asarray(xs_ns, np.float64) / 1e3
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return f"  {name:<34} p50 {p50:8.0f} us   p90 {p90:8.0f} us   p99 {p99:8.0f} us   max {a.max():8.0f} us"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="a recording to stream (default: the archive hour's BTC books)")
    ap.add_argument("--frames", type=int, default=1500)
    ap.add_argument("--speed", type=float, default=50.0)
    ap.add_argument("--flush-ms", type=float, default=5.0)
    args = ap.parse_args()

    from flowmm.core import events as E
    from flowmm.core.engine import Interpreter
    from flowmm.execution.paper import paper_broker_for
    from flowmm.graph import load_graph
    from flowmm.hyperliquid.loopback import LoopbackServer, Recording
    from flowmm.sources.live import Live, LiveConfig, guard_for

    with tempfile.TemporaryDirectory() as tmp:
        if args.data is None and not ARCHIVE.exists():
            print(f"no data: {ARCHIVE} is missing; pass --data FILE", file=sys.stderr)
            return 2
        data = args.data or archive_recording(args.frames, Path(tmp))
        rec = Recording.load(data, limit=args.frames)
        graph = load_graph(GRAPH)
        with LoopbackServer(rec, speed=args.speed, start_delay_s=0.1) as srv:
            cfg = LiveConfig(url=srv.url, coin=rec.coins[0], stale_ms={}, flush_ms=args.flush_ms, bbo=False)
            live = Live(cfg, record=Path(tmp) / "feed.rec.lz4")
            broker = guard_for(paper_broker_for(graph.plan, live), live)
            engine = Interpreter(graph.plan, broker)

            def stop_when_streamed():
                srv.finished.wait(3600)
                time.sleep(0.5)
                live.stop("bench")

            threading.Thread(target=stop_when_streamed, daemon=True).start()
            total, held, engine_ns, cycles = [], [], [], 0
            started, stream_ns = time.perf_counter(), time.time_ns()
            for chunk in live.chunks():
                released = time.time_ns()
                engine.process(chunk)
                done = time.time_ns()
                engine_ns.append(done - released)
                arrivals = np.asarray(live.arrivals, np.int64)
                # book events of websocket frames (the REST bootstrap snapshot waits for the stream)
                books = np.nonzero((chunk.kind == E.BOOK) & (arrivals >= stream_ns))[0]
                total += list(done - arrivals[books])
                held += list(released - arrivals[books])
            engine.finish(live.end_time)
            wall = time.perf_counter() - started
            cycles = engine.n_cycles
    s = live.summary()
    print(
        f"live latency on the loopback server: {s['frames']:,} frames of {rec.coins[0]} at {args.speed:g}x,"
        f" {cycles:,} quote cycles (on_book), python engine + paper broker, {wall:.1f} s wall"
    )
    print(pct("arrival -> ladder (book events)", total))
    print(pct("arrival -> released by the source", held))
    print(pct("engine + broker, per chunk", engine_ns))
    print(
        f"  chunks {len(engine_ns):,}, timers {s['timers']:,} (flush {args.flush_ms:g} ms),"
        f" threads left {s['threads_left']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
