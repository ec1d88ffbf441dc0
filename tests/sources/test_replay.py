"""Replay: the real BTC archive hour, recordings vs in-memory events, the cache, merging, cuts."""

import gzip
import json

import lz4.frame
import numpy as np
import pytest

import flowmm
from flowmm.core import events as E
from flowmm.errors import SourceError
from flowmm.execution.paper import paper_broker_for
from flowmm.io.recording import RecordingWriter
from flowmm.sources import Events
from flowmm.sources.replay import Replay

ARCHIVE = "hyperliquid/s3_archive_l2book/market_data_20240101_12_l2Book_BTC.lz4"
CAPTURE = "hyperliquid/hftbacktest_ws_capture/btcusd_20250126.gz"

BOOK_PROBE = """
name: book_probe
clock: {on_book: true}
trace: [source.book, source.mid]
nodes: {}
"""
TAPE_PROBE = """
name: tape_probe
clock: {on_book: true}
trace: [source.mid, flow.buy_sz, flow.sell_sz, flow.count, source.book]
nodes:
  flow: {type: features.trade_flow, in: {trades: source.trades}}
"""


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWMM_CACHE_DIR", str(tmp_path / "cache"))


def _same(x, y) -> bool:
    """Equal traces: the same columns, values equal bit for bit, NaN where NaN."""
    if x.column_names != y.column_names:
        return False
    return all(
        np.array_equal(np.asarray(x[c].to_numpy(), float), np.asarray(y[c].to_numpy(), float), equal_nan=True)
        for c in x.column_names
    )


