"""Events on disk in chunks, and re-chunking a stream of event tables.

A replay parses its input once into a :class:`ChunkStore` (a folder of uncompressed ``.npz``
chunks plus ``index.json``) and then streams the chunks back, so memory stays flat in the
length of the data: the parse holds one block of events at a time, the run one chunk.

:func:`rechunk` cuts a stream of tables into exactly the chunks that cutting their
concatenation would give (``Events.chunks``: about ``chunk_size`` events, never splitting a
same-timestamp batch; or paced slices of event time), whatever the stream's own boundaries.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from flowmm.core.events import EventTable

_INDEX = "index.json"
VERSION = 1


def concat(tables: list[EventTable]) -> EventTable:
    """One table of several, in order."""
    tables = [t for t in tables if len(t)]
    if not tables:
        return EventTable.empty()
    if len(tables) == 1:
        return tables[0]
    offs, base = [np.zeros(1, np.int64)], 0
    for t in tables:
        offs.append(t.off[1:] + base)
        base += int(t.off[-1])
    return EventTable(
        np.concatenate([t.t for t in tables]),
        np.concatenate([t.kind for t in tables]),
        np.concatenate(offs),
        np.concatenate([t.payload for t in tables]),
    )


def size_cut(chunk_size: int) -> Callable[[np.ndarray, bool], int | None]:
    """``Events.chunks``' rule: ``chunk_size`` events, extended to the end of a same-time batch."""

    def cut(t: np.ndarray, eof: bool) -> int | None:
        n = len(t)
        stop = min(chunk_size, n)
        while stop < n and t[stop] == t[stop - 1]:
            stop += 1
        # a cut at the buffer's end is final only at the end of the stream (the batch may go on)
        return stop if stop < n or eof else None

    return cut


def time_cut(slice_ns: int) -> Callable[[np.ndarray, bool], int | None]:
    """Paced replay's rule: events before ``t[0] + slice_ns`` (at least one), whole batches."""

    def cut(t: np.ndarray, eof: bool) -> int | None:
        n = len(t)
        stop = max(int(np.searchsorted(t, t[0] + slice_ns, "left")), 1)
        while stop < n and t[stop] == t[stop - 1]:
            stop += 1
        return stop if stop < n or eof else None

    return cut


def rechunk(
    tables: Iterable[EventTable], cut: Callable[[np.ndarray, bool], int | None]
) -> Iterator[EventTable]:
    """Cut a stream of tables by ``cut(t, eof) -> stop | None`` (None: more events needed).

    Chunks inside one table are views of it; only a chunk that spans two tables is copied, so
    at most two input tables and one chunk are alive at a time."""
    head: EventTable | None = None  # the events left over from the tables before ``cur``
    for cur in tables:
        while len(cur):
            if head is None:
                stop = cut(cur.t, False)
                if stop is None:
                    head = cur
                    break
                yield cur.slice(0, stop)
            else:
                stop = cut(np.concatenate([head.t, cur.t]), False)  # only the times are joined
                if stop is None:
                    head = concat([head, cur])
                    break
                if stop <= len(head):
                    yield head.slice(0, stop)
                    head = head.slice(stop, len(head)) if stop < len(head) else None
                    continue
                yield concat([head, cur.slice(0, stop - len(head))])
                stop -= len(head)
                head = None
            cur = cur.slice(stop, len(cur))
    while head is not None and len(head):
        stop = cut(head.t, True)
        yield head.slice(0, stop)
        head = head.slice(stop, len(head))


