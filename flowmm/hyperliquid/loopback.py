"""A loopback Hyperliquid server: REST ``/info`` and the websocket ``/ws`` on one port,
streaming a recording, with fault injection (``flowmm serve``).

It speaks the real protocol, so the unmodified SDK works against it as well as flowmm's own
client: ``{"method": "subscribe", "subscription": {...}}`` is answered with a
``subscriptionResponse`` ack (an invalid one with an ``error`` frame), ``{"method": "ping"}``
with ``{"channel": "pong"}``, websocket control pings with pongs; channel frames are sent as
recorded (the recording's own text, unchanged). Standard library only: one threaded HTTP
server whose ``GET /ws`` upgrades to a websocket (RFC 6455, text frames, no extensions).

**Streaming.** One streamer thread walks the recording's frames in order, paced by their
receive times at ``speed`` x wall time (``None``: as fast as the sockets take them), starting
``start_delay_s`` after the first subscription (so a client's subscriptions are all in
place). Each frame goes to every connection subscribed to it: ``l2Book`` by coin and variant
(a recorded ``fast`` tag to ``{"fast": true}`` subscribers, ``agg`` to ``nSigFigs`` ones, an
untagged book to plain ones), ``trades`` / ``bbo`` / ``activeAssetCtx`` by coin, ``allMids``
to all, user channels by subscription type. Like the exchange, a new ``l2Book`` / ``bbo``
subscription gets the current book at once, a ``trades`` subscription the latest trades
frame (the "recent trades" batch). Frames sent while a client is away are lost, as on the
exchange. ``flowmm.*`` lines are not streamed: recorded REST bodies answer ``/info``.

**Times.** By default (``rebase_time``) the exchange times of ``l2Book`` / ``bbo`` / ``trades``
frames are moved by one offset so the first streamed frame is "now" and the rest keep the
recording's spacing (a stall moves the rest by its length, as an outage would): a client's
wall clock and the served times then agree at ``speed=1``, and a recording from 2024 does not
look two years late. Above real time the served clock runs ahead of the wall clock. The text is
re-serialised only for those frames; ``rebase_time=False`` sends every frame as recorded.

**/info.** A recorded body for the request's type (``meta``, ``metaAndAssetCtxs``,
``predictedFundings`` ...) when the recording has one; otherwise a body shaped like the real
one (``sdk_cassettes_json``), built from what the recording shows: ``meta`` lists its coins
(size decimals from the bundled table), ``l2Book`` is the latest streamed book of the coin,
``spotMeta`` / ``perpDexs`` / ``allMids`` / ``metaAndAssetCtxs`` / ``predictedFundings`` minimal
but valid. Unknown request types get HTTP 422 like the exchange.

**Faults** (:class:`Faults`, also ``--fault KIND@FRAME[:ARG]``), each at a data-frame index of
the stream or at once: ``drop`` closes every websocket abruptly, ``garbage`` sends a
non-JSON text frame, ``stall`` pauses the stream for ARG seconds, ``duplicate`` sends the
frame twice, ``reorder`` swaps it with the next one. ``stats`` counts what was done.

**/exchange** (real-execution rehearsals; only with ``exchange=True``, ``flowmm serve
--exchange``, else 404 as before): signed actions are verified and matched against the
streamed market by :class:`~flowmm.hyperliquid.loopback_exchange.PaperExchange` (``exchange``);
its ``/info`` user requests (``openOrders``, ``orderStatus``, ``userFills``,
``clearinghouseState``) are answered first, and fills and order updates are pushed to the
connections subscribed to the user's ``userFills`` / ``orderUpdates``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from flowmm.errors import Location, SourceError
from flowmm.hyperliquid.instruments import bundled
from flowmm.hyperliquid.loopback_exchange import PaperExchange, Push
from flowmm.io.recording import open_lines

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
FAULT_KINDS = ("drop", "garbage", "stall", "duplicate", "reorder")
SUB_TYPES = (
    "l2Book",
    "trades",
    "bbo",
    "activeAssetCtx",
    "allMids",
    "userFills",
    "orderUpdates",
    "userEvents",
)
_COIN_SUBS = ("l2Book", "trades", "bbo", "activeAssetCtx")
_USER_CHANNELS = {"userFills": "userFills", "orderUpdates": "orderUpdates", "user": "userEvents"}


# -- the recording, indexed for streaming ---------------------------------------------------------


@dataclass
class Frame:
    recv_ns: int
    text: str  # the frame exactly as recorded
    channel: str
    coin: str | None
    tag: str | None


def _frame_coin(channel: str, data: Any) -> str | None:
    if channel == "trades" and isinstance(data, list) and data and isinstance(data[0], dict):
        return data[0].get("coin")
    if isinstance(data, dict):
        return data.get("coin")
    return None


@dataclass
class Recording:
    """The frames to stream and the REST bodies of a recording."""

    frames: list[Frame] = field(default_factory=list)
    rest: dict[str, Any] = field(default_factory=dict)  # request type (+ ":dex") -> last body
    coins: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path, limit: int | None = None) -> Recording:
        """Read ``<recv_ns> [tag ]<json>`` lines (a flowmm recording or an hftbacktest capture)."""
        rec, coins = cls(), {}
        path = Path(path)
        if not path.is_file():
            raise SourceError(f"no such recording: {path}", Location(str(path)))
        for lineno, line in enumerate(open_lines(path), 1):
            try:
                head, _, rest = line.decode().partition(" ")
                tag = None
                if rest[:1] != "{":
                    tag, _, rest = rest.partition(" ")
                msg = json.loads(rest)
                recv, channel = int(head), msg["channel"]
            except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
                raise SourceError(f"not a recording line: {exc}", Location(str(path), lineno)) from None
            data = msg.get("data")
            if channel == "flowmm.rest":
                req = data["request"]
                rec.rest[_rest_key(req)] = data["response"]
                continue
            if channel.startswith("flowmm.") or channel in ("subscriptionResponse", "pong", "error"):
                continue  # the server makes its own acks and pongs; timers are a client's facts
            coin = _frame_coin(channel, data)
            if coin is not None:
                coins.setdefault(coin, None)
            rec.frames.append(Frame(recv, rest, channel, coin, tag))
            if limit is not None and len(rec.frames) >= limit:
                break
        if not rec.frames:
            raise SourceError("the recording has no websocket frames to stream", Location(str(path)))
        rec.coins = list(coins)
        return rec


def _rest_key(req: dict) -> str:
    dex = req.get("dex") or ""
    return f"{req.get('type')}:{dex}" if dex else str(req.get("type"))


# -- fault injection ------------------------------------------------------------------------------


class Faults:
    """Faults to inject, at data-frame indexes of the stream (``at``) or at once (``now``)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._plan: dict[int, list[tuple[str, float]]] = {}
        self._now: list[tuple[str, float]] = []
        self.done: Counter = Counter()

    def at(self, frame: int, kind: str, arg: float = 1.0) -> Faults:
        """Inject ``kind`` just before the stream's ``frame``-th data frame (0-based)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._plan.setdefault(int(frame), []).append((kind, float(arg)))
        return self

    def now(self, kind: str, arg: float = 1.0) -> None:
        """Inject ``kind`` before the next data frame."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._now.append((kind, float(arg)))

    def take(self, index: int) -> list[tuple[str, float]]:
        with self._lock:
            out = self._now + self._plan.pop(index, [])
            self._now = []
        return out

    @staticmethod
    def parse(spec: str) -> tuple[str, int, float]:
        """``KIND@FRAME[:ARG]`` (``stall@2000:1.5``) -> (kind, frame, arg)."""
        try:
            kind, _, rest = spec.partition("@")
            frame, _, arg = rest.partition(":")
            if kind not in FAULT_KINDS:
                raise ValueError
            return kind, int(frame), float(arg) if arg else 1.0
        except ValueError:
            raise SourceError(
                f"not a fault: {spec!r}",
                Location("<options>"),
                hint=f"KIND@FRAME[:ARG], KIND one of {', '.join(FAULT_KINDS)}; e.g. stall@2000:1.5",
            ) from None


