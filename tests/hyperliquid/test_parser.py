"""The stateful frame parser: time, de-duplication, snapshots, book merging, coins, errors."""

import json
import math
from pathlib import Path

from flowmm.core import events as E
from flowmm.hyperliquid.parser import FrameParser

DOC = json.loads((Path(__file__).parents[1] / "data" / "hyperliquid" / "documented_shapes.json").read_text())
MS = 1_000_000


def book(coin, t_ms, bids, asks):
    lv = lambda px, sz: {"px": str(px), "sz": str(sz), "n": 1}  # noqa: E731
    return {
        "channel": "l2Book",
        "data": {"coin": coin, "time": t_ms, "levels": [[lv(*b) for b in bids], [lv(*a) for a in asks]]},
    }


def trades(coin, *rows):
    return {"channel": "trades", "data": [
        {"coin": coin, "side": s, "px": str(px), "sz": str(sz), "time": t, "hash": "0x" + "0" * 64,
         "tid": tid}
        for t, px, sz, s, tid in rows
    ]}  # fmt: skip


def kinds(rows):
    return [E.KIND_NAMES[k] for _, k, _ in rows]


def test_book_payload_and_exchange_time():
    p = FrameParser("BTC")
    (row,) = p.frame(book("BTC", 1000, [(100, 1), (99, 2)], [(101, 3)]), 1000 * MS + 200 * MS)
    t, kind, payload = row
    assert (t, kind) == (1000 * MS, E.BOOK)
    assert payload == [2, 1, 100, 1, 1, 99, 2, 1, 101, 3, 1]


def test_frames_without_exchange_time_go_onto_the_exchange_clock():
    p = FrameParser("BTC")
    p.frame(book("BTC", 1000, [(100, 1)], [(101, 1)]), 1250 * MS)  # 250 ms latency
    (ctx,) = p.frame(
        DOC["activeAssetCtx"] | {"data": DOC["activeAssetCtx"]["data"] | {"coin": "BTC"}}, 1400 * MS
    )
    assert ctx[0] == 1150 * MS and ctx[1] == E.CTX
    funding, predicted, *rest = ctx[2]
    assert funding == 0.0000125 and math.isnan(predicted)  # no predictedFundings yet
    assert rest == [31234.56789, 95010.0, 95001.0, 0.00009473]
    # a book older than the last event is clamped to it and counted, never reordered
    (late,) = p.frame(book("BTC", 1100, [(100, 1)], [(101, 1)]), 1401 * MS)
    assert late[0] == 1150 * MS and p.stats.late == 1


def test_first_trades_frame_after_an_ack_is_history_and_tids_dedupe():
    p = FrameParser("BTC")
    p.frame(
        {
            "channel": "subscriptionResponse",
            "data": {"method": "subscribe", "subscription": {"type": "trades", "coin": "BTC"}},
        },
        10 * MS,
    )
    assert p.frame(trades("BTC", (5, 100, 1, "B", 1), (6, 100, 2, "A", 2)), 10 * MS) == []
    assert p.stats.snapshot_trades == 2
    rows = p.frame(trades("BTC", (6, 100, 2, "A", 2), (11, 101, 0.5, "A", 3)), 12 * MS)  # tid 2 again
    assert rows == [(11 * MS, E.TRADE, [101.0, 0.5, -1.0, 3.0])] and p.stats.duplicate_trades == 1


def test_without_an_ack_an_old_first_batch_is_history_and_a_fresh_one_is_not():
    p = FrameParser("BTC")
    p.frame(book("BTC", 100_000, [(100, 1)], [(101, 1)]), 100_100 * MS)
    assert p.frame(trades("BTC", (90_000, 100, 1, "B", 1), (100_050, 100, 1, "B", 2)), 100_200 * MS) == []
    fresh = FrameParser("BTC")
    fresh.frame(book("BTC", 100_000, [(100, 1)], [(101, 1)]), 100_100 * MS)
    assert kinds(fresh.frame(trades("BTC", (99_800, 100, 1, "B", 1)), 100_200 * MS)) == ["trade"]


def test_fast_book_keeps_the_full_books_deeper_levels():
    p = FrameParser("BTC")
    bids = [(100 - i, 1) for i in range(8)]
    asks = [(101 + i, 1) for i in range(8)]
    p.frame(book("BTC", 1, bids, asks), 2 * MS)
    fast = book("BTC", 2, [(100.5, 2)] + [(100 - i, 3) for i in range(4)], [(101 + i, 4) for i in range(5)])
    (row,) = p.frame(fast, 3 * MS, tag="fast")
    payload = row[2]
    nb, na = int(payload[0]), int(payload[1])
    bid_px = payload[2 : 2 + 3 * nb : 3]
    assert bid_px == [100.5, 100, 99, 98, 97, 96, 95, 94, 93]  # 5 fresh, then the full book beyond 97
    assert payload[3] == 2 and payload[2 + 3 * 5 + 1] == 1  # fresh sizes first, old deeper
    assert na == 8
    (agg,) = p.frame(book("BTC", 3, [(100, 9)], [(101, 9)]), 4 * MS, tag="agg")
    assert agg[1] == E.BOOK_AGG


