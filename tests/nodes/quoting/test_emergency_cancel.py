"""quoting.emergency_cancel: burst rule by hand, properties, no allocation, and the interrupt
path through a real graph with the paper broker (same event step as the n-th fill)."""

import numpy as np
import pytest
from flowmm.nodes.quoting.emergency_cancel import EmergencyCancel, emergency_cancel_kernel
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from pydantic import ValidationError

import flowmm
from flowmm.core.ports import FI_SIDE, FI_SZ
from flowmm.execution.paper import PaperBroker
from flowmm.sources.events import Events
from flowmm.testing import NodeHarness, allocations, example_args

S = 1_000_000_000
MS = 1_000_000
T0 = 1_700_000_000 * S


def fill(t, side, sz=0.5, px=28.0, oid=1):
    return (t, px, sz, side, oid, 0.0, 1.0, 28.0)


# -- the rule by hand -----------------------------------------------------------------------
def test_fourth_bid_fill_within_two_seconds_cancels_the_bids_in_that_step():
    h = NodeHarness("quoting.emergency_cancel")
    for k in range(3):
        out = h.step(T0 + k * 500 * MS, fills=[fill(T0 + k * 500 * MS, +1)])
        assert out.emitted == set()
    out = h.step(T0 + 1500 * MS, fills=[fill(T0 + 1500 * MS, +1)])
    assert out.emitted == {"cancel", "n_fired"}
    assert out["cancel"] == 1.0 and out["n_fired"] == 1.0  # our bids were swept: cancel bids


def test_ask_burst_cancels_asks_and_one_sweep_in_one_step_fires():
    h = NodeHarness("quoting.emergency_cancel")
    t = T0 + 7 * S
    out = h.step(t, fills=[fill(t, -1, px=28.0 + 0.001 * k, oid=k) for k in range(4)])
    assert out.emitted == {"cancel", "n_fired"} and out["cancel"] == -1.0


def test_window_is_inclusive_and_slow_fills_do_not_fire():
    h = NodeHarness("quoting.emergency_cancel", {"n_fills": 4, "window_s": 2.0})
    times = [T0, T0 + 700 * MS, T0 + 1400 * MS, T0 + 2000 * MS]  # span exactly 2 s
    out = h.step(times[-1], fills=[fill(t, 1) for t in times])
    assert out["cancel"] == 1.0
    h = NodeHarness("quoting.emergency_cancel", {"n_fills": 4, "window_s": 2.0})
    times = [T0, T0 + 700 * MS, T0 + 1400 * MS, T0 + 2000 * MS + 1]  # 1 ns too slow
    assert h.step(times[-1], fills=[fill(t, 1) for t in times]).emitted == set()
    # the next fill 0.5 s later: the 4 newest span 1.1 s -> fires
    assert h.step(T0 + 2500 * MS, fills=[fill(T0 + 2500 * MS, 1)])["cancel"] == 1.0


def test_mixed_sides_do_not_add_up():
    h = NodeHarness("quoting.emergency_cancel")
    sides = [1, -1, 1, -1, 1, -1]
    out = h.step(T0 + S, fills=[fill(T0 + k * 100 * MS, s) for k, s in enumerate(sides)])
    assert out.emitted == set()


def test_both_sides_bursting_in_one_step_cancel_both():
    h = NodeHarness("quoting.emergency_cancel")
    recs = [fill(T0 + k * MS, 1) for k in range(4)] + [fill(T0 + k * MS, -1) for k in range(4)]
    out = h.step(T0 + 10 * MS, fills=recs)
    assert out["cancel"] == 0.0 and out["n_fired"] == 2.0


def test_rearms_after_firing_needs_n_fresh_fills():
    h = NodeHarness("quoting.emergency_cancel")
    assert h.step(T0, fills=[fill(T0 + k * MS, 1) for k in range(4)])["n_fired"] == 1.0
    for k in range(3):  # the sweep goes on: 3 more fills do not fire again
        t = T0 + (100 + k) * MS
        assert h.step(t, fills=[fill(t, 1)]).emitted == set()
    t = T0 + 200 * MS
    out = h.step(t, fills=[fill(t, 1)])  # the 4th fresh one does
    assert out["cancel"] == 1.0 and out["n_fired"] == 2.0


