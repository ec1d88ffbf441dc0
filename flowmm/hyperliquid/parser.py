"""Frames in arrival order -> flowmm events in non-decreasing time: the one parser that live
and replay share, so a recording replays exactly as it was consumed.

A frame is a websocket message (``{"channel", "data"}``) with its receive time in ns, and an
optional *tag* the recorder adds where the data alone cannot say which subscription it came
from (``fast``: the 5-level ``l2Book`` with ``"fast": true``; ``agg``: an aggregated book,
``nSigFigs``). flowmm's recorder also writes frames of its own, on ``flowmm.*`` channels:

* ``flowmm.session`` ``{coin, ref_coin, spot_coin, dex, network, version}``: the first line;
* ``flowmm.rest`` ``{request, response}``: a REST ``/info`` body (meta, l2Book snapshot,
  predictedFundings, userFills, fundingHistory, candleSnapshot, metaAndAssetCtxs);
* ``flowmm.timer`` ``{code}``: a wall-clock fact (a stale feed), so a replay reproduces it.

Choices (a careful market maker's, documented because the feed does not decide them):

* **Time.** Book, bbo, trade and fill events carry the exchange time. Frames without one
  (``activeAssetCtx``, ``allMids``, REST bodies, timers) take their receive time moved onto
  the exchange clock by the latest observed latency (receive − exchange time of the last
  book, bbo or trade frame): stamping them with raw receive time would push the clock ~0.1-0.3 s
  ahead and make every following book "late". Any event older than the last one emitted is
  clamped to it and counted (``late``): events leave in arrival order, as a live strategy sees
  them.
* **Trades.** De-duplicated by ``tid`` (hashes can be all zeros). The first ``trades`` frame
  after a subscription ack is the exchange's batch of *recent* trades: its tids are remembered,
  its trades are not emitted (they would read as a burst of flow that is long gone). Without
  an ack (a capture started mid-session), the first ``trades`` frame of a coin is that batch
  when its oldest trade is over 1 s older than the session's first frame.
* **Books.** A ``fast`` book (5 levels, ~0.5 s) refreshes levels 1-5 and keeps the last full
  book's levels strictly beyond its 5th price (the full book arrives every ~5 s). Unsorted
  levels or a crossed book make the frame malformed: never an event.
* **Other coins.** ``ref_coin`` (lead-lag) and ``spot_coin`` (basis) books, bbos and
  ``allMids`` entries become ``ref_mid`` / ``spot_mid`` (allMids only on a change). With no
  coin given, the first coin of a book / bbo / trades frame that is neither is adopted and the
  others are counted (``other_coins``).
* **Own fills** (``user``, ``userFills``) become FILL events only with ``fills=True`` (a replay
  with paper execution makes its own); ``isSnapshot`` batches and REST ``userFills`` are history
  (de-duplication only). ``mid_ref`` is the last mid strictly before the fill.
* **Malformed** frames (bad JSON, a missing field, a non-positive price, ...) are counted per
  channel with the first few reasons, and never turned into events; server ``error`` frames
  are counted and kept.
"""

from __future__ import annotations

import json
import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from flowmm.core import events as E
from flowmm.core.ports import BOOK_LEVELS
from flowmm.hyperliquid import messages as M
from flowmm.hyperliquid.instruments import Instrument

Row = tuple[int, int, list[float]]  # (t ns, kind code, payload)

MAX_JUMP_NS = 86_400 * 10**9  # = flowmm.sources.guard's forward-jump bound: one day
SESSION, REST, TIMER = "flowmm.session", "flowmm.rest", "flowmm.timer"
TAGS = ("fast", "agg")
_SNAPSHOT_AGE_NS = 1_000_000_000
_KEEP_REASONS = 5


