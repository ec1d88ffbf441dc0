"""flowmm's own Hyperliquid websocket client: subscribe, ping, reconnect with backoff,
resubscribe, resync; frames go on a queue, in arrival order, for the engine thread.

Why not the SDK's ``WebsocketManager``: it never reconnects (its thread ends and the
subscriptions are lost), runs callbacks on its reader thread, drops ``error`` and
``subscriptionResponse`` frames, and its threads are not daemons. Here:

* one daemon reader thread per connection receives frames and puts them, stamped with their
  receive time (``time.time_ns()``), on a queue shared by all connections, so the consumer
  sees one arrival order; nothing is parsed or dropped on this thread (acks, ``error``
  frames and garbage reach the consumer, which records and counts them). ``pong`` frames
  are consumed here: they are the link's business, not the market's;
* it sends ``{"method": "ping"}`` after ``ping_s`` of silence on its side and treats a
  connection with nothing received for ``dead_s`` (pongs included) as dead;
* on a dead or dropped connection it reconnects with exponential backoff (``backoff_s`` doubling
  to ``backoff_max_s``), resubscribes, then calls ``resync()`` on the reader thread and queues
  what it returns (REST snapshots) *before* the frames of the new connection, so a recording
  shows the resync where the consumer applied it. After ``max_reconnects`` failed attempts in
  a row it gives up and queues a ``gave_up`` status: a fault for the consumer;
* ``stop()`` closes the sockets and joins the threads: nothing is left running.

Queue items are tuples ``(kind, recv_ns, payload, tag)``: ``("ws", ns, text, tag)`` a frame as
received, ``("rest", ns, {"request", "response"}, None)`` a resync body, ``("status", ns,
{"event", "conn", "detail"}, None)`` with event ``connected`` / ``disconnected`` / ``gave_up``.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import websocket

Item = tuple[str, int, Any, str | None]
_PONG = '{"channel":"pong"}'


@dataclass(frozen=True)
class Backoff:
    """Reconnect policy: waits of ``first_s``, doubling, at most ``max_s``; ``attempts`` tries."""

    first_s: float = 0.1
    max_s: float = 5.0
    attempts: int = 10

    def wait(self, n: int) -> float:
        """The wait before the ``n``-th attempt (1-based) of a reconnect."""
        return min(self.max_s, self.first_s * 2 ** (n - 1))


def ws_url(base_url: str) -> str:
    """``http(s)://host`` -> ``ws(s)://host/ws`` (the SDK's rule)."""
    base = base_url.rstrip("/")
    if base.startswith(("ws://", "wss://")):
        return base if base.endswith("/ws") else base + "/ws"
    return "ws" + base[len("http") :] + "/ws"


