import numpy as np
import pytest
from flowmm.nodes.features.oi import OpenInterest, oi_kernel
from numba import njit
from pydantic import ValidationError

from flowmm.core.ports import CTX_MARK, CTX_OI
from flowmm.testing import NodeHarness, allocations, example_args

S = 1_000_000_000
T0 = 1_700_000_000 * S


def ctx(oi: float, mark: float) -> np.ndarray:
    c = np.array([1e-5, 1e-5, np.nan, np.nan, 28.0, 0.0])
    c[CTX_OI], c[CTX_MARK] = oi, mark
    return c


def test_signed_change_against_a_direct_computation():
    rng = np.random.default_rng(7)
    n = 600
    times = T0 + np.cumsum(rng.integers(500_000_000, 1_500_000_000, n))  # 0.5-1.5 s apart
    oi = 5e5 + np.cumsum(rng.normal(0, 50, n))
    mark = 28.0 * np.exp(np.cumsum(rng.normal(0, 3e-5, n)))
    params = {"window_s": 30.0, "step_s": 1.0, "max_gap_s": 10.0, "alpha": 0.01, "sigma": 0.3}
    h = NodeHarness("features.oi", params)
    # direct: the newest first-of-its-1-s-slot sample at or before t - 30 s
    slots = times // S
    first = np.r_[True, slots[1:] != slots[:-1]]
    i = np.searchsorted(times[first], times - 30 * S, side="right") - 1
    j = np.flatnonzero(first)[np.maximum(i, 0)]
    doi = np.where(i >= 0, (oi / oi[j] - 1) * 1e4, np.nan)
    ret = np.where(i >= 0, np.log(mark / mark[j]) * 1e4, np.nan)
    signed = doi * np.sign(ret)
    got = np.full((n, 3), np.nan)
    for k in range(n):
        out = h.step(int(times[k]), ctx=ctx(oi[k], mark[k]))
        if "obs" in out.emitted:
            got[k] = out["doi_bps"], out["ret_bps"], out["signed_bps"]
            np.testing.assert_allclose(out["obs"], [0.01 * out["signed_bps"], 0.09], rtol=1e-12)
    np.testing.assert_allclose(got, np.c_[doi, ret, signed], rtol=1e-9, atol=1e-12)
    assert np.isnan(got[0]).all() and np.isfinite(got[-1]).all()


def test_sign_follows_the_rfc():
    for d_oi, d_px, want in [(+1, -1, -1), (-1, -1, +1), (+1, +1, +1), (-1, +1, -1)]:
        h = NodeHarness("features.oi", {"window_s": 1.0})
        h.step(T0, ctx=ctx(5e5, 28.0))
        out = h.step(T0 + S, ctx=ctx(5e5 + d_oi * 500, 28.0 + d_px * 0.01))
        # rising OI into a falling price is bearish; falling OI into a falling price less so
        assert np.sign(out["obs"][0]) == want
        assert out["doi_bps"] == pytest.approx(d_oi * 10.0)


def test_no_price_move_gives_zero_and_missing_mark_no_sign():
    h = NodeHarness("features.oi", {"window_s": 1.0})
    h.step(T0, ctx=ctx(5e5, 28.0))
    out = h.step(T0 + S, ctx=ctx(5.01e5, 28.0))
    assert out["signed_bps"] == 0.0 and out["obs"][0] == 0.0  # sign(0) = 0
    out = h.step(T0 + 2 * S, ctx=ctx(5.02e5, np.nan))
    assert out.emitted == {"doi_bps"}  # the change is known, its sign is not


def test_first_event_nan_oi_and_untick():
    h = NodeHarness("features.oi", {"window_s": 2.0})
    assert h.step(T0, ctx=ctx(5e5, 28.0)).emitted == set()  # nothing to difference yet
    assert h.step(T0 + S, ctx=ctx(np.nan, 28.0)).emitted == set()
    assert h.step(T0 + S, ctx=ctx(-1.0, 28.0)).emitted == set()
    assert h.step(T0 + 2 * S).emitted == set()  # ctx did not tick
    out = h.step(T0 + 2 * S, ctx=ctx(5.05e5, 28.0))  # the NaN / negative samples were not stored
    assert out["doi_bps"] == pytest.approx(100.0)


def test_gap_in_data_gives_no_value():
    h = NodeHarness("features.oi", {"window_s": 10.0, "max_gap_s": 5.0})
    for k in range(12):
        h.step(T0 + k * S, ctx=ctx(5e5 + k, 28.0))
    assert "obs" in h.step(T0 + 12 * S, ctx=ctx(5e5, 28.0)).emitted
    # 40 s of silence: the newest sample before t - 10 s is 28 s before it
    assert h.step(T0 + 52 * S, ctx=ctx(5e5, 28.0)).emitted == set()
    for k in range(53, 62):
        assert h.step(T0 + k * S, ctx=ctx(5e5, 28.0)).emitted == set()
    assert "obs" in h.step(T0 + 62 * S, ctx=ctx(5e5, 28.1)).emitted


def test_zero_dt_repeats_the_same_values():
    h = NodeHarness("features.oi", {"window_s": 1.0})
    h.step(T0, ctx=ctx(5e5, 28.0))
    a = h.step(T0 + S, ctx=ctx(5.1e5, 27.9))
    b = h.step(T0 + S, ctx=ctx(5.1e5, 27.9))
    assert a["signed_bps"] == b["signed_bps"] == pytest.approx(-200.0)


def test_params_are_checked():
    with pytest.raises(ValidationError):
        OpenInterest.Params(window_s=-1)
    with pytest.raises(ValidationError):
        OpenInterest.Params(window_s=86_400, step_s=0.1)


@njit
def _drive(n, params, ist, ht, hv, cx, doi, ret, signed, obs):
    total = 0
    for k in range(n):
        cx[2] = 5e5 + 10.0 * (k % 9)
        cx[3] = 28.0 + 0.001 * (k % 5)
        total += oi_kernel(np.int64(k) * S, 1.0, params, ist, ht, hv, cx, True, doi, ret, signed, obs)
    return total


def test_kernel_allocates_nothing_per_update():
    a = example_args(OpenInterest(OpenInterest.Params(window_s=5.0)))
    # [now, dt, params, ist, hist_t, hist_v, ctx, ticked, doi, ret, signed, obs]
    args = (a[2], *a[3:7], *a[8:])
    assert _drive(20, *args) > 0
    assert allocations(_drive, 1, *args) == allocations(_drive, 400, *args)
