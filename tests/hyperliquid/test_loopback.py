"""The loopback server speaks Hyperliquid's protocol: the unmodified SDK works against it, and
each injected fault does exactly what it says at the frame it says."""

from __future__ import annotations

import gzip
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import websocket
from hyperliquid.info import Info

from flowmm.errors import SourceError
from flowmm.hyperliquid.loopback import Faults, LoopbackServer, Recording

CAPTURE = "hyperliquid/hftbacktest_ws_capture/btcusd_20250126.gz"


def _capture(shared_data) -> list[tuple[int, str]]:
    with gzip.open(shared_data(CAPTURE), "rt") as f:
        return [(int(line.split(" ", 1)[0]), line.split(" ", 1)[1].strip()) for line in f]


def _wait(cond, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        time.sleep(0.02)


def test_the_unmodified_sdk_works_against_the_server(shared_data):
    lines = _capture(shared_data)
    books = [json.loads(t)["data"] for _, t in lines if '"channel":"l2Book"' in t]
    trade_frames = [json.loads(t)["data"] for _, t in lines if '"channel":"trades"' in t]
    got: dict[str, list] = {"l2Book": [], "trades": []}
    with LoopbackServer(shared_data(CAPTURE), speed=None) as srv:
        info = Info(base_url=srv.url, skip_ws=False)  # posts spotMeta and meta at construction
        try:
            assert info.coin_to_asset == {"BTC": 0} and info.asset_to_sz_decimals == {0: 5}
            info.subscribe({"type": "l2Book", "coin": "BTC"}, lambda m: got["l2Book"].append(m["data"]))
            info.subscribe({"type": "trades", "coin": "BTC"}, lambda m: got["trades"].append(m["data"]))
            _wait(lambda: srv.finished.is_set() and len(got["l2Book"]) >= len(books))
            time.sleep(0.1)
            snap = info.l2_snapshot("BTC")
        finally:
            info.disconnect_websocket()
    assert srv.stats["subscribe"] == 2 and srv.stats["info_spotMeta"] == 1
    # every book, in order, levels as recorded, times moved by one constant (rebased to now)
    assert [b["levels"] for b in got["l2Book"]] == [b["levels"] for b in books]
    shifts = {g["time"] - b["time"] for g, b in zip(got["l2Book"], books)}
    assert len(shifts) == 1 and shifts.pop() > 0
    # the recent-trades batch on subscribing (the first trades frame), then every trades frame
    assert len(got["trades"]) == len(trade_frames) + 1
    assert [t["tid"] for t in got["trades"][0]] == [t["tid"] for t in trade_frames[0]]
    assert [[t["tid"] for t in f] for f in got["trades"][1:]] == [[t["tid"] for t in f] for f in trade_frames]
    assert snap["coin"] == "BTC" and snap["levels"] == books[-1]["levels"]


def test_hip3_dex_with_the_sdk(shared_data, tmp_path):
    """A HIP-3 coin (``dex:COIN``): perpDexs lists the dex, meta(dex=...) its coins, asset 110000."""
    rec = tmp_path / "xyz.rec"
    renamed = [(ns, t.replace('"coin":"BTC"', '"coin":"xyz:BTC"')) for ns, t in _capture(shared_data)]
    rec.write_text("".join(f"{ns} {t}\n" for ns, t in renamed))
    with LoopbackServer(rec, speed=None) as srv:
        info = Info(base_url=srv.url, skip_ws=True, perp_dexs=["", "xyz"])
        assert info.coin_to_asset == {"xyz:BTC": 110000}
        assert info.perp_dexs()[1]["name"] == "xyz"
        body = info.post("/info", {"type": "metaAndAssetCtxs", "dex": "xyz"})
    assert body[0]["universe"][0]["name"] == "xyz:BTC" and len(body[1]) == 1
    assert float(body[1][0]["markPx"]) > 0


def _client(srv: LoopbackServer, subs=({"type": "l2Book", "coin": "BTC"},)) -> websocket.WebSocket:
    ws = websocket.create_connection(srv.url.replace("http", "ws") + "/ws", timeout=5)
    for sub in subs:
        ws.send(json.dumps({"method": "subscribe", "subscription": sub}))
    return ws


def _read(ws, n: int) -> list[str]:
    out = []
    while len(out) < n:
        try:
            text = ws.recv()
        except (websocket.WebSocketException, OSError):
            break
        if not text:
            break
        out.append(text)
    return out


def test_protocol_acks_pongs_and_errors(shared_data):
    with LoopbackServer(shared_data(CAPTURE), speed=None, start_delay_s=5.0) as srv:
        ws = _client(srv, [{"type": "l2Book", "coin": "BTC"}, {"type": "l2Book", "coin": "NOPE"}])
        ws.send('{"method":"ping"}')
        ws.send('{"method":"dance"}')
        ws.send("not json")
        got = [json.loads(t) for t in _read(ws, 5)]
        ws.close()
        assert got[0] == {
            "channel": "subscriptionResponse",
            "data": {"method": "subscribe", "subscription": {"type": "l2Book", "coin": "BTC"}},
        }
        assert got[1] == {"channel": "error", "data": 'Invalid subscription {"type":"l2Book","coin":"NOPE"}'}
        assert got[2] == {"channel": "pong"}
        assert got[3]["channel"] == "error" and "dance" in got[3]["data"]
        assert got[4]["channel"] == "error" and "not json" in got[4]["data"]

        def post(body: bytes, path: str = "/info") -> int:
            req = urllib.request.Request(
                srv.url + path, data=body, headers={"Content-Type": "application/json"}
            )
            try:
                return urllib.request.urlopen(req, timeout=5).status
            except urllib.error.HTTPError as exc:
                return exc.code

        assert post(b'{"type":"clearinghouseState","user":"0x0"}') == 422
        assert post(b"{nope") == 422
        assert post(b'{"type":"meta"}', "/exchange") == 404
        assert post(b'{"type":"meta"}') == 200


@pytest.mark.parametrize("kind", ["duplicate", "reorder", "garbage", "drop", "stall"])
def test_each_fault_acts_at_its_frame(kind, shared_data, tmp_path):
    lines = [(ns, t) for ns, t in _capture(shared_data) if '"channel":"l2Book"' in t]
    books = [t for _, t in lines]
    rec = tmp_path / "books.rec"  # the capture's books only: frame indexes are book indexes
    rec.write_text("".join(f"{ns} {t}\n" for ns, t in lines))
    faults = Faults().at(3, kind, 0.5)  # before the stream's 4th data frame
    with LoopbackServer(rec, speed=None, faults=faults, rebase_time=False) as srv:
        ws = _client(srv)
        assert json.loads(ws.recv())["channel"] == "subscriptionResponse"
        got = _read(ws, 3)
        t3 = time.monotonic()
        got += _read(ws, 3)
        gap = time.monotonic() - t3
        ws.close()
    assert got[:3] == books[:3] and srv.faults.done[kind] == 1
    expected = {
        "duplicate": [books[3], books[3], books[4]],
        "reorder": [books[4], books[3], books[5]],
        "garbage": ["}garbage{ not json", books[3], books[4]],
        "drop": [],  # closed abruptly, no close frame
        "stall": books[3:6],
    }[kind]
    assert got[3:] == expected
    if kind == "stall":
        assert gap >= 0.45  # the stream paused for the fault's 0.5 s


def test_fault_specs_and_bad_recordings(tmp_path):
    assert Faults.parse("stall@2000:1.5") == ("stall", 2000, 1.5)
    assert Faults.parse("drop@10") == ("drop", 10, 1.0)
    for bad in ("boom@1", "drop", "drop@x"):
        with pytest.raises(SourceError, match="not a fault"):
            Faults.parse(bad)
    with pytest.raises(ValueError, match="unknown fault"):
        Faults().at(1, "boom")
    empty = tmp_path / "empty.rec"
    empty.write_text('1 {"channel":"flowmm.session","data":{"coin":"BTC"}}\n')
    with pytest.raises(SourceError, match="no websocket frames"):
        Recording.load(empty)
    bad = tmp_path / "bad.rec"
    bad.write_text("12 {not json}\n")
    with pytest.raises(SourceError) as exc:
        Recording.load(bad)
    assert f"{bad}:1" in str(exc.value)
    with pytest.raises(SourceError, match="no such recording"):
        Recording.load(Path(tmp_path / "missing.rec"))


def test_recorded_rest_bodies_answer_info(tmp_path):
    """A flowmm recording's REST bodies are what /info answers (a live run's meta replays as is)."""
    meta = {"universe": [{"name": "HYPE", "szDecimals": 2, "maxLeverage": 10}]}
    levels = [[{"px": "20.0", "sz": "1", "n": 1}], [{"px": "20.1", "sz": "2", "n": 1}]]
    book = {"coin": "HYPE", "time": 1700000000000, "levels": levels}
    rest = {"channel": "flowmm.rest", "data": {"request": {"type": "meta"}, "response": meta}}
    rec = tmp_path / "r.rec"
    rec.write_text(f"1 {json.dumps(rest)}\n2 {json.dumps({'channel': 'l2Book', 'data': book})}\n")
    with LoopbackServer(rec, speed=None, rebase_time=False) as srv:
        info = Info(base_url=srv.url, skip_ws=True)
        assert info.meta() == meta and info.coin_to_asset == {"HYPE": 0}
        assert info.l2_snapshot("HYPE") == book
