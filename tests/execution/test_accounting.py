"""Accounting and markouts (flowmm.execution.accounting) on hand-computed sequences."""

import math
from fractions import Fraction

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba.core import types
from pydantic import ValidationError

from flowmm.core.ports import (
    FI_FEE,
    FI_MAKER,
    FI_MID_REF,
    FI_OID,
    FI_PX,
    FI_SIDE,
    FI_SZ,
    ORD_OID,
    ORD_PENDING_NEW,
    ORD_RESTING,
    ORD_SIDE,
    ORD_STATUS,
    PORT_TYPES,
)
from flowmm.execution import accounting as A
from flowmm.testing import allocations

S = 1_000_000_000  # ns per second
H = A.HOUR_NS
BASE = 473_000 * H  # some top of the hour (epoch ns)
BID, ASK = 1.0, -1.0


class Ledger:
    """A state plus a fills ring, driven the way the engine will drive it."""

    def __init__(self, fill_cap: int = 64, mk_cap: int = 256, **kw):
        self.s = A.accounting_state(**kw)
        self.fill_t, self.fill_r = PORT_TYPES["fills"].allocate(capacity=fill_cap)
        self.fill_n = 0
        self.mk_t, self.mk_r, self.mk_n = A.markouts_ring(mk_cap)

    @property
    def a(self) -> np.ndarray:
        return self.s.acct

    def fill(self, t, px, sz, side, fee=0.0, oid=0.0, maker=1.0) -> bool:
        return bool(A.on_fill(t, px, sz, side, fee, maker, self.a, self.s.clock))

    def ring_fill(self, t, px, sz, side, oid, fee=0.0) -> None:
        """Append one fill to the ring and account it (accounting + markout queue)."""
        i = self.fill_n % self.fill_t.shape[0]
        self.fill_t[i] = t
        r = self.fill_r[i]
        r[FI_PX], r[FI_SZ], r[FI_SIDE], r[FI_OID] = px, sz, side, oid
        r[FI_FEE], r[FI_MAKER], r[FI_MID_REF] = fee, 1.0, np.nan
        self.fill_n += 1
        s = self.s
        A.on_fills(self.fill_t, self.fill_r, self.fill_n - 1, self.fill_n, s.acct, s.clock, *s[2:5])

    def mark(self, t, mid) -> None:
        A.mark(t, mid, self.a, self.s.clock)

    def funding_due(self, t, rate, px) -> int:
        return int(A.funding_due(t, rate, px, self.a, self.s.clock))

    def due(self, t, mid) -> int:
        s = self.s
        return int(A.markouts_due(t, mid, *s[2:6], s.clock, self.mk_t, self.mk_r, self.mk_n))

    def records(self) -> list[dict]:
        n = int(self.mk_n[0])
        assert n <= self.mk_t.shape[0]
        fields = PORT_TYPES["markouts"].fields
        return [
            {"t": int(self.mk_t[i]), **{f: float(self.mk_r[i, c]) for c, f in enumerate(fields)}}
            for i in range(n)
        ]

    def identity_gap(self) -> float:
        a = self.a
        lhs = a[A.A_REALISED] + a[A.A_UNREALISED] - a[A.A_FEES] + a[A.A_FUNDING]
        rhs = a[A.A_CASH] + (a[A.A_Q] * a[A.A_MARK_PX] if a[A.A_Q] != 0 else 0.0) - a[A.A_INITIAL_CASH]
        return lhs - rhs


def check(ledger, q, avg, realised, cash, unrealised=None):
    a = ledger.a
    assert a[A.A_Q] == pytest.approx(q, abs=1e-12)
    assert a[A.A_AVG_PX] == pytest.approx(avg, rel=1e-12, abs=1e-12)
    assert a[A.A_REALISED] == pytest.approx(realised, abs=1e-9)
    assert a[A.A_CASH] == pytest.approx(cash, abs=1e-9)
    if unrealised is not None:
        assert a[A.A_UNREALISED] == pytest.approx(unrealised, abs=1e-9)
    assert abs(ledger.identity_gap()) < 1e-9


# -- average cost ----------------------------------------------------------------------------


