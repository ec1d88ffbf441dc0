"""The input guard: corrupt prices and impossible times never reach the engine.

Every source's event stream goes through :class:`GuardedSource` (events file, replay,
synthetic, live: the CLI wraps whatever it opened). Each market-data event is checked on its
own, in stream order, and a bad one is dropped and counted by reason:

=============== ==============================================================================
reason          what is rejected
=============== ==============================================================================
``non_finite``  a price or size that is NaN or ±inf in a book level, the bbo, a trade, a
                reference/spot mid; ±inf in ctx
``non_positive`` a price <= 0; a book size < 0; a trade size <= 0; ctx mark/oracle <= 0
``absurd``      a mid (or trade, or one-sided best price) more than ``max_move`` (50 %) away
                from the last accepted mid, or a price above ``MAX_PRICE`` (1e9)
``crossed``     a book or bbo whose best bid >= best ask within the one snapshot (locked
                at zero size on both sides is a bare mid, as the AS2008 source sends it)
``time_jump``   an event more than ``max_jump_s`` (1 day) after the last accepted one
``future``      live from Hyperliquid only: an exchange time more than ``max_ahead_s`` (60 s)
                ahead of the wall clock (a loopback server's clock is its own)
``malformed``   a payload whose length does not match its level counts
=============== ==============================================================================

A dropped book leaves the last good one in place: nodes and quotes keep working on it, never
on the corrupt one. The fast-book/bbo merge of the live feed happens in the parser, before
the guard, so the guard sees (and checks) each merged snapshot as a whole; a bbo is checked
on its own (one level a side), not against the last book, since it is the newer quote.

A genuine move beyond ``max_move`` (a relisting, a data gap) would otherwise be rejected for
ever: after ``reanchor`` (50) consecutive absurd books that agree with each other (each within
``max_move`` of the first), the guard accepts the new level (counted in ``reanchored``).
Month-long replays stay valid: only a gap of more than a day between consecutive events is
refused (split such data into runs). Counts are in the run summary under ``rejected``
(:meth:`GuardedSource.record`) and on the console.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from flowmm.core import events as E
from flowmm.core.events import EventTable

REASONS = ("non_finite", "non_positive", "absurd", "crossed", "time_jump", "future", "malformed")
R_NONFIN, R_NONPOS, R_ABSURD, R_CROSSED, R_JUMP, R_FUTURE, R_MALFORMED = range(len(REASONS))
N_COUNTS = len(REASONS) + 1  # + reanchored
MAX_PRICE = 1e9  # USDC; no listed contract is near it, 1e300 is
SEC = 1_000_000_000

# state slots
_LAST_T, _HAVE_T, _MID, _PEND_MID, _PEND_N = range(5)


@njit(cache=True)
def _price_reason(px: float) -> int:
    if not np.isfinite(px):
        return R_NONFIN
    if px <= 0.0:
        return R_NONPOS
    if px > MAX_PRICE:
        return R_ABSURD
    return -1


@njit(cache=True)
def _far(px: float, ref: float, max_move: float) -> bool:
    return ref == ref and abs(px - ref) > max_move * ref


@njit(cache=True)
def _check_levels(payload, o, end, nb, na) -> int:
    """Reason a book payload is bad (-1: fine), and nothing about the mid."""
    if nb < 0 or na < 0 or o + 2 + 3 * (nb + na) != end:
        return R_MALFORMED
    p = o + 2
    for _ in range(nb + na):
        r = _price_reason(payload[p])
        if r >= 0:
            return r
        sz = payload[p + 1]
        if not np.isfinite(sz):
            return R_NONFIN
        if sz < 0.0:
            return R_NONPOS
        p += 3
    return -1


@njit(cache=True)
def _screen(t, kind, off, payload, state, keep, counts, max_jump, max_move, reanchor, wall_limit):
    """Mark each event kept or not, count the rejections (numba: one pass, no allocation)."""
    for i in range(len(t)):
        keep[i] = True
        o, end, k = off[i], off[i + 1], kind[i]
        ti = t[i]
        r = -1
        if state[_HAVE_T] == 1.0 and ti - state[_LAST_T] > max_jump:
            r = R_JUMP
        elif wall_limit > 0 and ti > wall_limit:
            r = R_FUTURE
        book_mid = np.nan
        bid = np.nan
        ask = np.nan
        depth = np.nan
        if r < 0 and (k == E.BOOK or k == E.BOOK_AGG or k == E.BBO):
            if k == E.BBO:
                if end - o != 6:
                    r = R_MALFORMED
                else:
                    bid, ask = payload[o], payload[o + 3]
                    depth = payload[o + 1] + payload[o + 4]
                    for px in (bid, ask):
                        if px == px:  # a missing side is NaN: one-sided, not corrupt
                            rr = _price_reason(px)
                            if rr >= 0 and r < 0:
                                r = rr
                    for sz in (payload[o + 1], payload[o + 4]):
                        if r < 0 and (sz == np.inf or sz == -np.inf):
                            r = R_NONFIN
                        elif r < 0 and sz < 0.0:
                            r = R_NONPOS
            else:
                ok = end - o >= 2 and np.isfinite(payload[o]) and np.isfinite(payload[o + 1])
                if not ok or payload[o] > 1e6 or payload[o + 1] > 1e6:
                    r = R_MALFORMED
                else:
                    nb, na = int(payload[o]), int(payload[o + 1])
                    r = _check_levels(payload, o, end, nb, na)
                    bid = payload[o + 2] if nb > 0 else np.nan
                    ask = payload[o + 2 + 3 * nb] if na > 0 else np.nan
                    if nb > 0 and na > 0:
                        depth = payload[o + 3] + payload[o + 3 + 3 * nb]
            if r < 0:
                if bid == bid and ask == ask:
                    # locked at zero size is a bare mid (the AS2008 textbook source), not a book
                    if bid > ask or (bid == ask and depth != 0.0):
                        r = R_CROSSED
                    else:
                        book_mid = 0.5 * (bid + ask)
                elif bid == bid:
                    book_mid = bid
                elif ask == ask:
                    book_mid = ask
            if r < 0 and book_mid == book_mid and k != E.BOOK_AGG:
                if _far(book_mid, state[_MID], max_move):
                    r = R_ABSURD
                    # a new level that holds (reanchor books in a row, agreeing) is accepted
                    if state[_PEND_N] > 0 and not _far(book_mid, state[_PEND_MID], max_move):
                        state[_PEND_N] += 1
                    else:
                        state[_PEND_MID] = book_mid
                        state[_PEND_N] = 1
                    if state[_PEND_N] >= reanchor:
                        r = -1
                        counts[N_COUNTS - 1] += 1
        elif r < 0 and k == E.TRADE:
            if end - o != 4:
                r = R_MALFORMED
            else:
                r = _price_reason(payload[o])
                sz = payload[o + 1]
                if r < 0 and not np.isfinite(sz):
                    r = R_NONFIN
                elif r < 0 and sz <= 0.0:
                    r = R_NONPOS
                elif r < 0 and _far(payload[o], state[_MID], max_move):
                    r = R_ABSURD
        elif r < 0 and (k == E.REF_MID or k == E.SPOT_MID):
            r = R_MALFORMED if end - o != 1 else _price_reason(payload[o])
        elif r < 0 and k == E.CTX:
            for j in range(o, end):
                if payload[j] == np.inf or payload[j] == -np.inf:
                    r = R_NONFIN
            if r < 0 and end - o == 6:
                for j in (o + 3, o + 4):  # mark, oracle (NaN: not sent)
                    if payload[j] == payload[j] and payload[j] <= 0.0:
                        r = R_NONPOS
        if r >= 0:
            keep[i] = False
            counts[r] += 1
            continue
        state[_LAST_T] = ti
        state[_HAVE_T] = 1.0
        if book_mid == book_mid and k != E.BOOK_AGG:
            state[_MID] = book_mid
            state[_PEND_N] = 0


class InputGuard:
    """The checks of the module docstring over a stream of ``EventTable`` chunks."""

    def __init__(
        self,
        *,
        max_jump_s: float = 86400.0,
        max_move: float = 0.5,
        reanchor: int = 50,
        max_ahead_s: float | None = None,
    ):
        self.max_jump = int(max_jump_s * SEC)
        self.max_move = float(max_move)
        self.reanchor = int(reanchor)
        self.max_ahead = None if max_ahead_s is None else int(max_ahead_s * SEC)
        self.state = np.array([0.0, 0.0, np.nan, np.nan, 0.0])
        self.counts = np.zeros(N_COUNTS, np.int64)
        self.last_t: int | None = None

    def screen(self, chunk: EventTable) -> EventTable:
        """The chunk without its rejected events."""
        n = len(chunk)
        if n == 0:
            return chunk
        keep = np.ones(n, np.bool_)
        wall = 0 if self.max_ahead is None else time.time_ns() + self.max_ahead
        # last_t kept exactly as int: the float slot only serves the kernel's comparisons
        _screen(
            chunk.t, chunk.kind, chunk.off, chunk.payload, self.state, keep, self.counts,
            self.max_jump, self.max_move, self.reanchor, wall,
        )  # fmt: skip
        if keep.any():
            self.last_t = int(chunk.t[np.nonzero(keep)[0][-1]])
        if keep.all():
            return chunk
        return _take(chunk, keep)

    def report(self) -> dict[str, int]:
        out = {name: int(self.counts[i]) for i, name in enumerate(REASONS)}
        out["total"] = int(self.counts[: len(REASONS)].sum())
        out["reanchored"] = int(self.counts[-1])
        return out


def _take(chunk: EventTable, keep: np.ndarray) -> EventTable:
    idx = np.nonzero(keep)[0]
    lens = np.diff(chunk.off)[idx]
    off = np.zeros(len(idx) + 1, np.int64)
    np.cumsum(lens, out=off[1:])
    parts = [chunk.payload[chunk.off[i] : chunk.off[i + 1]] for i in idx]
    payload = np.concatenate(parts) if parts else np.zeros(0)
    return EventTable(chunk.t[idx], chunk.kind[idx], off, payload)


def _on_hyperliquid(source: Any) -> bool:
    """A live feed from Hyperliquid itself: its exchange times follow the wall clock. A loopback
    or other server replays a recording at any speed on its own clock: no wall-clock bound."""
    if getattr(source, "name", None) != "live":
        return False
    from urllib.parse import urlparse

    from flowmm.sources.live.config import NETWORKS

    url = getattr(getattr(source, "cfg", None), "url", "") or ""
    return urlparse(url).netloc in {urlparse(u).netloc for u in NETWORKS.values()}


class GuardedSource:
    """A source whose chunks went through an :class:`InputGuard`; everything else is the
    wrapped source's (name, provides, coin, fault, ...)."""

    def __init__(self, source: Any, guard: InputGuard | None = None):
        self._source = source
        self.guard = guard or InputGuard(max_ahead_s=60.0 if _on_hyperliquid(source) else None)
        self._done = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)

    @property
    def end_time(self) -> int | None:
        end = self._source.end_time
        last = self.guard.last_t
        # a far-future last event was rejected: the run ends at the last accepted one, so the
        # engine does not iterate empty cycles to the year 2100
        if self._done and end is not None and last is not None and end - last > self.guard.max_jump:
            return last
        return end

    def chunks(self) -> Iterator[EventTable]:
        inner = self._source.chunks()
        try:
            for chunk in inner:
                out = self.guard.screen(chunk)
                if len(out) or not len(chunk):
                    yield out
        finally:
            self._done = True
            close = getattr(inner, "close", None)
            if close is not None:
                close()

    def record(self, run: Any) -> dict[str, int]:
        """Put the rejection counts into ``run.summary["rejected"]`` and its summary.json.

        (``Graph.run`` files a source's own summary under the source's name, which for the
        events source is also the events count's key: the counts go at the top level.)"""
        report = self.guard.report()
        run.summary["rejected"] = report
        if run.out_dir is not None:
            path = Path(run.out_dir) / "summary.json"
            path.write_text(json.dumps(run.summary, indent=2) + "\n")
        return report


def guard_source(source: Any) -> GuardedSource:
    """``source`` behind the input guard (idempotent)."""
    return source if isinstance(source, GuardedSource) else GuardedSource(source)


def format_rejections(report: dict[str, int]) -> str | None:
    """The console line of the rejections, or None when there were none."""
    if not report.get("total") and not report.get("reanchored"):
        return None
    parts = [f"{report[r]:,} {r}" for r in REASONS if report.get(r)]
    tail = f"; re-anchored {report['reanchored']}x after a lasting move" if report.get("reanchored") else ""
    return (
        f"  rejected input: {report['total']:,} events ({', '.join(parts) or 'none'}){tail}; never quoted on"
    )
