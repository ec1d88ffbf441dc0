"""The live source against the loopback server: parity with the replay of its own recording,
faults (drop, garbage, stall, duplicate, reorder, a server gone), staleness, shutdown."""

from __future__ import annotations

import gzip
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from flowmm.cli import main
from flowmm.core import events as E
from flowmm.errors import SourceError, UsageError
from flowmm.execution.paper import paper_broker_for
from flowmm.graph import load_graph
from flowmm.hyperliquid.loopback import Faults, LoopbackServer
from flowmm.sources import Events
from flowmm.sources.live import Live, LiveConfig, StaleGuard, guard_for, resolve_network
from flowmm.sources.live import staleness as ST
from flowmm.sources.replay import Replay

CAPTURE = "hyperliquid/hftbacktest_ws_capture/btcusd_20250126.gz"


def _same_trace(a: Path, b: Path) -> None:
    ta, tb = pq.read_table(a / "trace.parquet"), pq.read_table(b / "trace.parquet")
    assert ta.column_names == tb.column_names and ta.num_rows == tb.num_rows > 0
    for name in ta.column_names:
        np.testing.assert_array_equal(ta[name].to_numpy(), tb[name].to_numpy(), err_msg=name)


def _live(srv: LoopbackServer, tmp_path: Path, **cfg) -> Live:
    cfg = {"url": srv.url, "coin": "BTC", "stale_ms": {"book": 400.0}, "backoff_s": 0.02, **cfg}
    return Live(LiveConfig(**cfg), record=tmp_path / "feed.rec.lz4")


def _run_until_streamed(graph, srv: LoopbackServer, live: Live, out: Path, grace_s: float = 0.3):
    """Run ``live`` until the server has streamed everything (then ``grace_s`` more)."""

    def watch():
        srv.finished.wait(60)
        time.sleep(grace_s)
        live.stop("test")

    threading.Thread(target=watch, daemon=True).start()
    broker = guard_for(paper_broker_for(graph.plan, live), live)
    return graph.run(live, broker=broker, out_dir=out)


def _replay_run(graph, rec: Path, out: Path):
    rep = Replay(rec, cache=False)
    return graph.run(rep, broker=guard_for(paper_broker_for(graph.plan, rep), rep), out_dir=out)


# -- parity ---------------------------------------------------------------------------------------


