import gzip
import json
import zipfile

import numpy as np
import pytest

from flowmm.core import events as E
from flowmm.errors import FlowmmError, SourceError, UsageError
from flowmm.io import hftbacktest as H
from flowmm.io.hftbacktest import EVENT_DTYPE, read_npz, write_npz
from flowmm.sources.events import build_table, encode_event

CAPTURE = "hyperliquid/hftbacktest_ws_capture/btcusd_20250126.gz"
BOTH = H.EXCH_EVENT | H.LOCAL_EVENT
BID, ASK = H.BUY_EVENT, H.SELL_EVENT


def table(events):
    return build_table(encode_event(e) for e in events)


def decoded(tab):
    """Events as comparable tuples: (t, kind, bids, asks) / (t, kind, px, sz, side)."""
    out = []
    for i in range(len(tab)):
        p = tab.payload[tab.off[i] : tab.off[i + 1]]
        if tab.kind[i] == E.BOOK:
            nb, na = int(p[0]), int(p[1])
            lv = p[2:].reshape(-1, 3)
            bids = [tuple(x) for x in lv[:nb, :2].tolist()]
            asks = [tuple(x) for x in lv[nb : nb + na, :2].tolist()]
            assert np.isnan(lv[:, 2]).all()  # order count: unknown in the format
            out.append((int(tab.t[i]), "book", bids, asks))
        else:
            assert tab.kind[i] == E.TRADE and np.isnan(p[3])  # no documented trade-id field
            out.append((int(tab.t[i]), "trade", p[0], p[1], p[2]))
    return out


def lv_px_sz(lv):
    return (float(lv["px"]), float(lv["sz"])) if isinstance(lv, dict) else (float(lv[0]), float(lv[1]))


def expected(events):
    """What must come back from ``events``: n and tid dropped, unchanged books gone."""
    out, last = [], None
    for e in events:
        if e["kind"] == "book":
            bids, asks = ([lv_px_sz(lv) for lv in e[k]] for k in ("bids", "asks"))
            if (bids, asks) == last or (last is None and not bids and not asks):
                continue
            last = (bids, asks)
            out.append((e["t"], "book", bids, asks))
        else:
            side = 1.0 if e["side"] in ("B", 1) else -1.0
            out.append((e["t"], "trade", float(e["px"]), float(e["sz"]), side))
    return out


BOOKS = [
    {
        "t": 10,
        "kind": "book",
        "bids": [[100, 1, 3], [99, 2, 1], [98, 5, 2]],
        "asks": [[101, 1, 1], [102, 3, 2]],
    },
    {"t": 20, "kind": "trade", "px": 101, "sz": 0.5, "side": "B", "tid": 7},
    # 99 leaves, 100 changes, 97 enters; ask 103 enters
    {
        "t": 30,
        "kind": "book",
        "bids": [[100, 1.5, 1], [98, 5, 2], [97, 1, 1]],
        "asks": [[101, 1, 1], [102, 3, 2], [103, 1, 1]],
    },
    {"t": 30, "kind": "trade", "px": 100, "sz": 0.25, "side": "A", "tid": 8},
    {"t": 40, "kind": "book", "bids": [], "asks": [[101, 1, 1]]},  # the bid side empties
    {"t": 40, "kind": "trade", "px": 101, "sz": 1, "side": "B", "tid": 9},
    {"t": 50, "kind": "book", "bids": [[99.5, 2, 1]], "asks": [[101, 1, 1]]},  # and refills
    {"t": 60, "kind": "book", "bids": [[99.5, 2, 1]], "asks": [[101, 1, 1]]},  # unchanged: no rows
    {"t": 70, "kind": "book", "bids": [[99.5, 2, 1]], "asks": []},  # the ask side empties
]


