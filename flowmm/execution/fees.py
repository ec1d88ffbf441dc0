"""Trading fees: Hyperliquid's default perp schedule, configurable.

Defaults are Hyperliquid's base tier for perps (rolling 14-day volume below $5M, no staking
discount, no referral, no builder fee): **taker 4.5 bps (0.045 %), maker 1.5 bps (0.015 %)**.
Sources, read on 2026-11-22: the official fee page
https://hyperliquid.gitbook.io/hyperliquid-docs/trading/fees (fees on the rolling 14-day volume,
maker rebates paid per trade) and its tier table as transcribed at
https://hypernode-docs.polynode.dev/research/fees ("Perpetuals 4.5 bps taker / 1.5 bps maker";
VIP 1 from $5M: 4.0 / 1.2 bps ...). Higher tiers and the market-maker rebate program (a negative
maker rate) are reached by configuring ``maker_bps`` / ``taker_bps``.

Sign: a fee is what we pay in quote currency, ``fee = rate * px * sz`` with ``rate = bps * 1e-4``;
positive = paid, negative = a rebate (negative maker rate). Kernels receive rates as fractions
(``maker_rate``/``taker_rate``) packed into their float64 params, never this object.
"""

from __future__ import annotations

from numba import njit
from pydantic import BaseModel, ConfigDict, Field

HL_BASE_MAKER_BPS = 1.5
HL_BASE_TAKER_BPS = 4.5


class FeeSchedule(BaseModel):
    """Maker and taker fee rates in bps of notional (negative maker = rebate)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    maker_bps: float = Field(HL_BASE_MAKER_BPS, ge=-10.0, le=100.0, description="resting (Alo) fills")
    taker_bps: float = Field(HL_BASE_TAKER_BPS, ge=-10.0, le=100.0, description="crossing fills")

    @property
    def maker_rate(self) -> float:
        """Maker rate as a fraction of notional."""
        return self.maker_bps * 1e-4

    @property
    def taker_rate(self) -> float:
        """Taker rate as a fraction of notional."""
        return self.taker_bps * 1e-4

    def fee(self, px: float, sz: float, maker: bool = True) -> float:
        """Fee paid on a fill of ``sz`` at ``px`` (quote currency; negative = rebate)."""
        return fee_amount(self.maker_rate if maker else self.taker_rate, px, sz)


@njit(cache=True)
def fee_amount(rate: float, px: float, sz: float) -> float:
    """``rate * px * |sz|``: quote currency paid (negative rate = rebate received)."""
    return rate * px * abs(sz)
