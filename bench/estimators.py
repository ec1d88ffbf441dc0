"""Cost of every estimator kernel: ns per update and compile time, for each `estimators.*` node type.

    python bench/estimators.py [--updates 20000] [--cached] [--jobs 1] [--only regime_hmm,vol]
                               [--irregular]

The same harness as bench/features.py (imported from it, not copied): node types discovered
from the registry at run time, default params, every input wired (optional ones too), a
generated @njit driver calling the kernel `--updates` times, one update per simulated second,
with the realistic inputs documented there (20-level book, 3 tape prints per update, one own
fill every 5 updates and one 5-s markout every 5 updates, ctx, prices, the cycle number on
`clock`; `obs` and `vec` inputs get standard normal values). Compile s is the first call of
the kernel from Python with the engine's argument types, a real compile unless `--cached`.

`--irregular` replaces the driver's fixed 1-s step by 1 s + a millisecond jitter (dt passed
to the kernel accordingly), as an event-triggered node sees it: kernels that cache work per
dt (regime_hmm's transition matrix) then pay for it on every update.

Figures only, no asserts. A node being written right now may fail to build or run: its row
says so and the others are still measured.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import features as fb  # noqa: E402  (bench/features.py: Case, _driver, _time, _empty_loop_ns)

PREFIX = "estimators."
FIXED_NOW = "now = np.int64(T0 + (k + 1) * S)"
JITTER_NOW = "now = np.int64(T0 + (k + 1) * S + ((k * 7919) % 1000) * 1_000_000)"


class Case(fb.Case):
    """bench/features.Case, optionally with irregular event times (and the matching dt)."""

    def __init__(self, cls, n_updates: int, irregular: bool = False, seed: int = 0):
        super().__init__(cls, n_updates, seed)
        if irregular:
            call = "kernel(now, 1.0, params"
            if FIXED_NOW not in self.source or call not in self.source:
                raise RuntimeError("bench/features.py's driver changed: update --irregular")
            self.source = (
                self.source.replace(FIXED_NOW, f"prev = now if k else np.int64(T0)\n        {JITTER_NOW}")
                .replace(call, "kernel(now, (now - prev) * 1e-9, params")
                .replace("    mask = 0\n", "    mask = 0\n    now = np.int64(T0)\n")
            )


def _measure(types: list[str], updates: int, repeat: int, irregular: bool = False) -> list[tuple]:
    """Per type: (type, ns/update, compile s, how, note), as bench/features._measure."""
    from flowmm.core.node import registry
    from flowmm.core.ports import PORT_TYPES

    reg = registry()
    rows = []
    for t in types:
        comp, how = float("nan"), "-"
        try:
            case = Case(reg[t], updates, irregular)
            kernel = case.cls.kernel
            hits = sum(kernel.stats.cache_hits.values())
            start = time.perf_counter()
            kernel(*case.example)
            comp = time.perf_counter() - start
            how = "cache load" if sum(kernel.stats.cache_hits.values()) > hits else "compiled"
            ns, mask = fb._time(case, fb._driver(case), repeat)
        except Exception as exc:  # a node being written right now may not run yet: say so, go on
            first = str(exc).replace("\x1b[1m", "").strip().splitlines()
            msg = f"failed: {type(exc).__name__}: {(first[0] if first else '')[:80]}"
            rows.append((t, float("nan"), comp, how, msg))
            continue
        ports = [p for p, d in case.node.outputs.items() if not PORT_TYPES[d.type].batch]
        silent = [p for i, p in enumerate(ports) if not (mask >> i) & 1]
        rows.append((t, ns, comp, how, f"never emitted: {', '.join(silent)}" if silent else ""))
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--updates", type=int, default=20_000, help="kernel calls per timed run")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per node (the best is printed)")
    ap.add_argument("--cached", action="store_true", help="use numba's on-disk cache (no real compile)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (1: measure in this process)")
    ap.add_argument("--only", default="", help=f"comma-separated type names (with or without {PREFIX!r})")
    ap.add_argument("--irregular", action="store_true", help="jittered event times instead of a 1-s step")
    args = ap.parse_args(argv)

    tmp = None
    if not args.cached:  # before numba is imported (workers inherit it): real compiles
        tmp = tempfile.TemporaryDirectory(prefix="flowmm-bench-estimators-")
        os.environ["NUMBA_CACHE_DIR"] = tmp.name
    import numba

    from flowmm.core.node import registry

    types = sorted(t for t in registry() if t.startswith(PREFIX))
    if args.only:
        want = {w if w.startswith(PREFIX) else PREFIX + w for w in args.only.split(",")}
        types = [t for t in types if t in want]
    jobs = max(1, min(args.jobs, len(types)))
    print(
        f"flowmm estimator kernels: {len(types)} types, python {sys.version.split()[0]}, numba "
        f"{numba.__version__}, {os.cpu_count()} cpus, {jobs} worker(s); {args.updates:,} updates per run, "
        f"best of {args.repeat}"
    )
    print(
        f"inputs per update: {fb.PRINTS} prints, a fill and a markout every {fb.FILL_EVERY} updates, book, "
        f"ctx, prices; {'jittered' if args.irregular else '1-s'} steps; empty driver loop "
        f"{fb._empty_loop_ns(args.updates):.1f} ns/update"
    )
    t0 = time.perf_counter()
    if jobs == 1:
        rows = _measure(types, args.updates, args.repeat, args.irregular)
    else:
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        chunks = [types[i::jobs] for i in range(jobs)]
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            parts = pool.map(
                _measure, chunks, [args.updates] * jobs, [args.repeat] * jobs, [args.irregular] * jobs
            )
            rows = sorted(r for part in parts for r in part)
    print(f"\n{'node':30s} {'ns/update':>10s} {'compile s':>10s}  first call")
    total = 0.0
    for t, ns, comp, how, note in rows:
        total += 0.0 if ns != ns else ns
        print(f"{t:30s} {ns:10.1f} {comp:10.3f}  {how}{'; ' + note if note else ''}")
    print(f"{'all of them, one update':30s} {total:10.1f}")
    print(f"(measured in {time.perf_counter() - t0:.1f} s wall)")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
