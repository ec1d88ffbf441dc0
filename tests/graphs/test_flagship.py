"""The four flagship graphs (issue "Quoting stages and the four flagship graphs"): they validate
strictly, render, run end to end on the synthetic market and on the real BTC archive hour;
rfc_unified's quotes are continuous in the position while the legacy zones jump; the legacy
graph shows the incident's mechanics on trend_down."""

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

import flowmm
from flowmm.execution.paper import paper_broker_for
from flowmm.render import render
from flowmm.sources import Events
from flowmm.sources.replay import Replay
from flowmm.sources.synthetic import Synthetic

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"
FLAGSHIP = ("legacy", "rfc_unified", "bayes_e2e", "glft_minimal")
ARCHIVE = "hyperliquid/s3_archive_l2book/market_data_20240101_12_l2Book_BTC.lz4"
Q_MAX = 8.57
TICK, LOT, MID = 0.001, 0.01, 28.0


def _cols(run) -> dict[str, np.ndarray]:
    return {c: np.asarray(run.trace[c].to_numpy(zero_copy_only=False), float) for c in run.trace.column_names}


@pytest.mark.parametrize("name", FLAGSHIP)
def test_validates_strictly_and_renders(name, tmp_path):
    graph = flowmm.load_graph(GRAPHS / f"{name}.yaml", strict=True)
    assert graph.warnings == [] and graph.plan.ladder_port is not None and graph.plan.cancel_port is not None
    out = render(graph.plan, tmp_path / f"{name}.svg")
    assert out.read_text().lstrip().startswith(("<?xml", "<svg"))


