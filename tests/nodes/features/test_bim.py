import json
import math

import numpy as np
import pytest
from flowmm.nodes.features.bim import Bim, bim_kernel
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from pydantic import ValidationError

from flowmm import load_graph
from flowmm.core.ports import ASK_PX, ASK_SZ, BID_PX, BID_SZ, BOOK_LEVELS
from flowmm.errors import GraphError
from flowmm.testing import NodeHarness, allocations, example_args

S = 1_000_000_000
PARAMS = {"alpha": 0.06, "sigma": 0.2, "depth_ref_usd": 200_000.0, "cover_power": 2.0}


def make_book(bids, asks) -> np.ndarray:
    """[(px, sz), ...] per side, best first -> a book array (NaN past the last level)."""
    b = np.full((BOOK_LEVELS, 6), np.nan)
    for i, (px, sz) in enumerate(bids):
        b[i, 0:3] = px, sz, 1
    for i, (px, sz) in enumerate(asks):
        b[i, 3:6] = px, sz, 1
    return b


def random_book(rng, mid=28.0, tick=0.001, levels=(20, 20), gap_ticks=8) -> np.ndarray:
    """Levels at random tick gaps from a random spread; log-normal sizes."""
    spread = int(rng.integers(1, 6))
    bid0 = round(mid / tick) - spread // 2
    bids = bid0 - np.cumsum(np.r_[0, rng.integers(1, gap_ticks, levels[0] - 1)])
    asks = bid0 + spread + np.cumsum(np.r_[0, rng.integers(1, gap_ticks, levels[1] - 1)])
    return make_book(
        [(p * tick, s) for p, s in zip(bids, rng.lognormal(3, 1.3, levels[0]))],
        [(p * tick, s) for p, s in zip(asks, rng.lognormal(3, 1.3, levels[1]))],
    )


def direct(book: np.ndarray, depth: float):
    """Independent BIM: numpy over the whole book (conftest's window definition), coverage
    from the deepest level of each side, the same window on both sides."""
    bp, bs, ap, asz = book[:, BID_PX], book[:, BID_SZ], book[:, ASK_PX], book[:, ASK_SZ]
    mid = 0.5 * (bp[0] + ap[0])
    db = (mid - bp) / mid * 1e4
    da = (ap - mid) / mid * 1e4
    cover = min(np.nanmax(db), np.nanmax(da))
    dc = min(depth, cover)
    vb = np.nansum(np.where(db <= dc, bs, 0.0))
    va = np.nansum(np.where(da <= dc, asz, 0.0))
    usd = np.nansum(np.where(db <= dc, bs * bp, 0.0)) + np.nansum(np.where(da <= dc, asz * ap, 0.0))
    return (vb - va) / (vb + va), dc, usd


def test_math_against_a_direct_computation_with_short_books():
    rng = np.random.default_rng(3)
    depths = (2.0, 10.0, 25.0, 50.0, 120.0)
    h = NodeHarness("features.bim", {**PARAMS, "depths_bps": depths, "obs_depth_bps": 25.0})
    n_short = 0
    for k in range(300):
        levels = (int(rng.integers(2, 21)), int(rng.integers(2, 21)))
        book = random_book(rng, levels=levels, gap_ticks=int(rng.integers(2, 40)))
        out = h.step(k * S, book=book)
        assert out.emitted == {"bim", "covered_bps", "depth_usd", "obs"}
        for j, d in enumerate(depths):
            b, dc, usd = direct(book, d)
            assert math.isclose(out["bim"][j], b, rel_tol=1e-9, abs_tol=1e-15)
            assert out["covered_bps"][j] == dc
            assert math.isclose(out["depth_usd"][j], usd, rel_tol=1e-9)
        b, dc, usd = direct(book, 25.0)
        n_short += dc < 25.0
        assert math.isclose(out["obs"][0], 0.06 * b, rel_tol=1e-9, abs_tol=1e-15)
        r = 0.04 * 200_000.0 / usd * (25.0 / dc) ** 2
        assert math.isclose(out["obs"][1], r, rel_tol=1e-9)
    assert 30 < n_short < 270  # both regimes exercised


