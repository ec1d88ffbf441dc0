"""The loopback server's exchange: signed ``/exchange`` actions against the paper matching kernel.

``LoopbackServer`` (``flowmm serve``) streams a recording; with ``exchange=True`` (``flowmm
serve --exchange``) this is what lets a real-execution run (``flowmm run --source live
--execute --url <loopback>``) trade against it. Main-dex perps only (asset = index in ``meta``). It behaves as
Hyperliquid does where flowmm depends on it, and says so where it does not:

* **Authentication.** Every request's signer is recovered from its EIP-712 signature with the
  SDK's ``recover_agent_or_user_from_l1_action`` (testnet phantom agent, ``source`` ``b``,
  unless ``mainnet``); the recovered address is the user (agent approvals are not modelled).
  A nonce must be larger than the signer's last one (stricter than the exchange's "one of the
  100 highest", so a client that reuses or reorders nonces is caught); refusals answer
  ``{"status": "err", "response": ...}`` as the exchange does.
* **Rules.** Every order's price must be on the 5-significant-figure / decimals grid, its size
  on the lot grid and its value at least $10; violations get the exchange's error status and
  are counted (``stats["rule_violations"]``: a test asserts it stays 0).
* **Actions.** ``order`` (``Alo``: rejected if it would cross; ``Gtc`` that does not cross
  rests; ``Ioc`` and crossing ``Gtc`` are answered with the exchange's "could not immediately
  match" error: taker fills are not modelled), ``cancel``, ``cancelByCloid``, ``batchModify``
  (by oid or cloid; a modify is a cancel-replace: new oid, same cloid, back of the queue, and a
  post-only modify that would cross cancels the order), ``scheduleCancel`` (at least 5 s ahead;
  when it passes, every open order of the user is cancelled with status ``scheduledCancel``,
  by the server's own timer: no request or market frame needed, as after the client died; at
  most 10 triggers per UTC day; the clock is injectable, ``PaperExchange(clock=...)``).
* **Fills.** Resting orders are matched by :mod:`flowmm.execution.matching` (risk-averse queue
  model) against the streamed ``trades`` and ``l2Book`` frames, as maker fills with the base
  maker fee; each fill is pushed on ``userFills`` and (when it completes an order) on
  ``orderUpdates``; a ``userFills`` subscription first gets the history as a snapshot.
* **Info.** ``openOrders``, ``orderStatus``, ``userFills`` (newest first) and
  ``clearinghouseState`` (the position per coin).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np
from hyperliquid.utils.signing import float_to_wire, recover_agent_or_user_from_l1_action

from flowmm.core.ports import (
    ACT_CANCEL,
    ACT_MODIFY,
    ACT_PLACE,
    ASK_N,
    ASK_PX,
    ASK_SZ,
    BID_N,
    BID_PX,
    BID_SZ,
    BOOK_LEVELS,
    FI_FEE,
    FI_OID,
    FI_PX,
    FI_SIDE,
    FI_SZ,
    ORD_OID,
    ORD_ORIG_SZ,
    ORD_PX,
    ORD_SIDE,
    ORD_SZ,
    PORT_TYPES,
)
from flowmm.execution import hyperliquid_rules as HR
from flowmm.execution import matching as M

Push = tuple[str, str, Any]  # (user, channel, data)
_FILL_RING = 1024
_NEVER = "Order was never placed, already canceled, or filled."
# Hyperliquid: at most 10 scheduleCancel triggers per day, the count reset at 00:00 UTC (the
# error's wording here is ours; the exchange's text is not documented)
MAX_TRIGGERS_PER_DAY = 10
_DAY_MS = 86_400_000
_TOO_MANY_TRIGGERS = "Cannot schedule cancel: the maximum of 10 triggers per day has been reached"
_TOO_EARLY = "Scheduled cancel time too early, must be at least 5 seconds from now."


def _side(is_buy: bool) -> float:
    return 1.0 if is_buy else -1.0


class _Account:
    """One user's orders on one coin: the matching kernel's tables and their metadata."""

    def __init__(self):
        self.orders, self.aux, self.work = M.new_state()
        self.fill_t, self.fill_r = PORT_TYPES["fills"].allocate(capacity=_FILL_RING)
        self.fill_n = np.zeros(1, np.int64)
        self.meta: dict[int, dict] = {}  # exchange oid -> {cloid, timestamp, origSz}
        self.position = 0.0
        self.entry = 0.0


class PaperExchange:
    """The matching side of the loopback server (thread-safe; one lock)."""

    def __init__(
        self,
        universe,
        *,
        mainnet: bool = False,
        match: M.MatchParams | None = None,
        clock: Callable[[], int] = time.time_ns,
    ):
        self._universe = universe  # () -> [{"name", "szDecimals"}], the server's meta
        self.clock = clock  # wall-clock ns; injectable, so a test moves time without waiting
        self.triggers: Counter = Counter()  # (user, UTC day) -> scheduleCancel triggers
        self.mainnet = mainnet
        self.params = (match or M.MatchParams()).pack()
        self.lock = threading.Lock()
        self.books: dict[str, np.ndarray] = {}
        self.accounts: dict[tuple[str, str], _Account] = {}
        self.fills: dict[str, list[dict]] = {}  # user -> HL-shaped fills, oldest first
        self.last_nonce: dict[str, int] = {}
        self.nonces: dict[str, list[int]] = {}
        self.dead_man: dict[str, int] = {}  # user -> scheduleCancel time (ms)
        self.orders_seen: list[dict] = []  # every order wire accepted for checking (tests)
        self.next_oid = 1_000_000
        self.next_tid = 5_000_000
        self.stats: Counter = Counter()

    # -- metadata -------------------------------------------------------------------------------
    def _asset(self, a: int) -> tuple[str, int] | None:
        uni = self._universe()
        return (uni[a]["name"], int(uni[a]["szDecimals"])) if 0 <= a < len(uni) else None

    def _asset_of(self, coin: str) -> int:
        return next(i for i, u in enumerate(self._universe()) if u["name"] == coin)

    def _account(self, user: str, coin: str) -> _Account:
        return self.accounts.setdefault((user, coin), _Account())

    def _book(self, coin: str) -> np.ndarray:
        if coin not in self.books:
            self.books[coin] = PORT_TYPES["book"].allocate()
        return self.books[coin]

    # -- the market -----------------------------------------------------------------------------
    def on_market(self, channel: str, data: Any) -> list[Push]:
        """A streamed frame: a book or trades of a coin may fill resting orders."""
        now_ns = self.clock()
        with self.lock:
            pushes = self._expire(now_ns // 1_000_000)
            if channel == "l2Book" and isinstance(data, dict):
                book = self._book(data["coin"])
                book[:] = np.nan
                for col, n_col, sz_col, levels in (
                    (BID_PX, BID_N, BID_SZ, data["levels"][0]),
                    (ASK_PX, ASK_N, ASK_SZ, data["levels"][1]),
                ):
                    for i, lv in enumerate(levels[:BOOK_LEVELS]):
                        book[i, col], book[i, sz_col], book[i, n_col] = (
                            float(lv["px"]),
                            float(lv["sz"]),
                            lv["n"],
                        )
                for (user, coin), acc in self.accounts.items():
                    if coin == data["coin"]:
                        mid = self._mid(coin)
                        first = int(acc.fill_n[0])
                        M.on_book(now_ns, book, acc.orders, acc.aux, acc.work, self.params, mid,
                                  acc.fill_t, acc.fill_r, acc.fill_n)  # fmt: skip
                        pushes += self._fills_of(user, coin, acc, first)
            elif channel == "trades" and isinstance(data, list):
                for tr in data:
                    for (user, coin), acc in self.accounts.items():
                        if coin == tr.get("coin"):
                            first = int(acc.fill_n[0])
                            M.on_trade(now_ns, float(tr["px"]), float(tr["sz"]), _side(tr["side"] == "B"),
                                       acc.orders, acc.aux, acc.work, self.params, self._mid(coin),
                                       acc.fill_t, acc.fill_r, acc.fill_n)  # fmt: skip
                            pushes += self._fills_of(user, coin, acc, first)
        return pushes

    def _mid(self, coin: str) -> float:
        b = self._book(coin)
        return 0.5 * (b[0, BID_PX] + b[0, ASK_PX])

    def _fills_of(self, user: str, coin: str, acc: _Account, first: int) -> list[Push]:
        now_ms = self.clock() // 1_000_000
        out, gone = [], []
        for k in range(first, int(acc.fill_n[0])):
            r = acc.fill_r[k % _FILL_RING]
            oid, side, px, sz = int(r[FI_OID]), float(r[FI_SIDE]), float(r[FI_PX]), float(r[FI_SZ])
            meta = acc.meta.get(oid, {})
            self._record_fill(
                user, coin, acc, oid, side, px, sz, float(r[FI_FEE]), False, meta.get("cloid"), now_ms
            )
            self.stats["fills"] += 1
            if M._find(acc.orders, float(oid)) < 0:
                gone.append(self._update(coin, oid, side, px, 0.0, meta, "filled", now_ms))
        if first < int(acc.fill_n[0]):
            new = self.fills[user][-(int(acc.fill_n[0]) - first) :]
            out.append((user, "userFills", {"user": user, "fills": new}))
        if gone:
            out.append((user, "orderUpdates", gone))
        return out

    def external_fill(self, user: str, coin: str, side: float, px: float, sz: float) -> list[Push]:
        """A taker fill of the account that is none of its resting orders (a trade from another
        client, a liquidation): it moves the position; pushed on ``userFills``."""
        user = user.lower()
        now_ms = self.clock() // 1_000_000
        with self.lock:
            self.next_oid += 1
            fee = px * sz * self.params[M.P_TAKER_RATE]
            acc = self._account(user, coin)
            fill = self._record_fill(user, coin, acc, self.next_oid, side, px, sz, fee, True, None, now_ms)
            self.stats["external_fills"] += 1
        return [(user, "userFills", {"user": user, "fills": [fill]})]

    def _record_fill(self, user, coin, acc, oid, side, px, sz, fee, crossed, cloid, now_ms) -> dict:
        """A fill in Hyperliquid's ``userFills`` shape; moves the account's position."""
        start = acc.position
        acc.position += side * sz
        self.next_tid += 1
        fill = {"coin": coin, "px": float_to_wire(px), "sz": float_to_wire(sz),
                "side": "B" if side > 0 else "A", "time": now_ms, "startPosition": str(start),
                "dir": "Open Long" if side > 0 else "Open Short",
                "closedPnl": "0.0", "hash": "0x" + "0" * 64, "oid": oid, "crossed": crossed,
                "fee": f"{fee:.6f}", "tid": self.next_tid, "feeToken": "USDC"}  # fmt: skip
        if cloid:
            fill["cloid"] = cloid
        self.fills.setdefault(user, []).append(fill)
        return fill

    def _update(self, coin, oid, side, px, sz, meta, status, now_ms) -> dict:
        order = {"coin": coin, "side": "B" if side > 0 else "A", "limitPx": float_to_wire(px),
                 "sz": float_to_wire(sz), "oid": oid, "timestamp": meta.get("timestamp", now_ms),
                 "origSz": meta.get("origSz", float_to_wire(sz))}  # fmt: skip
        if meta.get("cloid"):
            order["cloid"] = meta["cloid"]
        return {"order": order, "status": status, "statusTimestamp": now_ms}

    def expire(self) -> list[Push]:
        """Fire every scheduleCancel whose time has come (the server calls this on a timer: the
        switch must fire with no request and no market frame, e.g. after the client died)."""
        with self.lock:
            return self._expire(self.clock() // 1_000_000)

    def _expire(self, now_ms: int) -> list[Push]:
        """scheduleCancel: past its time, every open order of the user is cancelled."""
        out = []
        for user, t_ms in list(self.dead_man.items()):
            if now_ms >= t_ms:
                del self.dead_man[user]
                self.stats["scheduled_cancels"] += 1
                self.triggers[(user, t_ms // _DAY_MS)] += 1
                updates = []
                for (u, coin), acc in self.accounts.items():
                    if u == user:
                        for i in range(acc.orders.shape[0]):
                            if acc.orders[i, ORD_OID] == acc.orders[i, ORD_OID]:
                                updates.append(self._remove(coin, acc, i, "scheduledCancel", now_ms))
                if updates:
                    out.append((user, "orderUpdates", updates))
        return out

    def _remove(self, coin: str, acc: _Account, i: int, status: str, now_ms: int) -> dict:
        o = acc.orders[i]
        oid = int(o[ORD_OID])
        up = self._update(coin, oid, o[ORD_SIDE], o[ORD_PX], o[ORD_SZ], acc.meta.get(oid, {}), status, now_ms)
        M.apply_action(self.clock(), ACT_CANCEL, np.nan, np.nan, np.nan, float(oid), self._book(coin),
                       acc.orders, acc.aux, acc.work, self.params)  # fmt: skip
        return up

    # -- /exchange ------------------------------------------------------------------------------
    def request(self, payload: dict) -> tuple[dict, list[Push]]:
        """One signed ``/exchange`` request -> (answer, pushes)."""
        try:
            action, nonce, sig = payload["action"], int(payload["nonce"]), payload["signature"]
            user = recover_agent_or_user_from_l1_action(
                action, sig, payload.get("vaultAddress"), nonce, payload.get("expiresAfter"), self.mainnet
            ).lower()
        except Exception:  # noqa: BLE001 -- whatever is wrong with it, the exchange refuses it
            self.stats["bad_signature"] += 1
            return {"status": "err", "response": "Failed to verify signature"}, []
        now_ms = self.clock() // 1_000_000
        with self.lock:
            if nonce <= self.last_nonce.get(user, 0):
                self.stats["bad_nonce"] += 1
                return {
                    "status": "err",
                    "response": f"Invalid nonce: {nonce} is not above the last nonce",
                }, []
            self.last_nonce[user] = nonce
            self.nonces.setdefault(user, []).append(nonce)
            pushes = self._expire(now_ms)
            kind = action.get("type")
            self.stats[f"action_{kind}"] += 1
            if kind == "order":
                statuses, ups = self._orders(user, action.get("orders", []), now_ms)
                answer = {"type": "order", "data": {"statuses": statuses}}
            elif kind in ("cancel", "cancelByCloid"):
                statuses, ups = self._cancels(user, kind, action.get("cancels", []), now_ms)
                answer = {"type": "cancel", "data": {"statuses": statuses}}
            elif kind == "batchModify":
                statuses, ups = self._modifies(user, action.get("modifies", []), now_ms)
                answer = {"type": "order", "data": {"statuses": statuses}}
            elif kind == "scheduleCancel":
                t = action.get("time")
                if t is None:
                    self.dead_man.pop(user, None)
                elif int(t) < now_ms + 5000:
                    return {"status": "err", "response": _TOO_EARLY}, pushes
                elif self.triggers[(user, now_ms // _DAY_MS)] >= MAX_TRIGGERS_PER_DAY:
                    return {"status": "err", "response": _TOO_MANY_TRIGGERS}, pushes
                else:
                    self.dead_man[user] = int(t)
                return {"status": "ok", "response": {"type": "default"}}, pushes
            else:
                return {"status": "err", "response": f"Unknown action type: {kind}"}, pushes
        if ups:
            pushes.append((user, "orderUpdates", ups))
        return {"status": "ok", "response": answer}, pushes

    def _check(self, w: dict, sz_dec: int) -> str | None:
        """The exchange's rules on one order wire; the error text, or None when it is valid."""
        try:
            p, s = str(w["p"]), str(w["s"])
            px, sz = float(p), float(s)
        except (KeyError, TypeError, ValueError):
            return "Order has invalid price."
        if not HR.valid_px(px, sz_dec, True) or float_to_wire(px) != p:
            return "Order has invalid price."
        if not sz > 0 or -Decimal(s).as_tuple().exponent > sz_dec:
            return "Order has invalid size."
        if px * sz < HR.MIN_ORDER_VALUE:
            return "Order must have minimum value of $10."
        return None

    def _admit(self, w: dict, sz_dec: int) -> str | None:
        """The rule error of order wire ``w`` (counted), or None once it is recorded as seen."""
        err = self._check(w, sz_dec)
        if err is not None:
            self.stats["rule_violations"] += 1
            return err
        self.orders_seen.append(dict(w))
        return None

    def _find(self, user: str, coin: str, ref: Any) -> tuple[_Account, int, int] | None:
        """(account, row, exchange oid) of an order by exchange oid (int) or cloid (hex)."""
        acc = self._account(user, coin)
        if isinstance(ref, str):
            oid = next((o for o, m in acc.meta.items() if m.get("cloid") == ref), None)
        else:
            oid = int(ref)
        if oid is None:
            return None
        i = M._find(acc.orders, float(oid))
        return (acc, i, oid) if i >= 0 else None

    def _orders(self, user: str, wires: list, now_ms: int) -> tuple[list, list]:
        statuses, ups = [], []
        for w in wires:
            asset = self._asset(int(w.get("a", -1)))
            if asset is None:
                statuses.append({"error": "Invalid asset"})
                continue
            coin, sz_dec = asset
            err = self._admit(w, sz_dec)
            if err is not None:
                statuses.append({"error": err})
                continue
            acc = self._account(user, coin)
            cloid = w.get("c")
            if cloid and self._find(user, coin, cloid) is not None:
                statuses.append({"error": "Duplicate cloid."})
                continue
            tif = w.get("t", {}).get("limit", {}).get("tif")
            side, px, sz = _side(bool(w["b"])), float(w["p"]), float(w["s"])
            book = self._book(coin)
            if M._crosses(book, side, px) or tif == "Ioc":
                if tif == "Alo":
                    bbo = f"{book[0, BID_PX]}@{book[0, ASK_PX]}"
                    why = (
                        f"Post only order would have immediately matched, bbo was {bbo}. asset={int(w['a'])}"
                    )
                    statuses.append({"error": why})
                else:
                    statuses.append({"error": "Order could not immediately match against any resting orders. "
                                     f"asset={int(w['a'])}"})  # fmt: skip
                continue
            self.next_oid += 1
            oid = self.next_oid
            st = M.apply_action(now_ms * 1_000_000, ACT_PLACE, side, px, sz, float(oid), book,
                                acc.orders, acc.aux, acc.work, self.params)  # fmt: skip
            if st != M.ST_OK:
                statuses.append({"error": f"loopback: {M.STATUS_NAMES[st]}"})
                continue
            acc.meta[oid] = {"cloid": cloid, "timestamp": now_ms, "origSz": w["s"]}
            statuses.append({"resting": {"oid": oid, **({"cloid": cloid} if cloid else {})}})
            ups.append(self._update(coin, oid, side, px, sz, acc.meta[oid], "open", now_ms))
        return statuses, ups

    def _cancels(self, user: str, kind: str, cancels: list, now_ms: int) -> tuple[list, list]:
        statuses, ups = [], []
        for c in cancels:
            by_cloid = kind == "cancelByCloid"
            asset = self._asset(int(c.get("asset" if by_cloid else "a", -1)))
            hit = self._find(user, asset[0], c.get("cloid") if by_cloid else c.get("o")) if asset else None
            if hit is None:
                statuses.append({"error": _NEVER})
                continue
            acc, i, _ = hit
            ups.append(self._remove(asset[0], acc, i, "canceled", now_ms))
            statuses.append("success")
        return statuses, ups

    def _modifies(self, user: str, modifies: list, now_ms: int) -> tuple[list, list]:
        statuses, ups = [], []
        for m in modifies:
            w = m.get("order", {})
            asset = self._asset(int(w.get("a", -1)))
            hit = self._find(user, asset[0], m.get("oid")) if asset else None
            if hit is None:
                statuses.append({"error": "Cannot modify canceled or filled order"})
                continue
            coin, sz_dec = asset
            err = self._admit(w, sz_dec)
            if err is not None:
                statuses.append({"error": err})
                continue
            acc, i, old = hit
            px, sz = float(w["p"]), float(w["s"])
            st = M.apply_action(now_ms * 1_000_000, ACT_MODIFY, np.nan, px, sz, float(old), self._book(coin),
                                acc.orders, acc.aux, acc.work, self.params)  # fmt: skip
            meta = acc.meta.pop(old, {})
            if st != M.ST_OK:  # a post-only modify that would cross: the order is cancelled
                ups.append(self._update(coin, old, _side(bool(w["b"])), px, 0.0, meta, "canceled", now_ms))
                statuses.append({"error": "Post only order would have immediately matched"})
                continue
            self.next_oid += 1
            new = self.next_oid
            acc.orders[i, ORD_OID] = float(new)  # a cancel-replace: a new oid, the same cloid
            acc.meta[new] = {**meta, "timestamp": now_ms, "origSz": w["s"]}
            statuses.append(
                {"resting": {"oid": new, **({"cloid": meta["cloid"]} if meta.get("cloid") else {})}}
            )
            ups.append(
                self._update(coin, new, acc.orders[i, ORD_SIDE], px, sz, acc.meta[new], "open", now_ms)
            )
        return statuses, ups

    # -- /info ----------------------------------------------------------------------------------
    def info(self, req: dict) -> tuple[bool, Any]:
        """(handled, body) for the user requests this exchange answers."""
        kind = req.get("type")
        if kind not in ("openOrders", "frontendOpenOrders", "orderStatus", "userFills", "clearinghouseState"):
            return False, None
        user = str(req.get("user", "")).lower()
        with self.lock:
            if kind in ("openOrders", "frontendOpenOrders"):
                return True, self._open(user)
            if kind == "userFills":
                return True, list(reversed(self.fills.get(user, [])))
            if kind == "clearinghouseState":
                pos = [
                    {"type": "oneWay", "position": {"coin": coin, "szi": str(acc.position), "entryPx": None}}
                    for (u, coin), acc in self.accounts.items()
                    if u == user and acc.position != 0.0
                ]
                return True, {
                    "assetPositions": pos,
                    "marginSummary": {"accountValue": "0.0"},
                    "withdrawable": "0.0",
                }
            ref = req.get("oid")
            for o in self._open(user):
                if o["oid"] == ref or o.get("cloid") == ref:
                    found = {"order": o, "status": "open", "statusTimestamp": o["timestamp"]}
                    return True, {"status": "order", "order": found}
            return True, {"status": "unknownOid"}

    def _open(self, user: str) -> list[dict]:
        out = []
        for (u, coin), acc in self.accounts.items():
            if u != user:
                continue
            for i in range(acc.orders.shape[0]):
                o = acc.orders[i]
                if o[ORD_OID] != o[ORD_OID]:
                    continue
                oid = int(o[ORD_OID])
                meta = acc.meta.get(oid, {})
                entry = {"coin": coin, "side": "B" if o[ORD_SIDE] > 0 else "A",
                         "limitPx": float_to_wire(o[ORD_PX]), "sz": float_to_wire(o[ORD_SZ]), "oid": oid,
                         "timestamp": meta.get("timestamp", 0),
                         "origSz": float_to_wire(o[ORD_ORIG_SZ])}  # fmt: skip
                if meta.get("cloid"):
                    entry["cloid"] = meta["cloid"]
                out.append(entry)
        return out

    def snapshot_fills(self, user: str) -> dict:
        """What a new ``userFills`` subscription gets first: the history, ``isSnapshot``."""
        with self.lock:
            return {"isSnapshot": True, "user": user, "fills": list(self.fills.get(user.lower(), []))}
