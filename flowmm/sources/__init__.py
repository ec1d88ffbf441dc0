"""Event sources: ``Events`` (in memory / file); live, replay and synthetic come in later issues."""

from flowmm.sources.events import Events

__all__ = ["Events"]
