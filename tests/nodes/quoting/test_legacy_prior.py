"""quoting.legacy_prior: the injected prior holds its stale drift for 90 s, then the live one (RC5)."""

import math

import pytest
from flowmm.nodes.quoting.legacy_prior import LegacyPrior, prior_hold_s
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from flowmm.testing import NodeHarness

S = 1_000_000_000
T0 = 1_700_000_000 * S
CYCLE = 6 * S


def test_the_stale_bullish_prior_holds_for_the_first_90_s_then_the_live_drift_takes_over():
    """Seed 000: 'prior injected (paper, 3.2h old, conf=1.00)', drift stuck at +3.00 bps from the
    first quotes to 22:08:07, then -3.44e-4. legacy_drift at horizon 300 s: +0.01 bps/s -> +3 bps."""
    h = NodeHarness("quoting.legacy_prior")
    d = NodeHarness("quoting.legacy_drift", {"horizon_s": 300})
    live = -3.44e-4 * 1e4 / 300  # the live estimate the log shows after the flip, bps/s
    adj = []
    for k in range(20):
        out = h.step(T0 + k * CYCLE, mu_live=live)
        assert out.emitted == {"mu_hat", "prior_active", "hold_s"} and out["hold_s"] == 90.0
        adj.append(d.step(T0 + k * CYCLE, mu_hat=out["mu_hat"])["drift_adj_bps"])
        active = k * 6 < 90
        assert out["prior_active"] == float(active)
        assert out["mu_hat"] == pytest.approx(0.01 if active else live)
    assert adj[:15] == pytest.approx([3.0] * 15)  # 0..84 s: 15 cycles at the cap, bullish
    assert adj[15:] == pytest.approx([-3.0] * 5)  # from 90 s: -3.44 clamped to -3.00


def test_hold_scales_with_confidence_and_the_age_discount_is_off_in_the_legacy():
    assert prior_hold_s(90.0, 1.0, 3.2, math.nan) == 90.0  # conf 1.00, the age ignored (RC5)
    assert prior_hold_s(90.0, 0.5, 3.2, math.nan) == 45.0
    # a careful system: a 1-h half-life makes the 3.2-h-old prior worth 2^-3.2 of its confidence
    assert prior_hold_s(90.0, 1.0, 3.2, 1.0) == pytest.approx(90.0 * 2**-3.2)  # 9.8 s
    h = NodeHarness("quoting.legacy_prior", {"age_half_life_h": 1.0})
    assert h.step(T0, mu_live=-0.02)["prior_active"] == 1.0
    out = h.step(T0 + 10 * S, mu_live=-0.02)  # 10 s > 9.8 s
    assert out["prior_active"] == 0.0 and out["mu_hat"] == -0.02


def test_zero_hold_and_missing_live_estimate():
    h = NodeHarness("quoting.legacy_prior", {"hold_s": 0.0})
    out = h.step(T0, mu_live=0.02)
    assert out["prior_active"] == 0.0 and out["mu_hat"] == 0.02
    h = NodeHarness("quoting.legacy_prior")
    assert h.step(T0)["mu_hat"] == 0.01  # no live estimate: the prior still holds
    assert math.isnan(h.step(T0 + 91 * S)["mu_hat"])  # after the hold, none: NaN (symmetric)
    assert math.isnan(h.step(T0 + 97 * S, mu_live=math.inf)["mu_hat"])


@settings(max_examples=60, deadline=None)
@given(
    conf=st.floats(0.0, 1.0),
    age=st.floats(0.0, 48.0),
    hl=st.one_of(st.none(), st.floats(0.1, 100.0)),
    t=st.floats(0.0, 200.0),
)
def test_the_prior_is_in_force_exactly_within_its_effective_hold(conf, age, hl, t):
    h = NodeHarness("quoting.legacy_prior", {"conf": conf, "age_h": age, "age_half_life_h": hl})
    h.step(T0, mu_live=-0.05)
    out = h.step(T0 + int(t * S), mu_live=-0.05)
    hold = out["hold_s"]
    assert 0.0 <= hold <= 90.0 * conf + 1e-12
    assert out["prior_active"] == float(int(t * S) < round(hold * 1e9))


def test_params_are_validated():
    with pytest.raises(ValidationError):
        LegacyPrior.Params(conf=1.5)
    with pytest.raises(ValidationError):
        LegacyPrior.Params(hold=90.0)
