import json
import math

import numpy as np
import pytest
from flowmm.nodes.features.bpg import Bpg, bpg_kernel
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from pydantic import ValidationError

from flowmm.core.ports import ASK_PX, ASK_SZ, BID_PX, BID_SZ, BOOK_LEVELS
from flowmm.testing import NodeHarness, allocations, example_args

S = 1_000_000_000
PARAMS = {"shallow_bps": 10.0, "deep_bps": 50.0, "alpha": 0.07, "sigma": 0.2, "cover_power": 2.0}


def make_book(bids, asks) -> np.ndarray:
    b = np.full((BOOK_LEVELS, 6), np.nan)
    for i, (px, sz) in enumerate(bids):
        b[i, 0:3] = px, sz, 1
    for i, (px, sz) in enumerate(asks):
        b[i, 3:6] = px, sz, 1
    return b


def random_book(rng, tick=0.001) -> np.ndarray:
    levels = (int(rng.integers(2, 21)), int(rng.integers(2, 21)))
    gap = int(rng.integers(2, 60))
    spread = int(rng.integers(1, 6))
    bid0 = 28_000 - spread // 2
    bids = bid0 - np.cumsum(np.r_[0, rng.integers(1, gap, levels[0] - 1)])
    asks = bid0 + spread + np.cumsum(np.r_[0, rng.integers(1, gap, levels[1] - 1)])
    return make_book(
        [(p * tick, s) for p, s in zip(bids, rng.lognormal(3, 1.3, levels[0]))],
        [(p * tick, s) for p, s in zip(asks, rng.lognormal(3, 1.3, levels[1]))],
    )


def direct(book, p):
    """BIM(shallow) - BIM(deep) by numpy, each window capped at the book's coverage;
    None when the capped windows coincide. Returns (bpg, ds, dl, z, R)."""
    bp, ap = book[:, BID_PX], book[:, ASK_PX]
    mid = 0.5 * (bp[0] + ap[0])
    db, da = (mid - bp) / mid * 1e4, (ap - mid) / mid * 1e4
    cover = min(np.nanmax(db), np.nanmax(da))
    ds, dl = min(p["shallow_bps"], cover), min(p["deep_bps"], cover)
    if not dl > ds:
        return None, ds, dl

    def bim(d):
        vb = np.nansum(np.where(db <= d, book[:, BID_SZ], 0.0))
        va = np.nansum(np.where(da <= d, book[:, ASK_SZ], 0.0))
        return (vb - va) / (vb + va)

    g = bim(ds) - bim(dl)
    infl = (p["shallow_bps"] / ds) ** p["cover_power"] * (p["deep_bps"] / dl) ** p["cover_power"]
    return (g, p["alpha"] * g, p["sigma"] ** 2 * infl), ds, dl


def test_math_against_a_direct_computation():
    rng = np.random.default_rng(11)
    h = NodeHarness("features.bpg", PARAMS)
    counts = {"full": 0, "partial": 0, "none": 0}
    for k in range(300):
        book = random_book(rng)
        out = h.step(k * S, book=book)
        exp, ds, dl = direct(book, PARAMS)
        np.testing.assert_array_equal(out["covered_bps"], [ds, dl])
        if exp is None:
            counts["none"] += 1
            assert out.emitted == {"covered_bps"}
            continue
        counts["full" if dl == 50.0 else "partial"] += 1
        assert out.emitted == {"bpg", "covered_bps", "obs"}
        for g, e in zip((out["bpg"], *out["obs"]), exp):
            assert math.isclose(g, e, rel_tol=1e-9, abs_tol=1e-15)
    assert min(counts.values()) > 20, counts  # every coverage case exercised


def test_hand_worked_gradient():
    # mid 100: within 10 bps bids 3 / asks 1 (BIM +0.5); within 50 bps bids 4 / asks 6 (BIM -0.2)
    book = make_book(
        [(99.99, 3.0), (99.7, 1.0), (99.3, 1.0)],
        [(100.01, 1.0), (100.3, 5.0), (100.7, 1.0)],
    )
    out = NodeHarness("features.bpg", PARAMS).step(S, book=book)
    assert out["bpg"] == pytest.approx(0.5 - (-0.2))
    np.testing.assert_array_equal(out["covered_bps"], [10.0, 50.0])
    np.testing.assert_allclose(out["obs"], [0.07 * 0.7, 0.04])


