import math

import numpy as np
import pytest
from flowmm.nodes.estimators.trend import Trend, trend_kernel
from numba import njit
from pydantic import ValidationError

from flowmm.core.node import get_node_type
from flowmm.testing import NodeHarness, allocations, example_args

S = 1_000_000_000
T0 = 1_700_000_000 * S
SMALL = {"short_s": 3.0, "medium_s": 7.0, "long_s": 15.0, "continuation_horizon_s": 4.0, "prior_n": 5.0}


# -- an independent reference, from the observed (time, price) list -------------------------
def price_at(obs_t, obs_p, x):
    """The last price observed at or before time x (ns), or None."""
    i = np.searchsorted(obs_t, x, side="right") - 1
    return None if i < 0 else obs_p[i]


def reference(obs_t, obs_p, now, p, sigma):
    """All outputs at `now` from the definitions in the docstring (no ring, no recursion)."""
    g = round(p["grid_s"] * S)
    ms = [round(p[k] / p["grid_s"]) for k in ("short_s", "medium_s", "long_s")]
    mh = round(p["continuation_horizon_s"] / p["grid_s"])
    kf = -((-obs_t[0]) // g)
    k_now = now // g
    lp_now = math.log(obs_p[-1])
    rs, votes, pr, pw = [], 0, 0.0, 0.0
    for m in ms:
        if k_now - m >= kf:
            r = (lp_now - math.log(price_at(obs_t, obs_p, (k_now - m) * g))) * 1e4
            w = m * p["grid_s"]
            pr, pw = pr + r, pw + w
            if r != 0 and abs(r) >= p["vote_z"] * sigma * math.sqrt(w):
                votes += 1 if r > 0 else -1
        else:
            r = math.nan
        rs.append(r)
    agreement = abs(votes) / 3
    # continuation: grid points kf..k_last, signals at j judged at j + mh
    k_last = (now - 1) // g
    f = 0.5 ** (p["grid_s"] / p["hit_half_life_s"])

    def lpg(k):
        return math.log(price_at(obs_t, obs_p, k * g))

    hit = tot = 0.0
    for k in range(kf, k_last + 1):
        j = k - mh
        if j - ms[2] < kf:
            continue
        d = [lpg(j) - lpg(j - m) for m in ms]
        s = 1 if all(x > 0 for x in d) else (-1 if all(x < 0 for x in d) else 0)
        move = lpg(k) - lpg(j)
        if s and move:
            wgt = f ** (k_last - k)
            tot += wgt
            hit += wgt * ((move > 0) == (s > 0))
    pc = (p["prior_n"] / 2 + hit) / (p["prior_n"] + tot)
    t_ref = (p["short_s"] + p["medium_s"] + p["long_s"]) / 3
    tb = t_ref * pr / pw if pw else math.nan
    z = p["c_trend"] * tb * agreement * pc
    return rs, tb, agreement, pc, z, p["sigma_trend"] ** 2 / agreement**2 if agreement else math.inf


def test_hand_computed_example():
    prm = {"short_s": 1.0, "medium_s": 2.0, "long_s": 3.0, "vote_z": 0.0, "continuation_horizon_s": 1.0}
    h = NodeHarness("estimators.trend", prm)
    for k, px in enumerate([100.0, 99.0, 98.0]):
        h.step(T0 + k * S, price=px)
    out = h.step(T0 + 3 * S, price=97.0)
    r = [math.log(97 / 98) * 1e4, math.log(97 / 99) * 1e4, math.log(97 / 100) * 1e4]
    assert [out["short_bps"], out["medium_bps"], out["long_bps"]] == pytest.approx(r, abs=1e-9)
    assert out["trend_bps"] == pytest.approx(2.0 * sum(r) / 6.0, abs=1e-9)  # T_ref = 2 s
    assert out["agreement"] == 1.0
    assert out["p_continuation"] == 0.5  # nothing judged yet (needs long + horizon of history)
    z = (1 / 320) * out["trend_bps"] * 1.0 * 0.5
    assert out["obs"][0] == pytest.approx(z, abs=1e-12) and out["obs"][1] == pytest.approx(0.25)
    assert out["obs"][0] < 0
    # one more down step: the signal made at t=3 s (all three down) continued over (3, 4] s
    out = h.step(T0 + 4 * S, price=96.0)
    out = h.step(T0 + 5 * S, price=96.0)
    assert out["p_continuation"] == pytest.approx((30 + 1) / (60 + 1), abs=1e-12)


def test_random_irregular_stream_matches_reference():
    rng = np.random.default_rng(3)
    prm = {**Trend.Params().model_dump(), **SMALL}
    h = NodeHarness("estimators.trend", SMALL)
    obs_t, obs_p = [], []
    t, lp = T0 + 123_456_789, math.log(28.0)
    for i in range(400):
        t += int(rng.exponential(0.6) * S) + (7 * S if i == 200 else 0)  # and one gap
        lp += rng.normal(-0.05 * 0.6, 1.5 * math.sqrt(0.6)) * 1e-4
        sigma = float(rng.uniform(0.5, 2.0))
        obs_t.append(t)
        obs_p.append(math.exp(lp))
        out = h.step(t, price=obs_p[-1], sigma=sigma)
        rs, tb, a, pc, z, r = reference(np.array(obs_t), obs_p, t, prm, sigma)
        got = [out["short_bps"], out["medium_bps"], out["long_bps"]]
        for i_w, (x, y) in enumerate(zip(got, rs)):
            assert (math.isnan(y) and f"{('short', 'medium', 'long')[i_w]}_bps" not in out.emitted) or (
                x == pytest.approx(y, abs=1e-9)
            )
        assert out["agreement"] == a and out["p_continuation"] == pytest.approx(pc, abs=1e-9)
        if math.isnan(tb):
            assert "trend_bps" not in out.emitted
        else:
            assert out["trend_bps"] == pytest.approx(tb, abs=1e-9)
        if a > 0:
            assert "obs" in out.emitted
            assert out["obs"][0] == pytest.approx(z, abs=1e-12) and out["obs"][1] == pytest.approx(r)
        else:
            assert "obs" not in out.emitted
    assert out["p_continuation"] != 0.5  # signals were judged


def simulate(mu, seed, n=1500, sigma=1.5, flip=1.0):
    """A random walk with drift mu bps/s, sampled every 1 s; obs.z after the long window."""
    rng = np.random.default_rng(seed)
    lp = math.log(28.0) + flip * np.cumsum(rng.normal(mu, sigma, n)) * 1e-4
    h = NodeHarness("estimators.trend")
    zs, pcs, ags = [], [], []
    for k in range(n):
        out = h.step(T0 + k * S, price=float(math.exp(lp[k])))
        zs.append(out["obs"][0] if "obs" in out.emitted else 0.0)
        pcs.append(out["p_continuation"])
        ags.append(out["agreement"])
    return np.array(zs), np.array(pcs), np.array(ags)


def test_sign_on_a_simulated_downtrend():
    # -0.3 bps/s against sigma 1.5 bps/sqrt(s): the long window's move is ~5 sd
    for seed in range(4):
        zs, pcs, ags = simulate(-0.3, seed)
        z = zs[600:]
        assert (z < 0).mean() > 0.95 and (ags[600:] == 1.0).mean() > 0.5
        assert pcs[-1] > 0.75  # the trend's signals did continue
        zu, pu, _ = simulate(+0.3, seed)
        assert (zu[600:] > 0).mean() > 0.95 and pu[-1] > 0.75


def test_no_sign_bias_on_a_driftless_walk():
    """A mirrored path gives exactly the negated observation and the same agreement and
    p_continuation: the detector has no sign preference of its own."""
    for seed in range(2):
        z, pc, ag = simulate(0.0, seed, n=1000)
        zm, pcm, agm = simulate(0.0, seed, n=1000, flip=-1.0)
        assert np.count_nonzero(z) > 50
        np.testing.assert_allclose(zm, -z, atol=1e-9)
        np.testing.assert_allclose(pcm, pc, atol=1e-12)
        np.testing.assert_array_equal(agm, ag)


def test_edge_cases():
    h = NodeHarness("estimators.trend", SMALL)
    assert h.step(T0, price=float("nan")).emitted == set()
    assert h.step(T0, price=-1.0).emitted == set()
    out = h.step(T0, price=28.0)  # first price: nothing covered
    assert out.emitted == {"agreement", "p_continuation"} and out["agreement"] == 0.0
    out = h.step(T0, price=28.0)  # zero dt
    assert out.emitted == {"agreement", "p_continuation"}
    out = h.step(T0 + 4 * S, price=28.1)
    assert out.emitted >= {"short_bps", "trend_bps"} and "medium_bps" not in out.emitted
    # a flat price: returns 0, no votes, no obs
    out = h.step(T0 + 20 * S, price=28.1)
    assert out["long_bps"] == 0.0 and out["agreement"] == 0.0 and "obs" not in out.emitted
    # a gap longer than the ring (15 + 4 + 2 steps): the returns span the gap's move
    out = h.step(T0 + 100 * S, price=27.0)
    r = math.log(27.0 / 28.1) * 1e4
    assert [out["short_bps"], out["medium_bps"], out["long_bps"]] == pytest.approx([r, r, r], abs=1e-9)
    out = h.step(T0 + 104 * S, price=27.0)
    assert out["short_bps"] == 0.0 and out["long_bps"] == pytest.approx(r, abs=1e-9)
    for bad in ({"short_s": 10.0, "medium_s": 5.0}, {"grid_s": 400.0}, {"continuation_horizon_s": 0.1}):
        with pytest.raises(ValidationError):
            Trend.Params(**bad)


@njit
def _drive(n, params, ts, fs, ring, price, sigma, *outs):
    total = 0
    for k in range(n):
        now = np.int64(k + 1) * 1_000_000_000
        price[0] = 28.0 * (1.0 + 1e-4 * ((k * 7) % 11 - 5 - 0.1 * k))
        total += trend_kernel(now, 1.0, params, ts, fs, ring, price, True, sigma, False, *outs)
    return total


def test_kernel_allocates_nothing_per_update():
    a = example_args(Trend(Trend.Params(**SMALL)))
    args = (a[2], a[3], a[4], a[5], a[6], a[8], *a[10:])
    assert _drive(30, *args) > 0
    assert allocations(_drive, 1, *args) == allocations(_drive, 400, *args)


def test_registered_with_doc():
    cls = get_node_type("estimators.trend")
    assert cls.trigger == "cycle" and "p_continuation" in cls.doc()
