"""The fused backend (flowmm.core.fused) against the reference Interpreter.

Numba compiles each distinct graph structure once per session (several seconds each), so
the graphs here are few and shared through session fixtures: a 10-node on_book chain, the
demo graph, a demo variant with a cold tier (also used, with a tiny ring, for the overflow
error) and a probe graph of test-only nodes (batch outputs, unwired optional inputs, nodes
without inputs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import flowmm
from flowmm.core.engine import Interpreter
from flowmm.core.fused import FusedEngine, cache_dir, fused_source, module_path
from flowmm.errors import EngineError
from flowmm.sources.events import Events

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "graphs" / "demo.yaml"
PLUGINS = Path(__file__).resolve().parent / "fused_plugins"
T0 = 1_700_000_000_000_000_000  # a realistic epoch in ns, on a 1 s boundary
SEC = 1_000_000_000


# -- events -----------------------------------------------------------------------------------
def market_events(seed: int, n: int = 1500) -> list[dict]:
    """Books, bbos, trades, same-time trade+book batches, events on cycle boundaries, gaps of
    several cycles, and same-side trade bursts (4+ trades within 1 s fire demo's burst)."""
    rng = np.random.default_rng(seed)
    evs: list[dict] = []
    t = T0 + 12_345
    mid = 100.0

    def book(t, bid_sz=1.0):
        return {"t": t, "kind": "book", "bids": [[mid - 0.01, bid_sz, 1], [mid - 0.02, 2, 3]],
                "asks": [[mid + 0.01, 1.5, 2]]}  # fmt: skip

    def trade(t, side):
        return {"t": t, "kind": "trade", "px": mid, "sz": round(float(rng.random()) + 0.01, 3),
                "side": side, "tid": len(evs)}  # fmt: skip

    while len(evs) < n:
        r = rng.random()
        if r < 0.03:
            t += int(rng.integers(2, 12)) * SEC  # a gap: several cycles before the next batch
        elif r < 0.08:
            t = (t // SEC + 1) * SEC  # exactly on a boundary: the cycle runs after the batch
        else:
            t += int(rng.integers(1, 300_000_000))
        r = rng.random()
        if r < 0.35:
            mid += float(rng.normal()) * 0.02
            evs.append(book(t, float(rng.random())))
        elif r < 0.45:
            evs.append({"t": t, "kind": "bbo", "bid": [mid - 0.005, 1, 1], "ask": [mid + 0.015, 2, 1]})
        elif r < 0.75:  # a sweep: trades and the book that follows them share one timestamp
            side = "B" if rng.random() < 0.5 else "A"
            for _ in range(int(rng.integers(1, 4))):
                evs.append(trade(t, side))
            if rng.random() < 0.6:
                mid += 0.03 if side == "B" else -0.03
                evs.append(book(t))
        elif r < 0.85:  # a burst: 5 same-side trades within ~0.5 s
            side = "B" if rng.random() < 0.5 else "A"
            for _ in range(5):
                t += int(rng.integers(1, 100_000_000))
                evs.append(trade(t, side))
        elif r < 0.9:
            evs.append({"t": t, "kind": "ctx", "funding": 1e-5, "predicted_funding": 1e-5, "oi": 1e6,
                        "mark": mid, "oracle": mid, "premium": 0.0})  # fmt: skip
        else:
            evs.append(trade(t, "B" if rng.random() < 0.5 else "A"))
    return evs


EVENTS = market_events(7)
END = EVENTS[-1]["t"] + 7 * SEC + 1  # finish() runs the cycles left after the last event


# -- graphs -----------------------------------------------------------------------------------
def chain_graph(n: int = 10) -> dict:
    nodes = {"a0": {"type": "basic.affine", "in": {"x": "source.mid"}, "params": {"scale": 1.001}}}
    for i in range(1, n):
        nodes[f"a{i}"] = {
            "type": "basic.affine",
            "in": {"x": f"a{i - 1}.y"},
            "params": {"scale": 1.0 + 0.01 * i, "offset": -0.5 * i},
        }
    return {"name": "chain10", "clock": {"on_book": True}, "nodes": nodes}


def demo_cold(trades_ring: int | None = None) -> dict:
    """demo.yaml with flow on a cold tier (with a phase), a second obs into the fusion node
    and, optionally, a tiny trades ring."""
    import yaml

    doc = yaml.safe_load(DEMO.read_text())
    doc["tiers"] = {"hot": 1, "warm": 3, "cold": {"every": 10, "phase": 4}}
    doc["nodes"]["flow"]["tier"] = "cold"
    # a second, hot observation: the variadic obs input then mixes ticked and stale entries
    doc["nodes"]["flow_hot"] = {"type": "features.trade_flow", "in": {"trades": "source.trades"}}
    doc["nodes"]["fused"]["in"]["obs"] = ["flow.obs", "flow_hot.obs"]
    if trades_ring is not None:
        doc["buffers"] = {"trades": trades_ring}
    return doc


def probe_graph() -> dict:
    return {
        "name": "probe",
        "clock": {"quote_every_ms": 500},
        "tiers": {"hot": 1, "warm": {"every": 3, "phase": 1}},
        "plugins": [str(PLUGINS)],
        "nodes": {
            "emit": {"type": "fusedprobe.emitter", "tier": "warm"},
            "emit_ev": {"type": "fusedprobe.emitter", "trigger": "event"},
            "read": {"type": "fusedprobe.reader", "in": {"acts": "emit.acts"}},
            "read_ev": {"type": "fusedprobe.reader", "in": {"acts": "emit_ev.acts"}, "trigger": "event"},
            "vol": {"type": "estimators.ewma_vol", "in": {"price": "source.mid"}},
        },
    }


# -- helpers ----------------------------------------------------------------------------------
@pytest.fixture(scope="session", autouse=True)
def fused_cache(tmp_path_factory):
    """One cache folder for the session: hermetic, and each graph compiles once."""
    root = tmp_path_factory.mktemp("flowmm-cache")
    old = os.environ.get("FLOWMM_CACHE_DIR")
    os.environ["FLOWMM_CACHE_DIR"] = str(root)
    yield root
    if old is None:
        os.environ.pop("FLOWMM_CACHE_DIR", None)
    else:
        os.environ["FLOWMM_CACHE_DIR"] = old


def run_engine(cls, graph, events, chunk_size=1 << 16, end_time=None):
    """Drive an engine directly over a fresh plan (each engine owns its plan's state)."""
    plan = flowmm.load_graph(graph, allow_plugins=True).plan  # the probe graphs load fused_plugins
    engine = cls(plan)
    src = Events(events, chunk_size=chunk_size, end_time=end_time)
    for chunk in src.chunks():
        engine.process(chunk)
    engine.finish(src.end_time)
    return engine


def assert_same(ref, got):
    """Identical traces (t, cycle, every column, NaNs in the same places) and interrupts."""
    assert got.trace.columns == ref.trace.columns
    (t0, c0, d0), (t1, c1, d1) = ref.trace.arrays(), got.trace.arrays()
    assert t1.dtype == np.int64 and c1.dtype == np.int64 and d1.dtype == np.float64
    assert np.array_equal(t0, t1)
    assert np.array_equal(c0, c1)
    assert d0.shape == d1.shape
    assert np.array_equal(d0, d1, equal_nan=True)
    assert got.n_cycles == ref.n_cycles == len(t0)
    assert got.interrupts == ref.interrupts


def col(engine, name):
    return engine.trace.arrays()[2][:, engine.trace.columns.index(name)]


def changed_rows(x):
    """Rows whose value differs from the row before (NaN -> NaN is no change)."""
    prev, cur = x[:-1], x[1:]
    return np.nonzero((prev != cur) & ~(np.isnan(prev) & np.isnan(cur)))[0] + 1


@pytest.fixture(scope="session")
def chain_runs():
    ref = run_engine(Interpreter, chain_graph(), EVENTS)
    return ref, run_engine(FusedEngine, chain_graph(), EVENTS)


@pytest.fixture(scope="session")
def demo_runs():
    ref = run_engine(Interpreter, str(DEMO), EVENTS, end_time=END)
    return ref, run_engine(FusedEngine, str(DEMO), EVENTS, end_time=END)


# -- parity -----------------------------------------------------------------------------------
def test_chain_on_book_matches_interpreter(chain_runs):
    ref, got = chain_runs
    assert_same(ref, got)
    n_book = len({e["t"] for e in EVENTS if e["kind"] in ("book", "bbo")})
    assert got.n_cycles == n_book  # on_book: one cycle per batch that ticked the book or bbo
    assert np.array_equal(got.trace.arrays()[1], np.arange(n_book))
    last = col(got, "a9.y")
    assert np.isfinite(last).all() and len(np.unique(last)) > 100


def test_chain_through_graph_run(chain_runs):
    graph = flowmm.load_graph(chain_graph())
    py = graph.run(Events(EVENTS), backend="python")
    fu = graph.run(Events(EVENTS, chunk_size=50), backend="fused")
    assert fu.trace.equals(py.trace)
    assert fu.summary["cycles"] == py.summary["cycles"] == chain_runs[0].n_cycles


def test_demo_matches_interpreter(demo_runs):
    ref, got = demo_runs
    assert_same(ref, got)
    _, cycles, _ = got.trace.arrays()
    assert np.array_equal(cycles, np.arange(cycles[0], cycles[0] + len(cycles)))  # no cycle skipped
    assert cycles[-1] == END // SEC  # finish ran the cycles after the last event
    assert len(got.interrupts) >= 3  # the bursts fired the event-triggered cancel
    # warm tier: vol_smooth changes only on cycles % 3 == 0
    changed = changed_rows(col(got, "vol_smooth.mean"))
    assert len(changed) > 10 and (cycles[changed] % 3 == 0).all()
    assert (col(got, "fused.n_used") == 1).any()  # the variadic obs input was read


def test_demo_in_small_chunks(demo_runs):
    ref, _ = demo_runs
    got = run_engine(FusedEngine, str(DEMO), EVENTS, chunk_size=7, end_time=END)
    assert_same(ref, got)


def test_cold_tier_matches_interpreter():
    ref = run_engine(Interpreter, demo_cold(), EVENTS, end_time=END)
    got = run_engine(FusedEngine, demo_cold(), EVENTS, chunk_size=100, end_time=END)
    assert_same(ref, got)
    _, cycles, _ = got.trace.arrays()
    changed = changed_rows(col(got, "flow.count"))
    assert len(changed) > 5 and (cycles[changed] % 10 == 4).all()  # cold: cycle % 10 == 4
    n_used = col(got, "fused.n_used")
    assert (n_used == 1).sum() > 10 and (n_used == 2).sum() > 3  # only the obs that ticked count


@pytest.fixture
def probe_types():
    """The probe node types exist only for this test: restore the registry afterwards, so
    tests that walk every registered type never see them."""
    from flowmm.core import discovery, node

    registry, dirs = dict(node._REGISTRY), dict(discovery._plugin_dirs)
    yield
    node._REGISTRY.clear()
    node._REGISTRY.update(registry)
    discovery._plugin_dirs.clear()
    discovery._plugin_dirs.update(dirs)


def test_probe_nodes_match_interpreter(probe_types):
    """Batch outputs, unwired optional inputs, and nodes with no wired input."""
    events = EVENTS[:600]
    ref = run_engine(Interpreter, probe_graph(), events)
    got = run_engine(FusedEngine, probe_graph(), events, chunk_size=31)
    assert_same(ref, got)
    t, cycles, _ = got.trace.arrays()
    # no input, cycle-triggered, warm tier (cycle % 3 == 1): runs on exactly those cycles
    runs = np.cumsum(cycles % 3 == 1).astype(float)
    runs[runs == 0] = np.nan
    assert np.array_equal(col(got, "emit.runs"), runs, equal_nan=True)
    # no input, event-triggered: runs in every event step and in every cycle step
    batches = np.unique([e["t"] for e in events])
    expected = np.searchsorted(batches, t, side="right") + np.arange(1, len(t) + 1)
    assert np.array_equal(col(got, "emit_ev.runs"), expected)
    # the readers read the emitters' action rings (0-2 records per emitter run)
    assert np.nanmax(col(got, "read.n_read")) == 2 and np.nanmax(col(got, "read_ev.n_read")) >= 1
    for name, want in (("read.x_nan", 1.0), ("read.tr_range", 0.0)):
        ran = col(got, name)[~np.isnan(col(got, name))]
        assert len(ran) > 10 and (ran == want).all()  # unwired optional: NaN never ticked / empty range


# -- errors -----------------------------------------------------------------------------------
def test_ring_overflow_raises_the_same_error():
    errors = []
    for cls in (Interpreter, FusedEngine):
        with pytest.raises(EngineError) as info:
            run_engine(cls, demo_cold(trades_ring=8), EVENTS, chunk_size=64)
        errors.append(info.value)
    ref, got = errors
    assert " fell " in ref.message and "on source.trades, more than the ring holds (8)" in ref.message
    assert ref.location.node in ("flow", "flow_hot") and ref.location.port == "trades"
    assert (got.message, got.location, got.hint) == (ref.message, ref.location, ref.hint)
    assert str(got) == str(ref)


def test_out_of_order_chunks_raise():
    plan = flowmm.load_graph(str(DEMO)).plan
    engine = FusedEngine(plan)
    src = Events(EVENTS[:50])
    engine.process(src.table)
    with pytest.raises(EngineError, match="out of order"):
        engine.process(src.table)


# -- generated code and its cache -------------------------------------------------------------
def test_source_is_generated_from_the_plan():
    plan = flowmm.load_graph(str(DEMO)).plan
    src = fused_source(plan)
    compile(src, "<fused>", "exec")
    heads = [src.index(f"# -- [{n.index}] {n.name}: {n.type_name}") for n in plan.nodes]
    assert heads == sorted(heads)  # one commented block per node, in schedule order
    for n in plan.nodes:
        py = n.cls.kernel.py_func
        assert f"from {py.__module__} import {py.__name__} as " in src
    assert src.count("@njit(cache=True)") == 1
    assert "PERIOD = 1000000000" in src


def test_module_file_is_shared_across_params_not_structures():
    chain = chain_graph()
    other = chain_graph()
    other["nodes"]["a3"]["params"] = {"scale": 7.0}
    longer = chain_graph(11)
    p = [module_path(flowmm.load_graph(g).plan) for g in (chain, other, longer)]
    assert p[0] == p[1]  # params are arguments: a param change reuses the compiled function
    assert p[0] != p[2]


def test_module_written_to_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWMM_CACHE_DIR", str(tmp_path))
    plan = flowmm.load_graph(chain_graph()).plan
    engine = FusedEngine(plan)
    path = Path(engine.module.__file__)
    assert path.parent == tmp_path / "fused" == cache_dir()
    assert path == module_path(plan)
    assert path.read_text() == fused_source(plan)
    assert path.name.startswith("g_chain10_") and path.suffix == ".py"
    assert not list(tmp_path.rglob("*.tmp"))  # written via tmp + rename, nothing left over
    assert engine.module.run._cache.__class__.__name__ != "NullCache"  # numba caches it on disk


def test_compiled_function_is_loaded_from_cache_in_a_new_process(chain_runs, fused_cache):
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import flowmm
        from flowmm.core.fused import FusedEngine
        from flowmm.sources.events import Events
        from test_fused import EVENTS, chain_graph
        engine = FusedEngine(flowmm.load_graph(chain_graph()).plan)
        engine.process(Events(EVENTS).table)
        stats = engine.module.run.stats
        print(json.dumps([sum(stats.cache_hits.values()), sum(stats.cache_misses.values()), engine.n_cycles]))
        """
    )
    env = dict(os.environ, FLOWMM_CACHE_DIR=str(fused_cache))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    hits, misses, n_cycles = json.loads(out.stdout.strip().splitlines()[-1])
    assert (hits, misses) == (1, 0)
    assert n_cycles == chain_runs[1].n_cycles
