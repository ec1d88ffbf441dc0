"""Compile cost: process start to the first event of rfc_unified + paper, in a fresh clone.

The committed code (``git clone`` of this repository's HEAD, or ``--rev``) is cloned into a
temporary folder and run with this virtualenv's python, the clone first on ``sys.path``, an empty
``NUMBA_CACHE_DIR`` and an empty ``FLOWMM_CACHE_DIR``, so nothing compiled before is reused:

1. any precompile step the setup runs (``make precompile`` when the clone's Makefile has that
   target, or ``--precompile CMD``), timed and counted;
2. a first process: start -> the first event batch of ``graphs/rfc_unified.yaml`` (paper
   execution, synthetic ``trend_down`` seed 0) processed by the engine; every numba compilation
   in it is timed (numba's ``numba:compile`` events: the outermost ones are the kernels, the
   generated loop and the source's kernels, each with what it compiled inside);
3. a second process on the same caches: start -> first event.

Printed: the three times, the cold total (1 + 2), and the per-kernel compile times (slowest
first). Figures only, no asserts. Usage::

    python bench/compile.py                  # rfc_unified + paper
    python bench/compile.py --graph graphs/glft_minimal.yaml --top 10
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# the child: runs in the clone; prints one JSON line when the first batch has been processed
CHILD = r"""
import json, os, sys, time
T0 = float(sys.argv[1])
from numba.core import event as ev

compiles = []

class _Listen(ev.Listener):
    def __init__(self):
        self.stack = []

    def on_start(self, event):
        self.stack.append(time.perf_counter())

    def on_end(self, event):
        t = time.perf_counter() - self.stack.pop()
        d = event.data.get("dispatcher")
        name = getattr(getattr(d, "py_func", None), "__qualname__", None) or str(d)
        mod = getattr(getattr(d, "py_func", None), "__module__", "?")
        compiles.append((f"{mod}.{name}", t, len(self.stack)))

ev.register("numba:compile", _Listen())
import flowmm
from flowmm.execution.paper import paper_broker_for
from flowmm.sources.synthetic import open_synthetic

graph = flowmm.load_graph(sys.argv[2])
source = open_synthetic("trend_down", seed=0, duration="2m")
broker = paper_broker_for(graph.plan, source)
kw = {}  # Graph.run's default engine for a broker, as `flowmm run` (python today, compiled later)
if broker is None:
    try:
        from flowmm.cli import default_backend
        kw = {"backend": default_backend()}
    except ImportError:
        pass
backend = kw.get("backend", "default")


class First:
    def __getattr__(self, name):
        return getattr(source, name)

    def chunks(self):
        for chunk in source.chunks():
            n = 1
            while n < len(chunk) and chunk.t[n] == chunk.t[0]:
                n += 1
            yield chunk.slice(0, n)  # the first batch alone
            first = time.time()
            outer = [(n, t) for n, t, depth in compiles if depth == 0]
            print(json.dumps({"first_event_s": first - T0, "backend": backend, "compiles": outer,
                              "n_compiled": len(compiles), "file": flowmm.__file__}))
            sys.stdout.flush()
            os._exit(0)


graph.run(First(), broker=broker, **kw)
print(json.dumps({"first_event_s": None, "error": "no event"}))
"""


def _clone(rev: str, dst: Path) -> None:
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(dst)], check=True)
    subprocess.run(["git", "-C", str(dst), "checkout", "--quiet", rev], check=True)
    # this virtualenv's editable install maps flowmm.nodes / flowmm.scenarios to the working
    # tree; in the clone the same packages are found next to its flowmm/ first
    for pkg, target in (("nodes", "../nodes"), ("scenarios", "../graphs/scenarios")):
        link = dst / "flowmm" / pkg
        if not link.exists() and (dst / target.lstrip("./")).exists():
            link.symlink_to(target)


def _precompile(clone: Path, cmd: str | None, env: dict) -> float:
    if cmd is None:
        mk = clone / "Makefile"
        if not (mk.exists() and "\nprecompile:" in mk.read_text()):
            return 0.0
        cmd = "make precompile PY=" + sys.executable
    t0 = time.time()
    subprocess.run(cmd, shell=True, cwd=clone, env=env, check=True)
    return time.time() - t0


def _child(clone: Path, graph: str, env: dict) -> dict:
    t0 = time.time()
    r = subprocess.run(
        [sys.executable, "-c", CHILD, repr(t0), str(clone / graph)],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
    )
    if r.returncode:
        raise SystemExit(f"the child failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graph", default="graphs/rfc_unified.yaml", help="relative to the clone")
    ap.add_argument("--rev", default="HEAD")
    ap.add_argument("--precompile", help="a setup command to time before the first process")
    ap.add_argument("--top", type=int, default=40, help="compile times listed")
    args = ap.parse_args()
    rev = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", args.rev], capture_output=True, text=True
    )
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "flowmm-fresh"
        _clone(args.rev, clone)
        env = dict(
            os.environ,
            PYTHONPATH=str(clone),
            NUMBA_CACHE_DIR=str(Path(tmp) / "numba"),
            FLOWMM_CACHE_DIR=str(Path(tmp) / "flowmm-cache"),
        )
        pre = _precompile(clone, args.precompile, env)
        first = _child(clone, args.graph, env)
        second = _child(clone, args.graph, env)
    assert str(clone) in first["file"], first["file"]  # the clone's code ran, not this tree's
    print(f"fresh clone of {rev.stdout.strip()}, graph {args.graph} + paper ({first['backend']} engine)")
    print(f"  precompile step:                    {pre:7.2f} s")
    print(f"  first process, start -> 1st event:  {first['first_event_s']:7.2f} s")
    print(f"  cold total:                         {pre + first['first_event_s']:7.2f} s")
    print(f"  second process, start -> 1st event: {second['first_event_s']:7.2f} s")
    comp = sorted(first["compiles"], key=lambda c: -c[1])
    total = sum(t for _, t in comp)
    print(
        f"  numba compilations in the first process: {first['n_compiled']}"
        f" ({len(comp)} outermost, {total:.1f} s)"
    )
    for name, t in comp[: args.top]:
        print(f"    {t:7.2f} s  {name}")
    if len(comp) > args.top:
        print(f"    ... {len(comp) - args.top} more, {sum(t for _, t in comp[args.top :]):.2f} s")


if __name__ == "__main__":
    main()
