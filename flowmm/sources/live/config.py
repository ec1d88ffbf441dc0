"""Live source settings, and the one network switch that governs the feed (and, later, orders)."""

from __future__ import annotations

from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field

from flowmm.errors import Location, UsageError

NETWORKS = {"mainnet": "https://api.hyperliquid.xyz", "testnet": "https://api.hyperliquid-testnet.xyz"}


def resolve_network(url: str | None, testnet: bool = False, mainnet: bool = False) -> tuple[str, str]:
    """(base URL, network). ``--testnet`` / ``--mainnet`` pick the network (mainnet by default);
    ``--url`` may point anywhere (a loopback server), but a URL of the *other* network is refused:
    a feed of one network with orders on the other is a mistake, never a setting."""
    if testnet and mainnet:
        raise UsageError("--testnet and --mainnet exclude each other")
    network = "testnet" if testnet else "mainnet"
    if url is None:
        return NETWORKS[network], network
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UsageError(f"--url must be an http(s) base URL, not {url!r}", hint="e.g. http://127.0.0.1:8765")
    for net, base in NETWORKS.items():
        if parsed.netloc == urlparse(base).netloc:
            if (testnet or mainnet) and net != network:
                raise UsageError(
                    f"--url {url} is {net} but --{network} was given: mixed networks are refused",
                    hint=f"drop --{network}, or use --url {NETWORKS[network]}",
                )
            return url.rstrip("/"), net
    return url.rstrip("/"), network


def reads_stream(spec, stream: str) -> bool:
    """Whether a graph spec wires ``stream`` (e.g. ``source.book_agg``) into any node."""
    for node in spec.nodes.values():
        for ref in node.in_.values():
            if stream in (ref if isinstance(ref, list) else [ref]):
                return True
    return False


class LiveConfig(BaseModel):
    """What the live source subscribes to, and how it watches the feed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(NETWORKS["mainnet"], description="REST base URL; the websocket is <url>/ws")
    network: str = Field("mainnet", pattern="^(mainnet|testnet)$")
    coin: str = Field(..., description="the perp, e.g. BTC, or dex:COIN for a HIP-3 perp")
    dex: str = Field("", description="HIP-3 dex ('' = the main dex); taken from coin 'dex:COIN' if unset")
    ref_coin: str | None = Field(None, description="reference asset (lead-lag): source.ref_mid")
    spot_coin: str | None = Field(None, description="spot market (basis): source.spot_mid")
    address: str | None = Field(None, description="with an address: userFills and orderUpdates")
    bbo: bool = Field(True, description="subscribe to bbo (source.bbo)")
    fast_book: bool = Field(False, description="also the 5-level fast l2Book, merged into source.book")
    agg_sig_figs: int | None = Field(None, ge=2, le=5, description="aggregated book (source.book_agg)")
    stale_ms: dict[str, float] = Field(
        default_factory=lambda: {"book": 2000.0},
        description="per stream (book, trades, bbo, ctx, ref, spot): stale after this long without a frame",
    )
    flush_ms: float = Field(5.0, gt=0, description="quiet this long: the last batch is complete")
    funding_poll_s: float = Field(60.0, gt=0, description="predictedFundings REST poll period")
    ping_s: float = Field(20.0, gt=0)
    dead_s: float = Field(60.0, gt=0, description="nothing received this long (pongs included): reconnect")
    backoff_s: float = Field(0.1, gt=0, description="first reconnect wait; doubles")
    backoff_max_s: float = Field(5.0, gt=0)
    max_reconnects: int = Field(10, ge=0, description="failed attempts in a row before a fault")
    duration_s: float | None = Field(None, gt=0, description="stop after this much wall time")
    max_frames: int | None = Field(None, gt=0, description="stop after this many market-data frames")
    rest_timeout_s: float = Field(10.0, gt=0)

    def model_post_init(self, _ctx) -> None:
        from flowmm.sources.live.staleness import STREAMS

        bad = set(self.stale_ms) - set(STREAMS)
        if bad:
            raise UsageError(
                f"unknown stream in stale_ms: {', '.join(sorted(bad))}",
                Location("<options>"),
                hint=f"streams: {', '.join(STREAMS)}",
            )
        if ":" in self.coin and not self.dex:
            object.__setattr__(self, "dex", self.coin.split(":", 1)[0])
