"""quoting.legacy_drift and quoting.legacy_quoter: the pre-RFC system's clamp, zones, gate,
scalar and toxicity cut against hand computation; Hyperliquid rules; the jumps in q; a run."""

import math

import numpy as np
import pytest
from flowmm.nodes.quoting.legacy import (
    SKEW_PER_CONTRACT,
    LegacyDrift,
    LegacyQuoter,
    legacy_drift_kernel,
    legacy_quoter_kernel,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from pydantic import ValidationError

import flowmm
from flowmm.execution.hyperliquid_rules import valid_px
from flowmm.execution.paper import PaperBroker
from flowmm.sources.synthetic import Synthetic
from flowmm.testing import NodeHarness, allocations, example_args

S = 1_000_000_000
T0 = 1_700_000_000 * S
CYCLE = 6 * S


# -- legacy_drift ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "mu, raw, adj, clamped",
    [
        (-0.063, -3.78, -3.0, -1.0),  # trend_down's selloff drift: pinned at the clamp
        (-5.28e-4 * 1e4 / 60.0, -5.28, -3.0, -1.0),  # the logged -5.28e-4 -> "~5.3 bps", capped
        (0.03, 1.8, 1.8, 0.0),
        (0.1, 6.0, 3.0, 1.0),
        (0.05, 3.0, 3.0, 0.0),  # exactly at the cap: not beyond it
    ],
)
def test_drift_is_mu_times_horizon_clamped_at_3_bps(mu, raw, adj, clamped):
    out = NodeHarness("quoting.legacy_drift").step(T0, mu_hat=mu)
    assert out["drift_raw_bps"] == pytest.approx(raw)
    assert out["drift_adj_bps"] == pytest.approx(adj) and out["clamped"] == clamped
    assert out.emitted == {"drift_raw_bps", "drift_adj_bps", "clamped", "smoothed_drift"}


def test_missing_or_nan_drift_quotes_symmetric():
    h = NodeHarness("quoting.legacy_drift")
    out = h.step(T0)  # mu_hat not given: NaN
    assert math.isnan(out["drift_raw_bps"]) and out["drift_adj_bps"] == 0.0 and out["clamped"] == 0.0
    out = h.step(T0 + CYCLE, mu_hat=float("inf"))
    assert math.isnan(out["drift_raw_bps"]) and out["drift_adj_bps"] == 0.0


def test_smoothed_drift_stays_zero_through_the_incident_session():
    """181 cycles of 6 s (19.5 min) of a strong drift: the legacy EWMA never reports."""
    h = NodeHarness("quoting.legacy_drift")
    for k in range(181):
        out = h.step(T0 + k * CYCLE, mu_hat=-0.09)
        assert out["smoothed_drift"] == 0.0


def test_smoothed_drift_is_an_ewma_once_warm():
    h = NodeHarness("quoting.legacy_drift", {"smooth_warmup_s": 0.0, "smooth_half_life_s": 6.0})
    assert h.step(T0, mu_hat=0.01)["smoothed_drift"] == pytest.approx(0.6)  # seeded with the first
    out = h.step(T0 + CYCLE, mu_hat=0.03)  # one half-life: halfway from 0.6 to 1.8
    assert out["smoothed_drift"] == pytest.approx(1.2)
    h = NodeHarness("quoting.legacy_drift", {"smooth_warmup_s": 12.0, "smooth_half_life_s": 6.0})
    assert h.step(T0, mu_hat=0.01)["smoothed_drift"] == 0.0
    assert h.step(T0 + CYCLE, mu_hat=0.03)["smoothed_drift"] == 0.0  # 6 s < 12 s warm-up
    assert h.step(T0 + 2 * CYCLE, mu_hat=0.03)["smoothed_drift"] == pytest.approx(1.5)


def test_drift_params_are_validated():
    with pytest.raises(ValidationError):
        LegacyDrift.Params(clamp_bps=0.0)
    with pytest.raises(ValidationError):
        LegacyDrift.Params(horizon=60.0)


# -- legacy_quoter: hand computations ---------------------------------------------------------
def down(x):  # HYPE near 28: 3 decimals; a bid rounds down
    return math.floor(round(x * 1000, 6)) / 1000


