"""The paper broker's matching core on hand-built tapes (flowmm.execution.matching)."""

import math

import numba
import numpy as np
import pytest
from numba.core import types

from flowmm.core.ports import ACT_CANCEL, ACT_MODIFY, ACT_PLACE, ORD_PENDING_NEW, ORD_RESTING
from flowmm.execution import matching as M
from flowmm.execution.fees import FeeSchedule
from flowmm.execution.matching import (
    ST_FULL,
    ST_INVALID,
    ST_NOT_FOUND,
    ST_OK,
    ST_REJECT_CROSS,
    MatchParams,
    PaperBook,
)
from flowmm.testing import allocations

BID, ASK = 1, -1
SELL, BUY = -1, 1  # aggressor sides on the tape


def broker(model="risk_averse", power=2.0, **kw):
    return PaperBook(MatchParams(queue_model=model, power=power, **kw))


def standard_book(pb, bid_sz=10.0):
    """bids 99 (bid_sz), 98 (3); asks 101 (4), 102 (6): mid 100."""
    return pb.book([(99.0, bid_sz), (98.0, 3.0)], [(101.0, 4.0), (102.0, 6.0)])


def sizes(pb):
    return [(f["oid"], f["px"], f["sz"]) for f in pb.fills()]


# -- placement and queue position ----------------------------------------------------------


def test_place_joins_the_back_of_its_level():
    pb = broker()
    standard_book(pb)
    assert pb.place(BID, 99.0, 1.0, oid=1)[0] == ST_OK
    assert pb.place(BID, 98.0, 1.0, oid=2)[0] == ST_OK
    assert pb.place(BID, 100.0, 1.0, oid=3)[0] == ST_OK  # improves the best: nothing ahead
    assert pb.place(BID, 98.5, 1.0, oid=4)[0] == ST_OK  # empty level between two visible ones
    assert pb.place(ASK, 102.0, 1.0, oid=5)[0] == ST_OK
    assert [pb.queue_ahead(o) for o in (1, 2, 3, 4, 5)] == [10.0, 3.0, 0.0, 0.0, 6.0]
    row = pb.order(1)
    assert row["status"] == ORD_RESTING and row["sz"] == row["orig_sz"] == 1.0
    assert row["t_placed_s"] == pytest.approx(pb.now * 1e-9 - 4e-3)  # five placements, 1 ms apart


def test_risk_averse_queue_advances_only_by_trades():
    pb = broker("risk_averse")
    standard_book(pb)
    pb.place(BID, 99.0, 2.0, oid=1)
    assert pb.trade(99.0, 4.0, SELL) == 0  # consumes queue ahead only
    assert pb.queue_ahead(1) == 6.0
    assert pb.trade(99.5, 50.0, SELL) == 0  # above our bid: nothing
    assert pb.trade(99.0, 7.0, SELL) == 1  # 6 ahead, then 1 of our 2: partial fill
    assert sizes(pb) == [(1.0, 99.0, 1.0)]
    assert pb.order(1)["sz"] == 1.0 and pb.queue_ahead(1) == 0.0
    assert pb.trade(99.0, 5.0, SELL) == 1  # the rest
    assert sizes(pb)[-1] == (1.0, 99.0, 1.0) and pb.order(1) is None


def test_risk_averse_caps_queue_at_displayed_size_and_ignores_growth():
    pb = broker("risk_averse")
    standard_book(pb)
    pb.place(BID, 99.0, 2.0, oid=1)
    pb.book([(99.0, 4.0)], [(101.0, 4.0)])  # 6 cancelled somewhere: only the cap applies
    assert pb.queue_ahead(1) == 4.0
    pb.book([(99.0, 9.0)], [(101.0, 4.0)])  # others join behind us
    assert pb.queue_ahead(1) == 4.0
    pb.book([(99.0, 7.0)], [(101.0, 4.0)])  # cancellations of 2 behind or ahead: risk-averse says behind
    assert pb.queue_ahead(1) == 4.0
    assert pb.trade(99.0, 5.0, SELL) == 1 and sizes(pb) == [(1.0, 99.0, 1.0)]


