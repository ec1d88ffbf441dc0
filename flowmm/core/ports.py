"""The closed set of port types.

Every port is backed by preallocated numpy arrays so kernels take only arrays and
scalars. Two kinds:

* value ports (``f64``, ``obs``, ``vec``, ``book``, ``ctx``, ``ladder``, ``orders``):
  one float64 array of a fixed shape; the last value stays readable, a version
  counter tells consumers whether it ticked since they last ran.
* batch ports (``trades``, ``fills``, ``markouts``, ``actions``): a ring buffer of
  records (float64 ``[capacity, fields]`` plus int64 event times ``[capacity]``). The
  version counter is the number of records ever written, so a consumer's read
  cursor is the version it last saw: it reads records ``[cursor, version)``, each
  exactly once, and the engine fails loudly if a consumer fell a whole ring behind.

Column indices below are module constants so numba folds them into the kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOOK_LEVELS = 20  # Hyperliquid's l2Book depth
LADDER_LEVELS = 16
MAX_ORDERS = 64

# book: [level, column]; NaN price = no level
BID_PX, BID_SZ, BID_N, ASK_PX, ASK_SZ, ASK_N = range(6)
# obs
OBS_Z, OBS_R = 0, 1
# ctx
CTX_FUNDING, CTX_PREDICTED_FUNDING, CTX_OI, CTX_MARK, CTX_ORACLE, CTX_PREMIUM = range(6)
# ladder: [level, column]; NaN price = no level
LAD_BID_PX, LAD_BID_SZ, LAD_ASK_PX, LAD_ASK_SZ = range(4)
# orders: [slot, column]; NaN oid = free slot. side +1 bid, -1 ask; sz = remaining size;
# queue_ahead = displayed size ahead of us at our price (NaN = unknown); t_placed_s = event
# time of the placement in seconds; status below
ORD_OID, ORD_SIDE, ORD_PX, ORD_SZ, ORD_ORIG_SZ, ORD_QUEUE_AHEAD, ORD_T_PLACED_S, ORD_STATUS = range(8)
ORD_PENDING_NEW, ORD_RESTING, ORD_PENDING_CANCEL, ORD_PENDING_MODIFY = 1.0, 2.0, 3.0, 4.0
# trades (side: +1 buyer lifted the ask, -1 seller hit the bid)
TR_PX, TR_SZ, TR_SIDE, TR_TID = range(4)
# fills (side: +1 our bid filled, -1 our ask filled)
FI_PX, FI_SZ, FI_SIDE, FI_OID, FI_FEE, FI_MAKER, FI_MID_REF = range(7)
# markouts
MK_OID, MK_HORIZON_S, MK_SIDE, MK_PX, MK_MARKOUT_BPS, MK_AS_BPS = range(6)
# actions
ACT_KIND, ACT_SIDE, ACT_PX, ACT_SZ, ACT_OID = range(5)
ACT_PLACE, ACT_CANCEL, ACT_MODIFY = 1.0, 2.0, 3.0


@dataclass(frozen=True)
class PortType:
    name: str
    batch: bool
    fields: tuple[str, ...]  # value ports: names of a 1-D layout or of the last axis
    rows: int | None = None  # value ports with a 2-D layout: number of rows
    doc: str = ""

    def shape(self, size: int | None = None) -> tuple[int, ...]:
        """Shape of a value port's array (``vec`` takes its size from the declaration)."""
        if self.batch:
            raise TypeError(f"{self.name} is a batch port; see record_width")
        if self.name == "vec":
            if not size or size < 1:
                raise ValueError("a vec port needs a size >= 1")
            return (size,)
        if self.rows is not None:
            return (self.rows, len(self.fields))
        return (len(self.fields),)

    @property
    def record_width(self) -> int:
        return len(self.fields)

    def allocate(self, size: int | None = None, capacity: int = 0):
        """Fresh buffers: ``array`` for value ports, ``(times, records)`` for batch ports."""
        if self.batch:
            return (np.zeros(capacity, np.int64), np.full((capacity, len(self.fields)), np.nan))
        return np.full(self.shape(size), np.nan)

    def scalar_columns(self, size: int | None = None) -> tuple[str, ...]:
        """Column suffixes this port contributes to a trace ('' = the port itself)."""
        if self.name == "f64":
            return ("",)
        if self.name == "obs":
            return (".z", ".R")
        if self.name == "vec":
            return tuple(f".{i}" for i in range(size or 0))
        if self.name == "ctx":
            return tuple("." + f for f in self.fields)
        if self.name in ("ladder", "book"):  # the touch: level 0's fields, the first row of the array
            return tuple(f".{f}.0" for f in self.fields)
        return ()


PORT_TYPES: dict[str, PortType] = {
    p.name: p
    for p in (
        PortType("f64", False, ("value",), doc="a scalar; NaN = no value yet"),
        PortType("obs", False, ("z", "R"), doc="observation of the drift: z in bps/s, R its variance"),
        PortType("vec", False, ("value",), doc="fixed-size float vector (size set by the node)"),
        PortType(
            "book",
            False,
            ("bid_px", "bid_sz", "bid_n", "ask_px", "ask_sz", "ask_n"),
            rows=BOOK_LEVELS,
            doc=f"L2 book, {BOOK_LEVELS} levels per side, best first; NaN price = no level",
        ),
        PortType(
            "ctx",
            False,
            ("funding", "predicted_funding", "oi", "mark", "oracle", "premium"),
            doc="asset context; funding per hour as Hyperliquid quotes it",
        ),
        PortType(
            "ladder",
            False,
            ("bid_px", "bid_sz", "ask_px", "ask_sz"),
            rows=LADDER_LEVELS,
            doc=f"desired quotes, up to {LADDER_LEVELS} levels per side; NaN price = no level",
        ),
        PortType(
            "orders",
            False,
            ("oid", "side", "px", "sz", "orig_sz", "queue_ahead", "t_placed_s", "status"),
            rows=MAX_ORDERS,
            doc=f"our resting orders, up to {MAX_ORDERS}; NaN oid = free slot",
        ),
        PortType("trades", True, ("px", "sz", "side", "tid"), doc="tape: side +1 buyer aggressor, -1 seller"),
        PortType(
            "fills",
            True,
            ("px", "sz", "side", "oid", "fee", "maker", "mid_ref"),
            doc="our fills: side +1 our bid filled, -1 our ask filled",
        ),
        PortType(
            "markouts",
            True,
            ("oid", "horizon_s", "side", "px", "markout_bps", "as_bps"),
            doc="per fill and horizon, emitted when the horizon elapses",
        ),
        PortType(
            "actions",
            True,
            ("kind", "side", "px", "sz", "oid"),
            doc="order actions (1 place, 2 cancel, 3 modify)",
        ),
    )
}


def port_type(name: str) -> PortType:
    try:
        return PORT_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown port type {name!r}; known: {', '.join(PORT_TYPES)}") from None
