"""The signing key: read from the environment only, never shown, and the per-signer nonce.

The secret key is read from ``FLOWMM_HL_SECRET_KEY`` (an agent / API wallet key is the
recommended kind: it can trade but not withdraw). The account the orders are for is
``FLOWMM_HL_ACCOUNT`` when set (an agent wallet trades for its master account), else the key's
own address. The key lives in one ``eth_account`` object held by :class:`Signer`; ``repr`` and
``str`` of a ``Signer`` show the address only, nothing flowmm prints, logs, writes or raises
contains the key, and errors about a bad key never quote it.

**Nonces.** Hyperliquid keeps, per signer, the 100 highest nonces seen; a new one must be
larger than the smallest of them and within (now - 2 days, now + 1 day) ms. The SDK uses the
wall-clock millisecond, so two requests signed in the same millisecond (a batch split in two,
a cancel right behind a place) collide and the second is refused. :class:`NonceSource` hands
out ``max(now_ms, last + 1)``: strictly increasing, never far ahead of the clock.
"""

from __future__ import annotations

import os
import re
import threading
import time

from eth_account import Account
from eth_account.signers.local import LocalAccount

from flowmm.errors import Location, UsageError

KEY_ENV = "FLOWMM_HL_SECRET_KEY"
ACCOUNT_ENV = "FLOWMM_HL_ACCOUNT"
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


class NonceSource:
    """Strictly increasing millisecond nonces for one signer (thread-safe)."""

    def __init__(self, clock_ms=None):
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(int(self._clock_ms()), self._last + 1)
            return self._last

    @property
    def last(self) -> int:
        return self._last


class Signer:
    """The wallet that signs (held privately), the account it trades for, and its nonces."""

    def __init__(self, wallet: LocalAccount, account: str | None = None):
        self._wallet = wallet
        self.signer_address = wallet.address
        self.account = account or wallet.address
        self.nonces = NonceSource()

    @property
    def wallet(self) -> LocalAccount:
        """The eth_account object, for the SDK's signing functions only."""
        return self._wallet

    def __repr__(self) -> str:
        return f"Signer(account={self.account}, signer={self.signer_address}, key=<redacted>)"

    __str__ = __repr__

    def __reduce__(self):  # no pickling (a pickle would carry the key to disk)
        raise TypeError("a Signer cannot be pickled")


def load_signer(environ: dict[str, str] | None = None) -> Signer:
    """The signer from ``FLOWMM_HL_SECRET_KEY`` (and ``FLOWMM_HL_ACCOUNT``); a ``UsageError``
    that names the variable, never its value, when it is missing or malformed."""
    env = os.environ if environ is None else environ
    where = Location("<environment>")
    raw = env.get(KEY_ENV, "").strip()
    if not raw:
        raise UsageError(
            f"--execute needs a key in the environment variable {KEY_ENV}",
            where,
            hint="an API (agent) wallet key from app.hyperliquid.xyz/API; never put it in a file or a flag",
        )
    if not _KEY.match(raw):
        raise UsageError(f"{KEY_ENV} is not a 32-byte hex key", where)
    try:
        wallet = Account.from_key(raw)
    except (ValueError, TypeError):
        raise UsageError(f"{KEY_ENV} is not a valid secp256k1 key", where) from None
    account = env.get(ACCOUNT_ENV, "").strip() or None
    if account is not None and not _ADDRESS.match(account):
        raise UsageError(f"{ACCOUNT_ENV} is not a 0x address (40 hex digits)", where)
    return Signer(wallet, account)
