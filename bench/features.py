"""Cost of every feature kernel: ns per update and compile time, for each `features.*` node type.

    python bench/features.py [--updates 20000] [--cached] [--jobs 1] [--only bim,hawkes]

The node types are discovered from the registry at run time (flowmm.core.node.registry), so
every `features.*` module present is measured, with its default params and every input wired
(optional ones too). Per type:

* compile s: the first call of the kernel from Python with the engine's argument types
  (flowmm.testing.example_args). By default numba's cache points at a fresh temporary folder,
  so this is a real compile (helpers shared by several kernels, e.g. the book ones, are
  compiled once, by whichever kernel comes first); `--cached` uses the normal on-disk cache
  instead, and the column is then mostly a cache load (the table says which);
* ns/update: a generated @njit driver calls the kernel `--updates` times, one update per
  simulated second, with realistic inputs changing every update: a 20-level book around a
  random-walk mid (HYPE-like: 0.001 ticks on ~28, levels 1-5 ticks apart, so about 20 bps
  deep: 10 bps windows are covered, 50 bps ones are not), 3 tape prints per update, one own
  fill every 5 updates, an asset context every update (funding ~1e-5/h, OI ~5e5), a reference
  (BTC) and a spot price, and the cycle number on `clock` inputs. The loop and its argument
  passing are included (the empty-driver figure is printed for scale), the Python dispatch is
  not (the fused backend calls kernels from compiled code too). Best of `--repeat` timed runs,
  each on fresh state after a warm-up run. Value outputs a kernel never emitted in the run are
  listed: its figure is then the cost of an early-out path, not of the full computation.

`--jobs 2` splits the node types over two worker processes: faster on an idle machine, noisier
figures on a busy one. Figures only, no asserts (DESIGN.md: measured, not assumed).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000
N_BOOKS = 256  # distinct books / value inputs cycled through
PRINTS = 3  # tape prints per update
FILL_EVERY = 5  # updates per own fill


# -- realistic inputs ----------------------------------------------------------------------------
def _mid_walk(rng, n, p0=28.0, bps=1.0):
    """A random walk that closes on itself after n steps, so cycling through it has no jump."""
    steps = rng.normal(0.0, bps * 1e-4, n)
    return p0 * np.exp(np.cumsum(steps - steps.mean()))


def _books(rng, mids):
    from flowmm.core.ports import ASK_N, ASK_PX, ASK_SZ, BID_N, BID_PX, BID_SZ, BOOK_LEVELS

    tick = 0.001
    out = np.full((len(mids), BOOK_LEVELS, 6), np.nan)
    for k, m in enumerate(mids):
        bid = np.floor(m / tick) * tick
        out[k, :, BID_PX] = bid - np.r_[0, np.cumsum(rng.integers(1, 6, BOOK_LEVELS - 1))] * tick
        out[k, :, ASK_PX] = bid + tick + np.r_[0, np.cumsum(rng.integers(1, 6, BOOK_LEVELS - 1))] * tick
        out[k, :, BID_SZ] = rng.lognormal(3.0, 1.0, BOOK_LEVELS)
        out[k, :, ASK_SZ] = rng.lognormal(3.0, 1.0, BOOK_LEVELS)
        out[k, :, BID_N] = rng.integers(1, 12, BOOK_LEVELS)
        out[k, :, ASK_N] = rng.integers(1, 12, BOOK_LEVELS)
    return out


def _ctx(rng, mids):
    from flowmm.core.ports import (
        CTX_FUNDING,
        CTX_MARK,
        CTX_OI,
        CTX_ORACLE,
        CTX_PREDICTED_FUNDING,
        CTX_PREMIUM,
    )

    n = len(mids)
    out = np.empty((n, 6))
    out[:, CTX_FUNDING] = 1.25e-5 + np.cumsum(rng.normal(0, 2e-7, n))
    out[:, CTX_PREDICTED_FUNDING] = out[:, CTX_FUNDING] + rng.normal(0, 1e-6, n)
    out[:, CTX_OI] = 5e5 * np.exp(np.cumsum(rng.normal(0, 1e-4, n)))
    out[:, CTX_MARK] = mids
    out[:, CTX_ORACLE] = mids * (1 - 2e-4 + rng.normal(0, 5e-5, n))
    out[:, CTX_PREMIUM] = out[:, CTX_MARK] / out[:, CTX_ORACLE] - 1.0
    return out


def _f64(rng, name, mids, n):
    if name in ("ref", "ref_mid", "btc"):
        return _mid_walk(rng, n, p0=95_000.0)
    if name in ("spot", "spot_mid"):
        return mids * (1 - 3e-4 + rng.normal(0, 1e-4, n))
    return mids  # a price-like input (price, mid, ...)


def _batch(rng, kind, mids, n_updates, per_update):
    """A ring prefilled with every record of the run, and the [start, end) of each update."""
    from flowmm.core.ports import PORT_TYPES

    n_rec = max(1, int(n_updates * per_update) + 1)
    times, recs = PORT_TYPES[kind].allocate(capacity=n_rec)
    upd = np.floor(np.arange(n_rec) / per_update).astype(np.int64)
    times[:] = T0 + upd * S
    m = mids[upd % len(mids)]  # the mid of the update the record belongs to
    side = rng.choice([-1.0, 1.0], n_rec)
    if kind == "trades":
        from flowmm.core.ports import TR_PX, TR_SIDE, TR_SZ, TR_TID

        recs[:, TR_PX] = m * (1 + side * 1e-4 * (1 + rng.integers(0, 3, n_rec)))
        recs[:, TR_SZ] = rng.lognormal(2.0, 1.2, n_rec)
        recs[:, TR_SIDE] = side
        recs[:, TR_TID] = np.arange(n_rec)
    elif kind == "fills":
        from flowmm.core.ports import FI_FEE, FI_MAKER, FI_MID_REF, FI_OID, FI_PX, FI_SIDE, FI_SZ

        recs[:, FI_PX] = m * (1 - side * 2e-4)
        recs[:, FI_SZ] = 0.5
        recs[:, FI_SIDE] = side
        recs[:, FI_OID] = np.arange(n_rec)
        recs[:, FI_FEE] = 0.0
        recs[:, FI_MAKER] = 1.0
        recs[:, FI_MID_REF] = m
    elif kind == "markouts":
        from flowmm.core.ports import MK_AS_BPS, MK_HORIZON_S, MK_MARKOUT_BPS, MK_OID, MK_PX, MK_SIDE

        recs[:, MK_OID] = np.arange(n_rec)
        recs[:, MK_HORIZON_S] = 5.0
        recs[:, MK_SIDE] = side
        recs[:, MK_PX] = m
        recs[:, MK_MARKOUT_BPS] = rng.normal(0, 3, n_rec)
        recs[:, MK_AS_BPS] = -recs[:, MK_MARKOUT_BPS]
    else:  # actions and anything new: no records
        n_rec = 0
    return times, recs, n_rec


# -- the generated driver ------------------------------------------------------------------------
class Case:
    """One node type: its kernel arguments, the driver's extra arrays and the driver source."""

    def __init__(self, cls, n_updates: int, seed: int = 0):
        from flowmm.core.ports import PORT_TYPES
        from flowmm.testing import example_args

        self.cls = cls
        self.node = cls(cls.Params())
        self.n = n_updates
        rng = np.random.default_rng(seed)
        mids = _mid_walk(rng, N_BOOKS)
        self.example = example_args(self.node)
        names: list[str] = []  # driver arguments after (n, kernel)
        self.arrays: list[object] = []
        call: list[str] = ["now", "1.0", "params"]
        self._add(names, "params", self.node.pack_params())
        for i, arr in enumerate(self.node.init_state()):
            self._add(names, f"s{i}", arr)
            call.append(f"s{i}")
        body: list[str] = []
        for name, decl in self.node.inputs.items():
            pt = PORT_TYPES[decl.type]
            v = f"in_{name}"
            if pt.batch:
                per = {"trades": PRINTS, "fills": 1 / FILL_EVERY, "markouts": 1 / FILL_EVERY}.get(
                    decl.type, 0
                )
                times, recs, n_rec = _batch(rng, decl.type, mids, n_updates, per)
                self._add(names, f"{v}_t", times)
                self._add(names, f"{v}_r", recs)
                if per:
                    body.append(f"{v}_a = np.int64(k * {per!r}); {v}_b = np.int64((k + 1) * {per!r})")
                else:
                    body.append(f"{v}_a = np.int64(0); {v}_b = np.int64(0)")
                call += [f"{v}_t", f"{v}_r", f"{v}_a", f"{v}_b"]
                continue
            if name == "clock" and decl.type == "f64" and not decl.variadic:
                self._add(names, v, np.zeros(1))  # the cycle number: new every update
                body.append(f"{v}[0] = k")
                call += [v, "True"]
                continue
            if decl.type == "book":
                seq = _books(rng, mids)
            elif decl.type == "ctx":
                seq = _ctx(rng, mids)
            elif decl.type == "f64":
                seq = _f64(rng, name, mids, N_BOOKS).reshape(-1, 1)
            else:  # obs, vec, ladder, orders: the example's shape, plausible values
                seq = rng.normal(0.0, 1.0, (N_BOOKS, *self.example_shape(name)))
                if decl.type in ("ladder", "orders"):
                    seq[:] = np.nan
            if decl.variadic:
                seq = seq[:, None]
                self._add(names, f"{v}_k", np.ones(1, np.bool_))
            self._add(names, v, np.ascontiguousarray(seq))
            call += [f"{v}[k % {N_BOOKS}]", f"{v}_k" if decl.variadic else "True"]
        for name, decl in self.node.outputs.items():
            pt = PORT_TYPES[decl.type]
            if pt.batch:
                times, recs = pt.allocate(capacity=1024)
                self._add(names, f"out_{name}_t", times)
                self._add(names, f"out_{name}_r", recs)
                self._add(names, f"out_{name}_c", np.zeros(1, np.int64))
                call += [f"out_{name}_t", f"out_{name}_r", f"out_{name}_c"]
            else:
                self._add(names, f"out_{name}", pt.allocate(self.node.output_size(name)))
                call.append(f"out_{name}")
        lines = [
            f"def drive(n, kernel, {', '.join(names)}):",
            "    mask = 0",
            "    for k in range(n):",
            "        now = np.int64(T0 + (k + 1) * S)",
            *("        " + b for b in body),
            f"        mask |= kernel({', '.join(call)})",
            "    return mask",
        ]
        self.source = "\n".join(lines)

    def example_shape(self, port: str) -> tuple[int, ...]:
        from flowmm.core.ports import PORT_TYPES

        i = 3 + len(self.node.init_state())
        for name, decl in self.node.inputs.items():
            if name == port:
                shape = tuple(np.shape(self.example[i]))
                return shape[1:] if decl.variadic else shape  # one source; __init__ stacks them
            i += 4 if PORT_TYPES[decl.type].batch else 2
        raise KeyError(port)

    def _add(self, names: list[str], name: str, arr) -> None:
        names.append(name)
        self.arrays.append(arr)

    def fresh_arrays(self) -> list[object]:
        """Copies, so every timed run starts from the node's initial state."""
        return [a.copy() if isinstance(a, np.ndarray) else a for a in self.arrays]