def up(x):
    return math.ceil(round(x * 1000, 6)) / 1000


SIZES = [0.36, 0.46, 0.57, 0.67, 0.78, 0.89]  # 0.36 + 0.106 i, rounded down to 2 decimals
SIZES_RAW = [0.36 + 0.106 * i for i in range(6)]


def quote(q=0.0, mid=28.0, params=None, **inputs):
    out = NodeHarness("quoting.legacy_quoter", params).step(T0, mid=mid, position=q, **inputs)
    return out, out["ladder"]


def test_flat_ladder_is_the_logged_one():
    out, lad = quote()
    for i in range(6):
        d = (2.85 + 2.0 * i) * 1e-4
        assert lad[i, 0] == down(28.0 * (1 - d)) and lad[i, 2] == up(28.0 * (1 + d))
        assert lad[i, 1] == SIZES[i] and lad[i, 3] == SIZES[i]
    assert np.isnan(lad[6:]).all()
    assert (lad[0, 2] - lad[0, 0]) / 28.0 * 1e4 == pytest.approx(5.714, abs=0.01)  # ~5.7 bps touch
    assert out["zone"] == 0.0 and out["gate"] == 0.0 and out["signal_weight"] == 0.0
    assert out["inventory_scalar"] == 1.0 and out["skew_bps"] == 0.0


def test_skew_scalar_and_drift_at_the_logged_point():
    out, lad = quote(q=4.87, drift_adj=-3.0)
    u = 4.87 / 8.57
    assert out["utilization"] == pytest.approx(u)
    assert out["inventory_scalar"] == pytest.approx(1 + 3 * u * u)  # 1.97
    assert out["skew_bps"] == pytest.approx(0.73)  # CONVENTIONS: 0.73 bps at q = 4.87
    assert SKEW_PER_CONTRACT == pytest.approx(0.0761, abs=1e-4)
    # yellow, long: bids +1 bp; bearish -3 bps: bids 1.5 further, asks 1.5 closer
    assert out["bid_depth_bps"] == pytest.approx(2.85 + 1.5 + 0.73 + 1.0)
    assert out["ask_depth_bps"] == pytest.approx(2.85 - 1.5 - 0.73)
    assert out["zone"] == 1.0 and out["gate"] == 1.0  # u = 0.57 > 0.5: ONLY ASKS
    assert np.isnan(lad[:, 0]).all() and np.isnan(lad[:, 1]).all()
    assert lad[0, 2] == up(28.0 * (1 + 0.62e-4))


def test_rc4_inventory_scalar_values():
    for q, expect in [(0.02 * 8.57, 1.0012), (2.12, 1.1836), (0.5 * 8.57, 1.75), (0.8 * 8.57, 2.92)]:
        assert quote(q=q)[0]["inventory_scalar"] == pytest.approx(expect, abs=1e-3)


def test_rc4_printed_scalars_at_25_50_80_percent():
    """RC4: 'At 25% utilization, inventory_scalar = 1.19. At 50%: 1.75. By 80% when it hits 3.56'.
    The first two are 1 + 3u^2 to the printed digits; 3.56 is not (u = 0.92): the formula wins."""
    at = {u: quote(q=u * 8.57)[0]["inventory_scalar"] for u in (0.25, 0.50, 0.80)}
    assert round(at[0.25], 2) == 1.19 and round(at[0.50], 2) == 1.75
    assert at[0.80] == pytest.approx(1 + 3 * 0.64) and round(at[0.80], 2) != 3.56
    assert quote(q=math.sqrt(2.56 / 3) * 8.57)[0]["inventory_scalar"] == pytest.approx(3.56)


@pytest.mark.parametrize(
    "u, zone, gate",
    [(0.39, 0, 0), (0.40, 1, 0), (0.50, 1, 0), (0.51, 1, 1), (0.60, 1, 1), (0.61, 2, 1), (1.2, 2, 1)],
)
def test_zones_and_the_gate_at_their_boundaries(u, zone, gate):
    for sign in (1, -1):
        out, lad = quote(q=sign * u * 8.57)
        assert out["zone"] == zone and out["gate"] == sign * gate
        bids_on, asks_on = not np.isnan(lad[:, 0]).all(), not np.isnan(lad[:, 2]).all()
        accumulating_on = bids_on if sign > 0 else asks_on
        assert accumulating_on == (gate == 0)
        assert bids_on or asks_on  # the reducing side always quotes


