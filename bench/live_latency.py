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

``--graph FILE`` runs a graph file instead of the minimal probe (``--on-book``: a quote cycle on
every book, whatever its clock; its instrument is set to the data's coin), with paper execution,
through ``Graph.run`` and whatever engine it picks: the engine + broker time of a chunk (a
batch the live source released) is the time from the source handing it over to the engine
asking for the next one, so the flush wait is excluded.

Figures only, no asserts (DESIGN.md). Usage::

    python bench/live_latency.py                     # 1,500 frames at 50x (~20 s)
    python bench/live_latency.py --frames 300 --speed 20
    python bench/live_latency.py --graph graphs/rfc_unified.yaml --on-book --frames 5587   # the hour
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
from _engine import engine_kwargs  # bench/ is on sys.path when a script runs

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


class _Timed:
    """The live source, timing what happens between handing a chunk over and the next request
    (the engine and broker on that chunk); everything else is the source's own."""

    def __init__(self, live, book_kind: int):
        self.live, self.book = live, book_kind
        self.total: list[int] = []
        self.held: list[int] = []
        self.engine_ns: list[int] = []

    def __getattr__(self, name):
        return getattr(self.live, name)

    def chunks(self):
        stream_ns = time.time_ns()
        for chunk in self.live.chunks():
            arrivals = np.asarray(self.live.arrivals, np.int64)
            # book events of websocket frames (the REST bootstrap snapshot waits for the stream)
            books = np.nonzero((chunk.kind == self.book) & (arrivals >= stream_ns))[0]
            released = time.time_ns()
            yield chunk
            done = time.time_ns()
            self.engine_ns.append(done - released)
            self.total += list(done - arrivals[books])
            self.held += list(released - arrivals[books])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="a recording to stream (default: the archive hour's BTC books)")
    ap.add_argument("--frames", type=int, default=1500)
    ap.add_argument("--speed", type=float, default=50.0)
    ap.add_argument("--flush-ms", type=float, default=5.0)
    ap.add_argument("--graph", type=Path, help="a graph file (default: the minimal probe graph)")
    ap.add_argument("--on-book", action="store_true", help="a quote cycle on every book")
    ap.add_argument("--backend", choices=("python", "fused"), help="default: what flowmm run picks")
    args = ap.parse_args()

    import yaml

    from flowmm.core import events as E
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
        spec = GRAPH if args.graph is None else yaml.safe_load(args.graph.read_text())
        if args.graph is not None:
            spec["instrument"] = {"coin": rec.coins[0], "sz_decimals": 5 if rec.coins[0] == "BTC" else 2}
        if args.on_book:
            spec["clock"] = {"on_book": True}
        graph = load_graph(spec)
        with LoopbackServer(rec, speed=args.speed, start_delay_s=0.1) as srv:
            cfg = LiveConfig(url=srv.url, coin=rec.coins[0], stale_ms={}, flush_ms=args.flush_ms, bbo=False)
            live = Live(cfg, record=Path(tmp) / "feed.rec.lz4")
            broker = guard_for(paper_broker_for(graph.plan, live), live)

            def stop_when_streamed():
                srv.finished.wait(3600)
                time.sleep(0.5)
                live.stop("bench")

            threading.Thread(target=stop_when_streamed, daemon=True).start()
            timed = _Timed(live, E.BOOK)
            started = time.perf_counter()
            run = graph.run(timed, broker=broker, **engine_kwargs(broker, args.backend))
            backend = run.summary.get("backend", "?")
            wall = time.perf_counter() - started
            cycles = run.summary["cycles"]
            total, held, engine_ns = timed.total, timed.held, timed.engine_ns
    s = live.summary()
    print(
        f"live latency on the loopback server: {s['frames']:,} frames of {rec.coins[0]} at {args.speed:g}x,"
        f" {cycles:,} quote cycles (on_book), graph {graph.name}, {backend} engine + paper broker,"
        f" {wall:.1f} s wall"
    )
    print(pct("arrival -> ladder (book events)", total))
    print(pct("arrival -> released by the source", held))
    print(pct("engine + broker, per batch (chunk)", engine_ns))
    print(
        f"  chunks {len(engine_ns):,}, timers {s['timers']:,} (flush {args.flush_ms:g} ms),"
        f" threads left {s['threads_left']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