def _driver(case: Case):
    from numba import njit

    ns = {"np": np, "T0": T0, "S": S}
    exec(compile(case.source, f"<driver {case.cls.type_name}>", "exec"), ns)
    return njit(ns["drive"])


def _time(case: Case, drive, repeat: int) -> tuple[float, int]:
    """Best ns per update, and the outputs emitted at least once (bitmask) in a timed run."""
    kernel = case.cls.kernel
    drive(min(case.n, 1000), kernel, *case.fresh_arrays())  # compile the driver, warm caches
    best = float("inf")
    mask = 0
    for _ in range(repeat):
        arrays = case.fresh_arrays()
        t = time.perf_counter()
        mask = drive(case.n, kernel, *arrays)
        best = min(best, time.perf_counter() - t)
    return best / case.n * 1e9, int(mask)


def _empty_loop_ns(n: int) -> float:
    from numba import njit

    @njit
    def loop(n, books):
        acc = 0.0
        for k in range(n):
            b = books[k % N_BOOKS]
            acc += b[0, 0]
        return acc

    books = np.ones((N_BOOKS, 20, 6))
    loop(10, books)
    t = time.perf_counter()
    loop(n, books)
    return (time.perf_counter() - t) / n * 1e9


def _measure(types: list[str], updates: int, repeat: int) -> list[tuple]:
    """Per type: (type, ns/update, compile s, how, note). Runs in a worker process: the first
    kernel call compiles it (or loads it from numba's cache), then the driver times it."""
    from flowmm.core.node import registry
    from flowmm.core.ports import PORT_TYPES

    reg = registry()
    rows = []
    for t in types:
        comp, how = float("nan"), "-"
        try:
            case = Case(reg[t], updates)
            kernel = case.cls.kernel
            hits = sum(kernel.stats.cache_hits.values())
            start = time.perf_counter()
            kernel(*case.example)
            comp = time.perf_counter() - start
            how = "cache load" if sum(kernel.stats.cache_hits.values()) > hits else "compiled"
            ns, mask = _time(case, _driver(case), repeat)
        except Exception as exc:  # a node being written right now may not run yet: say so, go on
            rows.append((t, float("nan"), comp, how, f"failed: {type(exc).__name__}: {str(exc)[:80]}"))
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
    ap.add_argument("--only", default="", help="comma-separated type names (with or without 'features.')")
    args = ap.parse_args(argv)

    tmp = None
    if not args.cached:  # before numba is imported (workers inherit it): real compiles
        tmp = tempfile.TemporaryDirectory(prefix="flowmm-bench-features-")
        os.environ["NUMBA_CACHE_DIR"] = tmp.name
    import numba

    from flowmm.core.node import registry

    types = sorted(t for t in registry() if t.startswith("features."))
    if args.only:
        want = {w if w.startswith("features.") else f"features.{w}" for w in args.only.split(",")}
        types = [t for t in types if t in want]
    jobs = max(1, min(args.jobs, len(types)))
    print(
        f"flowmm feature kernels: {len(types)} types, python {sys.version.split()[0]}, numba "
        f"{numba.__version__}, {os.cpu_count()} cpus, {jobs} worker(s); {args.updates:,} updates per run, "
        f"best of {args.repeat}"
    )
    print(
        f"inputs per update: 20-level book, {PRINTS} prints, a fill every {FILL_EVERY} updates, ctx, "
        f"prices; empty driver loop {_empty_loop_ns(args.updates):.1f} ns/update"
    )
    t0 = time.perf_counter()
    if jobs == 1:
        rows = _measure(types, args.updates, args.repeat)
    else:
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        chunks = [types[i::jobs] for i in range(jobs)]
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            parts = pool.map(_measure, chunks, [args.updates] * jobs, [args.repeat] * jobs)
            rows = sorted(r for part in parts for r in part)
    print(f"\n{'node':24s} {'ns/update':>10s} {'compile s':>10s}  first call")
    total = 0.0
    for t, ns, comp, how, note in rows:
        total += 0.0 if ns != ns else ns
        print(f"{t:24s} {ns:10.1f} {comp:10.3f}  {how}{'; ' + note if note else ''}")
    print(f"{'all of them, one update':24s} {total:10.1f}")
    print(f"(measured in {time.perf_counter() - t0:.1f} s wall)")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
