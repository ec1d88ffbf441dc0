"""Each message shape parsed from real Hyperliquid messages (shared/data/hyperliquid), values
checked against the raw JSON; shapes with no real sample use tests/data/hyperliquid (labelled)."""

import csv
import gzip
import io
import json
import math
from pathlib import Path

import pytest

from flowmm.hyperliquid import messages as M

DOCUMENTED = json.loads(
    (Path(__file__).parents[1] / "data" / "hyperliquid" / "documented_shapes.json").read_text()
)


def _cassette(shared_data, name):
    return json.loads(shared_data(f"hyperliquid/sdk_cassettes_json/{name}").read_text())


def _capture(shared_data):
    with gzip.open(shared_data("hyperliquid/hftbacktest_ws_capture/btcusd_20250126.gz"), "rt") as f:
        return [(int(ns), json.loads(js)) for ns, js in (line.split(" ", 1) for line in f)]


def test_ws_l2book_from_a_real_capture(shared_data):
    frames = [m for _, m in _capture(shared_data) if m["channel"] == "l2Book"]
    assert len(frames) == 46
    for m in frames:
        book = M.l2_book(m["data"])
        raw_bids, raw_asks = m["data"]["levels"]
        assert book.coin == "BTC" and book.t == m["data"]["time"] * 1_000_000
        assert [(lv.px, lv.sz, lv.n) for lv in book.bids] == [
            (float(d["px"]), float(d["sz"]), float(d["n"])) for d in raw_bids
        ]
        assert [lv.px for lv in book.asks] == [float(d["px"]) for d in raw_asks]
        assert len(book.bids) == len(book.asks) == 20


def test_rest_l2book_and_a_book_without_order_counts(shared_data):
    body = _cassette(shared_data, "test_get_l2_snapshot__1_l2Book.json")["response"]
    book = M.l2_book(body)
    assert book.coin == "DYDX" and book.bids[0] == (2.111, 134.4, 1.0)
    assert book.t == 1689630203930 * 1_000_000
    trimmed = json.loads(shared_data("hyperliquid/nautilus_test_data/http_l2_book_btc.json").read_text())
    book = M.l2_book(trimmed)
    assert book.bids[0][:2] == (110427.0, 4.11882) and math.isnan(book.bids[0].n)
    assert book.asks[0][:2] == (110428.0, 3.72573)


def test_ws_trades_with_string_sizes_zero_hashes_and_aggressor_sides(shared_data):
    frames = [m for _, m in _capture(shared_data) if m["channel"] == "trades"]
    raw = [d for m in frames for d in m["data"]]
    parsed = [t for m in frames for t in M.trades(m["data"])]
    assert len(parsed) == len(raw) == 64
    for d, t in zip(raw, parsed):
        assert (t.px, t.sz, t.tid, t.t) == (float(d["px"]), float(d["sz"]), d["tid"], d["time"] * 1_000_000)
        assert t.side == (1.0 if d["side"] == "B" else -1.0)
    assert any(set(d["hash"][2:]) == {"0"} for d in raw)  # the all-zero hash case is in the sample


def test_hype_docstring_sample_lines(shared_data):
    lines = (
        shared_data("hyperliquid/hftbacktest_ws_capture/hype_20250112_docstring_sample.txt")
        .read_text()
        .split("\n")
    )
    msgs = [json.loads(x.split(" ", 1)[1]) for x in lines if x.strip()]
    trades = M.trades(msgs[0]["data"])
    assert len(trades) == 30 and trades[0] == (
        "HYPE",
        1736682877317_000_000,
        21.269,
        7.78,
        -1.0,
        185481619581124,
    )
    assert msgs[1]["channel"] == "subscriptionResponse"
    book = M.l2_book(msgs[2]["data"])
    assert book.bids[0] == (21.277, 80.29, 2.0) and book.asks[0] == (21.306, 223.2, 2.0)


def test_rest_user_fills_of_2023_have_no_tid(shared_data):
    body = _cassette(shared_data, "test_get_user_fills__0_userFills.json")["response"]
    fills = [M.fill(d) for d in body]
    assert len(fills) == 500
    d, f = body[0], fills[0]
    assert (f.coin, f.px, f.sz, f.side, f.oid, f.tid) == ("SUI", 1.3189, 142.7, -1.0, 189324432, None)
    assert f.maker is False and f.fee == 0.0 and f.closed_pnl == -0.25686 and f.t == d["time"] * 1_000_000
    assert sum(f.maker for f in fills) == sum(not d["crossed"] for d in body)


def test_ws_user_fill_with_liquidation(shared_data):
    msg = json.loads(shared_data("hyperliquid/nautilus_test_data/ws_user_fill_liquidation.json").read_text())
    (f,) = [M.fill(d) for d in msg["data"]["fills"]]
    assert (f.px, f.sz, f.side, f.oid, f.tid, f.fee) == (
        66653.0,
        0.001,
        -1.0,
        55030848197,
        745210434703679,
        0.009997,
    )
    assert f.maker and f.liquidation