def test_probabilistic_queue_power_share_matches_hand_computation():
    pb = broker("probabilistic", power=3.0)
    pb.book([(99.0, 10.0)], [(101.0, 4.0)])
    pb.place(BID, 99.0, 1.0, oid=1)
    assert pb.queue_ahead(1) == 10.0
    pb.book([(99.0, 15.0)], [(101.0, 4.0)])  # 5 join behind: front 10, back 5
    assert pb.queue_ahead(1) == 10.0
    pb.book([(99.0, 12.0)], [(101.0, 4.0)])  # 3 cancelled
    share = 10.0**3 / (10.0**3 + 5.0**3)  # f(front)/(f(front)+f(back)) = 8/9
    assert share == pytest.approx(8.0 / 9.0)
    assert pb.queue_ahead(1) == pytest.approx(10.0 - 3.0 * share)  # 7.3333
    # power 1 (proportional), front 4, back 1, 3 cancelled: 4 - 3*0.8 = 1.6
    pb = broker("probabilistic", power=1.0)
    pb.book([(99.0, 4.0)], [(101.0, 4.0)])
    pb.place(BID, 99.0, 1.0, oid=1)
    pb.book([(99.0, 5.0)], [(101.0, 4.0)])
    pb.book([(99.0, 2.0)], [(101.0, 4.0)])
    assert pb.queue_ahead(1) == pytest.approx(1.6)


def test_probabilistic_decrease_beyond_back_spills_into_front():
    # front 1, back 3, power 2: share 0.1; 3.5 cancelled: 3.15 > back, so front ends at 4 - 3.5
    pb = broker("probabilistic", power=2.0)
    pb.book([(99.0, 1.0)], [(101.0, 4.0)])
    pb.place(BID, 99.0, 1.0, oid=1)
    pb.book([(99.0, 4.0)], [(101.0, 4.0)])
    pb.book([(99.0, 0.5)], [(101.0, 4.0)])
    assert pb.queue_ahead(1) == pytest.approx(1.0 - 0.35 + (3.0 - 3.15))
    assert pb.queue_ahead(1) == pytest.approx(0.5)


def test_probabilistic_does_not_count_a_trade_twice():
    pb = broker("probabilistic", power=2.0)
    pb.book([(99.0, 10.0)], [(101.0, 4.0)])
    pb.place(BID, 99.0, 1.0, oid=1)
    pb.book([(99.0, 20.0)], [(101.0, 4.0)])  # front 10, back 10
    assert pb.trade(99.0, 4.0, SELL) == 0
    assert pb.queue_ahead(1) == 6.0
    pb.book([(99.0, 16.0)], [(101.0, 4.0)])  # the book shows the trade: no cancellation
    assert pb.queue_ahead(1) == 6.0
    pb.book([(99.0, 12.0)], [(101.0, 4.0)])  # now 4 cancelled: front 6, back 10, share 36/136
    assert pb.queue_ahead(1) == pytest.approx(6.0 - 4.0 * 36.0 / 136.0)


def test_probabilistic_with_own_order_in_displayed_book():
    # own_in_book: displayed 12 = 6 ahead + our 2 + 4 behind; 3 cancelled, power 1 -> share 0.6
    pb = broker("probabilistic", power=1.0, own_in_book=True)
    pb.book([(99.0, 6.0)], [(101.0, 4.0)])
    pb.place(BID, 99.0, 2.0, oid=1)
    pb.book([(99.0, 12.0)], [(101.0, 4.0)])
    assert pb.queue_ahead(1) == 6.0
    pb.book([(99.0, 9.0)], [(101.0, 4.0)])
    assert pb.queue_ahead(1) == pytest.approx(6.0 - 3.0 * 0.6)


def test_unknown_queue_beyond_visible_depth():
    pb = broker()
    standard_book(pb)
    pb.place(BID, 97.0, 1.0, oid=1)  # deeper than the deepest visible bid (98)
    assert math.isnan(pb.queue_ahead(1))
    assert pb.trade(97.0, 100.0, SELL) == 0  # unknown queue: no fill at our price
    pb.book([(99.0, 10.0), (98.0, 3.0), (97.0, 5.0)], [(101.0, 4.0)])
    assert pb.queue_ahead(1) == 5.0  # first sight of the level: back of it
    assert pb.trade(96.0, 0.1, SELL) == 1  # trade-through fills regardless
    assert sizes(pb) == [(1.0, 97.0, 1.0)]


# -- trade-through, priority, partials -----------------------------------------------------


def test_trade_through_fills_whole_remaining_at_our_price():
    pb = broker()
    standard_book(pb)
    pb.place(BID, 99.0, 3.0, oid=1)
    pb.place(ASK, 102.0, 2.0, oid=2)
    assert pb.trade(98.5, 0.01, SELL) == 1  # tiny print below our bid: walked through us
    assert pb.trade(102.5, 0.01, BUY) == 1
    assert sizes(pb) == [(1.0, 99.0, 3.0), (2.0, 102.0, 2.0)]
    assert [f["side"] for f in pb.fills()] == [1.0, -1.0]
    assert pb.order(1) is None and pb.order(2) is None