def test_ref_and_spot_coins_give_mids_and_all_mids_only_on_change():
    p = FrameParser("HYPE", ref_coin="BTC", spot_coin="@107")
    (ref,) = p.frame(book("BTC", 5, [(100, 1)], [(102, 1)]), 6 * MS)
    assert ref == (5 * MS, E.REF_MID, [101.0])
    mids = {"channel": "allMids", "data": {"mids": {"BTC": "101.5", "@107": "28.1", "ETH": "2000"}}}
    assert kinds(p.frame(mids, 7 * MS)) == ["ref_mid", "spot_mid"]
    assert p.frame(mids, 8 * MS) == []
    assert p.stats.other_coins == {}


def test_coin_adoption_counts_the_others():
    p = FrameParser()
    p.frame(book("ETH", 1, [(10, 1)], [(11, 1)]), 2 * MS)
    p.frame(book("SOL", 1, [(10, 1)], [(11, 1)]), 2 * MS)
    assert p.coin == "ETH" and p.stats.other_coins == {"SOL": 1}


def test_own_fills_only_when_asked_with_the_mid_strictly_before():
    live = DOC["userFills_live"]
    p = FrameParser("BTC")
    assert p.frame(live, 1 * MS) == []
    p = FrameParser("BTC", fills=True)
    assert p.frame(DOC["userFills_snapshot"], 1 * MS) == []  # history
    p.frame(book("BTC", 1763600000000, [(94990, 1)], [(95000, 1)]), 1763600000100 * MS)
    p.frame(book("BTC", 1763600000456, [(95030, 1)], [(95050, 1)]), 1763600000500 * MS)
    rows = p.frame(live, 1763600001000 * MS)
    assert [r[2][:6] for r in rows] == [
        [95000.0, 0.01, 1.0, 41234567890.0, 0.01425, 1.0],
        [95040.0, 0.02, -1.0, 41234567895.0, 0.85536, 0.0],
    ]
    assert rows[0][2][6] == 94995.0  # the book at the fill's own ms is not "before"
    assert rows[1][2][6] == 95040.0
    assert p.frame(live, 1763600001001 * MS) == [] and p.stats.duplicate_fills == 2


def test_rest_bodies_meta_predicted_funding_and_order_updates():
    p = FrameParser("BTC")
    assert (
        p.rest({"type": "meta"}, {"universe": [{"name": "BTC", "szDecimals": 5, "maxLeverage": 50}]}, 1) == []
    )
    assert p.instrument_for("BTC").sz_decimals == 5 and p.instrument_for("ETH") is None
    (row,) = p.rest({"type": "predictedFundings"}, DOC["predictedFundings"], 2 * MS)
    assert row[1] == E.CTX and row[2][1] == 0.0000125 and math.isnan(row[2][0])
    p.frame(DOC["orderUpdates"], 3 * MS)
    assert [u.status for u in p.records["orderUpdates"]] == ["filled", "canceled"]


def test_malformed_frames_are_counted_never_events():
    p = FrameParser("BTC")
    bad = [
        b"123 {not json",
        b"notanumber {}",
        b"5 weird {}",
        json.dumps(
            {
                "channel": "l2Book",
                "data": {
                    "coin": "BTC",
                    "time": 1,
                    "levels": [[{"px": "2", "sz": "1"}], [{"px": "1", "sz": "1"}]],
                },
            }
        ).encode(),
        json.dumps(
            {
                "channel": "trades",
                "data": [{"coin": "BTC", "side": "B", "px": "1", "sz": "x", "time": 1, "tid": 1}],
            }
        ).encode(),
        json.dumps({"channel": "bbo"}).encode(),
    ]
    rows = [
        r
        for i, line in enumerate(bad)
        for r in p.line(line if line[:1].isdigit() else b"7 " + line, f"f:{i}")
    ]
    assert rows == []
    assert sum(p.stats.malformed.values()) == 6 and p.stats.frames == 6
    assert p.stats.malformed["l2Book"] == 1 and "crossed" in " ".join(p.stats.malformed_examples)
    p.frame(DOC["error"], 8)
    assert p.stats.server_errors and "NOPE" in p.stats.server_errors[0]


def test_session_header_sets_coins_and_timers_are_events():
    p = FrameParser(ref_coin="ETH")
    p.line(b'1000 {"channel":"flowmm.session","data":{"coin":"HYPE","ref_coin":"BTC","version":1}}')
    assert (p.coin, p.ref_coin) == ("HYPE", "ETH")  # an explicit option wins over the header
    (timer,) = p.line(b'2000 {"channel":"flowmm.timer","data":{"code":3}}')
    assert timer == (2000, E.TIMER, [3.0])
    assert p.line(b'2100 {"channel":"pong"}') == [] and p.stats.malformed == {}
