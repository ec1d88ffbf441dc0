"""The event stream: determinism, ordering, same-timestamp groups, payload layouts, cadence."""

from __future__ import annotations

import numpy as np
import pytest

from flowmm.core import events as E
from flowmm.sources.synthetic import Synthetic, load_scenario

S = 10**9


@pytest.fixture(scope="module")
def run(tape):
    src = Synthetic("trend_down", seed=7, duration="6m")
    ev = src.events()
    return src, ev, tape.decode(ev)


def test_same_seed_same_stream_different_seed_different_stream():
    a = Synthetic("trend_down", seed=3, duration="2m").events()
    b = Synthetic(load_scenario("trend_down"), seed=3, duration=120).events()
    c = Synthetic("trend_down", seed=4, duration="2m").events()
    for x in ("t", "kind", "off", "payload"):
        assert np.array_equal(getattr(a, x), getattr(b, x))
    assert len(a) != len(c) or not np.array_equal(a.payload, c.payload)


def test_chunks_are_time_ordered_and_never_split_a_timestamp(run):
    src, ev, _ = run
    chunks = list(src.chunks())
    assert len(chunks) == 6  # one per simulated minute
    assert sum(len(c) for c in chunks) == len(ev)
    assert np.all(np.diff(ev.t) >= 0)
    for a, b in zip(chunks, chunks[1:]):
        assert a.t[-1] < b.t[0]
        assert a.off[0] == 0 and a.off[-1] == len(a.payload)
    assert ev.t[0] == src.start_ns and ev.t[-1] < src.end_time == src.start_ns + 360 * S


