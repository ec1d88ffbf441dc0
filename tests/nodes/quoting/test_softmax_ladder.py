"""quoting.softmax_ladder: seed 004 Stage 6 against hand-computed allocations; reduce-only; the $10
minimum (concentration, drops counted); invariants; the sizes survive quoting.ladder's rules."""

import math

import numpy as np
import pytest
from flowmm.nodes.quoting.softmax_ladder import SoftmaxLadder, level_offset, softmax_ladder_kernel
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from pydantic import ValidationError

from flowmm.execution.hyperliquid_rules import ROUND_DOWN, ROUND_UP, min_size_for_value, px_below, round_px
from flowmm.testing import NodeHarness, allocations, example_args

S = 1_000_000_000
T0 = 1_700_000_000 * S
MID = 28.0


def step(params=None, **inputs):
    return NodeHarness("quoting.softmax_ladder", params).step(T0, mid=MID, **inputs)


def lots(x):
    return [round(v * 100) for v in x]


def test_pure_softmax_by_hand_and_concentration_onto_fewer_levels():
    """k = 0, no risk, no toxicity: U_i = d_i - fee = 2, 4, 6; w ~ e^2 : e^4 : e^6. 10 contracts:
    1000 lots -> 15 / 117 / 866 (+2 remainder to the best); level 0's 0.15 is under the $10 minimum
    (0.36 at 28), so the weakest level goes and the rest re-spread: e^4 : e^6 -> 119 / 880 (+1)."""
    p = {"levels": 3, "level_spacing_bps": 2.0, "temperature_bps": 1.0, "fee_bps": 1.0, "k_fallback": 0.0}
    out = step(p, bid_depth=3.0, ask_depth=3.0, bid_total=10.0, ask_total=10.0, toxicity=0.0, gamma=0.0)
    assert out["bid_utility"].tolist() == pytest.approx([2.0, 4.0, 6.0])
    w1 = math.exp(4) / (math.exp(4) + math.exp(6))
    assert math.floor(1000 * w1) == 119
    assert lots(out["bid_sizes"]) == [0, 119, 881] and lots(out["ask_sizes"]) == [0, 119, 881]
    assert out["bid_quoted"] == pytest.approx(10.0) and out["bid_dropped"] == 0.0
    # without the minimum the three levels keep their softmax shares
    out = step({**p, "min_order_value": 0.0}, bid_depth=3.0, bid_total=10.0, gamma=0.0, ask_total=0.0)
    assert lots(out["bid_sizes"]) == [15, 117, 868]


def test_position_cost_toxicity_and_directional_inflation_by_hand():
    """Long 2 in a selloff (mu = -0.1 bps/s): c = gamma sigma^2 tau = 0.01 x 4 x 10 = 0.4,
    f_dir = 1 + 0.1 sqrt(25) / 2 = 1.25, pi = 0.2, AS_profile(d) = 5 + d, fee 1.5.
    Bids (S = 4, d = 4, 6; inventory halfway through the level 3, 5):
      U = 4 - 1.5 - 0.2 x 9 - 1.25 x 0.4 x 3 = -0.8,  6 - 1.5 - 0.2 x 11 - 0.5 x 5 = -0.2: no bids.
    Asks (S = 2, d = 3, 5; inventory 1.5, 0.5, a benefit):
      U = 3 - 1.5 - 1.6 + 0.5 x 1.5 = 0.65,  5 - 1.5 - 2.0 + 0.5 x 0.5 = 1.75;
      EU = e^-0.6 0.65, e^-1 1.75 (k = 0.2); T = 0.5: w0 = 1 / (1 + e^((EU1 - EU0)/T))."""
    p = {
        "levels": 2,
        "level_spacing_bps": 2.0,
        "temperature_bps": 0.5,
        "as_scale_bps": 5.0,
        "horizon_s": 25.0,
    }
    p |= {"tau_s": 10.0}
    inputs = dict(q=2.0, gamma=0.01, sigma=2.0, toxicity=0.2, mu=-0.1, k_bid=0.2, k_ask=0.2)
    out = step(p, bid_depth=4.0, ask_depth=3.0, bid_total=4.0, ask_total=2.0, **inputs)
    assert out["bid_utility"].tolist() == pytest.approx([-0.8, -0.2])
    assert out["bid_sizes"].tolist() == [0.0, 0.0] and out["bid_dropped"] == 2.0  # no edge
    assert out["ask_utility"].tolist() == pytest.approx([0.65, 1.75])
    eu0, eu1 = math.exp(-0.6) * 0.65, math.exp(-1.0) * 1.75
    w0 = 1.0 / (1.0 + math.exp((eu1 - eu0) / 0.5))
    n0 = math.floor(200 * w0)
    assert n0 == 72 and lots(out["ask_sizes"]) == [n0, 200 - n0]
    assert out["ask_quoted"] == pytest.approx(2.0) and out["n_dropped"] == 0.0
    # without the drift the long's position benefit is smaller: f_dir = 1
    flat_mu = step(p, bid_depth=4.0, ask_depth=3.0, bid_total=4.0, ask_total=2.0, **{**inputs, "mu": 0.0})
    assert flat_mu["ask_utility"].tolist() == pytest.approx([0.65 - 0.25 * 0.6, 1.75 - 0.25 * 0.2])
    # flat, the two sides pay the same position cost (the seed's literal form gave the ask a benefit)
    sym = step(p, bid_depth=3.0, ask_depth=3.0, bid_total=2.0, ask_total=2.0, **{**inputs, "q": 0.0})
    assert sym["bid_utility"].tolist() == pytest.approx(sym["ask_utility"].tolist())
    assert lots(sym["bid_sizes"]) == lots(sym["ask_sizes"])