def test_hand_worked_book():
    # mid 100: bids at 0.5, 5, 40 and 70 bps; asks at 0.5, 20 and 70 bps
    bids = [(99.995, 2.0), (99.95, 1.0), (99.6, 4.0), (99.3, 1.0)]
    book = make_book(bids, [(100.005, 1.0), (100.2, 3.0), (100.7, 1.0)])
    out = NodeHarness("features.bim", PARAMS).step(S, book=book)
    np.testing.assert_allclose(out["bim"], [(3 - 1) / 4, (3 - 4) / 7, (7 - 4) / 11])
    np.testing.assert_array_equal(out["covered_bps"], [10.0, 25.0, 50.0])  # both sides reach 70 bps
    usd10 = 2 * 99.995 + 99.95 + 100.005
    assert math.isclose(out["depth_usd"][0], usd10)
    np.testing.assert_allclose(out["obs"], [0.06 * 0.5, 0.04 * 200_000 / usd10])


def test_shallow_book_is_measured_at_its_coverage_and_R_inflated():
    # asks reach only 5 bps: every depth is measured at 5 bps on both sides
    book = make_book([(99.995, 2.0), (99.95, 1.0), (99.4, 4.0)], [(100.005, 1.0), (100.05, 3.0)])
    out = NodeHarness("features.bim", PARAMS).step(S, book=book)
    np.testing.assert_allclose(out["covered_bps"], [5.0, 5.0, 5.0], rtol=1e-12)
    np.testing.assert_allclose(out["bim"], [(3 - 4) / 7] * 3)  # the 60-bps bid is not counted
    usd = 2 * 99.995 + 99.95 + 100.005 + 3 * 100.05
    assert math.isclose(out["obs"][1], 0.04 * 200_000 / usd * (10 / 5.0) ** 2, rel_tol=1e-9)
    h = NodeHarness("features.bim", {**PARAMS, "cover_power": 0.0})  # no inflation asked
    assert math.isclose(h.step(S, book=book)["obs"][1], 0.04 * 200_000 / usd, rel_tol=1e-9)


def test_unusable_books_emit_nothing_and_keep_the_last_values():
    h = NodeHarness("features.bim", PARAMS)
    good = make_book([(99.99, 1.0)], [(100.01, 3.0)])
    first = h.step(S, book=good)
    assert first["bim"][0] == -0.5
    bad = {
        "empty": make_book([], []),
        "one-sided": make_book([(99.99, 1.0)], []),
        "crossed": make_book([(100.02, 1.0)], [(100.01, 1.0)]),
        "locked": make_book([(100.0, 1.0)], [(100.0, 1.0)]),
        "NaN touch": make_book([(math.nan, 1.0)], [(100.01, 1.0)]),
        "inf touch": make_book([(99.99, 1.0)], [(math.inf, 1.0)]),
    }
    for t, (name, book) in enumerate(bad.items(), start=2):
        out = h.step(t * S, book=book)
        assert out.emitted == set(), name
        np.testing.assert_array_equal(out["bim"], first["bim"])
        np.testing.assert_array_equal(out["obs"], first["obs"])
    assert h.step(9 * S).emitted == set()  # no new book: the same book is not observed twice
    assert h.step(9 * S, book=good).emitted == {"bim", "covered_bps", "depth_usd", "obs"}  # zero dt


def test_bad_sizes_count_as_nothing_and_an_empty_window_is_nan():
    book = make_book(
        [(99.99, math.nan), (99.98, 2.0), (99.9, 0.0)], [(100.01, -1.0), (100.02, 0.0), (100.03, 1.0)]
    )
    out = NodeHarness("features.bim", PARAMS).step(S, book=book)
    assert out["bim"][0] == pytest.approx((2 - 1) / 3)  # a zero-size level still bounds the coverage
    assert out["covered_bps"][0] == pytest.approx(3.0)
    # a spread of 20 bps: nothing within 5 bps of mid; BIM(5) is NaN, and so no obs from it
    wide = make_book([(99.9, 1.0), (99.0, 1.0)], [(100.1, 1.0), (101.0, 1.0)])
    h = NodeHarness("features.bim", {"depths_bps": [5, 50], "obs_depth_bps": 5})
    out = h.step(S, book=wide)
    assert math.isnan(out["bim"][0]) and out["bim"][1] == 0.0
    assert out.emitted == {"bim", "covered_bps", "depth_usd"}
    h = NodeHarness("features.bim", {"depths_bps": [5, 50], "obs_depth_bps": 50})
    assert "obs" in h.step(S, book=wide).emitted


book_sides = st.lists(st.tuples(st.integers(1, 400), st.floats(0.0, 1e6)), min_size=1, max_size=20)


