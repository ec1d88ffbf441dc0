"""Throughput of the synthetic market: events generated per second, and numba compile time.

    python bench/synthetic_throughput.py [--scenarios calm,flow_calm,incident] [--duration 1h] [--seeds 3]

Prints the first-call time (numba compile, or load from the on-disk cache when warm), then per
scenario events/s and simulated-seconds per wall-second over the given runs (generation only:
the events are built and dropped, no engine runs), and each scenario's events/s relative to
the first one's (issue 17: the order-flow scenarios at least half as fast per event as calm)."""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", default="calm,flow_calm,incident", help="first = base")
    ap.add_argument("--duration", default="1h")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]

    t0 = time.perf_counter()
    from flowmm.sources.synthetic import Synthetic

    t_import = time.perf_counter() - t0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"import {t_import:.2f} s; load average {load:.2f} on {os.cpu_count()} cores")
    rates: dict[str, float] = {}
    for name in names:
        t0 = time.perf_counter()
        n = sum(len(c) for c in Synthetic(name, seed=10_000, duration="60s").chunks())
        t_first = time.perf_counter() - t0
        events = 0
        sim_s = 0.0
        t0 = time.perf_counter()
        for seed in range(args.seeds):
            src = Synthetic(name, seed=seed, duration=args.duration)
            for chunk in src.chunks():
                events += len(chunk)
            sim_s += src.duration_s
        wall = time.perf_counter() - t0
        rates[name] = events / wall
        rel = f", {rates[name] / rates[names[0]]:.2f} x {names[0]}" if name != names[0] else ""
        print(
            f"{name} x {args.seeds} seeds x {args.duration}: first 60 s run ({n} events) {t_first:.2f} s; "
            f"{events:,} events in {wall:.2f} s -> {events / wall:,.0f} events/s{rel}, "
            f"{sim_s / wall:,.0f} simulated s per s"
        )


if __name__ == "__main__":
    main()
