"""Replay throughput: frames/s parsed from a raw recording, events/s from the columnar cache.

The recording is built from the real BTC archive hour (5,587 twenty-level l2Book frames,
each written as ``<recv_ns> <frame JSON>`` with the archive's receive time), repeated
``--repeat`` times with shifted times so the figure is not dominated by start-up. Printed:

* parse: frames/s and events/s of ``Replay(cache=False)`` (read LZ4, JSON, parser, table);
* first replay with the cache on (parse + write the chunk store), and a second one (read the
  store back, chunk by chunk, as a run does);
* the file sizes (recording, cache).

Figures only, no asserts. Usage::

    python bench/replay_throughput.py             # the hour x 4
    python bench/replay_throughput.py --repeat 1  # quick
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import lz4.frame

from flowmm.hyperliquid.messages import iso_to_ns
from flowmm.io.recording import RecordingWriter
from flowmm.sources.replay import Replay

ARCHIVE = "hyperliquid/s3_archive_l2book/market_data_20240101_12_l2Book_BTC.lz4"
HOUR_NS = 3600 * 10**9


def build_recording(src: Path, dst: Path, repeat: int) -> int:
    lines = lz4.frame.decompress(src.read_bytes()).splitlines()
    n = 0
    with RecordingWriter(dst) as w:
        for k in range(repeat):
            for line in lines:
                rec = json.loads(line)
                frame = rec["raw"]
                frame["data"]["time"] += k * 3600 * 1000
                w.write(iso_to_ns(rec["time"]) + k * HOUR_NS, json.dumps(frame, separators=(",", ":")))
                n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=4, help="copies of the hour in the recording")
    args = ap.parse_args()
    shared = Path(
        os.environ.get("FLOWMM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FLOWMM_CACHE_DIR"] = str(Path(tmp) / "cache")
        rec = Path(tmp) / "btc.rec.lz4"
        frames = build_recording(shared / ARCHIVE, rec, args.repeat)
        Replay(rec, cache=False, end=1)  # import and warm everything once (the tick's numba load)

        t0 = time.perf_counter()
        src = Replay(rec, cache=False)
        parse = time.perf_counter() - t0
        n = len(src.store)
        print(
            f"recording: {frames:,} l2Book frames (20+20 levels), "
            f"{rec.stat().st_size / 1e6:.1f} MB compressed"
        )
        print(f"parse (no cache): {parse:.2f} s -> {frames / parse:,.0f} frames/s, {n / parse:,.0f} events/s")

        t0 = time.perf_counter()
        first = Replay(rec)
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        second = Replay(rec)
        read = sum(len(c) for c in second.chunks())  # the store is read as the run reads it
        t_second = time.perf_counter() - t0
        assert read == n
        cache = Path(second.cache_state.split("(", 1)[1].rstrip(")"))
        size = sum(f.stat().st_size for f in cache.iterdir())
        print(f"first replay, cache {first.cache_state.split()[0]}: {t_first:.2f} s")
        print(
            f"second replay, cache {second.cache_state.split()[0]}: {t_second:.3f} s -> "
            f"{n / t_second:,.0f} events/s "
            f"({size / 1e6:.1f} MB cache, {len(second.store.chunks)} chunks)"
        )


if __name__ == "__main__":
    main()
