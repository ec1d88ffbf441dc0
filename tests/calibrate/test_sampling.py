"""Sampling: which features, the unit-gain graph, forward returns, the tape and its fills."""

from pathlib import Path

import numpy as np
import pytest

import flowmm
from flowmm.calibrate import CalibrateConfig
from flowmm.calibrate.sampling import (
    TapeTee,
    feature_graph,
    feature_nodes,
    fill_gram,
    forward_rate,
    grid_prices,
)
from flowmm.errors import UsageError
from flowmm.sources import Events

ROOT = Path(__file__).resolve().parents[2]
RFC = ROOT / "graphs" / "rfc_unified.yaml"


def test_features_are_the_obs_wired_into_the_drift_filter():
    plan = flowmm.load_graph(RFC).plan
    drift_obs = [r.split(".")[0] for r in plan.spec.nodes["drift"].in_["obs"]]
    feats = feature_nodes(plan)
    assert [f.name for f in feats] == drift_obs
    gains = {f.name: f.gain for f in feats}
    assert gains["funding"] == "c_f" and gains["bim"] == "alpha"
    assert all(f.has_sigma for f in feats)


def test_named_features_must_have_an_obs_and_a_gain():
    plan = flowmm.load_graph(RFC).plan
    assert [f.name for f in feature_nodes(plan, ["lead", "bim"])] == ["lead", "bim"]
    with pytest.raises(UsageError, match="no obs output"):
        feature_nodes(plan, ["vol_term"])
    with pytest.raises(UsageError, match="no node 'nope'"):
        feature_nodes(plan, ["nope"])


def test_feature_graph_runs_the_features_at_unit_gain_and_keeps_their_inputs():
    plan = flowmm.load_graph(RFC).plan
    feats = feature_nodes(plan, ["bim", "funding"])
    sub = feature_graph(plan, feats, CalibrateConfig(quote_every_ms=1000))
    assert set(sub["nodes"]) == {"bim", "funding"}  # no estimator, no quoting
    assert sub["nodes"]["bim"]["params"]["alpha"] == 1.0 and sub["nodes"]["bim"]["params"]["sigma"] == 1.0
    assert sub["nodes"]["funding"]["params"]["c_f"] == 1.0
    assert sub["nodes"]["funding"]["tier"] == "cold"  # sampled as the graph runs it
    assert sub["clock"] == {"quote_every_ms": 1000}
    assert sub["trace"] == ["source.mid", "bim.obs", "funding.obs"]
    g = flowmm.load_graph(sub)
    assert g.plan.node("bim").node.params.alpha == 1.0


def test_upstream_nodes_of_a_feature_come_along(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(
        "name: up\nclock: {quote_every_ms: 1000}\nnodes:\n"
        "  ret: {type: features.mid_return, in: {price: source.mid}}\n"
        "  smooth: {type: basic.ewma, in: {x: ret.ret_bps}}\n"
        "  bim: {type: features.bim, in: {book: source.book}}\n"
        "  fused: {type: estimators.obs_fusion, in: {obs: [bim.obs]}}\n"
    )
    plan = flowmm.load_graph(path).plan
    sub = feature_graph(plan, feature_nodes(plan), CalibrateConfig())
    assert set(sub["nodes"]) == {"bim"}


def test_forward_rate_and_price_grid():
    t = np.arange(0, 20, dtype=np.int64) * 1_000_000_000
    mid = 100.0 * np.exp(np.arange(20) * 1e-4)  # +1 bps a second
    y = forward_rate(t, mid, 5.0, 2_000_000_000)
    np.testing.assert_allclose(y[:15], 1.0, rtol=1e-9)  # bps/s
    assert np.isnan(y[15:]).all()  # beyond the data
    # a gap longer than the tolerance after t: no target
    t_gap = t.copy()
    t_gap[10:] += 30_000_000_000
    y = forward_rate(t_gap, mid, 5.0, 2_000_000_000)
    assert np.isnan(y[5:10]).all() and np.isfinite(y[:5]).all()
    g = grid_prices(t_gap, mid, 10.0)
    assert g[0] == mid[0] and np.isnan(g[2])  # the grid point at 20 s falls in the gap


def _events():
    return Events(
        [
            {"t": 1, "kind": "book", "bids": [["99.9", "1", 1]], "asks": [["100.1", "1", 1]]},
            {"t": 5, "kind": "trade", "px": "99.9", "sz": "1", "side": "A", "tid": 1},
            {"t": 5, "kind": "trade", "px": "99.8", "sz": "1", "side": "A", "tid": 2},
            {"t": 5, "kind": "book", "bids": [["99.7", "1", 1]], "asks": [["99.9", "1", 1]]},
            {"t": 9, "kind": "trade", "px": "99.9", "sz": "1", "side": "B", "tid": 3},
        ]
    )


def test_tape_keeps_each_trade_with_the_mid_strictly_before_its_timestamp():
    tee = TapeTee(_events())
    assert sum(len(c) for c in tee.chunks()) == 5
    rows = tee.trades()
    np.testing.assert_array_equal(rows[:, 0], [5, 5, 9])
    np.testing.assert_array_equal(rows[:, 2], [-1, -1, 1])
    # the book after the sweep shares its timestamp: the sweep's mid_ref is the book before it
    np.testing.assert_allclose(rows[:, 3], [100.0, 100.0, 99.8])
    assert tee.provides() == _events().provides()  # the tee is transparent to the engine


def test_fill_gram_regresses_post_fill_rate_on_the_fill_signal():
    t = np.array([0, 10, 20, 30], dtype=np.int64) * 1_000_000_000
    mid = np.array([100.0, 99.0, 99.5, 101.0])
    # (t, px, aggressor, mid_ref): a seller hits 0.5 bps below mid, a buyer lifts 1 bps above
    tape = np.array([[0, 99.995, -1, 100.0], [10e9, 99.0099, 1, 99.0], [25e9, 101.0, 1, 100.0]])
    g = fill_gram(t, mid, tape, sigma=0.5, tau_s=10.0, tol_ns=2_000_000_000)
    y = 1e4 * np.log(np.array([99.0 / 100.0, 99.5 / 99.0])) / 10.0  # the third has no mid at t + tau
    d = np.abs(tape[:2, 1] - tape[:2, 3]) / tape[:2, 3] * 1e4
    x = tape[:2, 2] * d / (0.5 * np.sqrt(10.0))  # = -side_fill d / (sigma sqrt tau), side_fill = -aggressor
    v = np.column_stack([np.ones(2), x, y])
    np.testing.assert_allclose(g, v.T @ v, rtol=1e-12)


def test_each_feature_knows_the_obs_lists_it_is_wired_into():
    plan = flowmm.load_graph(RFC).plan
    assert {f.wired_to for f in feature_nodes(plan)} == {("drift.in.obs",)}
