"""The loopback server's ``/exchange``, driven by the unmodified SDK (its own signing and
nonces): Hyperliquid-shaped statuses, signature and nonce checks, the price rules, fills from
the matching kernel pushed on ``userFills`` / ``orderUpdates``, and ``scheduleCancel``."""

from __future__ import annotations

import json

import pytest
import websocket
from eth_account import Account
from hyperliquid import exchange as sdk_exchange
from hyperliquid.exchange import Exchange
from hyperliquid.utils.signing import get_timestamp_ms, sign_l1_action
from hyperliquid.utils.types import Cloid

from flowmm.execution.hyperliquid import NonceSource
from flowmm.hyperliquid.loopback import LoopbackServer


def _book(bid: float, ask: float, t: int = 1_704_110_400_000) -> dict:
    return {"coin": "BTC", "time": t, "levels": [[{"px": str(bid), "sz": "1.0", "n": 3}],
                                                 [{"px": str(ask), "sz": "1.0", "n": 2}]]}  # fmt: skip


@pytest.fixture
def srv(tmp_path):
    rec = tmp_path / "btc.rec"
    rec.write_text(f"1704110400000000000 {json.dumps({'channel': 'l2Book', 'data': _book(42000, 42001)})}\n")
    with LoopbackServer(rec, speed=None, exchange=True) as server:
        server.exchange.on_market("l2Book", _book(42000.0, 42001.0))
        yield server


@pytest.fixture
def sdk(srv, monkeypatch):
    """The SDK's Exchange with a throwaway key; its millisecond nonce made strictly increasing
    (flowmm's NonceSource), as two requests may be signed in one millisecond."""
    monkeypatch.setattr(sdk_exchange, "get_timestamp_ms", NonceSource().next)
    wallet = Account.create()
    return Exchange(wallet, srv.url), wallet.address.lower()


def _limit(tif: str = "Alo") -> dict:
    return {"limit": {"tif": tif}}


def _req(is_buy: bool, px: float, sz: float, cloid: Cloid | None = None, tif: str = "Alo") -> dict:
    return {"coin": "BTC", "is_buy": is_buy, "sz": sz, "limit_px": px, "order_type": _limit(tif),
            "reduce_only": False, "cloid": cloid}  # fmt: skip


def test_orders_modifies_and_cancels_answer_like_hyperliquid(srv, sdk):
    ex, user = sdk
    c1, c2, c3 = Cloid.from_int(1), Cloid.from_int(2), Cloid.from_int(3)
    reqs = [_req(True, 41990.0, 0.001, c1), _req(False, 42010.0, 0.001, c2), _req(True, 42001.0, 0.001, c3),
            _req(True, 41990.0, 0.0002)]  # fmt: skip
    res = ex.bulk_orders(reqs)
    assert res["status"] == "ok" and res["response"]["type"] == "order"
    st = res["response"]["data"]["statuses"]
    assert set(st[0]["resting"]) >= {"oid"} and set(st[1]["resting"]) >= {"oid"}
    assert st[2]["error"].startswith("Post only order would have immediately matched")  # crosses 42001
    assert st[3] == {"error": "Order must have minimum value of $10."}
    opened = srv.info({"type": "openOrders", "user": user})[1]
    assert sorted((o["side"], o["limitPx"], o.get("cloid")) for o in opened) == [
        ("A", "42010", c2.to_raw()), ("B", "41990", c1.to_raw())
    ]  # fmt: skip
    old = st[0]["resting"]["oid"]
    mod = ex.bulk_modify_orders_new(
        [{"oid": c1, "order": {"coin": "BTC", "is_buy": True, "sz": 0.002, "limit_px": 41995.0,
                               "order_type": _limit(), "reduce_only": False, "cloid": c1}}]
    )  # fmt: skip
    new = mod["response"]["data"]["statuses"][0]["resting"]["oid"]
    assert new != old  # a modify is a cancel-replace: a new oid, the same cloid
    status = srv.info({"type": "orderStatus", "user": user, "oid": c1.to_raw()})[1]
    assert status["order"]["order"]["oid"] == new and status["order"]["order"]["limitPx"] == "41995"
    assert ex.cancel_by_cloid("BTC", c2)["response"]["data"]["statuses"] == ["success"]
    gone = ex.cancel("BTC", old)["response"]["data"]["statuses"][0]["error"]
    assert gone.startswith("Order was never placed, already canceled, or filled")
    assert [o["cloid"] for o in srv.info({"type": "openOrders", "user": user})[1]] == [c1.to_raw()]
    assert srv.exchange.stats["bad_signature"] == srv.exchange.stats["bad_nonce"] == 0