def test_round_trip_books_and_trades(tmp_path):
    path = tmp_path / "ev"  # no suffix: written to exactly this name
    n = write_npz(table(BOOKS), path)
    data = np.load(path)["data"]
    # rows: book 5 levels, trade, book 1 removal + 3 sets, trade, book 5 removals, trade,
    # book 1 insert, unchanged book none, book 1 removal
    assert n == len(data) == 5 + 1 + 4 + 1 + 5 + 1 + 1 + 0 + 1
    assert data.dtype == EVENT_DTYPE and data.dtype.itemsize == 64
    assert (data["ev"] & BOTH == BOTH).all()
    # the first book: one DEPTH row per level, best first, bids then asks
    first = data[:5]
    assert (first["ev"] & 0xFF == H.DEPTH_EVENT).all()
    assert first["px"].tolist() == [100, 99, 98, 101, 102]
    assert (first["ev"][:3] & BID).all() and (first["ev"][3:] & ASK).all()
    # the second book: the removal first, then the insert and the change
    second = data[6:10]
    assert second["px"].tolist() == [99, 100, 97, 103] and second["qty"].tolist() == [0, 1.5, 1, 1]
    assert data["ev"][5] == BOTH | H.TRADE_EVENT | BID and data["ev"][10] == BOTH | H.TRADE_EVENT | ASK

    got, counts = read_npz(path)
    assert decoded(got) == expected(BOOKS)
    assert counts["rows"] == counts["used"] == n
    assert (counts["books"], counts["trades"], counts["clamped"]) == (5, 3, 0)
    assert sum(counts["skipped"].values()) == 0


def test_uncompressed_and_empty_files(tmp_path):
    assert write_npz(table(BOOKS), tmp_path / "raw.npz", compress=False) == 19
    with zipfile.ZipFile(tmp_path / "raw.npz") as z:
        assert [i.compress_type for i in z.infolist()] == [zipfile.ZIP_STORED]
    assert decoded(read_npz(tmp_path / "raw.npz")[0]) == expected(BOOKS)
    assert write_npz(E.EventTable.empty(), tmp_path / "empty.npz") == 0
    got, counts = read_npz(tmp_path / "empty.npz")
    assert len(got) == 0 and got.off.tolist() == [0] and counts["rows"] == 0
    # kinds without an hftbacktest row are not written
    assert write_npz(table([{"t": 1, "kind": "timer", "code": 1}]), tmp_path / "t.npz") == 0


def test_more_levels_than_a_book_holds_come_back_as_the_best_twenty(tmp_path):
    bids = [[1000 - i, 1 + i, 1] for i in range(25)]
    asks = [[1001 + i, 1, 1] for i in range(3)]
    assert write_npz(table([{"t": 1, "kind": "book", "bids": bids, "asks": asks}]), tmp_path / "a.npz") == 28
    got, _ = read_npz(tmp_path / "a.npz")
    ((_, _, b, a),) = decoded(got)
    assert b == [(float(x[0]), float(x[1])) for x in bids[:20]] and len(a) == 3
    got, _ = read_npz(tmp_path / "a.npz", levels=2)
    assert got.payload[:2].tolist() == [2, 2]


def test_disordered_receive_times_split_rows_like_correct_event_order(tmp_path):
    tab = table(BOOKS)
    local = np.array([15, 12, 35, 31, 41, 45, 52, 61, 72])  # book 10 received after trade 20
    n = write_npz(tab, tmp_path / "s.npz", local_ts=local)
    data = np.load(tmp_path / "s.npz")["data"]
    exch = data[(data["ev"] & H.EXCH_EVENT) != 0]
    loc = data[(data["ev"] & H.LOCAL_EVENT) != 0]
    # hftbacktest's validate_event_order, and every row once per processor
    assert (np.diff(exch["exch_ts"]) >= 0).all() and (np.diff(loc["local_ts"]) >= 0).all()
    assert len(exch) == len(loc) == 19 and n == len(data) > 19
    split = data[(data["ev"] & BOTH) != BOTH]
    assert len(split) == 2 * (n - 19)
    got, counts = read_npz(tmp_path / "s.npz")
    assert decoded(got) == expected(BOOKS)
    assert counts["skipped"]["other_clock"] == n - 19 and counts["clamped"] == 0
    # the bot's view: the trade at local 12 comes before the first book
    seen, _ = read_npz(tmp_path / "s.npz", clock="local")
    assert decoded(seen)[0] == (12, "trade", 101.0, 0.5, 1.0)
    assert decoded(seen)[1][:2] == (15, "book")


