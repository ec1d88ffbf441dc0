"""Scheduling semantics of the reference engine (docs/scheduling.md)."""

import networkx as nx
import numpy as np
import pytest

import flowmm
from flowmm.errors import EngineError
from flowmm.sources import Events

S = 1_000_000_000  # ns per second
T0 = 1_700_000_000 * S


def book(t, mid, half=0.01):
    return {"t": t, "kind": "book", "bids": [[mid - half, 1.0, 1]], "asks": [[mid + half, 1.0, 1]]}


def trade(t, sz=1.0, side="B", px=100.0, tid=0):
    return {"t": t, "kind": "trade", "px": px, "sz": sz, "side": side, "tid": tid}


def graph(nodes, plugins, **top):
    spec = {"name": "t", "clock": {"quote_every_ms": 1000}, "nodes": nodes, **top}
    return flowmm.load_graph(spec, node_dirs=[plugins])


def col(run, name):
    return run.trace.column(name).to_numpy(zero_copy_only=False)


def test_schedule_is_topological_with_name_tiebreak(plugins):
    g = graph(
        {
            "a": {"type": "basic.affine", "in": {"x": "z.y"}, "params": {"scale": 2.0}},
            "z": {"type": "basic.affine", "in": {"x": "source.mid"}, "params": {"offset": 1.0}},
            "m": {"type": "basic.affine", "in": {"x": "source.mid"}},
            "b": {"type": "basic.affine", "in": {"x": "a.y"}},
        },
        plugins,
    )
    order = [n.name for n in g.plan.nodes]
    assert order == ["m", "z", "a", "b"]  # rank 0 sorted by name, then the chain
    assert all(order.index(u) < order.index(v) for u, v in g.plan.graph.edges)
    assert nx.is_directed_acyclic_graph(g.plan.graph)
    # a reads z's value of the same cycle: z ran first
    run = g.run(Events([book(T0 + i * S, 100.0 + i) for i in range(3)]))
    np.testing.assert_allclose(col(run, "a.y"), 2 * (np.array([100.0, 101.0, 102.0]) + 1))
    np.testing.assert_allclose(col(run, "b.y"), col(run, "a.y"))


