"""``Live``: the Hyperliquid feed as a source, recorded as it is consumed.

One rule makes live and replay agree: every frame the engine consumes is first written to the
recording (``RecordingWriter``, the replay format) and then parsed by the same
``FrameParser`` a replay uses, from the same text, in the same order. What the live source
decides on the wall clock (staleness, "the batch is complete") it writes as ``flowmm.timer``
lines, so a replay reads the decision instead of remaking it. Frames it refuses (exact
duplicates, an out-of-order book) never reach the parser or the recording: counted only.

Flow (docs/live.md): REST bootstrap on the calling thread (``metaAndAssetCtxs`` with its
``dex``, ``perpDexs`` for a HIP-3 dex, the ``l2Book`` snapshot, ``predictedFundings``), then
``chunks()`` starts the websocket client (daemon reader threads -> one queue) and a
``predictedFundings`` poller, and on the engine thread takes items off the queue, records,
parses and yields ``EventTable`` chunks. A same-time batch is never split: rows at the latest
time are held until a later time is seen, or until the feed has been quiet ``flush_ms`` (a
timer line closes the batch). It stops on ``stop()``, Ctrl+C (SIGINT sets the stop flag; a
second one interrupts), ``duration_s``, ``max_frames`` or a fault (the client gave up
reconnecting, the server refused a subscription), then stops every thread it started.
"""

from __future__ import annotations

import hashlib
import json
import queue
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flowmm import __version__
from flowmm.core import events as E
from flowmm.core.events import EventTable
from flowmm.errors import Location, SourceError
from flowmm.hyperliquid.instruments import Instrument, bundled
from flowmm.hyperliquid.parser import MAX_JUMP_NS, REST, SESSION, TIMER, FrameParser, Row
from flowmm.hyperliquid.ws_client import Backoff, Item, WsClient
from flowmm.io.recording import RecordingWriter
from flowmm.sources.events import build_table
from flowmm.sources.live import staleness
from flowmm.sources.live.config import LiveConfig

DATA_CHANNELS = frozenset(
    ("l2Book", "trades", "bbo", "activeAssetCtx", "allMids", "userFills", "user", "orderUpdates")
)
_POLL_S = 0.05  # queue wait when nothing is held: how often stop / staleness are checked
_RECENT = 256  # exact-duplicate window, in frames