def rows(*specs):
    arr = np.zeros(len(specs), EVENT_DTYPE)
    for i, (ev, t, px, qty) in enumerate(specs):
        arr[i] = (ev, t, t + 1000, px, qty, 0, 0, 0.0)
    return arr


def test_hand_written_file_with_clear_snapshot_bbo_and_skipped_rows(tmp_path):
    snap, clear, depth, bbo = H.DEPTH_SNAPSHOT_EVENT, H.DEPTH_CLEAR_EVENT, H.DEPTH_EVENT, H.DEPTH_BBO_EVENT
    arr = rows(
        (BOTH | clear, 1, 0.0, 0.0),  # both sides, px ignored
        (BOTH | snap | BID, 1, 100, 1),
        (BOTH | snap | BID, 1, 99, 2),
        (BOTH | snap | BID, 1, 98, 1),
        (BOTH | snap | ASK, 1, 101, 1),
        (BOTH | snap | ASK, 1, 102, 2),
        (BOTH | snap | ASK, 1, 103, 3),
        (BOTH | clear | BID, 2, 99, 0),  # bids priced >= 99 go: 98 stays
        (BOTH | snap | BID, 2, 99.5, 4),
        (BOTH | clear | ASK, 3, 102, 0),  # asks priced <= 102 go: 103 stays
        (BOTH | H.ADD_ORDER_EVENT | BID, 4, 50, 1),  # market-by-order: skipped
        (depth | BID, 4, 97, 1),  # no EXCH / LOCAL flag: skipped
        (H.LOCAL_EVENT | depth | BID, 4, 96, 1),  # the local half of a split row: skipped
        (BOTH | depth, 4, 95, 1),  # a depth row without a side: skipped
        (BOTH | 7, 4, 1, 1),  # unknown kind: skipped
        (BOTH | H.TRADE_EVENT, 4, 100.5, 0.1),  # no side flag: read as a sell
        (BOTH | bbo | BID, 5, 103, 1),  # crosses: asks <= 103 are dropped
        (BOTH | depth | BID, 5, 104, 0),  # deleting an absent level: no-op
        (BOTH | clear, 6, 0, 0),
        (BOTH | depth | ASK, 6, 104, 1),
        (BOTH | H.TRADE_EVENT | BID, 5, 104, 0.2),  # goes back in time: clamped to 6
        (BOTH | depth | BID, 7, 100, 1),
        (BOTH | depth | BID, 7, 99, 1),
        (BOTH | bbo | ASK, 8, 99.5, 3),  # crosses: bids >= 99.5 are dropped
        (BOTH | bbo | ASK, 9, 105, 2),  # the best ask backs off: asks below 105 are dropped
        (BOTH | clear | BID, 10, np.nan, 0),  # a non-finite px clears the whole side
    )
    np.savez_compressed(tmp_path / "h.npz", data=arr)
    got, counts = read_npz(tmp_path / "h.npz")
    assert decoded(got) == [
        (1, "book", [(100, 1), (99, 2), (98, 1)], [(101, 1), (102, 2), (103, 3)]),
        (2, "book", [(99.5, 4), (98, 1)], [(101, 1), (102, 2), (103, 3)]),
        (3, "book", [(99.5, 4), (98, 1)], [(103, 3)]),
        (4, "trade", 100.5, 0.1, -1.0),
        (5, "book", [(103, 1), (99.5, 4), (98, 1)], []),
        (6, "book", [], [(104, 1)]),
        (6, "trade", 104, 0.2, 1.0),
        (7, "book", [(100, 1), (99, 1)], [(104, 1)]),
        (8, "book", [(99, 1)], [(99.5, 3), (104, 1)]),
        (9, "book", [(99, 1)], [(105, 2)]),
        (10, "book", [], [(105, 2)]),
    ]
    assert counts["skipped"] == {
        "no_flag": 1,
        "other_clock": 1,
        "order_level": 1,
        "unknown_kind": 1,
        "no_side": 1,
    }
    assert counts["skipped_kinds"] == {"depth": 3, "kind_7": 1, "add_order": 1}
    assert (counts["rows"], counts["used"], counts["clamped"]) == (len(arr), len(arr) - 5, 1)
    assert (counts["books"], counts["trades"], counts["trades_no_side"]) == (9, 2, 1)


