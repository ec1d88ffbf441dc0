"""Streams a graph can read: what sources and the execution layer write (CONVENTIONS.md).

Streams are the first ports of every plan, in this fixed order, so event application is
one compiled function shared by both engine backends.
"""

from __future__ import annotations

from dataclasses import dataclass

TRUTH_SIZE = 3  # source.truth: latent mu (bps/s), sigma (bps/sqrt s), regime id (synthetic.Regime)


@dataclass(frozen=True)
class Stream:
    address: str
    type: str
    doc: str
    size: int | None = None  # vec only


STREAMS: tuple[Stream, ...] = (
    Stream("source.book", "book", "L2 levels, both sides"),
    Stream("source.book_agg", "book", "aggregated levels (nSigFigs) for depths 20 fine levels miss"),
    Stream("source.bbo", "book", "best bid/offer (1 level)"),
    Stream("source.mid", "f64", "mid of the best bid/ask of the book (bbo when newer)"),
    Stream("source.trades", "trades", "tape since the consumer last ran"),
    Stream("source.ctx", "ctx", "funding, predicted funding, OI, mark, oracle, premium"),
    Stream("source.ref_mid", "f64", "reference asset mid (BTC), for lead-lag"),
    Stream("source.spot_mid", "f64", "spot price, for the spot-perp basis"),
    Stream(
        "source.truth", "vec", "synthetic only: latent mu, sigma, regime (diagnostic nodes only)", TRUTH_SIZE
    ),
    Stream("source.timer", "f64", "code of the last wall-clock timer event (live staleness etc.)"),
    Stream("source.clock", "f64", "the quote-cycle number; ticks on every cycle"),
    Stream("exec.fills", "fills", "our fills"),
    Stream("exec.markouts", "markouts", "per fill and horizon, when the horizon elapses"),
    Stream("exec.position", "f64", "signed position in contracts"),
    Stream("exec.orders", "orders", "our resting orders"),
    Stream("exec.pnl", "f64", "total PnL (realised + unrealised - fees + funding), quote currency"),
)
STREAM_INDEX = {s.address: i for i, s in enumerate(STREAMS)}
SOURCE_STREAMS = frozenset(s.address for s in STREAMS if s.address.startswith("source."))
EXEC_STREAMS = frozenset(s.address for s in STREAMS if s.address.startswith("exec."))

# port ids of the streams (the plan numbers them first)
(
    S_BOOK,
    S_BOOK_AGG,
    S_BBO,
    S_MID,
    S_TRADES,
    S_CTX,
    S_REF_MID,
    S_SPOT_MID,
    S_TRUTH,
    S_TIMER,
    S_CLOCK,
    S_FILLS,
    S_MARKOUTS,
    S_POSITION,
    S_ORDERS,
    S_PNL,
) = range(len(STREAMS))