def test_live_run_equals_the_replay_of_its_recording_cli(archive_rec, probe, tmp_path, capsys):
    with LoopbackServer(archive_rec, speed=None, start_delay_s=0.05) as srv:
        args = ["run", str(probe), "--source", "live", "--coin", "BTC", "--url", srv.url,
                "--max-frames", "3000", "--stale-ms", "5000", "--duration", "120s",
                "--out", str(tmp_path / "live"), "--no-progress"]  # fmt: skip
        assert main(args) == 0
    rec = tmp_path / "live" / "feed.rec.lz4"
    assert main(["run", str(probe), "--source", "replay", "--data", str(rec), "--no-cache",
                 "--out", str(tmp_path / "replay"), "--no-progress"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "3,000 frames, stop: max_frames" in out
    _same_trace(tmp_path / "live", tmp_path / "replay")
    live = json.loads((tmp_path / "live" / "summary.json").read_text())
    replay = json.loads((tmp_path / "replay" / "summary.json").read_text())
    assert live["cycles"] > 1500 and live["events"] == replay["events"] >= 3000
    for key in ("fills_buys", "fills_sells", "actions_sent", "total_pnl", "stale_guard"):
        assert live[key] == replay[key], key
    assert live["stale_guard"]["resting_at_end"] == 0 and live["actions_sent"] > 0
    assert live["live"]["threads_left"] == [] and live["live"]["faults"]["stale"] == {}
    assert replay["replay"]["session"]["source"] == "live" and replay["replay"]["coin"] == "BTC"
    assert (tmp_path / "live" / "fills.parquet").read_bytes() == (
        tmp_path / "replay" / "fills.parquet"
    ).read_bytes()


def test_fast_book_flag_opens_the_fast_connection(archive_rec, probe, tmp_path):
    with LoopbackServer(archive_rec, speed=None, start_delay_s=0.05) as srv:
        args = ["run", str(probe), "--source", "live", "--coin", "BTC", "--url", srv.url, "--fast-book",
                "--max-frames", "200", "--out", str(tmp_path / "live"), "--no-progress"]  # fmt: skip
        assert main(args) == 0
    live = json.loads((tmp_path / "live" / "summary.json").read_text())["live"]
    assert live["connections"]["fast"]["connects"] == 1 and live["fault"] is None


def test_trades_and_interrupts_survive_the_round_trip(shared_data, root, tmp_path):
    """The real capture (books and trades, a 7-trade sweep): same trace and burst interrupts."""
    graph = load_graph(root / "graphs" / "demo.yaml")
    with LoopbackServer(shared_data(CAPTURE), speed=None, start_delay_s=0.05) as srv:
        live = _live(srv, tmp_path, stale_ms={})
        run = _run_until_streamed(graph, srv, live, tmp_path / "live")
    rep = graph.run(Replay(tmp_path / "feed.rec.lz4", cache=False), out_dir=tmp_path / "replay")
    _same_trace(tmp_path / "live", tmp_path / "replay")
    assert run.interrupts == rep.interrupts and len(run.interrupts) >= 1
    with gzip.open(shared_data(CAPTURE), "rt") as f:
        frames = [json.loads(line.split(" ", 1)[1]) for line in f]
    books = {json.dumps(m["data"], sort_keys=True) for m in frames if m["channel"] == "l2Book"}
    tids = {t["tid"] for m in frames if m["channel"] == "trades" for t in m["data"]}
    first_batch = {t["tid"] for t in next(m for m in frames if m["channel"] == "trades")["data"]}
    s = run.summary["live"]
    parse = s["parse"]
    # an exact repeat of a book is dropped; the trades ack is followed by the server's recent-trades
    # batch (the capture's first trades frame), which is history, not flow
    assert s["faults"]["duplicate_frames"] == 46 - len(books) == 1
    assert parse["channels"]["trades"] == 9 + 1 and parse["snapshot_trades"] == len(first_batch) == 30
    assert parse["events"]["trade"] == len(tids - first_batch) and parse["events"]["book"] == len(books) + 1


# -- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault, check",
    [
        (
            "drop@400",
            lambda f, c: f["reconnects"] == 1 and f["disconnects"] == 1 and c["main"]["connects"] == 2,
        ),
        ("garbage@400", lambda f, c: f["garbage"] == 1 and f["malformed"] == 1),
        ("duplicate@400", lambda f, c: f["duplicate_frames"] == 1),
        ("reorder@400", lambda f, c: f["out_of_order"] == 1),
    ],
)
def test_faults_are_survived_counted_and_replayed(fault, check, archive_rec, probe, tmp_path):
    graph = load_graph(probe)
    kind, at, arg = Faults.parse(fault)
    with LoopbackServer(
        archive_rec, speed=2000.0, start_delay_s=0.05, faults=Faults().at(at, kind, arg)
    ) as srv:
        live = _live(srv, tmp_path, stale_ms={})
        run = _run_until_streamed(graph, srv, live, tmp_path / "live")
        assert srv.faults.done[kind] == 1
    s = run.summary["live"]
    assert check(s["faults"], s["connections"]), s["faults"]
    assert s["stop"] == "test" and s["fault"] is None and s["threads_left"] == []
    assert run.summary["stale_guard"]["resting_at_end"] == 0
    if kind == "drop":  # resynced from a REST snapshot after the reconnect
        assert s["rest"] == 4 and srv.stats["info_l2Book"] == 2
    _replay_run(graph, tmp_path / "feed.rec.lz4", tmp_path / "replay")
    _same_trace(tmp_path / "live", tmp_path / "replay")


def test_a_stall_longer_than_the_threshold_cancels_and_withdraws(archive_rec, probe, tmp_path):
    graph = load_graph(probe)
    with LoopbackServer(
        archive_rec, speed=2000.0, start_delay_s=0.05, faults=Faults().at(800, "stall", 1.0)
    ) as srv:
        live = _live(srv, tmp_path, stale_ms={"book": 300.0})
        run = _run_until_streamed(graph, srv, live, tmp_path / "live")
    s, guard = run.summary["live"], run.summary["stale_guard"]
    # the stall; a loaded machine may add a gap of its own, never fewer
    stale = s["faults"]["stale"]["book"]
    assert stale >= 1 and guard["stale_events"] == stale and s["timers"] > stale
    assert guard["cancel_all"] == stale + 1 and guard["resting_at_end"] == 0  # each stale book, the stop
    rep = _replay_run(graph, tmp_path / "feed.rec.lz4", tmp_path / "replay")
    _same_trace(tmp_path / "live", tmp_path / "replay")
    assert rep.summary["stale_guard"] == guard  # the recorded timers replay the same decisions


def test_a_server_gone_for_good_is_a_fault_exit_3_with_orders_cancelled(archive_rec, probe, tmp_path, capsys):
    srv = LoopbackServer(archive_rec, speed=200.0, start_delay_s=0.05).start()
    threading.Timer(1.0, srv.stop).start()  # the exchange disappears mid-stream
    args = ["run", str(probe), "--source", "live", "--coin", "BTC", "--url", srv.url, "--stale-ms", "300",
            "--max-reconnects", "3", "--duration", "30s",
            "--out", str(tmp_path / "live"), "--no-progress"]  # fmt: skip
    code = main(args)
    err = capsys.readouterr().err
    assert code == 3 and "fault: websocket main" in err and "Traceback" not in err
    s = json.loads((tmp_path / "live" / "summary.json").read_text())
    assert s["live"]["fault"].startswith("websocket main") and s["live"]["threads_left"] == []
    assert s["stale_guard"]["resting_at_end"] == 0 and s["stale_guard"]["stale_events"] >= 1
    assert not [t for t in threading.enumerate() if t.name.startswith("flowmm-")]


def test_ctrl_c_stops_cleanly_with_130_and_cancels(archive_rec, probe, tmp_path, capsys):
    with LoopbackServer(archive_rec, speed=300.0, start_delay_s=0.05) as srv:

        def ctrl_c():  # mid-stream, once the feed is up
            srv.wait_subscribed(30)
            time.sleep(1.0)
            os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=ctrl_c, daemon=True).start()
        args = ["run", str(probe), "--source", "live", "--coin", "BTC", "--url", srv.url,
                "--duration", "30s", "--out", str(tmp_path / "live"), "--no-progress"]  # fmt: skip
        assert main(args) == 130
    s = json.loads((tmp_path / "live" / "summary.json").read_text())
    assert s["live"]["stop"] == "interrupted" and s["live"]["threads_left"] == []
    assert s["actions_sent"] > 0 and s["stale_guard"]["resting_at_end"] == 0
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is restored


