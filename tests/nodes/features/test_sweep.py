import math

import numpy as np
import pytest
from flowmm.nodes.features.sweep import BURST_CAP, FLUSH_LOG, Sweep, sweep_kernel
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from pydantic import ValidationError

from flowmm.core.ports import FI_PX, FI_SIDE, FI_SZ, TR_PX, TR_SIDE, TR_SZ
from flowmm.testing import NodeHarness, allocations, example_args

S = 1_000_000_000
T0 = 1_700_000_000 * S  # epoch-sized times, as the sources give


# -- an independent, slow reference -------------------------------------------------------
def ref_tape_orders(prints):
    """Orders of a tape: consecutive prints of one (t, side), split where the price improves;
    levels = the number of distinct prices of the order."""
    orders = []
    for t, px, sz, side in prints:
        if not (px > 0 and sz > 0 and side != 0):  # NaN compares False too
            continue
        s = 1 if side > 0 else -1
        last = orders[-1] if orders else None
        if last and last["t"] == t and last["s"] == s and (px - last["px"][-1]) * s >= 0:
            last["px"].append(px)
            last["sz"] += sz
        else:
            orders.append({"t": t, "s": s, "px": [px], "sz": sz})
    return [(o["t"], o["s"], o["sz"], len(set(o["px"]))) for o in orders]


def ref_fill_groups(fills):
    """Own fills: all fills of one (t, side) in a row are a group; levels = distinct prices."""
    groups = []
    for t, px, sz, side in fills:
        s = 1 if side > 0 else -1
        if groups and groups[-1]["t"] == t and groups[-1]["s"] == s:
            groups[-1]["px"].add(px)
            groups[-1]["sz"] += sz
        else:
            groups.append({"t": t, "s": s, "px": {px}, "sz": sz})
    return [(g["t"], g["s"], g["sz"], len(g["px"])) for g in groups]


def ref_score(items, side, now, tau, min_lev, power=1.0):
    """sum size^power * levels * exp(-(now - t)/tau) over items of `side` crossing >= min_lev
    levels, flushed to 0 once the newest is older than ln(1e6) tau."""
    live = [(t, sz, lev) for t, s, sz, lev in items if s == side and lev >= min_lev and t <= now]
    if not live or (now - max(t for t, _, _ in live)) / S > FLUSH_LOG * tau:
        return 0.0
    return sum(sz**power * lev * math.exp(-(now - t) / S / tau) for t, sz, lev in live)


def random_tape(rng, n_blocks=60):
    """Blocks of prints: orders that start at the touch and walk 1-6 levels, sometimes with
    several prints at one price (several makers), two orders of a side in one block."""
    prints = []
    t = T0
    for _ in range(n_blocks):
        t += int(rng.integers(1, 25)) * S // 10
        for _ in range(int(rng.integers(1, 4))):
            s = 1 if rng.random() < 0.5 else -1
            px = 28.0 + s * 0.001
            for _ in range(int(rng.integers(1, 7))):
                for _ in range(int(rng.integers(1, 3))):
                    prints.append((t, round(px, 3), float(rng.integers(1, 500)) / 10, float(s)))
                px += s * 0.001 * int(rng.integers(1, 3))
    return prints


def run_steps(h, prints, fills, step_times):
    """Feed each step the records stamped in (previous step, step]; returns the outputs."""
    outs = []
    prev = -(2**62)
    for now in step_times:
        tr = [(t, px, sz, sd, i) for i, (t, px, sz, sd) in enumerate(prints) if prev < t <= now]
        fl = [
            (t, px, sz, sd, i, 0.0, 1.0, 28.0) for i, (t, px, sz, sd) in enumerate(fills) if prev < t <= now
        ]
        outs.append(h.step(now, trades=tr, fills=fl))
        prev = now
    return outs