@pytest.mark.parametrize("name", FLAGSHIP)
def test_runs_on_the_synthetic_market_and_the_real_btc_hour(name, shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWMM_CACHE_DIR", str(tmp_path / "cache"))
    graph = flowmm.load_graph(GRAPHS / f"{name}.yaml")
    syn = Synthetic("trend_down", seed=1, duration="6m")
    run = graph.run(syn, broker=paper_broker_for(graph.plan, syn))
    tr = _cols(run)
    assert run.summary["cycles"] == 61 and "missing_streams" not in run.summary
    assert np.isfinite(tr["exec.pnl"][-1]) and run.summary["fills_buys"] + run.summary["fills_sells"] > 0
    real = Replay(shared_data(ARCHIVE), coin="BTC")
    run = graph.run(real, broker=paper_broker_for(graph.plan, real))
    assert run.summary["events"] == 5587 and run.summary["cycles"] == 600
    tr = _cols(run)
    touch = tr["ladder.ladder.bid_px.0" if name != "legacy" else "quote.ladder.bid_px.0"]
    assert np.isfinite(touch).any() and np.isfinite(tr["exec.pnl"][-1])  # it quoted the BTC book


def _q_sweep(name: str, extra_trace: list[str], params: dict | None = None) -> dict[str, np.ndarray]:
    """The graph at a 100-ms clock over a 20-level book: 2 min of warm-up at q = 0 with the mid
    moving a tick now and then (volatility and the other estimators settle), then the book held
    still and the position stepped from -q_max to +q_max, one step per cycle. No broker:
    exec.position comes from the events. ``params``: {node: {param: value}} set on the graph.
    Returns the trace of the sweep."""
    spec = yaml.safe_load((GRAPHS / f"{name}.yaml").read_text())
    spec["trace"] = list(spec["trace"]) + extra_trace
    for node, values in (params or {}).items():
        spec["nodes"][node]["params"] = {**spec["nodes"][node].get("params", {}), **values}

    def book(shift: int) -> dict:
        bids = [[round(MID - 0.003 + TICK * (shift - i), 3), 40.0 + 5 * i, 2] for i in range(20)]
        asks = [[round(MID + 0.003 + TICK * (shift + i), 3), 40.0 + 5 * i, 2] for i in range(20)]
        return {"kind": "book", "bids": bids, "asks": asks}

    t0, step = 1_700_000_000 * 10**9, 100_000_000
    rng = np.random.default_rng(0)
    events, shift = [], 0
    for k in range(1200):  # warm-up: a random walk of the mid in ticks, q = 0
        shift += int(rng.choice([-1, 0, 0, 0, 1]))
        events.append({"t": t0 + k * step + step // 2, **book(shift)})
    events.append({"t": t0 + step // 2, "kind": "position", "q": 0.0})
    events.sort(key=lambda e: e["t"])
    qs = np.linspace(-Q_MAX, Q_MAX, 801)
    t_sweep = t0 + 1200 * step
    for k, q in enumerate(qs):
        t = t_sweep + k * step + step // 2  # between cycle boundaries
        events.append({"t": t, **book(shift)})
        events.append({"t": t, "kind": "position", "q": float(q)})
    graph = flowmm.load_graph(spec, quote_every_ms=100)
    tr = _cols(graph.run(Events(events)))
    keep = tr["t"] > t_sweep + step  # cycles after the first position of the sweep
    out = {k: v[keep] for k, v in tr.items()}
    out["q"] = qs[: keep.sum()]  # cycle j of the sweep sees position qs[j]
    return out


def _jumps(x: np.ndarray) -> np.ndarray:
    ok = np.isfinite(x[1:]) & np.isfinite(x[:-1])
    return np.abs(np.diff(x))[ok]


def test_rfc_quotes_are_continuous_in_q_and_legacy_zones_jump():
    sizes = [f"sizing.{s}_sizes.{i}" for s in ("bid", "ask") for i in range(4)]  # trace columns
    rfc = _q_sweep("rfc_unified", ["sizing.bid_sizes", "sizing.ask_sizes"])
    dq = np.diff(rfc["q"]).max()
    assert 0.01 < dq < 0.03
    # before rounding: Lipschitz in q, every step a bounded multiple of the q step (the steepest
    # slope, dr/dq = gamma sigma^2 tau (1 + 3 beta u^2), is ~2 bps per contract at q_max here)
    lip = 4.0 * dq
    for col in ("res.r_bps", "glft.bid_depth", "glft.ask_depth", *sizes):
        assert _jumps(rfc[col]).max() <= lip, col
    assert np.ptp(rfc["res.r_bps"]) > 0.1  # the inventory term did move the quotes
    # after rounding: prices move one tick at most; a resting size moves by its change before
    # rounding (<= lip) plus one lot; an order appears or disappears only at Hyperliquid's minimum,
    # $10 on the lot grid (0.36 here), plus that change
    min_order = math.ceil(10.0 / MID / LOT - 1e-9) * LOT
    for side in ("bid", "ask"):
        px, sz = rfc[f"ladder.ladder.{side}_px.0"], rfc[f"ladder.ladder.{side}_sz.0"]
        both = np.isfinite(px[1:]) & np.isfinite(px[:-1])
        assert (np.abs(np.diff(px))[both] <= TICK + 1e-9).all(), side
        size = np.where(np.isfinite(px), sz, 0.0)
        step = np.abs(np.diff(size))
        assert step[both].max(initial=0.0) <= LOT + lip + 1e-9, side
        assert step[~both].max(initial=0.0) <= min_order + LOT + lip + 1e-9, side
        assert (size[size > 0] >= min_order - 1e-9).all(), side

    # the sweep holds the book still, so the trend detector never agrees and the legacy's dynamic
    # max position stays at the start line's 17.18 (quoting.legacy_max_position), whose zones the
    # +-8.57 sweep does not reach; hold it at the value in force in the incident, 8.57 (seed 000
    # RC2, CONVENTIONS.md), to sweep through all three zones
    legacy = _q_sweep("legacy", [], {"max_pos": {"max_position": Q_MAX, "reduced_fraction": 1.0}})
    zone = legacy["quote.zone"]
    assert set(np.unique(zone)) == {0.0, 1.0, 2.0}
    at = np.nonzero(np.diff(zone) != 0)[0]
    px = legacy["quote.ladder.bid_px.0"]
    sz = np.where(np.isfinite(px), legacy["quote.ladder.bid_sz.0"], 0.0)
    jumps = [
        max(abs(px[i + 1] - px[i]) if np.isfinite(px[i + 1] + px[i]) else np.inf, abs(sz[i + 1] - sz[i]))
        for i in at
    ]
    assert max(jumps) > max(TICK, LOT) * 2  # a zone boundary moves the touch in one step


def test_legacy_on_trend_down_shows_the_incident_mechanics():
    graph = flowmm.load_graph(GRAPHS / "legacy.yaml")
    src = Synthetic("trend_down", seed=3)
    tr = _cols(graph.run(src, broker=paper_broker_for(graph.plan, src)))
    t = (tr["t"] - tr["t"][0]) * 1e-9
    selloff = (t >= 180) & (t < 1020)  # trend_down: 2 min quiet, then 15 min trending down
    adj, raw = tr["legacy_drift.drift_adj_bps"], tr["legacy_drift.drift_raw_bps"]
    assert np.nanmax(np.abs(adj)) <= 3.0 + 1e-12  # never beyond the clamp
    pinned = tr["legacy_drift.clamped"][selloff] == -1
    assert pinned.mean() > 0.5 and (adj[selloff][pinned] == -3.0).all()
    assert np.nanmin(raw[selloff]) < -6.0  # the estimate says much more than the clamp lets through
    assert (tr["quote.signal_weight"] == 0).all() and (tr["quote.gate_signal"] == 0).all()
    assert (tr["legacy_drift.smoothed_drift"] == 0).all()
    gate, u = tr["quote.gate"], tr["quote.utilization"]
    assert ((gate != 0) <= (u > 0.5)).all()  # the gate acts only above 50 % of q_max
    # RC5: the injected prior holds +3 bps for the first 90 s, then the live estimate
    early = t < 90
    assert (tr["prior.prior_active"] == early).all() and (adj[early] == 3.0).all()
    # the dynamic max position: 17.18 or 8.57 (while 2 of 3 trend timeframes agree, + 60 s)
    q_max = tr["quote.q_max_used"]
    assert set(np.unique(q_max)) == {17.18, 17.18 * (8.57 / 17.18)}
    assert ((tr["trend.agreement"] > 0.6) <= (q_max < 17.18)).all()
    assert np.allclose(u, np.abs(np.nan_to_num(tr["exec.position"])) / q_max)
    # the PCM: Hold only when the position's continuation_p is above 0.50
    assert ((tr["pcm.mode"] == 1) == ((tr["pcm.continuation_p"] > 0.5) & (tr["pcm.mode"] != 0))).all()
    assert np.allclose(tr["margin.margin_bid"] + tr["margin.margin_ask"], 97.4)
