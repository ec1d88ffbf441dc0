"""Real execution (``--execute``) against the loopback exchange, with the SDK's real signing and
a throwaway key: the order path, the key's secrecy, hard stops, reconnects, nonces, and the
price / size rules of every order sent."""

from __future__ import annotations

import json
import logging
import math
import pickle
import threading
import time
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from pathlib import Path

import lz4.frame
import pyarrow.parquet as pq
import pytest
from eth_account import Account
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from flowmm.cli import main
from flowmm.errors import UsageError
from flowmm.execution.hyperliquid import (
    ExecConfig,
    HyperliquidBroker,
    NonceSource,
    load_signer,
    resolve_exec_network,
)
from flowmm.execution.hyperliquid import wire as W
from flowmm.execution.hyperliquid.keys import ACCOUNT_ENV, KEY_ENV
from flowmm.execution.hyperliquid.ratelimit import RateLimiter
from flowmm.execution.paper import PaperParams
from flowmm.graph import load_graph
from flowmm.hyperliquid.loopback import LoopbackServer
from flowmm.sources.live import Live, LiveConfig, StaleGuard


@pytest.fixture
def key(monkeypatch) -> str:
    """A throwaway key, in the environment only."""
    acct = Account.create()
    secret = acct.key.hex()
    monkeypatch.setenv(KEY_ENV, secret)
    monkeypatch.delenv(ACCOUNT_ENV, raising=False)
    return secret


def _valid_order(p: str, s: str, sz_decimals: int) -> bool:
    """Hyperliquid's rules, computed independently of flowmm (decimal arithmetic on the wire
    strings): <= 5 significant figures unless an integer, <= 6 - szDecimals decimals, size on
    the lot grid, value >= $10."""
    px, sz = Decimal(p), Decimal(s)
    if px <= 0 or sz <= 0:
        return False
    px_dec = max(0, -px.normalize().as_tuple().exponent)
    sig = len(px.normalize().as_tuple().digits) if px != px.to_integral_value() else 0
    sz_dec = max(0, -sz.normalize().as_tuple().exponent)
    return sig <= 5 and px_dec <= 6 - sz_decimals and sz_dec <= sz_decimals and px * sz >= 10


def _strictly_increasing(xs: list[int]) -> bool:
    return all(b > a for a, b in zip(xs, xs[1:]))


def _files_text(folder: Path) -> str:
    out = []
    for f in folder.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            if f.name.endswith(".lz4"):
                data = lz4.frame.decompress(data)
            out.append(data.decode("latin-1"))
    return "\n".join(out)


# -- the order path, through the CLI ----------------------------------------------------------------


def test_execute_order_path_reconciles_with_the_server_and_never_shows_the_key(
    archive_rec, probe, key, tmp_path, capsys, caplog
):
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "run"
    with LoopbackServer(archive_rec, speed=60.0, start_delay_s=0.05, exchange=True) as srv:
        args = ["run", str(probe), "--source", "live", "--coin", "BTC", "--url", srv.url, "--execute",
                "--max-position", "0.01", "--max-notional", "2000", "--duration", "5s", "--stale-ms", "5000",
                "--out", str(out), "--no-progress"]  # fmt: skip
        assert main(args) == 0
        ex = srv.exchange
        user = Account.from_key(key).address.lower()
        server_open = ex._open(user)
        server_fills = ex.fills.get(user, [])
        server_q = ex.accounts[(user, "BTC")].position
    std = capsys.readouterr()
    s = json.loads((out / "summary.json").read_text())
    h = s["hyperliquid"]
    c = h["counts"]
    # every kind of action reached the exchange, and the exchange's answers settled every order
    assert c["placed"] > 0 and c["modified"] > 0 and c["cancelled"] > 0
    assert c["requests_order"] == ex.stats["action_order"]
    assert c["requests_modify"] == ex.stats["action_batchModify"]
    assert c["requests_cancel"] == ex.stats["action_cancelByCloid"]
    assert server_open == [] and h["open_at_exit"] == 0 and s["stale_guard"]["resting_at_end"] == 0
    # fills: the same ones on both sides, and the same position
    fills = pq.read_table(out / "fills.parquet").to_pylist()
    assert len(fills) == len(server_fills) == s["fills_buys"] + s["fills_sells"] > 0
    assert sorted((f["px"], f["sz"], f["side"]) for f in fills) == sorted(
        (float(f["px"]), float(f["sz"]), 1.0 if f["side"] == "B" else -1.0) for f in server_fills
    )
    assert s["final_q"] == pytest.approx(server_q, abs=1e-12)
    # signatures verified, nonces strictly increasing, every order within Hyperliquid's rules
    assert ex.stats["bad_signature"] == 0 and ex.stats["bad_nonce"] == 0
    assert _strictly_increasing(ex.nonces[user]) and len(ex.nonces[user]) == h["requests_signed"]
    assert ex.stats["rule_violations"] == 0 and ex.orders_seen
    assert all(
        _valid_order(w["p"], w["s"], 5) and w["t"] == {"limit": {"tif": "Alo"}} for w in ex.orders_seen
    )
    assert h["dead_man"]["set"] >= 1 and ex.stats["action_scheduleCancel"] >= 2  # set, then unset
    assert "EXECUTING real orders on loopback" in std.err
    assert not [t.name for t in threading.enumerate() if t.name.startswith("flowmm-")]  # all stopped
    # the key: in no output, no log, no file of the run folder
    for secret in (key, key.removeprefix("0x")):
        assert secret not in std.out and secret not in std.err
        assert secret not in caplog.text
        assert secret not in _files_text(out)