def test_buyer_prints_do_not_touch_bids_and_sellers_not_asks():
    pb = broker()
    standard_book(pb)
    pb.place(BID, 99.0, 1.0, oid=1)
    pb.place(ASK, 101.0, 1.0, oid=2)
    assert pb.trade(98.0, 100.0, BUY) == 0
    assert pb.trade(102.0, 100.0, SELL) == 0
    assert pb.queue_ahead(1) == 10.0 and pb.queue_ahead(2) == 4.0


def test_trade_through_seen_on_the_book():
    pb = broker()
    standard_book(pb)
    pb.place(BID, 99.0, 2.0, oid=1)
    pb.place(ASK, 101.0, 1.0, oid=2)
    n = pb.book([(98.0, 3.0)], [(99.0, 1.0), (100.0, 5.0)])  # best ask fell to our bid
    assert n == 1 and sizes(pb) == [(1.0, 99.0, 2.0)]
    assert pb.fills()[0]["mid_ref"] == 100.0  # the mid before this book
    assert pb.order(2) is not None  # the ask was not crossed
    n = pb.book([(101.5, 1.0)], [(103.0, 1.0)])  # best bid above our ask
    assert n == 1 and sizes(pb)[-1] == (2.0, 101.0, 1.0)


def test_one_print_fills_several_orders_in_price_time_priority():
    pb = broker()
    pb.book([(99.0, 2.0), (98.0, 3.0)], [(101.0, 4.0)])
    pb.place(BID, 100.0, 1.0, oid=10)  # improves the best
    pb.place(BID, 99.0, 1.0, oid=11)  # A: 2 ahead
    pb.book([(99.0, 3.0), (98.0, 3.0)], [(101.0, 4.0)])  # 1 joins behind A
    pb.place(BID, 99.0, 2.0, oid=12)  # B: 3 displayed ahead, plus A
    pb.place(BID, 98.0, 1.0, oid=13)
    # print of 8 at 99: 1 to our 100 bid (walked through), 2 queue, A 1, 1 between A and B, B 2
    assert pb.trade(99.0, 8.0, SELL) == 3
    assert sizes(pb) == [(10.0, 100.0, 1.0), (11.0, 99.0, 1.0), (12.0, 99.0, 2.0)]
    assert pb.order(13)["sz"] == 1.0 and pb.queue_ahead(13) == 3.0


def test_trade_through_fills_use_up_the_print_before_our_price_level():
    pb = broker()
    pb.book([(99.0, 2.0)], [(101.0, 4.0)])
    pb.place(BID, 100.0, 1.0, oid=10)
    pb.place(BID, 99.0, 1.0, oid=11)  # 2 ahead
    pb.book([(99.0, 3.0)], [(101.0, 4.0)])
    pb.place(BID, 99.0, 2.0, oid=12)  # 3 ahead (+ order 11)
    # print of 5 at 99: 1 to our 100 bid first, then 2 queue, order 11, 1 between: none left for 12
    assert pb.trade(99.0, 5.0, SELL) == 2
    assert sizes(pb) == [(10.0, 100.0, 1.0), (11.0, 99.0, 1.0)]
    assert pb.order(12)["sz"] == 2.0 and pb.queue_ahead(12) == 0.0


def test_later_own_order_at_same_price_waits_behind_the_earlier_one():
    pb = broker()
    pb.book([(99.0, 2.0)], [(101.0, 4.0)])
    pb.place(BID, 99.0, 1.0, oid=1)  # 2 ahead
    pb.book([(99.0, 3.0)], [(101.0, 4.0)])
    pb.place(BID, 99.0, 2.0, oid=2)  # 3 displayed ahead + our order 1
    assert pb.trade(99.0, 5.0, SELL) == 2  # 2 queue, order 1 (1), 1 between, order 2 gets 1
    assert sizes(pb) == [(1.0, 99.0, 1.0), (2.0, 99.0, 1.0)]
    assert pb.order(2)["sz"] == 1.0 and pb.queue_ahead(2) == 0.0