def test_open_add_partial_close_flip_close_by_hand():
    lg = Ledger(initial_cash=1000.0)
    lg.mark(0, 100.0)
    assert lg.fill(1, 100.0, 2.0, BID, fee=0.03)  # open long 2 @ 100
    check(lg, q=2, avg=100, realised=0, cash=1000 - 200 - 0.03, unrealised=0)
    assert lg.fill(2, 103.0, 1.0, BID)  # add 1 @ 103: entry (2*100 + 103)/3 = 101
    check(lg, q=3, avg=101, realised=0, cash=696.97, unrealised=3 * (100 - 101))
    assert lg.fill(3, 104.0, 1.0, ASK)  # partial close 1 @ 104: +3, entry kept
    check(lg, q=2, avg=101, realised=3, cash=800.97, unrealised=2 * (100 - 101))
    assert lg.fill(4, 99.0, 4.0, ASK)  # sell 4 @ 99: close 2 at -2 each, open short 2 @ 99
    check(lg, q=-2, avg=99, realised=3 - 4, cash=1196.97, unrealised=-2 * (100 - 99))
    lg.mark(5, 97.0)
    check(lg, q=-2, avg=99, realised=-1, cash=1196.97, unrealised=-2 * (97 - 99))
    assert lg.fill(6, 98.0, 2.0, BID)  # buy back 2 @ 98: short gains 1 each; flat
    check(lg, q=0, avg=0, realised=1, cash=1000.97, unrealised=0)
    summ = A.summary(lg.s)
    assert summ["total_pnl"] == pytest.approx(1 - 0.03)
    assert (summ["fills_buys"], summ["fills_sells"]) == (3, 2)
    assert (summ["volume_bought"], summ["volume_sold"]) == (5.0, 5.0)
    assert summ["notional_bought"] == pytest.approx(200 + 103 + 196)
    assert summ["notional_sold"] == pytest.approx(104 + 396)
    assert summ["max_abs_q"] == 3.0 and summ["final_q"] == 0.0
    assert summ["max_long"] == 3.0 and summ["max_short"] == 2.0
    assert summ["fees"] == pytest.approx(0.03)


def test_short_side_mirror_add_and_partial_cover():
    lg = Ledger()
    lg.fill(0, 100.0, 1.0, ASK)
    lg.fill(1, 96.0, 3.0, ASK)  # entry (100 + 288)/4 = 97
    check(lg, q=-4, avg=97, realised=0, cash=388)
    lg.fill(2, 95.0, 2.0, BID)  # cover 2 @ 95: +2 each
    check(lg, q=-2, avg=97, realised=4, cash=198)
    lg.fill(3, 99.0, 5.0, BID)  # cover 2 @ 99 (-2 each), open long 3 @ 99
    check(lg, q=3, avg=99, realised=0, cash=-297)
    lg.fill(4, 101.0, 3.0, ASK)
    check(lg, q=0, avg=0, realised=6, cash=6)


def test_float_noise_close_is_flat():
    lg = Ledger()
    lg.fill(0, 100.0, 0.1, BID)
    lg.fill(1, 100.0, 0.2, BID)
    assert lg.a[A.A_Q] != 0.3  # 0.1 + 0.2 in binary
    lg.fill(2, 101.0, 0.3, ASK)
    assert lg.a[A.A_Q] == 0.0 and lg.a[A.A_AVG_PX] == 0.0
    assert lg.a[A.A_REALISED] == pytest.approx(0.3)


def test_unrealised_before_first_mid_uses_fill_price():
    lg = Ledger()
    lg.fill(0, 100.0, 1.0, BID)
    assert lg.a[A.A_MARK_PX] == 100.0 and lg.a[A.A_UNREALISED] == 0.0
    lg.mark(1, float("nan"))  # ignored
    assert lg.a[A.A_MARK_PX] == 100.0
    lg.mark(2, 102.0)
    assert lg.a[A.A_UNREALISED] == 2.0 and lg.a[A.A_EQUITY] == -100.0 + 102.0


def test_fees_and_rebates_are_signed_and_counted():
    lg = Ledger(initial_cash=50.0)
    lg.fill(0, 100.0, 1.0, BID, fee=0.015)  # maker fee paid
    lg.fill(1, 100.0, 1.0, ASK, fee=-0.002, maker=1.0)  # rebate
    lg.fill(2, 100.0, 1.0, BID, fee=0.045, maker=0.0)  # taker
    a = lg.a
    assert a[A.A_FEES] == pytest.approx(0.015 - 0.002 + 0.045)
    assert a[A.A_CASH] == pytest.approx(50.0 - 100.0 - 0.058)
    assert a[A.A_N_MAKER] == 2.0
    assert abs(lg.identity_gap()) < 1e-12