# -- websocket framing (RFC 6455, server side) ----------------------------------------------------


def _encode(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def _read_exact(f, n: int) -> bytes:
    data = f.read(n)
    if data is None or len(data) < n:
        raise ConnectionError("websocket closed")
    return data


def _read_frame(f) -> tuple[int, bool, bytes]:
    b0, b1 = _read_exact(f, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", _read_exact(f, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", _read_exact(f, 8))[0]
    mask = _read_exact(f, 4) if b1 & 0x80 else None
    payload = _read_exact(f, n)
    if mask and n:  # client frames are masked: XOR with the 4-byte key, repeated
        key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
        payload = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")
    return b0 & 0x0F, bool(b0 & 0x80), payload


class Connection:
    """One websocket client: its subscriptions and a send lock (the streamer and the reader
    thread both write)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.subs: list[dict] = []
        self.lock = threading.Lock()
        self.open = True

    def send(self, text: str | bytes, opcode: int = OP_TEXT) -> bool:
        data = text.encode() if isinstance(text, str) else text
        with self.lock:
            if not self.open:
                return False
            try:
                self.sock.sendall(_encode(opcode, data))
                return True
            except OSError:
                self.open = False
                return False

    def kill(self) -> None:
        """Drop the connection abruptly (no close frame): what a network fault looks like."""
        with self.lock:
            self.open = False
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()

    def wants(self, fr: Frame) -> bool:
        return any(sub_wants(s, fr) for s in self.subs)


def sub_wants(s: dict, fr: Frame) -> bool:
    """Whether subscription ``s`` gets frame ``fr``."""
    t = s.get("type")
    if fr.channel == "l2Book" and t == "l2Book" and s.get("coin") == fr.coin:
        variant = "fast" if s.get("fast") else "agg" if s.get("nSigFigs") else None
        return variant == fr.tag
    if fr.channel in ("trades", "bbo", "activeAssetCtx") and t == fr.channel:
        return s.get("coin") == fr.coin
    if fr.channel == "allMids":
        return t == "allMids"
    return _USER_CHANNELS.get(fr.channel) == t


# -- the server -----------------------------------------------------------------------------------


DEAD_MAN_POLL_S = 0.1  # how often the loopback exchange checks scheduleCancel times


class LoopbackServer:
    """``LoopbackServer(recording, port=0, speed=None).start()``; ``url`` is its base URL."""

    def __init__(
        self,
        recording: Recording | str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float | None = None,
        start_delay_s: float = 0.2,
        faults: Faults | None = None,
        rebase_time: bool = True,
        exchange: bool = False,
        clock: Callable[[], int] = time.time_ns,
    ):
        self.rec = recording if isinstance(recording, Recording) else Recording.load(recording)
        if speed is not None and not speed > 0:
            raise SourceError(f"speed must be > 0 (or max), not {speed}", Location("<options>"))
        self.speed, self.start_delay_s, self.rebase_time = speed, start_delay_s, rebase_time
        self.faults = faults or Faults()
        self.stats: Counter = Counter()
        self.conns: list[Connection] = []
        self._lock = threading.Lock()
        self._latest: dict[tuple, Frame] = {}  # (channel, coin, tag) -> last streamed frame
        self._subscribed = threading.Event()
        self._stop = threading.Event()
        self.finished = threading.Event()  # every frame streamed
        self.sent = 0  # data frames streamed (fault index)
        self._dup = False  # the next frame goes out twice
        self._offset_ms: int | None = None  # served - recorded exchange time, once streaming
        handler = type("Handler", (_Handler,), {"server_ref": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._threads: list[threading.Thread] = []
        # /exchange and the user /info requests: only when asked for (a feed-only server by default)
        universe = lambda: self.info({"type": "meta"})[1]["universe"]  # noqa: E731 -- the served meta
        self.exchange = PaperExchange(universe, clock=clock) if exchange else None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.httpd.server_address[0]}:{self.port}"

    def wait_subscribed(self, timeout: float | None = None) -> bool:
        """Block until a client has subscribed (the stream starts ``start_delay_s`` later)."""
        return self._subscribed.wait(timeout)

    def _dead_man(self) -> None:
        """scheduleCancel fires on time, whatever the client and the stream are doing."""
        while not self._stop.wait(DEAD_MAN_POLL_S):
            self.push(self.exchange.expire())

    def start(self) -> LoopbackServer:
        targets = [(self.httpd.serve_forever, "loopback-http"), (self._stream, "loopback-stream")]
        if self.exchange is not None:
            targets.append((self._dead_man, "loopback-dead-man"))
        for target, name in targets:
            th = threading.Thread(target=target, name=name, daemon=True)
            th.start()
            self._threads.append(th)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._subscribed.set()
        if self._threads:  # shutdown() waits for serve_forever: only once started
            self.httpd.shutdown()
        for c in list(self.conns):
            c.kill()
        self.httpd.server_close()
        for th in self._threads:
            th.join(timeout=5)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- websocket side -------------------------------------------------------------------------
    def on_message(self, conn: Connection, text: str) -> None:
        try:
            msg = json.loads(text)
            method = msg["method"]
        except (ValueError, KeyError, TypeError):
            conn.send(
                json.dumps(
                    {"channel": "error", "data": f"Error parsing JSON into valid websocket request: {text}"}
                )
            )
            return
        if method == "ping":
            self.stats["pongs"] += 1
            conn.send('{"channel":"pong"}')
        elif method in ("subscribe", "unsubscribe"):
            sub = msg.get("subscription")
            if not self._valid(sub):
                self.stats["invalid_subscriptions"] += 1
                sub_text = json.dumps(sub, separators=(",", ":"))
                conn.send(json.dumps({"channel": "error", "data": f"Invalid subscription {sub_text}"}))
                return
            if method == "subscribe":
                conn.subs.append(sub)
            else:
                conn.subs = [s for s in conn.subs if s != sub]
            ack = {"channel": "subscriptionResponse", "data": {"method": method, "subscription": sub}}
            conn.send(json.dumps(ack, separators=(",", ":")))
            self.stats[method] += 1
            if method == "subscribe":
                self._snapshot(conn, sub)
                self._subscribed.set()
        else:
            conn.send(json.dumps({"channel": "error", "data": f"Unknown method: {method}"}))

    def _valid(self, sub: Any) -> bool:
        if not isinstance(sub, dict) or sub.get("type") not in SUB_TYPES:
            return False
        if sub["type"] in _COIN_SUBS:
            return sub.get("coin") in self.rec.coins
        return True

    def _snapshot(self, conn: Connection, sub: dict) -> None:
        """What the exchange sends on subscribing: the current book / bbo, the recent trades
        (before any was streamed: the recording's first trades frame of the coin)."""
        t = sub.get("type")
        if t not in ("l2Book", "bbo", "trades", "userFills"):
            return
        with self._lock:
            fr = next((f for k, f in self._latest.items() if k[0] == t and sub_wants(sub, f)), None)
        if fr is None and t == "trades":
            fr = next(
                (f for f in self.rec.frames if f.channel == "trades" and f.coin == sub.get("coin")), None
            )
        if fr is not None:
            conn.send(self._stamped(fr))
        elif t == "userFills" and self.exchange is not None and isinstance(sub.get("user"), str):
            snap = self.exchange.snapshot_fills(sub["user"])
            conn.send(json.dumps({"channel": "userFills", "data": snap}, separators=(",", ":")))

    def _shift_ms(self) -> int:
        """Recorded exchange time -> served: the stream's first frame is "now" when streaming
        starts (before that, at the request), later ones keep the recording's spacing, and a
        stall moves the rest later by its length, as an outage would."""
        if self._offset_ms is not None:
            return self._offset_ms
        return time.time_ns() // 1_000_000 - self.rec.frames[0].recv_ns // 1_000_000

    def _stamped(self, fr: Frame) -> str:
        """The frame with its exchange times moved by ``_shift_ms`` (``rebase_time``), so a
        client's clock and the served times agree; else as recorded."""
        if not self.rebase_time or fr.channel not in ("l2Book", "bbo", "trades"):
            return fr.text
        msg = json.loads(fr.text)
        shift = self._shift_ms()
        data = msg["data"]
        for d in data if isinstance(data, list) else [data]:
            if isinstance(d, dict) and isinstance(d.get("time"), int):
                d["time"] += shift
        return json.dumps(msg, separators=(",", ":"))

    # -- streaming ------------------------------------------------------------------------------
    def _stream(self) -> None:
        self._subscribed.wait()
        if self._stop.wait(self.start_delay_s):
            return
        frames = self.rec.frames
        wall0, t0 = time.monotonic(), frames[0].recv_ns
        self._offset_ms = self._shift_ms()
        i = 0
        while i < len(frames) and not self._stop.is_set():
            fr = frames[i]
            if self.speed is not None:
                delay = wall0 + (fr.recv_ns - t0) * 1e-9 / self.speed - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
            swap = False
            for kind, arg in self.faults.take(self.sent):
                swap |= self._fault(kind, arg)
                if kind == "stall":
                    wall0 += arg  # the stream resumes where it paused
                    self._offset_ms += int(arg * 1000)
            if swap and i + 1 < len(frames):
                self._send(frames[i + 1])
                self._send(fr)
                i += 2
                self.sent += 2
                continue
            self._send(fr)
            i += 1
            self.sent += 1
        self.finished.set()

    def _fault(self, kind: str, arg: float) -> bool:
        self.stats[f"fault_{kind}"] += 1
        self.faults.done[kind] += 1
        if kind == "drop":
            for c in list(self.conns):
                c.kill()
        elif kind == "garbage":
            for c in list(self.conns):
                c.send("}garbage{ not json")
        elif kind == "stall":
            self._stop.wait(arg)
        elif kind == "duplicate":
            self._dup = True
        return kind == "reorder"

    def _send(self, fr: Frame) -> None:
        with self._lock:
            self._latest[(fr.channel, fr.coin, fr.tag)] = fr
        times = 2 if self._dup else 1
        self._dup = False
        text = None
        for c in list(self.conns):
            if c.open and c.wants(fr):
                text = text or self._stamped(fr)
                for _ in range(times):
                    if c.send(text):
                        self.stats["frames_sent"] += 1
        ex = self.exchange
        if ex is not None and ex.accounts and fr.channel in ("l2Book", "trades") and fr.tag is None:
            # resting orders meet the market (as recorded: times do not matter to the matching)
            self.push(ex.on_market(fr.channel, json.loads(fr.text).get("data")))

    def push(self, pushes: list[Push]) -> None:
        """Send user-channel messages to the connections subscribed to that user's channel."""
        for user, channel, data in pushes:
            text = json.dumps({"channel": channel, "data": data}, separators=(",", ":"))
            for c in list(self.conns):
                if c.open and any(
                    s.get("type") == channel and str(s.get("user", "")).lower() == user for s in c.subs
                ):
                    c.send(text)
                    self.stats[f"pushed_{channel}"] += 1

    def exchange_request(self, payload: Any) -> tuple[int, Any]:
        """``POST /exchange``: a signed action (see :mod:`flowmm.hyperliquid.loopback_exchange`)."""
        if not isinstance(payload, dict):
            return 422, "Failed to deserialize the JSON body into the target type"
        answer, pushes = self.exchange.request(payload)
        self.push(pushes)
        return 200, answer

    # -- REST side ------------------------------------------------------------------------------
    def info(self, req: dict) -> tuple[int, Any]:
        kind = req.get("type")
        self.stats[f"info_{kind}"] += 1
        if self.exchange is not None:
            handled, body = self.exchange.info(req)
            if handled:
                return 200, body
        key = _rest_key(req)
        if kind == "l2Book":
            fr = self._book(req.get("coin"))
            return (200, json.loads(self._stamped(fr))["data"]) if fr is not None else (200, None)
        if key in self.rec.rest:
            return 200, self.rec.rest[key]
        dex = req.get("dex") or ""
        coins = [
            c
            for c in self.rec.coins
            if not c.startswith("@") and (c.split(":")[0] if ":" in c else "") == dex
        ]
        universe = [
            {"name": c, "szDecimals": bundled(c.split(":")[-1]).sz_decimals or 0, "maxLeverage": 50}
            for c in coins
        ]
        if kind == "meta":
            return 200, {"universe": universe}
        if kind == "metaAndAssetCtxs":
            return 200, [{"universe": universe}, [self._ctx(c) for c in coins]]
        if kind == "spotMeta":
            usdc = {
                "name": "USDC", "szDecimals": 8, "weiDecimals": 8, "index": 0, "isCanonical": True,
                "tokenId": "0x6d1e7cde53ba9467b783cb7c530ce054", "evmContract": None, "fullName": None,
            }  # fmt: skip
            return 200, {"tokens": [usdc], "universe": []}
        if kind == "perpDexs":
            dexes = sorted({c.split(":")[0] for c in self.rec.coins if ":" in c})
            return 200, [None] + [
                {"name": d, "fullName": d, "deployer": "0x" + "0" * 40, "oracleUpdater": None} for d in dexes
            ]
        if kind == "allMids":
            return 200, {c: str(self._mid(c)) for c in coins if self._mid(c) is not None}
        if kind == "predictedFundings":
            hour = 3_600_000
            now_ms = time.time_ns() // 1_000_000
            venue = {
                "fundingRate": "0.0000125",
                "nextFundingTime": (now_ms // hour + 1) * hour,
                "fundingIntervalHours": 1,
            }
            return 200, [[c, [["HlPerp", venue]]] for c in coins]
        return 422, "Failed to deserialize the JSON body into the target type"

    def _book(self, coin: str | None) -> Frame | None:
        """The coin's current book: the last one streamed, before streaming the first recorded."""
        with self._lock:
            fr = self._latest.get(("l2Book", coin, None))
        if fr is None:
            fr = next(
                (f for f in self.rec.frames if f.channel == "l2Book" and f.coin == coin and not f.tag), None
            )
        return fr

    def _mid(self, coin: str) -> float | None:
        fr = self._book(coin)
        if fr is None:
            return None
        bids, asks = json.loads(fr.text)["data"]["levels"]
        return 0.5 * (float(bids[0]["px"]) + float(asks[0]["px"])) if bids and asks else None

    def _ctx(self, coin: str) -> dict:
        mid = self._mid(coin)
        px = "0" if mid is None else f"{mid}"
        return {"funding": "0.0000125", "openInterest": "0.0", "prevDayPx": px, "dayNtlVlm": "0.0",
                "premium": "0.0", "oraclePx": px, "markPx": px, "midPx": px, "impactPxs": [px, px],
                "dayBaseVlm": "0.0"}  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    server_ref: LoopbackServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet: tests and `flowmm serve` print their own lines
        pass

    def do_POST(self) -> None:
        srv = self.server_ref
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.rstrip("/") not in ("/info", "/exchange") or (
            self.path.rstrip("/") == "/exchange" and srv.exchange is None
        ):
            return self._reply(404, "Not Found")
        try:
            req = json.loads(body)
            if not isinstance(req, dict):
                raise ValueError
        except ValueError:
            return self._reply(422, "Failed to deserialize the JSON body into the target type")
        if self.path.rstrip("/") == "/exchange":
            return self._reply(*srv.exchange_request(req))
        self._reply(*srv.info(req))

    def _reply(self, status: int, body: Any) -> None:
        data = (json.dumps(body) if status == 200 else str(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if status == 200 else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        srv = self.server_ref
        key = self.headers.get("Sec-WebSocket-Key")
        if (
            self.path.rstrip("/") != "/ws"
            or self.headers.get("Upgrade", "").lower() != "websocket"
            or not key
        ):
            return self._reply(404, "Not Found")
        accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        conn = Connection(self.connection)
        with srv._lock:
            srv.conns.append(conn)
        srv.stats["connections"] += 1
        try:
            self._serve_ws(srv, conn)
        finally:
            conn.open = False
            with srv._lock:
                srv.conns.remove(conn)
            self.close_connection = True

    def _serve_ws(self, srv: LoopbackServer, conn: Connection) -> None:
        parts: list[bytes] = []
        while conn.open:
            try:
                op, fin, payload = _read_frame(self.rfile)
            except (ConnectionError, OSError, ValueError):
                return
            if op == OP_PING:
                conn.send(payload, OP_PONG)
            elif op == OP_CLOSE:
                conn.send(payload[:2], OP_CLOSE)
                return
            elif op in (OP_TEXT, OP_BINARY, OP_CONT):
                parts.append(payload)
                if fin:
                    text = b"".join(parts).decode(errors="replace")
                    parts = []
                    srv.on_message(conn, text)
