"""``Replay``: recorded Hyperliquid data as a source, through the parser live uses.

``flowmm run GRAPH --source replay --data FILE|DIR [...]`` reads, by content (not by name):

=================================== ==========================================================
format                              lines / layout
=================================== ==========================================================
flowmm recording (``.rec.lz4``)     ``<recv_ns> [tag ]<frame JSON>`` (:mod:`flowmm.io.recording`)
hftbacktest Hyperliquid capture     the same line format, gzip (``.gz``)
Hyperliquid archive ``l2Book``      ``market_data/<date>/<hour>/l2Book/<coin>.lz4``: lines of
                                    ``{"time": ISO ns, "ver_num", "raw": <l2Book frame>}``
Hyperliquid archive ``asset_ctxs``  ``asset_ctxs/<date>.csv[.lz4]``, one row per coin and minute
hftbacktest events (``.npz``)       :mod:`flowmm.io.hftbacktest` (on its own, not mixed)
=================================== ==========================================================

Several files (or a folder, read recursively) are merged in time order: each file's frames are
in their own receive order, and the merge interleaves files by receive time (the archive's
``time``; an ``asset_ctxs`` row's time), so a day of hourly archive files, a rotated recording
or a ref coin's file beside the main one replay as one session. Then ``start``/``end`` cut the
events (the parser still sees earlier frames, so a book merged before ``start`` is whole).

The coin is the session header's, the one given, or the first seen (others counted); size
decimals come from a meta frame in the data, ``sz_decimals``, or the bundled dated table
(:mod:`flowmm.hyperliquid.instruments`); the tick from them at the first mid.

**Load as you go.** The input is parsed once, streaming, into a columnar cache of event chunks
(:class:`flowmm.sources.store.ChunkStore`, a folder ``<file>.flowmm-<key>/``; a folder's in
``<dir>/.flowmm-cache/``, or under ``$FLOWMM_CACHE_DIR/replay`` (default
``~/.cache/flowmm/replay``) when that folder is read-only), and the run reads the chunks back
one at a time: memory stays flat in the length of the data (the parse holds one block of
events, the run one chunk). The key covers the files' paths, sizes and mtimes, the options and
the parser's source, so a stale cache is never read. ``cache=False`` parses into a private
temporary store, removed with the source. The chunks delivered are those of the whole table
(``Events.chunks``), whatever the store's own boundaries (:func:`flowmm.sources.store.rechunk`);
``.table`` still gives the whole cut table, read into memory on first use. An hftbacktest
``.npz`` is decoded whole (its book keeping runs over the full array), then stored in chunks.

**Speed.** ``speed=None`` delivers as fast as the engine takes it; ``speed=k`` paces event
time at k × wall time (1 = real time), in slices of at most 50 ms of event time.
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from flowmm.core import events as E
from flowmm.core.events import EventTable
from flowmm.errors import Location, SourceError
from flowmm.hyperliquid import messages as M
from flowmm.hyperliquid.instruments import Instrument, bundled
from flowmm.hyperliquid.parser import FrameParser
from flowmm.io.recording import ReadReport, first_line, open_lines
from flowmm.sources.events import Events, build_table
from flowmm.sources.store import ChunkStore, ChunkWriter, StoredEvents, check_order, concat

CAPTURE, ARCHIVE, ASSET_CTXS, NPZ = "recording", "archive_l2book", "asset_ctxs_csv", "hftbacktest_npz"
_CODE = (
    "flowmm/hyperliquid/messages.py",
    "flowmm/hyperliquid/parser.py",
    "flowmm/sources/replay.py",
    "flowmm/sources/store.py",
)
# Chunks are bounded in events so that memory is bounded in bytes: a 20-level book is ~1 KB of
# payload, so 4,096 events are ~4 MB whatever the length of the data (and a chunk is well under
# a second of engine time, so a signal is handled promptly).
_BLOCK = 1 << 12  # events per chunk of the store
_ROWS = 4096  # parsed rows held as Python objects before they become arrays (a wide book is ~4 KB)


def detect_format(path: Path) -> str:
    """The format of a data file, from its content."""
    with open(path, "rb") as f:
        if f.read(4) == b"PK\x03\x04":  # a zip: numpy's .npz
            return NPZ
    try:
        line = first_line(path)
    except (OSError, EOFError, RuntimeError) as exc:
        raise SourceError(f"cannot read replay file: {exc}", Location(str(path))) from None
    head = line.split(b" ", 1)[0]
    if head.isdigit() and len(line) > len(head) + 1:
        return CAPTURE
    if line.startswith(b"{") and b'"raw"' in line and b'"time"' in line:
        return ARCHIVE
    if line.replace(b" ", b"").startswith(b"time,coin,funding"):
        return ASSET_CTXS
    raise SourceError(
        "not a replayable file: expected a flowmm recording / hftbacktest capture (<ns> <json> lines), "
        "a Hyperliquid archive l2Book or asset_ctxs file, or an hftbacktest .npz",
        Location(str(path), 1),
        hint=f"its first line starts {line[:60]!r}",
    )


def expand(paths: list[str | Path]) -> list[Path]:
    """Files of the given paths (folders read recursively, hidden files and caches skipped)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(
                f
                for f in p.rglob("*")
                if f.is_file()
                and not any(part.startswith(".") or ".flowmm-" in part for part in f.relative_to(p).parts)
            )
        elif p.is_file():
            out.append(p)
        else:
            raise SourceError(f"no such file or folder: {p}", Location(str(p)))
    if not out:
        raise SourceError("no data files to replay", Location(", ".join(map(str, paths))))
    return out