def test_malformed_fills_are_counted_and_ignored():
    lg = Ledger()
    lg.fill(0, 100.0, 1.0, BID)
    before = lg.a.copy()
    assert not lg.fill(1, float("nan"), 1.0, BID)
    assert not lg.fill(2, 100.0, 0.0, BID)
    assert not lg.fill(3, 100.0, 1.0, 0.0)
    assert not lg.fill(4, 100.0, 1.0, BID, fee=float("inf"))
    assert lg.a[A.A_N_INVALID_FILLS] == 4.0
    changed = np.flatnonzero(~((lg.a == before) | (np.isnan(lg.a) & np.isnan(before))))
    assert list(changed) == [A.A_N_INVALID_FILLS]
    assert A.summary(lg.s)["fills_invalid"] == 4


def test_max_drawdown_tracks_the_worst_fall_from_a_peak():
    lg = Ledger()
    lg.fill(0, 100.0, 1.0, BID)
    for t, mid in enumerate((105.0, 97.0, 101.0, 99.0), start=1):  # pnl 5, -3, 1, -1
        lg.mark(t, mid)
    assert lg.a[A.A_PEAK_PNL] == 5.0 and lg.a[A.A_MAX_DRAWDOWN] == 8.0


# -- funding -----------------------------------------------------------------------------------


@pytest.mark.parametrize("q", [2.0, -2.0])
@pytest.mark.parametrize("rate", [1e-4, -1e-4])
def test_funding_sign_long_pays_positive_rate(q, rate):
    lg = Ledger(initial_cash=0.0)
    lg.mark(0, 100.0)
    lg.fill(0, 100.0, abs(q), BID if q > 0 else ASK)
    pay = A.on_funding(BASE, rate, 100.0, lg.a, lg.s.clock)
    assert pay == pytest.approx(-q * 100.0 * rate)
    assert (pay < 0) == (q * rate > 0)  # long pays when positive, short pays when negative
    assert lg.a[A.A_FUNDING] == pytest.approx(pay) and lg.a[A.A_CASH] == pytest.approx(-q * 100 + pay)
    assert abs(lg.identity_gap()) < 1e-12