def test_yellow_widens_and_shrinks_the_accumulating_side_only():
    out, lad = quote(q=0.45 * 8.57)
    green, glad = quote(q=0.39 * 8.57)
    assert out["bid_depth_bps"] - out["skew_bps"] == pytest.approx(2.85 + 1.0)
    assert out["ask_depth_bps"] + out["skew_bps"] == pytest.approx(2.85)
    assert out["bid_size_mult"] == pytest.approx(0.8) and out["ask_size_mult"] == 1.0
    assert lad[5, 1] == math.floor(0.89 * 0.8 * 100) / 100 and lad[5, 3] == 0.89
    assert green["bid_size_mult"] == 1.0 and glad[5, 1] == 0.89


@pytest.mark.parametrize("tox, mult", [(0.524, 0.976), (0.61, 0.89), (0.67, 0.83), (0.3, 1.0), (1.0, 0.5)])
def test_toxicity_multiplier_fits_the_logs(tox, mult):
    out, lad = quote(toxicity_bid=tox)
    assert out["bid_size_mult"] == pytest.approx(mult) and out["ask_size_mult"] == 1.0
    assert lad[5, 1] == math.floor(round(0.89 * mult * 100, 6)) / 100
    out, _ = quote(toxicity_ask=tox)
    assert out["ask_size_mult"] == pytest.approx(mult) and out["bid_size_mult"] == 1.0


def test_rc3_bid_exposure_with_the_bid_toxicity_alone():
    """RC3: bid_toxicity 0.524 -> 0.61 cut the bids by 2 -> 11 % while the asks, with their own
    (low) ask_toxicity, kept full size: total bid size 3.75 x 0.976 -> x 0.89 (lot-rounded)."""
    _, lad0 = quote(toxicity_bid=0.524, toxicity_ask=0.2)
    _, lad1 = quote(toxicity_bid=0.61, toxicity_ask=0.2)
    for lad, mult in ((lad0, 0.976), (lad1, 0.89)):
        # each level rounded down to the lot, the touch raised back to the $10 minimum (0.36 at 28)
        want = [max(math.floor(round(s * mult * 100, 6)) / 100, 0.36) for s in SIZES_RAW]
        assert lad[:6, 1].tolist() == want and lad[:6, 3].tolist() == SIZES
    assert lad1[:6, 1].sum() < lad0[:6, 1].sum() < sum(SIZES)


# -- legacy_quoter: the optional inputs of the other legacy subsystems ---------------------------
def test_dynamic_q_max_input_moves_zones_gate_and_scalar():
    out, lad = quote(q=6.58, q_max=17.18)  # u = 0.38: green, two-sided (the 22:21:32 re-buy)
    assert out["zone"] == 0.0 and out["gate"] == 0.0 and out["q_max_used"] == 17.18
    assert out["utilization"] == pytest.approx(6.58 / 17.18) and not np.isnan(lad[0, 0])
    out, lad = quote(q=6.58, q_max=8.57)  # u = 0.77: red, bids gone
    assert out["zone"] == 2.0 and out["gate"] == 1.0 and np.isnan(lad[:, 0]).all()
    assert out["inventory_scalar"] == pytest.approx(1 + 3 * (6.58 / 8.57) ** 2)
    for bad in (float("nan"), 0.0, -1.0, float("inf")):
        assert quote(q=1.0, q_max=bad)[0]["q_max_used"] == 8.57  # the param


def test_effective_q_from_the_pcm_drives_the_skew_only():
    out, _ = quote(q=2.12, effective_q=2.12 * 1.07)
    base, _ = quote(q=2.12)
    assert out["skew_bps"] == pytest.approx(base["skew_bps"] * 1.07)
    assert out["utilization"] == base["utilization"] and out["inventory_scalar"] == base["inventory_scalar"]
    assert quote(q=2.12, effective_q=float("nan"))[0]["skew_bps"] == base["skew_bps"]