def test_the_directional_shift_moves_the_edges_to_the_fair_value():
    p = {"levels": 1, "k_fallback": 0.0}
    out = step(p, bid_depth=6.0, ask_depth=6.0, shift=2.0, toxicity=0.0, gamma=0.0)  # bearish 2 bps
    assert np.atleast_1d(out["bid_utility"])[0] == pytest.approx(
        6.0 - 2.0 - 1.5
    )  # fair value 2 bps under the mid
    assert np.atleast_1d(out["ask_utility"])[0] == pytest.approx(6.0 + 2.0 - 1.5)


def test_reduce_only_long_quotes_asks_only_touch_heavy_within_the_position():
    """Seed 004's Stage 5/6 example: p_down 0.98, long 4.13 -> reduce-only, bid total 0, ask total
    4.13. Every ask level loses per fill here (pi 0.68, AS 10 + d), but a reducing side must work
    the position down: weights e^(-k d_i) / sum, k = 0.35, d_i = 6.3 + 2.1 i; a level under $10
    goes, the rest re-spread."""
    p = {"levels": 6, "level_spacing_bps": 2.1}
    out = step(
        p, q=4.13, bid_total=0.0, ask_total=4.13, toxicity=0.68, mu=-5.8 / 30, bid_depth=34.3, ask_depth=6.3
    )
    assert (np.asarray(out["ask_utility"]) < 0).all()
    assert out["bid_sizes"].sum() == 0.0 and out["bid_dropped"] == 0.0  # nothing asked of the bids
    d = 6.3 + 2.1 * np.arange(6)
    w = np.exp(-0.35 * d) / np.exp(-0.35 * d).sum()
    n = np.floor(413 * w)
    assert n[3] < 36  # 0.25 contracts: under the 0.36 minimum, and so are levels 4 and 5
    w3 = np.exp(-0.35 * d[:3]) / np.exp(-0.35 * d[:3]).sum()
    n3 = np.floor(413 * w3)
    n3[0] += 413 - n3.sum()
    assert lots(out["ask_sizes"]) == [*n3.astype(int).tolist(), 0, 0, 0]  # 243 / 115 / 55
    assert out["ask_quoted"] == pytest.approx(4.13)  # never more than the position
    assert (np.diff(out["ask_sizes"][:3]) < 0).all()  # the touch gets the most
    # with reduce_anyway off, a side losing at every level is not quoted, and says why
    off = step(
        {**p, "reduce_anyway": False}, q=4.13, bid_total=0.0, ask_total=4.13, toxicity=0.68, ask_depth=6.3
    )
    assert off["ask_sizes"].sum() == 0.0 and off["ask_dropped"] == 2.0


def test_a_side_below_the_exchange_minimum_is_dropped_and_counted():
    h = NodeHarness("quoting.softmax_ladder")
    out = h.step(T0, mid=MID, bid_depth=3.0, ask_depth=40.0, bid_total=0.35, ask_total=0.36)
    # 0.35 x ~28 < $10 at every level: dropped; 0.36 at an ask 40 bps up (28.112) is $10.12
    assert out["bid_sizes"].sum() == 0.0 and out["bid_dropped"] == 1.0 and out["n_dropped"] == 1.0
    assert out["ask_sizes"].sum() == pytest.approx(0.36) and out["ask_dropped"] == 0.0
    out = h.step(T0 + S, mid=MID, bid_depth=3.0, ask_depth=3.0, bid_total=0.35, ask_total=0.2, q=0.2)
    assert out["ask_dropped"] == 1.0 and out["n_dropped"] == 3.0  # the reducing residual, too
    out = h.step(T0 + 2 * S, mid=MID, bid_depth=3.0, ask_depth=3.0, bid_total=1.0, ask_total=1.0)
    assert out["bid_dropped"] == 0.0 and out["n_dropped"] == 3.0