def test_trades_from_a_ring_range():
    pb = broker()
    standard_book(pb)
    pb.place(BID, 99.0, 1.0, oid=1)
    times = np.zeros(4, np.int64)
    recs = np.full((4, 4), np.nan)
    tape = [(99.0, 6.0, SELL), (99.0, 4.5, SELL), (101.0, 1.0, BUY), (99.0, 9.0, SELL)]
    for k, (px, sz, side) in enumerate(tape):
        r = (k + 2) % 4  # a wrapped ring: records 2..5
        times[r] = 10_000_000 + k
        recs[r, :] = (px, sz, side, k)
    args = (pb.orders, pb.aux, pb.work, pb.p, 100.0, pb.fill_t, pb.fill_r, pb.fill_n)
    assert M.on_trades(times, recs, 2, 5, *args) == 1  # the fourth print is outside the range
    assert sizes(pb) == [(1.0, 99.0, 0.5)] and pb.fills()[0]["t"] == 10_000_001


# -- post-only, cancel, modify -------------------------------------------------------------


@pytest.mark.parametrize(
    "side, px",
    [(BID, 101.0), (BID, 101.5), (ASK, 99.0), (ASK, 98.0)],
    ids=["bid@ask", "bid>ask", "ask@bid", "ask<bid"],
)
def test_post_only_rejects_crossing_places(side, px):
    pb = broker()
    standard_book(pb)
    st, oid = pb.place(side, px, 1.0)
    assert st == ST_REJECT_CROSS and pb.order(oid) is None
    assert np.isnan(pb.orders[:, 0]).all()


def test_place_arrival_turns_the_pending_row_into_a_resting_order():
    pb = broker()
    standard_book(pb)
    pb.orders[5, :] = (7.0, 1.0, 99.0, 1.0, 1.0, np.nan, 0.0, ORD_PENDING_NEW)
    assert pb.trade(98.0, 5.0, SELL) == 0  # not on the exchange yet
    assert pb.cancel(7) == ST_NOT_FOUND  # the exchange does not know it
    assert pb.place(BID, 99.0, 1.0, oid=7)[0] == ST_OK
    assert pb.orders[5, 7] == ORD_RESTING and pb.queue_ahead(7) == 10.0
    # a pending row whose place is rejected is freed
    pb.orders[6, :] = (8.0, -1.0, 99.0, 1.0, 1.0, np.nan, 0.0, ORD_PENDING_NEW)
    assert pb.place(ASK, 99.0, 1.0, oid=8)[0] == ST_REJECT_CROSS and pb.order(8) is None


def test_invalid_and_full():
    pb = PaperBook(max_orders=2)
    standard_book(pb)
    assert pb.place(BID, 99.0, 1.0, oid=1)[0] == ST_OK
    assert pb.place(BID, 98.0, 1.0, oid=1)[0] == ST_INVALID  # live oid reused
    assert pb.place(BID, 99.0, 0.0, oid=5)[0] == ST_INVALID
    assert pb.place(BID, -1.0, 1.0, oid=5)[0] == ST_INVALID
    assert pb.place(0, 99.0, 1.0, oid=5)[0] == ST_INVALID
    assert pb.place(BID, 99.0, 1.0, oid=float("nan"))[0] == ST_INVALID
    assert pb.place(BID, 98.0, 1.0, oid=2)[0] == ST_OK
    assert pb.place(BID, 97.0, 1.0, oid=3)[0] == ST_FULL
    kernel_args = (pb.market, pb.orders, pb.aux, pb.work, pb.p)
    assert M.apply_action(0, 9.0, 1.0, 99.0, 1.0, 4.0, *kernel_args) == ST_INVALID  # unknown kind


def test_cancel_returns_whether_found():
    pb = broker()
    standard_book(pb)
    pb.place(BID, 99.0, 1.0, oid=1)
    assert pb.cancel(1) == ST_OK and pb.order(1) is None
    assert pb.cancel(1) == ST_NOT_FOUND
    assert pb.trade(98.0, 10.0, SELL) == 0  # nothing left to fill


def test_modify_loses_priority():
    pb = broker()
    pb.book([(99.0, 2.0)], [(101.0, 4.0)])
    pb.place(BID, 99.0, 1.0, oid=1)  # A: 2 ahead
    pb.book([(99.0, 3.0)], [(101.0, 4.0)])
    pb.place(BID, 99.0, 1.0, oid=2)  # B: 3 ahead (+ A)
    assert pb.modify(1, 99.0, 1.0) == ST_OK  # same price and size: still to the back
    assert pb.queue_ahead(1) == 3.0
    assert pb.order(1)["t_placed_s"] > pb.order(2)["t_placed_s"]
    assert pb.trade(99.0, 4.0, SELL) == 1  # 3 queue, then B (now ahead of A)
    assert sizes(pb) == [(2.0, 99.0, 1.0)] and pb.order(1)["sz"] == 1.0


