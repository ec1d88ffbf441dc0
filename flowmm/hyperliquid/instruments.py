"""Instrument metadata: the coin, its size decimals and where they came from.

Hyperliquid has no fixed tick: a price has at most 5 significant figures and
``6 - szDecimals`` decimals (perps), so the tick follows the price's decade
(:mod:`flowmm.execution.hyperliquid_rules`). What a replay needs is ``szDecimals``, taken in
this order: a ``meta`` / ``metaAndAssetCtxs`` frame in the recording, a flag
(``--sz-decimals``), then the bundled table ``sz_decimals.json`` (dated; a coin listed after
that date may have a different value today).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

from flowmm.execution.hyperliquid_rules import tick_at

_TABLE = Path(__file__).with_name("sz_decimals.json")


@dataclass(frozen=True)
class Instrument:
    coin: str
    sz_decimals: int | None
    source: str  # "meta frame", "flag", "bundled table (meta of 2023-07-17)", "unknown"
    is_perp: bool = True

    def tick(self, px: float) -> float | None:
        """The price grid at ``px`` (None without size decimals)."""
        if self.sz_decimals is None or not px > 0:
            return None
        return float(tick_at(px, self.sz_decimals, self.is_perp))

    def as_dict(self) -> dict:
        return asdict(self)


@cache
def _table() -> dict:
    return json.loads(_TABLE.read_text())


def bundled(coin: str) -> Instrument:
    """The bundled table's entry for ``coin`` (a HIP-3 ``dex:COIN`` is not in it)."""
    table = _table()
    if coin in table["meta_2023_07_17"]:
        return Instrument(coin, table["meta_2023_07_17"][coin], "bundled table (meta of 2023-07-17)")
    if coin in table["later"]:
        return Instrument(coin, table["later"][coin], "bundled table (Hyperliquid docs)")
    return Instrument(coin, None, "unknown")