def test_an_aligned_or_packed_file_of_hftbacktest_rows_reads_the_same(tmp_path):
    packed = np.dtype([(n, EVENT_DTYPE.fields[n][0]) for n in EVENT_DTYPE.names])  # align=False
    arr = rows((BOTH | H.DEPTH_EVENT | BID, 1, 10, 1), (BOTH | H.DEPTH_EVENT | ASK, 1, 11, 2))
    np.savez_compressed(tmp_path / "p.npz", data=arr.astype(packed))
    got, _ = read_npz(tmp_path / "p.npz")
    assert decoded(got) == [(1, "book", [(10, 1)], [(11, 2)])]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: np.savez_compressed(p, events=rows((BOTH | 1 | BID, 1, 1, 1))), "no 'data' array"),
        (lambda p: np.savez_compressed(p, data=np.zeros((3, 6))), "version 1 format"),
        (
            lambda p: np.savez_compressed(p, data=np.zeros(3, [("ev", "u8"), ("px", "f8")])),
            "missing or mistyped",
        ),
        (lambda p: np.savez_compressed(p, data=np.zeros(3, [(n, "f8") for n in EVENT_DTYPE.names])), "ev"),
        (lambda p: p.write_text("1737918843893903000 {}\n"), "cannot read as an npz"),
        (lambda p: np.save(open(p, "wb"), rows((BOTH | 1 | BID, 1, 1, 1))), "bare .npy"),
        (lambda p: None, "no such file"),
    ],
)
def test_a_file_that_is_not_an_hftbacktest_npz_is_a_located_error(tmp_path, make, message):
    path = tmp_path / "bad.npz"
    make(path)
    with pytest.raises(SourceError, match=message) as err:
        read_npz(path)
    assert err.value.location.file == str(path)
    assert isinstance(err.value, FlowmmError)


def test_bad_arguments_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="one receive time"):
        write_npz(table(BOOKS), tmp_path / "x.npz", local_ts=np.arange(3))
    with pytest.raises(UsageError, match="clock"):
        read_npz(tmp_path / "x.npz", clock="wall")


def parse_capture(path):
    """A minimal reading of hftbacktest's ``<recv ns> <json>`` Hyperliquid capture: exchange-time
    events (stably sorted) and their receive times."""
    events, recv = [], []
    with gzip.open(path, "rt") as f:
        for line in f:
            ns, body = line.split(" ", 1)
            msg = json.loads(body)
            if msg["channel"] == "l2Book":
                bids, asks = msg["data"]["levels"]
                events.append(
                    {"t": msg["data"]["time"] * 1_000_000, "kind": "book", "bids": bids, "asks": asks}
                )
                recv.append(int(ns))
            elif msg["channel"] == "trades":
                for tr in msg["data"]:
                    keys = ("px", "sz", "side", "tid")
                    events.append({"t": tr["time"] * 1_000_000, "kind": "trade", **{k: tr[k] for k in keys}})
                    recv.append(int(ns))
    order = sorted(range(len(events)), key=lambda i: events[i]["t"])
    return [events[i] for i in order], np.array([recv[i] for i in order])


