"""The paper broker driven by the reference engine over the synthetic market."""

import numpy as np
import pytest

import flowmm
from flowmm.core import events as E
from flowmm.errors import FlowmmError
from flowmm.execution.paper import PaperBroker
from flowmm.sources.synthetic import Synthetic

S = 1_000_000_000


def quoter(half_spread_bps=1.0, levels=2):
    return flowmm.load_graph(
        {
            "name": "q",
            "instrument": {"coin": "HYPE", "tick_size": 0.001, "sz_decimals": 2},
            "clock": {"quote_every_ms": 1000},
            "execution": {"ladder": "quote.ladder"},
            "nodes": {
                "quote": {
                    "type": "quoting.minimal",
                    "in": {"mid": "source.mid"},
                    "params": {
                        "half_spread_bps": half_spread_bps,
                        "level_spacing_bps": 1.0,
                        "levels": levels,
                    },
                }
            },
        }
    )


def run(scenario, seed, duration="10m", **kw):
    return quoter(**kw).run(
        Synthetic(scenario, seed=seed, duration=duration), broker=PaperBroker(), backend="python"
    )


def mids(scenario, seed, duration):
    """Mid after each batch, computed from the events alone (independently of the engine)."""
    ev = Synthetic(scenario, seed=seed, duration=duration).events()
    t, m = [], []
    for i in range(len(ev)):
        if ev.kind[i] in (E.BOOK, E.BBO):
            p = ev.payload[ev.off[i] : ev.off[i + 1]]
            if ev.kind[i] == E.BOOK:
                nb = int(p[0])
                bid, ask = p[2], p[2 + 3 * nb]
            else:
                bid, ask = p[0], p[3]
            t.append(int(ev.t[i]))
            m.append(0.5 * (bid + ask))
    return np.array(t), np.array(m)


def mid_at_or_after(ts, ms, q):
    """The mid after the last batch at or before q (the batch at q included)."""
    return ms[np.searchsorted(ts, q, side="right") - 1]


@pytest.fixture(scope="module")
def calm_runs():
    return {seed: run("calm", seed) for seed in range(4)}


def test_fills_position_and_the_pnl_identity(calm_runs):
    r = calm_runs[0]
    f = r.fills.to_pydict()
    assert len(f["t"]) > 10, "a 1 bp quoter fills in 10 min of calm"
    q = sum(s * z for s, z in zip(f["side"], f["sz"]))
    s = r.summary
    assert s["final_q"] == pytest.approx(q)
    assert s["fills_buys"] + s["fills_sells"] == len(f["t"])
    assert all(m == 1.0 for m in f["maker"])  # post-only: every fill is a maker fill
    # realised + unrealised - fees + funding = cash + q * mark - initial cash
    assert s["sharpe_1h"] is not None and np.isfinite(s["sharpe_1h"])  # 10 one-minute PnL changes
    lhs = s["realised_pnl"] + s["unrealised_pnl"] - s["fees"] + s["funding"]
    assert lhs == pytest.approx(s["cash"] + s["final_q"] * s["mark_px"] - s["initial_cash"], abs=1e-9)


def test_no_fill_before_the_first_order_can_rest():
    r = run("calm", 0, duration="2m")
    first_cycle = r.trace.column("t")[0].as_py()
    fills = r.fills.column("t").to_pylist()
    assert fills and min(fills) >= first_cycle + 50_000_000  # place latency 50 ms


def test_latency_spikes_delay_the_orders():
    g = quoter()
    src = Synthetic("calm", seed=0, duration="2m")
    spiky = g.run(src, broker=PaperBroker(latency_spike_prob=1.0, latency_spike_mult=20.0), backend="python")
    first_cycle = spiky.trace.column("t")[0].as_py()
    fills = spiky.fills.column("t").to_pylist()
    assert fills and min(fills) >= first_cycle + 20 * 50_000_000  # every place took 1 s


def test_deterministic(tmp_path):
    import json

    import pyarrow.parquet as pq

    for d in ("a", "b"):
        src = Synthetic("trend_down", seed=2, duration="4m")
        quoter().run(src, broker=PaperBroker(), backend="python", out_dir=tmp_path / d)
    a, b = tmp_path / "a", tmp_path / "b"
    for name in ("trace.parquet", "fills.parquet"):
        ta, tb = pq.read_table(a / name), pq.read_table(b / name)
        assert ta.num_rows > 0 and ta.column_names == tb.column_names
        for c in ta.column_names:  # bit for bit, NaNs included
            assert ta.column(c).to_numpy().tobytes() == tb.column(c).to_numpy().tobytes(), (name, c)
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    assert {k: v for k, v in sa.items() if k != "wall_s"} == {k: v for k, v in sb.items() if k != "wall_s"}


def test_markouts_on_a_martingale_are_zero_beyond_the_spread(calm_runs):
    """side * (mid 5 s after - mid just after the fill's batch), from the events alone."""
    diffs = []
    for seed, r in calm_runs.items():
        ts, ms = mids("calm", seed, "10m")
        f = r.fills.to_pydict()
        for t, px, side in zip(f["t"], f["px"], f["side"]):
            if t + 5 * S > ts[-1]:
                continue
            m0 = mid_at_or_after(ts, ms, t)
            m5 = mid_at_or_after(ts, ms, t + 5 * S - 1)  # the mid in force just before t + 5 s
            diffs.append(side * (m5 - m0) / px * 1e4)
    d = np.array(diffs)
    assert len(d) > 50
    se = d.std(ddof=1) / np.sqrt(len(d))
    assert abs(d.mean()) < 3 * se, f"mean {d.mean():.3f} bps, se {se:.3f}"


def test_bid_fills_in_a_selloff_are_adversely_selected():
    bid_as = []
    for seed in range(3):
        r = run("trend_down", seed, duration="17m", half_spread_bps=0.5)
        for m in r.summary["markouts"]:
            if m["horizon_s"] == 60.0 and m["bid_n"]:
                bid_as += [m["bid_as_bps_mean"]] * m["bid_n"]
    assert len(bid_as) > 10 and np.mean(bid_as) > 0  # positive AS = negative markout


def test_the_compiled_loop_runs_the_paper_broker_as_the_interpreter_does():
    runs = {
        b: quoter().run(
            Synthetic("calm", seed=0, duration="3m"), broker=PaperBroker(latency_spike_prob=0.3), backend=b
        )
        for b in ("python", "fused")
    }
    py, fu = runs["python"], runs["fused"]
    assert fu.summary["backend"] == "fused" and py.summary["fills_buys"] + py.summary["fills_sells"] > 0
    assert fu.trace.equals(py.trace) and fu.fills.equals(py.fills) and fu.interrupts == py.interrupts
    assert {k: v for k, v in fu.summary.items() if k not in ("wall_s", "backend")} == {
        k: v for k, v in py.summary.items() if k not in ("wall_s", "backend")
    }


def test_a_broker_with_python_hooks_only_is_refused_by_the_compiled_loop():
    class PythonOnly(PaperBroker):
        kernel_args = None  # like the Hyperliquid broker: network I/O in its hooks

    with pytest.raises(FlowmmError, match="python backend"):
        quoter().run(Synthetic("calm", seed=0, duration="1m"), broker=PythonOnly(), backend="fused")
    run = quoter().run(Synthetic("calm", seed=0, duration="1m"), broker=PythonOnly())
    assert run.summary["backend"] == "python"