def test_margin_scales_and_pre_fill_as_multipliers_per_side():
    out, lad = quote(bid_size_scale=0.79, ask_size_scale=1.21, bid_spread_mult=1.18)
    assert out["bid_depth_bps"] == pytest.approx(2.85 * 1.18) and out["ask_depth_bps"] == pytest.approx(2.85)
    assert lad[0, 0] == down(28.0 * (1 - 2.85 * 1.18e-4))
    assert out["bid_size_mult"] == 1.0  # the logged multiplier is the toxicity one alone
    for i in range(6):
        assert lad[i, 1] == max(math.floor(round(SIZES_RAW[i] * 0.79 * 100, 6)) / 100, 0.36)
        assert lad[i, 3] == math.floor(round(SIZES_RAW[i] * 1.21 * 100, 6)) / 100


def test_unwired_optional_inputs_leave_the_quotes_as_they_were():
    base, lad = quote(q=3.0, drift_adj=-2.0, toxicity_bid=0.6)
    out, lad2 = quote(
        q=3.0, drift_adj=-2.0, toxicity_bid=0.6, bid_size_scale=1.0, ask_size_scale=1.0,
        bid_spread_mult=1.0, ask_spread_mult=1.0, effective_q=3.0, q_max=8.57,
    )  # fmt: skip
    assert np.array_equal(lad, lad2, equal_nan=True)
    assert all(out[k] == base[k] for k in base if k != "ladder")


def test_a_toxicity_cut_below_ten_dollars_is_raised_to_the_minimum():
    _, lad = quote(toxicity_bid=0.61)  # touch 0.36 * 0.89 = 0.32 -> $8.96: raised to $10
    assert lad[0, 1] == 0.36 and lad[0, 0] * lad[0, 1] >= 10.0 and lad[0, 0] * 0.35 < 10.0
    _, lad = quote(params={"min_order_value": 0.0}, toxicity_bid=0.61)
    assert lad[0, 1] == 0.32


def test_signal_weight_zero_keeps_the_trend_out_of_the_gate():
    out, lad = quote(trend=-50.0)  # a -50 bps trend, flat: the legacy keeps quoting bids
    assert out["gate"] == 0.0 and out["gate_signal"] == 0.0 and not np.isnan(lad[0, 0])
    out, lad = quote(params={"signal_weight": 1.0}, trend=-50.0)  # wired, as P1 asks
    assert out["gate"] == 1.0 and out["gate_signal"] == -50.0 and np.isnan(lad[:, 0]).all()
    out, _ = quote(params={"signal_weight": 1.0}, trend=-4.0)  # under the 5 bps trigger
    assert out["gate"] == 0.0


def test_red_zone_is_reduce_only():
    out, lad = quote(q=1.3, params={"q_max": 2.0})  # u = 0.65, long: asks only, total <= 1.3
    assert out["zone"] == 2.0
    asks = lad[~np.isnan(lad[:, 2]), 3]
    assert np.isnan(lad[:, 0]).all()
    assert asks.tolist() == [0.36, 0.46, 0.48] and asks.sum() == pytest.approx(1.3)
    out, lad = quote(q=-1.3, params={"q_max": 2.0})
    assert np.isnan(lad[:, 2]).all() and lad[~np.isnan(lad[:, 0]), 1].sum() == pytest.approx(1.3)


def test_nan_mid_withholds_once_and_nan_inputs_fall_back():
    h = NodeHarness("quoting.legacy_quoter")
    assert h.step(T0, mid=28.0).emitted == set(LegacyQuoter.outputs)
    out = h.step(T0 + CYCLE, mid=float("nan"))
    assert out.emitted == {"ladder"} and np.isnan(out["ladder"]).all()
    assert h.step(T0 + 2 * CYCLE, mid=-1.0).emitted == set()  # already withheld
    out = h.step(
        T0 + 3 * CYCLE, mid=28.0, position=float("nan"), drift_adj=float("nan"), toxicity_bid=float("nan")
    )
    flat = quote()[1]
    np.testing.assert_array_equal(out["ladder"], flat)


