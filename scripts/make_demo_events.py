#!/usr/bin/env python3
"""Convert a real Hyperliquid websocket capture into the demo's normalised event file.

Input: ``hftbacktest_ws_capture/btcusd_20250126.gz`` from the shared data folder (nkaz001/hftbacktest,
MIT; ~25 s of mainnet BTC on 2025-01-26). Each line is ``<local receive ns> <raw websocket JSON>``;
the frames are ``l2Book`` snapshots and ``trades`` batches.

Output: ``flowmm/examples/btc_20250126_events.jsonl``, one event per line in the format of
``flowmm.sources.events`` (see its docstring), readable with ``Events.from_file``:

* ``l2Book`` -> ``{"t", "kind": "book", "bids": [[px, sz, n], ...], "asks": [...]}`` at the
  exchange time ``data.time`` (ms -> ns); prices and sizes arrive as JSON strings and become floats.
  A frame repeating the previous book at the same exchange time (the subscription snapshot
  is sent twice in this capture) is dropped.
* each trade of a ``trades`` frame -> ``{"t", "kind": "trade", "px", "sz", "side", "tid"}`` at its
  own exchange ``time`` (ms -> ns); ``side`` is the aggressor (``B`` buyer lifted the ask, ``A``
  seller hit the bid); trades are de-duplicated by ``tid``. The first ``trades`` frame after
  subscribing is Hyperliquid's snapshot of recent trades, so the file starts ~49 s before the
  first book: those trades are real and are kept.

Events are sorted stably by time, so same-timestamp events keep their receive order (a sweep's
trades stay together, in one engine batch). The receive time is not written: event time is the
exchange's.

It made the demo's event file before the replay source existed and is kept so the file can be
rebuilt as it was. To run a graph on the capture itself, use the replay source, which parses it
with the Hyperliquid parser (malformed frames counted, the recent-trades batch on subscribing
left out): ``flowmm run GRAPH --source replay --data .../btcusd_20250126.gz``.

Usage: ``python scripts/make_demo_events.py [--input FILE] [--output FILE]``
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CAPTURE = Path("hyperliquid/hftbacktest_ws_capture/btcusd_20250126.gz")
DEFAULT_OUTPUT = REPO / "flowmm/examples/btc_20250126_events.jsonl"
MS = 1_000_000  # ns per ms


def shared_data() -> Path:
    """The shared data folder (``FLOWMM_SHARED_DATA``, default ``<repo>/../shared/data``)."""
    return Path(os.environ.get("FLOWMM_SHARED_DATA", REPO.parent / "shared" / "data"))


def _levels(side: list[dict]) -> list[list[float]]:
    return [[float(lv["px"]), float(lv["sz"]), int(lv["n"])] for lv in side]


def convert(lines: list[str]) -> tuple[list[dict], dict[str, int]]:
    """Capture lines -> (time-sorted events, counts of what was kept and dropped)."""
    events: list[dict] = []
    seen_tids: set[int] = set()
    last_book: tuple[int, list] | None = None
    counts = {"book": 0, "trade": 0, "duplicate_book": 0, "duplicate_trade": 0, "other_frame": 0}
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        _recv_ns, _, raw = line.partition(" ")
        try:
            msg = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"line {lineno}: not JSON: {exc}") from None
        channel, data = msg.get("channel"), msg.get("data")
        if channel == "l2Book":
            t = int(data["time"]) * MS
            bids, asks = data["levels"]
            if last_book == (t, data["levels"]):
                counts["duplicate_book"] += 1
                continue
            last_book = (t, data["levels"])
            events.append({"t": t, "kind": "book", "bids": _levels(bids), "asks": _levels(asks)})
            counts["book"] += 1
        elif channel == "trades":
            for tr in data:
                tid = int(tr["tid"])
                if tid in seen_tids:
                    counts["duplicate_trade"] += 1
                    continue
                seen_tids.add(tid)
                events.append(
                    {
                        "t": int(tr["time"]) * MS,
                        "kind": "trade",
                        "px": float(tr["px"]),
                        "sz": float(tr["sz"]),
                        "side": tr["side"],
                        "tid": tid,
                    }
                )
                counts["trade"] += 1
        else:
            counts["other_frame"] += 1
    events.sort(key=lambda ev: ev["t"])  # stable: equal times keep their receive order
    return events, counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--input", type=Path, default=None, help="the capture (.gz); default: shared data")
    ap.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = ap.parse_args(argv)
    src = args.input or shared_data() / CAPTURE
    if not src.is_file():
        print(f"error: capture not found: {src} (set FLOWMM_SHARED_DATA)", file=sys.stderr)
        return 2
    with gzip.open(src, "rt") as f:
        events, counts = convert(f.readlines())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w") as f:
        f.write(f"# flowmm normalised events from {CAPTURE.name} (hftbacktest, MIT); see README.md\n")
        for ev in events:
            f.write(json.dumps(ev, separators=(",", ":")) + "\n")
    span = (events[-1]["t"] - events[0]["t"]) / 1e9 if events else 0.0
    print(
        f"wrote {args.output}: {len(events)} events ({counts['book']} book, {counts['trade']} trade; "
        f"dropped {counts['duplicate_book']} repeated book, {counts['duplicate_trade']} repeated trade, "
        f"{counts['other_frame']} other frames), spanning {span:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
