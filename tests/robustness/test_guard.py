"""Corrupt prices and impossible times are rejected before the engine, counted, reported,
and never quoted on; the synthetic stress scenarios produce no rejections."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest

from flowmm.sources.events import Events
from flowmm.sources.guard import REASONS, GuardedSource, InputGuard, guard_source

from .conftest import ROOT, SEC, book, write_events

GLFT = ROOT / "graphs" / "glft_minimal.yaml"
Y2100 = 4102444800 * SEC


def market(n: int = 600, t0: int = 1_700_000_000 * SEC) -> list[dict]:
    """Books every 0.5 s around 30 with trades hitting both sides: GLFT quotes and fills."""
    out = []
    for i in range(n):
        t = t0 + i * SEC // 2
        mid = 30.0 + 0.01 * math.sin(i / 20)
        out.append(book(t, round(mid - 0.005, 4), round(mid + 0.005, 4), 50.0))
        out.append({"t": t + 1, "kind": "trade", "px": mid + 0.02, "sz": 2.0, "side": "B" if i % 2 else "A"})
    return out


def corrupt(events: list[dict]) -> list[dict]:
    """``events`` with corrupt events after some of the trades (in time order)."""
    extra = {
        101: lambda t: book(t, 0.0, 30.0),  # non-positive bid
        201: lambda t: book(t, -5.0, -4.0),
        301: lambda t: book(t, 1e300, 2e300),  # absurd
        401: lambda t: book(t, 30.2, 29.8),  # crossed
        501: lambda t: {"t": t, "kind": "trade", "px": 0.0, "sz": 1.0, "side": "B"},
        601: lambda t: {"t": t, "kind": "bbo", "bid": [30.1, 1, 1], "ask": [30.0, 1, 1]},
        701: lambda t: {"t": t, "kind": "ref_mid", "px": -1.0},
    }
    bad = []
    for i, ev in enumerate(events):
        bad.append(ev)
        if i in extra:
            bad.append(extra[i](ev["t"] + 1))
    bad.append(book(Y2100, 29.99, 30.01))  # one far-future event at the end
    return bad


def test_corrupt_prices_are_rejected_counted_and_never_quoted_on(tmp_path, cli_run):
    data = write_events(tmp_path / "bad.jsonl", corrupt(market()))
    out = tmp_path / "run"
    code, text = cli_run(
        "run", GLFT, "--source", "events", "--data", data, "--out", out, "--no-progress",
        "--quote-every-ms", "1000",
    )  # fmt: skip
    assert code == 0, text
    rej = json.loads((out / "summary.json").read_text())["rejected"]
    assert rej["non_positive"] == 4 and rej["absurd"] == 1 and rej["crossed"] == 2
    assert rej["time_jump"] == 1 and rej["total"] == 8
    assert "rejected input: 8 events" in text and "2 crossed" in text
    trace = pq.read_table(out / "trace.parquet")
    mid = trace.column("source.mid").to_numpy()
    mid = mid[~np.isnan(mid)]
    assert len(mid) and ((mid > 29) & (mid < 31)).all()  # the corrupt books never became the mid
    assert trace.column("t").to_numpy().max() < Y2100  # the far-future event was not followed
    cols = [c for c in trace.column_names if c.startswith("ladder.ladder.") and "_px" in c]
    px = np.concatenate([trace.column(c).to_numpy() for c in cols])
    px = px[~np.isnan(px)]
    assert cols and len(px) and (px > 29).all() and (px < 31).all()
    fills = pq.read_table(out / "fills.parquet").column("px").to_numpy()
    assert len(fills) and (fills > 29).all() and (fills < 31).all()


def test_a_clean_stream_is_untouched():
    ev = Events(market(200))
    guarded = GuardedSource(ev)
    chunks = list(guarded.chunks())
    assert sum(len(c) for c in chunks) == len(ev.table)
    assert guarded.guard.report()["total"] == 0


def test_a_lasting_move_is_accepted_after_reanchor_books():
    evs = [book(SEC + i * SEC, 100.0, 100.1) for i in range(5)]
    evs += [book(10 * SEC + i * SEC, 300.0, 300.1) for i in range(60)]  # a real relisting at 3x
    g = InputGuard(reanchor=50)
    kept = g.screen(Events(evs).table)
    rep = g.report()
    assert rep["absurd"] == 49 and rep["reanchored"] == 1
    assert len(kept) == 5 + 11


def test_live_events_ahead_of_the_wall_clock_are_rejected():
    import time

    now = time.time_ns()
    evs = [book(now - SEC, 100.0, 100.1), book(now, 100.0, 100.1), book(now + 3600 * SEC, 100.0, 100.1)]
    g = InputGuard(max_ahead_s=60.0)
    kept = g.screen(Events(evs).table)
    assert g.report()["future"] == 1 and len(kept) == 2


def test_every_source_the_cli_opens_is_guarded(monkeypatch, tmp_path, cli_run):
    seen = []
    real = guard_source

    def spy(src):
        seen.append(src.name)
        return real(src)

    monkeypatch.setattr("flowmm.sources.guard.guard_source", spy)
    data = write_events(tmp_path / "e.jsonl", market(20))
    assert cli_run("run", GLFT, "--source", "events", "--data", data, "--out", tmp_path / "a")[0] == 0
    assert cli_run("run", GLFT, "--source", "synthetic", "--duration", "20s", "--out", tmp_path / "b")[0] == 0
    assert seen == ["events", "synthetic"]


def _scenario_rejections(name: str, duration: str | None = None) -> dict:
    from flowmm.sources.synthetic import open_synthetic

    src = GuardedSource(open_synthetic(name, seed=0, duration=duration))
    for _ in src.chunks():
        pass
    return src.guard.report()


def test_cascade_produces_no_rejections():
    rep = _scenario_rejections("cascade")
    assert rep["total"] == 0 and rep["reanchored"] == 0, rep


def test_incident_produces_no_rejections():
    from flowmm.sources.synthetic import open_synthetic
    from flowmm.sources.synthetic.scenario import ScenarioError

    try:
        open_synthetic("incident")
    except ScenarioError as exc:  # the scenario lands with issue 17; then this runs
        pytest.skip(f"scenario 'incident' not there yet: {exc.message}")
    rep = _scenario_rejections("incident")
    assert rep["total"] == 0 and rep["reanchored"] == 0, rep


def test_reasons_are_documented_in_the_runbook():
    text = (ROOT / "docs" / "runbook.md").read_text()
    for r in REASONS:
        assert f"`{r}`" in text, r


def test_a_month_long_replay_with_half_day_gaps_stays_valid():
    day = 86400 * SEC
    evs = []
    for i in range(62):  # 31 days, a book every 12 hours (a capture with long quiet gaps)
        t = i * day // 2 + SEC
        evs.append(book(t, 100.0 + i * 0.1, 100.2 + i * 0.1))
    g = InputGuard()
    kept = g.screen(Events(evs).table)
    assert len(kept) == 62 and g.report()["total"] == 0
