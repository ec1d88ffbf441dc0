"""HTTP to Hyperliquid: signed ``/exchange`` actions and ``/info`` queries.

Signing is the SDK's own (``hyperliquid.utils.signing.sign_l1_action``: msgpack of the action,
the nonce, keccak, the EIP-712 "Agent" phantom message, ``source`` ``a`` on mainnet and ``b``
elsewhere), with our nonce (:class:`~flowmm.execution.hyperliquid.keys.NonceSource`) instead of
the SDK's millisecond clock. Only the sender thread of the broker calls :meth:`exchange`; one
thread, so nonces also reach the exchange in increasing order.

A transport failure or a non-200 answer comes back as ``{"status": "err", "response": text}``
(the exchange's own error shape), never as an exception carrying the request: the request
holds a signature, and nothing here ever holds the key.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from hyperliquid.utils.signing import sign_l1_action

from flowmm.execution.hyperliquid.keys import Signer


class ExchangeClient:
    def __init__(self, url: str, signer: Signer, *, mainnet: bool, timeout_s: float = 5.0):
        self.url = url.rstrip("/")
        self.signer = signer
        self.mainnet = mainnet
        self.timeout_s = timeout_s
        self.nonces_sent: list[int] = []  # every nonce signed, in order (tests, summary)

    def __repr__(self) -> str:
        return f"ExchangeClient({self.url}, {self.signer!r})"

    def sign(self, action: dict) -> dict:
        """The ``/exchange`` payload of ``action``, signed with the next nonce."""
        nonce = self.signer.nonces.next()
        sig = sign_l1_action(self.signer.wallet, action, None, nonce, None, self.mainnet)
        self.nonces_sent.append(nonce)
        return {"action": action, "nonce": nonce, "signature": sig, "vaultAddress": None}

    def exchange(self, action: dict) -> dict:
        return self._post("/exchange", self.sign(action))

    def info(self, request: dict) -> Any:
        return self._post("/info", request)

    def _post(self, path: str, body: dict) -> Any:
        req = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")[:300]
            return {"status": "err", "response": f"HTTP {exc.code}: {text}"}
        except (OSError, ValueError) as exc:
            return {"status": "err", "response": f"{type(exc).__name__}: {exc}"}