def test_malformed_fill_records_are_ignored():
    h = NodeHarness("quoting.emergency_cancel")
    bad = [fill(T0, float("nan")), fill(T0, 1, sz=0.0), fill(T0, 1, sz=float("nan")), fill(T0, 0.0)]
    good = [fill(T0 + k * MS, 1) for k in range(3)]
    assert h.step(T0 + 5 * MS, fills=bad + good).emitted == set()
    assert h.step(T0 + 6 * MS, fills=[fill(T0 + 6 * MS, 1)])["cancel"] == 1.0


def test_unwired_fills_never_fire_and_outputs_stay_nan():
    h = NodeHarness("quoting.emergency_cancel")
    out = h.step(T0)
    assert out.emitted == set() and np.isnan(out["cancel"]) and np.isnan(out["n_fired"])


def test_params_are_validated():
    with pytest.raises(ValidationError):
        EmergencyCancel.Params(n_fills=1)
    with pytest.raises(ValidationError):
        EmergencyCancel.Params(window_s=0.0)
    with pytest.raises(ValidationError):
        EmergencyCancel.Params(n_fill=4)
    assert EmergencyCancel.Params().n_fills == 4 and EmergencyCancel.Params().window_s == 2.0


# -- property: the node equals a direct scan, whatever the step boundaries ----------------------
def ref_firings(fills, n, window_ns):
    """Indices of the fills that fire, by a direct scan per side (re-arming after each)."""
    fired = []
    held = {1: [], -1: []}
    for i, (t, s) in enumerate(fills):
        held[s].append(t)
        if len(held[s]) >= n and t - held[s][-n] <= window_ns:
            fired.append(i)
            held[s] = []
    return fired


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.integers(0, 1500), min_size=1, max_size=60),
    sides=st.lists(st.sampled_from([1, -1]), min_size=60, max_size=60),
    cuts=st.lists(st.booleans(), min_size=60, max_size=60),
    n=st.integers(2, 6),
)
def test_matches_a_direct_scan_under_any_schedule(gaps, sides, cuts, n):
    times = [int(t) for t in T0 + np.cumsum(np.array(gaps, np.int64) * MS)]
    fills = list(zip(times, sides[: len(times)]))
    fired = set(ref_firings(fills, n, 2 * S))
    h = NodeHarness("quoting.emergency_cancel", {"n_fills": n, "window_s": 2.0})
    batch: list[int] = []
    for i, (t, _) in enumerate(fills):
        batch.append(i)
        if not (cuts[i] or i == len(fills) - 1):
            continue
        out = h.step(t, fills=[fill(fills[j][0], fills[j][1]) for j in batch])
        sides_fired = {fills[j][1] for j in batch if j in fired}
        if not sides_fired:
            assert "cancel" not in out.emitted
        else:
            expect = 0.0 if len(sides_fired) == 2 else float(sides_fired.pop())
            assert "cancel" in out.emitted and out["cancel"] == expect
        batch = []
    assert np.nan_to_num(h.outputs["n_fired"][0]) == len(fired)