def test_modify_moves_resizes_and_rejects_when_crossing():
    pb = broker()
    standard_book(pb)
    pb.place(BID, 99.0, 3.0, oid=1)
    pb.trade(99.0, 11.0, SELL)  # 1 filled
    assert pb.modify(1, 98.0, 5.0) == ST_OK
    row = pb.order(1)
    assert (row["px"], row["sz"], row["orig_sz"], row["queue_ahead"]) == (98.0, 5.0, 5.0, 3.0)
    assert pb.modify(99, 98.0, 1.0) == ST_NOT_FOUND
    assert pb.modify(1, 101.0, 1.0) == ST_REJECT_CROSS  # cancel-replace: the old order is gone too
    assert pb.order(1) is None


# -- fees ----------------------------------------------------------------------------------


def test_fills_pay_the_maker_fee_and_carry_mid_ref():
    pb = broker()
    standard_book(pb)
    pb.place(BID, 99.0, 2.0, oid=1)
    pb.trade(99.0, 11.5, SELL)
    f = pb.fills()[0]
    assert f["sz"] == 1.5 and f["maker"] == 1.0 and f["mid_ref"] == 100.0 and f["side"] == 1.0
    assert f["fee"] == pytest.approx(1.5e-4 * 99.0 * 1.5)  # Hyperliquid base tier: 1.5 bps maker
    assert FeeSchedule().taker_bps == 4.5 and FeeSchedule().fee(99.0, 1.5, maker=False) == pytest.approx(
        4.5e-4 * 99.0 * 1.5
    )


def test_negative_maker_rate_is_a_rebate():
    pb = broker(fees=FeeSchedule(maker_bps=-0.2, taker_bps=2.4))
    standard_book(pb)
    pb.place(ASK, 102.0, 2.0, oid=1)
    pb.trade(103.0, 1.0, BUY)
    assert pb.fills()[0]["fee"] == pytest.approx(-0.2e-4 * 102.0 * 2.0)


def test_fee_schedule_is_strict():
    with pytest.raises(ValueError):
        FeeSchedule(maker=1.0)
    with pytest.raises(ValueError):
        FeeSchedule(maker_bps=float("nan"))
    with pytest.raises(ValueError):
        MatchParams(queue_model="fifo")


# -- intensity model and PRNG --------------------------------------------------------------


def test_splitmix64_reference_vector_and_determinism():
    r = M.rng_state(0)
    # published first outputs of splitmix64 seeded with 0
    assert [int(M.splitmix64_next(r)) for _ in range(2)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4]
    a, b, c = M.rng_state(42), M.rng_state(42), M.rng_state(43)
    xa = [M.uniform01(a) for _ in range(1000)]
    assert xa == [M.uniform01(b) for _ in range(1000)]
    assert xa != [M.uniform01(c) for _ in range(1000)]
    assert 0.0 <= min(xa) and max(xa) < 1.0 and abs(np.mean(xa) - 0.5) < 4 * math.sqrt(1 / 12 / 1000)


def _intensity_run(seed, steps, deltas, dt=0.005, mid=100.0):
    pb = PaperBook(MatchParams(), seed=seed, fill_capacity=steps * len(deltas) + 1)
    for k, d in enumerate(deltas):
        side = BID if k % 2 == 0 else ASK
        pb.place(side, mid - side * d, 1e9, oid=k + 1)  # effectively never depleted
    for _ in range(steps):
        pb.intensity(dt, mid)
    return pb


def test_intensity_fill_rate_matches_a_exp_minus_k_delta():
    steps, dt, deltas = 20_000, 0.005, (0.5, 1.0, 2.0, 3.0)
    pb = _intensity_run(7, steps, deltas, dt)
    fills = pb.fills()
    assert all(f["sz"] == 1.0 and f["mid_ref"] == 100.0 for f in fills)
    for k, d in enumerate(deltas):
        n = sum(1 for f in fills if f["oid"] == k + 1)
        p = 1.0 - math.exp(-140.0 * math.exp(-1.5 * d) * dt)  # as2008: A = 140, k = 1.5
        sd = math.sqrt(steps * p * (1 - p))
        assert abs(n - steps * p) < 4.0 * sd, (d, n, steps * p)
        # and the test can tell k = 1.5 from k = 1.2 at this sample size
        p_wrong = 1.0 - math.exp(-140.0 * math.exp(-1.2 * d) * dt)
        assert abs(n - steps * p_wrong) > 4.0 * sd or abs(p_wrong - p) < 1e-3


