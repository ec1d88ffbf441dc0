import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from flowmm.core import events as E
from flowmm.errors import SourceError
from flowmm.sources import Events
from flowmm.sources.events import EventFile


def test_encodes_hyperliquid_style_strings_and_sides():
    src = Events(
        [
            {
                "t": 1,
                "kind": "book",
                "bids": [{"px": "28.1", "sz": "3", "n": 2}],
                "asks": [["28.2", "1.5", 1]],
            },
            {"t": 2, "kind": "trade", "px": "28.2", "sz": "0.5", "side": "A", "tid": 9},
        ]
    )
    tab = src.table
    assert list(tab.kind) == [E.BOOK, E.TRADE]
    assert list(tab.payload[: tab.off[1]]) == [1, 1, 28.1, 3, 2, 28.2, 1.5, 1]
    assert list(tab.payload[tab.off[1] :]) == [28.2, 0.5, -1.0, 9]
    assert src.provides() >= {"source.book", "source.mid", "source.trades", "source.clock"}


def test_out_of_order_events_are_rejected():
    with pytest.raises(SourceError, match="back in time"):
        Events([{"t": 5, "kind": "timer", "code": 1}, {"t": 4, "kind": "timer", "code": 1}])


def test_chunks_never_split_a_same_timestamp_batch():
    ev = [{"t": t, "kind": "timer", "code": 0} for t in [1, 2, 2, 2, 3, 3, 4, 5, 5, 5, 5]]
    chunks = list(Events(ev, chunk_size=2).chunks())
    assert sum(len(c) for c in chunks) == len(ev)
    for a, b in zip(chunks, chunks[1:]):
        assert a.t[-1] != b.t[0]
    joined = np.concatenate([c.t for c in chunks])
    assert list(joined) == [e["t"] for e in ev]


def test_file_errors_name_the_line(tmp_path):
    path = tmp_path / "ev.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps({"t": 1, "kind": "ref_mid", "px": 1.0}) + "\n")
        f.write("\n")
        f.write(json.dumps({"t": 2, "kind": "trade", "px": "x", "sz": 1, "side": "B"}) + "\n")
    with pytest.raises(SourceError) as exc:
        Events.from_file(path)
    assert exc.value.location.line == 3 and "not a number" in exc.value.message


@pytest.mark.parametrize(
    "event, message",
    [
        ({"kind": "trade"}, "needs 't'"),
        ({"t": 1.5, "kind": "timer", "code": 1}, "integer"),
        ({"t": 1, "kind": "bok"}, "unknown kind"),
        ({"t": 1, "kind": "trade", "px": 1, "sz": 1, "side": "X"}, "side must be"),
        ({"t": 1, "kind": "book", "bids": [[1.0]]}, "a level is"),
    ],
)
def test_malformed_events_are_errors(event, message):
    with pytest.raises(SourceError, match=message):
        Events([event])


DEMO = Path(__file__).resolve().parents[2] / "flowmm/examples/btc_20250126_events.jsonl"


@pytest.mark.parametrize(("block", "chunk"), [(1, 1), (4, 3), (7, 16), (1 << 16, 1 << 16)])
def test_event_file_streams_the_chunks_of_the_whole_file(block, chunk):
    """EventFile (the CLI's --source events) parses in blocks into a store and streams it back:
    the same chunks as the whole file in memory, same-time batches never split."""
    whole = Events.from_file(DEMO, chunk_size=chunk)
    src = EventFile(DEMO, chunk_size=chunk, block=block)
    assert (np.diff(whole.table.t) == 0).any()  # the file has same-time batches to split
    got, want = list(src.chunks()), list(whole.chunks())
    assert len(got) == len(want)
    for g, w in zip(got, want):
        for k in ("t", "kind", "off", "payload"):
            np.testing.assert_array_equal(getattr(g, k), getattr(w, k))
    assert src.provides() == whole.provides() and src.end_time == whole.end_time
    assert len(src.store.chunks) == (-(-len(whole.table) // block))


def test_event_file_errors_name_the_line_and_a_step_back_across_blocks(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"t": 1, "kind": "timer", "code": 1}\n{"t": 2, "kind": "nope"}\n')
    with pytest.raises(SourceError) as e:
        EventFile(bad)
    assert f"{bad}:2" in e.value.format()
    back = tmp_path / "back.jsonl"
    back.write_text("".join(f'{{"t": {t}, "kind": "timer", "code": 1}}\n' for t in (1, 2, 3, 2)))
    with pytest.raises(SourceError, match=r"event 3 goes back in time \(2 < 3\)"):
        EventFile(back, block=3)  # the step back is the first event of the second block
    with pytest.raises(SourceError, match=r"event 3 goes back in time \(2 < 3\)"):
        Events.from_file(back)