def test_quoter_params_are_validated():
    with pytest.raises(ValidationError):
        LegacyQuoter.Params(green_max=0.7, red_min=0.6)
    with pytest.raises(ValidationError):
        LegacyQuoter.Params(sz_decimals=7)
    with pytest.raises(ValidationError):
        LegacyQuoter.Params(levels=17)


def test_btc_grid():
    _, lad = quote(mid=97_000.0, params={"sz_decimals": 5, "size_touch": 0.001, "size_deep": 0.002})
    assert lad[0, 0] == math.floor(97_000 * (1 - 2.85e-4)) and lad[0, 2] == math.ceil(97_000 * (1 + 2.85e-4))
    assert all(valid_px(p, 5, True) for p in lad[:6, 0]) and lad[0, 1] == 0.001


# -- the jumps the RFC removes: a q-sweep -----------------------------------------------------
def test_q_sweep_shows_the_zone_jumps():
    """q from -q_max to q_max in 0.01 steps: the touch bid moves by under a tick per step
    (skew) except at the zone and gate boundaries, where it jumps by ticks or vanishes."""
    qs = np.round(np.arange(-8.57, 8.57, 0.01), 2)
    bid = np.array([quote(q=q)[1][0, 0] for q in qs])
    bid_sz = np.array([quote(q=q)[1][5, 1] for q in qs])
    dpx = np.abs(np.diff(bid))
    jumps = qs[1:][dpx > 0.0015]  # more than one tick (0.001) in one 0.01 step
    assert any(abs(j - 0.40 * 8.57) < 0.011 for j in jumps)  # green -> yellow: +1 bp (3 ticks)
    assert np.isnan(bid[qs > 0.5 * 8.57]).all() and not np.isnan(bid[qs <= 0.5 * 8.57]).any()
    sz_jump = np.abs(np.diff(bid_sz))[np.abs(qs[1:] - 0.40 * 8.57) < 0.011]
    assert sz_jump.max() >= 0.17  # 0.89 -> 0.71 at the yellow boundary
    smooth = (np.abs(qs[1:]) < 0.39 * 8.57) & (np.abs(qs[:-1]) < 0.39 * 8.57)
    assert dpx[smooth].max() <= 0.0011  # inside green: at most one tick per step


# -- properties ----------------------------------------------------------------------------------
@settings(max_examples=80, deadline=None)
@given(
    q=st.floats(-12.0, 12.0),
    mid=st.floats(5.0, 200.0),
    drift=st.floats(-3.0, 3.0),
    tox=st.floats(0.0, 1.0),
)
def test_ladder_obeys_the_exchange_rules(q, mid, drift, tox):
    out, lad = quote(q=q, mid=mid, drift_adj=drift, toxicity_bid=tox, toxicity_ask=1.0 - tox)
    for px_col, sz_col, sign in ((0, 1, -1), (2, 3, 1)):
        px, sz = lad[:, px_col], lad[:, sz_col]
        on = ~np.isnan(px)
        assert (np.isnan(sz) == ~on).all()
        px, sz = px[on], sz[on]
        assert all(valid_px(p, 2, True) for p in px)
        assert (sign * (px - mid) > 0).all()  # never at or through the mid
        assert (sign * np.diff(px) > 0).all()  # strictly deeper level by level
        assert (px * sz >= 10.0 - 1e-9).all() and np.allclose(sz, np.round(sz, 2))
        reducing = (sign > 0) == (q > 0)
        if out["zone"] == 2.0 and reducing:
            assert sz.sum() <= abs(q) + 1e-9


# -- no allocation -------------------------------------------------------------------------------
@njit
def _drive_quoter(n, params, st_, mid, pos, drift, tb, ta, tr, extra, outs):
    total = 0
    for k in range(n):
        mid[0] = 28.0 + 0.001 * (k % 11)
        pos[0] = -9.0 + 0.1 * (k % 180)
        total += legacy_quoter_kernel(
            np.int64(k) * 6_000_000_000, 6.0, params, st_, mid, True, pos, True, drift, True, tb, True,
            ta, True, tr, True, extra[0], True, extra[1], True, extra[2], True, extra[3], True, extra[4],
            True, extra[5], True, outs[0], outs[1], outs[2], outs[3], outs[4], outs[5], outs[6], outs[7],
            outs[8], outs[9], outs[10], outs[11], outs[12],
        )  # fmt: skip
    return total