def _graph(tmp_path, text, name="g.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return flowmm.load_graph(path)


def test_archive_hour_through_the_minimal_graph(shared_data, root):
    src = Replay(shared_data(ARCHIVE), coin="BTC")
    info = src.summary()
    assert info["parse"]["frames"] == 5587 and info["parse"]["malformed"] == 0
    assert info["parse"]["events"] == {"book": 5587}
    assert info["instrument"]["sz_decimals"] == 5 and info["tick_size"] == 1.0  # BTC at ~42,700
    graph = flowmm.load_graph(root / "graphs" / "minimal.yaml")
    run = graph.run(src, broker=paper_broker_for(graph.plan, src))
    assert run.summary["events"] == 5587 and run.summary["replay"]["coin"] == "BTC"


def test_archive_books_equal_an_independent_reading_of_the_raw_json(shared_data, tmp_path):
    raw = [json.loads(line) for line in lz4.frame.decompress(shared_data(ARCHIVE).read_bytes()).splitlines()]
    assert len(raw) == 5587
    levels = [r["raw"]["data"]["levels"] for r in raw]
    t = np.array([r["raw"]["data"]["time"] for r in raw], np.int64) * 1_000_000
    bid_px = np.array([float(lv[0][0]["px"]) for lv in levels])
    bid_sz = np.array([float(lv[0][0]["sz"]) for lv in levels])
    ask_px = np.array([float(lv[1][0]["px"]) for lv in levels])
    ask_sz = np.array([float(lv[1][0]["sz"]) for lv in levels])
    imbalance = (bid_sz - ask_sz) / (bid_sz + ask_sz)

    trace = _graph(tmp_path, BOOK_PROBE).run(Replay(shared_data(ARCHIVE), coin="BTC")).trace.to_pydict()
    assert len(trace["t"]) == 5587
    np.testing.assert_array_equal(trace["t"], t)
    np.testing.assert_array_equal(trace["source.book.bid_px.0"], bid_px)
    np.testing.assert_array_equal(trace["source.book.bid_sz.0"], bid_sz)
    np.testing.assert_array_equal(trace["source.book.ask_px.0"], ask_px)
    np.testing.assert_array_equal(trace["source.book.ask_sz.0"], ask_sz)
    b, a = np.array(trace["source.book.bid_sz.0"]), np.array(trace["source.book.ask_sz.0"])
    np.testing.assert_allclose((b - a) / (b + a), imbalance, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(trace["source.mid"], 0.5 * (bid_px + ask_px))


def _capture_frames(shared_data):
    with gzip.open(shared_data(CAPTURE), "rt") as f:
        return [(int(ns), js.strip()) for ns, js in (line.split(" ", 1) for line in f)]


def _capture_as_events(frames):
    """The capture's events, computed here without the parser: books, then the trades of every
    trades frame but the first (the exchange's batch of recent trades on subscribing)."""
    out, first_trades = [], True
    for _, js in frames:
        m = json.loads(js)
        d = m["data"]
        if m["channel"] == "l2Book":
            side = lambda lv: [[float(x["px"]), float(x["sz"]), float(x["n"])] for x in lv]  # noqa: E731
            out.append(
                {
                    "t": d["time"] * 1_000_000,
                    "kind": "book",
                    "bids": side(d["levels"][0]),
                    "asks": side(d["levels"][1]),
                }
            )
        elif m["channel"] == "trades":
            if not first_trades:
                out += [
                    {
                        "t": x["time"] * 1_000_000,
                        "kind": "trade",
                        "px": x["px"],
                        "sz": x["sz"],
                        "side": x["side"],
                        "tid": x["tid"],
                    }
                    for x in d
                ]
            first_trades = False
    return out


def test_a_recording_replays_deterministically_and_equals_the_same_events_in_memory(shared_data, tmp_path):
    frames = _capture_frames(shared_data)
    rec = tmp_path / "cap.rec.lz4"
    with RecordingWriter(rec, block_lines=7) as w:
        for ns, js in frames:
            w.write(ns, js)
    graph = _graph(tmp_path, TAPE_PROBE)
    a = graph.run(Replay(rec, cache=False)).trace
    b = graph.run(Replay(rec)).trace  # parses and writes the cache
    c = graph.run(Replay(rec)).trace  # reads the cache
    memory = graph.run(Events(_capture_as_events(frames))).trace
    book_times = {e["t"] for e in _capture_as_events(frames) if e["kind"] == "book"}
    assert a.num_rows == len(book_times) == 45  # 46 books, two in one ms: one batch, one cycle
    assert _same(a, b) and _same(b, c) and _same(a, memory)
    assert (Replay(rec).table.kind == E.TRADE).sum() == 34  # 64 trades, 30 of them the snapshot
    assert np.nanmax(a.column("flow.buy_sz").to_numpy()) > 0  # the tape reached the graph


def test_rotated_files_and_a_folder_replay_as_one_session(shared_data, tmp_path):
    frames = _capture_frames(shared_data)
    w = RecordingWriter(tmp_path / "rec" / "cap.rec.lz4", block_lines=5, rotate_bytes=3000)
    for ns, js in frames:
        w.write(ns, js)
    w.close()
    assert len(w.files) > 2
    whole = Replay(shared_data(CAPTURE), cache=False).table
    merged = Replay(tmp_path / "rec").table
    for k in ("t", "kind", "off", "payload"):
        np.testing.assert_array_equal(getattr(whole, k), getattr(merged, k))
    assert (tmp_path / "rec" / ".flowmm-cache").is_dir()  # a folder's cache sits inside it


def test_cache_key_follows_options_and_file_changes(shared_data, tmp_path):
    rec = tmp_path / "c.rec.lz4"
    with RecordingWriter(rec) as w:
        for ns, js in _capture_frames(shared_data):
            w.write(ns, js)
    first = Replay(rec)
    assert first.cache_state.startswith("written") and Replay(rec).cache_state.startswith("hit")
    assert Replay(rec, coin="ETH").cache_state.startswith("written")  # another option, another key
    assert Replay(rec, coin="ETH").table.kind.size == 0  # no ETH in it
    with RecordingWriter(tmp_path / "c.rec.lz4") as w:  # appending changes size and mtime
        w.write(1737918900000000000, '{"channel":"pong"}')
    assert Replay(rec).cache_state.startswith("written")


def test_start_end_and_archive_with_asset_ctxs(shared_data, tmp_path):
    csv = tmp_path / "20240101.csv"
    rows = [
        "time,coin,funding,open_interest,prev_day_px,day_ntl_vlm,premium,oracle_px,mark_px,mid_px,impact_bid_px,impact_ask_px"
    ]
    for minute in range(0, 60, 10):
        for coin, oi in (("BTC", 11000 + minute), ("ETH", 99)):
            rows.append(
                f"2024-01-01T12:{minute:02d}:00Z,{coin},0.0000125,{oi},42100,1,0.0001,42280,42285,42286,42284,42288"
            )
    csv.write_text("\n".join(rows) + "\n")  # written from the documented header: no real sample here
    src = Replay([shared_data(ARCHIVE), csv], start="2024-01-01T12:05:00", end="2024-01-01T12:35:00")
    t = src.table.t
    assert t[0] >= 1704110700 * 10**9 and t[-1] <= 1704112500 * 10**9
    ctx = src.table.kind == E.CTX
    assert ctx.sum() == 3  # 12:10, 12:20, 12:30 BTC rows
    o = src.table.off[np.nonzero(ctx)[0]]
    assert list(src.table.payload[o + 2]) == [11010.0, 11020.0, 11030.0]
    assert src.coin == "BTC" and "source.ctx" in src.provides()


def test_speed_paces_in_short_slices(shared_data):
    src = Replay(shared_data(CAPTURE), speed=1e9, cache=False)
    chunks = list(src.chunks())
    assert sum(len(c) for c in chunks) == len(src.table)
    for c in chunks:
        assert c.t[-1] - c.t[0] < 50_000_000 or len(set(c.t.tolist())) == 1


def test_errors_name_the_file(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello\n")
    with pytest.raises(SourceError, match="not a replayable file") as e:
        Replay(bad)
    assert "notes.txt:1" in e.value.format()
    with pytest.raises(SourceError, match="no such file"):
        Replay(tmp_path / "missing.lz4")
    with pytest.raises(SourceError, match="say which one"):
        csv = tmp_path / "x.csv"
        csv.write_text(
            "time,coin,funding,open_interest,prev_day_px,day_ntl_vlm,premium,oracle_px,mark_px,mid_px,impact_bid_px,impact_ask_px\n"
        )
        Replay(csv)


def test_an_hftbacktest_npz_replays_like_the_capture_it_was_written_from(shared_data, tmp_path):
    from flowmm.io.hftbacktest import write_npz

    capture = Replay(shared_data(CAPTURE), cache=False)
    path = tmp_path / "btc.npz"
    write_npz(capture.table, path)
    back = Replay(path, coin="BTC")
    assert back.formats[str(path)] == "hftbacktest_npz" and back.cache_state.startswith("written")
    graph = _graph(tmp_path, BOOK_PROBE)
    a, b = graph.run(capture).trace, graph.run(back).trace
    for col in (
        "t",
        "source.book.bid_px.0",
        "source.book.bid_sz.0",
        "source.book.ask_px.0",
        "source.book.ask_sz.0",
    ):
        np.testing.assert_array_equal(a[col].to_numpy(), b[col].to_numpy())
    assert (back.table.kind == E.TRADE).sum() == (capture.table.kind == E.TRADE).sum()
    with pytest.raises(SourceError, match="on its own"):
        Replay([path, shared_data(CAPTURE)])


@pytest.mark.parametrize(("data", "blocks", "chunk"), [(CAPTURE, (3, 7, 13), 5), (ARCHIVE, (101, 997), 333)])
def test_streamed_chunks_equal_the_whole_table_cut_the_same_way(
    shared_data, monkeypatch, data, blocks, chunk
):
    """Load as you go: parsed in small blocks (store chunks), delivered in small chunks, the
    events are those of the whole table, in the same order and the same chunks; same-time
    batches straddle store boundaries and are never split in delivery."""
    import flowmm.sources.replay as R

    path = shared_data(data)
    ref = Replay(path, cache=False)  # the default block: the capture in one store chunk
    whole = ref.table
    straddles = 0
    for block in blocks:
        monkeypatch.setattr(R, "_BLOCK", block)
        src = Replay(path, cache=False, chunk_size=chunk)
        chunks = src.store.chunks
        assert len(chunks) > 2
        straddles += sum(a["t1"] == b["t0"] for a, b in zip(chunks, chunks[1:]))
        got = list(src.chunks())
        want = list(Events(whole, chunk_size=chunk).chunks())
        assert len(got) == len(want)
        for g, w in zip(got, want):
            for k in ("t", "kind", "off", "payload"):
                np.testing.assert_array_equal(getattr(g, k), getattr(w, k))
        assert src.provides() == ref.provides() and src.end_time == ref.end_time
        assert src.tick_size == ref.tick_size and src.summary()["parse"] == ref.summary()["parse"]
    if data == CAPTURE:  # its trade frames carry same-time batches (the archive hour: books only)
        assert straddles > 0  # the case that matters was exercised


def test_a_cut_streams_only_its_events(shared_data):
    src = Replay(shared_data(ARCHIVE), start="2024-01-01T12:05:00", end="2024-01-01T12:35:00", chunk_size=500)
    full = Replay(shared_data(ARCHIVE))
    lo = int(np.searchsorted(full.table.t, src.start, "left"))
    hi = int(np.searchsorted(full.table.t, src.end, "right"))
    got = [c for c in src.chunks()]
    assert sum(len(c) for c in got) == hi - lo
    np.testing.assert_array_equal(np.concatenate([c.t for c in got]), full.table.t[lo:hi])
    assert src.end_time == int(full.table.t[hi - 1])
