import json
import math

import numpy as np
import pytest
from flowmm.nodes.features.dbim import Dbim, dbim_kernel
from numba import njit
from pydantic import ValidationError

from flowmm.core.ports import ASK_PX, ASK_SZ, BID_PX, BID_SZ, BOOK_LEVELS
from flowmm.testing import NodeHarness, allocations, example_args

S = 1_000_000_000
PARAMS = {
    "depth_bps": 10.0,
    "lag_cycles": 2,
    "max_gap_s": 30.0,
    "alpha": 0.015,
    "sigma": 0.2,
    "cover_power": 2.0,
}


def make_book(bids, asks) -> np.ndarray:
    b = np.full((BOOK_LEVELS, 6), np.nan)
    for i, (px, sz) in enumerate(bids):
        b[i, 0:3] = px, sz, 1
    for i, (px, sz) in enumerate(asks):
        b[i, 3:6] = px, sz, 1
    return b


def random_book(rng, mid_ticks: int, tick=0.001) -> np.ndarray:
    levels = (int(rng.integers(2, 21)), int(rng.integers(2, 21)))
    gap = int(rng.integers(2, 40))
    spread = int(rng.integers(1, 6))
    bid0 = mid_ticks - spread // 2
    bids = bid0 - np.cumsum(np.r_[0, rng.integers(1, gap, levels[0] - 1)])
    asks = bid0 + spread + np.cumsum(np.r_[0, rng.integers(1, gap, levels[1] - 1)])
    return make_book(
        [(p * tick, s) for p, s in zip(bids, rng.lognormal(3, 1.3, levels[0]))],
        [(p * tick, s) for p, s in zip(asks, rng.lognormal(3, 1.3, levels[1]))],
    )


def mid_cover(book):
    bp, ap = book[:, BID_PX], book[:, ASK_PX]
    if not (bp[0] > 0 and ap[0] > bp[0] and np.isfinite(ap[0])):
        return None
    mid = 0.5 * (bp[0] + ap[0])
    return mid, min(np.nanmax((mid - bp) / mid * 1e4), np.nanmax((ap - mid) / mid * 1e4))


def bim_at(book, mid, d):
    db = (mid - book[:, BID_PX]) / mid * 1e4
    da = (book[:, ASK_PX] - mid) / mid * 1e4
    vb = np.nansum(np.where((db <= d) & (book[:, BID_SZ] > 0), book[:, BID_SZ], 0.0))
    va = np.nansum(np.where((da <= d) & (book[:, ASK_SZ] > 0), book[:, ASK_SZ], 0.0))
    return (vb - va) / (vb + va) if vb + va > 0 else math.nan


def direct(steps, p):
    """The documented semantics, written out over the whole history (a list of valid books
    since the last restart): one expected (dbim, rate, covered, z, R) or None per step."""
    lag, out, seg = p["lag_cycles"], [], []
    for t, book in steps:
        mc = mid_cover(book)
        if mc is None:
            seg = []
            out.append(None)
            continue
        if seg and t == seg[-1][0]:
            seg[-1] = (t, book, *mc)
            out.append(None)
            continue
        if seg and (t - seg[-1][0]) / S > p["max_gap_s"]:
            seg = []
        seg.append((t, book, *mc))
        if len(seg) < lag + 1:
            out.append(None)
            continue
        t0, b0, m0, c0 = seg[-1 - lag]
        dc = min(p["depth_bps"], mc[1], c0)
        now, then = bim_at(book, mc[0], dc), bim_at(b0, m0, dc)
        if math.isnan(now) or math.isnan(then):
            out.append(None)
            continue
        rate = (now - then) / ((t - t0) / S)
        infl = (p["depth_bps"] / dc) ** p["cover_power"] if dc < p["depth_bps"] else 1.0
        out.append((now - then, rate, dc, p["alpha"] * rate, p["sigma"] ** 2 * infl / lag))
    return out


@pytest.mark.parametrize("lag", [1, 2, 3])
def test_math_against_the_direct_semantics(lag):
    rng = np.random.default_rng(lag)
    p = {**PARAMS, "lag_cycles": lag, "depth_bps": 25.0}
    steps, t, mid = [], 0, 28_000
    for _ in range(400):
        t += int(rng.choice([0, 1, 1, 1, 2, 45]) * S)  # same-time books and gaps too
        mid += int(rng.integers(-3, 4))
        book = random_book(rng, mid)
        if rng.random() < 0.03:
            book[:, 3:] = np.nan  # one-sided
        steps.append((t, book))
    expected = direct(steps, p)
    h = NodeHarness("features.dbim", p)
    n = 0
    for (t, book), exp in zip(steps, expected):
        out = h.step(t, book=book)
        if exp is None:
            assert out.emitted == set()
            continue
        n += 1
        assert out.emitted == {"dbim", "rate", "covered_bps", "obs"}
        got = (out["dbim"], out["rate"], out["covered_bps"], out["obs"][0], out["obs"][1])
        for g, e in zip(got, exp):
            assert math.isclose(g, e, rel_tol=1e-9, abs_tol=1e-15)
    assert n > 150  # most steps compared