# -- hard stops and reconnects, through the Python API ----------------------------------------------


def _exec_run(graph, srv, tmp_path, key, *, watch=None, frames=900, **exec_cfg):
    signer = load_signer({KEY_ENV: key})
    live = Live(
        LiveConfig(url=srv.url, coin="BTC", address=signer.account, stale_ms={"book": 5000.0},
                   backoff_s=0.02, max_frames=frames, duration_s=20.0),
        record=tmp_path / "feed.rec.lz4",
    )  # fmt: skip
    exec_cfg = {"max_position": 0.01, "max_notional": 1e6, "backoff_s": 0.02, "dead_man_refresh_s": 0.5,
                **exec_cfg}  # fmt: skip
    cfg = ExecConfig(url=srv.url, network="loopback", coin="BTC", **exec_cfg)
    broker = HyperliquidBroker(cfg, signer, PaperParams(tick_size=live.tick_size))
    if watch is not None:
        threading.Thread(target=watch, args=(live, broker), daemon=True).start()
    run = graph.run(live, broker=StaleGuard(broker), out_dir=tmp_path / "run")
    return broker, run


def _wait(cond, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize("limit", ["max_position", "max_notional"])
def test_a_hard_stop_cancels_all_and_refuses_new_orders(limit, archive_rec, probe, key, tmp_path):
    graph = load_graph(probe)
    seen = {}

    def watch(live, broker):  # once orders rest, a trade elsewhere takes the account past its limit
        ex, user = srv.exchange, broker.account.lower()
        seen["resting"] = _wait(lambda: len(ex._open(user)) >= 2)
        srv.push(ex.external_fill(user, "BTC", 1.0, 42_000.0, 0.02))
        seen["cleared"] = _wait(lambda: ex._open(user) == [])  # while the run still goes on
        # a place sent before the halt may land after it (its cancel follows): wait until every
        # request sent so far is answered, not for a fixed time (a loaded machine is slower)
        answered = lambda: broker.halted is not None and broker.inflight == 0  # noqa: E731
        seen["cleared"] &= _wait(lambda: answered() and ex._open(user) == [])
        seen["orders_then"] = ex.stats["action_order"] + ex.stats["action_batchModify"]
        time.sleep(0.5)
        seen["orders_later"] = ex.stats["action_order"] + ex.stats["action_batchModify"]
        live.stop("test")

    limits = (
        {"max_position": 0.015} if limit == "max_position" else {"max_position": 1.0, "max_notional": 600.0}
    )
    with LoopbackServer(archive_rec, speed=60.0, start_delay_s=0.05, exchange=True) as srv:
        broker, run = _exec_run(graph, srv, tmp_path, key, watch=watch, **limits)
        server_q = srv.exchange.accounts[(broker.account.lower(), "BTC")].position
    assert seen["resting"] and seen["cleared"]
    assert broker.halted.startswith(limit)
    events = [e for e, _ in broker.events]
    halt = events.index("halt")
    assert "send" in events[:halt]
    after = [d for e, d in broker.events[halt:] if e == "send"]
    assert after and all(d.startswith("cancel") for d in after)  # cancel-all, and nothing new
    assert seen["orders_later"] == seen["orders_then"]
    assert broker.counts["cycles_not_quoting"] > 0
    assert run.summary["final_q"] == pytest.approx(server_q, abs=1e-12) and server_q > 0.015


def test_a_reconnect_reconciles_orders_before_quoting_resumes(archive_rec, probe, key, tmp_path):
    graph = load_graph(probe)
    seen = {}

    def watch(live, broker):
        ex, user = srv.exchange, broker.account.lower()
        seen["resting"] = _wait(lambda: len(ex._open(user)) >= 2)
        srv.faults.now("drop")  # every websocket dies; the broker's comes back after 0.5 s
        seen["blind"] = _wait(lambda: not broker.synced)
        # while it is away: an order of the account it does not know, and a fill it cannot see
        with ex.lock:
            wire = {"a": 0, "b": True, "p": "30000", "s": "0.001", "r": False, "t": {"limit": {"tif": "Alo"}}}
            seen["foreign"] = ex._orders(user, [wire], time.time_ns() // 1_000_000)[0][0]["resting"]["oid"]
        srv.push(ex.external_fill(user, "BTC", -1.0, 42_000.0, 0.003))
        seen["resynced"] = _wait(lambda: broker.counts["resyncs"] >= 1)
        time.sleep(1.0)  # quoting again
        live.stop("test")

    with LoopbackServer(archive_rec, speed=60.0, start_delay_s=0.05, exchange=True) as srv:
        broker, run = _exec_run(graph, srv, tmp_path, key, watch=watch, frames=3000, backoff_s=0.5)
        user = broker.account.lower()
        server_fills = srv.exchange.fills.get(user, [])
        server_open = srv.exchange._open(user)
        server_q = srv.exchange.accounts[(user, "BTC")].position
        scheduled = srv.exchange.stats["action_scheduleCancel"]
    assert seen["resting"] and seen["blind"] and seen["resynced"]
    ev = broker.events
    down = next(i for i, (e, _) in enumerate(ev) if e == "disconnected")
    up = next(i for i, (e, _) in enumerate(ev) if e == "resynced" and i > down)
    assert ev[up][1].endswith("1 cancelled")  # the unknown order of the coin
    between = [d for e, d in ev[down:up] if e == "send"]
    assert all(d.startswith("cancel") for d in between)  # no place and no modify while blind
    assert any(e == "send" and not d.startswith("cancel") for e, d in ev[up:])  # quoting resumed
    # the fill missed while the socket was down came back with the resync: both sides agree
    fills = run.fills.to_pylist()
    assert len(fills) == len(server_fills)
    assert [(f["sz"], f["side"]) for f in fills if math.isnan(f["oid"])] == [(0.003, -1.0)]  # not ours
    assert run.summary["final_q"] == pytest.approx(server_q, abs=1e-12)
    assert server_open == []  # the unknown order included
    assert run.summary["stale_guard"]["resting_at_end"] == 0
    # the dead-man switch was pushed forward while running (every 0.5 s here), then unset
    assert broker.dead_man["set"] >= 3 and broker.dead_man["errors"] == 0
    assert scheduled == broker.dead_man["set"] + 1 and user not in srv.exchange.dead_man


# -- nonces -------------------------------------------------------------------------------------------


def test_nonces_strictly_increase_when_the_clock_stands_still():
    clock = [1_700_000_000_000]
    src = NonceSource(lambda: clock[0])
    got: list[list[int]] = [[] for _ in range(4)]

    def take(k):
        for _ in range(500):
            got[k].append(src.next())

    threads = [threading.Thread(target=take, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    flat = sorted(n for g in got for n in g)
    assert flat == list(range(clock[0], clock[0] + 2000))  # unique, gap-free past the frozen ms
    assert all(_strictly_increasing(g) for g in got)
    clock[0] += 10_000  # the clock moves ahead again: nonces follow it
    assert src.next() == clock[0]


def test_rate_limits_ip_weight_and_address_budget():
    now = [0.0]
    lim = RateLimiter(ip_per_min=120.0, address_buffer=3.0, clock=lambda: now[0])  # 2 weight / s
    assert lim.ip_wait(100.0) == 0.0 and lim.ip_wait(20.0) == 0.0  # the full minute's weight
    assert lim.ip_wait(4.0) == pytest.approx(2.0)  # 4 over: 2 s at 2 per second
    now[0] += 2.0
    assert lim.ip_wait(1.0) == pytest.approx(0.5)
    assert lim.address_allows(3) and not lim.address_allows(1)  # the buffer is spent: places wait
    assert lim.address_allows(5, cancel=True)  # cancels always go
    lim.traded(10.0)  # 10 USDC traded: 10 more requests
    assert lim.address_allows(1) and lim.stats()["refused"] == 1


# -- prices and sizes ---------------------------------------------------------------------------------


def _on_grid(x: Decimal, step: Decimal, side: float) -> set[Decimal]:
    """``x`` on the grid of ``step``: down for a bid, up for an ask. Within float noise of a
    grid point (1e-6 steps: 28.122999999999998, 4901.999999999985) that point is also right."""
    units = x / step
    out = {units.to_integral_value(rounding=ROUND_FLOOR if side > 0 else ROUND_CEILING) * step}
    near = units.to_integral_value(rounding=ROUND_HALF_UP)
    if abs(units - near) <= Decimal("1e-6"):
        out.add(near * step)
    return out


@settings(max_examples=400, deadline=None)
@given(
    px=st.floats(1e-4, 2e6, allow_nan=False),
    sz=st.floats(1e-6, 1e5, allow_nan=False),
    sz_decimals=st.integers(0, 5),
    side=st.sampled_from([1.0, -1.0]),
)
def test_every_order_sent_satisfies_the_rules(px, sz, sz_decimals, side):
    # the expected order, computed in decimal from the rules: price decimals = 5 significant
    # figures, at most 6 - szDecimals (so integers always pass); size down to the lot
    x = Decimal(repr(px))
    decimals = max(0, min(6 - sz_decimals, 4 - x.adjusted()))
    want_p = _on_grid(x, Decimal(1).scaleb(-decimals), side)
    want_s = _on_grid(Decimal(repr(sz)), Decimal(1).scaleb(-sz_decimals), 1.0)
    values = {p * q for p in want_p for q in want_s}
    assume(all(abs(v - 10) > Decimal("1e-9") for v in values))  # float and decimal may differ at $10
    market = W.Market("X", 0, sz_decimals)
    if all(v < 10 for v in values):
        with pytest.raises(W.Refused):
            W.rounded(market, side, px, sz)
        return
    assume(all(v >= 10 for v in values))
    p, s = W.rounded(market, side, px, sz)
    assert Decimal(repr(p)) in want_p and Decimal(repr(s)) in want_s
    wire = W.order_wire(market, side, p, s, W.cloid_for(7, 1))
    assert _valid_order(wire["p"], wire["s"], sz_decimals)
    assert Decimal(wire["p"]) in want_p and Decimal(wire["s"]) in want_s


def test_refusals_and_batches():
    m = W.Market("BTC", 0, 5)
    with pytest.raises(W.Refused, match="minimum"):
        W.rounded(m, 1.0, 42_000.0, 0.0002)  # $8.40
    with pytest.raises(W.Refused, match="rounds to nothing"):
        W.rounded(m, 1.0, 42_000.0, 0.000004)
    assert W.rounded(m, 1.0, 42_123.7, 0.0012345) == (42_123.0, 0.00123)  # bid down, size down
    assert W.rounded(m, -1.0, 42_123.2, 0.001) == (42_124.0, 0.001)  # ask up
    with pytest.raises(W.Refused, match="grid"):
        W.check_order_wire(m, {"p": "42123.5", "s": "0.001"})
    items = [("Alo", i) for i in range(45)] + [("Gtc", 99), ("Alo", 100)]
    groups = W.batches(items)
    assert [len(g) for g in groups] == [40, 5, 1, 1]  # <= 40 a batch, one tif per batch
    assert all(len({tif for tif, _ in g}) == 1 for g in groups)
    assert W.ip_weight("exchange", 40) == 2 and W.ip_weight("exchange", 39) == 1
    c = W.cloid_for(0xABC, 17)
    assert W.oid_of_cloid(c.to_raw(), 0xABC) == 17 and W.oid_of_cloid(c.to_raw(), 0xABD) is None


# -- the key ------------------------------------------------------------------------------------------


def test_the_key_is_never_shown(key):
    signer = load_signer({KEY_ENV: key})
    for text in (repr(signer), str(signer)):
        assert key.removeprefix("0x") not in text and "redacted" in text
    with pytest.raises(TypeError):
        pickle.dumps(signer)
    bad = "0x" + "zz" * 32
    for env, name in (
        ({}, KEY_ENV),
        ({KEY_ENV: bad}, KEY_ENV),
        ({KEY_ENV: key, ACCOUNT_ENV: "nope"}, ACCOUNT_ENV),
    ):
        with pytest.raises(UsageError) as exc:
            load_signer(env)
        assert name in str(exc.value) and bad not in str(exc.value) and key not in str(exc.value)
    agent = load_signer({KEY_ENV: key, ACCOUNT_ENV: "0x" + "ab" * 20})
    assert agent.account == "0x" + "ab" * 20 and agent.signer_address == Account.from_key(key).address


def test_execute_refuses_without_key_limits_or_live_source(probe, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(KEY_ENV, raising=False)
    base = ["run", str(probe), "--execute", "--out", str(tmp_path / "x"), "--no-progress"]
    live = ["--source", "live", "--coin", "BTC", "--url", "http://127.0.0.1:9"]
    assert main(base + live + ["--max-position", "1", "--max-notional", "100"]) == 2
    assert f"environment variable {KEY_ENV}" in capsys.readouterr().err
    assert main(base + live) == 2
    assert "--max-position and --max-notional" in capsys.readouterr().err
    assert main(base + ["--source", "synthetic", "--max-position", "1", "--max-notional", "1"]) == 2
    assert "--execute needs --source live" in capsys.readouterr().err
    mixed = ["--source", "live", "--coin", "BTC", "--url", "https://api.hyperliquid-testnet.xyz", "--mainnet"]
    monkeypatch.setenv(KEY_ENV, Account.create().key.hex())
    assert main(base + mixed + ["--max-position", "1", "--max-notional", "100"]) == 2
    assert "mixed networks are refused" in capsys.readouterr().err
    implicit = ["--source", "live", "--coin", "BTC", "--url", "https://api.hyperliquid.xyz"]
    assert main(base + implicit + ["--max-position", "1", "--max-notional", "100"]) == 2
    assert "trades on mainnet: say --mainnet" in capsys.readouterr().err


def test_a_server_that_takes_no_orders_is_refused_before_the_run(archive_rec, probe, key, tmp_path, capsys):
    with LoopbackServer(archive_rec, speed=None) as srv:  # a feed-only loopback: no /exchange
        args = ["run", str(probe), "--source", "live", "--coin", "BTC", "--url", srv.url, "--execute",
                "--max-position", "0.01", "--max-notional", "100", "--out", str(tmp_path / "x"),
                "--no-progress"]  # fmt: skip
        assert main(args) == 2
        assert srv.stats["subscribe"] == 0  # stopped before the feed started
    err = capsys.readouterr().err
    assert "does not answer clearinghouseState" in err and "flowmm serve --exchange" in err
    assert "Traceback" not in err and key not in err


def test_orders_go_to_testnet_unless_mainnet_is_said():
    from flowmm.sources.live.config import NETWORKS

    main_, test = NETWORKS["mainnet"], NETWORKS["testnet"]
    assert resolve_exec_network(None, False, False) == (test, "testnet", "testnet")
    assert resolve_exec_network(None, True, False) == (test, "testnet", "testnet")
    assert resolve_exec_network(None, False, True) == (main_, "mainnet", "mainnet")
    assert resolve_exec_network(test, False, False) == (test, "testnet", "testnet")
    assert resolve_exec_network(main_, False, True) == (main_, "mainnet", "mainnet")
    assert resolve_exec_network("http://127.0.0.1:8765", False, False)[2] == "loopback"
    assert resolve_exec_network("http://127.0.0.1:8765", True, False)[2] == "testnet"  # a proxy, say
    with pytest.raises(UsageError, match="say --mainnet"):
        resolve_exec_network(main_, False, False)
    with pytest.raises(UsageError, match="mixed networks"):
        resolve_exec_network(test, False, True)
