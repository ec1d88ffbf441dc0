"""``Events``: an in-memory (or JSON-lines file) source of normalised events.

For tests, notebooks and ``flowmm run GRAPH --source events --data FILE``. One event per
dict / line; ``t`` is the event time in integer ns, ``kind`` one of the kinds below::

    {"t": 1000000000, "kind": "book", "bids": [[px, sz, n], ...], "asks": [[px, sz, n], ...]}
    {"t": ..., "kind": "bbo", "bid": [px, sz, n], "ask": [px, sz, n]}
    {"t": ..., "kind": "trade", "px": 28.1, "sz": 3.5, "side": "B", "tid": 17}   # side B|A|1|-1
    {"t": ..., "kind": "ctx", "funding": ..., "predicted_funding": ..., "oi": ..., "mark": ...,
                              "oracle": ..., "premium": ...}
    {"t": ..., "kind": "ref_mid", "px": ...}        # likewise spot_mid
    {"t": ..., "kind": "truth", "mu": ..., "sigma": ..., "regime": ...}
    {"t": ..., "kind": "timer", "code": 1}
    {"t": ..., "kind": "fill", "px", "sz", "side", "oid", "fee", "maker", "mid_ref"}
    {"t": ..., "kind": "markout", "oid", "horizon_s", "side", "px", "markout_bps", "as_bps"}
    {"t": ..., "kind": "position", "q": ...}

Events must be in non-decreasing time; events sharing a ``t`` form one batch.

``Events.from_file`` reads a file into memory; :class:`EventFile` (what the CLI uses) streams
it: parsed once, block by block, into a temporary chunk store, then read back one chunk at a
time, so memory stays flat in the length of the file. Both give the same chunks.
"""

from __future__ import annotations

import gzip
import json
import math
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from flowmm.core import events as E
from flowmm.core.events import EventTable
from flowmm.errors import Location, SourceError
from flowmm.sources.store import ChunkWriter, StoredEvents, check_order

_FIELDS = {
    E.TRADE: ("px", "sz", "side", "tid"),
    E.CTX: ("funding", "predicted_funding", "oi", "mark", "oracle", "premium"),
    E.REF_MID: ("px",),
    E.SPOT_MID: ("px",),
    E.TRUTH: ("mu", "sigma", "regime"),
    E.TIMER: ("code",),
    E.FILL: ("px", "sz", "side", "oid", "fee", "maker", "mid_ref"),
    E.MARKOUT: ("oid", "horizon_s", "side", "px", "markout_bps", "as_bps"),
    E.POSITION: ("q",),
}
_SIDES = {"B": 1.0, "A": -1.0, "b": 1.0, "a": -1.0}
_LEVEL_KEYS = {E.BOOK: ("bids", "asks"), E.BOOK_AGG: ("bids", "asks")}


def _num(ev: dict, key: str, default: float | None = None) -> float:
    if key not in ev:
        if default is not None:
            return default
        raise ValueError(f"missing field {key!r}")
    v = ev[key]
    if key == "side" and isinstance(v, str):
        if v not in _SIDES:
            raise ValueError(f"side must be B, A, 1 or -1, not {v!r}")
        return _SIDES[v]
    if v is None:
        return math.nan
    try:
        return float(v)  # Hyperliquid sends numbers as strings: accept both
    except (TypeError, ValueError):
        raise ValueError(f"field {key!r} is not a number: {v!r}") from None


def _levels(ev: dict, key: str) -> list[float]:
    out: list[float] = []
    for lv in ev.get(key) or []:
        if isinstance(lv, dict):  # Hyperliquid's {"px", "sz", "n"}
            lv = [lv.get("px"), lv.get("sz"), lv.get("n", math.nan)]
        if not isinstance(lv, (list, tuple)) or len(lv) not in (2, 3):
            raise ValueError(f"{key}: a level is [px, sz, n] or [px, sz], not {lv!r}")
        out.extend(float(x) if x is not None else math.nan for x in (list(lv) + [math.nan])[:3])
    return out


