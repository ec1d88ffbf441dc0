"""Staleness as timer events: which feed streams are stale, encoded in one timer code.

A timer event's code is ``STATE_BASE + mask``, the mask the set of streams stale at that
moment (bit per stream, below). Every timer the live source writes carries the whole state,
so the last timer of a batch (events sharing one time overwrite ``source.timer``) is always
right, and a reader needs no history. ``STATE_BASE`` keeps these codes apart from other timer
codes (the synthetic market's session start is 1).
"""

from __future__ import annotations

STATE_BASE = 100
STREAMS = {"book": 1, "trades": 2, "bbo": 4, "ctx": 8, "ref": 16, "spot": 32}


def code(stale: set[str]) -> int:
    """The timer code of a set of stale streams."""
    return STATE_BASE + sum(STREAMS[s] for s in stale)


def decode(value: float) -> set[str] | None:
    """The stale streams a timer code says, or None when it is not a staleness code."""
    if not value == value or value < STATE_BASE or value >= STATE_BASE + 2 * max(STREAMS.values()):
        return None
    mask = int(value) - STATE_BASE
    return {s for s, bit in STREAMS.items() if mask & bit}


def book_stale(value: float) -> bool | None:
    """True / False when ``value`` is a staleness code, None otherwise."""
    stale = decode(value)
    return None if stale is None else "book" in stale