def test_a_refused_subscription_is_a_fault(archive_rec, tmp_path):
    with LoopbackServer(archive_rec, speed=None, start_delay_s=0.05) as srv:
        live = _live(srv, tmp_path, ref_coin="NOPE")  # the server has no NOPE: an error frame
        tables = list(live.chunks())
    assert live.fault is not None and "Invalid subscription" in live.fault
    assert any("NOPE" in e for e in live.summary()["faults"]["server_errors"])
    assert sum(len(t) for t in tables) >= 2  # the REST bootstrap (ctx, book) still delivered


def test_a_hip3_perp_bootstraps_from_its_dex(shared_data, tmp_path):
    rec = tmp_path / "xyz.rec"  # the capture, its coin renamed to a HIP-3 one
    with gzip.open(shared_data(CAPTURE), "rt") as f:
        rec.write_text(f.read().replace('"coin":"BTC"', '"coin":"xyz:BTC"'))
    with LoopbackServer(rec, speed=None, start_delay_s=0.05) as srv:
        live = _live(srv, tmp_path, coin="xyz:BTC", stale_ms={}, max_frames=20)
        books = sum(int((t.kind == E.BOOK).sum()) for t in live.chunks())
        with pytest.raises(SourceError, match="no HIP-3 dex 'abc'"):
            Live(LiveConfig(url=srv.url, coin="abc:BTC"))
    assert live.cfg.dex == "xyz" and srv.stats["info_perpDexs"] == 2
    assert live.instrument.sz_decimals == 5 and live.instrument.source == "meta frame"
    assert live.summary()["frames"] == 20 and books >= 10 and live.tick_size == 1.0


def test_bootstrap_errors_are_located(tmp_path):
    with pytest.raises(SourceError) as exc:
        Live(LiveConfig(url="http://127.0.0.1:9", coin="BTC", rest_timeout_s=1.0))
    assert "REST" in str(exc.value) and "127.0.0.1:9/info" in str(exc.value)


# -- the guard, on exact events -------------------------------------------------------------------


def _book(t_s: float, mid: float) -> dict:
    return {"t": int(t_s * 1e9), "kind": "book", "bids": [[mid - 0.5, 5.0, 1]], "asks": [[mid + 0.5, 5.0, 1]]}


