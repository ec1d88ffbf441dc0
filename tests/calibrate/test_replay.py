"""Calibration over recorded Hyperliquid data: the real BTC archive hour (books only)."""

from pathlib import Path

import numpy as np
import pytest

import flowmm
from flowmm.calibrate import CalibrateConfig, calibrate, replay_segments, write_params

GRAPH = Path(__file__).with_name("book_graph.yaml")
HOUR = "hyperliquid/s3_archive_l2book/market_data_20240101_12_l2Book_BTC.lz4"


@pytest.fixture(scope="module")
def calib(shared_data):
    cfg = CalibrateConfig(block_s=600.0, folds=5)  # one hour: six 10-minute blocks
    return calibrate(GRAPH, replay_segments([shared_data(HOUR)], coin="BTC"), cfg, source_name="BTC hour")


def test_replay_hour_is_sampled_gated_and_fitted(calib):
    assert calib.data["segments"] == 1 and calib.data["hours"] == pytest.approx(1.0, abs=0.01)
    assert {r.name for r in calib.feature_results()} == {"bim", "dbim", "bpg"}
    for g in calib.groups:
        assert len(g.folds) == 5 and all(te > 0 for _, te in g.folds)
        for r in g.features:
            assert 0 < r.fit.n <= calib.data["cycles"] and np.isfinite(r.r2)
            assert r.admitted == (r.r2 > 0.01 and r.incr_r2 > 0.003)
    # 360 prices on the 10-s grid: enough for the MLE to run (not to be precise: docs)
    assert calib.ou is not None and calib.ou.n_prices > 300 and 0.05 < calib.ou.sigma < 5
    assert calib.fill is None and any("fill regression skipped" in n for n in calib.notes)  # no trades


def test_replay_params_include_into_the_graph(calib, tmp_path):
    out = write_params(calib, tmp_path / "btc.yaml")
    g = tmp_path / "g.yaml"
    g.write_text(GRAPH.read_text().replace("trace:", f"params_from: {out.name}\ntrace:"))
    plan = flowmm.load_graph(g).plan
    for name, values in calib.params().items():
        for key, value in values.items():
            assert getattr(plan.node(name).node.params, key) == value
