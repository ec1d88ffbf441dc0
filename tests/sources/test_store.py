"""flowmm.sources.store: chunks on disk, and re-chunking a stream exactly like the whole table."""

import numpy as np
import pytest

from flowmm.core.events import EventTable
from flowmm.sources import Events
from flowmm.sources.store import ChunkStore, ChunkWriter, concat, rechunk, size_cut, time_cut


def _table(times: list[int], width: int = 2) -> EventTable:
    n = len(times)
    off = np.arange(n + 1, dtype=np.int64) * width
    payload = np.arange(n * width, dtype=np.float64)
    return EventTable(np.array(times, np.int64), np.arange(n, dtype=np.int64) % 3, off, payload)


def _eq(a: EventTable, b: EventTable) -> bool:
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("t", "kind", "off", "payload"))


# same-time batches everywhere, incl. a long one; pieces cut through the middle of batches
TIMES = [0, 0, 1, 2, 2, 2, 2, 2, 3, 5, 5, 8, 8, 8, 9, 10, 10, 10, 10, 10, 10, 11, 12, 12]


def _pieces(table: EventTable, bounds: list[int]) -> list[EventTable]:
    edges = [0, *bounds, len(table)]
    return [table.slice(a, b) for a, b in zip(edges, edges[1:])]


@pytest.mark.parametrize("bounds", [[], [1], [4, 5, 6], [3, 12, 13, 17], list(range(1, 24))])
@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 100])
def test_rechunk_by_size_gives_exactly_the_chunks_of_the_whole_table(bounds, chunk_size):
    whole = _table(TIMES)
    want = list(Events(whole, chunk_size=chunk_size).chunks())
    got = list(rechunk(_pieces(whole, bounds), size_cut(chunk_size)))
    assert len(got) == len(want) and all(_eq(a, b) for a, b in zip(got, want))
    assert all(g.t[-1] != n.t[0] for g, n in zip(got, got[1:]))  # no batch is split


@pytest.mark.parametrize("bounds", [[], [4, 5, 6], list(range(1, 24))])
def test_rechunk_by_time_never_splits_a_batch_and_keeps_every_event(bounds):
    whole = _table(TIMES)
    got = list(rechunk(_pieces(whole, bounds), time_cut(3)))
    assert _eq(concat(got), whole)
    assert all(g.t[-1] != n.t[0] for g, n in zip(got, got[1:]))
    assert all(g.t[-1] - g.t[0] < 3 or len(set(g.t.tolist())) == 1 for g in got)
    assert [len(g) for g in got] == [len(g) for g in rechunk([whole], time_cut(3))]


def test_store_round_trip_and_cuts(tmp_path):
    whole = _table(TIMES)
    w = ChunkWriter(tmp_path / "s")
    for piece in _pieces(whole, [3, 12, 13, 17]):
        w.add(piece)
    store = w.close({"coin": "X"})
    assert store.info == {"coin": "X"} and len(store) == len(whole) and len(store.chunks) == 5
    assert not list(tmp_path.glob("*.tmp"))
    assert _eq(concat(list(ChunkStore(tmp_path / "s").tables())), whole)
    for start, end in [(None, None), (2, None), (None, 8), (2, 8), (6, 7), (13, None)]:
        lo = 0 if start is None else int(np.searchsorted(whole.t, start, "left"))
        hi = len(whole) if end is None else int(np.searchsorted(whole.t, end, "right"))
        cut = whole.slice(lo, hi)
        assert _eq(concat(list(store.tables(start, end))), cut)
        assert store.kinds(start, end) == {int(k) for k in np.unique(cut.kind)}
        assert store.last_time(start, end) == (int(cut.t[-1]) if len(cut) else None)


def test_an_aborted_write_leaves_nothing(tmp_path):
    w = ChunkWriter(tmp_path / "s")
    w.add(_table([1, 2]))
    w.abort()
    assert list(tmp_path.iterdir()) == []