# -- no allocation ------------------------------------------------------------------------------
@njit
def _drive(n, params, ring, cnt, fl_t, fl_r, cancel, n_fired):
    total = 0
    cap = fl_t.shape[0]
    for k in range(n):
        row = k % cap
        fl_t[row] = np.int64(k) * 300_000_000
        fl_r[row, FI_SIDE] = 1.0 if (k // 5) % 2 == 0 else -1.0
        fl_r[row, FI_SZ] = 0.5
        total += emergency_cancel_kernel(
            np.int64(k) * 300_000_000, 0.3, params, ring, cnt, fl_t, fl_r, k, k + 1, cancel, n_fired
        )
    return total


def test_kernel_allocates_nothing_per_fill():
    a = example_args(EmergencyCancel(), capacity=16)
    # [now, dt, params, ring, cnt, fl_t, fl_r, start, end, cancel, n_fired]
    args = (a[2], a[3], a[4], a[5], a[6], a[9], a[10])
    assert _drive(200, *args) > 0
    assert allocations(_drive, 1, *args) == allocations(_drive, 500, *args)


# -- through a real graph: the paper broker, the engine's interrupt path ----------------------
def burst_graph(n_fills=4):
    return flowmm.load_graph(
        {
            "name": "burst",
            "instrument": {"coin": "HYPE", "tick_size": 0.001, "sz_decimals": 2},
            "clock": {"quote_every_ms": 6000},
            "execution": {"ladder": "quote.ladder", "cancel": "emergency.cancel"},
            "trace": ["exec.position", "emergency.n_fired"],
            "nodes": {
                "quote": {
                    "type": "quoting.minimal",
                    "in": {"mid": "source.mid"},
                    "params": {"half_spread_bps": 1.0, "level_spacing_bps": 1.0, "levels": 6, "size": 1.0},
                },
                "emergency": {
                    "type": "quoting.emergency_cancel",
                    "in": {"fills": "exec.fills"},
                    "params": {"n_fills": n_fills, "window_s": 2.0},
                },
            },
        }
    )


def sweep_events(t0):
    """A book around 28.000 at t0 (a cycle boundary: the ladder is placed then), then a seller
    walking down our bids: one print per 0.4 s, each just under the next of our levels."""
    book = {
        "t": t0,
        "kind": "book",
        "bids": [[27.999, 50.0, 3], [27.950, 50.0, 3]],
        "asks": [[28.001, 50.0, 3], [28.050, 50.0, 3]],
    }
    ev = [book]
    # our bids (1 bp touch, 1 bp apart, rounded down): 27.997 27.994 27.991 27.988 27.985 27.983
    for k, px in enumerate([27.996, 27.993, 27.990, 27.987, 27.984, 27.982]):
        ev.append({"t": t0 + S + k * 400 * MS, "kind": "trade", "px": px, "sz": 5.0, "side": "A", "tid": k})
    return ev


def test_burst_cancels_the_bids_in_the_event_step_of_the_fourth_fill():
    t0 = 1_700_000_004 * S  # a multiple of 6 s: the cycle runs right after the book
    assert t0 % (6 * S) == 0
    run = burst_graph().run(Events(sweep_events(t0), end_time=t0 + 12 * S), broker=PaperBroker())
    f = run.fills.to_pydict()
    bid_fills = [t for t, s in zip(f["t"], f["side"]) if s == 1.0]
    assert len(bid_fills) >= 4
    fourth = bid_fills[3]
    assert fourth == t0 + S + 3 * 400 * MS
    # exactly one interrupt, +1 (our bids), at the 4th fill's event time: the same event step,
    # 4.8 s before the next quote cycle (t0 + 6 s)
    assert run.interrupts == [(fourth, 1.0)]
    assert fourth < t0 + 6 * S
    cycles = run.trace.column("t").to_pylist()
    assert not any(t0 < c <= fourth for c in cycles)  # no quote cycle ran in between
    # the cancel (30 ms) arrived before the next print at +0.4 s: the 5th and 6th bids that the
    # seller walked through did not fill
    assert len(bid_fills) == 4 and run.summary["final_q"] == pytest.approx(4.0)


def test_without_a_burst_the_sweep_fills_the_whole_bid_side():
    """Control: with a threshold of 7 nothing fires and all 6 bids fill by the 6th print."""
    t0 = 1_700_000_004 * S
    run = burst_graph(n_fills=7).run(Events(sweep_events(t0), end_time=t0 + 12 * S), broker=PaperBroker())
    assert run.interrupts == []
    assert sum(s == 1.0 for s in run.fills.to_pydict()["side"]) == 6