def test_issue_18_split_sizes_are_concentrated_rather_than_dropped():
    """bayes_e2e's failure: a side total of 1.0 over 4 levels at a high temperature (~even) is 0.25
    a level, every level under $10; the allocation keeps the side by concentrating it."""
    out = step({"temperature_bps": 1e6}, bid_depth=3.0, ask_depth=3.0, bid_total=1.0, ask_total=0.75)
    b, a = out["bid_sizes"], out["ask_sizes"]
    assert b.sum() == pytest.approx(1.0) and (b > 0).sum() == 2 and (b[b > 0] >= 0.36).all()
    assert a.sum() == pytest.approx(0.75) and (a > 0).sum() == 2 and (a[a > 0] >= 0.36).all()
    assert out["n_dropped"] == 0.0


def test_sizes_survive_quoting_ladders_rounding_and_minimum():
    p = {"levels": 4, "level_spacing_bps": 0.3}  # under a tick at 28 (0.36 bps): the ladder pushes
    out = step(p, bid_depth=1.6, ask_depth=1.6, bid_total=1.5, ask_total=1.5, k_bid=0.0, k_ask=0.0)
    lad = NodeHarness(
        "quoting.ladder", {"levels": 4, "level_spacing_bps": 0.3}, sizes={"bid_sizes": 4, "ask_sizes": 4}
    )
    res = lad.step(
        T0, mid=MID, bid_depth=1.6, ask_depth=1.6, bid_sizes=out["bid_sizes"], ask_sizes=out["ask_sizes"]
    )
    ladder = res["ladder"]
    for col, sizes in ((1, out["bid_sizes"]), (3, out["ask_sizes"])):
        quoted = np.nan_to_num(ladder[:4, col])
        assert quoted.tolist() == pytest.approx(np.asarray(sizes).tolist())  # nothing dropped by the ladder
        assert (sizes > 0).sum() >= 2


def test_edges_nan_mid_depths_and_fallbacks():
    h = NodeHarness("quoting.softmax_ladder")
    assert h.step(T0, mid=math.nan).emitted == set()
    out = h.step(T0 + S, mid=MID, bid_depth=math.nan, ask_depth=3.0)  # total_size 1.0 by default
    assert out["bid_sizes"].sum() == 0.0 and np.isnan(out["bid_utility"]).all() and out["bid_dropped"] == 0.0
    assert out["ask_quoted"] == pytest.approx(1.0)
    assert out.emitted == set(SoftmaxLadder.outputs)
    out = h.step(T0 + 2 * S, mid=MID, bid_depth=3.0, ask_depth=3.0, bid_total=0.0, ask_total=math.inf)
    assert out["bid_sizes"].sum() == 0.0 and out["ask_quoted"] == pytest.approx(1.0)
    with pytest.raises(ValidationError):
        SoftmaxLadder.Params(temperature_bps=0.0)
    with pytest.raises(ValidationError):
        SoftmaxLadder.Params(sz_decimals=7)
    assert level_offset(3, 2.0, 1.5) == pytest.approx(2.0 + 3.0 + 4.5)


@settings(max_examples=80, deadline=None)
@given(
    total=st.floats(0.0, 12.0),
    q=st.floats(-8.0, 8.0),
    depth=st.floats(1.5, 30.0),
    tox=st.floats(0.0, 1.0),
    temp=st.floats(0.05, 50.0),
    mu=st.floats(-1.0, 1.0),
)
def test_invariants(total, q, depth, tox, temp, mu):
    """Whole lots; never more than the total; every quoted level at or above its $10 minimum; a
    side quotes its whole total (to the lot) or nothing; nothing on a level with U <= 0 unless the
    side reduces the position and no level has U > 0; under the minimum is the only drop counted."""
    out = step({"temperature_bps": temp}, bid_depth=depth, ask_depth=depth, bid_total=total, ask_total=total,
               q=q, toxicity=tox, mu=mu)  # fmt: skip
    for side, name in ((1, "bid"), (-1, "ask")):
        sizes, util = np.asarray(out[f"{name}_sizes"]), np.asarray(out[f"{name}_utility"])
        assert np.allclose(sizes * 100, np.round(sizes * 100))
        quoted = sizes.sum()
        assert quoted <= total + 1e-9
        assert quoted == 0.0 or quoted == pytest.approx(math.floor(total * 100 + 1e-9) / 100)
        for i in np.nonzero(sizes)[0]:
            d = depth + 2.0 * i
            px = round_px(MID * (1 - d * 1e-4), 2, True, ROUND_DOWN) if side > 0 else MID * (1 + d * 1e-4)
            px = px_below(px, 2, True) if side > 0 else px
            assert sizes[i] >= min_size_for_value(px, 2, 10.0) - 1e-12
        reducing_fallback = side * q < 0 and not (util > 0).any()
        assert reducing_fallback or (sizes[util <= 0] == 0).all()
        dropped = out[f"{name}_dropped"]
        assert (quoted == 0.0) == (dropped > 0 or total < 0.01)


