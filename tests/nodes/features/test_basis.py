import numpy as np
import pytest
from flowmm.nodes.features.basis import Basis, basis_kernel
from numba import njit
from pydantic import ValidationError

from flowmm.testing import NodeHarness, allocations, example_args

S = 1_000_000_000
T0 = 1_700_000_000 * S  # an epoch-like start, so slots are not aligned with the first event


def ctx(premium: float) -> np.ndarray:
    return np.array([1e-5, 1e-5, 5e5, 28.0, 28.0, premium])


def direct(times, mid, spot, delta_s, step_s):
    """Independent: basis per step; the lagged value is the newest first-of-its-slot sample at
    or before t - delta_s."""
    basis = (mid - spot) / spot * 1e4
    slots = times // int(step_s * 1e9)
    first = np.r_[True, slots[1:] != slots[:-1]]
    ht, hb = times[first], basis[first]
    i = np.searchsorted(ht, times - int(delta_s * 1e9), side="right") - 1
    return basis, np.where(i >= 0, basis - hb[np.maximum(i, 0)], np.nan)


def test_basis_and_its_change_against_a_direct_computation():
    rng = np.random.default_rng(1)
    n = 900
    times = T0 + np.cumsum(rng.integers(100_000_000, 900_000_000, n))  # irregular 0.1-0.9 s
    mid = 28.0 * np.exp(np.cumsum(rng.normal(0, 2e-5, n)))
    spot = mid / (1 + (2.0 + np.cumsum(rng.normal(0, 0.05, n))) * 1e-4)
    params = {"delta_s": 30.0, "step_s": 1.0, "alpha": 0.03, "sigma": 0.2}
    h = NodeHarness("features.basis", params)
    want_b, want_d = direct(times, mid, spot, 30.0, 1.0)
    got_b, got_d = [], []
    for t, m, s in zip(times, mid, spot):
        out = h.step(int(t), mid=m, spot=s)
        got_b.append(out["basis_bps"] if "basis_bps" in out.emitted else np.nan)
        got_d.append(out["dbasis_bps"] if "dbasis_bps" in out.emitted else np.nan)
        if "obs" in out.emitted:
            np.testing.assert_allclose(out["obs"], [0.03 * out["dbasis_bps"], 0.04], rtol=1e-12)
    np.testing.assert_allclose(got_b, want_b, rtol=1e-12)
    np.testing.assert_allclose(got_d, want_d, rtol=1e-9, atol=1e-12)  # NaN where no history yet
    assert np.isnan(got_d[0]) and np.isfinite(got_d[-1])


def test_premium_mode_reads_the_ctx_premium_and_ignores_spot():
    h = NodeHarness("features.basis", {"use_premium": True, "delta_s": 2.0})
    out = h.step(T0, mid=28.0, spot=27.0, ctx=ctx(3e-4))
    assert out.emitted == {"basis_bps"} and out["basis_bps"] == pytest.approx(3.0)
    h.step(T0 + S, ctx=ctx(2.5e-4))
    out = h.step(T0 + 2 * S, ctx=ctx(1e-4))
    assert out["basis_bps"] == pytest.approx(1.0)
    assert out["dbasis_bps"] == pytest.approx(-2.0)  # 1 - 3 bps
    assert out.emitted == {"basis_bps", "dbasis_bps", "obs"}


def test_spot_mode_needs_both_prices_and_premium_mode_needs_ctx():
    h = NodeHarness("features.basis")
    assert h.step(T0, mid=28.0).emitted == set()  # no spot yet
    assert h.step(T0 + S, ctx=ctx(1e-4)).emitted == set()  # a premium is not used in spot mode
    assert h.step(T0 + 2 * S, spot=27.99).emitted == {"basis_bps"}
    p = NodeHarness("features.basis", {"use_premium": True})
    assert p.step(T0, mid=28.0, spot=27.99).emitted == set()


def test_nan_and_non_positive_prices_are_ignored():
    h = NodeHarness("features.basis", {"delta_s": 1.0})
    h.step(T0, mid=28.0, spot=27.99)
    out = h.step(T0 + S, mid=np.nan, spot=0.0)  # neither is a price: the last valid ones stay
    assert out["basis_bps"] == pytest.approx((28.0 - 27.99) / 27.99 * 1e4)
    assert out["dbasis_bps"] == pytest.approx(0.0, abs=1e-12)
    assert np.isfinite(out["obs"]).all()


def test_a_stale_venue_gives_no_value():
    h = NodeHarness("features.basis", {"max_stale_s": 5.0})
    h.step(T0, mid=28.0, spot=27.99)
    assert "basis_bps" in h.step(T0 + 5 * S, mid=28.01).emitted  # spot exactly 5 s old: still ok
    assert h.step(T0 + 6 * S, mid=28.02).emitted == set()  # spot 6 s old
    assert h.step(T0 + 7 * S, spot=28.0).emitted == {"basis_bps"}  # fresh again


def test_a_gap_around_t_minus_delta_gives_no_change():
    h = NodeHarness("features.basis", {"delta_s": 10.0, "max_stale_s": 3.0})
    for k in range(5):
        h.step(T0 + k * S, mid=28.0, spot=27.99)
    # 30 s without data: the newest sample before t - 10 s is 26 s old
    out = h.step(T0 + 34 * S, mid=28.0, spot=27.98)
    assert out.emitted == {"basis_bps"}
    for k in range(35, 44):
        assert "dbasis_bps" not in h.step(T0 + k * S, mid=28.0, spot=27.98).emitted
    out = h.step(T0 + 44 * S, mid=28.0, spot=27.98)  # 10 s of fresh history again
    assert "dbasis_bps" in out.emitted and out["dbasis_bps"] == pytest.approx(0.0, abs=1e-12)


def test_first_event_and_zero_dt():
    h = NodeHarness("features.basis", {"delta_s": 1.0})
    out = h.step(T0, mid=28.0, spot=27.99)
    assert out.emitted == {"basis_bps"} and np.isnan(out["dbasis_bps"])  # no history yet
    h.step(T0 + S, mid=28.01, spot=27.99)
    a = h.step(T0 + S, mid=28.01, spot=27.99)  # same time again: the same values
    b = h.step(T0 + S, mid=28.01, spot=27.99)
    assert a["dbasis_bps"] == b["dbasis_bps"] and a.emitted == b.emitted == {"basis_bps", "dbasis_bps", "obs"}


def test_params_are_checked():
    with pytest.raises(ValidationError):
        Basis.Params(delta_s=0)
    with pytest.raises(ValidationError):
        Basis.Params(delta_s=3600, step_s=0.001)  # a 3.6 M sample ring
    with pytest.raises(ValidationError):
        Basis.Params(delta_sec=60)


@njit
def _drive(n, params, val, ist, ht, hv, mid, spot, cx, basis, dbasis, obs):
    total = 0
    for k in range(n):
        mid[0] = 28.0 + 0.001 * (k % 7)
        total += basis_kernel(
            np.int64(k) * 500_000_000, 0.5, params, val, ist, ht, hv, mid, True, spot, True, cx, False, basis,
            dbasis, obs,
        )  # fmt: skip
    return total


def test_kernel_allocates_nothing_per_update():
    a = example_args(Basis(Basis.Params(delta_s=5.0)))
    # [now, dt, params, val, ist, hist_t, hist_v, mid, ticked, spot, ticked, ctx, ticked, basis, dbasis, obs]
    a[9][0] = 27.99
    args = (a[2], *a[3:7], a[7], a[9], a[11], *a[13:])
    assert _drive(40, *args) > 0
    assert allocations(_drive, 1, *args) == allocations(_drive, 400, *args)