class ChunkWriter:
    """Writes a :class:`ChunkStore` into a temporary folder; ``close`` moves it in place."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.tmp = self.folder.with_name(f"{self.folder.name}.{os.getpid()}.tmp")
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        self.chunks: list[dict[str, int]] = []

    def add(self, table: EventTable) -> None:
        if not len(table):
            return
        name = f"chunk-{len(self.chunks):06d}.npz"
        np.savez(self.tmp / name, t=table.t, kind=table.kind, off=table.off, payload=table.payload)
        mask = 0
        for k in np.unique(table.kind):
            mask |= 1 << int(k)
        self.chunks.append({"n": len(table), "t0": int(table.t[0]), "t1": int(table.t[-1]), "kinds": mask})

    def close(self, info: dict[str, Any]) -> ChunkStore:
        index = {"version": VERSION, "chunks": self.chunks, "info": info}
        (self.tmp / _INDEX).write_text(json.dumps(index))
        shutil.rmtree(self.folder, ignore_errors=True)  # a stale or broken copy
        os.replace(self.tmp, self.folder)
        return ChunkStore(self.folder)

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


class ChunkStore:
    """A folder of event chunks in time order, read back one chunk at a time."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        index = json.loads((self.folder / _INDEX).read_text())
        if index.get("version") != VERSION:
            raise ValueError(f"chunk store version {index.get('version')}")
        self.chunks: list[dict[str, int]] = index["chunks"]
        self.info: dict[str, Any] = index["info"]

    def __len__(self) -> int:
        return sum(c["n"] for c in self.chunks)

    def _read(self, i: int) -> EventTable:
        with np.load(self.folder / f"chunk-{i:06d}.npz", allow_pickle=False) as z:
            return EventTable(z["t"], z["kind"], z["off"], z["payload"])

    def tables(self, start: int | None = None, end: int | None = None) -> Iterator[EventTable]:
        """The chunks, cut to ``start <= t <= end``; chunks wholly outside are not read."""
        for i, c in enumerate(self.chunks):
            if (start is not None and c["t1"] < start) or (end is not None and c["t0"] > end):
                continue
            table = self._read(i)
            lo = 0 if start is None or c["t0"] >= start else int(np.searchsorted(table.t, start, "left"))
            hi = len(table) if end is None or c["t1"] <= end else int(np.searchsorted(table.t, end, "right"))
            if hi > lo:
                yield table if (lo, hi) == (0, len(table)) else table.slice(lo, hi)

    def kinds(self, start: int | None = None, end: int | None = None) -> set[int]:
        """Event kinds present within the cut (whole chunks from the index, edges read)."""
        out: set[int] = set()
        for i, c in enumerate(self.chunks):
            if (start is not None and c["t1"] < start) or (end is not None and c["t0"] > end):
                continue
            if (start is None or c["t0"] >= start) and (end is None or c["t1"] <= end):
                out |= {k for k in range(63) if c["kinds"] >> k & 1}
            else:
                with np.load(self.folder / f"chunk-{i:06d}.npz", allow_pickle=False) as z:
                    t, kind = z["t"], z["kind"]
                sel = np.ones(len(t), bool)
                if start is not None:
                    sel &= t >= start
                if end is not None:
                    sel &= t <= end
                out |= {int(k) for k in np.unique(kind[sel])}
        return out

    def last_time(self, start: int | None = None, end: int | None = None) -> int | None:
        """The time of the last event within the cut."""
        last = None
        for i, c in enumerate(self.chunks):
            if (start is not None and c["t1"] < start) or (end is not None and c["t0"] > end):
                continue
            if end is None or c["t1"] <= end:
                last = c["t1"]
            else:
                with np.load(self.folder / f"chunk-{i:06d}.npz", allow_pickle=False) as z:
                    t = z["t"]
                j = int(np.searchsorted(t, end, "right"))
                if j and (start is None or t[j - 1] >= start):
                    last = int(t[j - 1])
        return last


class StoredEvents:
    """A source whose events sit in a :class:`ChunkStore`, streamed back chunk by chunk.

    Subclasses set ``store``, ``chunk_size`` and optionally ``start``/``end`` (a cut, ns) and
    ``speed`` (pacing, k x wall time), then call ``_index()``. The chunks are those
    ``Events.chunks`` would cut from the whole table; ``table`` reads it whole, on first use."""

    store: ChunkStore
    chunk_size: int
    start: int | None = None
    end: int | None = None
    speed: float | None = None
    _table: EventTable | None = None
    pace_slice_ns = 50_000_000

    def _index(self) -> None:
        self._kinds = self.store.kinds(self.start, self.end)
        self.end_time = self.store.last_time(self.start, self.end)

    @property
    def table(self) -> EventTable:
        """The whole (cut) table, read into memory on first use (``chunks`` streams instead)."""
        if self._table is None:
            self._table = concat(list(self.store.tables(self.start, self.end)))
        return self._table

    def provides(self) -> set[str]:
        """Streams this source writes: those of the kinds present, mid with a book, the clock."""
        from flowmm.core import events as E

        out = {E.KIND_STREAM[k] for k in self._kinds} | {"source.clock", "source.timer"}
        if self._kinds & {E.BOOK, E.BBO}:
            out.add("source.mid")
        return out

    def chunks(self) -> Iterator[EventTable]:
        """About ``chunk_size`` events at a time, never splitting a same-timestamp batch, read as
        needed; paced (``speed``): slices of at most 50 ms of event time, each sent when due."""
        import time

        tables = self.store.tables(self.start, self.end)
        if self.speed is None:
            yield from rechunk(tables, size_cut(self.chunk_size))
            return
        wall0 = t0 = None
        for piece in rechunk(tables, time_cut(self.pace_slice_ns)):
            if t0 is None:
                wall0, t0 = time.monotonic(), int(piece.t[0])
            due = wall0 + (int(piece.t[0]) - t0) * 1e-9 / self.speed
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            yield piece


def check_order(t: np.ndarray, n_before: int, last: int | None) -> int | None:
    """The index (in the whole stream) of the first event of block ``t`` that goes back in
    time, given the ``n_before`` events and the ``last`` time before it; None if in order."""
    back = np.nonzero(np.diff(t) < 0)[0] + 1
    if last is not None and len(t) and t[0] < last:
        return n_before
    return n_before + int(back[0]) if len(back) else None
