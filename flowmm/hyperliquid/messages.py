"""Pure parsers, one per Hyperliquid message shape: JSON in, typed records out.

Facts they rely on (checked on the real messages in ``shared/data/hyperliquid``):

* prices and sizes are JSON strings (``"105055.0"``), so is a trade's ``sz`` although the
  SDK's TypedDict says int; key order is not stable;
* a trade's ``side`` is the aggressor's (``B`` = buyer lifted the ask, ``A`` = seller hit the
  bid); its ``hash`` can be all zeros, so trades are told apart by ``tid``;
* a fill's ``side`` is ours (``B`` = we bought); ``crossed`` = we took liquidity; fills of
  2023 have no ``tid`` or ``feeToken``;
* exchange times are integer ms; HIP-3 coins are ``dex:COIN``.

Every function raises ``ValueError`` / ``KeyError`` / ``TypeError`` on a message that does not
have its shape; the stateful :mod:`flowmm.hyperliquid.parser` counts those as malformed.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, NamedTuple

MS = 1_000_000  # ns per ms


def num(v: Any) -> float:
    """A Hyperliquid number (string or JSON number) as a float; ``None`` -> NaN."""
    if v is None:
        return math.nan
    if isinstance(v, bool):
        raise TypeError("a boolean is not a number")
    return float(v)


def pos(v: Any, what: str) -> float:
    x = num(v)
    if not (x > 0.0 and math.isfinite(x)):
        raise ValueError(f"{what} must be a positive number, not {v!r}")
    return x


def ms_to_ns(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise ValueError(f"a time in ms must be a positive number, not {v!r}")
    if v >= (1 << 63) // MS:  # beyond int64 ns (year 2262): the frame is malformed
        raise ValueError(f"a time in ms must be below {(1 << 63) // MS}, not {v!r}")
    return int(v) * MS


def iso_to_ns(s: str) -> int:
    """``2024-01-01T12:00:01.138942031`` (UTC, up to ns; ``Z``, ``+00:00`` or a space allowed)."""
    s = s.strip().replace(" ", "T")
    if s.endswith("Z"):
        s = s[:-1]
    elif s.endswith("+00:00"):
        s = s[:-6]
    frac = ""
    if "." in s:
        s, frac = s.split(".", 1)
        if not frac.isdigit() or len(frac) > 9:
            raise ValueError(f"bad fraction of a second in {s}.{frac}")
    secs = datetime.fromisoformat(s).replace(tzinfo=UTC).timestamp()
    return int(secs) * 1_000_000_000 + int(frac.ljust(9, "0") or 0)


class Level(NamedTuple):
    px: float
    sz: float
    n: float  # orders at the level; NaN when the message omits it


class Book(NamedTuple):
    coin: str
    t: int  # exchange time, ns
    bids: list[Level]  # best first
    asks: list[Level]


class Trade(NamedTuple):
    coin: str
    t: int
    px: float
    sz: float
    side: float  # +1 buyer aggressor, -1 seller
    tid: int


class Fill(NamedTuple):
    coin: str
    t: int
    px: float
    sz: float
    side: float  # +1 our bid filled (we bought), -1 our ask
    oid: int
    fee: float
    maker: bool
    tid: int | None  # None in fills of 2023
    closed_pnl: float
    liquidation: bool


class AssetCtx(NamedTuple):
    coin: str
    funding: float  # per hour
    oi: float  # coins
    mark: float
    oracle: float
    premium: float
    mid: float


class AssetMeta(NamedTuple):
    name: str
    sz_decimals: int
    max_leverage: float
    index: int


class OrderUpdate(NamedTuple):
    coin: str
    t: int  # statusTimestamp
    oid: int
    side: float
    limit_px: float
    sz: float  # remaining
    orig_sz: float
    status: str
    cloid: str | None


class Candle(NamedTuple):
    coin: str
    interval: str
    t_open: int
    t_close: int
    o: float
    h: float
    l: float  # noqa: E741 (the message's own name)
    c: float
    v: float
    n: int


class FundingRow(NamedTuple):
    coin: str
    t: int
    rate: float  # per hour
    premium: float


_SIDES = {"B": 1.0, "A": -1.0}


def side_of(v: Any) -> float:
    try:
        return _SIDES[v]
    except (KeyError, TypeError):
        raise ValueError(f"side must be 'B' or 'A', not {v!r}") from None


def _side(raw: list) -> list[Level]:
    # the hot loop of a replay (20 levels x 2 sides per book): plain float() and one check
    out = []
    for d in raw:
        px, sz, n = float(d["px"]), float(d["sz"]), d.get("n")
        if not (0.0 < px < math.inf and 0.0 < sz < math.inf):
            raise ValueError(f"a level needs a positive px and sz, not {d!r}")
        out.append(Level(px, sz, math.nan if n is None else float(n)))
    return out


def _check(bids: list[Level], asks: list[Level], what: str) -> None:
    for side, lv, sign in (("bids", bids, 1.0), ("asks", asks, -1.0)):
        for i in range(1, len(lv)):
            if not sign * (lv[i - 1][0] - lv[i][0]) > 0:
                raise ValueError(f"{side} are not in strict price order ({lv[i - 1][0]} then {lv[i][0]})")
    if bids and asks and bids[0][0] >= asks[0][0]:
        raise ValueError(f"crossed {what}: bid {bids[0][0]} >= ask {asks[0][0]}")


def l2_book(data: dict) -> Book:
    """``l2Book`` (websocket ``data`` or REST body): ``{coin, time, levels: [bids, asks]}``.

    Bids must fall and asks rise strictly, and the book must not be crossed."""
    bids_raw, asks_raw = data["levels"]
    bids, asks = _side(bids_raw), _side(asks_raw)
    _check(bids, asks, "book")
    return Book(str(data["coin"]), ms_to_ns(data["time"]), bids, asks)


def bbo(data: dict) -> Book:
    """``bbo``: ``{coin, time, bbo: [bid | null, ask | null]}`` as a one-level book."""
    bid, ask = data["bbo"]
    bids = _side([] if bid is None else [bid])
    asks = _side([] if ask is None else [ask])
    _check(bids, asks, "bbo")
    return Book(str(data["coin"]), ms_to_ns(data["time"]), bids, asks)


def trade(d: dict) -> Trade:
    tid = d["tid"]
    if isinstance(tid, bool) or not isinstance(tid, int):
        raise ValueError(f"tid must be an integer, not {tid!r}")
    return Trade(
        str(d["coin"]), ms_to_ns(d["time"]), pos(d["px"], "px"), pos(d["sz"], "sz"), side_of(d["side"]), tid
    )


def trades(data: list) -> list[Trade]:
    if not isinstance(data, list):
        raise TypeError("trades data is a list")
    return [trade(d) for d in data]


def fill(d: dict) -> Fill:
    tid = d.get("tid")
    return Fill(
        str(d["coin"]),
        ms_to_ns(d["time"]),
        pos(d["px"], "px"),
        pos(d["sz"], "sz"),
        side_of(d["side"]),
        int(d["oid"]),
        num(d.get("fee", 0.0)),
        not bool(d["crossed"]),
        None if tid is None else int(tid),
        num(d.get("closedPnl", 0.0)),
        d.get("liquidation") is not None,
    )


def asset_ctx(coin: str, ctx: dict) -> AssetCtx:
    """A perp's context (``activeAssetCtx`` ``data.ctx``, a ``metaAndAssetCtxs`` entry)."""
    return AssetCtx(
        coin,
        num(ctx["funding"]),
        num(ctx["openInterest"]),
        num(ctx["markPx"]),
        num(ctx["oraclePx"]),
        num(ctx.get("premium")),
        num(ctx.get("midPx")),
    )


