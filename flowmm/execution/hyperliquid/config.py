"""Settings of real execution (``flowmm run --source live --execute``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from flowmm.errors import UsageError
from flowmm.sources.live.config import NETWORKS, resolve_network

Network = Literal["mainnet", "testnet", "loopback"]


def resolve_exec_network(url: str | None, testnet: bool, mainnet: bool) -> tuple[str, str, Network]:
    """(base URL, the feed's network, the orders' network) for ``--execute``: testnet unless
    ``--mainnet``; a URL of neither network is ``loopback`` (signed as on testnet) unless a flag
    names the network; a mainnet URL without ``--mainnet`` is refused, as are mixed networks."""
    base, feed = resolve_network(url, testnet or (url is None and not mainnet), mainnet)
    if mainnet and base != NETWORKS["mainnet"]:  # real money only to the real exchange
        raise UsageError(
            f"--mainnet with --url {url}: that is not Hyperliquid mainnet ({NETWORKS['mainnet']})",
            hint="drop --mainnet to rehearse against a loopback server (orders signed as on testnet)",
        )
    if base not in NETWORKS.values() and not (testnet or mainnet):
        return base, feed, "loopback"
    if feed == "mainnet" and not mainnet:
        raise UsageError(
            f"--execute with --url {url} trades on mainnet: say --mainnet", hint="docs/runbook.md"
        )
    return base, feed, feed


class ExecConfig(BaseModel):
    """Where orders go and the hard limits they live under. Holds no key (see ``keys``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(..., description="REST base URL; /exchange and /info, the websocket at <url>/ws")
    network: Network = Field(..., description="mainnet signs with source 'a'; testnet and loopback with 'b'")
    coin: str
    max_position: float = Field(
        ..., gt=0, allow_inf_nan=False, description="hard stop: |position| above this (contracts)"
    )
    max_notional: float = Field(
        ..., gt=0, allow_inf_nan=False, description="hard stop: |position| * mid above this (USDC)"
    )
    tif: Literal["Alo", "Gtc"] = Field("Alo", description="quotes are post-only unless told")
    dead_man_s: float = Field(30.0, ge=5.0, description="scheduleCancel this far ahead (>= 5 s, the minimum)")
    dead_man_refresh_s: float = Field(
        10.0, gt=0, description="push the scheduleCancel time forward this often"
    )
    http_timeout_s: float = Field(5.0, gt=0)
    stop_timeout_s: float = Field(10.0, gt=0, description="at exit: wait this long for the cancels' answers")
    cancel_retries: int = Field(3, ge=1, description="a cancel whose request failed is sent again this often")
    ip_per_min: float = Field(1200.0, gt=0, description="Hyperliquid's IP weight per minute")
    address_buffer: float = Field(10_000.0, ge=0, description="requests allowed before 1 per USDC traded")
    ping_s: float = Field(20.0, gt=0)
    backoff_s: float = Field(0.1, gt=0)
    max_reconnects: int = Field(10, ge=0)

    @property
    def mainnet(self) -> bool:
        return self.network == "mainnet"
