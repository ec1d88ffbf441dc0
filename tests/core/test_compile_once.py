"""Compile once, visibly (issue 16): the first run of a graph says on stderr that it compiles
its kernels once, kernel by kernel; a second process loads everything from the cache and says
nothing; editing a kernel's source changes the generated module's name and compiles anew."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

PLUGIN = '''
"""A test-only plugin node (tests/core/test_compile_once.py)."""
import numpy as np
from numba import njit
from flowmm.core.node import In, Node, Out


@njit(cache=True)
def scaled_kernel(now, dt, params, x, x_ticked, y):
    y[0] = x[0] * SCALE
    return EMIT.Y


class Scaled(Node):
    """y = x * SCALE (test-only)."""

    type_name = "compileonce.scaled"
    inputs = {"x": In("f64")}
    outputs = {"y": Out("f64")}
    tier, trigger = "hot", "event"
    kernel = scaled_kernel


EMIT = Scaled.EMIT
SCALE = 2.0
'''

RUN = textwrap.dedent(
    """
    import json, sys
    import flowmm
    from flowmm.core.fused import module_path
    from flowmm.sources.events import Events
    graph = {"name": "compile_once", "clock": {"quote_every_ms": 1000},
             "trace": ["s.y"], "nodes": {"s": {"type": "compileonce.scaled", "in": {"x": "source.mid"}}}}
    g = flowmm.load_graph(graph, node_dirs=[sys.argv[1]])
    ev = [{"t": 10**9 * (1 + k), "kind": "bbo", "bid": [99.0 + k, 1, 1], "ask": [101.0 + k, 1, 1]}
          for k in range(3)]
    run = g.run(Events(ev), backend="fused")
    print(json.dumps([module_path(g.plan).name, run.trace["s.y"].to_pylist()[-1]]))
    """
)


def _run(plugin_dir: Path, cache: Path) -> tuple[str, float, str]:
    env = dict(os.environ, FLOWMM_CACHE_DIR=str(cache / "flowmm"), NUMBA_CACHE_DIR=str(cache / "numba"))
    out = subprocess.run(
        [sys.executable, "-c", RUN, str(plugin_dir)], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    name, last = json.loads(out.stdout.strip().splitlines()[-1])
    return name, last, out.stderr


def test_first_run_says_it_compiles_then_the_cache_then_a_kernel_edit_recompiles(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "scaled.py").write_text(PLUGIN)
    name1, y1, err1 = _run(plugins, tmp_path)
    assert "flowmm: compiling the engine of graph 'compile_once' once" in err1
    assert "compileonce.scaled (s) compiled in" in err1 and "engine loop compiled in" in err1
    name2, y2, err2 = _run(plugins, tmp_path)
    assert (name2, y2) == (name1, y1) and "compiling" not in err2  # all from the cache
    (plugins / "scaled.py").write_text(PLUGIN.replace("SCALE = 2.0", "SCALE = 3.0"))
    name3, y3, err3 = _run(plugins, tmp_path)
    assert name3 != name1 and "compiling the engine" in err3  # the edit is a new module, compiled
    assert y3 == 1.5 * y1