@dataclass
class ParseStats:
    frames: int = 0
    events: Counter = field(default_factory=Counter)  # per kind name
    channels: Counter = field(default_factory=Counter)
    malformed: Counter = field(default_factory=Counter)  # per channel
    malformed_examples: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    duplicate_trades: int = 0
    snapshot_trades: int = 0
    duplicate_fills: int = 0
    late: int = 0  # events clamped to the last event time
    other_coins: Counter = field(default_factory=Counter)

    def bad(self, channel: str, where: str, exc: BaseException) -> None:
        self.malformed[channel] += 1
        if len(self.malformed_examples) < _KEEP_REASONS:
            self.malformed_examples.append(f"{where}: {channel}: {type(exc).__name__}: {exc}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "events": dict(self.events),
            "channels": dict(self.channels),
            "malformed": sum(self.malformed.values()),
            "malformed_by_channel": dict(self.malformed),
            "malformed_examples": list(self.malformed_examples),
            "server_errors": list(self.server_errors),
            "duplicate_trades": self.duplicate_trades,
            "snapshot_trades": self.snapshot_trades,
            "duplicate_fills": self.duplicate_fills,
            "late_clamped": self.late,
            "other_coins": dict(self.other_coins),
        }


class _Seen:
    """A bounded set: the last ``cap`` keys (tids repeat within seconds, not hours)."""

    def __init__(self, cap: int):
        self.cap, self.keys, self.order = cap, set(), deque()

    def add(self, key) -> bool:
        """True when ``key`` is new."""
        if key in self.keys:
            return False
        self.keys.add(key)
        self.order.append(key)
        if len(self.order) > self.cap:
            self.keys.discard(self.order.popleft())
        return True


def _book_payload(bids: list[M.Level], asks: list[M.Level]) -> list[float]:
    bids, asks = bids[:BOOK_LEVELS], asks[:BOOK_LEVELS]
    out = [float(len(bids)), float(len(asks))]
    for lv in bids:
        out.extend(lv)
    for lv in asks:
        out.extend(lv)
    return out


def _mid(book: M.Book) -> float:
    if book.bids and book.asks:
        return 0.5 * (book.bids[0].px + book.asks[0].px)
    return math.nan