def test_every_event_time_is_a_block_boundary_and_groups_share_it(run):
    src, ev, d = run
    assert np.all((ev.t - src.start_ns) % (S // 10) == 0)  # 100 ms blocks
    # a sweep's prints and the book after it share one timestamp (one batch for the engine)
    t_sweeps = np.unique(d["trade_t"])
    kinds_at = {t: ev.kind[ev.t == t] for t in t_sweeps[:200]}
    for kinds in kinds_at.values():
        trades = np.nonzero(kinds == E.TRADE)[0]
        if len(trades) >= 3 and E.BOOK in kinds:
            assert np.nonzero(kinds == E.BOOK)[0][0] > trades[-1]  # the book comes after the prints


def test_a_sweep_walks_three_or_more_levels_at_one_timestamp_with_the_book_after(run, tape):
    src, ev, d = run
    o = tape.orders(d)
    assert len(o.sweep_t) > 0 and np.all(o.sweep_levels >= 3)
    for t, side in zip(o.sweep_t, o.sweep_side):
        assert E.BOOK in ev.kind[ev.t == t]
        bt, book_b, book_a = d["book_t"], d["bids"], d["asks"]
        i = np.nonzero(bt == t)[0][0]
        px = d["trade"][(d["trade_t"] == t) & (d["trade"][:, 2] == side), 0]
        if side < 0:  # sellers walked the bids: the new best bid is at or below the last print
            assert book_b[i, 0, 0] <= px.min() + 1e-9
        else:
            assert book_a[i, 0, 0] >= px.max() - 1e-9


def test_payloads_follow_the_event_layouts(run):
    src, ev, d = run
    ins = src.scenario.instrument
    tick, lot = ins.tick, 10.0**-ins.size_decimals
    assert set(np.unique(ev.kind)) == {E.BOOK, E.BBO, E.TRADE, E.CTX, E.REF_MID, E.SPOT_MID, E.TRUTH, E.TIMER}
    assert d["timer"].tolist() == [[1.0]] and d["timer_t"][0] == src.start_ns
    b, a = d["bids"], d["asks"]
    nb = (~np.isnan(b[:, :, 0])).sum(1)
    na = (~np.isnan(a[:, :, 0])).sum(1)
    assert nb.min() >= 5 and na.min() >= 5 and nb.max() == 20
    for side, sgn in ((b, -1), (a, 1)):
        px = side[:, :, 0]
        steps = np.diff(px, axis=1)
        assert np.all(sgn * steps[~np.isnan(steps)] > 0)  # bids descend, asks ascend
        ticks = px / tick
        assert np.nanmax(np.abs(ticks - np.rint(ticks))) < 1e-6
        sz = side[:, :, 1]
        assert np.nanmin(sz) >= lot - 1e-12 and np.nanmax(np.abs(sz / lot - np.rint(sz / lot))) < 1e-6
        assert np.all(side[:, :, 2][~np.isnan(px)] >= 1)
    assert np.all(b[:, 0, 0] < a[:, 0, 0])
    bbo = d["bbo"]
    assert np.all(bbo[:, 0] < bbo[:, 3])
    assert np.all(np.any(np.diff(bbo, axis=0) != 0, axis=1) | (np.diff(d["bbo_t"]) == 0))  # sent when changed
    tr = d["trade"]
    assert set(np.unique(tr[:, 2])) == {-1.0, 1.0}
    assert np.array_equal(tr[:, 3], np.arange(len(tr)))  # tids count the prints
    assert np.all(np.abs(tr[:, 0] / tick - np.rint(tr[:, 0] / tick)) < 1e-6) and np.all(
        tr[:, 1] >= lot - 1e-12
    )
    c = d["ctx"]
    assert np.all(c[:, 2] > 0) and np.allclose(c[:, 5], c[:, 3] / c[:, 4] - 1)
    assert set(np.unique(d["truth"][:, 2])) <= {0.0, 1.0, 2.0, 3.0, 4.0}


def test_feed_cadence(run):
    src, ev, d = run
    assert np.all(np.diff(d["ref_t"]) == S // 2) and np.all(np.diff(d["spot_t"]) == S // 2)
    assert np.all(np.diff(d["ctx_t"]) == S) and np.all(np.diff(d["truth_t"]) == S)
    bt = d["book_t"]
    on_grid = (bt - src.start_ns) % (S // 2) == 0
    assert set((bt[on_grid] - src.start_ns) // (S // 2)) == set(range(720))  # every 0.5 s
    assert np.all(np.isin(bt[~on_grid], d["trade_t"]))  # the others follow a sweep
    # every 5 s a fully fresh 20-level book; between, fresh levels 1-5 over the last 20-level book
    full = (bt - src.start_ns) % (5 * S) == 0
    assert np.all((~np.isnan(d["bids"][full, :, 0])).sum(1) == 20)


def test_provides_and_end_time():
    src = Synthetic("calm", seed=0, duration=90)
    assert src.name == "synthetic"
    assert src.provides() >= {"source.book", "source.bbo", "source.mid", "source.trades", "source.ctx",
                              "source.ref_mid", "source.spot_mid", "source.truth", "source.timer",
                              "source.clock"}  # fmt: skip
    assert "source.book_agg" not in src.provides()
    assert src.end_time - src.start_ns == 90 * S
    assert Synthetic("calm").duration_s == 20 * 60  # None: the scenario's own length


def test_mid_is_a_half_tick_and_spreads_have_its_parity(run):
    _, _, d = run
    bbo = d["bbo"]
    tick = 0.001
    spread = np.rint((bbo[:, 3] - bbo[:, 0]) / tick).astype(int)
    mid2 = np.rint((bbo[:, 3] + bbo[:, 0]) / tick).astype(int)  # the mid in half ticks
    assert np.all((mid2 - spread) % 2 == 0)
    assert 0.3 < np.mean(spread % 2 == 1) < 0.9


def test_funding_settles_hourly_to_the_hours_average_prediction(tape):
    src = Synthetic("calm", seed=5, duration="56m")  # starts 22:06 UTC: one settlement, at 23:00
    d = tape.decode(src.events())
    ct, c = d["ctx_t"], d["ctx"]
    settle = (src.start_ns // (3600 * S) + 1) * 3600 * S
    before, after = c[ct < settle, 0], c[ct >= settle, 0]
    assert len(np.unique(before)) == 1 and len(np.unique(after)) == 1 and before[0] != after[0]
    hour_avg = c[ct < settle, 1].mean()  # predictions sampled every second since the start
    assert after[0] == pytest.approx(hour_avg, abs=0.02 * src.scenario.funding.sd)
