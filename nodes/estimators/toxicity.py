"""estimators.toxicity: Beta posterior of the informed fraction of our fills (seed 004 §1C)."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numba import njit
from pydantic import Field, model_validator

from flowmm.core.node import In, Node, NodeParams, Out
from flowmm.core.ports import ASK_PX, BID_PX, MK_AS_BPS, MK_HORIZON_S, MK_SIDE

# packed params (Params field order)
P_H, P_A0, P_B0, P_HI, P_LO, P_DF, P_DEVERY, P_SPREAD_HL, P_SPREAD_FB, P_SIDE = range(10)
# `side` packed as the fill side it keeps: 0 both, +1 our bid fills, -1 our ask fills
SIDES = {"both": 0.0, "bid": 1.0, "ask": -1.0}
# fs (float64 state): evidence of each kind beyond the prior (as of ts[T_REF]); smoothed spread
# (bps) and the last instantaneous spread
F_DI, F_DU, F_SM, F_SLAST = range(4)
# ts (int64 state): time the evidence refers to; time of the smoothed spread; seeded (0/1)
T_REF, T_SPREAD, T_SEEDED = range(3)


@njit(cache=True)
def as_weight(as_bps, spread_bps, hi, lo):
    """Informed weight of one fill: 1 above hi*spread, 0 below lo*spread, linear in between."""
    if as_bps >= hi * spread_bps:
        return 1.0
    if as_bps <= lo * spread_bps:
        return 0.0
    return (as_bps - lo * spread_bps) / ((hi - lo) * spread_bps)


@njit(cache=True)
def toxicity_kernel(
    now, dt, params, fs, ts,
    markouts_t, markouts_r, markouts_start, markouts_end,
    book, book_ticked,
    spread_bps, spread_bps_ticked,
    clock, clock_ticked,
    toxicity, alpha_informed, alpha_uninformed, toxicity_sd, spread_used,
):  # fmt: skip
    lam = -math.log(params[P_DF]) / params[P_DEVERY]  # decay rate toward the prior, 1/s
    first = ts[T_SEEDED] == 0
    if first:
        ts[T_SEEDED] = 1
        ts[T_REF] = now
        ts[T_SPREAD] = now
    mask = EMIT.NONE
    # -- spread: time-weighted EW mean of the piecewise-constant touch spread ---------------
    if fs[F_SLAST] == fs[F_SLAST]:
        el = (now - ts[T_SPREAD]) * 1e-9
        if el > 0.0:
            hl = params[P_SPREAD_HL]
            g = math.exp(-math.log(2.0) * el / hl) if hl > 0.0 else 0.0
            fs[F_SM] = fs[F_SLAST] + (fs[F_SM] - fs[F_SLAST]) * g
    ts[T_SPREAD] = now
    s = np.nan
    if spread_bps_ticked and spread_bps[0] > 0.0 and spread_bps[0] < np.inf:
        s = spread_bps[0]
    elif book_ticked:
        bid = book[0, BID_PX]
        ask = book[0, ASK_PX]
        if bid > 0.0 and ask > bid and ask < np.inf:
            s = (ask - bid) / (0.5 * (ask + bid)) * 1e4
    if s == s:
        if fs[F_SLAST] != fs[F_SLAST] or params[P_SPREAD_HL] == 0.0:
            fs[F_SM] = s  # the first spread seeds the mean
        fs[F_SLAST] = s
        spread_used[0] = fs[F_SM]
        mask |= EMIT.SPREAD_USED
    spread = fs[F_SM]
    if not (spread > 0.0):
        spread = params[P_SPREAD_FB]  # NaN unless set: markouts wait for a spread
    # -- markouts at the chosen horizon: each fill counts once, at its record's time ---------
    applied = False
    cap = markouts_t.shape[0]
    for i in range(markouts_start, markouts_end):
        row = i % cap
        if not (abs(markouts_r[row, MK_HORIZON_S] - params[P_H]) <= 1e-9):
            continue
        if params[P_SIDE] != 0.0 and markouts_r[row, MK_SIDE] != params[P_SIDE]:
            continue  # a one-sided posterior (the legacy's bid_toxicity / ask_toxicity)
        a = markouts_r[row, MK_AS_BPS]
        if a != a or not (spread > 0.0):
            continue
        w = as_weight(a, spread, params[P_HI], params[P_LO])
        t = markouts_t[row]
        if t > ts[T_REF]:  # bring the evidence to the record's time, then add it
            f = math.exp(-lam * (t - ts[T_REF]) * 1e-9)
            fs[F_DI] *= f
            fs[F_DU] *= f
            ts[T_REF] = t
            k = 1.0
        else:  # a record older than the evidence enters already decayed
            k = math.exp(-lam * (ts[T_REF] - t) * 1e-9)
        fs[F_DI] += w * k
        fs[F_DU] += (1.0 - w) * k
        applied = True
    # -- decay to now ----------------------------------------------------------------------
    if now > ts[T_REF]:
        f = math.exp(-lam * (now - ts[T_REF]) * 1e-9)
        fs[F_DI] *= f
        fs[F_DU] *= f
        ts[T_REF] = now
    ai = params[P_A0] + fs[F_DI]
    au = params[P_B0] + fs[F_DU]
    n = ai + au
    toxicity[0] = ai / n
    alpha_informed[0] = ai
    alpha_uninformed[0] = au
    toxicity_sd[0] = math.sqrt(ai * au / (n * n * (n + 1.0)))
    if first or applied or clock_ticked:
        mask |= EMIT.TOXICITY | EMIT.ALPHA_INFORMED | EMIT.ALPHA_UNINFORMED | EMIT.TOXICITY_SD
    return mask


class Toxicity(Node):
    """Toxicity: the Beta posterior of the fraction pi of our fills that were informed.

    Seed 004, Stage 1C. pi ~ Beta(alpha_informed, alpha_uninformed), conjugate to one
    Bernoulli "informed?" per fill, updated from the fill's adverse selection AS_bps
    (exec.markouts, AS = -markout, positive = adverse; CONVENTIONS.md) relative to the touch
    spread S (full spread ask - bid, bps of mid):

        w = 1                                  if AS >= informed_mult S     (2 S: informed)
        w = 0                                  if AS <= uninformed_mult S   (0.5 S: noise)
        w = (AS - 0.5 S) / (1.5 S)             in between (fractional, continuous at both ends)
        alpha_informed += w,  alpha_uninformed += 1 - w

    (in general (AS - lo S)/((hi - lo) S)). toxicity = alpha_informed / (alpha_informed +
    alpha_uninformed), the posterior mean (the seed calls it MAP; it is the mean), and
    toxicity_sd the posterior standard deviation sqrt(ab / ((a+b)^2 (a+b+1))).

    Choices where the seed is open:

    * Horizon: exec.markouts carries one record per fill and horizon (1, 5, 30, 60 s); only
      records with horizon_s == `horizon_s` count, so each fill counts once. Default 5 s: the
      informed move has begun (1 s is mostly the spread and queue noise) and the posterior hears
      of a fill 5 s after it (30 s would come too late for the sweeps the seed is about).
    * Spread: the `spread_bps` input (an f64 in bps) when it ticks with a positive value, else
      level 0 of `book` (source.book or source.bbo). The classification uses a time-weighted EW
      mean of the piecewise-constant spread (half-life `spread_half_life_s`, 0 = the last
      spread): the book right after a sweep is gapped, and an instantaneous spread would raise
      the informed threshold exactly when flow is informed. Before any spread, markouts are
      skipped unless `spread_fallback_bps` is set.
    * Decay (seed: every 30 s, both alphas x 0.95, with prior mass so they cannot collapse):
      the evidence beyond the prior decays continuously toward the prior at the same rate,
      lambda = -ln(decay_factor)/decay_every_s (0.95 per 30 s: half-life 405 s):

          alpha_informed = prior_informed + sum_i w_i exp(-lambda (t - t_i)),  likewise uninformed,

      each markout entering at its own record time t_i (results do not depend on when the node
      runs, and there is no 30-s sawtooth or grid phase). With n fills per second the posterior
      holds ~n/lambda effective fills. Wire `clock: source.clock` to refresh the decayed values
      on cycles without markouts.
    * Prior: Beta(1, 3), a quarter of fills informed, worth four fills.
    * Side (`side`): "both" (default, seed 004) counts every fill; "bid" only our bid fills
      (markout side +1), "ask" only our ask fills: the legacy system tracked `bid_toxicity` and
      `ask_toxicity` apart (seed 000 RC3 logs bid_toxicity 0.52-0.67 with its bid_size_mult;
      the RFC's Component 2 replaces "bid_toxicity/ask_toxicity separate tracking"), so
      graphs/legacy.yaml runs one posterior per side.

    Emission: the posterior outputs on the first run, when a markout was applied and when the
    clock ticks; `spread_used` (the smoothed spread, bps) when a spread arrives. Edge cases:
    markouts of other horizons, NaN AS, or no spread yet are skipped; a record stamped after
    now enters undecayed; zero dt decays nothing; a one-sided or crossed book is not a spread.
    Event-triggered (posterior updates per event, seed 004 §6)."""

    type_name = "estimators.toxicity"

    class Params(NodeParams):
        horizon_s: float = Field(5.0, gt=0, description="markout horizon used, s (1, 5, 30 or 60)")
        prior_informed: float = Field(1.0, gt=0, description="prior alpha_informed (pseudo-fills)")
        prior_uninformed: float = Field(3.0, gt=0, description="prior alpha_uninformed (pseudo-fills)")
        informed_mult: float = Field(2.0, gt=0, description="AS above this many spreads: informed")
        uninformed_mult: float = Field(0.5, ge=0, description="AS below this many spreads: uninformed")
        decay_factor: float = Field(0.95, gt=0, lt=1, description="evidence kept per decay_every_s")
        decay_every_s: float = Field(30.0, gt=0, description="period of decay_factor, s")
        spread_half_life_s: float = Field(60.0, ge=0, description="half-life of the spread mean, s (0: last)")
        spread_fallback_bps: float | None = Field(
            None, gt=0, description="spread used before any book or spread input, bps (None: skip)"
        )
        side: Literal["both", "bid", "ask"] = Field(
            "both", description="fills counted: both, our bid fills only, or our ask fills only"
        )

        @model_validator(mode="after")
        def _ordered(self):
            if self.uninformed_mult >= self.informed_mult:
                raise ValueError(
                    f"uninformed_mult {self.uninformed_mult} must be below informed_mult {self.informed_mult}"
                )
            return self

    inputs = {
        "markouts": In("markouts", doc="exec.markouts"),
        "book": In("book", optional=True, doc="source.book or source.bbo: the touch spread"),
        "spread_bps": In("f64", optional=True, doc="a spread in bps (overrides the book when valid)"),
        "clock": In("f64", optional=True, doc="wire source.clock to refresh the decay every cycle"),
    }
    outputs = {
        "toxicity": Out("f64", doc="posterior mean of the informed fraction"),
        "alpha_informed": Out("f64", doc="Beta alpha (informed pseudo-fills)"),
        "alpha_uninformed": Out("f64", doc="Beta beta (uninformed pseudo-fills)"),
        "toxicity_sd": Out("f64", doc="posterior standard deviation"),
        "spread_used": Out("f64", doc="the smoothed spread the classification uses, bps"),
    }
    tier, trigger = "hot", "event"
    kernel = toxicity_kernel

    def pack_params(self) -> np.ndarray:
        """Field order; `side` as the fill side it keeps (SIDES), None as NaN."""
        p = self.params
        vals = [SIDES[p.side] if n == "side" else getattr(p, n) for n in type(p).model_fields]
        return np.array([math.nan if v is None else float(v) for v in vals], dtype=np.float64)

    def init_state(self):
        fs = np.zeros(4)
        fs[F_SM] = np.nan
        fs[F_SLAST] = np.nan
        return fs, np.zeros(3, np.int64)  # see F_* / T_* above


EMIT = Toxicity.EMIT  # the kernel's named emit bits (compile-time constants)