def test_meta_candles_funding_history_all_mids(shared_data):
    metas = M.meta(_cassette(shared_data, "test_get_info__0_meta.json")["response"])
    assert len(metas) == 28 and metas[0] == ("BTC", 5, 50.0, 0) and metas[1][:2] == ("ETH", 4)
    body = _cassette(shared_data, "test_get_candles_snapshot__1_candleSnapshot.json")["response"]
    c = M.candle(body[0])
    assert c == (
        "kPEPE",
        "1h",
        1684699200000_000_000,
        1684702799999_000_000,
        0.001601,
        0.001616,
        0.001601,
        0.001604,
        520665683.0,
        709,
    )
    rows = [
        M.funding_row(d)
        for d in _cassette(shared_data, "test_get_funding_history_None__1_fundingHistory.json")["response"]
    ]
    assert len(rows) == 1038 and rows[0] == ("BTC", 1683849600048_000_000, -0.00061334, -0.00091334)
    rest = M.all_mids(_cassette(shared_data, "test_get_all_mids__0_allMids.json")["response"])
    assert len(rest) == 28 and rest["BTC"] == 30135.0
    ws = M.all_mids(
        json.loads(shared_data("hyperliquid/nautilus_test_data/ws_allmids.json").read_text())["data"]
    )
    assert ws["@142"] == 80907.5 and ws["PURR/USDC"] == 0.067131


def test_real_asset_ctx_dicts(shared_data):
    msg = json.loads(shared_data("hyperliquid/nautilus_test_data/ws_all_dexs_asset_ctxs.json").read_text())
    main = dict(msg["data"]["ctxs"])[""]
    ctx = M.asset_ctx("BTC", main[0])
    assert ctx == ("BTC", -0.0000015186, 27353.17682, 77562.0, 77605.0, -0.0005927453, 77558.5)
    assert all(M.asset_ctx("X", c).oi >= 0 for c in main)


# -- shapes with no real sample: written from the documented shape (tests/data/hyperliquid) -------


def test_documented_bbo():
    b = M.bbo(DOCUMENTED["bbo"]["data"])
    assert (
        b.bids == [(95012.0, 1.23456, 4.0)]
        and b.asks == [(95013.0, 0.5, 2.0)]
        and b.t == 1763600000123_000_000
    )
    one = M.bbo(DOCUMENTED["bbo_one_sided"]["data"])
    assert one.bids == [] and one.asks[0].px == 95013.0


def test_documented_active_asset_ctx_and_predicted_fundings():
    d = DOCUMENTED["activeAssetCtx"]["data"]
    assert M.asset_ctx(d["coin"], d["ctx"]) == (
        "BTC",
        0.0000125,
        31234.56789,
        95010.0,
        95001.0,
        0.00009473,
        95012.5,
    )
    rates = M.predicted_fundings(DOCUMENTED["predictedFundings"])
    assert rates == {"BTC": (0.0000125, 1763604000000_000_000), "HYPE": (-0.0000231, 1763604000000_000_000)}
    binance = M.predicted_fundings(DOCUMENTED["predictedFundings"], venue="BinPerp")
    assert binance["BTC"][0] == pytest.approx(0.0001 / 8)  # an 8-hour rate, per hour


def test_documented_order_updates():
    ups = [M.order_update(d) for d in DOCUMENTED["orderUpdates"]["data"]]
    assert ups[0] == ("BTC", 1763600000456_000_000, 41234567890, 1.0, 95000.0, 0.0, 0.01, "filled", None)
    assert ups[1].status == "canceled" and ups[1].cloid.endswith("1") and ups[1].side == -1.0


def test_documented_asset_ctxs_csv_rows():
    rows = [M.asset_ctxs_row(r) for r in csv.DictReader(io.StringIO(DOCUMENTED["asset_ctxs_csv"]))]
    t, ctx = rows[0]
    assert t == 1704110400 * 10**9 and ctx == ("BTC", 0.0000125, 11234.5, 42285.0, 42280.0, 0.00012, 42286.0)
    t2, ctx2 = rows[2]
    assert t2 - t == 60 * 10**9 and math.isnan(ctx2.premium) and math.isnan(ctx2.mid)


def test_iso_times():
    assert M.iso_to_ns("2024-01-01T12:00:01.138942031") == 1704110401_138942031
    assert M.iso_to_ns("2024-01-01 12:00:00") == M.iso_to_ns("2024-01-01T12:00:00Z") == 1704110400 * 10**9
    assert M.iso_to_ns("2024-01-01T12:00:00.5+00:00") == 1704110400_500000000


@pytest.mark.parametrize(
    "data, match",
    [
        (
            {"coin": "X", "time": 1, "levels": [[{"px": "2", "sz": "1"}, {"px": "3", "sz": "1"}], []]},
            "strict price order",
        ),
        ({"coin": "X", "time": 1, "levels": [[{"px": "3", "sz": "1"}], [{"px": "3", "sz": "1"}]]}, "crossed"),
        ({"coin": "X", "time": 1, "levels": [[{"px": "-1", "sz": "1"}], []]}, "positive"),
        ({"coin": "X", "time": 1, "levels": [[{"px": "nan", "sz": "1"}], []]}, "positive"),
        ({"coin": "X", "time": 0, "levels": [[], []]}, "time"),
        ({"coin": "X", "time": 1, "levels": [[]]}, "unpack"),
    ],
)
def test_malformed_books_raise(data, match):
    with pytest.raises(ValueError, match=match):
        M.l2_book(data)


def test_malformed_trades_raise():
    good = {"coin": "BTC", "side": "B", "px": "1.0", "sz": "2", "time": 5, "tid": 7, "hash": "0x0"}
    assert M.trade(good).sz == 2.0
    for bad in (
        {**good, "side": "X"},
        {**good, "tid": "7"},
        {**good, "sz": "0"},
        {k: v for k, v in good.items() if k != "px"},
    ):
        with pytest.raises((ValueError, KeyError)):
            M.trade(bad)