class FrameParser:
    """Stateful: feed frames in arrival order (``line``, ``frame``), collect the rows."""

    def __init__(
        self,
        coin: str | None = None,
        *,
        ref_coin: str | None = None,
        spot_coin: str | None = None,
        fills: bool = False,
        dedupe: int = 1 << 18,
    ):
        self.coin, self.ref_coin, self.spot_coin, self.fills = coin, ref_coin, spot_coin, fills
        self.stats = ParseStats()
        self._metas: dict[str, M.AssetMeta] = {}
        self.session: dict[str, Any] = {}
        self.records: dict[str, list] = {"orderUpdates": [], "candles": [], "fundingHistory": []}
        self._last_t = 0
        self._latency = 0  # receive - exchange time of the last frame that had both, ns
        self._first_recv: int | None = None
        self._tids = _Seen(dedupe)
        self._fill_keys = _Seen(dedupe)
        self._trades_acked: set[str] = set()  # coins whose next trades frame is the snapshot
        self._trades_seen: set[str] = set()
        self._full_book: M.Book | None = None
        self._mids: deque[tuple[int, float]] = deque(maxlen=2)  # (t, mid) of the last two times
        self._ctx = [math.nan] * 6
        self._all_mids: dict[str, float] = {}
        self._explicit = {
            "coin": coin is not None,
            "ref": ref_coin is not None,
            "spot": spot_coin is not None,
        }

    # -- entry points ---------------------------------------------------------------------------

    def line(self, raw: bytes | str, where: str = "") -> list[Row]:
        """One recorded line, ``<recv_ns> [tag ]<json>``."""
        try:
            if isinstance(raw, bytes):
                raw = raw.decode()
            head, _, rest = raw.strip().partition(" ")
            recv = int(head)
            if not 0 <= recv < 1 << 63:
                raise ValueError(f"receive time {recv} outside int64 ns")
            tag = None
            if rest[:1] != "{":
                tag, _, rest = rest.partition(" ")
                if tag not in TAGS:
                    raise ValueError(f"unknown tag {tag!r}")
            msg = json.loads(rest)
        except (ValueError, UnicodeDecodeError) as exc:
            self.stats.frames += 1
            self.stats.bad("<line>", where, exc)
            return []
        return self.frame(msg, recv, tag, where)

    def frame(self, msg: Any, recv_ns: int, tag: str | None = None, where: str = "") -> list[Row]:
        """One message received at ``recv_ns``."""
        self.stats.frames += 1
        if self._first_recv is None:
            self._first_recv = recv_ns
        channel = msg.get("channel", "<none>") if isinstance(msg, dict) else "<not an object>"
        self.stats.channels[channel] += 1
        out: list[Row] = []
        try:
            if not isinstance(msg, dict) or ("data" not in msg and channel != "pong"):
                raise ValueError("a frame is {channel, data}")
            handler = _HANDLERS.get(channel)
            if handler is not None:
                handler(self, msg["data"], recv_ns, tag, out)
            if self._last_t and any(row[0] - self._last_t > MAX_JUMP_NS for row in out):
                # a far-future time (year 2100): following it would clamp every later event to it
                raise ValueError(f"a time more than {MAX_JUMP_NS // 10**9} s after the last event")
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            self.stats.bad(channel, where, exc)
            return []
        return [self._stamp(row) for row in out]

    def rest(self, request: dict, body: Any, recv_ns: int, where: str = "") -> list[Row]:
        """A REST ``/info`` body (as recorded in a ``flowmm.rest`` frame)."""
        return self.frame(
            {"channel": REST, "data": {"request": request, "response": body}}, recv_ns, None, where
        )

    def asset_ctx_row(self, ctx: M.AssetCtx, t: int, where: str = "") -> list[Row]:
        """A row of the archive's ``asset_ctxs`` CSV (its time is the snapshot's): a CTX event
        when it is the main coin's (rows of other coins are skipped, not counted)."""
        self.stats.frames += 1
        self.stats.channels["asset_ctxs"] += 1
        if ctx.coin != self.coin:
            return []
        self._apply_ctx(ctx)
        return [self._stamp((t, E.CTX, list(self._ctx)))]

    # -- time -----------------------------------------------------------------------------------

    def _stamp(self, row: Row) -> Row:
        t, kind, payload = row
        if t < self._last_t:
            self.stats.late += 1
            t = self._last_t
        self._last_t = t
        self.stats.events[E.KIND_NAMES[kind]] += 1
        return t, kind, payload

    def _exch(self, recv_ns: int, t_exch: int) -> int:
        self._latency = max(0, recv_ns - t_exch)
        return t_exch

    def _recv(self, recv_ns: int) -> int:
        return recv_ns - self._latency

    # -- coins ----------------------------------------------------------------------------------

    def _role(self, coin: str) -> str | None:
        """'main', 'ref', 'spot' or None (another coin)."""
        if coin == self.coin:
            return "main"
        if coin == self.ref_coin:
            return "ref"
        if coin == self.spot_coin:
            return "spot"
        if self.coin is None:
            self.coin = coin
            return "main"
        self.stats.other_coins[coin] += 1
        return None

    # -- channels -------------------------------------------------------------------------------

    def _book(self, data, recv_ns, tag, out) -> None:
        book = M.l2_book(data)
        t = self._exch(recv_ns, book.t)
        role = self._role(book.coin)
        if role == "main":
            if tag == "agg":
                out.append((t, E.BOOK_AGG, _book_payload(book.bids, book.asks)))
                return
            if tag == "fast":
                book = self._merge_fast(book)
            else:
                self._full_book = book
            out.append((t, E.BOOK, _book_payload(book.bids, book.asks)))
            self._note_mid(t, _mid(book))
        elif role is not None and tag != "agg":
            self._other_mid(role, t, _mid(book), out)

    def _merge_fast(self, fast: M.Book) -> M.Book:
        full = self._full_book
        if full is None:
            return fast
        bids, asks = list(fast.bids), list(fast.asks)
        if bids:
            bids += [lv for lv in full.bids if lv.px < bids[-1].px]
        if asks:
            asks += [lv for lv in full.asks if lv.px > asks[-1].px]
        return fast._replace(bids=bids[:BOOK_LEVELS], asks=asks[:BOOK_LEVELS])

    def _bbo(self, data, recv_ns, tag, out) -> None:
        book = M.bbo(data)
        t = self._exch(recv_ns, book.t)
        role = self._role(book.coin)
        if role == "main":
            nan3 = [math.nan] * 3
            out.append(
                (
                    t,
                    E.BBO,
                    (list(book.bids[0]) if book.bids else nan3) + (list(book.asks[0]) if book.asks else nan3),
                )
            )
            self._note_mid(t, _mid(book))
        elif role is not None:
            self._other_mid(role, t, _mid(book), out)

    def _other_mid(self, role: str, t: int, mid: float, out: list[Row]) -> None:
        if mid == mid:
            out.append((t, E.REF_MID if role == "ref" else E.SPOT_MID, [mid]))

    def _note_mid(self, t: int, mid: float) -> None:
        if mid != mid:
            return
        if self._mids and self._mids[-1][0] == t:
            self._mids[-1] = (t, mid)
        else:
            self._mids.append((t, mid))

    def _mid_before(self, t: int) -> float:
        for tm, mid in reversed(self._mids):
            if tm < t:
                return mid
        return math.nan

    def _trades(self, data, recv_ns, tag, out) -> None:
        trades = M.trades(data)
        if not trades:
            return
        coin = trades[0].coin
        snapshot = coin in self._trades_acked or (
            coin not in self._trades_seen
            and self._first_recv is not None
            and min(tr.t for tr in trades) < self._first_recv - _SNAPSHOT_AGE_NS
        )
        self._trades_acked.discard(coin)
        self._trades_seen.add(coin)
        self._exch(recv_ns, max(tr.t for tr in trades))
        for tr in trades:
            if not self._tids.add(tr.tid):
                self.stats.duplicate_trades += 1
                continue
            if snapshot:
                self.stats.snapshot_trades += 1
                continue
            if self._role(tr.coin) == "main":
                out.append((tr.t, E.TRADE, [tr.px, tr.sz, tr.side, float(tr.tid)]))

    def _ctx_event(self, t: int, out: list[Row]) -> None:
        out.append((t, E.CTX, list(self._ctx)))

    def _active_ctx(self, data, recv_ns, tag, out) -> None:
        coin = str(data["coin"])
        ctx = M.asset_ctx(coin, data["ctx"])
        if self._role(coin) == "main":
            self._apply_ctx(ctx)
            self._ctx_event(self._recv(recv_ns), out)

    def _apply_ctx(self, ctx: M.AssetCtx) -> None:
        self._ctx[0] = ctx.funding
        self._ctx[2:6] = [ctx.oi, ctx.mark, ctx.oracle, ctx.premium]

    def _all_mids(self, data, recv_ns, tag, out) -> None:
        mids = M.all_mids(data)
        t = self._recv(recv_ns)
        for role, coin in (("ref", self.ref_coin), ("spot", self.spot_coin)):
            if coin is not None and coin in mids and mids[coin] != self._all_mids.get(coin):
                self._all_mids[coin] = mids[coin]
                self._other_mid(role, t, mids[coin], out)

    def _user_fills(self, data, recv_ns, tag, out) -> None:
        self._fills(data["fills"], recv_ns, bool(data.get("isSnapshot", False)), out)

    def _user(self, data, recv_ns, tag, out) -> None:
        if "fills" in data:  # other user events (funding, liquidation, ...) are not ours to replay
            self._fills(data["fills"], recv_ns, False, out)

    def _fills(self, raw: list, recv_ns: int, history: bool, out: list[Row]) -> None:
        fills = [M.fill(d) for d in raw]
        for f in fills:
            key = f.tid if f.tid is not None else (f.oid, f.t, f.px, f.sz, f.side)
            if not self._fill_keys.add(key):
                self.stats.duplicate_fills += 1
                continue
            if history or not self.fills or f.coin != self.coin:
                continue
            out.append(
                (
                    f.t,
                    E.FILL,
                    [f.px, f.sz, f.side, float(f.oid), f.fee, float(f.maker), self._mid_before(f.t)],
                )
            )

    def _order_updates(self, data, recv_ns, tag, out) -> None:
        self.records["orderUpdates"].extend(M.order_update(d) for d in data)

    def _candle(self, data, recv_ns, tag, out) -> None:
        self.records["candles"].append(M.candle(data))

    def _error(self, data, recv_ns, tag, out) -> None:
        self.stats.server_errors.append(str(data))

    def _subscription(self, data, recv_ns, tag, out) -> None:
        sub = data.get("subscription") or {}
        if data.get("method") == "subscribe" and sub.get("type") == "trades":
            self._trades_acked.add(str(sub.get("coin")))

    def _session(self, data, recv_ns, tag, out) -> None:
        self.session = dict(data)
        for key, attr in (("coin", "coin"), ("ref_coin", "ref"), ("spot_coin", "spot")):
            if data.get(key) and not self._explicit[attr]:
                setattr(self, key, str(data[key]))

    def _timer(self, data, recv_ns, tag, out) -> None:
        out.append((self._recv(recv_ns), E.TIMER, [float(data["code"])]))

    def _rest(self, data, recv_ns, tag, out) -> None:
        request, body = data["request"], data["response"]
        kind = request["type"]
        if kind == "l2Book":
            self._book(body, recv_ns, None, out)
        elif kind == "meta":
            self._meta(M.meta(body))
        elif kind == "metaAndAssetCtxs":
            metas = M.meta(body[0])
            self._meta(metas)
            for m, ctx in zip(metas, body[1]):
                if m.name == self.coin:
                    self._apply_ctx(M.asset_ctx(m.name, ctx))
                    self._ctx_event(self._recv(recv_ns), out)
        elif kind == "allMids":
            self._all_mids(body, recv_ns, None, out)
        elif kind == "predictedFundings":
            rates = M.predicted_fundings(body)
            if self.coin in rates:
                self._ctx[1] = rates[self.coin][0]
                self._ctx_event(self._recv(recv_ns), out)
        elif kind in ("userFills", "userFillsByTime"):
            self._fills(body, recv_ns, True, out)
        elif kind == "fundingHistory":
            self.records["fundingHistory"].extend(M.funding_row(d) for d in body)
        elif kind == "candleSnapshot":
            self.records["candles"].extend(M.candle(d) for d in body)

    def _meta(self, metas: list[M.AssetMeta]) -> None:
        self._metas = {m.name: m for m in metas}

    def instrument_for(self, coin: str) -> Instrument | None:
        """``coin``'s instrument from the last meta frame seen, if it listed the coin."""
        m = self._metas.get(coin)
        return None if m is None else Instrument(m.name, m.sz_decimals, "meta frame")


_HANDLERS = {
    "l2Book": FrameParser._book,
    "bbo": FrameParser._bbo,
    "trades": FrameParser._trades,
    "activeAssetCtx": FrameParser._active_ctx,
    "allMids": FrameParser._all_mids,
    "userFills": FrameParser._user_fills,
    "user": FrameParser._user,
    "orderUpdates": FrameParser._order_updates,
    "candle": FrameParser._candle,
    "error": FrameParser._error,
    "subscriptionResponse": FrameParser._subscription,
    SESSION: FrameParser._session,
    TIMER: FrameParser._timer,
    REST: FrameParser._rest,
}
