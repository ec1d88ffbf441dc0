"""Event sources: ``Events`` (in memory / file) and ``flowmm.sources.synthetic``; replay and live come later."""

from flowmm.sources.events import Events

__all__ = ["Events"]