def test_short_books_inflate_R_or_give_no_value():
    # asks reach 30 bps: deep window at 30 bps, R x (50/30)^2
    book = make_book([(99.99, 3.0), (99.7, 1.0), (99.3, 1.0)], [(100.01, 1.0), (100.3, 5.0)])
    out = NodeHarness("features.bpg", PARAMS).step(S, book=book)
    np.testing.assert_allclose(out["covered_bps"], [10.0, 30.0])
    assert out["bpg"] == pytest.approx(0.5 - (4 - 6) / 10)
    assert out["obs"][1] == pytest.approx(0.04 * (50 / 30.0) ** 2)
    # a dense book spanning 3 bps: both windows are the same 3 bps, BPG = 0 by construction
    dense = make_book(
        [(99.99 - 0.01 * i, 1.0) for i in range(20)], [(100.01 + 0.01 * i, 2.0) for i in range(3)]
    )
    h = NodeHarness("features.bpg", PARAMS)
    out = h.step(S, book=dense)
    assert out.emitted == {"covered_bps"}
    np.testing.assert_allclose(out["covered_bps"], [3.0, 3.0])


def test_unusable_books_emit_nothing():
    h = NodeHarness("features.bpg", PARAMS)
    good = make_book([(99.99, 3.0), (99.3, 1.0)], [(100.01, 1.0), (100.7, 1.0)])
    first = h.step(S, book=good)
    assert first.emitted == {"bpg", "covered_bps", "obs"}
    for k, book in enumerate(
        [make_book([], []), make_book([(99.99, 1.0)], []), make_book([(100.02, 1.0)], [(100.01, 1.0)])],
        start=2,
    ):
        out = h.step(k * S, book=book)
        assert out.emitted == set() and out["bpg"] == first["bpg"]
    assert h.step(9 * S).emitted == set()  # no new book


def test_observation_does_not_depend_on_inventory():
    # CONVENTIONS.md: the drift filter gets alpha * BPG; the seed's sign(q) belongs in quoting.
    # The node reads the book only, so no position can reach its obs.
    assert set(Bpg.inputs) == {"book"}
    assert not any(decl.type in ("fills", "orders") for decl in Bpg.inputs.values())


sides = st.lists(st.tuples(st.integers(1, 300), st.floats(0.0, 1e6)), min_size=1, max_size=20)


@settings(max_examples=100, deadline=None)
@given(sides, sides, st.integers(1, 20))
def test_bpg_in_range(bids, asks, spread):
    bid0 = 28_000
    bp = bid0 - np.cumsum([g for g, _ in bids]) + bids[0][0]
    ap = bid0 + spread + np.cumsum([g for g, _ in asks]) - asks[0][0]
    book = make_book(
        [(p * 0.001, s) for p, (_, s) in zip(bp, bids)], [(p * 0.001, s) for p, (_, s) in zip(ap, asks)]
    )
    out = NodeHarness("features.bpg", PARAMS).step(S, book=book)
    assert "covered_bps" in out.emitted
    assert 0 < out["covered_bps"][0] <= out["covered_bps"][1] <= 50.0
    if "bpg" in out.emitted:
        assert -2.0 <= out["bpg"] <= 2.0 and out["obs"][1] >= 0.04


def test_params_validate():
    with pytest.raises(ValidationError):
        Bpg.Params(shallow_bps=50, deep_bps=50)
    with pytest.raises(ValidationError):
        Bpg.Params(shallow_bps=0)


@njit
def _drive(n, params, book, bpg, covered, obs):
    total = 0
    for k in range(n):
        book[0, 1] = 1.0 + k % 5
        total += bpg_kernel(np.int64(k), 1.0, params, book, True, bpg, covered, obs)
    return total


def test_kernel_allocates_nothing_per_book():
    a = example_args(Bpg())  # [now, dt, params, book, ticked, bpg, covered_bps, obs]
    a[3][:2] = [[99.99, 1.0, 1, 100.01, 2.0, 1], [99.0, 1.0, 1, 101.0, 1.0, 1]]
    args = (a[2], a[3], *a[5:])
    assert _drive(1, *args) == 7
    assert allocations(_drive, 1, *args) == allocations(_drive, 300, *args)


def test_real_btc_hour_head(shared_data):
    path = shared_data("hyperliquid/s3_archive_l2book/market_data_20240101_12_l2Book_BTC.head50.jsonl")
    h = NodeHarness("features.bpg", PARAMS)
    for k, line in enumerate(path.read_text().splitlines()):
        d = json.loads(line)["raw"]["data"]
        book = make_book(*[[(float(x["px"]), float(x["sz"])) for x in s] for s in d["levels"]])
        out = h.step(k * S, book=book)
        exp, ds, dl = direct(book, PARAMS)
        assert exp is not None and ds == 10.0 and 10.0 < dl <= 50.0  # sparse 2024 books reach past 10 bps
        assert math.isclose(out["bpg"], exp[0], rel_tol=1e-9, abs_tol=1e-15)