class WsConnection:
    """One websocket with its subscriptions, run by a daemon reader thread."""

    def __init__(
        self,
        url: str,
        subscriptions: list[dict],
        out: queue.Queue,
        *,
        name: str = "main",
        tag: str | None = None,
        ping_s: float = 20.0,
        dead_s: float = 60.0,
        backoff: Backoff = Backoff(),
        resync: Callable[[], list[Item]] | None = None,
        connect_timeout_s: float = 5.0,
    ):
        self.url, self.subscriptions, self.out = url, list(subscriptions), out
        self.name, self.tag = name, tag
        self.ping_s, self.dead_s = ping_s, dead_s
        self.backoff, self.resync, self.connect_timeout_s = backoff, resync, connect_timeout_s
        self.connects = 0
        self.disconnects = 0
        self.pongs = 0
        self.pings = 0
        self._ws: websocket.WebSocket | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"flowmm-ws-{name}", daemon=True)

    def start(self) -> WsConnection:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        ws = self._ws
        if ws is not None:
            try:
                ws.sock and ws.sock.shutdown(2)  # unblocks a recv in the reader thread
            except OSError:
                pass
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _status(self, event: str, detail: str = "") -> None:
        self.out.put(("status", time.time_ns(), {"event": event, "conn": self.name, "detail": detail}, None))

    # -- the reader thread ---------------------------------------------------------------------
    def _run(self) -> None:
        failures, last_error = 0, ""  # consecutive failed attempts
        while not self._stop.is_set():
            if failures:
                if failures > self.backoff.attempts:
                    self._status("gave_up", f"{self.backoff.attempts} attempts failed; last: {last_error}")
                    return
                if self._stop.wait(self.backoff.wait(failures)):
                    return
            try:
                self._connect()
            except (OSError, websocket.WebSocketException) as exc:
                self._close()
                failures, last_error = failures + 1, f"{type(exc).__name__}: {exc}"
                continue
            failures = 0
            reason = self._read()
            self._close()
            if self._stop.is_set():
                return
            self.disconnects += 1
            self._status("disconnected", reason)
            failures = 1  # back off before the first reconnect too

    def _connect(self) -> None:
        self._ws = websocket.create_connection(
            self.url, timeout=self.connect_timeout_s, enable_multithread=True
        )
        for sub in self.subscriptions:
            self._ws.send(json.dumps({"method": "subscribe", "subscription": sub}))
        resync = self.resync() if self.connects and self.resync is not None else []
        self.connects += 1
        self._status("connected", f"connection {self.connects}")
        for item in resync:  # REST snapshots: queued before this connection's frames
            self.out.put(item)

    def _read(self) -> str:
        ws = self._ws
        ws.settimeout(min(self.ping_s, 0.5))
        last_rx = last_tx = time.monotonic()
        while not self._stop.is_set():
            try:
                text = ws.recv()
            except websocket.WebSocketTimeoutException:
                now = time.monotonic()
                if now - last_rx > self.dead_s:
                    return f"nothing received for {self.dead_s} s"
                if now - max(last_rx, last_tx) >= self.ping_s:
                    try:
                        ws.send('{"method":"ping"}')
                    except (OSError, websocket.WebSocketException) as exc:
                        return f"ping failed: {exc}"
                    self.pings += 1
                    last_tx = now
                continue
            except (OSError, websocket.WebSocketException) as exc:
                return f"{type(exc).__name__}: {exc}"
            recv_ns = time.time_ns()
            last_rx = time.monotonic()
            if not text:  # an orderly close
                return "closed by the server"
            if isinstance(text, bytes):
                text = text.decode(errors="replace")
            if text == _PONG or text.replace(" ", "") == _PONG:
                self.pongs += 1
                continue
            self.out.put(("ws", recv_ns, text, self.tag))
        return "stopped"

    def _close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.close(timeout=0.2)
            except (OSError, websocket.WebSocketException):
                pass


class WsClient:
    """Several connections (one per ``l2Book`` variant the data cannot tell apart) feeding one
    queue. ``connections``: ``(name, tag, subscriptions)``."""

    def __init__(
        self,
        base_url: str,
        connections: list[tuple[str, str | None, list[dict]]],
        *,
        resync: Callable[[], list[Item]] | None = None,
        maxsize: int = 0,
        **kw: Any,
    ):
        self.queue: queue.Queue = queue.Queue(maxsize)
        self.url = ws_url(base_url)
        self.conns = [
            WsConnection(
                self.url, subs, self.queue, name=name, tag=tag, resync=resync if i == 0 else None, **kw
            )
            for i, (name, tag, subs) in enumerate(connections)
        ]

    def start(self) -> WsClient:
        for c in self.conns:
            c.start()
        return self

    def stop(self) -> None:
        for c in self.conns:
            c.stop()

    def alive_threads(self) -> list[str]:
        return [c.name for c in self.conns if c.alive]

    def stats(self) -> dict[str, Any]:
        return {
            c.name: {"connects": c.connects, "disconnects": c.disconnects, "pings": c.pings, "pongs": c.pongs}
            for c in self.conns
        }
