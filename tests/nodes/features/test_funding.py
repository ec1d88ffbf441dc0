import math

import numpy as np
import pytest
from flowmm.nodes.features.funding import Funding, funding_kernel
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from pydantic import ValidationError

from flowmm.testing import NodeHarness, allocations, example_args

S = 1_000_000_000
HOUR = 3600 * S
T0 = 472_222 * HOUR  # a UTC hour boundary (2023-11-14 22:00)
P = {
    "pred_weight_start": 0.4,
    "ewma_share": 0.25,
    "ewma_half_life_s": 600.0,
    "stats_half_life_s": 900.0,
    "prior_mean": 1e-5,
    "prior_sd": 2e-5,
    "c_f": 0.03,
    "sigma": 0.1,
    "z_floor": 0.2,
}


def ctx(cur: float, pred: float) -> np.ndarray:
    return np.array([cur, pred, 5e5, 28.0, 28.0, 0.0])


def direct(times, cur, pred, p):
    """Independent loop: the forecast, the EWMA and the rolling stats, step by step."""
    ewma, mean, var = np.nan, p["prior_mean"], p["prior_sd"] ** 2
    rows, last = [], None
    for t, c, f in zip(times, cur, pred):
        dt = 0.0 if last is None else (t - last) / 1e9
        last = t
        ewma = c if np.isnan(ewma) else ewma + (1 - 0.5 ** (dt / p["ewma_half_life_s"])) * (c - ewma)
        phase = (t % HOUR) / HOUR
        wp = p["pred_weight_start"] + (1 - p["pred_weight_start"]) * phase
        we = (1 - wp) * p["ewma_share"]
        fh = wp * f + we * ewma + (1 - wp - we) * c
        z = (fh - mean) / math.sqrt(var)
        r = p["sigma"] ** 2 / min(max(abs(z), p["z_floor"]), 1.0)
        rows.append((fh, fh / 3600, ewma, mean, math.sqrt(var), z, -p["c_f"] * z, r))
        w = 1 - 0.5 ** (dt / p["stats_half_life_s"])
        mean, var = mean + w * (fh - mean), (1 - w) * (var + w * (fh - mean) ** 2)
    return np.array(rows)


def test_forecast_zscore_and_observation_against_a_direct_loop():
    rng = np.random.default_rng(5)
    n = 3000  # 2.5 h at 3 s: crosses two settlements
    times = T0 + 1234 * S + np.arange(n) * 3 * S
    pred = 1.25e-5 + 2e-5 * np.cumsum(rng.normal(0, 0.05, n))
    cur = np.repeat(pred[::1200], 1200)[:n]  # a stepwise rate in force
    h = NodeHarness("features.funding", P)
    got = []
    for t, c, f in zip(times, cur, pred):
        out = h.step(int(t), ctx=ctx(c, f))
        assert out.emitted == set(Funding.outputs)
        got.append(
            [out[k] for k in ("f_hat", "f_hat_per_s", "f_ewma", "f_mean", "f_std", "zscore")]
            + list(out["obs"])
        )
    np.testing.assert_allclose(np.array(got), direct(times, cur, pred, P), rtol=1e-9)


def test_predicted_weight_grows_toward_settlement():
    p = {**P, "pred_weight_start": 0.5, "ewma_share": 0.0}
    for minute, w in [(0, 0.5), (30, 0.75), (59.5, 0.5 + 0.5 * 59.5 / 60)]:
        h = NodeHarness("features.funding", p)
        out = h.step(T0 + int(minute * 60 * S), ctx=ctx(0.0, 1e-4))
        assert out["f_hat"] == pytest.approx(w * 1e-4, rel=1e-12)
    h = NodeHarness("features.funding", p)
    assert h.step(T0 + HOUR, ctx=ctx(0.0, 1e-4))["f_hat"] == pytest.approx(0.5e-4)  # settled: back to start


def test_contrarian_sign_and_r():
    h = NodeHarness("features.funding", {**P, "pred_weight_start": 1.0})
    out = h.step(T0, ctx=ctx(np.nan, 1e-5 + 3 * 2e-5))  # +3 sd above the prior mean
    assert out["zscore"] == pytest.approx(3.0)
    assert out["obs"][0] == pytest.approx(-0.09) and out["obs"][1] == pytest.approx(0.01)  # bearish
    h = NodeHarness("features.funding", {**P, "pred_weight_start": 1.0})
    out = h.step(T0, ctx=ctx(np.nan, 1e-5))  # at the mean: floor of |z|
    assert out["obs"][0] == 0.0 and out["obs"][1] == pytest.approx(0.01 / 0.2)


