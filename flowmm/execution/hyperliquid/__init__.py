"""Real execution on Hyperliquid (``flowmm run --source live --execute``); docs/runbook.md."""

from flowmm.execution.hyperliquid.broker import HyperliquidBroker, resolve_market
from flowmm.execution.hyperliquid.config import ExecConfig, resolve_exec_network
from flowmm.execution.hyperliquid.keys import ACCOUNT_ENV, KEY_ENV, NonceSource, Signer, load_signer

__all__ = [
    "ACCOUNT_ENV",
    "KEY_ENV",
    "ExecConfig",
    "HyperliquidBroker",
    "NonceSource",
    "Signer",
    "load_signer",
    "resolve_exec_network",
    "resolve_market",
]
