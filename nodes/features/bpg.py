from __future__ import annotations

from numba import njit
from pydantic import Field, model_validator

from flowmm.core.node import In, Node, NodeParams, Out
from flowmm.core.ports import OBS_R, OBS_Z

from ._book import book_mid_cover, cover_inflation, imbalance

P_SHALLOW, P_DEEP, P_ALPHA, P_SIGMA, P_POWER = range(5)


@njit(cache=True)
def bpg_kernel(now, dt, params, book, book_ticked, bpg, covered_bps, obs):
    if not book_ticked:  # nothing new: the same book must not be observed twice
        return EMIT.NONE
    mid, cover = book_mid_cover(book)
    if mid != mid:  # empty, one-sided or crossed: no value
        return EMIT.NONE
    ds = min(params[P_SHALLOW], cover)
    dl = min(params[P_DEEP], cover)
    covered_bps[0] = ds
    covered_bps[1] = dl
    if not (dl > ds):  # the book does not reach past the shallow window: BPG = 0 by construction
        return EMIT.COVERED_BPS
    b_s, _ = imbalance(book, mid, ds)
    b_l, _ = imbalance(book, mid, dl)
    if b_s != b_s or b_l != b_l:
        return EMIT.COVERED_BPS
    bpg[0] = b_s - b_l
    sigma = params[P_SIGMA]
    obs[OBS_Z] = params[P_ALPHA] * bpg[0]
    obs[OBS_R] = (
        sigma
        * sigma
        * cover_inflation(params[P_SHALLOW], ds, params[P_POWER])
        * cover_inflation(params[P_DEEP], dl, params[P_POWER])
    )
    return EMIT.ALL


class Bpg(Node):
    """Book pressure gradient: BPG = BIM(shallow) - BIM(deep), default BIM(10) - BIM(50).

    BIM as in `features.bim` (levels within d bps of the book's mid) (seed 000, Component 7,
    A2). BPG > 0: support concentrated near the touch; BPG < 0: support sits deep.
    Each window is measured at d_cov = min(d, coverage) (see `features.bim`); `covered_bps`
    = [shallow, deep] windows actually used. When the book does not reach past the shallow
    window the two windows are the same and BPG is 0 by construction, not a measurement: no
    `bpg` and no `obs` are emitted (only `covered_bps`). This is the usual case for a dense
    book whose 20 levels span a few bps; wire `source.book_agg` for such a market.

    Observation (seed 000 interface; z bps/s, R (bps/s)^2):
        z = alpha * BPG
        R = sigma^2 * (d_s / d_s,cov)^cover_power * (d_l / d_l,cov)^cover_power
    CONVENTIONS.md corrects the seed here: the seed's z = -BPG * sign(q) * alpha makes the
    drift observation depend on our inventory; the drift filter gets alpha * BPG with sign
    and size from calibration (this node has no position input), and any inventory-signed
    use of BPG belongs in quoting. The default alpha is positive: on the synthetic market
    (knob `book`) liquidity leaves the touch on the side the price moves toward, and
    BIM(10) - BIM(50) correlates positively with the next 10 s return (slope 0.072 bps/s
    per unit over 20 seeds, the default alpha 0.07); the seed's
    "fragile support" reading would give it the other sign, which calibration decides.
    R keeps the seed's sigma^2 (no depth scaling) times the coverage factors.

    Edge cases: a step without a new book emits nothing; an empty, one-sided or crossed book
    emits nothing; a window with no size emits only `covered_bps`. Stateless, so the first
    book, zero dt and gaps need nothing special. O(levels) per book."""

    type_name = "features.bpg"

    class Params(NodeParams):
        shallow_bps: float = Field(10.0, gt=0, description="depth of the near window, bps of mid")
        deep_bps: float = Field(50.0, gt=0, description="depth of the far window, bps of mid (> shallow)")
        alpha: float = Field(0.07, description="bps/s of drift per unit of BPG (sign from calibration)")
        sigma: float = Field(0.2, gt=0, description="observation noise, bps/s")
        cover_power: float = Field(
            2.0, ge=0, description="R is multiplied by (d / d_covered)^cover_power per short window"
        )

        @model_validator(mode="after")
        def _order(self):
            if not self.deep_bps > self.shallow_bps:
                raise ValueError(f"deep_bps ({self.deep_bps}) must exceed shallow_bps ({self.shallow_bps})")
            return self

    inputs = {"book": In("book", doc="L2 book (source.book, or source.book_agg to reach deep_bps)")}
    outputs = {
        "bpg": Out("f64", doc="BIM(shallow) - BIM(deep), in [-2, 2]"),
        "covered_bps": Out("vec", size=2, doc="[shallow, deep] windows actually measured, bps"),
        "obs": Out("obs", doc="z = alpha BPG bps/s (no inventory), R (bps/s)^2"),
    }
    tier, trigger = "hot", "cycle"
    kernel = bpg_kernel


EMIT = Bpg.EMIT  # the kernel's named emit bits (compile-time constants)