@settings(max_examples=60, deadline=None)
@given(z=st.floats(-50, 50, allow_nan=False))
def test_observation_is_contrarian_and_r_bounded(z):
    h = NodeHarness("features.funding", {**P, "pred_weight_start": 1.0})
    out = h.step(T0, ctx=ctx(np.nan, 1e-5 + z * 2e-5))
    assert out["obs"][0] * z <= 0.0
    assert 0.01 - 1e-15 <= out["obs"][1] <= 0.01 / 0.2 + 1e-12


def test_missing_components_are_renormalised_and_none_gives_no_value():
    p = {**P, "pred_weight_start": 0.5, "ewma_share": 0.5}
    h = NodeHarness("features.funding", p)
    out = h.step(T0, ctx=ctx(np.nan, 2e-5))  # only the prediction
    assert out["f_hat"] == pytest.approx(2e-5) and "f_ewma" not in out.emitted
    out = h.step(T0 + S, ctx=ctx(1e-5, np.nan))  # current (and its EWMA = current) only
    assert out["f_hat"] == pytest.approx(1e-5) and "f_ewma" in out.emitted
    h2 = NodeHarness("features.funding", p)
    assert h2.step(T0, ctx=ctx(np.nan, np.nan)).emitted == set()
    assert h2.step(T0 + S, ctx=ctx(5.0, np.inf)).emitted == set()  # not funding rates
    assert h2.step(T0 + 2 * S).emitted == set()  # ctx did not tick


def test_zero_dt_updates_nothing():
    h = NodeHarness("features.funding", P)
    h.step(T0, ctx=ctx(1e-5, 5e-5))
    a = h.step(T0 + 10 * S, ctx=ctx(2e-5, 6e-5))  # folds its f_hat into the stats
    b = h.step(T0 + 10 * S, ctx=ctx(2e-5, 6e-5))  # same time: no EWMA / stats step
    c = h.step(T0 + 10 * S, ctx=ctx(2e-5, 6e-5))
    assert a["f_hat"] == b["f_hat"] == c["f_hat"] and a["f_ewma"] == b["f_ewma"] == c["f_ewma"]
    assert b["f_mean"] != a["f_mean"]  # a's sample entered with a's dt
    for k in ("f_mean", "f_std", "zscore"):
        assert b[k] == c[k]  # b's did not


def test_rolling_statistics_are_centred_updates():
    """sd 1e-9 around 0.5 per hour: E[x^2] - E[x]^2 would lose it in rounding (~1e-17 vs 1e-18)."""
    rng = np.random.default_rng(2)
    p = {**P, "pred_weight_start": 1.0, "stats_half_life_s": 600.0, "prior_mean": 0.5, "prior_sd": 1e-9}
    h = NodeHarness("features.funding", p)
    x = 0.5 + 1e-9 * rng.standard_normal(20_000)
    for k in range(len(x)):
        out = h.step(T0 + k * S, ctx=ctx(np.nan, x[k]))
    assert out["f_mean"] == pytest.approx(0.5, abs=2e-10)
    assert out["f_std"] == pytest.approx(1e-9, rel=0.15)


def test_params_are_checked():
    with pytest.raises(ValidationError):
        Funding.Params(pred_weight_start=1.5)
    with pytest.raises(ValidationError):
        Funding.Params(prior_sd=0.0)
    with pytest.raises(ValidationError):
        Funding.Params(z_floor=0.0)


@njit
def _drive(n, params, state, cx, *outs):
    total = 0
    for k in range(n):
        cx[1] = 1e-5 * (k % 11)
        total += funding_kernel(np.int64(k) * S, 1.0, params, state, cx, True, *outs)
    return total


def test_kernel_allocates_nothing_per_update():
    a = example_args(Funding())  # [now, dt, params, state, ctx, ticked, 7 outputs]
    a[4][:] = ctx(1e-5, 2e-5)
    args = (a[2], a[3], a[4], *a[6:])
    assert _drive(10, *args) == 10 * 127
    assert allocations(_drive, 1, *args) == allocations(_drive, 400, *args)