def parse_time(v: str | int | None) -> int | None:
    """``--start``/``--end``: integer ns, or an ISO time (UTC)."""
    if v is None or isinstance(v, int):
        return v
    s = str(v).strip()
    if s.isdigit():
        return int(s)
    try:
        return M.iso_to_ns(s)
    except ValueError:
        raise SourceError(
            f"not a time: {v!r}",
            Location("<options>"),
            hint="ns since the epoch or ISO, e.g. 2024-01-01T12:10:00",
        ) from None


# -- per-format frame iterators: (key ns, file index, seq, item) ----------------------------------


def _capture_items(path: Path, i: int, report: ReadReport) -> Iterator[tuple]:
    for seq, line in enumerate(open_lines(path, report)):
        head = line.split(b" ", 1)[0]
        key = int(head) if head.isdigit() else -1  # a bad line still reaches the parser, counted there
        yield key, i, seq, ("line", line, f"{path.name}:{seq + 1}")


def _archive_items(path: Path, i: int, report: ReadReport) -> Iterator[tuple]:
    for seq, line in enumerate(open_lines(path, report)):
        where = f"{path.name}:{seq + 1}"
        try:
            rec = json.loads(line)
            key = M.iso_to_ns(rec["time"])
            item = ("frame", rec["raw"], key, where)
        except (ValueError, KeyError, TypeError) as exc:
            key, item = -1, ("bad", "<archive line>", where, exc)
        yield key, i, seq, item


def _asset_ctx_items(path: Path, i: int, report: ReadReport) -> Iterator[tuple]:
    text = io.TextIOWrapper(io.BytesIO(b"\n".join(open_lines(path, report))), encoding="utf-8")
    for seq, row in enumerate(csv.DictReader(text)):
        where = f"{path.name}:{seq + 2}"
        try:
            t, ctx = M.asset_ctxs_row(row)
            yield t, i, seq, ("ctx", ctx, t, where)
        except (ValueError, KeyError, TypeError) as exc:
            yield -1, i, seq, ("bad", "<asset_ctxs row>", where, exc)


_ITEMS = {CAPTURE: _capture_items, ARCHIVE: _archive_items, ASSET_CTXS: _asset_ctx_items}


def _code_digest() -> str:
    root = Path(__file__).resolve().parents[2]
    h = hashlib.sha256()
    for rel in _CODE:
        p = root / rel
        h.update(p.read_bytes() if p.exists() else rel.encode())
    return h.hexdigest()


def _cache_dir() -> Path:
    base = os.environ.get("FLOWMM_CACHE_DIR")
    return (Path(base) if base else Path.home() / ".cache" / "flowmm") / "replay"


def _writable(folder: Path) -> bool:
    """A folder we may write a cache into: writable, and not marked read-only (root ignores the
    mode bits, and shared read-only data must stay as it is)."""
    probe = folder if folder.exists() else folder.parent
    return os.access(probe, os.W_OK) and bool(probe.stat().st_mode & 0o200)


