"""Throughput of a run with the paper broker: events/s through graphs/minimal.yaml.

    python bench/paper_throughput.py [--scenario trend_down] [--duration 20m] [--seeds 3]

The market is generated up front (its cost is bench/synthetic_throughput.py's), then each seed
runs the minimal quoter with the paper broker on the reference engine (the fused loop does not
drive a broker yet). Prints the first run (numba compile or cache load) apart from the timed ones,
then events/s, µs per event, fills and actions per run, and peak RSS."""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="trend_down")
    ap.add_argument("--duration", default="20m")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()

    import flowmm
    from flowmm.execution.paper import paper_broker_for
    from flowmm.sources import Events
    from flowmm.sources.synthetic import Synthetic

    graph = flowmm.load_graph(ROOT / "graphs" / "minimal.yaml")
    t0 = time.perf_counter()
    graph.run(Synthetic(args.scenario, seed=10_000, duration="60s"), broker=paper_broker_for(graph.plan))
    print(f"first 60 s run: {time.perf_counter() - t0:.2f} s (numba compile or cache load)")

    tapes = [Synthetic(args.scenario, seed=s, duration=args.duration) for s in range(args.seeds)]
    tapes = [(Events(src.events(), end_time=src.end_time), src.duration_s) for src in tapes]
    events = fills = actions = 0
    sim_s = 0.0
    t0 = time.perf_counter()
    for tape, dur in tapes:
        run = graph.run(tape, broker=paper_broker_for(graph.plan))
        events += run.summary["events"]
        fills += run.summary["fills_buys"] + run.summary["fills_sells"]
        actions += run.summary["actions_sent"]
        sim_s += dur
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{args.scenario} x {args.seeds} seeds x {args.duration}, minimal quoter + paper broker "
        f"(python backend): {events:,} events in {wall:.2f} s -> {events / wall:,.0f} events/s, "
        f"{wall / events * 1e6:.1f} us/event, {sim_s / wall:,.0f} simulated s per s"
    )
    print(
        f"per run: {fills / args.seeds:.1f} fills, {actions / args.seeds:.0f} actions; peak RSS {rss:.0f} MiB"
    )


if __name__ == "__main__":
    main()
