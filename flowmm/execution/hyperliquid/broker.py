"""``HyperliquidBroker``: the reconciler's actions as real, signed Hyperliquid orders.

The same hooks as the paper broker (``bind``, ``before_batch``, ``on_batch``, ``after_cycle``,
``on_interrupt``, ``finish``, ``next_time``, ``summary``, ``provides``), so ``Graph.run``
and the live feed's ``StaleGuard`` drive it unchanged. What differs is where an action goes
and where its outcome comes from:

* **Out.** ``after_cycle`` reconciles the desired ladder exactly as the paper broker does; the
  actions of one call become up to three batched requests, in this order: ``cancelByCloid``,
  ``batchModify`` (by cloid), ``order`` (post-only ``Alo`` batches apart from ``Gtc`` ones).
  Every price and size is rounded and checked before signing (:mod:`.wire`); an order under
  $10, one that could take the position past ``max_position`` / ``max_notional`` if filled
  alone, one the address budget cannot pay for, or any place or modify after a hard stop is
  *refused*: never sent, its slot freed (a refused modify leaves the order as it was).
* **The sender thread** signs (own strictly increasing nonce, :mod:`.keys`), waits for the IP
  weight (:mod:`.ratelimit`) and POSTs, one request at a time in FIFO order, so a cancel never
  overtakes the place of the same order; it also pushes the ``scheduleCancel`` dead-man time
  forward every ``dead_man_refresh_s`` (if flowmm dies, the exchange cancels everything
  ``dead_man_s`` later). The engine thread never waits on HTTP while running.
* **In.** The HTTP answers (acks, rejects) and a websocket of our own (``orderUpdates`` and
  ``userFills`` of the account) arrive on one queue, drained at every batch on the engine
  thread: acks move order statuses as the reconciler's contract says, fills (de-duplicated by
  ``tid``) go to ``exec.fills``, the accounting and ``exec.position``.
* **Hard stops.** After fills: ``|q| > max_position`` or ``|q|·mid > max_notional`` cancels
  everything and halts: the ladder is no longer reconciled and every new place or modify is
  refused until the process is restarted (a halt is sticky on purpose).
* **Reconnect.** When the user websocket drops, quoting stops at once (``synced`` false). On
  reconnect, after the subscriptions are back, ``openOrders`` and ``userFills`` are read over
  REST: missed fills are applied, every order we think live is checked against the open
  orders (gone ones freed, the rest take the exchange's price and size), open orders of the
  coin that are not ours are cancelled; only then does quoting resume.
* **Exit.** ``finish`` (whatever ended the run; the guard cancels all just before) waits up
  to ``stop_timeout_s`` for the cancels' answers, then reads ``openOrders`` and cancels
  anything of the coin still open, unsets the dead-man switch and stops its threads.
  :meth:`emergency_stop` does the same from a ``finally`` when the run died with an exception.

**Reproducibility.** The market data the graph saw is recorded by the live source, and a
replay of it reproduces the trace up to the first own fill. Own fills and acks are real
events: their timing (and the fills themselves) cannot be re-derived from the market data, so
a replay re-simulates them with the paper broker. The user-channel frames are also in the
feed recording (the live source subscribes with the account's address), and the summary's
``hyperliquid`` section counts everything the exchange answered.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections import Counter
from typing import Any

import numpy as np

from flowmm.core import streams as S
from flowmm.core.node import ring_append
from flowmm.core.ports import (
    ACT_CANCEL,
    ACT_MODIFY,
    ACT_PLACE,
    FI_FEE,
    FI_MAKER,
    FI_MID_REF,
    FI_OID,
    FI_PX,
    FI_SIDE,
    FI_SZ,
    ORD_OID,
    ORD_ORIG_SZ,
    ORD_PENDING_CANCEL,
    ORD_PENDING_MODIFY,
    ORD_PENDING_NEW,
    ORD_PX,
    ORD_QUEUE_AHEAD,
    ORD_RESTING,
    ORD_STATUS,
    ORD_SZ,
)
from flowmm.errors import EngineError, Location, UsageError
from flowmm.execution import accounting as A
from flowmm.execution import reconciler as R
from flowmm.execution.hyperliquid import wire as W
from flowmm.execution.hyperliquid.client import ExchangeClient
from flowmm.execution.hyperliquid.config import ExecConfig
from flowmm.execution.hyperliquid.keys import Signer
from flowmm.execution.hyperliquid.ratelimit import RateLimiter
from flowmm.execution.paper import ACTION_RING, PaperBroker, PaperParams
from flowmm.hyperliquid.ws_client import Backoff, WsClient

_SZ_EPS = 1e-12
_ACK_WAIT = 20  # batches a fill of an unknown oid waits for its order's ack
_GONE = ("canceled", "filled", "rejected", "marginCanceled", "scheduledCancel", "reduceOnlyCanceled",
         "selfTradeCanceled", "siblingFilledCanceled", "liquidatedCanceled", "openInterestCapCanceled",
         "vaultWithdrawalCanceled", "delistedCanceled", "perpMarginRejected")  # fmt: skip


def resolve_market(client: ExchangeClient, coin: str) -> W.Market:
    """The coin's asset index and size decimals from ``meta`` (HIP-3: ``perpDexs`` and the
    dex's ``meta``; asset = 100000 + 10000 * dex index + index)."""
    dex = coin.split(":", 1)[0] if ":" in coin else ""
    meta = client.info({"type": "meta", **({"dex": dex} if dex else {})})
    offset = 0
    if dex:
        dexes = client.info({"type": "perpDexs"})
        names = [d.get("name") if isinstance(d, dict) else None for d in dexes or []]
        if dex not in names:
            raise UsageError(f"no HIP-3 dex {dex!r} on {client.url}", Location(client.url + "/info"))
        offset = 100_000 + 10_000 * names.index(dex)
    universe = meta.get("universe") if isinstance(meta, dict) else None
    for i, asset in enumerate(universe or []):
        if asset.get("name") == coin:
            return W.Market(coin, offset + i, int(asset["szDecimals"]))
    raise UsageError(
        f"{coin!r} is not in the exchange's meta at {client.url}", Location(client.url + "/info")
    )


