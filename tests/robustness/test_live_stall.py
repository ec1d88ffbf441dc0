"""The stall test of tests/sources/test_live.py on a consumer that falls behind, as on a busy
2-core machine: staleness is judged on receive times, so the stall is seen however late the
engine thread reaches it."""

from __future__ import annotations

import time

from flowmm.graph import load_graph
from flowmm.hyperliquid.loopback import Faults, LoopbackServer
from flowmm.sources.live import Live

from ..sources.test_live import _live, _replay_run, _run_until_streamed, _same_trace


def test_a_stall_is_seen_by_a_consumer_that_is_behind(archive_rec, probe, tmp_path, monkeypatch):
    slow = Live._frame

    def behind(self, recv_ns, text, tag):  # the engine thread 2 ms late per frame: a backlog
        time.sleep(0.002)
        return slow(self, recv_ns, text, tag)

    monkeypatch.setattr(Live, "_frame", behind)
    graph = load_graph(probe)
    with LoopbackServer(
        archive_rec, speed=2000.0, start_delay_s=0.05, faults=Faults().at(800, "stall", 1.0)
    ) as srv:
        live = _live(srv, tmp_path, stale_ms={"book": 300.0})
        run = _run_until_streamed(graph, srv, live, tmp_path / "live", grace_s=3.0)
    s, guard = run.summary["live"], run.summary["stale_guard"]
    stale = s["faults"]["stale"].get("book", 0)
    assert stale >= 1, s["faults"]
    assert guard["stale_events"] == stale and guard["resting_at_end"] == 0
    rep = _replay_run(graph, tmp_path / "feed.rec.lz4", tmp_path / "replay")
    _same_trace(tmp_path / "live", tmp_path / "replay")
    assert rep.summary["stale_guard"] == guard
