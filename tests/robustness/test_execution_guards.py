"""Execution items of issue 20 that need no broker change: finite hard stops, --mainnet only
to mainnet, and the loopback exchange's scheduleCancel dead-man switch firing on its own."""

from __future__ import annotations

import json
import time

import pytest
from eth_account import Account
from hyperliquid import exchange as sdk_exchange
from hyperliquid.exchange import Exchange

from flowmm.errors import UsageError
from flowmm.execution.hyperliquid import NonceSource
from flowmm.execution.hyperliquid.config import resolve_exec_network
from flowmm.execution.hyperliquid.keys import KEY_ENV
from flowmm.hyperliquid.loopback import LoopbackServer
from flowmm.hyperliquid.loopback_exchange import MAX_TRIGGERS_PER_DAY


@pytest.mark.parametrize("limits", [["inf", "100"], ["1", "inf"], ["nan", "100"], ["1", "-inf"]])
def test_infinite_hard_stops_are_refused(limits, probe, tmp_path, monkeypatch, cli_run):
    monkeypatch.setenv(KEY_ENV, Account.create().key.hex())
    code, text = cli_run(
        "run", probe, "--execute", "--source", "live", "--coin", "BTC", "--url", "http://127.0.0.1:9",
        f"--max-position={limits[0]}", f"--max-notional={limits[1]}", "--out", tmp_path / "x",
        "--no-progress",
    )  # fmt: skip
    assert code == 2 and "a hard stop must be a finite number > 0" in text


def test_exec_config_refuses_infinite_limits_too():
    from pydantic import ValidationError

    from flowmm.execution.hyperliquid import ExecConfig

    with pytest.raises(ValidationError):
        ExecConfig(url="http://127.0.0.1:9", network="loopback", coin="BTC", max_position=float("inf"),
                   max_notional=100.0)  # fmt: skip


def test_mainnet_with_a_loopback_url_is_refused(probe, tmp_path, monkeypatch, cli_run):
    monkeypatch.setenv(KEY_ENV, Account.create().key.hex())
    code, text = cli_run(
        "run", probe, "--execute", "--source", "live", "--coin", "BTC", "--url", "http://127.0.0.1:9",
        "--mainnet", "--max-position", "1", "--max-notional", "100", "--out", tmp_path / "x", "--no-progress",
    )  # fmt: skip
    assert (
        code == 2 and "--mainnet with --url http://127.0.0.1:9" in text and "not Hyperliquid mainnet" in text
    )
    with pytest.raises(UsageError, match="say --mainnet"):  # and the converse
        resolve_exec_network("https://api.hyperliquid.xyz", False, False)
    with pytest.raises(UsageError, match="not Hyperliquid mainnet"):
        resolve_exec_network("https://api.hyperliquid-testnet.xyz.evil.example", False, True)


class FakeClock:
    """Wall-clock ns that a test moves forward by hand (thread-safe enough: one writer)."""

    def __init__(self):
        self.ns = time.time_ns()

    def __call__(self) -> int:
        return self.ns

    def advance(self, s: float) -> None:
        self.ns += int(s * 1e9)


def _book(bid: float, ask: float) -> dict:
    levels = [[{"px": str(bid), "sz": "1.0", "n": 3}], [{"px": str(ask), "sz": "1.0", "n": 2}]]
    return {"coin": "BTC", "time": 1_704_110_400_000, "levels": levels}


@pytest.fixture
def exchange(tmp_path, monkeypatch):
    rec = tmp_path / "btc.rec"
    rec.write_text(f"1704110400000000000 {json.dumps({'channel': 'l2Book', 'data': _book(42000, 42001)})}\n")
    clock = FakeClock()
    monkeypatch.setattr(sdk_exchange, "get_timestamp_ms", NonceSource().next)
    with LoopbackServer(rec, speed=None, exchange=True, clock=clock) as srv:
        srv.exchange.on_market("l2Book", _book(42000.0, 42001.0))
        wallet = Account.create()
        yield srv, Exchange(wallet, srv.url), wallet.address.lower(), clock


def _wait(cond, timeout: float = 30.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def test_schedule_cancel_fires_with_no_request_and_no_market_frame(exchange):
    srv, ex, user, clock = exchange
    for px in (41990.0, 41980.0, 41970.0, 41960.0):
        assert ex.order("BTC", True, 0.001, px, {"limit": {"tif": "Alo"}})["status"] == "ok"
    assert ex.schedule_cancel(clock() // 1_000_000 + 6000)["status"] == "ok"
    open_orders = lambda: srv.info({"type": "openOrders", "user": user})[1]  # noqa: E731
    assert len(open_orders()) == 4
    ex = None  # the client is gone (as after SIGKILL): no more requests, and the stream has ended
    time.sleep(0.3)
    assert len(open_orders()) == 4  # not before its time
    clock.advance(6.5)
    assert _wait(lambda: open_orders() == [])  # the server's own timer fired it
    assert srv.exchange.stats["scheduled_cancels"] == 1


def test_schedule_cancel_triggers_are_limited_per_day(exchange):
    srv, ex, user, clock = exchange
    for _ in range(MAX_TRIGGERS_PER_DAY):
        assert ex.schedule_cancel(clock() // 1_000_000 + 5000)["status"] == "ok"
        clock.advance(5.1)
        assert _wait(lambda: user not in srv.exchange.dead_man)
    refused = ex.schedule_cancel(clock() // 1_000_000 + 5000)
    assert refused["status"] == "err" and "10 triggers per day" in refused["response"]
    assert ex.schedule_cancel(None)["status"] == "ok"  # removing one is always allowed