def test_real_hyperliquid_capture_round_trips(tmp_path, shared_data):
    events, recv = parse_capture(shared_data(CAPTURE))
    assert sum(e["kind"] == "book" for e in events) == 46 and sum(e["kind"] == "trade" for e in events) == 64
    tab = table(events)
    n = write_npz(tab, tmp_path / "btc.npz", local_ts=recv)
    data = np.load(tmp_path / "btc.npz")["data"]
    first = events[next(i for i, e in enumerate(events) if e["kind"] == "book")]
    depth = data[data["ev"] & 0xFF == H.DEPTH_EVENT]
    assert depth["px"][:40].tolist() == [float(lv["px"]) for lv in first["bids"] + first["asks"]]
    assert depth["qty"][:40].tolist() == [float(lv["sz"]) for lv in first["bids"] + first["asks"]]
    assert np.count_nonzero((data["ev"] & 0xFF == H.TRADE_EVENT) & (data["ev"] & H.EXCH_EVENT != 0)) == 64
    exch = data[data["ev"] & H.EXCH_EVENT != 0]
    loc = data[data["ev"] & H.LOCAL_EVENT != 0]
    assert (np.diff(exch["exch_ts"]) >= 0).all() and (np.diff(loc["local_ts"]) >= 0).all()

    got, counts = read_npz(tmp_path / "btc.npz")
    want = expected(events)
    assert decoded(got) == want
    assert counts["books"] == 45  # the capture repeats its first snapshot once
    assert counts["trades"] == 64 and counts["clamped"] == 0 and counts["rows"] == n
    # and the book flowmm would have built from the raw JSON: same best levels, same imbalance
    last_book = [e for e in events if e["kind"] == "book"][-1]
    b0, a0 = last_book["bids"][0], last_book["asks"][0]
    _, _, bids, asks = [x for x in decoded(got) if x[1] == "book"][-1]
    assert bids[0] == (float(b0["px"]), float(b0["sz"])) and asks[0] == (float(a0["px"]), float(a0["sz"]))
    imb = (float(b0["sz"]) - float(a0["sz"])) / (float(b0["sz"]) + float(a0["sz"]))
    assert (bids[0][1] - asks[0][1]) / (bids[0][1] + asks[0][1]) == pytest.approx(imb, abs=1e-15)


def _blocks_equal_whole(path, block, clock="exch"):
    whole, want = read_npz(path, clock=clock)
    counts: dict = {}
    parts = list(H.read_npz_blocks(path, counts, clock=clock, block=block))
    from flowmm.sources.store import concat

    got = concat(parts)
    for k in ("t", "kind", "off", "payload"):
        np.testing.assert_array_equal(getattr(got, k), getattr(whole, k))
    assert counts == want
    return len(parts)


@pytest.mark.parametrize("block", [1, 2, 3, 7, 40, 10**6])
@pytest.mark.parametrize("clock", ["exch", "local"])
def test_streamed_reading_equals_the_whole_file_on_the_real_capture(tmp_path, shared_data, block, clock):
    """Load as you go: rows read ``block`` at a time from the zip member, books kept across
    blocks, a same-time run of depth rows (a book's 40 rows) never cut: the same events."""
    events, recv = parse_capture(shared_data(CAPTURE))
    for compress in (True, False):
        path = tmp_path / f"btc-{compress}.npz"
        write_npz(table(events), path, local_ts=recv, compress=compress)
        n = _blocks_equal_whole(path, block, clock)
        assert n >= (1 if block > 10**5 else 2)


def test_streamed_reading_of_the_hand_written_file_and_of_files_it_cannot_stream(tmp_path):
    arr = rows(
        (BOTH | H.DEPTH_SNAPSHOT_EVENT | BID, 1, 100, 1),
        (BOTH | H.DEPTH_SNAPSHOT_EVENT | ASK, 1, 101, 1),
        (BOTH | H.TRADE_EVENT | BID, 2, 101, 0.5),
        (BOTH | H.DEPTH_EVENT | BID, 3, 100, 2),
        (H.LOCAL_EVENT | H.DEPTH_EVENT | BID, 3, 96, 1),  # skipped: the other clock
        (BOTH | H.DEPTH_EVENT | ASK, 3, 102, 1),
        (BOTH | H.TRADE_EVENT | ASK, 2, 100, 0.1),  # goes back: clamped to 3
        (BOTH | H.DEPTH_CLEAR_EVENT, 4, 0, 0),
    )
    np.savez(tmp_path / "h.npz", data=arr)
    for block in (1, 2, 3, 5, 100):
        _blocks_equal_whole(tmp_path / "h.npz", block)
    np.savez_compressed(tmp_path / "v1.npz", data=np.zeros((3, 6)))  # not streamable: read whole
    with pytest.raises(SourceError, match="version 1 format"):
        list(H.read_npz_blocks(tmp_path / "v1.npz", {}))