def test_prices_off_the_grid_and_taker_orders_are_refused(srv, sdk):
    ex, user = sdk
    base = {"coin": "BTC", "is_buy": True, "sz": 0.001, "reduce_only": False, "order_type": _limit()}
    st = ex.bulk_orders([{**base, "limit_px": 41990.5}, {**base, "sz": 0.0012345, "limit_px": 41990.0},
                         {**base, "limit_px": 41990.0, "order_type": _limit("Ioc")}])  # fmt: skip
    st = st["response"]["data"]["statuses"]
    assert st[0] == {"error": "Order has invalid price."}  # 6 significant figures
    assert st[1] == {"error": "Order has invalid size."}  # BTC: 5 size decimals
    assert st[2]["error"].startswith("Order could not immediately match")
    assert srv.exchange.stats["rule_violations"] == 2
    assert srv.info({"type": "openOrders", "user": user})[1] == []


def test_signatures_and_nonces_are_checked(srv, sdk, monkeypatch):
    ex, user = sdk
    order = ("BTC", True, 0.001, 41990.0, _limit())
    # the SDK's millisecond nonce: two requests in one millisecond, the second is refused
    frozen = get_timestamp_ms()
    monkeypatch.setattr(sdk_exchange, "get_timestamp_ms", lambda: frozen)
    assert ex.order(*order)["status"] == "ok"
    refused = ex.order(*order)
    assert refused["status"] == "err" and "nonce" in refused["response"]
    assert srv.exchange.nonces[user] == [frozen] and srv.exchange.stats["bad_nonce"] == 1
    # a tampered action recovers another signer: it can never act for the user
    action = {"type": "order", "grouping": "na", "orders": [
        {"a": 0, "b": True, "p": "41980", "s": "0.001", "r": False, "t": _limit()}]}  # fmt: skip
    sig = sign_l1_action(ex.wallet, action, None, frozen + 10, None, False)
    action["orders"][0]["p"] = "41970"
    code, body = srv.exchange_request({"action": action, "nonce": frozen + 10, "signature": sig})
    assert code == 200 and set(srv.exchange.last_nonce) - {user}  # booked to someone else
    assert [o["limitPx"] for o in srv.info({"type": "openOrders", "user": user})[1]] == ["41990"]
    _, body = srv.exchange_request({"action": {"type": "order"}, "nonce": "x"})
    assert body == {"status": "err", "response": "Failed to verify signature"}


def test_fills_are_pushed_and_reflected_in_info(srv, sdk):
    ex, user = sdk
    ws = websocket.create_connection(srv.url.replace("http", "ws") + "/ws", timeout=5)
    for t in ("userFills", "orderUpdates"):
        ws.send(json.dumps({"method": "subscribe", "subscription": {"type": t, "user": user}}))
    frames = [json.loads(ws.recv()) for _ in range(3)]  # two acks and the (empty) fill history
    snap = next(f for f in frames if f["channel"] == "userFills")
    assert snap["data"] == {"isSnapshot": True, "user": user, "fills": []}
    cloid = Cloid.from_int(9)
    res = ex.order("BTC", True, 0.002, 41990.0, _limit(), cloid=cloid)
    oid = res["response"]["data"]["statuses"][0]["resting"]["oid"]
    # the market trades through our bid: the whole order fills at our price, as a maker
    srv.push(srv.exchange.on_market("l2Book", _book(41980.0, 41985.0)))
    got = {}
    while len(got) < 3:
        msg = json.loads(ws.recv())
        got.setdefault(msg["channel"], []).append(msg["data"])
        if msg["channel"] == "orderUpdates" and msg["data"][0]["status"] == "filled":
            got["filled"] = msg["data"][0]
    ws.close()
    assert got["orderUpdates"][0][0]["status"] == "open" and got["orderUpdates"][0][0]["order"]["oid"] == oid
    fill = got["userFills"][0]["fills"][0]
    assert (fill["px"], fill["sz"], fill["side"], fill["oid"], fill["crossed"]) == (
        "41990",
        "0.002",
        "B",
        oid,
        False,
    )
    assert float(fill["fee"]) == pytest.approx(41990 * 0.002 * 1.5e-4)  # the base maker fee
    assert got["filled"]["order"]["cloid"] == cloid.to_raw()
    assert srv.info({"type": "userFills", "user": user})[1] == [fill]
    pos = srv.info({"type": "clearinghouseState", "user": user})[1]["assetPositions"][0]["position"]
    assert pos["coin"] == "BTC" and float(pos["szi"]) == 0.002


def test_schedule_cancel_cancels_everything_when_it_passes(srv, sdk):
    ex, user = sdk
    ex.order("BTC", True, 0.001, 41990.0, _limit())
    too_soon = ex.schedule_cancel(get_timestamp_ms() + 1000)
    assert too_soon["status"] == "err" and "at least 5 seconds" in too_soon["response"]
    assert ex.schedule_cancel(get_timestamp_ms() + 6000) == {"status": "ok", "response": {"type": "default"}}
    assert len(srv.info({"type": "openOrders", "user": user})[1]) == 1
    srv.exchange.dead_man[user] -= 10_000  # let the time pass
    pushes = srv.exchange.on_market("l2Book", _book(42000.0, 42001.0))
    assert [u["status"] for _, ch, ups in pushes if ch == "orderUpdates" for u in ups] == ["scheduledCancel"]
    assert srv.info({"type": "openOrders", "user": user})[1] == []
    assert srv.exchange.stats["scheduled_cancels"] == 1
