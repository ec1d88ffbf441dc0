"""A 10-node chain in csp, for bench/vs_peers.py; run with the peers' python (csp installed).

y_0 = x, y_i = 1.0001 * y_{i-1} over ``--events`` ticks of a random-walk mid, 1 ms apart, as
``bench/engine_overhead.py``'s chain of ``basic.affine`` nodes. ``--kind cpp``: csp's built-in
multiply (a C++ node); ``--kind python``: a ``@csp.node`` per link. Prints one JSON line:
events, seconds of ``csp.run`` (which also builds the graph: a few ms), csp version.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timedelta

import csp
import numpy as np
from csp import ts


@csp.node
def affine(x: ts[float], scale: float) -> ts[float]:
    return x * scale


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", choices=("cpp", "python"), required=True)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--nodes", type=int, default=10)
    args = ap.parse_args()
    start = datetime(2025, 1, 1)
    rng = np.random.default_rng(0)
    values = 100.0 + np.cumsum(rng.normal(0, 0.01, args.events))
    times = np.array([start + timedelta(milliseconds=i) for i in range(args.events)], dtype="datetime64[ns]")
    count = [0]

    @csp.graph
    def chain():
        y = csp.curve(float, (times, values))
        for _ in range(args.nodes - 1):
            y = y * 1.0001 if args.kind == "cpp" else affine(y, 1.0001)
        csp.add_graph_output("y", csp.count(y))

    end = start + timedelta(milliseconds=args.events + 1)
    t0 = time.perf_counter()
    out = csp.run(chain, starttime=start, endtime=end)
    wall = time.perf_counter() - t0
    count[0] = int(out["y"][-1][1]) if out.get("y") else 0
    out = {"events": count[0], "load_s": 0.0, "run_s": wall, "cycles": count[0], "fills": 0}
    print(json.dumps({**out, "version": csp.__version__, "kind": args.kind}))


if __name__ == "__main__":
    main()
