from __future__ import annotations

import numpy as np
from numba import njit
from pydantic import Field, model_validator

from flowmm.core.node import In, Node, NodeParams, Out
from flowmm.core.ports import OBS_R, OBS_Z

from ._book import book_mid_cover, cover_inflation, imbalance

# packed params: [alpha, sigma, depth_ref_usd, cover_power, obs_index, n_depths, depth_0, ...]
P_ALPHA, P_SIGMA, P_REF_USD, P_POWER, P_OBS, P_N, P_DEPTHS = range(7)
MAX_DEPTHS = 8


@njit(cache=True)
def bim_kernel(now, dt, params, book, book_ticked, bim, covered_bps, depth_usd, obs):
    if not book_ticked:  # nothing new: the same book must not be observed twice
        return EMIT.NONE
    mid, cover = book_mid_cover(book)
    if mid != mid:  # empty, one-sided, crossed or NaN touch: no value
        return EMIT.NONE
    n = int(params[P_N])
    for k in range(n):
        d = params[P_DEPTHS + k]
        dc = min(d, cover)
        b, usd = imbalance(book, mid, dc)
        bim[k] = b
        covered_bps[k] = dc
        depth_usd[k] = usd
    k = int(params[P_OBS])
    b = bim[k]
    if b != b or not (depth_usd[k] > 0.0):
        return EMIT.BIM | EMIT.COVERED_BPS | EMIT.DEPTH_USD
    sigma = params[P_SIGMA]
    obs[OBS_Z] = params[P_ALPHA] * b
    obs[OBS_R] = (
        sigma
        * sigma
        * (params[P_REF_USD] / depth_usd[k])
        * cover_inflation(params[P_DEPTHS + k], covered_bps[k], params[P_POWER])
    )
    return EMIT.ALL


class Bim(Node):
    """Book imbalance at several depths, with the depth each was actually measured at.

    BIM(d) = (V_bid(d) - V_ask(d)) / (V_bid(d) + V_ask(d)), V the summed size of the levels
    within d bps of the book's mid (inclusive; mid = (best bid + best ask) / 2 of this book)
    (seed 000, Component 7, A1). Outputs, one entry per `depths_bps`: `bim`, `covered_bps`
    and `depth_usd` = sum(px * sz) of both sides inside the window.

    Coverage. A side is known up to its deepest listed level (a 20-level book of a dense
    market spans a few bps; the 2024 BTC archive hour tens of bps). The book covers
    c = min(deepest bid, deepest ask) bps from mid, and BIM(d) is measured at
    d_cov = min(d, c) on both sides, never wider on one side (that would bias the
    imbalance); `covered_bps` reports d_cov. A side with fewer levels than the port holds
    is treated the same way (the feed may have truncated it): its deepest level bounds the
    coverage. Wire `source.book_agg` (coarser levels) when the fine book cannot reach d.

    Observation (seed 000 interface; CONVENTIONS: z in bps/s, R in (bps/s)^2), from the
    depth `obs_depth_bps` (default 10 bps, where the seed reads it and the signal is
    strongest):
        z = alpha * BIM(d)
        R = sigma^2 * (depth_ref_usd / depth_usd(d)) * (d / d_cov)^cover_power
    The seed's R = sigma^2 / book_depth_usd is made unit-consistent with a reference depth:
    at depth_ref_usd of book inside the window, R = sigma^2; a deeper book is more
    reliable. The factor (d / d_cov)^cover_power (1 when the book reaches d) inflates R when
    the book covers only part of the window: at the default power 2 a book covering half
    the window counts a quarter as much. The raw value is still the imbalance of what the
    book shows inside d_cov; it never pretends to be BIM(d).

    Defaults (calibration comes later): alpha = 0.06 bps/s, the slope of the next-10-s return
    rate on BIM(10) on the synthetic market with knob `book` = 1 (mixed, 20 seeds: 0.063);
    sigma = 0.2 bps/s, about the sd of a 10-s return rate there; depth_ref_usd = $200k,
    the median USD inside 10 bps of the synthetic HYPE book (the 2024 BTC hour: ~$1.9M,
    so R is ~9x smaller there).

    Edge cases: a step in which the book did not tick emits nothing (the same book is not
    observed twice); an empty, one-sided or crossed book (or a NaN/inf touch) emits nothing
    and leaves every output at its last value; levels with a NaN, zero or negative size
    count as nothing; a depth whose window holds no size (d below the half-spread) gives a
    NaN entry, and when that is the observation depth no `obs` is emitted. Stateless, so the
    first book, zero dt and gaps need nothing special. O(levels x depths) per book."""

    type_name = "features.bim"

    class Params(NodeParams):
        depths_bps: tuple[float, ...] = Field(
            (10.0, 25.0, 50.0),
            min_length=1,
            max_length=MAX_DEPTHS,
            description="depths d in bps of mid at which BIM is measured, one vec entry each",
        )
        obs_depth_bps: float = Field(10.0, description="the depth (one of depths_bps) whose BIM drives obs")
        alpha: float = Field(0.06, description="bps/s of drift per unit of BIM (calibrated later)")
        sigma: float = Field(0.2, gt=0, description="observation noise, bps/s, at depth_ref_usd of book")
        depth_ref_usd: float = Field(
            200_000.0, gt=0, description="USD inside the window at which R = sigma^2 (R ~ 1/depth)"
        )
        cover_power: float = Field(
            2.0, ge=0, description="R is multiplied by (d / d_covered)^cover_power when the book is short"
        )

        @model_validator(mode="after")
        def _depths(self):
            if any(not (d > 0.0 and d < float("inf")) for d in self.depths_bps):
                raise ValueError(f"depths_bps must be positive and finite, got {list(self.depths_bps)}")
            if len(set(self.depths_bps)) != len(self.depths_bps):
                raise ValueError(f"depths_bps has a repeated depth: {list(self.depths_bps)}")
            if self.obs_depth_bps not in self.depths_bps:
                raise ValueError(
                    f"obs_depth_bps {self.obs_depth_bps} is not one of depths_bps {list(self.depths_bps)}"
                )
            return self

        @property
        def n_depths(self) -> int:
            return len(self.depths_bps)

    inputs = {"book": In("book", doc="L2 book (source.book, or source.book_agg for deeper windows)")}
    outputs = {
        "bim": Out("vec", size="n_depths", doc="BIM per depth in [-1, 1]; NaN = no size inside the window"),
        "covered_bps": Out("vec", size="n_depths", doc="depth actually measured per depth, bps (<= d)"),
        "depth_usd": Out("vec", size="n_depths", doc="USD of both sides inside each window"),
        "obs": Out("obs", doc="z = alpha BIM(obs_depth) bps/s, R (bps/s)^2 (depth and coverage scaled)"),
    }
    tier, trigger = "hot", "cycle"
    kernel = bim_kernel

    def pack_params(self) -> np.ndarray:
        """[alpha, sigma, depth_ref_usd, cover_power, obs_index, n_depths, depth_0, depth_1, ...]."""
        p = self.params
        head = [
            p.alpha,
            p.sigma,
            p.depth_ref_usd,
            p.cover_power,
            float(p.depths_bps.index(p.obs_depth_bps)),
            float(len(p.depths_bps)),
        ]
        return np.array(head + list(p.depths_bps), dtype=np.float64)


EMIT = Bim.EMIT  # the kernel's named emit bits (compile-time constants)
