"""``as2008``: the setup of Avellaneda & Stoikov (2008), "High-frequency trading in a limit order
book", in the paper's own units.

An arithmetic Brownian mid on a binomial grid, ``s_{k+1} = s_k ± sigma*sqrt(dt)`` with equal
probability (s0 = 100, sigma = 2, T = 1, dt = 0.005: 200 steps), and no order book: our quotes
fill by the intensity model ``lambda(delta) = A*exp(-k*delta)`` (A = 140, k = 1.5, one unit per
fill), which the paper broker applies when the source says ``fill_model = "intensity"``. One
unit of the paper's time is one second of event time; the mid arrives as a ``bbo`` with
bid = ask = s every dt (sizes 0), so ``source.mid`` is s and the book stays empty (nothing a
post-only check could cross).
"""

from __future__ import annotations

import numpy as np

from flowmm.core import events as E
from flowmm.core.events import EventTable

START_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z, a round origin for event time


class AS2008:
    """The as2008 scenario as an event source (deterministic per seed)."""

    name = "synthetic"
    scenario = "as2008"
    fill_model = "intensity"  # read by flowmm.execution.paper.paper_broker_for
    description = (
        "Avellaneda & Stoikov (2008): binomial mid s0=100, sigma=2, T=1, dt=0.005, A=140, k=1.5, no book"
    )

    def __init__(self, seed: int = 0, duration: str | float | None = None, *, s0: float = 100.0,
                 sigma: float = 2.0, T: float = 1.0, dt: float = 0.005):  # fmt: skip
        from flowmm.sources.synthetic.scenario import parse_duration

        self.seed = seed
        self.T = parse_duration(duration) if duration is not None else T
        self.s0, self.sigma, self.dt = s0, sigma, dt
        self.n_steps = int(round(self.T / dt))
        self.start_ns = START_NS
        self.end_time = START_NS + int(round(self.n_steps * dt * 1e9))

    def provides(self) -> set[str]:
        return {"source.bbo", "source.mid", "source.clock", "source.timer"}

    def mids(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        steps = np.where(rng.random(self.n_steps) < 0.5, -1.0, 1.0) * self.sigma * np.sqrt(self.dt)
        return self.s0 + np.concatenate([[0.0], np.cumsum(steps)])

    def events(self) -> EventTable:
        s = self.mids()
        n = len(s)
        t = self.start_ns + np.rint(np.arange(n) * self.dt * 1e9).astype(np.int64)
        payload = np.zeros((n, 6))
        payload[:, 0] = s  # bid px
        payload[:, 3] = s  # ask px
        return EventTable(
            t, np.full(n, E.BBO, np.int64), np.arange(n + 1, dtype=np.int64) * 6, payload.ravel()
        )

    def chunks(self):
        yield self.events()
