"""The book's shape against the real Hyperliquid BTC hour (s3 archive, 2024-01-01 12:00 UTC).

Reads the real LZ4 file through FLOWMM_SHARED_DATA (default <repo>/../shared/data). Under
CI=true a missing file fails; elsewhere the test skips with the reason.

Stated tolerances, shape rescaled to ticks (calm, 20 seeds x 20 min of BOOK events):
* spread: P(spread = k ticks) within 0.04 of the real hour for k = 1..5, mean within 10 %;
* relative size by level (a level's share of its side's 20-level size, averaged over
  books): within 0.02 everywhere (real shares are 0.023-0.069);
* median distance of level k from the touch, in ticks: within one tick for level 2, within
  30 % for levels 3..20."""

from __future__ import annotations

import os

import numpy as np
import pytest

from flowmm.sources.synthetic import Synthetic, calibration

ARCHIVE = "hyperliquid/s3_archive_l2book/market_data_20240101_12_l2Book_BTC.lz4"


@pytest.fixture(scope="module")
def real(tape):
    path = tape.shared_data() / ARCHIVE
    if not path.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"calibration data missing under CI: {path}")
        pytest.skip(f"real BTC archive hour not found at {path} (set FLOWMM_SHARED_DATA)")
    bids, asks = calibration.read_archive(path)
    return path, profile(bids, asks, tick=1.0)


def profile(bids: np.ndarray, asks: np.ndarray, tick: float) -> dict[str, np.ndarray]:
    spread = np.rint((asks[:, 0, 0] - bids[:, 0, 0]) / tick)
    sizes = np.concatenate([bids[:, :, 1], asks[:, :, 1]])
    full = ~np.isnan(sizes).any(axis=1)
    dist = np.concatenate(
        [np.rint((bids[:, :1, 0] - bids[:, :, 0]) / tick), np.rint((asks[:, :, 0] - asks[:, :1, 0]) / tick)]
    )
    return {
        "p_spread": np.array([np.mean(spread == k) for k in range(1, 6)]),
        "mean_spread": spread.mean(),
        "share": (sizes[full] / sizes[full].sum(1, keepdims=True)).mean(0),
        "dist": np.nanmedian(dist, 0),
    }


@pytest.fixture(scope="module")
def generated_profile(tape):
    bids, asks = [], []
    for seed in range(tape.N_SEEDS):
        d = tape.decode(Synthetic("calm", seed=seed).events())
        bids.append(d["bids"])
        asks.append(d["asks"])
    return profile(np.concatenate(bids), np.concatenate(asks), tick=0.001)


def test_the_shipped_constants_are_derived_from_the_real_hour(real):
    path, _ = real
    got = calibration.derive(path)
    assert np.array_equal(got["spread_counts"], calibration.SPREAD_COUNTS)
    assert np.allclose(got["occ_pi"], calibration.OCC_PI, atol=6e-4)
    assert np.allclose(got["occ_logmean"], calibration.OCC_LOGMEAN, atol=6e-3)
    assert np.allclose(got["occ_logsd"], calibration.OCC_LOGSD, atol=6e-3)
    assert np.allclose(got["touch"], [calibration.TOUCH_LOGMEAN, calibration.TOUCH_LOGSD], atol=6e-3)


def test_spread_in_ticks_matches_the_real_hour(real, generated_profile):
    _, r = real
    g = generated_profile
    assert np.max(np.abs(g["p_spread"] - r["p_spread"])) <= 0.04, (
        g["p_spread"].round(3),
        r["p_spread"].round(3),
    )
    assert g["mean_spread"] == pytest.approx(r["mean_spread"], rel=0.10)


def test_relative_size_by_level_matches_the_real_hour(real, generated_profile):
    _, r = real
    g = generated_profile
    assert np.max(np.abs(g["share"] - r["share"])) <= 0.02, (g["share"].round(3), r["share"].round(3))


def test_level_distances_in_ticks_match_the_real_hour(real, generated_profile):
    _, r = real
    g = generated_profile
    assert g["dist"][0] == r["dist"][0] == 0 and abs(g["dist"][1] - r["dist"][1]) <= 1
    ratio = g["dist"][2:] / r["dist"][2:]
    assert np.all((ratio > 0.7) & (ratio < 1.3)), ratio.round(2)