def post_info(url: str, request: dict, timeout: float) -> Any:
    """POST ``request`` to ``<url>/info``; the decoded JSON body."""
    req = urllib.request.Request(
        url.rstrip("/") + "/info",
        data=json.dumps(request).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


class Live:
    """The live feed (see the module docstring). ``record``: the recording's path (.rec.lz4)."""

    name = "live"

    def __init__(self, config: LiveConfig, *, record: str | Path | None = None, private: bool = False):
        self.cfg = c = config
        self.coin = c.coin
        self.parser = FrameParser(c.coin, ref_coin=c.ref_coin, spot_coin=c.spot_coin, fills=False)
        # private: the recording is written 0600 (an --execute run's holds account data)
        self.writer = RecordingWriter(record, private=private) if record is not None else None
        self.end_time: int | None = None
        self.fault: str | None = None
        self.stop_reason: str | None = None
        self.counts: Counter = Counter()
        self.stale_counts: Counter = Counter()  # per stream: times it went stale
        self.server_errors: list[str] = []
        self.threads_left: list[str] = []
        self._rows: list[Row] = []
        self._barrier: int | None = None  # time of the last batch delivered with nothing held
        self._arrivals: list[int] = []  # wall receive time (ns) of the frame behind each held row
        self._arrival_ns: int | None = None
        self.arrivals: list[int] = []  # ... of the rows of the chunk just yielded (bench/live_latency.py)
        self._stop = threading.Event()
        self._recent: deque[bytes] = deque(maxlen=_RECENT)
        self._recent_set: set[bytes] = set()
        self._last_time: dict[tuple, int] = {}  # (channel, coin, tag) -> exchange ms of the last book
        self._stale: set[str] = set()
        self._last_rx: dict[str, float] = {}
        self._last_recv: dict[str, int] = {}  # per stream: wall-clock ns of its last frame
        self._client: WsClient | None = None
        self._poller: threading.Thread | None = None
        try:
            self._write_session()
            self._bootstrap()
        except BaseException:
            if self.writer is not None:
                self.writer.close()
            raise
        self.instrument = self._instrument()
        self.tick_size = self._tick()

    # -- REST -----------------------------------------------------------------------------------
    def _post(self, request: dict) -> Item:
        body = post_info(self.cfg.url, request, self.cfg.rest_timeout_s)
        return ("rest", time.time_ns(), {"request": request, "response": body}, None)

    def _bootstrap(self) -> None:
        c = self.cfg
        dex = {"dex": c.dex} if c.dex else {}
        requests = [{"type": "perpDexs"}] if c.dex else []
        requests += [
            {"type": "metaAndAssetCtxs", **dex},
            {"type": "l2Book", "coin": c.coin},
            {"type": "predictedFundings"},
        ]
        for request in requests:
            try:
                item = self._post(request)
            except (OSError, ValueError) as exc:
                raise SourceError(
                    f"REST {request['type']} failed: {exc}",
                    Location(c.url + "/info"),
                    hint="is the URL right and the server up? (flowmm serve --data REC for a local one)",
                ) from None
            body = item[2]["response"]
            if request["type"] == "perpDexs" and c.dex not in {d["name"] for d in body if d}:
                raise SourceError(f"no HIP-3 dex {c.dex!r} on {c.url}", Location(c.url + "/info"))
            if request["type"] == "l2Book" and body is None:
                raise SourceError(f"no book for {c.coin!r} on {c.url}", Location(c.url + "/info"))
            self._consume(item)

    def _resync(self) -> list[Item]:
        """After a reconnect (on the reader thread): the book snapshot, ahead of the new frames."""
        return [self._post({"type": "l2Book", "coin": self.cfg.coin})]

    def _poll_fundings(self) -> None:
        while not self._stop.wait(self.cfg.funding_poll_s):
            try:
                self._client.queue.put(self._post({"type": "predictedFundings"}))
            except (OSError, ValueError) as exc:
                self._client.queue.put(
                    ("status", time.time_ns(), {"event": "rest_failed", "detail": str(exc)}, None)
                )

    # -- metadata -------------------------------------------------------------------------------
    def _instrument(self) -> Instrument:
        meta = self.parser.instrument_for(self.coin)
        return meta if meta is not None else bundled(self.coin.split(":")[-1])

    def _tick(self) -> float | None:
        for _t, kind, p in self._rows:
            if kind == E.BOOK and p[0] and p[1]:
                nb = int(p[0])
                return self.instrument.tick(0.5 * (p[2] + p[2 + 3 * nb]))
        return None

    def provides(self) -> set[str]:
        c = self.cfg
        out = {"source.book", "source.mid", "source.trades", "source.ctx", "source.clock", "source.timer"}
        if c.bbo:
            out.add("source.bbo")
        if c.agg_sig_figs:
            out.add("source.book_agg")
        if c.ref_coin:
            out.add("source.ref_mid")
        if c.spot_coin:
            out.add("source.spot_mid")
        return out

    def subscriptions(self) -> list[tuple[str, str | None, list[dict]]]:
        """(connection name, recording tag, subscriptions): one connection per l2Book variant."""
        c = self.cfg
        main = [{"type": "l2Book", "coin": c.coin}, {"type": "trades", "coin": c.coin}]
        main += [{"type": "activeAssetCtx", "coin": c.coin}]
        if c.bbo:
            main.append({"type": "bbo", "coin": c.coin})
        for other in (c.ref_coin, c.spot_coin):
            if other:
                main.append({"type": "bbo", "coin": other})
        if c.address:
            main += [{"type": "userFills", "user": c.address}, {"type": "orderUpdates", "user": c.address}]
        conns = [("main", None, main)]
        if c.fast_book:
            conns.append(("fast", "fast", [{"type": "l2Book", "coin": c.coin, "fast": True}]))
        if c.agg_sig_figs:
            conns.append(("agg", "agg", [{"type": "l2Book", "coin": c.coin, "nSigFigs": c.agg_sig_figs}]))
        return conns

    # -- consuming: record, then parse the same text --------------------------------------------
    def _write_session(self) -> None:
        c = self.cfg
        header = {"coin": c.coin, "ref_coin": c.ref_coin, "spot_coin": c.spot_coin, "dex": c.dex,
                  "network": c.network, "url": c.url, "source": "live", "stale_ms": c.stale_ms,
                  "version": __version__}  # fmt: skip
        self._take(
            time.time_ns(), json.dumps({"channel": SESSION, "data": header}, separators=(",", ":")), None
        )

    def _take(self, recv_ns: int, text: str, tag: str | None, msg: Any = None, exch: bool = False) -> None:
        """Record one frame, then parse it exactly as a replay of the recording will.

        A frame without an exchange time (``exch`` False) is stamped by the parser with its
        receive time minus the latest latency; after a batch delivered early its receive time
        is floored so that stamp falls after the batch (see ``_restamp``)."""
        if not exch and self._barrier is not None:
            # the parser's latency estimate: what it will subtract from this receive time
            recv_ns = max(recv_ns, self._barrier + self.parser._latency + 1)
        if "\n" in text or "\r" in text:  # one frame per line (JSON may lose its whitespace)
            text = json.dumps(msg, separators=(",", ":")) if msg is not None else " ".join(text.split())
        if self.writer is not None:
            self.writer.write(recv_ns, text, tag)
        head = f"{recv_ns} {tag} " if tag else f"{recv_ns} "
        rows = self.parser.line(head + text)
        self._rows += rows
        self._arrivals += [self._arrival_ns or recv_ns] * len(rows)

    def _timer(self, recv_ns: int) -> None:
        self._arrival_ns = recv_ns
        data = {"code": staleness.code(self._stale), "stale": sorted(self._stale)}
        self._take(recv_ns, json.dumps({"channel": TIMER, "data": data}, separators=(",", ":")), None)
        self.counts["timers"] += 1

    def _consume(self, item: Item) -> None:
        kind, recv_ns, payload, tag = item
        self._arrival_ns = recv_ns
        if kind == "rest":
            if payload["request"]["type"] == "l2Book" and isinstance(payload["response"], dict):
                self._restamp([payload["response"]])
                self._fresh("book", recv_ns)
            is_book = payload["request"]["type"] == "l2Book"
            self._take(recv_ns, json.dumps({"channel": REST, "data": payload}, separators=(",", ":")), None,
                       exch=is_book)  # fmt: skip
            self.counts["rest"] += 1
        elif kind == "status":
            self._status(payload)
        else:
            self._frame(recv_ns, payload, tag)

    def _status(self, st: dict) -> None:
        event = st["event"]
        self.counts[event] += 1
        if event == "connected" and self.counts["connected"] > len(
            self._client.conns if self._client else [1]
        ):
            self.counts["reconnects"] += 1
        elif event == "gave_up":
            self._fail(f"websocket {st.get('conn')}: {st.get('detail')}")

    def _frame(self, recv_ns: int, text: str, tag: str | None) -> None:
        try:
            msg = json.loads(text)
            channel = msg.get("channel") if isinstance(msg, dict) else None
        except ValueError:
            msg, channel = None, None
        if channel in DATA_CHANNELS:
            key = hashlib.blake2b(f"{tag}|{text}".encode(), digest_size=16).digest()
            if key in self._recent_set:
                self.counts["duplicate_frames"] += 1
                return
            if len(self._recent) == self._recent.maxlen:
                self._recent_set.discard(self._recent[0])
            self._recent.append(key)
            self._recent_set.add(key)
            if self._out_of_order(channel, msg, tag):
                self.counts["out_of_order"] += 1
                return
            if channel in ("l2Book", "bbo", "trades"):
                data = msg.get("data")
                if self._restamp(data if isinstance(data, list) else [data]):
                    text = json.dumps(msg, separators=(",", ":"))
            self.counts["frames"] += 1
            stream = None if tag == "agg" else self._stream_of(channel, msg)  # agg: not the book's clock
            if stream is not None:
                self._fresh(stream, recv_ns)
        elif channel == "error":
            self.server_errors.append(str(msg.get("data")))
            if "Invalid subscription" in str(msg.get("data")):
                self._fail(f"server refused a subscription: {msg.get('data')}")
        elif channel is None:
            self.counts["garbage"] += 1
        self._take(recv_ns, text, tag, msg, exch=channel in ("l2Book", "bbo", "trades"))
        if self.cfg.max_frames is not None and self.counts["frames"] >= self.cfg.max_frames:
            self.stop("max_frames")

    def _restamp(self, items: list) -> bool:
        """Move exchange times at or before the last delivered batch just after it (in place).

        A batch delivered early (a timer closed it) must stay whole: an event at its time that
        arrives later would otherwise join it in a replay but not live. The moved frame is
        recorded as moved, so a replay sees what the engine saw. True if anything moved."""
        if self._barrier is None:
            return False
        floor_ms = self._barrier // 1_000_000 + 1
        moved = False
        for d in items:
            if isinstance(d, dict) and isinstance(d.get("time"), int) and d["time"] < floor_ms:
                d["time"] = floor_ms
                moved = True
        self.counts["restamped"] += moved
        return moved

    def _out_of_order(self, channel: str, msg: dict, tag: str | None) -> bool:
        """A book (or bbo) older than the last one of its kind: the newer one stands."""
        if channel not in ("l2Book", "bbo"):
            return False
        data = msg.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("time"), int):
            return False  # malformed: the parser counts it
        key = (channel, data.get("coin"), tag)
        last = self._last_time.get(key, 0)
        if data["time"] < last:
            return True
        if last and data["time"] - last > MAX_JUMP_NS // 1_000_000:
            return False  # a far-future time: the parser refuses the frame; it is no reference
        self._last_time[key] = data["time"]
        return False

    def _stream_of(self, channel: str, msg: dict) -> str | None:
        data = msg.get("data")
        coin = data[0].get("coin") if isinstance(data, list) and data else (data or {}).get("coin")
        c = self.cfg
        if coin == c.coin:
            return {"l2Book": "book", "bbo": "bbo", "trades": "trades", "activeAssetCtx": "ctx"}.get(channel)
        if coin is not None and coin == c.ref_coin:
            return "ref"
        if coin is not None and coin == c.spot_coin:
            return "spot"
        return None

    # -- staleness ------------------------------------------------------------------------------
    def _fresh(self, stream: str, recv_ns: int) -> None:
        # Staleness is judged on receive times, not on when this thread gets to a frame: on a
        # loaded machine the queue can hold frames from both sides of a silence, and the
        # consumer would never see the gap on its own clock.
        ms = self.cfg.stale_ms.get(stream)
        prev = self._last_recv.get(stream)
        self._last_recv[stream] = recv_ns
        # the wall-clock check's reference: the frame's receive time, on the monotonic clock
        self._last_rx[stream] = time.monotonic() - max(0.0, (time.time_ns() - recv_ns) * 1e-9)
        if ms is not None and prev is not None and stream not in self._stale and recv_ns - prev > ms * 1e6:
            # the feed was silent past the threshold: stale now, fresh again at the stream's next
            # frame (stale and fresh in one batch would cancel out: the engine sees the last)
            self._stale.add(stream)
            self.stale_counts[stream] += 1
            self._timer(prev + int(ms * 1e6))
            return
        if stream in self._stale:
            self._stale.discard(stream)
            self._timer(recv_ns)  # before the frame that ends it

    def _check_stale(self) -> bool:
        """Streams silent past their threshold go stale: a timer, delivered at once."""
        if self._client is not None and not self._client.queue.empty():
            return False  # frames are waiting: the feed is not silent, this thread is behind
        now = time.monotonic()
        went = [
            s
            for s, ms in self.cfg.stale_ms.items()
            if s not in self._stale and now - self._last_rx.get(s, self._started) > ms * 1e-3
        ]
        if went:
            self._stale.update(went)
            self.stale_counts.update(went)
            self._timer(time.time_ns())
        return bool(went)

    # -- delivery -------------------------------------------------------------------------------
    def stop(self, reason: str = "stopped") -> None:
        """Ask the feed to end (thread-safe): the current batch is delivered, then ``chunks`` ends."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stop.set()

    def _fail(self, why: str) -> None:
        if self.fault is None:
            self.fault = why
        self.stop("fault")

    def _release(self, final: bool) -> EventTable | None:
        """The rows before the latest time (all of them when ``final``: a timer written on the
        wall clock closes the batch it ends), as a table."""
        rows = self._rows
        if not rows:
            return None
        k = len(rows)
        if not final:
            last = rows[-1][0]
            while k and rows[k - 1][0] == last:
                k -= 1
            if not k:
                return None
        out, self._rows = rows[:k], rows[k:]
        self.arrivals, self._arrivals = self._arrivals[:k], self._arrivals[k:]
        self.end_time = out[-1][0]
        if final or k == len(rows):
            self._barrier = self.end_time  # nothing held: later events must come after it
        return build_table(out)

    def chunks(self) -> Iterator[EventTable]:
        c = self.cfg
        self._client = WsClient(
            c.url, self.subscriptions(), resync=self._resync, ping_s=c.ping_s, dead_s=c.dead_s,
            backoff=Backoff(c.backoff_s, c.backoff_max_s, c.max_reconnects),
        ).start()  # fmt: skip
        self._poller = threading.Thread(target=self._poll_fundings, name="flowmm-live-fundings", daemon=True)
        self._poller.start()
        self._started = time.monotonic()  # every stream's staleness clock starts with the feed
        self._last_rx.clear()
        self._last_recv.clear()
        restore = self._catch_sigint()
        try:
            yield from self._loop()
            tail = self._release(final=True)
            if tail is not None:
                yield tail
        finally:
            self._close()
            restore()

    def _loop(self) -> Iterator[EventTable]:
        q = self._client.queue
        deadline = None if self.cfg.duration_s is None else time.monotonic() + self.cfg.duration_s
        flush_s = self.cfg.flush_ms * 1e-3
        try:
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    self.stop("duration")
                    break
                closed = False
                try:
                    self._consume(q.get(timeout=flush_s if self._rows else _POLL_S))
                except queue.Empty:
                    if self._rows:  # quiet for flush_ms: the held batch is complete
                        self._timer(time.time_ns())
                        closed = True
                closed |= self._check_stale()
                table = self._release(final=closed)
                if table is not None:
                    yield table
        except KeyboardInterrupt:  # no SIGINT handler (not the main thread): still stop cleanly
            self.stop("interrupted")

    def _catch_sigint(self):
        """Ctrl+C sets the stop flag (cancel-all and a clean exit follow); a second one interrupts."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = signal.getsignal(signal.SIGINT)

        def handler(signum, frame):
            if self._stop.is_set():
                raise KeyboardInterrupt
            self.stop("interrupted")

        signal.signal(signal.SIGINT, handler)
        return lambda: signal.signal(signal.SIGINT, previous)

    def _close(self) -> None:
        self._stop.set()
        if self._client is not None:
            self._client.stop()
        if self._poller is not None:
            self._poller.join(timeout=5)
        if self.writer is not None:
            self.writer.close()
        self.threads_left = (self._client.alive_threads() if self._client else []) + (
            [self._poller.name] if self._poller is not None and self._poller.is_alive() else []
        )

    def summary(self) -> dict[str, Any]:
        c = self.cfg
        return {
            "url": c.url,
            "network": c.network,
            "coin": c.coin,
            "dex": c.dex,
            "instrument": self.instrument.as_dict(),
            "tick_size": self.tick_size,
            "record": [str(p) for p in self.writer.files] if self.writer is not None else [],
            "stop": self.stop_reason,
            "fault": self.fault,
            "frames": self.counts["frames"],
            "faults": {
                "reconnects": self.counts["reconnects"],
                "disconnects": self.counts["disconnected"],
                "garbage": self.counts["garbage"],
                "malformed": sum(self.parser.stats.malformed.values()),
                "duplicate_frames": self.counts["duplicate_frames"],
                "duplicate_trades": self.parser.stats.duplicate_trades,
                "out_of_order": self.counts["out_of_order"],
                "restamped": self.counts["restamped"],
                "stale": dict(self.stale_counts),
                "server_errors": list(self.server_errors),
            },
            "timers": self.counts["timers"],
            "rest": self.counts["rest"],
            "connections": self._client.stats() if self._client is not None else {},
            "threads_left": self.threads_left,
            "parse": self.parser.stats.as_dict(),
        }
