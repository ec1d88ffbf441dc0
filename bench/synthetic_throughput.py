"""Throughput of the synthetic market: events generated per second, and numba compile time.

    python bench/synthetic_throughput.py [--scenario trend_down] [--duration 1h] [--seeds 3]

Prints the first-call time (numba compile, or load from the on-disk cache when warm), then
events/s and simulated-seconds per wall-second over the given runs (generation only: the
events are built and dropped, no engine runs)."""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="trend_down")
    ap.add_argument("--duration", default="1h")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()

    t0 = time.perf_counter()
    from flowmm.sources.synthetic import Synthetic

    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = sum(len(c) for c in Synthetic(args.scenario, seed=10_000, duration="60s").chunks())
    t_first = time.perf_counter() - t0
    print(
        f"import {t_import:.2f} s; first 60 s run ({n} events) {t_first:.2f} s (numba compile or cache load)"
    )

    events = 0
    sim_s = 0.0
    t0 = time.perf_counter()
    for seed in range(args.seeds):
        src = Synthetic(args.scenario, seed=seed, duration=args.duration)
        for chunk in src.chunks():
            events += len(chunk)
        sim_s += src.duration_s
    wall = time.perf_counter() - t0
    print(
        f"{args.scenario} x {args.seeds} seeds x {args.duration}: {events:,} events in {wall:.2f} s -> "
        f"{events / wall:,.0f} events/s, {sim_s / wall:,.0f} simulated s per s"
    )


if __name__ == "__main__":
    main()