def encode_event(ev: dict[str, Any]) -> tuple[int, int, list[float]]:
    """One event dict -> (t, kind code, payload). Raises ValueError with what is wrong."""
    if not isinstance(ev, dict):
        raise ValueError(f"an event is a mapping, not {type(ev).__name__}")
    if "t" not in ev or "kind" not in ev:
        raise ValueError("an event needs 't' (int ns) and 'kind'")
    t = ev["t"]
    if isinstance(t, bool) or not isinstance(t, int):
        raise ValueError(f"'t' must be an integer number of ns, not {t!r}")
    kind = E.KIND_CODES.get(ev["kind"])
    if kind is None:
        raise ValueError(f"unknown kind {ev['kind']!r}; known: {', '.join(E.KIND_CODES)}")
    if kind in _LEVEL_KEYS:
        bids, asks = _levels(ev, "bids"), _levels(ev, "asks")
        return t, kind, [len(bids) // 3, len(asks) // 3, *bids, *asks]
    if kind == E.BBO:
        bid = _levels({"l": [ev["bid"]]} if ev.get("bid") else {}, "l") or [math.nan] * 3
        ask = _levels({"l": [ev["ask"]]} if ev.get("ask") else {}, "l") or [math.nan] * 3
        return t, kind, bid + ask
    defaults = {
        "tid": math.nan,
        "oid": math.nan,
        "fee": 0.0,
        "maker": 1.0,
        "mid_ref": math.nan,
        "regime": math.nan,
    }
    return t, kind, [_num(ev, k, defaults.get(k)) for k in _FIELDS[kind]]


def build_table(rows: Iterable[tuple[int, int, list[float]]]) -> EventTable:
    ts, kinds, offs, payload = [], [], [0], []
    for t, kind, p in rows:
        ts.append(t)
        kinds.append(kind)
        payload.extend(p)
        offs.append(len(payload))
    return EventTable(
        np.array(ts, np.int64),
        np.array(kinds, np.int64),
        np.array(offs, np.int64),
        np.array(payload, np.float64),
    )


class Events:
    """A source over a fixed list of normalised events (dicts, a file, or an ``EventTable``)."""

    name = "events"

    def __init__(
        self,
        events: Iterable[dict[str, Any]] | EventTable = (),
        *,
        end_time: int | None = None,
        chunk_size: int = 1 << 16,
        origin: str = "<events>",
    ):
        if isinstance(events, EventTable):
            table = events
        else:
            rows = []
            for i, ev in enumerate(events):
                try:
                    rows.append(encode_event(ev))
                except ValueError as exc:
                    raise SourceError(f"event {i}: {exc}", Location(origin)) from None
            table = build_table(rows)
        bad = np.nonzero(np.diff(table.t) < 0)[0]
        if len(bad):
            i = int(bad[0]) + 1
            raise SourceError(
                f"event {i} goes back in time ({table.t[i]} < {table.t[i - 1]})",
                Location(origin),
                hint="events must be sorted by t",
            )
        self.table = table
        self.end_time = end_time if end_time is not None else (int(table.t[-1]) if len(table) else None)
        self.chunk_size = chunk_size

    @classmethod
    def from_file(cls, path: str | Path, **kwargs) -> Events:
        """Read a JSON-lines file (``.jsonl`` or ``.jsonl.gz``), one event per line."""
        rows = [r for block in _file_blocks(Path(path), 1 << 62) for r in block]
        kwargs.setdefault("origin", str(path))
        return cls(build_table(rows), **kwargs)

    def provides(self) -> set[str]:
        """Streams this source writes: those of the kinds present, mid with a book, the clock."""
        kinds = {int(k) for k in np.unique(self.table.kind)}
        out = {E.KIND_STREAM[k] for k in kinds} | {"source.clock", "source.timer"}
        if kinds & {E.BOOK, E.BBO}:
            out.add("source.mid")
        return out

    def chunks(self) -> Iterator[EventTable]:
        """Chunks of about ``chunk_size`` events, never splitting a same-timestamp batch."""
        t, n, start = self.table.t, len(self.table), 0
        while start < n:
            stop = min(start + self.chunk_size, n)
            while stop < n and t[stop] == t[stop - 1]:
                stop += 1
            yield self.table.slice(start, stop)
            start = stop


def _file_blocks(path: Path, block: int) -> Iterator[list[tuple[int, int, list[float]]]]:
    """The encoded events of a JSON-lines file, ``block`` at a time (errors at file:line)."""
    opener = gzip.open if path.suffix == ".gz" else open
    rows: list = []
    try:
        with opener(path, "rt") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                try:
                    rows.append(encode_event(json.loads(line)))
                except (ValueError, KeyError) as exc:
                    raise SourceError(str(exc), Location(str(path), lineno)) from None
                if len(rows) >= block:
                    yield rows
                    rows = []
    except OSError as exc:
        raise SourceError(f"cannot read event file: {exc.strerror or exc}", Location(str(path))) from None
    yield rows


class EventFile(StoredEvents, Events):
    """A JSON-lines event file, streamed (see the module docstring); the chunks, ``provides``
    and ``end_time`` are those of ``Events.from_file(path)``."""

    def __init__(self, path: str | Path, *, chunk_size: int = 1 << 12, block: int = 1 << 12):
        path = Path(path)
        self._tmp = tempfile.TemporaryDirectory(prefix="flowmm-events-")  # removed with the source
        writer = ChunkWriter(Path(self._tmp.name) / "events")
        n, last = 0, None
        try:
            for rows in _file_blocks(path, block):
                table = build_table(rows)
                bad = check_order(table.t, n, last)
                if bad is not None:
                    i = bad - n
                    prev = last if i == 0 else table.t[i - 1]
                    raise SourceError(
                        f"event {bad} goes back in time ({table.t[i]} < {prev})",
                        Location(str(path)),
                        hint="events must be sorted by t",
                    )
                if len(table):
                    n, last = n + len(table), int(table.t[-1])
                writer.add(table)
        except BaseException:
            writer.abort()
            raise
        self.store = writer.close({})
        self.chunk_size = chunk_size
        self._index()
