"""Hyperliquid's rate limits, kept on the client side so the exchange never has to enforce them.

* **IP weight**: 1200 per minute, refilled continuously here (a token bucket of 1200 at
  20/s). An exchange request of ``n`` orders weighs ``1 + n // 40``, an ``info`` request 20
  (``wire.ip_weight``). The sender thread waits for the weight before a request: the engine
  never does.
* **Address budget**: one request per 1 USDC traded since the address's inception, plus an
  initial buffer of 10 000; every order, modify and cancel of a batch counts as one. With the
  budget spent, places and modifies are refused (counted) while cancels still go out: the
  exchange allows cancels past the limit (up to ``min(limit + 100 000, 2 limit)``), and a
  market maker that cannot cancel is the dangerous one.

The reconciler's own token bucket (``max_actions_per_s``, ``burst``) is the first and finer
throttle; these two are the exchange's hard limits behind it.
"""

from __future__ import annotations

import threading
import time


class RateLimiter:
    def __init__(self, ip_per_min: float = 1200.0, address_buffer: float = 10_000.0, clock=time.monotonic):
        self.capacity = ip_per_min
        self.rate = ip_per_min / 60.0
        self.tokens = ip_per_min
        self.clock = clock
        self._t = clock()
        self.address_budget = address_buffer
        self.address_used = 0.0
        self.refused = 0
        self.waited_s = 0.0
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._t) * self.rate)
        self._t = now

    def ip_wait(self, weight: float) -> float:
        """Seconds to wait before a request of ``weight`` may go (0: now); takes the weight."""
        with self._lock:
            self._refill()
            self.tokens -= weight
            wait = max(0.0, -self.tokens / self.rate)
            self.waited_s += wait
            return wait

    def address_allows(self, n: int, cancel: bool = False) -> bool:
        """Whether ``n`` more address requests fit; counts them when they do (cancels always)."""
        with self._lock:
            if not cancel and self.address_used + n > self.address_budget:
                self.refused += n
                return False
            self.address_used += n
            return True

    def traded(self, usdc: float) -> None:
        """Volume traded raises the address budget by one request per USDC."""
        with self._lock:
            self.address_budget += abs(usdc)

    def stats(self) -> dict[str, float]:
        return {"address_used": self.address_used, "address_budget": round(self.address_budget, 2),
                "refused": self.refused, "ip_waited_s": round(self.waited_s, 3)}  # fmt: skip
