"""Fuzz: any event file or Hyperliquid recording ends in a clean run or a located error, never
a traceback, a hang, or a quote or fill at a non-finite or non-positive price.

Bounded examples, no deadline (a loaded machine is slow, not wrong), derandomised under CI
(tests/conftest.py); a per-example alarm turns a hang into a failure."""

from __future__ import annotations

import json
import math
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flowmm
from flowmm.errors import FlowmmError
from flowmm.execution.paper import paper_broker_for
from flowmm.sources.events import EventFile
from flowmm.sources.guard import guard_source
from flowmm.sources.replay import Replay

from .conftest import ROOT

GRAPH = ROOT / "graphs" / "glft_minimal.yaml"
T0 = 1_700_000_000_000_000_000
PER_EXAMPLE_S = 60  # far above a normal example (< 1 s): only a hang reaches it
FUZZ = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


class Hang(Exception):
    pass


@contextmanager
def alarm(seconds: int):
    def fire(signum, frame):
        raise Hang(f"an example ran longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def graph():
    return flowmm.load_graph(GRAPH, quote_every_ms=500)


WEIRD = st.sampled_from([0.0, -1.0, -0.0, 1e300, -1e300, float("inf"), float("-inf"), float("nan"), 1e-300])
PRICE = st.one_of(st.floats(29.0, 31.0), WEIRD, st.floats(allow_nan=True, allow_infinity=True))
SIZE = st.one_of(st.floats(0.0, 100.0), WEIRD)
ANY = st.one_of(PRICE, st.none(), st.text(max_size=3), st.booleans(), st.integers(-(2**70), 2**70))
DT = st.one_of(st.integers(0, 2_000_000_000), st.sampled_from([10**18, 2**62, 86_401 * 10**9]))


def _levels(px):
    return st.lists(st.tuples(px, SIZE, st.integers(0, 5)).map(list), max_size=4)


EVENT = st.one_of(
    st.fixed_dictionaries({"kind": st.just("book"), "bids": _levels(PRICE), "asks": _levels(PRICE)}),
    st.fixed_dictionaries({"kind": st.just("bbo"), "bid": st.tuples(PRICE, SIZE, st.just(1)).map(list),
                           "ask": st.tuples(PRICE, SIZE, st.just(1)).map(list)}),
    st.fixed_dictionaries({"kind": st.just("trade"), "px": PRICE, "sz": SIZE, "side": st.sampled_from("BA")}),
    st.fixed_dictionaries({"kind": st.just("ctx"), "funding": ANY, "mark": ANY, "oracle": ANY}),
    st.fixed_dictionaries({"kind": st.sampled_from(["ref_mid", "spot_mid"]), "px": PRICE}),
    st.dictionaries(st.sampled_from(["kind", "px", "t", "bids", "sz"]), ANY, max_size=4),
)  # fmt: skip


def _good_book(t: int, mid: float) -> dict:
    return {"t": t, "kind": "book", "bids": [[mid - 0.01, 5.0, 1]], "asks": [[mid + 0.01, 5.0, 1]]}


def _check_run(run) -> None:
    trace = run.trace
    for c in trace.column_names:
        if c.startswith("ladder.ladder.") and "_px" in c:
            px = trace.column(c).to_numpy()
            px = px[~np.isnan(px)]
            assert np.isfinite(px).all() and (px > 0).all(), (c, px)
    if run.fills is not None and run.fills.num_rows:
        px = run.fills.column("px").to_numpy()
        assert np.isfinite(px).all() and (px > 0).all(), px


def _run(graph, source_of) -> None:
    with alarm(PER_EXAMPLE_S):
        try:
            src = source_of()
            src = guard_source(src)
            run = graph.run(src, broker=paper_broker_for(graph.plan, src), backend="python")
        except FlowmmError as exc:  # a located error: a file, or a node/port
            assert exc.location.file or exc.location.node, exc.format()
            return
    _check_run(run)
    assert run.summary["cycles"] < 10_000_000


@FUZZ
@given(events=st.lists(st.tuples(DT, EVENT), min_size=1, max_size=30), raw=st.booleans())
def test_any_event_file_is_a_clean_run_or_a_located_error(graph, events, raw):
    lines, t = [], T0
    lines.append(json.dumps(_good_book(t, 30.0)))
    for dt, ev in events:
        t += dt
        lines.append(json.dumps({"t": t, **ev} if "t" not in ev else ev, allow_nan=True))
        lines.append(json.dumps(_good_book(t, 30.0)))
    text = "\n".join(lines) + "\n"
    if raw:  # some bytes damaged too
        text = text.replace("]", "", 1)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "ev.jsonl"
        path.write_text(text)
        _run(graph, lambda: EventFile(path))


def _hl_levels(px):
    level = {"px": px, "sz": st.one_of(SIZE.map(str), ANY), "n": st.integers(0, 3)}
    return st.lists(st.fixed_dictionaries(level), max_size=3)


HL_PRICE = st.one_of(PRICE.map(lambda x: repr(x) if not math.isnan(x) else "NaN"), ANY)
FRAME = st.one_of(
    st.fixed_dictionaries({"channel": st.just("l2Book"), "data": st.fixed_dictionaries(
        {"coin": st.just("BTC"), "time": st.one_of(st.integers(0, 2**66), ANY),
         "levels": st.tuples(_hl_levels(HL_PRICE), _hl_levels(HL_PRICE)).map(list)})}),
    st.fixed_dictionaries({"channel": st.just("trades"), "data": st.lists(st.fixed_dictionaries(
        {"coin": st.just("BTC"), "side": st.sampled_from(["B", "A", "X"]), "px": HL_PRICE, "sz": HL_PRICE,
         "time": st.one_of(st.integers(0, 2**66), ANY), "tid": st.integers(0, 2**70),
         "hash": st.just("0x0")}),
        max_size=3)}),
    st.fixed_dictionaries({"channel": st.just("bbo"), "data": st.fixed_dictionaries(
        {"coin": st.just("BTC"), "time": st.integers(0, 2**66),
         "bbo": st.tuples(*[st.one_of(st.none(), st.fixed_dictionaries(
             {"px": HL_PRICE, "sz": HL_PRICE, "n": st.integers(0, 3)}))] * 2).map(list)})}),
    st.dictionaries(st.sampled_from(["channel", "data"]), ANY, max_size=2),
)  # fmt: skip


def _hl_book(ms: int) -> dict:
    lv = [[{"px": "29.99", "sz": "5", "n": 1}], [{"px": "30.01", "sz": "5", "n": 1}]]
    return {"channel": "l2Book", "data": {"coin": "BTC", "time": ms, "levels": lv}}


@FUZZ
@given(frames=st.lists(st.tuples(st.integers(0, 3000), FRAME), min_size=1, max_size=25))
def test_any_hyperliquid_recording_is_a_clean_run_or_a_located_error(graph, frames):
    ms = T0 // 1_000_000
    lines = [f"{ms * 1_000_000} {json.dumps(_hl_book(ms))}"]
    for dt, frame in frames:
        ms += dt
        lines.append(f"{ms * 1_000_000} {json.dumps(frame, allow_nan=True)}")
        lines.append(f"{ms * 1_000_000 + 1} {json.dumps(_hl_book(ms))}")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "feed.rec"
        path.write_text("\n".join(lines) + "\n")
        _run(graph, lambda: Replay(path, cache=False))