def test_intensity_fills_one_unit_and_are_deterministic_per_seed():
    a = [(f["t"], f["oid"]) for f in _intensity_run(3, 500, (1.0, 1.0)).fills()]
    b = [(f["t"], f["oid"]) for f in _intensity_run(3, 500, (1.0, 1.0)).fills()]
    c = [(f["t"], f["oid"]) for f in _intensity_run(4, 500, (1.0, 1.0)).fills()]
    assert a == b and a != c and len(a) > 50
    pb = PaperBook(seed=1)
    pb.place(BID, 99.9, 2.5, oid=1)  # near mid: fills every few steps, one unit at a time
    while pb.order(1) is not None:
        pb.intensity(0.005, 100.0)
    assert [f["sz"] for f in pb.fills()] == [1.0, 1.0, 0.5]


def test_intensity_uses_signed_distance():
    # an ask below mid (delta < 0) fills faster than A; one far above almost never
    pb = PaperBook(seed=5)
    pb.place(ASK, 99.0, 1e9, oid=1)  # no book: no post-only check
    pb.place(ASK, 110.0, 1e9, oid=2)
    for _ in range(200):
        pb.intensity(0.005, 100.0)
    n1 = sum(1 for f in pb.fills() if f["oid"] == 1)
    n2 = sum(1 for f in pb.fills() if f["oid"] == 2)
    assert n1 > 200 * (1 - math.exp(-140.0 * 0.005)) and n2 == 0


# -- compilation contract ------------------------------------------------------------------

KERNELS = (M.apply_action, M.on_trade, M.on_trades, M.on_book, M.intensity_fills)


def _exercise():
    pb = PaperBook(MatchParams(queue_model="probabilistic"))
    standard_book(pb)
    pb.place(BID, 99.0, 1.0)
    pb.trade(99.0, 1.0, SELL)
    pb.intensity(0.1, 100.0)
    M.on_trades(
        np.zeros(2, np.int64), np.zeros((2, 4)), 0, 0, *pb._state(), 100.0, pb.fill_t, pb.fill_r, pb.fill_n
    )
    return pb


def test_kernels_are_nopython_over_arrays_and_scalars():
    _exercise()
    for k in KERNELS:
        assert isinstance(k, numba.core.registry.CPUDispatcher) and k.targetoptions.get("nopython", True)
        assert k.signatures, k.__name__
        for sig in k.signatures:
            for t in sig:
                assert isinstance(t, (types.Array, types.Number, types.Boolean)), (k.__name__, t)


@numba.njit
def _drive(n, pb_state, book, tr_t, tr_r, rng, fill_t, fill_r, fill_n):
    orders, aux, work, params = pb_state
    total = 0
    for k in range(n):
        oid = 1000.0 + k
        M.apply_action(k, ACT_PLACE, 1.0, 98.0, 1.0, oid, book, orders, aux, work, params)
        M.apply_action(k, ACT_MODIFY, 1.0, 97.0, 1.0, oid, book, orders, aux, work, params)
        total += M.on_trade(k, 99.0, 0.5, -1.0, orders, aux, work, params, 100.0, fill_t, fill_r, fill_n)
        total += M.on_trades(tr_t, tr_r, 0, 2, orders, aux, work, params, 100.0, fill_t, fill_r, fill_n)
        total += M.on_book(k, book, orders, aux, work, params, 100.0, fill_t, fill_r, fill_n)
        total += M.intensity_fills(k, 0.001, 100.0, orders, aux, work, params, rng, fill_t, fill_r, fill_n)
        M.apply_action(k, ACT_CANCEL, 0.0, np.nan, np.nan, oid, book, orders, aux, work, params)
    return total


def test_per_event_paths_do_not_allocate():
    pb = _exercise()
    tr_t = np.zeros(2, np.int64)
    tr_r = np.array([[99.0, 0.5, -1.0, 1.0], [101.0, 0.5, 1.0, 2.0]])
    args = (pb._state(), pb.market, tr_t, tr_r, pb.rng, pb.fill_t, pb.fill_r, pb.fill_n)
    _drive(1, *args)  # compile
    one = allocations(_drive, 1, *args)
    many = allocations(_drive, 200, *args)
    assert many == one  # only the boundary's argument unboxing; nothing per event
