"""Event sources: ``Events`` (in memory / file), ``flowmm.sources.synthetic``; replay, live later."""

from flowmm.sources.events import Events

__all__ = ["Events"]
