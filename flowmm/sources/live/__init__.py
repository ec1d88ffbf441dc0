"""The live Hyperliquid feed as a source (``flowmm run GRAPH --source live``); docs/live.md."""

from flowmm.sources.live.config import LiveConfig, reads_stream, resolve_network
from flowmm.sources.live.guard import StaleGuard, guard_for
from flowmm.sources.live.source import Live

__all__ = ["Live", "LiveConfig", "StaleGuard", "guard_for", "reads_stream", "resolve_network"]