class HyperliquidBroker(PaperBroker):
    """Real execution for ``Graph.run(live, broker=StaleGuard(HyperliquidBroker(...)))``."""

    name = "hyperliquid"
    kernel_args = None  # network I/O at every batch: Python hooks only, the engine's python backend

    def __init__(
        self,
        config: ExecConfig,
        signer: Signer,
        params: PaperParams | None = None,
        *,
        market: W.Market | None = None,
        client: ExchangeClient | None = None,
    ):
        super().__init__(params or PaperParams())
        self.cfg = config
        self.signer = signer
        self.account = signer.account
        self.client = client or ExchangeClient(
            config.url, signer, mainnet=config.mainnet, timeout_s=config.http_timeout_s
        )
        self.market = market or resolve_market(self.client, config.coin)
        self.session = int.from_bytes(os.urandom(8), "big") | 1  # cloid prefix: unique per session
        self.limiter = RateLimiter(config.ip_per_min, config.address_buffer)
        self.events: list[tuple[str, str]] = []  # (event, detail) in engine order (tests, summary)
        self.counts: Counter = Counter()
        self.reject_reasons: Counter = Counter()
        self.halted: str | None = None  # a hard stop or a fault: sticky
        self.stopping = False  # the run is ending: cancels only
        self.synced = False
        self.dead_man: dict[str, Any] = {"set": 0, "errors": 0, "last_error": None}
        self._threads_started = False
        self._stopped = False
        self.open_at_exit: int | None = None  # open orders of the coin after the exit's cancels
        self._account_state = self._preflight()

    def _preflight(self) -> dict:
        """Before the run: the exchange answers for this account (position, fill history), or a
        located error now rather than a failing order later."""
        where = Location(self.cfg.url + "/info")
        state = self.client.info({"type": "clearinghouseState", "user": self.account})
        fills = self.client.info({"type": "userFills", "user": self.account})
        for name, body, kind in (("clearinghouseState", state, dict), ("userFills", fills, list)):
            if not isinstance(body, kind) or (kind is dict and body.get("status") == "err"):
                raise UsageError(
                    f"{self.cfg.url} does not answer {name} for {self.account}: {str(body)[:120]}",
                    where,
                    hint="a loopback server takes orders only with `flowmm serve --exchange`",
                )
        return {"state": state, "fills": fills}

    def __repr__(self) -> str:
        return f"HyperliquidBroker({self.cfg.network}, {self.cfg.coin}, account={self.account})"

    # -- binding and threads --------------------------------------------------------------------
    def bind(self, plan, values: list, ver: np.ndarray) -> None:
        super().bind(plan, values, ver)
        self.exch_of: dict[int, int] = {}  # our oid -> the exchange's current oid
        self.ours_of: dict[int, int] = {}  # exchange oid -> our oid (kept after the order is gone)
        self.tids: set[int] = set()
        self.unmatched: list[tuple[dict, int]] = []  # fills whose ack is still in flight, drains waited
        self.jobs: queue.Queue = queue.Queue()
        self.inflight = 0  # jobs queued or being sent (engine thread's count)
        self._start()

    def _start(self) -> None:
        c = self.cfg
        self._startup()
        user = [{"type": "orderUpdates", "user": self.account}, {"type": "userFills", "user": self.account}]
        self.ws = WsClient(
            c.url, [("user", "user", user)], resync=self._resync_items, ping_s=c.ping_s, dead_s=3 * c.ping_s,
            backoff=Backoff(c.backoff_s, 5.0, c.max_reconnects),
        )  # fmt: skip
        self.inbox = self.ws.queue  # HTTP answers join the websocket's queue: one arrival order
        self._stop_sender = threading.Event()
        self.sender = threading.Thread(target=self._sender, name="flowmm-hl-sender", daemon=True)
        self.ws.start()
        self.sender.start()
        self._threads_started = True
        self._event("started", f"{c.network} {self.market.coin} asset {self.market.asset}")

    def _startup(self) -> None:
        """Before quoting: the account's position on the coin, its fill history (not ours to
        replay), and no open order of the coin left from an earlier session."""
        state, fills = self._account_state["state"], self._account_state["fills"]
        for ap in state.get("assetPositions") or []:
            pos = ap.get("position", {})
            if pos.get("coin") == self.market.coin and float(pos.get("szi", 0.0)) != 0.0:
                self._adopt_position(float(pos["szi"]), float(pos.get("entryPx") or 0.0))
        self.tids.update(int(f["tid"]) for f in fills if isinstance(f, dict) and "tid" in f)
        stray = self._open_orders()
        if stray:
            self._event("startup_cancel", f"{len(stray)} open orders of {self.market.coin}")
            self.client.exchange(W.cancel_action(self.market, [int(o["oid"]) for o in stray]))
        self._push_dead_man()
        self.synced = True

    def _adopt_position(self, q: float, entry: float) -> None:
        """Start from the account's position: hard stops and ``exec.position`` see the real one;
        PnL counts from ``entry``."""
        a = self.acct.acct
        a[A.A_Q], a[A.A_AVG_PX] = q, entry
        a[A.A_CASH] -= q * entry
        a[A.A_INITIAL_CASH] -= q * entry
        self.values[S.S_POSITION][0] = q
        self.ver[S.S_POSITION] += 1
        self._event("position", f"starting position {q}")

    def _open_orders(self) -> list[dict]:
        """The account's open orders of the coin; an ``EngineError`` when the exchange does not
        say (an unknown answer must never read as "nothing open")."""
        body = self.client.info({"type": "frontendOpenOrders", "user": self.account})  # with cloids
        if not isinstance(body, list):
            raise EngineError(f"open orders: {str(body)[:200]}", Location(self.cfg.url + "/info"))
        return [o for o in body if isinstance(o, dict) and o.get("coin") == self.market.coin]

    def _resync_items(self) -> list:
        """After a reconnect (on the websocket's reader thread): open orders and recent fills."""
        try:
            snap = {"open": self._open_orders(),
                    "fills": self.client.info({"type": "userFills", "user": self.account})}  # fmt: skip
            if not isinstance(snap["fills"], list):
                raise EngineError(f"userFills failed: {str(snap['fills'])[:200]}")
        except Exception as exc:  # noqa: BLE001 -- any failure: stay unsynced, retry from the sender
            return [("resync_failed", time.time_ns(), str(exc), None)]
        return [("resync", time.time_ns(), snap, None)]

    # -- the sender thread ----------------------------------------------------------------------
    def _sender(self) -> None:
        next_dead_man = time.monotonic() + self.cfg.dead_man_refresh_s
        while not self._stop_sender.is_set():
            try:
                job = self.jobs.get(timeout=max(0.0, min(0.2, next_dead_man - time.monotonic())))
            except queue.Empty:
                job = None
            if time.monotonic() >= next_dead_man:
                self._push_dead_man()
                next_dead_man = time.monotonic() + self.cfg.dead_man_refresh_s
            if job is None:
                continue
            kind, action, meta = job
            if kind == "resync":  # a failed resync, again after a pause
                if not self._stop_sender.wait(0.5):
                    self.inbox.put(self._resync_items()[0])
                continue
            wait = self.limiter.ip_wait(W.ip_weight("exchange", len(meta)))
            if wait > 0:
                time.sleep(wait)
            try:
                body = self.client.exchange(action)
            except Exception as exc:  # noqa: BLE001 -- the thread must live on; the engine settles it
                body = {"status": "err", "response": f"{type(exc).__name__}: {exc}"}
            self.inbox.put(("answer", time.time_ns(), (kind, meta, body), None))

    def _push_dead_man(self) -> None:
        """scheduleCancel at now + dead_man_s (wall clock: this is the exchange's timer)."""
        t_ms = time.time_ns() // 1_000_000 + int(self.cfg.dead_man_s * 1000)
        body = self.client.exchange(W.schedule_cancel_action(t_ms))
        if isinstance(body, dict) and body.get("status") == "ok":
            self.dead_man["set"] += 1
            self.dead_man["until_ms"] = t_ms
        else:
            self.dead_man["errors"] += 1
            self.dead_man["last_error"] = str(body.get("response") if isinstance(body, dict) else body)[:200]

    def _queue(self, kind: str, action: dict, meta: list) -> None:
        self.inflight += 1
        self.counts[f"requests_{kind}"] += 1
        self._event("send", f"{kind} {len(meta)}")
        self.jobs.put((kind, action, meta))

    # -- engine hooks ---------------------------------------------------------------------------
    def next_time(self) -> int | None:
        return None  # real answers arrive on the wall clock, drained at every batch

    def on_batch(self, t: int, mid_before: float, trades, book_ticked: bool) -> None:
        fill_t, fill_r = self.values[S.S_FILLS]
        fill_n = self.ver[S.S_FILLS : S.S_FILLS + 1]
        first = int(fill_n[0])
        self._drain(t, mid_before, fill_t, fill_r, fill_n)
        if int(fill_n[0]) > first:
            self._book_fills(t, fill_t, fill_r, first, int(fill_n[0]))
            self._check_hard_stops(t)
        if self.orders_dirty:
            self.ver[S.S_ORDERS] += 1
            A.quoting_from_orders(t, self.orders, self.acct.acct, self.acct.clock)
        mid = float(self.values[S.S_MID][0])
        if mid == mid:
            A.mark(t, mid, self.acct.acct, self.acct.clock)
            pnl = float(self.acct.acct[A.A_TOTAL_PNL])
            if pnl != self.values[S.S_PNL][0]:
                self.values[S.S_PNL][0] = pnl
                self.ver[S.S_PNL] += 1
            self._check_hard_stops(t)

    def after_cycle(self, t: int) -> None:
        if self.halted is None and not self.stopping and self.synced:
            return super().after_cycle(t)
        self.counts["cycles_not_quoting"] += 1
        ladder, self.ladder_port = self.ladder_port, None  # the minute PnL samples, no reconcile
        super().after_cycle(t)
        self.ladder_port = ladder

    def finish(self, t: int) -> None:
        """Cancel-all is done (the guard's); wait for the answers, then make sure of it."""
        self.ladder_port = None
        self.stopping = True
        self._cancel_all(t)
        deadline = time.monotonic() + self.cfg.stop_timeout_s
        fill_t, fill_r = self.values[S.S_FILLS]
        fill_n = self.ver[S.S_FILLS : S.S_FILLS + 1]
        while time.monotonic() < deadline:
            first = int(fill_n[0])
            self._drain(t, float(self.values[S.S_MID][0]), fill_t, fill_r, fill_n)
            if int(fill_n[0]) > first:
                self._book_fills(t, fill_t, fill_r, first, int(fill_n[0]))
            oid = self.orders[:, ORD_OID]
            if self.inflight == 0 and not self.unmatched and not np.any(oid == oid):
                break
            time.sleep(0.01)
        self.emergency_stop()
        if self.open_at_exit == 0:  # the exchange shows nothing open: neither does the table
            self.orders[:] = np.nan
            self.ver[S.S_ORDERS] += 1
        super().finish(t)

    def emergency_stop(self) -> None:
        """Cancel every open order of the coin (REST, synchronous), unset the dead-man switch,
        stop the threads. Idempotent; safe from a ``finally`` after any failure."""
        if self._stopped:
            return
        self._stopped = True
        if self._threads_started:
            self._stop_sender.set()
            self.sender.join(timeout=self.cfg.http_timeout_s + 1)
        try:
            left = self._open_orders()
            if left:
                self._event("exit_cancel", f"{len(left)} still open")
                self.client.exchange(W.cancel_action(self.market, [int(o["oid"]) for o in left]))
                left = self._open_orders()
            self.open_at_exit = len(left)
            self.client.exchange(W.schedule_cancel_action(None))
        except Exception as exc:  # noqa: BLE001 -- the dead-man switch still fires
            self.open_at_exit = None
            self._event("exit_error", type(exc).__name__)
        if self._threads_started:
            self.ws.stop()

    # -- out: actions -> requests ---------------------------------------------------------------
    def _send(self, t: int, start: int) -> None:
        end = int(self.act_n[0])
        if end == start:
            return
        self.orders_dirty = True
        self.ver[S.S_ORDERS] += 1
        cancels, modifies, places = [], [], []
        for i in range(start, end):
            r = self.act_r[i % ACTION_RING]
            kind, side, px, sz, oid = float(r[0]), float(r[1]), float(r[2]), float(r[3]), int(r[4])
            j = self._slot(oid)
            if kind == ACT_CANCEL:
                if self.limiter.address_allows(1, cancel=True):
                    cancels.append(oid)
                continue
            try:
                if self.halted is not None or self.stopping:
                    raise W.Refused(f"halted: {self.halted or 'stopping'}")
                p, s = W.rounded(self.market, side, px, sz)
                self._pretrade(side, p, s)
                cloid = W.cloid_for(self.session, oid)
                wire = W.order_wire(self.market, side, p, s, cloid, self.cfg.tif)
                if not self.limiter.address_allows(1):
                    raise W.Refused("address rate budget spent")
            except W.Refused as exc:
                self._refused(j, kind, str(exc))
                continue
            if kind == ACT_PLACE:
                if j is not None:  # the slot holds what is actually sent
                    self.orders[j, ORD_PX], self.orders[j, ORD_SZ], self.orders[j, ORD_ORIG_SZ] = p, s, s
                places.append((self.cfg.tif, oid, wire))
            elif kind == ACT_MODIFY:
                modifies.append((oid, p, s, cloid, wire))
        self.actions_sent += len(cancels) + len(modifies) + len(places)
        for group in W.batches(cancels, key=lambda _: 0):
            cloids = [W.cloid_for(self.session, o) for o in group]
            self._queue("cancel", W.cancel_by_cloid_action(self.market, cloids), [(o, 1) for o in group])
        for group in W.batches(modifies, key=lambda _: 0):
            self._queue("modify", W.modify_action([(m[3], m[4]) for m in group]), [m[:3] for m in group])
        for group in W.batches(places):  # one tif per batch: post-only apart from GTC / IOC
            self._queue("order", W.order_action([w for _, _, w in group]), [o for _, o, _ in group])

    def _pretrade(self, side: float, px: float, sz: float) -> None:
        """Refuse an order that, filled alone, would take the position past a hard limit."""
        q = float(self.acct.acct[A.A_Q]) + side * sz
        if abs(q) > self.cfg.max_position:
            raise W.Refused(f"would reach position {q:g} > max_position {self.cfg.max_position:g}")
        if abs(q) * px > self.cfg.max_notional:
            raise W.Refused(
                f"would reach notional {abs(q) * px:.2f} > max_notional {self.cfg.max_notional:g}"
            )

    def _refused(self, j: int | None, kind: float, why: str) -> None:
        self.counts["refused"] += 1
        self.reject_reasons["refused: " + why.split(":")[0].split(" ")[0]] += 1
        if j is None:
            return
        if kind == ACT_PLACE:
            self._free(j)
        elif self.orders[j, ORD_STATUS] == ORD_PENDING_MODIFY:
            self.orders[j, ORD_STATUS] = ORD_RESTING  # the order stays as it was

    def _cancel_all(self, t: int) -> None:
        start = int(self.act_n[0])
        R.cancel_side(t, 0.0, self.orders, self.rec_state, self.act_t, self.act_r, self.act_n)
        self._send(t, start)

    def _check_hard_stops(self, t: int) -> None:
        if self.halted is not None:
            return
        q = float(self.acct.acct[A.A_Q])
        mid = float(self.values[S.S_MID][0])
        why = None
        if abs(q) > self.cfg.max_position:
            why = f"max_position: |q| = {abs(q):g} > {self.cfg.max_position:g}"
        elif mid == mid and abs(q) * mid > self.cfg.max_notional:
            why = f"max_notional: |q| mid = {abs(q) * mid:.2f} > {self.cfg.max_notional:g}"
        if why is not None:
            self.halted = why
            self._event("halt", why)
            self._cancel_all(t)

    # -- in: answers, order updates, fills ------------------------------------------------------
    def _drain(self, t: int, mid_before: float, fill_t, fill_r, fill_n) -> None:
        while True:
            try:
                kind, _ns, payload, _tag = self.inbox.get_nowait()
            except queue.Empty:
                break
            if kind == "answer":
                self.inflight -= 1
                self._answer(*payload)
            elif kind == "ws":
                self._user_frame(payload, t, mid_before, fill_t, fill_r, fill_n)
            elif kind == "status":
                self._ws_status(payload)
            elif kind == "resync":
                self._resync(payload, t, mid_before, fill_t, fill_r, fill_n)
            elif kind == "resync_failed":
                self.counts["resync_failed"] += 1
                self.jobs.put(("resync", None, []))
            self.orders_dirty = True
        if self.unmatched:  # fills that came before their ack: try again now
            pending, self.unmatched = self.unmatched, []
            for f, waited in pending:
                self._fill(f, t, mid_before, fill_t, fill_r, fill_n, waited=waited + 1)

    def _ws_status(self, st: dict) -> None:
        event = st.get("event")
        self.counts[f"ws_{event}"] += 1
        if event == "disconnected":
            self.synced = False  # blind to fills and cancels: no quoting until resynced
            self._event("disconnected", str(st.get("detail")))
        elif event == "gave_up":
            self.synced = False
            self._halt_fault(f"user websocket: {st.get('detail')}")

    def _halt_fault(self, why: str) -> None:
        if self.halted is None:
            self.halted = why
            self._event("halt", why)

    def _answer(self, kind: str, meta: list, body: Any) -> None:
        ok = isinstance(body, dict) and body.get("status") == "ok"
        statuses = ((body.get("response") or {}).get("data") or {}).get("statuses") if ok else None
        if kind == "cancel_oid":  # clean-up cancels by exchange oid: nothing of ours to settle
            self.counts["cancel_oid_ok" if ok else "cancel_oid_failed"] += 1
            return
        if not isinstance(statuses, list) or len(statuses) != len(meta):
            why = str(body.get("response") if isinstance(body, dict) else body)[:200]
            self.counts[f"{kind}_request_failed"] += 1
            self._event("request_failed", f"{kind}: {why}")
            if kind == "cancel":
                self._retry_cancels(meta, why)
                return
            statuses = [{"error": why}] * len(meta)
        for m, st in zip(meta, statuses):
            if kind == "order":
                self._place_answer(m, st)
            elif kind == "modify":
                self._modify_answer(m, st)
            else:
                self._cancel_answer(m[0], st)

    def _retry_cancels(self, meta: list, why: str) -> None:
        """A cancel request that failed may not have cancelled anything: send it again; after
        ``cancel_retries`` attempts, halt (the dead-man switch is the last resort)."""
        again = [(o, n + 1) for o, n in meta if n < self.cfg.cancel_retries and self._slot(o) is not None]
        if again:
            cloids = [W.cloid_for(self.session, o) for o, _ in again]
            self._queue("cancel", W.cancel_by_cloid_action(self.market, cloids), again)
        if len(again) < len(meta):
            self._halt_fault(f"cancel failed {self.cfg.cancel_retries} times: {why}")

    def _place_answer(self, oid: int, st: Any) -> None:
        j = self._slot(oid)
        body = st.get("resting") or st.get("filled") if isinstance(st, dict) else None
        if body is not None and "oid" in body:
            self._map(oid, int(body["oid"]))
            self.counts["placed"] += 1
            if j is not None and self.orders[j, ORD_STATUS] == ORD_PENDING_NEW:
                self.orders[j, ORD_STATUS] = ORD_RESTING
            return
        self._rejected("place", st)
        if j is not None and self.orders[j, ORD_STATUS] in (ORD_PENDING_NEW, ORD_PENDING_CANCEL):
            self._free(j)

    def _modify_answer(self, m: tuple, st: Any) -> None:
        oid, px, sz = m
        j = self._slot(oid)
        body = st.get("resting") if isinstance(st, dict) else None
        if body is not None and "oid" in body:
            self._map(oid, int(body["oid"]))
            self.counts["modified"] += 1
            if j is not None and self.orders[j, ORD_STATUS] == ORD_PENDING_MODIFY:
                self.orders[j, ORD_PX], self.orders[j, ORD_SZ], self.orders[j, ORD_ORIG_SZ] = px, sz, sz
                self.orders[j, ORD_QUEUE_AHEAD] = np.nan
                self.orders[j, ORD_STATUS] = ORD_RESTING
            return
        self._rejected("modify", st)
        # a failed modify leaves the order in doubt (filled, cancelled, or cancel-replaced and
        # rejected): forget it and cancel its cloid, so nothing we do not track can rest
        if j is not None and self.orders[j, ORD_STATUS] != ORD_PENDING_CANCEL:
            self._free(j)
            self._queue("cancel", W.cancel_by_cloid_action(self.market, [W.cloid_for(self.session, oid)]),
                        [(oid, self.cfg.cancel_retries)])  # fmt: skip

    def _cancel_answer(self, oid: int, st: Any) -> None:
        j = self._slot(oid)
        if st == "success":
            self.counts["cancelled"] += 1
        else:  # "never placed, already canceled, or filled": gone either way
            self._rejected("cancel", st)
        if j is not None and self.orders[j, ORD_STATUS] == ORD_PENDING_CANCEL:
            self._free(j)

    def _rejected(self, kind: str, st: Any) -> None:
        self.rejects += 1
        why = st.get("error", str(st)) if isinstance(st, dict) else str(st)
        self.reject_reasons[f"{kind}: {why[:60]}"] += 1

    def _user_frame(self, text: str, t: int, mid_before: float, fill_t, fill_r, fill_n) -> None:
        try:
            msg = json.loads(text)
            channel, data = msg.get("channel"), msg.get("data")
        except (ValueError, AttributeError):
            self.counts["garbage"] += 1
            return
        if channel == "userFills" and isinstance(data, dict):
            history = bool(data.get("isSnapshot"))
            for f in data.get("fills") or []:
                if history:  # before this connection: known, or applied by the resync
                    if "tid" in f:
                        self.tids.add(int(f["tid"]))
                    continue
                self._fill(f, t, mid_before, fill_t, fill_r, fill_n)
        elif channel == "orderUpdates" and isinstance(data, list):
            for u in data:
                self._order_update(u)
        elif channel == "error":
            self.counts["server_errors"] += 1
            self._event("server_error", str(data)[:200])

    def _order_update(self, u: dict) -> None:
        try:
            o, status = u["order"], u["status"]
            if o.get("coin") != self.market.coin:
                return
            exch = int(o["oid"])
        except (KeyError, TypeError, ValueError):
            self.counts["malformed_updates"] += 1
            return
        self.counts[f"update_{status}"] += 1
        ours = W.oid_of_cloid(o.get("cloid"), self.session)
        if ours is None:
            ours = self.ours_of.get(exch)
        if ours is None:
            return
        if status == "open":
            self._map(ours, exch)
        j = self._slot(ours)
        if j is None:
            return
        st = self.orders[j, ORD_STATUS]
        if status == "open" and st == ORD_PENDING_NEW:
            self.orders[j, ORD_STATUS] = ORD_RESTING
        elif status in _GONE and status != "filled" and self.exch_of.get(ours) == exch:
            if st != ORD_PENDING_MODIFY:  # a modify's cancel-replace: its own answer decides
                self._free(j)

    def _fill(self, f: dict, t: int, mid_before: float, fill_t, fill_r, fill_n, waited: int = 0) -> None:
        """One fill of the account: ours (by cloid, or by the oid an ack gave us) or not, it
        moves the position. A fill of an unknown oid waits up to ``_ACK_WAIT`` drains for
        the ack of its order before it is taken as foreign."""
        try:
            if f.get("coin") != self.market.coin:
                return
            tid, exch = int(f["tid"]), int(f["oid"])
            px, sz, side = float(f["px"]), float(f["sz"]), 1.0 if f["side"] == "B" else -1.0
            fee, maker = float(f.get("fee", 0.0)), not bool(f.get("crossed", False))
        except (KeyError, TypeError, ValueError):
            self.counts["malformed_fills"] += 1
            return
        if tid in self.tids:
            self.counts["duplicate_fills"] += 1
            return
        ours = W.oid_of_cloid(f.get("cloid"), self.session)
        if ours is None:
            ours = self.ours_of.get(exch)
        if ours is None and waited < _ACK_WAIT:
            self.unmatched.append((f, waited))  # its ack may still be on the way
            return
        self.tids.add(tid)
        if ours is None:
            self.counts["foreign_fills"] += 1  # not our order, but our account's position
        r = ring_append(fill_t, fill_r, fill_n, t)
        fill_r[r, FI_PX], fill_r[r, FI_SZ], fill_r[r, FI_SIDE] = px, sz, side
        fill_r[r, FI_OID] = np.nan if ours is None else float(ours)
        fill_r[r, FI_FEE], fill_r[r, FI_MAKER], fill_r[r, FI_MID_REF] = fee, float(maker), mid_before
        self.limiter.traded(px * sz)
        j = None if ours is None else self._slot(ours)
        if j is not None:
            rem = self.orders[j, ORD_SZ] - sz
            if rem <= _SZ_EPS * max(1.0, sz):
                self._free(j)
            else:
                self.orders[j, ORD_SZ] = rem

    def _resync(self, snap: dict, t: int, mid_before: float, fill_t, fill_r, fill_n) -> None:
        """After a reconnect: missed fills first, then our orders against the open orders."""
        for f in snap.get("fills") or []:
            if (
                isinstance(f, dict)
                and f.get("coin") == self.market.coin
                and int(f.get("tid", -1)) not in self.tids
            ):
                self._fill(f, t, mid_before, fill_t, fill_r, fill_n, waited=_ACK_WAIT)
        open_by_ours, foreign = {}, []
        for o in snap.get("open") or []:
            ours = W.oid_of_cloid(o.get("cloid"), self.session)
            if ours is None:
                ours = self.ours_of.get(int(o["oid"]))
            if ours is None:
                foreign.append(int(o["oid"]))
            else:
                open_by_ours[ours] = o
        freed = 0
        for j in range(self.orders.shape[0]):
            oid = self.orders[j, ORD_OID]
            if oid != oid or self.orders[j, ORD_STATUS] != ORD_RESTING:
                continue  # requests in flight are settled by their own answers
            o = open_by_ours.get(int(oid))
            if o is None:
                self._free(j)
                freed += 1
            else:
                self._map(int(oid), int(o["oid"]))
                self.orders[j, ORD_PX], self.orders[j, ORD_SZ] = float(o["limitPx"]), float(o["sz"])
        ids = self.orders[:, ORD_OID]
        known = {int(x) for x in ids[ids == ids]}
        orphans = [int(o["oid"]) for ours, o in open_by_ours.items() if ours not in known]
        if foreign or orphans:
            self._queue("cancel_oid", W.cancel_action(self.market, foreign + orphans), [])
        self.counts["resyncs"] += 1
        self.synced = True
        self._event(
            "resynced", f"{len(open_by_ours)} open, {freed} gone, {len(foreign) + len(orphans)} cancelled"
        )

    # -- small helpers --------------------------------------------------------------------------
    def _slot(self, oid: int) -> int | None:
        hit = np.nonzero(self.orders[:, ORD_OID] == float(oid))[0]
        return int(hit[0]) if len(hit) else None

    def _free(self, j: int) -> None:
        self.orders[j, :] = np.nan
        self.orders_dirty = True

    def _map(self, ours: int, exch: int) -> None:
        self.exch_of[ours] = exch
        self.ours_of[exch] = ours

    def _event(self, event: str, detail: str = "") -> None:
        self.events.append((event, detail))

    # -- results --------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        out = super().summary()
        nonces = self.client.nonces_sent
        out["hyperliquid"] = {
            "network": self.cfg.network,
            "url": self.cfg.url,
            "account": self.account,
            "coin": self.market.coin,
            "asset": self.market.asset,
            "halted": self.halted,
            "counts": dict(self.counts),
            "rejects": dict(self.reject_reasons),
            "requests_signed": len(nonces),
            "nonces_increasing": all(b > a for a, b in zip(nonces, nonces[1:])),
            "dead_man": dict(self.dead_man),
            "rate_limits": self.limiter.stats(),
            "open_at_exit": self.open_at_exit,
            "events": [f"{e}: {d}" for e, d in self.events[-50:]],
        }
        return out
