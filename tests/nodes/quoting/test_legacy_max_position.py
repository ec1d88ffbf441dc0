"""quoting.legacy_max_position: 17.18 at start, 8.57 while the trend agrees, held 60 s after."""

import pytest
from flowmm.nodes.quoting.legacy_max_position import LegacyMaxPosition
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from flowmm.testing import NodeHarness

S = 1_000_000_000
T0 = 1_700_000_000 * S


def test_17_18_reduced_to_8_57_in_a_trend_and_back_after_the_hold():
    h = NodeHarness("quoting.legacy_max_position")
    out = h.step(T0)  # the start line: no trend reading yet
    assert out["q_max"] == 17.18 and out["reduced"] == 0.0
    assert h.step(T0 + 6 * S, agreement=1 / 3)["q_max"] == 17.18
    out = h.step(T0 + 12 * S, agreement=1.0)  # every logged trend line: agreement 1.00
    assert out["q_max"] == pytest.approx(8.57) and out["reduced"] == 1.0
    assert h.step(T0 + 18 * S, agreement=2 / 3)["q_max"] == pytest.approx(8.57)  # 2 of 3 agree
    # the agreement lapses at 24 s; held until 60 s after the last trigger (18 s): 78 s
    assert h.step(T0 + 24 * S, agreement=1 / 3)["reduced"] == 1.0
    assert h.step(T0 + 78 * S, clock=0.0)["reduced"] == 1.0
    out = h.step(T0 + 79 * S, clock=0.0)
    assert out["q_max"] == 17.18 and out["reduced"] == 0.0
    # the gate at 50 %: ~4.3 contracts reduced (RC2), 8.6 not
    assert 0.5 * 8.57 == pytest.approx(4.285)


def test_params_and_edges():
    h = NodeHarness("quoting.legacy_max_position", {"hold_s": 0.0, "agreement_min": 1.0})
    assert h.step(T0, agreement=2 / 3)["reduced"] == 0.0
    assert h.step(T0 + S, agreement=1.0)["reduced"] == 1.0
    assert h.step(T0 + 2 * S, agreement=float("nan"))["reduced"] == 0.0
    with pytest.raises(ValidationError):
        LegacyMaxPosition.Params(reduced_fraction=0.0)
    with pytest.raises(ValidationError):
        LegacyMaxPosition.Params(agreement_min=1.5)


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(1, 40), st.one_of(st.none(), st.sampled_from([0.0, 1 / 3, 2 / 3, 1.0]))),
        min_size=1,
        max_size=40,
    )
)
def test_matches_a_direct_reading_of_the_rule(steps):
    """Reduced exactly when some run at most hold_s ago (itself included) saw agreement >= 0.6."""
    h = NodeHarness("quoting.legacy_max_position")
    t, triggers, last_a = T0, [], None
    for gap, a in steps:
        t += gap * S
        out = h.step(t, clock=0.0) if a is None else h.step(t, agreement=a, clock=0.0)
        last_a = a if a is not None else last_a  # an input that did not tick keeps its value
        if last_a is not None and last_a >= 0.6:
            triggers.append(t)
        want = any(t - x <= 60 * S for x in triggers)
        assert out["reduced"] == float(want)
        assert out["q_max"] == pytest.approx(8.57 if want else 17.18)