@njit
def _drive(n, params, sc, counts, ins, outs):
    total = 0
    for k in range(n):
        ins[3][0] = 0.5 + 0.01 * (k % 300)
        ins[5][0] = -4.0 + 0.05 * (k % 160)
        total += softmax_ladder_kernel(
            np.int64(k) * 6_000_000_000, 6.0, params, sc, counts,
            ins[0], True, ins[1], True, ins[2], True, ins[3], True, ins[4], True, ins[5], True,
            ins[6], True, ins[7], True, ins[8], True, ins[9], True, ins[10], True, ins[11], True,
            ins[12], True, ins[13], True,
            outs[0], outs[1], outs[2], outs[3], outs[4], outs[5], outs[6], outs[7], outs[8],
        )  # fmt: skip
    return total


def test_kernel_allocates_nothing_per_cycle():
    a = example_args(SoftmaxLadder())
    # [now, dt, params, scratch, counts, 14 x (input, ticked), 9 outputs]
    ins = tuple(a[5 + 2 * j] for j in range(14))
    for j, v in enumerate([28.0, 3.0, 4.0, 1.0, 1.0, 0.0, 0.002, 1.0, 0.3, -0.05, 10.0, 0.35, 0.35, 1.0]):
        ins[j][0] = v
    outs = tuple(a[33:42])
    args = (a[2], a[3], a[4], ins, outs)
    assert _drive(50, *args) > 0
    assert allocations(_drive, 1, *args) == allocations(_drive, 400, *args)


def reference(
    depth, total, side, q, pi, mu, k, temp, n=4, spacing=2.0, fee=1.5, as_scale=10.0, c=0.12, sigma=1.0
):
    """Stage 6 written out again in plain Python, from the docstring's formulas (sizes in lots)."""
    f_dir = 1 + abs(mu) * math.sqrt(30.0) / sigma
    d = [depth + spacing * i for i in range(n)]
    u = [
        d[i] - fee - pi * (as_scale + d[i]) - f_dir * c * side * (q + side * (i + 0.5) * total / n)
        for i in range(n)
    ]
    kept = [x > 0 for x in u]
    if any(kept):
        score, t = [math.exp(-k * d[i]) * u[i] for i in range(n)], temp
    elif side * q < 0:
        kept, score, t = [True] * n, [-k * x for x in d], 1.0
    else:
        return [0] * n
    if side > 0:  # one tick below the rounded bid (the ladder may push it a tick)
        px = [px_below(round_px(MID * (1 - x * 1e-4), 2, True, ROUND_DOWN), 2, True) for x in d]
    else:
        px = [round_px(MID * (1 + x * 1e-4), 2, True, ROUND_UP) for x in d]
    mins = [round(min_size_for_value(p, 2, 10.0) * 100) for p in px]
    lots_total = math.floor(total * 100 + 1e-9)
    top = max(score[i] for i in range(n) if kept[i])
    w = [math.exp((score[i] - top) / t) if kept[i] else 0.0 for i in range(n)]
    while any(kept):
        ws = sum(w[i] for i in range(n) if kept[i])
        lots = [math.floor(lots_total * w[i] / ws) if kept[i] else 0 for i in range(n)]
        best = max((i for i in range(n) if kept[i]), key=lambda i: (w[i], -i))
        lots[best] += lots_total - sum(lots)
        if all(lots[i] >= mins[i] for i in range(n) if kept[i]):
            return lots
        weakest = min((i for i in range(n) if kept[i]), key=lambda i: (w[i], -i))
        kept[weakest] = False
    return [0] * n


@settings(max_examples=150, deadline=None)
@given(
    depth=st.floats(1.5, 25.0),
    total=st.floats(0.0, 10.0),
    q=st.floats(-8.0, 8.0),
    pi=st.floats(0.0, 0.8),
    mu=st.floats(-0.5, 0.5),
    k=st.floats(0.0, 1.0),
    temp=st.floats(0.1, 20.0),
)
def test_allocation_matches_an_independent_reference(depth, total, q, pi, mu, k, temp):
    out = step(
        {"temperature_bps": temp}, bid_depth=depth, ask_depth=depth, bid_total=total, ask_total=total,
        q=q, toxicity=pi, mu=mu, k_bid=k, k_ask=k, gamma=0.002, sigma=1.0,
    )  # fmt: skip
    assert lots(out["bid_sizes"]) == reference(depth, total, 1, q, pi, mu, k, temp)
    assert lots(out["ask_sizes"]) == reference(depth, total, -1, q, pi, mu, k, temp)