def all_mids(data: dict) -> dict[str, float]:
    """``allMids``: websocket ``data`` ``{mids: {coin: px}}`` or the REST body ``{coin: px}``."""
    mids = data["mids"] if "mids" in data and isinstance(data["mids"], dict) else data
    if not isinstance(mids, dict):
        raise TypeError("allMids data.mids is a mapping")
    return {str(k): pos(v, f"mid of {k}") for k, v in mids.items()}


def predicted_fundings(body: list, venue: str = "HlPerp") -> dict[str, tuple[float, int | None]]:
    """REST ``predictedFundings``: ``[[coin, [[venue, {fundingRate, nextFundingTime}|null], ...]], ...]``
    -> ``{coin: (rate per hour, next funding time ns)}`` for ``venue``.

    A venue's rate is per its own interval (``fundingIntervalHours``, 8 on CEXes): Hyperliquid's
    is hourly; another venue's rate is divided by its interval, so every rate is per hour."""
    out: dict[str, tuple[float, int | None]] = {}
    for coin, venues in body:
        for name, info in venues:
            if name != venue or info is None:
                continue
            hours = num(info.get("fundingIntervalHours", 1) or 1)
            nxt = info.get("nextFundingTime")
            out[str(coin)] = (num(info["fundingRate"]) / hours, None if nxt is None else ms_to_ns(nxt))
    return out


def meta(body: dict) -> list[AssetMeta]:
    """REST ``meta``: ``{universe: [{name, szDecimals, maxLeverage, ...}]}``."""
    return [
        AssetMeta(str(a["name"]), int(a["szDecimals"]), num(a.get("maxLeverage")), i)
        for i, a in enumerate(body["universe"])
    ]


def order_update(d: dict) -> OrderUpdate:
    o = d["order"]
    return OrderUpdate(
        str(o["coin"]),
        ms_to_ns(d["statusTimestamp"]),
        int(o["oid"]),
        side_of(o["side"]),
        pos(o["limitPx"], "limitPx"),
        num(o["sz"]),
        num(o.get("origSz", o["sz"])),
        str(d["status"]),
        o.get("cloid"),
    )


def candle(d: dict) -> Candle:
    return Candle(
        str(d["s"]), str(d["i"]), ms_to_ns(d["t"]), ms_to_ns(d["T"]),
        num(d["o"]), num(d["h"]), num(d["l"]), num(d["c"]), num(d["v"]), int(d["n"]),
    )  # fmt: skip


def funding_row(d: dict) -> FundingRow:
    return FundingRow(str(d["coin"]), ms_to_ns(d["time"]), num(d["fundingRate"]), num(d.get("premium")))


ASSET_CTXS_HEADER = (
    "time,coin,funding,open_interest,prev_day_px,day_ntl_vlm,premium,oracle_px,mark_px,mid_px,"
    "impact_bid_px,impact_ask_px"
)


def asset_ctxs_row(row: dict[str, str]) -> tuple[int, AssetCtx]:
    """One row of the archive's ``asset_ctxs/<date>.csv`` (per minute and coin; empty or
    ``null`` optional fields are NaN)."""

    def opt(k: str) -> float:
        v = row.get(k)
        return math.nan if v in (None, "", "null") else float(v)

    t = iso_to_ns(row["time"])
    return t, AssetCtx(
        row["coin"], float(row["funding"]), float(row["open_interest"]), float(row["mark_px"]),
        float(row["oracle_px"]), opt("premium"), opt("mid_px"),
    )  # fmt: skip
