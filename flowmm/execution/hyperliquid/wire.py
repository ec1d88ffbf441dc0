"""Reconciler actions -> Hyperliquid wire actions: prices and sizes made valid before signing.

Every price is put on Hyperliquid's grid (5 significant figures, ``6 - szDecimals`` decimals
for a perp; :mod:`flowmm.execution.hyperliquid_rules`) *away from the mid* -- a bid rounds
down, an ask up, so rounding never makes a post-only quote more aggressive -- and every size
toward zero onto the lot grid; an order whose rounded value is under the $10 minimum is
refused here (:class:`Refused`), never sent. :func:`check_order_wire` re-reads the wire
strings the SDK produced and checks them against the same rules: a last line of defence, and
what the tests assert on every order sent.

Client order ids: the reconciler's integer oids, made unique across sessions by a random
64-bit session prefix: ``cloid = 0x<session:16 hex><oid:16 hex>`` (16 bytes, as Hyperliquid
requires). :func:`oid_of_cloid` reads our oid back, and says whether a cloid is this session's.

Post-only (``Alo``) orders are batched apart from ``Ioc`` / ``Gtc`` ones (:func:`batches`):
one batch's orders share a time-in-force, so a rejected post-only batch never takes a taker
order down with it, and a taker order never waits behind a post-only batch's checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from hyperliquid.utils.signing import float_to_wire, order_request_to_order_wire
from hyperliquid.utils.types import Cloid

from flowmm.execution import hyperliquid_rules as HR

TIFS = ("Alo", "Ioc", "Gtc")
MAX_BATCH = 40  # a batch of n orders weighs 1 + n // 40 (IP limit): batches of 40 weigh 2


class Refused(ValueError):
    """An order that must not be sent (after rounding: no valid price, no size, under $10)."""


@dataclass(frozen=True)
class Market:
    """What the wire needs of the instrument: its asset index and size decimals."""

    coin: str
    asset: int
    sz_decimals: int
    is_perp: bool = True
    min_value: float = HR.MIN_ORDER_VALUE


def cloid_for(session: int, oid: int) -> Cloid:
    return Cloid(f"0x{session & (2**64 - 1):016x}{int(oid) & (2**64 - 1):016x}")


def oid_of_cloid(cloid: str | None, session: int) -> int | None:
    """Our oid when ``cloid`` is one of this session's, else None."""
    if not cloid or len(cloid) != 34 or not cloid.startswith("0x"):
        return None
    try:
        if int(cloid[2:18], 16) != session & (2**64 - 1):
            return None
        return int(cloid[18:], 16)
    except ValueError:
        return None


def rounded(market: Market, side: float, px: float, sz: float) -> tuple[float, float]:
    """(price, size) on the grids: a bid down, an ask up; the size toward zero. Raises
    :class:`Refused` when nothing valid is left or the order value is under the minimum."""
    mode = HR.ROUND_DOWN if side > 0 else HR.ROUND_UP
    p = HR.round_px(float(px), market.sz_decimals, market.is_perp, mode)
    s = HR.round_sz(float(sz), market.sz_decimals)
    if not (p > 0.0):
        raise Refused(f"no valid price for {px!r}")
    if not (s > 0.0):
        raise Refused(f"size {sz!r} rounds to nothing at {market.sz_decimals} decimals")
    if p * s < market.min_value:
        raise Refused(f"order value {p * s:.4f} is under the ${market.min_value:g} minimum")
    return p, s


def order_wire(market: Market, side: float, px: float, sz: float, cloid: Cloid, tif: str = "Alo") -> dict:
    """The SDK's order wire of a rounded order (``px``, ``sz`` from :func:`rounded`)."""
    if tif not in TIFS:
        raise ValueError(f"tif must be one of {TIFS}")
    req = {"coin": market.coin, "is_buy": side > 0, "sz": sz, "limit_px": px,
           "order_type": {"limit": {"tif": tif}}, "reduce_only": False, "cloid": cloid}  # fmt: skip
    wire = order_request_to_order_wire(req, market.asset)
    check_order_wire(market, wire)
    return wire


def check_order_wire(market: Market, wire: dict) -> None:
    """Raise :class:`Refused` unless the wire's price and size satisfy Hyperliquid's rules."""
    p, s = wire["p"], wire["s"]
    px, sz = float(p), float(s)
    if not HR.valid_px(px, market.sz_decimals, market.is_perp) or float_to_wire(px) != p:
        raise Refused(f"price {p} is off Hyperliquid's grid")
    if -Decimal(s).as_tuple().exponent > market.sz_decimals or not sz > 0:
        raise Refused(f"size {s} has more than {market.sz_decimals} decimals")
    if px * sz < market.min_value:
        raise Refused(f"order value {px * sz:.4f} is under the ${market.min_value:g} minimum")


def order_action(wires: list[dict]) -> dict:
    return {"type": "order", "orders": wires, "grouping": "na"}


def modify_action(modifies: list[tuple[Cloid, dict]]) -> dict:
    """``batchModify`` addressed by cloid (the order keeps its cloid; the exchange gives it a
    new oid)."""
    return {"type": "batchModify", "modifies": [{"oid": c.to_raw(), "order": w} for c, w in modifies]}


def cancel_by_cloid_action(market: Market, cloids: list[Cloid]) -> dict:
    return {
        "type": "cancelByCloid",
        "cancels": [{"asset": market.asset, "cloid": c.to_raw()} for c in cloids],
    }


def cancel_action(market: Market, oids: list[int]) -> dict:
    return {"type": "cancel", "cancels": [{"a": market.asset, "o": int(o)} for o in oids]}


def schedule_cancel_action(time_ms: int | None) -> dict:
    return {"type": "scheduleCancel", **({"time": int(time_ms)} if time_ms is not None else {})}


def batches(items: list, key=lambda item: item[0], size: int = MAX_BATCH) -> list[list]:
    """Consecutive groups of ``items`` sharing ``key`` (e.g. the tif), at most ``size`` each."""
    out: list[list] = []
    for item in items:
        if out and key(out[-1][0]) == key(item) and len(out[-1]) < size:
            out[-1].append(item)
        else:
            out.append([item])
    return out


def ip_weight(kind: str, n: int) -> int:
    """Hyperliquid's IP weight of one request: an exchange action of ``n`` orders weighs
    ``1 + n // 40``; ``info`` requests weigh 20 (``l2Book``, ``allMids`` ... 2; not sent here)."""
    return 1 + n // 40 if kind == "exchange" else 20
