"""Hyperliquid's wire formats: websocket frames and REST bodies to flowmm events."""