@settings(max_examples=100, deadline=None)
@given(book_sides, book_sides, st.integers(1, 20), st.sampled_from([0.001, 1.0, 0.01]))
def test_bim_in_range_coverage_at_most_depth_and_R_positive(bids, asks, spread, tick):
    bid0, ask0 = 20_000, 20_000 + spread
    book = make_book(
        [((bid0 - sum(g for g, _ in bids[: i + 1]) + bids[0][0]) * tick, s) for i, (_, s) in enumerate(bids)],
        [((ask0 + sum(g for g, _ in asks[: i + 1]) - asks[0][0]) * tick, s) for i, (_, s) in enumerate(asks)],
    )
    out = NodeHarness("features.bim", {"depths_bps": [1, 10, 50]}).step(S, book=book)
    assert {"bim", "covered_bps"} <= out.emitted
    finite = out["bim"][np.isfinite(out["bim"])]
    assert np.all(np.abs(finite) <= 1.0)
    assert np.all(out["covered_bps"] <= [1, 10, 50]) and np.all(out["covered_bps"] > 0)
    assert np.all(np.diff(out["covered_bps"]) >= 0)
    if "obs" in out.emitted:
        assert out["obs"][1] > 0 and abs(out["obs"][0]) <= 0.06


def test_params_pack_and_validate():
    node = Bim(Bim.Params(depths_bps=[5, 20], obs_depth_bps=20, alpha=0.5))
    np.testing.assert_array_equal(node.pack_params(), [0.5, 0.2, 200_000.0, 2.0, 1.0, 2.0, 5.0, 20.0])
    assert node.output_size("bim") == node.output_size("covered_bps") == 2
    for bad in (
        {"obs_depth_bps": 15},
        {"depths_bps": [10, 10]},
        {"depths_bps": [-1, 10]},
        {"depths_bps": []},
        {"depths_bps": list(range(1, 11)), "obs_depth_bps": 1},
    ):
        with pytest.raises(ValidationError):
            Bim.Params(**bad)


def test_a_bad_depth_in_a_graph_is_a_located_error():
    graph = {
        "name": "g",
        "instrument": {"coin": "HYPE"},
        "clock": {"quote_every_ms": 1000},
        "nodes": {
            "bim": {"type": "features.bim", "in": {"book": "source.book"}, "params": {"obs_depth_bps": 15}}
        },
    }
    with pytest.raises(GraphError) as exc:
        load_graph(graph)
    assert "obs_depth_bps" in str(exc.value.format()) and exc.value.diagnostics[0].location.node == "bim"


@njit
def _drive(n, params, book, bim, covered, usd, obs):
    total = 0
    for k in range(n):
        book[0, 1] = 1.0 + k % 5  # vary the bid touch size
        total += bim_kernel(np.int64(k), 1.0, params, book, True, bim, covered, usd, obs)
    return total


def test_kernel_allocates_nothing_per_book():
    a = example_args(Bim())  # [now, dt, params, book, ticked, bim, covered_bps, depth_usd, obs]
    a[3][:3] = [[99.99, 1.0, 1, 100.01, 2.0, 1], [99.9, 1.0, 1, 100.1, 1.0, 1], [99.0, 1, 1, 101.0, 1.0, 1]]
    args = (a[2], a[3], *a[5:])
    assert _drive(1, *args) == 15
    assert allocations(_drive, 1, *args) == allocations(_drive, 300, *args)


def test_real_btc_hour_head(shared_data):
    """Real 2024 archive books: sparse, every depth reached at 10 bps, values as computed directly."""
    path = shared_data("hyperliquid/s3_archive_l2book/market_data_20240101_12_l2Book_BTC.head50.jsonl")
    h = NodeHarness("features.bim")
    n = 0
    for line in path.read_text().splitlines():
        d = json.loads(line)["raw"]["data"]
        book = make_book(*[[(float(x["px"]), float(x["sz"])) for x in side] for side in d["levels"]])
        out = h.step(int(d["time"]) * 1_000_000, book=book)
        assert "obs" in out.emitted
        for j, depth in enumerate((10.0, 25.0, 50.0)):
            b, dc, usd = direct(book, depth)
            assert math.isclose(out["bim"][j], b, rel_tol=1e-9, abs_tol=1e-15)
            assert out["covered_bps"][j] == dc
        assert out["covered_bps"][0] == 10.0 and out["depth_usd"][0] > 1e6  # ~$1.9M inside 10 bps
        n += 1
    assert n == 50