def test_hand_worked_change_and_rate():
    up = make_book([(99.99, 3.0), (99.0, 1.0)], [(100.01, 1.0), (101.0, 1.0)])  # BIM(10) = +0.5
    down = make_book([(99.99, 1.0), (99.0, 1.0)], [(100.01, 3.0), (101.0, 1.0)])  # BIM(10) = -0.5
    h = NodeHarness("features.dbim", {**PARAMS, "lag_cycles": 1})
    assert h.step(10 * S, book=up).emitted == set()  # the first book only fills the ring
    out = h.step(12 * S, book=down)
    assert (out["dbim"], out["rate"], out["covered_bps"]) == (-1.0, -0.5, 10.0)
    np.testing.assert_allclose(out["obs"], [0.015 * -0.5, 0.04])
    h = NodeHarness("features.dbim", {**PARAMS, "lag_cycles": 3})
    for k, book in enumerate([up, down, up]):
        assert h.step(k * S, book=book).emitted == set()
    out = h.step(3 * S, book=down)  # against the first book, 3 s back; R / 3
    assert (out["dbim"], out["rate"]) == (-1.0, -1.0 / 3)
    np.testing.assert_allclose(out["obs"], [-0.015 / 3, 0.04 / 3])


def test_both_ends_are_measured_at_the_same_window():
    # the old book reaches 100 bps; the new one only 5 bps (asks): both are read within 5 bps,
    # where nothing changed, although BIM(10) of the old book alone differs
    old = make_book([(99.99, 1.0), (99.92, 5.0), (99.0, 1.0)], [(100.01, 1.0), (100.05, 1.0), (101.0, 1.0)])
    new = make_book([(99.99, 1.0), (99.92, 1.0), (99.0, 1.0)], [(100.01, 1.0), (100.05, 1.0)])
    h = NodeHarness("features.dbim", {**PARAMS, "lag_cycles": 1})
    h.step(S, book=old)
    out = h.step(2 * S, book=new)
    assert out["covered_bps"] == pytest.approx(5.0) and out["dbim"] == 0.0
    assert out["obs"][1] == pytest.approx(0.04 * (10 / 5.0) ** 2)  # R inflated by (d / d_cov)^2


def test_edges_warm_up_gaps_one_sided_zero_dt_no_tick():
    a = make_book([(99.99, 3.0), (99.0, 1.0)], [(100.01, 1.0), (101.0, 1.0)])
    b = make_book([(99.99, 1.0), (99.0, 1.0)], [(100.01, 1.0), (101.0, 1.0)])
    h = NodeHarness("features.dbim", {**PARAMS, "lag_cycles": 1, "max_gap_s": 5.0})
    assert h.step(S, book=a).emitted == set()
    assert h.step(2 * S).emitted == set()  # no new book
    assert h.step(2 * S, book=b).emitted == {"dbim", "rate", "covered_bps", "obs"}
    last = h.step(3 * S, book=a)["dbim"]
    assert h.step(3 * S, book=b).emitted == set()  # same time: replaces the last book
    assert h.step(4 * S, book=b)["dbim"] == 0.0  # against the replacement, not `a`
    assert h.step(5 * S, book=make_book([(99.99, 1.0)], [])).emitted == set()  # one-sided: restart
    out = h.step(6 * S, book=a)
    assert out.emitted == set() and out["dbim"] == 0.0 and last == 0.5  # warming up again
    assert h.step(7 * S, book=b).emitted == {"dbim", "rate", "covered_bps", "obs"}
    assert h.step(13 * S, book=a).emitted == set()  # 6 s > max_gap_s: restart
    assert h.step(14 * S, book=b)["rate"] == -0.5
    assert h.step(12 * S, book=a).emitted == set()  # time went back: restart
    assert h.step(13 * S, book=b).emitted == {"dbim", "rate", "covered_bps", "obs"}


def test_params_and_state():
    node = Dbim(Dbim.Params(lag_cycles=5))
    books, times, mc, meta = node.init_state()
    assert books.shape == (6, BOOK_LEVELS, 6) and times.shape == (6,) and mc.shape == (6, 2)
    for bad in ({"lag_cycles": 0}, {"lag_cycles": 17}, {"max_gap_s": 0}, {"depth_bps": -1}):
        with pytest.raises(ValidationError):
            Dbim.Params(**bad)


@njit
def _drive(n, clock, params, books, times, mc, meta, book, dbim, rate, covered, obs):
    total = 0
    for k in range(n):
        clock[0] += 1_000_000_000
        book[0, 1] = 1.0 + k % 5
        total += dbim_kernel(
            clock[0], 1.0, params, books, times, mc, meta, book, True, dbim, rate, covered, obs
        )
    return total


def test_kernel_allocates_nothing_per_book():
    a = example_args(Dbim())  # [now, dt, params, 4 states, book, ticked, 4 outputs]
    a[7][:2] = [[99.99, 1.0, 1, 100.01, 2.0, 1], [99.0, 1.0, 1, 101.0, 1.0, 1]]
    args = (np.zeros(1, np.int64), a[2], *a[3:8], *a[9:])
    assert _drive(4, *args) == 15  # the first lag_cycles = 3 books fill the ring, the 4th emits
    assert allocations(_drive, 1, *args) == allocations(_drive, 300, *args)


def test_real_btc_hour_head(shared_data):
    path = shared_data("hyperliquid/s3_archive_l2book/market_data_20240101_12_l2Book_BTC.head50.jsonl")
    steps = []  # lag 2 here
    for line in path.read_text().splitlines():
        d = json.loads(line)["raw"]["data"]
        steps.append(
            (
                int(d["time"]) * 1_000_000,
                make_book(*[[(float(x["px"]), float(x["sz"])) for x in s] for s in d["levels"]]),
            )
        )
    expected = direct(steps, PARAMS)
    h = NodeHarness("features.dbim", PARAMS)
    n = 0
    for (t, book), exp in zip(steps, expected):
        out = h.step(t, book=book)
        assert ("obs" in out.emitted) == (exp is not None)
        if exp is not None:
            n += 1
            assert math.isclose(out["rate"], exp[1], rel_tol=1e-9, abs_tol=1e-15)
    assert n == 48  # every snapshot after the two of the warm-up