# -- math against the reference -----------------------------------------------------------
@pytest.mark.parametrize("power", [1.0, 0.0, 0.5])
def test_tape_score_matches_the_direct_sum(power):
    rng = np.random.default_rng(7)
    prints = random_tape(rng)
    params = {"tau_s": 2.5, "min_levels": 3, "size_power": power, "alpha": 1e-5, "sigma": 3.0}
    h = NodeHarness("features.sweep", params)
    steps = sorted({t for t, *_ in prints} | {T0 + k * S for k in range(1, 120)})
    orders = ref_tape_orders(prints)
    assert sum(lev >= 3 for *_, lev in orders) > 10  # the tape has sweeps to score
    n_obs = 0
    for now, out in zip(steps, run_steps(h, prints, [], steps), strict=True):
        bid = ref_score(orders, -1, now, 2.5, 3, power)
        ask = ref_score(orders, 1, now, 2.5, 3, power)
        assert out["bid_score"] == pytest.approx(bid, rel=1e-9, abs=1e-12)
        assert out["ask_score"] == pytest.approx(ask, rel=1e-9, abs=1e-12)
        if bid + ask > 0:
            n_obs += 1
            assert "obs" in out.emitted
            np.testing.assert_allclose(out["obs"], [1e-5 * (ask - bid), 9.0 / (bid + ask)], rtol=1e-9)
        else:
            assert "obs" not in out.emitted
    assert n_obs > 20


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), min_levels=st.integers(1, 4), tau=st.floats(0.2, 20.0))
def test_score_does_not_depend_on_when_the_node_runs(seed, min_levels, tau):
    """Property: any schedule (steps at any times, blocks never split) gives the direct sum."""
    rng = np.random.default_rng(seed)
    prints = random_tape(rng, n_blocks=12)
    blocks = sorted({t for t, *_ in prints})
    steps = sorted(set(rng.choice(blocks, size=max(1, len(blocks) // 3), replace=False).tolist()))
    end = blocks[-1] + int(rng.integers(0, 5 * S))
    steps = [s for s in steps if s < end] + [end]
    h = NodeHarness("features.sweep", {"tau_s": tau, "min_levels": min_levels})
    out = run_steps(h, prints, [], steps)[-1]
    orders = ref_tape_orders(prints)
    assert out["bid_score"] == pytest.approx(ref_score(orders, -1, end, tau, min_levels), rel=1e-9, abs=1e-12)
    assert out["ask_score"] == pytest.approx(ref_score(orders, 1, end, tau, min_levels), rel=1e-9, abs=1e-12)
    assert out["bid_score"] >= 0.0 and out["ask_score"] >= 0.0


def test_a_sweep_by_hand_and_the_order_rules():
    h = NodeHarness("features.sweep", {"tau_s": 2.0, "min_levels": 3, "alpha": 1e-3, "sigma": 2.0})
    t = T0
    out = h.step(
        t,
        trades=[
            (t, 28.000, 1.0, -1, 0),  # a seller walks the bids: 28.000, 28.000 (a 2nd maker), 27.999, 27.997
            (t, 28.000, 2.0, -1, 1),
            (t, 27.999, 3.0, -1, 2),
            (t, 27.997, 4.0, -1, 3),
            (t, 28.000, 5.0, -1, 4),  # a better price: a new order (1 level, adds nothing)
            (t, 28.001, 9.0, 1, 5),  # a buyer at the touch: 1 level
            (t, 28.002, 1.0, 1, 6),  # 2 levels: below min_levels
        ],
    )
    assert out["bid_score"] == pytest.approx(10.0 * 3)  # size 1+2+3+4, 3 distinct prices
    assert out["ask_score"] == 0.0
    assert out.emitted == {
        "bid_score",
        "ask_score",
        "own_bid_score",
        "own_ask_score",
        "burst_bid",
        "burst_ask",
        "obs",
    }
    np.testing.assert_allclose(out["obs"], [1e-3 * (0.0 - 30.0), 4.0 / 30.0])  # bearish: sellers swept
    out = h.step(t + 2 * S)
    assert out["bid_score"] == pytest.approx(30.0 * math.exp(-1.0))  # one mean life later
    assert "obs" in out.emitted


def test_own_fills_group_by_timestamp_and_side_with_distinct_prices():
    params = {"tau_s": 1.0, "min_fill_levels": 2, "fill_weight": 0.5, "burst_window_s": 2.0}
    h = NodeHarness("features.sweep", params)
    t = T0
    # a seller sweeps our bids (our side +1): 3 distinct prices in any order, two partials at one
    fills = [
        (t, 27.99, 1.0, 1),
        (t, 27.97, 2.0, 1),
        (t, 27.99, 1.0, 1),
        (t, 27.98, 1.0, 1),
        (t, 28.03, 4.0, -1),
    ]
    out = run_steps(h, [], fills, [t])[0]
    assert out["own_bid_score"] == pytest.approx(5.0 * 3)
    assert out["own_ask_score"] == 0.0  # one ask fill: 1 level < min_fill_levels
    assert out["bid_score"] == pytest.approx(0.5 * 15.0)  # fill_weight
    assert (out["burst_bid"], out["burst_ask"]) == (4.0, 1.0)
    assert out["obs"][0] < 0  # sellers hitting our bids is bearish
    groups = ref_fill_groups(fills)
    later = run_steps(h, [], [(t + S, 27.95, 1.0, 1), (t + S, 27.94, 1.0, 1)], [t + S])[0]
    groups += ref_fill_groups([(t + S, 27.95, 1.0, 1), (t + S, 27.94, 1.0, 1)])
    assert later["own_bid_score"] == pytest.approx(ref_score(groups, 1, t + S, 1.0, 2), rel=1e-12)
    assert later["burst_bid"] == 6.0
    assert h.step(t + 2 * S)["burst_bid"] == 2.0  # the fills at t left the window (t + 2 s excluded)
    assert h.step(t + 3 * S)["burst_bid"] == 0.0


def test_burst_count_saturates_at_the_ring_capacity():
    h = NodeHarness("features.sweep", {"burst_window_s": 100.0}, capacity=4096)
    fills = [(T0 + k * S // 100, 28.0 - 1e-3 * (k % 7), 1.0, -1) for k in range(BURST_CAP + 50)]
    out = run_steps(h, [], fills, [T0 + 10 * S])[0]
    assert out["burst_ask"] == BURST_CAP and out["burst_bid"] == 0.0


# -- edges ---------------------------------------------------------------------------------
def test_first_run_nan_records_zero_dt_and_a_gap():
    h = NodeHarness("features.sweep", {"tau_s": 1.0})
    first = h.step(T0)  # nothing yet: zero scores, no observation
    assert first["bid_score"] == 0.0 and first["burst_bid"] == 0.0 and "obs" not in first.emitted
    t = T0 + S
    bad = [
        (t, math.nan, 1.0, -1, 0),
        (t, 28.0, math.nan, -1, 1),
        (t, 28.0, 1.0, math.nan, 2),
        (t, 28.0, -1.0, -1, 3),
    ]
    sweep = [
        (t, 28.0, 1.0, -1, 4),
        (t, 27.999, 1.0, -1, 5),
        (t, math.nan, 5.0, -1, 6),
        (t, 27.998, 1.0, -1, 7),
    ]
    out = h.step(t, trades=bad + sweep)  # NaN prints are skipped, the open order continues
    assert out["bid_score"] == pytest.approx(3.0 * 3)
    again = h.step(t)  # zero dt: nothing decays
    assert again["bid_score"] == out["bid_score"]
    late = h.step(t + int(FLUSH_LOG * S) - 1000)  # just inside the flush horizon: tiny but positive
    assert 0.0 < late["bid_score"] < 1e-5 and "obs" in late.emitted
    gone = h.step(t + 60 * S)  # a gap: the score is exactly 0 and no observation is emitted
    assert gone["bid_score"] == 0.0 and "obs" not in gone.emitted


def test_params_are_checked():
    with pytest.raises(ValidationError):
        Sweep.Params(tau_s=0.0)
    with pytest.raises(ValidationError):
        Sweep.Params(size_power=1.5)
    with pytest.raises(ValidationError):
        Sweep.Params(min_levels=0)
    with pytest.raises(ValidationError):
        Sweep.Params(tau=3.0)  # unknown key


# -- the kernel allocates nothing per update ------------------------------------------------
@njit
def _drive(n, params, fs, ts, fpx, bq, tr_t, tr_r, fl_t, fl_r, clock, *outs):
    cap = tr_t.shape[0]
    total = 0
    for k in range(n):
        now = np.int64(k + 1) * 100_000_000
        for j in range(3):  # a 3-level sell sweep and our fill, every step
            i = (3 * k + j) % cap
            tr_t[i] = now
            tr_r[i, TR_PX] = 28.0 - 0.001 * j
            tr_r[i, TR_SZ] = 1.0
            tr_r[i, TR_SIDE] = -1.0
        fl_t[k % cap] = now
        fl_r[k % cap, FI_PX] = 28.0
        fl_r[k % cap, FI_SZ] = 1.0
        fl_r[k % cap, FI_SIDE] = 1.0
        s, e = np.int64(3 * k), np.int64(3 * k + 3)
        total += sweep_kernel(
            now, 0.1, params, fs, ts, fpx, bq, tr_t, tr_r, s, e, fl_t, fl_r, k, k + 1, clock, False, *outs
        )
    return total


def test_kernel_allocates_nothing_per_update():
    a = example_args(Sweep(), capacity=16)  # now, dt, params, 4 states, trades(4), fills(4), clock(2), 7 outs
    args = (a[2], *a[3:7], a[7], a[8], a[11], a[12], a[15], *a[17:])
    assert _drive(10, *args) == 10 * 127
    assert allocations(_drive, 1, *args) == allocations(_drive, 400, *args)