@njit
def _drive_drift(n, params, st_, mu, raw, adj, cl, sm):
    total = 0
    for k in range(n):
        mu[0] = -0.1 + 0.001 * (k % 200)
        total += legacy_drift_kernel(
            np.int64(k) * 6_000_000_000, 6.0, params, st_, mu, True, raw, adj, cl, sm
        )
    return total


def test_kernels_allocate_nothing_per_cycle():
    a = example_args(LegacyQuoter())
    # [now, dt, params, st, mid, tk, pos, tk, drift, tk, tox_b, tk, tox_a, tk, trend, tk,
    #  q_max, tk, effective_q, tk, bid/ask_size_scale, tk, tk, bid/ask_spread_mult, tk, tk, outs...]
    a[8][0], a[10][0], a[12][0], a[14][0] = -3.0, 0.6, 0.4, -10.0
    a[16][0], a[18][0], a[20][0], a[22][0], a[24][0], a[26][0] = 17.18, 1.2, 0.8, 1.2, 1.1, 1.0
    extra = (a[16], a[18], a[20], a[22], a[24], a[26])
    outs = (a[28], *a[29:41])
    args = (a[2], a[3], a[4], a[6], a[8], a[10], a[12], a[14], extra, outs)
    assert _drive_quoter(50, *args) > 0
    assert allocations(_drive_quoter, 1, *args) == allocations(_drive_quoter, 400, *args)
    d = example_args(LegacyDrift())
    dargs = (d[2], d[3], d[4], *d[6:])
    assert _drive_drift(10, *dargs) > 0
    assert allocations(_drive_drift, 1, *dargs) == allocations(_drive_drift, 400, *dargs)


# -- a run: the legacy stages wired as legacy.yaml would, on the incident's scenario --------------
def test_trend_down_run_shows_the_legacy_mechanics_in_the_trace():
    g = flowmm.load_graph(
        {
            "name": "legacy_stages",
            "instrument": {"coin": "HYPE", "tick_size": 0.001, "sz_decimals": 2},
            "clock": {"quote_every_ms": 6000},
            "execution": {"ladder": "quote.ladder"},
            "trace": [
                "exec.position",
                "legacy_drift.drift_raw_bps",
                "legacy_drift.drift_adj_bps",
                "legacy_drift.smoothed_drift",
                "quote.zone",
                "quote.gate",
                "quote.signal_weight",
                "quote.utilization",
            ],  # fmt: skip
            "nodes": {
                "drift": {"type": "estimators.kalman_drift", "in": {"price": "source.mid"}},
                "legacy_drift": {"type": "quoting.legacy_drift", "in": {"mu_hat": "drift.mu_hat"}},
                "quote": {
                    "type": "quoting.legacy_quoter",
                    "in": {
                        "mid": "source.mid",
                        "position": "exec.position",
                        "drift_adj": "legacy_drift.drift_adj_bps",
                    },
                },
            },
        }
    )
    run = g.run(Synthetic("trend_down", seed=1, duration="20m"), broker=PaperBroker())
    col = {c: np.array(run.trace.column(c).to_pylist(), float) for c in run.trace.column_names}
    assert len(col["t"]) >= 200  # 20 min of 6 s cycles
    adj, raw = col["legacy_drift.drift_adj_bps"], col["legacy_drift.drift_raw_bps"]
    assert np.nanmax(np.abs(adj)) == 3.0 and (adj == -3.0).sum() >= 10  # pinned at the clamp
    pinned = adj == -3.0
    assert (raw[pinned] < -3.0).all()  # pinned = the raw drift was beyond the clamp
    assert (col["quote.signal_weight"] == 0.0).all() and (col["legacy_drift.smoothed_drift"] == 0.0).all()
    gated = col["quote.gate"] != 0.0
    assert (col["quote.utilization"][gated] > 0.5).all()  # the gate acts only above 50 % of q_max
    assert gated[col["quote.utilization"] > 0.5].all()  # ... and always does there