def test_funding_settles_hourly_on_the_hour():
    assert A.next_funding_time(BASE) == BASE + H
    assert A.next_funding_time(BASE - 1) == BASE
    assert A.next_funding_time(BASE + H - 1) == BASE + H
    lg = Ledger()
    t0 = BASE - S  # 1 s before the hour
    assert lg.funding_due(t0, 1e-4, 100.0) == 0  # starts the clock; next settlement at BASE
    lg.mark(t0, 100.0)
    lg.fill(t0, 100.0, 3.0, BID)
    assert lg.funding_due(BASE - 1, 1e-4, 100.0) == 0
    assert lg.funding_due(BASE, 1e-4, 110.0) == 1  # exactly on the hour, at the price given
    assert lg.a[A.A_FUNDING] == pytest.approx(-3 * 110.0 * 1e-4)
    # the engine settles before applying the batch: a fill at the same time comes after
    lg.fill(BASE, 100.0, 1.0, BID)
    assert lg.funding_due(BASE + 1, 1e-4, 110.0) == 0
    assert lg.funding_due(BASE + 2 * H + H // 2, -2e-4, 100.0) == 2  # a gap: both missed hours
    assert lg.a[A.A_FUNDING] == pytest.approx(-3 * 110e-4 + 2 * 4 * 100.0 * 2e-4)
    assert lg.s.clock[A.T_NEXT_FUNDING] == BASE + 3 * H
    summ = A.summary(lg.s)
    assert summ["funding_settlements"] == 3 and summ["funding_skipped"] == 0
    assert abs(lg.identity_gap()) < 1e-9


def test_funding_without_a_rate_is_skipped_and_counted():
    lg = Ledger()
    lg.fill(BASE - 1, 100.0, 1.0, BID)
    assert lg.funding_due(BASE + H, float("nan"), 100.0) == 2
    assert lg.a[A.A_FUNDING] == 0.0 and lg.a[A.A_CASH] == -100.0
    assert A.summary(lg.s)["funding_skipped"] == 2


# -- time-weighted statistics --------------------------------------------------------------------


def test_time_weighted_position_and_one_sided_time():
    lg = Ledger()
    clk = lg.s.clock
    A.set_quoting(0, 1.0, 1.0, lg.a, clk)
    lg.mark(0, 100.0)
    lg.fill(1 * S, 100.0, 2.0, BID)  # long 2 over [1, 4)
    A.set_quoting(2 * S, 1.0, 0.0, lg.a, clk)  # one-sided over [2, 5)
    lg.fill(4 * S, 100.0, 3.0, ASK)  # short 1 over [4, 6)
    A.set_quoting(5 * S, 0.0, 0.0, lg.a, clk)  # nothing quoted over [5, 7)
    lg.fill(6 * S, 100.0, 1.0, BID)  # flat
    A.set_quoting(7 * S, 2.0, 3.0, lg.a, clk)
    lg.mark(10 * S, 100.0)
    summ = A.summary(lg.s)
    assert summ["duration_s"] == 10.0
    assert summ["time_long_s"] == pytest.approx(3.0) and summ["time_short_s"] == pytest.approx(2.0)
    assert summ["time_in_position_s"] == pytest.approx(5.0)
    assert summ["mean_abs_q"] == pytest.approx((2 * 3 + 1 * 2) / 10)
    assert summ["mean_q"] == pytest.approx((2 * 3 - 1 * 2) / 10)
    assert summ["q_var"] == pytest.approx((4 * 3 + 1 * 2) / 10 - 0.4**2)  # time-weighted
    assert (summ["max_long"], summ["max_short"]) == (2.0, 1.0)
    assert summ["time_one_sided_s"] == pytest.approx(3.0)
    assert summ["time_no_quotes_s"] == pytest.approx(2.0)
    assert summ["time_quoted_s"] == pytest.approx(10.0)


def test_quoting_state_from_the_orders_table():
    orders = PORT_TYPES["orders"].allocate()
    for i, (side, status) in enumerate(
        [(BID, ORD_RESTING), (BID, ORD_RESTING), (ASK, ORD_PENDING_NEW), (ASK, 3.0)]
    ):
        orders[i, ORD_OID], orders[i, ORD_SIDE], orders[i, ORD_STATUS] = i + 1, side, status
    lg = Ledger()
    A.quoting_from_orders(0, orders, lg.a, lg.s.clock)
    assert (lg.a[A.A_QUOTE_BID], lg.a[A.A_QUOTE_ASK]) == (2.0, 1.0)  # pending cancel still rests
    orders[3, :] = np.nan
    A.quoting_from_orders(S, orders, lg.a, lg.s.clock)
    assert (lg.a[A.A_QUOTE_BID], lg.a[A.A_QUOTE_ASK]) == (2.0, 0.0)
    A.quoting_from_orders(3 * S, orders, lg.a, lg.s.clock)
    assert A.summary(lg.s)["time_one_sided_s"] == pytest.approx(2.0)


def test_record_pnl_samples_the_ledger():
    lg = Ledger(initial_cash=10.0)
    pt, pr, pn = A.pnl_ring(4)
    lg.fill(0, 100.0, 1.0, BID, fee=0.01)
    lg.mark(1, 101.0)
    A.record_pnl(1, lg.a, pt, pr, pn)
    assert pn[0] == 1 and pt[0] == 1
    row = dict(zip(A.PNL_FIELDS, pr[0]))
    assert row == {
        "total": pytest.approx(0.99),
        "realised": 0.0,
        "unrealised": 1.0,
        "fees": 0.01,
        "funding": 0.0,
        "q": 1.0,
        "mark": 101.0,
        "cash": pytest.approx(10.0 - 100.01),
    }


# -- the identity, as a property ------------------------------------------------------------------

_px = st.floats(50.0, 150.0, allow_nan=False)
_op = st.one_of(
    st.tuples(
        st.just("fill"),
        st.sampled_from([BID, ASK]),
        _px,
        st.floats(1e-3, 10.0),
        st.floats(-0.01, 0.05),
    ),
    st.tuples(st.just("close"), st.floats(1.0, 3.0), _px),  # sz = k*|q| against the position
    st.tuples(st.just("mark"), _px),
    st.tuples(st.just("fund"), st.floats(-1e-3, 1e-3), _px),
    st.tuples(st.just("wait"), st.integers(1, 2 * H)),
)


class RefAvgCost:
    """Average-cost reference in exact rational arithmetic."""

    def __init__(self):
        self.q = self.avg = self.realised = Fraction(0)

    def fill(self, side, px, sz):
        px, sz, q = Fraction(px), Fraction(sz), self.q
        if q == 0 or q * side > 0:
            self.avg = (abs(q) * self.avg + sz * px) / (abs(q) + sz)
        else:
            closed = min(sz, abs(q))
            self.realised += (px - self.avg) * closed * (1 if q > 0 else -1)
            q_new = q + side * sz
            if q_new == 0:
                self.avg = Fraction(0)
            elif q_new * q < 0:
                self.avg = px
        self.q = q + side * sz


@settings(max_examples=150, deadline=None)
@given(
    initial=st.sampled_from([0.0, 1e3, 1e6]),
    ops=st.lists(_op, min_size=1, max_size=40),
)
def test_identity_holds_at_every_step(initial, ops):
    lg = Ledger(initial_cash=initial)
    ref = RefAvgCost()
    t, mid, gross = BASE - H // 2, 100.0, 0.0
    lg.mark(t, mid)
    for op in ops:
        t += 1_000_000
        kind = op[0]
        if kind == "fill":
            _, side, px, sz, fee = op
            assert lg.fill(t, px, sz, side, fee=fee)
            ref.fill(side, px, sz)
            gross += px * sz + abs(fee)
        elif kind == "close":
            q = lg.a[A.A_Q]
            if q == 0.0:
                continue
            _, k, px = op
            sz = abs(q) if k < 2.0 else abs(q) * k  # exact close half the time, else a flip
            side = ASK if q > 0 else BID
            assert lg.fill(t, px, sz, side)
            ref.fill(side, px, sz)
            gross += px * sz
        elif kind == "mark":
            mid = op[1]
            lg.mark(t, mid)
        elif kind == "fund":
            pay = A.on_funding(t, op[1], op[2], lg.a, lg.s.clock)
            gross += abs(pay)
        else:
            t += op[1]
            before = lg.a[A.A_FUNDING]
            lg.funding_due(t, 1e-4, mid)
            gross += abs(lg.a[A.A_FUNDING] - before)
        a = lg.a
        scale = 1.0 + abs(initial) + gross
        assert abs(lg.identity_gap()) <= 1e-9 * scale
        # the stored equity agrees with cash + q * mark
        assert a[A.A_EQUITY] == pytest.approx(a[A.A_CASH] + a[A.A_Q] * a[A.A_MARK_PX], abs=1e-9 * scale)
        assert a[A.A_REALISED] == pytest.approx(float(ref.realised), abs=1e-9 * scale)
        assert a[A.A_Q] == pytest.approx(float(ref.q), abs=1e-9 * (1 + gross / 50))
        if a[A.A_Q] != 0.0:
            assert a[A.A_AVG_PX] == pytest.approx(float(ref.avg), rel=1e-9)
        else:
            assert a[A.A_AVG_PX] == 0.0


# -- markouts ------------------------------------------------------------------------------------


def bps(side, mid, px):
    return side * (mid - px) / px * 1e4


def drive(path, horizons=(1.0, 5.0), end=None, **kw):
    """Engine-style loop over ``[(t_ns, mid or None, [(px, sz, side, oid), ...]), ...]``."""
    lg = Ledger(horizons_s=horizons, **kw)
    mid = float("nan")
    emitted = []
    for t, new_mid, fills in path:
        emitted.append(lg.due(t, mid))  # before the batch, with the mid before it
        if new_mid is not None:
            mid = new_mid
        for px, sz, side, oid in fills:
            lg.ring_fill(t, px, sz, side, oid)
        lg.mark(t, mid)
    if end is not None:
        emitted.append(lg.due(end, mid))
    return lg, emitted


def test_markouts_on_a_hand_built_mid_path():
    path = [
        (0, 100.0, [(99.9, 1.0, BID, 1.0)]),
        (S // 2, 100.4, []),
        (S, 101.0, [(101.1, 2.0, ASK, 2.0)]),  # a fill exactly at fill 1's 1 s due time
        (2 * S, 100.2, []),
        (3 * S, 99.0, []),
        (6 * S + S // 2, 98.0, []),
    ]
    lg, emitted = drive(path, end=7 * S)
    assert emitted == [0, 0, 1, 1, 0, 2, 0]
    recs = lg.records()
    expected = [
        # (due, oid, horizon, side, px, mid used)
        (S, 1.0, 1.0, BID, 99.9, 100.4),  # the batch at exactly 1 s is not seen
        (2 * S, 2.0, 1.0, ASK, 101.1, 101.0),
        (5 * S, 1.0, 5.0, BID, 99.9, 99.0),  # first batch after 5 s is at 6.5 s: mid before it
        (6 * S, 2.0, 5.0, ASK, 101.1, 99.0),
    ]
    assert len(recs) == len(expected)
    for r, (due, oid, h, side, px, m) in zip(recs, expected):
        assert (r["t"], r["oid"], r["horizon_s"], r["side"], r["px"]) == (due, oid, h, side, px)
        assert r["markout_bps"] == pytest.approx(bps(side, m, px), rel=1e-12)
        assert r["as_bps"] == -r["markout_bps"]
    # signs: the bid made money at 1 s and lost at 5 s; the ask made money at both
    assert [r["markout_bps"] > 0 for r in recs] == [True, True, False, True]
    summ = A.summary(lg.s)
    assert summ["avg_as_bps"]["1s"] == pytest.approx(-(recs[0]["markout_bps"] + recs[1]["markout_bps"]) / 2)
    m5 = summ["markouts"][1]
    assert m5["bid_n"] == 1 and m5["ask_n"] == 1
    assert m5["bid_as_bps_mean"] == pytest.approx(recs[2]["as_bps"])
    assert m5["ask_as_bps_mean"] == pytest.approx(recs[3]["as_bps"])
    assert summ["markouts_pending"] == 0 and summ["markouts_dropped"] == 0


def test_markouts_ties_go_to_the_earlier_fill_and_come_out_in_due_order():
    path = [
        (0, 100.0, [(99.0, 1.0, BID, 1.0)]),  # due 1 s and 5 s
        (4 * S, 100.0, [(101.0, 1.0, ASK, 2.0), (101.5, 1.0, ASK, 3.0)]),  # due 5 s, 9 s (both)
        (20 * S, 100.0, []),
    ]
    lg, _ = drive(path)
    order = [(r["t"], r["oid"], r["horizon_s"]) for r in lg.records()]
    assert order == [
        (1 * S, 1.0, 1.0),
        (5 * S, 1.0, 5.0),  # same due time as fill 2's 1 s markout: fill 1 first
        (5 * S, 2.0, 1.0),
        (5 * S, 3.0, 1.0),
        (9 * S, 2.0, 5.0),
        (9 * S, 3.0, 5.0),
    ]


def mid_before(path, t_due):
    """Reference: the mid in force just before the first batch at or after ``t_due``."""
    mid = float("nan")
    for t, m, _ in path:
        if t >= t_due:
            return mid
        if m is not None:
            mid = m
    return mid  # no later batch: the end-of-run call uses the last mid


@pytest.mark.parametrize("cap", [4, 4096])  # 4: the 60 s queue fills up and wraps around
def test_markouts_default_horizons_against_a_reference(cap):
    fills_at = {3: (BID, 1.0), 10: (ASK, 2.0), 11: (BID, 3.0), 40: (ASK, 4.0), 90: (BID, 5.0)}
    path = []
    for i in range(150):
        t = i * 7 * S // 10  # a batch every 0.7 s
        mid = 100.0 + math.sin(i / 7.0)
        f = []
        if i in fills_at:
            side, oid = fills_at[i]
            f = [(mid - side * 0.05, 0.5, side, oid)]
        path.append((t, mid, f))
    end = path[-1][0] + 100 * S
    lg, _ = drive(path, horizons=A.DEFAULT_HORIZONS_S, end=end, pending_capacity=cap)
    assert lg.a[A.A_MK_DROPPED] == 0
    expected = []
    for t, _, fs in path:
        for px, _, side, oid in fs:
            for h in A.DEFAULT_HORIZONS_S:
                due = t + round(h * S)
                expected.append((due, oid, h, side, px, mid_before(path, due)))
    expected.sort(key=lambda e: (e[0], e[1]))  # oids increase with fill time here
    recs = lg.records()
    assert [(r["t"], r["oid"], r["horizon_s"]) for r in recs] == [e[:3] for e in expected]
    for r, e in zip(recs, expected):
        assert r["markout_bps"] == pytest.approx(bps(e[3], e[5], e[4]), rel=1e-12)
    summ = A.summary(lg.s)
    for k, h in enumerate(A.DEFAULT_HORIZONS_S):
        mine = [r["as_bps"] for r in recs if r["horizon_s"] == h]
        assert summ["markouts"][k]["n"] == len(mine) == len(fills_at)
        assert summ["avg_as_bps"][A.horizon_label(h)] == pytest.approx(np.mean(mine))
        assert summ["markouts"][k]["as_bps_se"] == pytest.approx(np.std(mine, ddof=1) / math.sqrt(len(mine)))


def test_markouts_not_yet_due_stay_pending():
    lg, _ = drive([(0, 100.0, [(99.0, 1.0, BID, 1.0)]), (3 * S, 100.0, [])])
    assert len(lg.records()) == 1
    summ = A.summary(lg.s)
    assert summ["markouts_pending"] == 1 and summ["avg_as_bps"]["5s"] is None


def test_markout_queue_overflow_is_counted():
    path = [
        (0, 100.0, [(99.0, 1.0, BID, 1.0)]),
        (S // 10, 100.0, [(99.0, 1.0, BID, 2.0)]),
        (2 * S // 10, 100.0, [(99.0, 1.0, BID, 3.0)]),  # both horizon queues are full: dropped
        (10 * S, 100.0, [(99.0, 1.0, BID, 4.0)]),  # room again
        (20 * S, 100.0, []),
    ]
    lg, _ = drive(path, pending_capacity=2)
    recs = lg.records()
    assert sorted({r["oid"] for r in recs}) == [1.0, 2.0, 4.0]
    assert len(recs) == 6
    summ = A.summary(lg.s)
    assert summ["markouts_dropped"] == 2 and lg.a[A.A_MK_PUSHED] == 6
    # markouts_push reports the drop to its caller too
    s = lg.s
    A.markouts_push(21 * S, 5.0, BID, 99.0, s.pend_ctl, s.pend_t, s.pend_r, s.acct, s.clock)
    A.markouts_push(21 * S, 6.0, BID, 99.0, s.pend_ctl, s.pend_t, s.pend_r, s.acct, s.clock)
    assert A.markouts_push(21 * S, 7.0, BID, 99.0, s.pend_ctl, s.pend_t, s.pend_r, s.acct, s.clock) == 2


def test_next_markout_guard_tracks_the_earliest_pending_due_time():
    lg = Ledger(horizons_s=(1.0, 5.0))
    clk = lg.s.clock
    assert clk[A.T_NEXT_MARKOUT] == A.NO_MARKOUT
    lg.ring_fill(10 * S, 99.0, 1.0, BID, 1.0)
    assert clk[A.T_NEXT_MARKOUT] == 11 * S
    lg.ring_fill(10 * S + 1, 99.0, 1.0, BID, 2.0)
    assert clk[A.T_NEXT_MARKOUT] == 11 * S  # the earlier one still pending
    assert lg.due(11 * S - 1, 100.0) == 0
    assert lg.due(11 * S, 100.0) == 1 and clk[A.T_NEXT_MARKOUT] == 11 * S + 1
    assert lg.due(14 * S, 100.0) == 1 and clk[A.T_NEXT_MARKOUT] == 15 * S
    assert lg.due(20 * S, 100.0) == 2 and clk[A.T_NEXT_MARKOUT] == A.NO_MARKOUT
    lg.ring_fill(30 * S, 99.0, 1.0, BID, 3.0)
    assert clk[A.T_NEXT_MARKOUT] == 31 * S


def test_markout_with_no_mid_is_nan_and_not_averaged():
    lg = Ledger(horizons_s=(1.0,))
    lg.ring_fill(0, 99.0, 1.0, BID, 1.0)
    assert lg.due(2 * S, float("nan")) == 1
    assert math.isnan(lg.records()[0]["markout_bps"])
    m = A.summary(lg.s)["markouts"][0]
    assert m["emitted"] == 1 and m["n"] == 0 and m["as_bps_mean"] is None


def test_params_are_validated():
    with pytest.raises(ValidationError):
        A.AccountingParams(horizons_s=(5.0, 1.0))
    with pytest.raises(ValidationError):
        A.AccountingParams(horizons_s=tuple(float(i) for i in range(9)))
    with pytest.raises(ValidationError):
        A.AccountingParams(horizons_s=(-1.0,))
    with pytest.raises(ValidationError):
        A.AccountingParams(pending_capacity=0)
    s = A.accounting_state(horizons_s=(0.0, 0.5))
    assert list(s.pend_ctl[:, A.PC_HORIZON_NS]) == [0, S // 2]


# -- compilation contract ----------------------------------------------------------------------

KERNELS = (
    A.on_fill,
    A.on_fills,
    A.mark,
    A.on_funding,
    A.funding_due,
    A.next_funding_time,
    A.set_quoting,
    A.quoting_from_orders,
    A.markouts_push,
    A.markouts_due,
    A.record_pnl,
)


def _exercise():
    lg = Ledger()
    lg.mark(0, 100.0)
    lg.ring_fill(1, 99.0, 1.0, BID, 1.0)
    lg.funding_due(2 * H, 1e-4, 100.0)
    lg.due(3 * H, 100.0)
    A.next_funding_time(0)
    A.set_quoting(3 * H, 1.0, 0.0, lg.a, lg.s.clock)
    A.quoting_from_orders(3 * H, PORT_TYPES["orders"].allocate(), lg.a, lg.s.clock)
    A.markouts_push(3 * H, 2.0, ASK, 101.0, *lg.s[2:5], lg.a, lg.s.clock)
    A.record_pnl(3 * H, lg.a, *A.pnl_ring(2))
    return lg


def test_kernels_are_nopython_over_arrays_and_scalars():
    _exercise()
    for k in KERNELS:
        assert isinstance(k, numba.core.registry.CPUDispatcher) and k.targetoptions.get("nopython", True)
        assert k.signatures, k.py_func.__name__
        for sig in k.signatures:
            for t in sig:
                assert isinstance(t, (types.Array, types.Number, types.Boolean)), (k.py_func.__name__, t)


@numba.njit
def _drive(
    n, t0, acct, clock, pend_ctl, pend_t, pend_r, mk_stats, fill_t, fill_r, mk_t, mk_r, mk_n, pt, pr, pn
):
    orders = fill_r  # any 2-D float array of >= 8 columns stands in for an orders table
    total = 0
    for k in range(n):
        t = t0 + k * 700_000_000
        total += A.funding_due(t, 1e-4, 100.0, acct, clock)
        total += A.markouts_due(t, 100.0 + k % 3, pend_ctl, pend_t, pend_r, mk_stats, clock, mk_t, mk_r, mk_n)
        fill_t[k % fill_t.shape[0]] = t
        total += A.on_fills(fill_t, fill_r, k, k + 1, acct, clock, pend_ctl, pend_t, pend_r)
        A.on_fill(t, 100.0, 0.5, -1.0, 0.001, 1.0, acct, clock)
        A.on_funding(t, 1e-4, 100.0, acct, clock)
        A.mark(t, 100.5, acct, clock)
        A.set_quoting(t, 1.0, 1.0, acct, clock)
        A.quoting_from_orders(t, orders, acct, clock)
        total += A.markouts_push(t, 9.0, 1.0, 99.0, pend_ctl, pend_t, pend_r, acct, clock)
        total += A.next_funding_time(t) > t
        A.record_pnl(t, acct, pt, pr, pn)
    return total


def test_per_event_paths_do_not_allocate():
    lg = _exercise()
    fill_t = np.zeros(8, np.int64)
    fill_r = np.tile(np.array([[99.0, 1.0, 1.0, 3.0, 0.01, 1.0, 100.0, 0.0]]), (8, 1))
    pt, pr, pn = A.pnl_ring(8)
    args = (4 * H, *lg.s, fill_t, fill_r, lg.mk_t, lg.mk_r, lg.mk_n, pt, pr, pn)
    _drive(1, *args)  # compile
    one = allocations(_drive, 1, *args)
    many = allocations(_drive, 300, *args)
    assert many == one  # only the boundary's argument unboxing; nothing per event
    assert lg.a[A.A_N_FUNDING] > 0 and lg.mk_n[0] > 0  # the loop did run the paths