def test_stale_timer_cancels_everything_withholds_quotes_until_fresh(probe):
    from flowmm.core.engine import Interpreter

    graph = load_graph(probe)
    evs = [_book(i * 0.5, 40000.0) for i in range(11)]  # quoting from 1 s on
    stale_t, fresh_t = 5.2, 8.0
    evs += [{"t": int(stale_t * 1e9), "kind": "timer", "code": ST.code({"book"})}]
    evs += [{"t": int(6.5e9), "kind": "ctx", "funding": 0, "predicted_funding": 0, "oi": 1, "mark": 4e4,
             "oracle": 4e4, "premium": 0}]  # fmt: skip
    evs += [{"t": int(fresh_t * 1e9), "kind": "timer", "code": ST.code(set())}, _book(fresh_t, 40000.0)]
    evs += [_book(9.0, 40000.0), _book(10.0, 40000.0)]
    src = Events(evs)
    guard = StaleGuard(paper_broker_for(graph.plan, src))
    eng = Interpreter(graph.plan, guard)
    live_orders = lambda: int(np.sum(guard.orders[:, 0] == guard.orders[:, 0]))  # noqa: E731
    table = src.table
    cut = lambda t: int(np.searchsorted(table.t, int(t * 1e9), "right"))  # noqa: E731
    eng.process(table.slice(0, cut(5.0)))
    assert live_orders() == 4  # two levels a side
    eng.process(table.slice(cut(5.0), cut(6.5)))  # the stale timer, then 1.3 s later a ctx event
    assert guard.stale and live_orders() == 0 and guard.stale_events == 1
    eng.process(table.slice(cut(6.5), cut(9.0)))  # fresh at 8 s: the 9 s cycle quotes again
    assert not guard.stale
    eng.process(table.slice(cut(9.0), len(table)))
    assert live_orders() == 4
    eng.finish(int(10e9))
    assert guard.withdrawn_cycles >= 2 and guard.resting_at_end == 0 and guard.cancel_all == 2


def test_staleness_codes_round_trip():
    assert ST.code(set()) == 100 and ST.decode(100) == set()
    assert ST.decode(ST.code({"book", "spot"})) == {"book", "spot"}
    assert ST.book_stale(ST.code({"book"})) is True and ST.book_stale(ST.code({"trades"})) is False
    assert ST.decode(1.0) is None and ST.book_stale(float("nan")) is None  # session start: not ours


def test_guard_only_for_live_and_live_recordings(probe, shared_data):
    graph = load_graph(probe)
    rep = Replay(shared_data(CAPTURE), cache=False)
    plain = paper_broker_for(graph.plan, rep)
    assert guard_for(plain, rep) is plain and guard_for(None, rep) is None


# -- options --------------------------------------------------------------------------------------


def test_one_network_switch_and_mixed_networks_refused():
    assert resolve_network(None) == ("https://api.hyperliquid.xyz", "mainnet")
    assert resolve_network(None, testnet=True) == ("https://api.hyperliquid-testnet.xyz", "testnet")
    assert resolve_network("http://127.0.0.1:8765/", testnet=True) == ("http://127.0.0.1:8765", "testnet")
    assert resolve_network("https://api.hyperliquid-testnet.xyz") == (
        "https://api.hyperliquid-testnet.xyz",
        "testnet",
    )
    with pytest.raises(UsageError, match="mixed networks are refused"):
        resolve_network("https://api.hyperliquid.xyz", testnet=True)
    with pytest.raises(UsageError, match="exclude each other"):
        resolve_network(None, testnet=True, mainnet=True)


def test_the_aggregated_book_only_for_graphs_that_read_it(probe, root):
    from flowmm.sources.live import reads_stream

    assert not reads_stream(load_graph(probe).plan.spec, "source.book_agg")
    deep = {"name": "deep", "clock": {"on_book": True}, "nodes": {"bim": {"type": "features.bim", "in": {}}}}
    deep["nodes"]["bim"]["in"]["book"] = "source.book_agg"
    assert reads_stream(load_graph(deep).plan.spec, "source.book_agg")


def test_config_hip3_and_subscriptions():
    cfg = LiveConfig(coin="xyz:XYZ100", ref_coin="BTC", address="0xabc", fast_book=True, agg_sig_figs=3)
    assert cfg.dex == "xyz"
    with pytest.raises(UsageError, match="unknown stream"):
        LiveConfig(coin="BTC", stale_ms={"bok": 1.0})
    live = Live.__new__(Live)
    live.cfg = cfg
    conns = {name: (tag, subs) for name, tag, subs in live.subscriptions()}
    assert set(conns) == {"main", "fast", "agg"} and conns["fast"][0] == "fast"
    assert {"type": "l2Book", "coin": "xyz:XYZ100", "nSigFigs": 3} in conns["agg"][1]
    main_types = {(s["type"], s.get("coin")) for s in conns["main"][1]}
    assert {("bbo", "BTC"), ("userFills", None), ("orderUpdates", None)} <= main_types