def test_warm_tier_runs_every_kth_cycle_and_consumer_ticks_only_then(plugins):
    g = graph(
        {
            "warm_flow": {"type": "probe.batch", "tier": "warm", "in": {"trades": "source.trades"}},
            "hot_probe": {"type": "probe.ticks", "in": {"x": "warm_flow.n_last"}},
            "src_probe": {"type": "probe.ticks", "tier": "hot", "in": {"x": "source.mid"}},
        },
        plugins,
        tiers={"hot": 1, "warm": {"every": 3, "phase": 1}},
    )
    events = []
    for i in range(12):  # cycles at T0 + i s; trades in between, 2 per second
        events.append(book(T0 + i * S, 100.0))
        events.append(trade(T0 + i * S + S // 4, tid=2 * i))
        events.append(trade(T0 + i * S + S // 2, tid=2 * i + 1))
    run = g.run(Events(events, end_time=T0 + 12 * S))
    cycles = col(run, "cycle")
    assert list(cycles) == list(range(T0 // S, T0 // S + 13))
    warm_cycles = cycles % 3 == 1
    runs = col(run, "warm_flow.n_total")
    # n_total only changes on warm cycles, and there it counts every trade so far (none lost)
    changed = np.r_[True, np.diff(np.nan_to_num(runs, nan=-1)) != 0]
    assert np.all(warm_cycles[changed & ~np.isnan(runs)])
    n_last = col(run, "warm_flow.n_last")
    first = np.flatnonzero(warm_cycles)[0]
    assert n_last[first] == 2 * (cycles[first] - cycles[0])  # all trades before this cycle
    assert np.all(n_last[np.flatnonzero(warm_cycles)[1:]] == 6)  # 3 seconds of trades
    last = np.flatnonzero(warm_cycles)[-1]
    # every trade before the last warm cycle was read, none twice
    assert runs[last] == 2 * (cycles[last] - cycles[0])
    assert n_last[warm_cycles].sum() == runs[last]
    # the hot consumer runs only when its warm input ticked
    ticks = col(run, "hot_probe.ticks")
    assert np.nanmax(ticks) == warm_cycles.sum()
    assert np.all(col(run, "hot_probe.runs")[~np.isnan(ticks)] == ticks[~np.isnan(ticks)])
    # the source probe runs on every cycle with a new book
    assert col(run, "src_probe.ticks")[-2] == 12


def test_event_triggered_node_feeds_cycle_node(plugins):
    g = graph(
        {
            "ev": {"type": "probe.batch", "trigger": "event", "in": {"trades": "source.trades"}},
            "ev_runs": {"type": "probe.ticks", "trigger": "event", "in": {"x": "ev.n_last"}},
            "cyc": {"type": "probe.ticks", "in": {"x": "ev.n_total"}},
        },
        plugins,
    )
    events = [book(T0, 100.0)]
    events += [trade(T0 + S // 10 * k, tid=k) for k in range(1, 6)]  # 5 trades, 5 event steps
    events += [book(T0 + S, 100.0)]
    run = g.run(Events(events))
    assert list(col(run, "t")) == [T0, T0 + S]
    assert col(run, "ev_runs.runs")[-1] == 5  # the event node ran in each of the 5 event steps
    assert col(run, "ev.n_last")[-1] == 1
    assert col(run, "cyc.value")[-1] == 5  # the cycle node saw the last value
    assert col(run, "cyc.ticks")[-1] == 1  # and one tick for five event-step emissions
    assert col(run, "cyc.runs")[-1] == 1


def test_same_timestamp_batch_is_applied_before_cycle_nodes(plugins):
    g = flowmm.load_graph(
        {
            "name": "t",
            "clock": {"on_book": True},
            "nodes": {
                "ev": {"type": "probe.batch", "trigger": "event", "in": {"trades": "source.trades"}},
                "cyc": {"type": "probe.batch", "in": {"trades": "source.trades", "y": "source.mid"}},
            },
        },
        node_dirs=[plugins],
    )
    t1 = T0 + S
    events = [book(T0, 100.0), trade(t1, 2.0, "A", tid=1), book(t1, 99.0), trade(t1, 3.0, "A", tid=2)]
    run = g.run(Events(events))
    assert list(col(run, "t")) == [T0, t1]  # one cycle per batch with a book, not per book event
    # at t1 the cycle node sees both trades of the sweep and the book after it, in one run
    assert col(run, "cyc.n_last")[-1] == 2
    assert col(run, "cyc.vol")[-1] == 5.0
    assert col(run, "cyc.y_seen")[-1] == 1.0
    assert col(run, "ev.n_last")[-1] == 2  # the event node read both trades in one run


def test_variadic_inputs_see_which_source_ticked(plugins):
    g = graph(
        {
            "fast": {"type": "features.trade_flow", "in": {"trades": "source.trades"}},
            "slow": {"type": "features.trade_flow", "tier": "cold", "in": {"trades": "source.trades"}},
            "fuse": {"type": "estimators.obs_fusion", "in": {"obs": ["fast.obs", "slow.obs"]}},
        },
        plugins,
        tiers={"hot": 1, "cold": {"every": 4, "phase": 0}},
    )
    events = []
    for i in range(8):
        events.append(trade(T0 + i * S + S // 2, sz=1.0, side="B", tid=i))
    run = g.run(Events(events, end_time=T0 + 8 * S))
    cycles = col(run, "cycle")
    n_used = col(run, "fuse.n_used")
    cold = cycles % 4 == 0
    assert np.all(n_used[cold & ~np.isnan(n_used)] == 2)  # both ticked
    assert np.all(n_used[~cold & ~np.isnan(n_used)] == 1)  # only the hot one


def test_unwired_optional_input_is_nan_and_never_ticks(plugins):
    g = graph({"p": {"type": "probe.batch", "in": {"trades": "source.trades"}}}, plugins)
    run = g.run(Events([trade(T0 + S // 2)], end_time=T0 + S))
    assert col(run, "p.y_seen")[-1] == 0.0


def test_interrupt_acts_between_cycles(plugins):
    g = graph(
        {
            "burst": {
                "type": "quoting.burst_cancel",
                "in": {"trades": "source.trades"},
                "params": {"n_trades": 3},
            }
        },
        plugins,
        execution={"cancel": "burst.cancel"},
    )
    sweep = T0 + S + 300_000_000  # between the cycles at T0+1s and T0+2s
    events = [book(T0, 100.0)] + [trade(sweep + k * 1000, side="A", tid=k) for k in range(3)]
    run = g.run(Events(events, end_time=T0 + 3 * S))
    assert run.interrupts == [(sweep + 2000, 1.0)]  # sellers hit the bids: cancel bids, at once
    assert run.summary["interrupts"] == 1


def test_dt_is_zero_first_then_seconds_since_last_run(plugins):
    g = graph({"p": {"type": "probe.ticks", "tier": "warm", "in": {"x": "source.mid"}}}, plugins)
    events = [book(T0 + i * S, 100.0 + i) for i in range(7)]
    run = g.run(Events(events))
    runs = np.nan_to_num(col(run, "p.runs"))
    ran = np.diff(np.r_[0.0, runs]) > 0  # rows of the cycles in which p ran
    dts = col(run, "p.last_dt")[ran]
    assert ran.sum() >= 2 and dts[0] == 0.0
    np.testing.assert_allclose(dts[1:], 3.0)  # warm = every 3rd cycle


def test_runs_are_deterministic(root):
    events = Events.from_file(root / "flowmm" / "examples" / "btc_20250126_events.jsonl")
    g1 = flowmm.load_graph(root / "graphs" / "demo.yaml")
    g2 = flowmm.load_graph(root / "graphs" / "demo.yaml")
    r1, r2 = g1.run(events), g2.run(events)
    assert g1.version_hash == g2.version_hash
    assert r1.trace.num_rows > 10
    assert r1.trace.column_names == r2.trace.column_names
    for name in r1.trace.column_names:  # bit-identical, NaNs included
        a, b = col(r1, name), col(r2, name)
        assert a.tobytes() == b.tobytes(), name
    assert r1.interrupts == r2.interrupts


def test_ring_overflow_is_an_error_not_a_silent_loss(plugins):
    g = graph(
        {"p": {"type": "probe.batch", "tier": "cold", "in": {"trades": "source.trades"}}},
        plugins,
        buffers={"trades": 4},
        tiers={"hot": 1, "cold": 10},
    )
    events = [trade(T0 + k * S // 10, tid=k) for k in range(120)]  # cold runs at T0 and T0+10s
    with pytest.raises(EngineError, match="fell .* behind"):
        g.run(Events(events))


def test_period_cycles_align_to_multiples_of_the_period(plugins):
    g = graph({"p": {"type": "probe.ticks", "in": {"x": "source.mid"}}}, plugins)
    events = [book(T0 + 300_000_000, 100.0), book(T0 + 2 * S, 101.0)]
    run = g.run(Events(events))
    # boundaries T0+1s (before the second batch) and T0+2s (after it, same time)
    assert list(col(run, "t")) == [T0 + S, T0 + 2 * S]
    assert list(col(run, "p.value")) == [100.0, 101.0]


PLUGIN = """
from numba import njit
from flowmm.core.node import In, Node, Out


@njit(cache=True)
def double_kernel(now, dt, params, x, x_ticked, y):
    y[0] = 2.0 * x[0]
    return EMIT.Y


class Double(Node):
    \"\"\"y = 2 x\"\"\"

    type_name = "mine.double"
    inputs = {"x": In("f64")}
    outputs = {"y": Out("f64")}
    kernel = double_kernel


EMIT = Double.EMIT
"""


def test_plugins_key_loads_user_nodes_relative_to_the_graph_file(tmp_path):
    (tmp_path / "my_nodes").mkdir()
    (tmp_path / "my_nodes" / "double.py").write_text(PLUGIN)
    (tmp_path / "g.yaml").write_text(
        "name: g\nclock: {quote_every_ms: 1000}\nplugins: [my_nodes]\n"
        "nodes:\n  d: {type: mine.double, in: {x: source.mid}}\n"
    )
    g = flowmm.load_graph(tmp_path / "g.yaml")
    run = g.run(Events([book(T0, 100.0)]))
    assert col(run, "d.y").tolist() == [200.0]


def test_a_type_defined_in_two_folders_is_a_located_error(tmp_path, plugins):
    import shutil

    shutil.copytree(plugins, tmp_path / "copy")
    (tmp_path / "g.yaml").write_text(
        "name: g\nclock: {quote_every_ms: 1000}\nplugins: [copy]\n"
        "nodes:\n  p: {type: probe.ticks, in: {x: source.mid}}\n"
    )
    with pytest.raises(flowmm.FlowmmError, match="defined twice") as exc:
        flowmm.load_graph(tmp_path / "g.yaml", node_dirs=[plugins])
    assert exc.value.location.line == 3
