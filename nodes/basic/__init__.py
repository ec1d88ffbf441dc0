"""General-purpose nodes: arithmetic and smoothing that are not market concepts."""
