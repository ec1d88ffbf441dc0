"""The recording format, and reading the compressed line files replays are made of.

A **recording** is text, one raw frame per line, exactly as received::

    <recv_ns> <raw websocket JSON>
    <recv_ns> <tag> <raw websocket JSON>          # tag: fast | agg (flowmm.hyperliquid.parser)

the receive time in integer ns (wall clock), then the frame's text unchanged. It is the line
format of hftbacktest's Hyperliquid captures, so both read each other's files. flowmm's own
lines use ``flowmm.*`` channels (session header, REST bodies, timers; see the parser).

Files are LZ4 frames (``.rec.lz4``) appended one after another: :class:`RecordingWriter`
compresses each block of lines (every ``block_lines`` lines or ``block_s`` seconds) as a
complete frame and appends it, so a crash loses at most one block, and a reader stops cleanly
at a truncated last frame (reported, never parsed). It rotates to a new file past
``rotate_bytes`` or ``rotate_s``: ``run.rec.lz4``, ``run-0001.rec.lz4``, ``run-0002.rec.lz4``...
"""

from __future__ import annotations

import gzip
import json
import os
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lz4.frame

LZ4_MAGIC = b"\x04\x22\x4d\x18"
GZIP_MAGIC = b"\x1f\x8b"
_READ = 1 << 20


@dataclass
class ReadReport:
    """What reading a file met besides its lines."""

    path: str
    truncated_bytes: int = 0  # an incomplete final LZ4 frame (a recorder that died mid-block)
    notes: list[str] = field(default_factory=list)


def _lz4_chunks(f, report: ReadReport) -> Iterator[bytes]:
    """Decompressed bytes of concatenated LZ4 frames; stops at a truncated last frame."""
    dec = lz4.frame.LZ4FrameDecompressor()
    pending = 0  # compressed bytes fed to the current frame that have not completed it
    while True:
        data = f.read(_READ)
        if not data:
            break
        while data:
            out = dec.decompress(data)
            if out:
                yield out
            if dec.eof:
                data = dec.unused_data
                dec = lz4.frame.LZ4FrameDecompressor()
                pending = 0
            else:
                pending += len(data)
                data = b""
    if pending:
        report.truncated_bytes = pending
        report.notes.append(f"last LZ4 frame incomplete: {pending} bytes ignored")


def _located(chunks: Iterator[bytes], path: Path, what: str) -> Iterator[bytes]:
    """``chunks``, with a corrupt block or a truncated stream as a located ``SourceError``."""
    from flowmm.errors import Location, SourceError

    try:
        yield from chunks
    except (RuntimeError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        done = (
            "ends before its end marker (truncated)" if isinstance(exc, EOFError) else f"is corrupt ({exc})"
        )
        raise SourceError(f"{what} data {done}", Location(str(path))) from None


def open_lines(path: str | Path, report: ReadReport | None = None) -> Iterator[bytes]:
    """The lines (without the newline) of a plain, gzip or LZ4-framed text file."""
    path = Path(path)
    report = report if report is not None else ReadReport(str(path))
    with open(path, "rb") as raw:
        magic = raw.read(4)
        raw.seek(0)
        if magic == LZ4_MAGIC:
            chunks: Iterator[bytes] = _lz4_chunks(raw, report)
        elif magic[:2] == GZIP_MAGIC:
            gz = gzip.GzipFile(fileobj=raw)
            chunks = iter(lambda: gz.read(_READ), b"")
        else:
            chunks = iter(lambda: raw.read(_READ), b"")
        tail = b""
        for chunk in _located(chunks, path, "LZ4" if magic == LZ4_MAGIC else "gzip"):
            lines = (tail + chunk).split(b"\n")
            tail = lines.pop()
            for line in lines:
                if line.strip():
                    yield line.rstrip(b"\r")
        if tail.strip():
            yield tail.rstrip(b"\r")


def first_line(path: str | Path) -> bytes:
    """The first non-empty line of a text file ("" if none), to tell its format."""
    for line in open_lines(path):
        return line
    return b""


class RecordingWriter:
    """Append frames to a rotating LZ4 recording. Thread-compatible, not thread-safe: one
    writer per thread (the live source writes from the engine thread, in consumption order)."""

    def __init__(
        self,
        path: str | Path,
        *,
        rotate_bytes: int = 256 << 20,
        rotate_s: float = 3600.0,
        block_lines: int = 2000,
        block_s: float = 1.0,
        private: bool = False,
    ):
        self.base = Path(path)
        self.private = private  # an --execute recording holds account data: owner-only (0600)
        if not self.base.name.endswith(".rec.lz4"):
            raise ValueError(f"a recording's name ends in .rec.lz4, not {self.base.name!r}")
        self.base.parent.mkdir(parents=True, exist_ok=True)
        self.rotate_bytes, self.rotate_s = rotate_bytes, rotate_s
        self.block_lines, self.block_s = block_lines, block_s
        self.files: list[Path] = []
        self.lines = 0
        self._buf: list[bytes] = []
        self._f = None
        self._open_next()

    def _open_next(self) -> None:
        n = len(self.files)
        stem = self.base.name[: -len(".rec.lz4")]
        path = self.base if n == 0 else self.base.with_name(f"{stem}-{n:04d}.rec.lz4")
        if self.private:
            # created 0600 (not chmod after: no window where others can read it); O_NOFOLLOW:
            # a planted symlink is not followed out of the run folder
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
            os.fchmod(fd, 0o600)
            self._f = os.fdopen(fd, "ab")
        else:
            self._f = open(path, "ab")
        self.files.append(path)
        self._opened = time.monotonic()
        self._flushed = time.monotonic()

    def write(self, recv_ns: int, frame: str | bytes | dict[str, Any], tag: str | None = None) -> None:
        """One frame: its raw text as received (a dict is dumped compactly)."""
        if isinstance(frame, dict):
            frame = json.dumps(frame, separators=(",", ":"))
        if isinstance(frame, str):
            frame = frame.encode()
        if b"\n" in frame:  # keep one frame per line; JSON allows re-encoding its whitespace
            frame = json.dumps(json.loads(frame), separators=(",", ":")).encode()
        if self._f is None:  # rotation opens the next file on its first line: no empty files
            self._open_next()
        head = f"{int(recv_ns)} {tag} " if tag else f"{int(recv_ns)} "
        self._buf.append(head.encode() + frame + b"\n")
        self.lines += 1
        now = time.monotonic()
        if len(self._buf) >= self.block_lines or now - self._flushed >= self.block_s:
            self.flush()

    def flush(self) -> None:
        """Write the buffered lines as one complete LZ4 frame; rotate when due."""
        if self._f is None:
            return
        if self._buf:
            self._f.write(lz4.frame.compress(b"".join(self._buf)))
            self._f.flush()
            self._buf.clear()
        self._flushed = time.monotonic()
        if self._f.tell() >= self.rotate_bytes or time.monotonic() - self._opened >= self.rotate_s:
            self._f.close()
            self._f = None

    def close(self) -> None:
        if self._f is not None:
            if self._buf:
                self._f.write(lz4.frame.compress(b"".join(self._buf)))
                self._buf.clear()
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
            self._f = None

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