class Replay(StoredEvents, Events):
    """Recorded Hyperliquid data as a source (see the module docstring)."""

    name = "replay"

    def __init__(
        self,
        data: str | Path | list[str | Path],
        *,
        coin: str | None = None,
        ref_coin: str | None = None,
        spot_coin: str | None = None,
        sz_decimals: int | None = None,
        start: str | int | None = None,
        end: str | int | None = None,
        speed: float | None = None,
        fills: bool = False,
        cache: bool = True,
        chunk_size: int = 1 << 12,
    ):
        paths = data if isinstance(data, list) else [data]
        files = expand(paths)
        self.skipped = [str(p) for p in files if not first_line(p) and p.suffix != ".npz"]
        self.files = [p for p in files if str(p) not in self.skipped]  # empty files: nothing to replay
        if not self.files:
            raise SourceError("the data files are empty", Location(", ".join(map(str, paths))))
        self.formats = {str(p): detect_format(p) for p in self.files}
        if NPZ in self.formats.values() and len(self.files) > 1:
            raise SourceError(
                "an hftbacktest .npz replays on its own, not merged with other files",
                Location(", ".join(map(str, self.files))),
            )
        if speed is not None and not speed > 0:
            raise SourceError(f"speed must be > 0 (or max), not {speed}", Location("<options>"))
        self.options = {"coin": coin, "ref_coin": ref_coin, "spot_coin": spot_coin, "fills": fills}
        self.speed = speed
        self.start, self.end = parse_time(start), parse_time(end)
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.store, self.cache_state = self._load(cache)
        self.info = self.store.info
        self.chunk_size = chunk_size
        self._index()
        self.coin = self.info["coin"]
        self.instrument = self._instrument(sz_decimals)
        self.tick_size = self._tick()

    # -- parsing and the cache --------------------------------------------------------------------

    def _cache_path(self) -> tuple[Path, Path]:
        h = hashlib.sha256(_code_digest().encode())
        for p in self.files:
            st = p.stat()
            h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        h.update(json.dumps(self.options, sort_keys=True).encode())
        key = h.hexdigest()[:16]
        if len(self.files) == 1:
            near = self.files[0].with_name(f"{self.files[0].name}.flowmm-{key}")
        else:
            near = self.files[0].parent / ".flowmm-cache" / f"replay-{key}"
        return near, _cache_dir() / f"{self.files[0].name}.flowmm-{key}"

    def _load(self, cache: bool) -> tuple[ChunkStore, str]:
        candidates = self._cache_path() if cache else ()
        for path in candidates:
            if (path / "index.json").exists():
                try:
                    return ChunkStore(path), f"hit ({path})"
                except (OSError, ValueError, KeyError):
                    pass  # unreadable: parse again and overwrite
        for path in candidates:
            if path is candidates[0] and not _writable(path.parent):
                continue
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                writer = ChunkWriter(path)
            except OSError:
                continue
            return self._parse_into(writer), f"written ({path})"
        self._tmp = tempfile.TemporaryDirectory(prefix="flowmm-replay-")  # removed with the source
        return self._parse_into(ChunkWriter(Path(self._tmp.name) / "events")), "off"

    def _parse_into(self, writer: ChunkWriter) -> ChunkStore:
        """Parse block by block into ``writer``; events must not go back in time."""
        info: dict = {}
        n, last = 0, None
        pending = EventTable.empty()
        try:
            for block in self._parse(info):
                t = block.t
                bad = check_order(t, n, last)
                if bad is not None:
                    i = bad - n
                    prev = last if i == 0 else t[i - 1]
                    raise SourceError(
                        f"event {bad} goes back in time ({t[i]} < {prev})",
                        Location(str(self.files[0])),
                        hint="events must be sorted by t",
                    )
                if len(t):
                    n, last = n + len(t), int(t[-1])
                pending = concat([pending, block])
                while len(pending) >= _BLOCK:  # exact chunks: a same-time batch may straddle two
                    writer.add(pending.slice(0, _BLOCK))
                    pending = pending.slice(_BLOCK, len(pending))
            writer.add(pending)
        except BaseException:
            writer.abort()
            raise
        return writer.close(info)

    def _parse(self, info: dict) -> Iterator[EventTable]:
        """The events, in blocks of about ``_BLOCK``; ``info`` is filled in at the end."""
        if NPZ in self.formats.values():
            from flowmm.io.hftbacktest import read_npz

            table, counts = read_npz(self.files[0])
            for lo in range(0, len(table), _BLOCK):
                yield table.slice(lo, min(lo + _BLOCK, len(table)))
            del table
            info.update(coin=self.options["coin"], parse=counts, session={}, meta=None, reads=[])
            return
        coin = self.options["coin"]
        if coin is None and ASSET_CTXS in self.formats.values():
            coin = self._scan_coin()
        parser = FrameParser(
            coin,
            ref_coin=self.options["ref_coin"],
            spot_coin=self.options["spot_coin"],
            fills=self.options["fills"],
        )
        reports = [ReadReport(str(p)) for p in self.files]
        streams = [_ITEMS[self.formats[str(p)]](p, i, reports[i]) for i, p in enumerate(self.files)]
        rows: list = []
        for _key, _i, _seq, item in heapq.merge(*streams, key=lambda x: (x[0], x[1], x[2])):
            if len(rows) >= _ROWS:
                yield build_table(rows)
                rows = []
            what = item[0]
            if what == "line":
                rows += parser.line(item[1], item[2])
            elif what == "frame":
                rows += parser.frame(item[1], item[2], None, item[3])
            elif what == "ctx":
                rows += parser.asset_ctx_row(item[1], item[2], item[3])
            else:
                parser.stats.frames += 1
                parser.stats.bad(item[1], item[2], item[3])
        yield build_table(rows)
        meta = parser.instrument_for(parser.coin) if parser.coin else None
        info.update({
            "coin": parser.coin,
            "ref_coin": parser.ref_coin,
            "spot_coin": parser.spot_coin,
            "session": parser.session,
            "meta": None if meta is None else meta.sz_decimals,
            "parse": parser.stats.as_dict(),
            "records": {k: len(v) for k, v in parser.records.items()},
            "reads": [r.__dict__ for r in reports if r.notes],
        })  # fmt: skip

    def _scan_coin(self) -> str:
        """The main coin, before parsing, for an ``asset_ctxs`` file (a table of every coin)."""
        skip = {self.options["ref_coin"], self.options["spot_coin"]}
        for p in self.files:
            fmt = self.formats[str(p)]
            for n, line in enumerate(open_lines(p)):
                if n >= 1000 or fmt not in (CAPTURE, ARCHIVE):
                    break
                try:
                    msg = json.loads(line.split(b" ", 1)[1] if fmt == CAPTURE else line)
                    msg = msg.get("raw", msg)
                    data = msg["data"]
                    coin = data[0]["coin"] if isinstance(data, list) else data.get("coin")
                except (ValueError, KeyError, TypeError, IndexError, AttributeError):
                    continue
                if (
                    msg.get("channel") in ("l2Book", "bbo", "trades", "flowmm.session")
                    and coin
                    and coin not in skip
                ):
                    return str(coin)
        raise SourceError(
            "an asset_ctxs file lists every coin: say which one to replay",
            Location(", ".join(map(str, self.files))),
            hint="pass --coin COIN",
        )

    # -- metadata -------------------------------------------------------------------------------

    def _instrument(self, sz_decimals: int | None) -> Instrument | None:
        coin = self.coin
        if coin is None:
            return None
        if self.info.get("meta") is not None:
            return Instrument(coin, int(self.info["meta"]), "meta frame")
        if sz_decimals is not None:
            return Instrument(coin, sz_decimals, "flag")
        return bundled(coin)

    def _tick(self) -> float | None:
        """The tick at the first mid among the first 50 books (or bbos) of the cut."""
        if self.instrument is None:
            return None
        left = 50
        for table in self.store.tables(self.start, self.end):
            for i in np.nonzero((table.kind == E.BOOK) | (table.kind == E.BBO))[0][:left]:
                o = int(table.off[i])
                p = table.payload
                if table.kind[i] == E.BBO:
                    bid, ask = p[o], p[o + 3]
                else:
                    nb, na = int(p[o]), int(p[o + 1])
                    bid = p[o + 2] if nb else math.nan
                    ask = p[o + 2 + 3 * nb] if na else math.nan
                if bid == bid and ask == ask:
                    return self.instrument.tick(0.5 * (bid + ask))
                left -= 1
            if left <= 0:
                break
        return None

    def summary(self) -> dict[str, Any]:
        """What was replayed: files and formats, coin, instrument, the parse report, the cache."""
        return {
            "files": [{"path": k, "format": v} for k, v in self.formats.items()],
            "skipped_empty": self.skipped,
            "coin": self.coin,
            "instrument": None if self.instrument is None else self.instrument.as_dict(),
            "tick_size": self.tick_size,
            "start": self.start,
            "end": self.end,
            "speed": self.speed or "max",
            "cache": self.cache_state,
            **{k: self.info[k] for k in ("parse", "records", "reads", "session") if k in self.info},
        }
