"""estimators.flow: directional arrival rates kappa_buy / kappa_sell and the flow observation."""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from pydantic import Field

from flowmm.core.node import In, Node, NodeParams, Out
from flowmm.core.ports import FI_PX, FI_SIDE, OBS_R, OBS_Z, TR_PX, TR_SIDE

# packed params (Params field order)
P_TAU, P_PRIOR, P_PRIOR_S, P_PER_PRINT, P_SCALE, P_SIGMA = range(6)
# fs (float64 state): EW counts per aggressor side (0 buy, 1 sell), EW exposure (s), as of ts[T_REF];
# the open order of the tape and of our fills (aggressor side, last price)
F_N, F_E = 0, 2
F_TR_SIDE, F_TR_PX, F_FI_SIDE, F_FI_PX = 3, 4, 5, 6
# ts (int64 state)
T_REF, T_SEEDED, T_TR, T_FI = range(4)


@njit(cache=True)
def _new_order(t, side, px, t_last, side_last, px_last, per_print):
    """False when the print continues the open order: same time and side, same or worse price."""
    if per_print:
        return True
    return not (t == t_last and side == side_last and (px - px_last) * side >= 0.0)


@njit(cache=True)
def _count(fs, now, t, side, tau):
    """Add one event of aggressor side ``side`` at time ``t``, decayed to ``now``."""
    e = (now - t) * 1e-9
    if e < 0.0:  # stamped after now: enters undecayed
        e = 0.0
    fs[F_N + (0 if side > 0.0 else 1)] += math.exp(-e / tau)


@njit(cache=True)
def flow_kernel(
    now, dt, params, fs, ts,
    trades_t, trades_r, trades_start, trades_end,
    fills_t, fills_r, fills_start, fills_end,
    clock, clock_ticked,
    kappa_buy, kappa_sell, kappa_total, flow_imbalance, informed_fraction, obs,
):  # fmt: skip
    tau = params[P_TAU]
    per_print = params[P_PER_PRINT] > 0.5
    tr_cap = trades_t.shape[0]
    fi_cap = fills_t.shape[0]
    if ts[T_SEEDED] == 0:
        # the history starts at the first run, or at the earliest event of its first batch
        t0 = now
        for i in range(trades_start, trades_end):
            if trades_t[i % tr_cap] < t0:
                t0 = trades_t[i % tr_cap]
        for i in range(fills_start, fills_end):
            if fills_t[i % fi_cap] < t0:
                t0 = fills_t[i % fi_cap]
        ts[T_SEEDED] = 1
        ts[T_REF] = t0
        fs[F_N] = params[P_PRIOR] * params[P_PRIOR_S]  # Gamma prior: kappa_prior * prior_s events ...
        fs[F_N + 1] = params[P_PRIOR] * params[P_PRIOR_S]
        fs[F_E] = params[P_PRIOR_S]  # ... in prior_s seconds of pseudo-exposure, forgotten like data
    el = (now - ts[T_REF]) * 1e-9
    if el > 0.0:  # O(1) decay to now, whatever the gap
        f = math.exp(-el / tau)
        fs[F_N] *= f
        fs[F_N + 1] *= f
        fs[F_E] = fs[F_E] * f - tau * math.expm1(-el / tau)
        ts[T_REF] = now
    n_new = 0
    for i in range(trades_start, trades_end):
        row = i % tr_cap
        px = trades_r[row, TR_PX]
        side = trades_r[row, TR_SIDE]
        if not (px > 0.0 and (side > 0.0 or side < 0.0)):
            continue  # NaN or malformed print
        s = 1.0 if side > 0.0 else -1.0
        t = trades_t[row]
        new = _new_order(t, s, px, ts[T_TR], fs[F_TR_SIDE], fs[F_TR_PX], per_print)
        ts[T_TR] = t
        fs[F_TR_SIDE] = s
        fs[F_TR_PX] = px
        if new:
            _count(fs, now, t, s, tau)
            n_new += 1
    for i in range(fills_start, fills_end):
        row = i % fi_cap
        px = fills_r[row, FI_PX]
        side = fills_r[row, FI_SIDE]
        if not (px > 0.0 and (side > 0.0 or side < 0.0)):
            continue
        s = -1.0 if side > 0.0 else 1.0  # our bid filled (+1) = a seller arrived
        t = fills_t[row]
        new = _new_order(t, s, px, ts[T_FI], fs[F_FI_SIDE], fs[F_FI_PX], per_print)
        ts[T_FI] = t
        fs[F_FI_SIDE] = s
        fs[F_FI_PX] = px
        if new:
            _count(fs, now, t, s, tau)
            n_new += 1
    ex = fs[F_E]
    if not (ex > 0.0):
        return EMIT.NONE  # no prior and no elapsed time yet: no rate
    kb = fs[F_N] / ex
    ks = fs[F_N + 1] / ex
    tot = kb + ks
    kappa_buy[0] = kb
    kappa_sell[0] = ks
    kappa_total[0] = tot
    if not (tot > 0.0):
        return (
            EMIT.KAPPA_BUY | EMIT.KAPPA_SELL | EMIT.KAPPA_TOTAL
        )  # no events and no prior: imbalance undefined
    imb = (ks - kb) / tot
    flow_imbalance[0] = imb
    informed_fraction[0] = abs(imb)
    if n_new == 0:
        return (
            EMIT.KAPPA_BUY | EMIT.KAPPA_SELL | EMIT.KAPPA_TOTAL | EMIT.FLOW_IMBALANCE | EMIT.INFORMED_FRACTION
        )  # no new event: the observation carries no new information
    sigma = params[P_SIGMA]
    obs[OBS_Z] = -params[P_SCALE] * imb
    obs[OBS_R] = sigma * sigma / tot
    return EMIT.ALL


class Flow(Node):
    """Directional arrival rates kappa_buy, kappa_sell (events/s), imbalance and the flow observation.

    Seed 000, Component 2 (Directional Flow Model) and Component 5 (kappa_buy, kappa_sell
    online over ~120 s, cold start at kappa_prior). These are arrival *rates*; the GLFT
    depth-decay k_bid, k_ask is `estimators.kappa` (CONVENTIONS.md keeps the two apart).

    Per aggressor side (buy = buyers lifting the ask, sell = sellers hitting the bid):

        kappa_side(t) = N_side(t) / E(t)
        N_side(t) = kappa_prior * prior_s * exp(-(t - t0)/tau) + sum_{t_i <= t, side} exp(-(t - t_i)/tau)
        E(t)      = prior_s * exp(-(t - t0)/tau) + tau * (1 - exp(-(t - t0)/tau))

    the exponentially weighted event count over the exponentially weighted exposure (seconds
    observed), i.e. the posterior mean of a Poisson rate under a Gamma(kappa_prior * prior_s,
    prior_s) prior whose data and prior are both forgotten at rate 1/tau. At t0 it is
    kappa_prior (Component 5's cold start, no warm-up); once t - t0 >> tau it is the plain
    EW rate sum w_i / tau, unbiased for a Poisson process. Derived (Component 2):

        kappa_total = kappa_buy + kappa_sell
        flow_imbalance = (kappa_sell - kappa_buy) / kappa_total   in [-1, 1], > 0 = selling dominates
        informed_fraction = |flow_imbalance|                      (VPIN-like)
        obs: z_flow = -scale * flow_imbalance (bps/s, bearish < 0),  R_flow = sigma_flow^2 / kappa_total

    Choices where the seed is open or wrong:

    * The seed writes kappa_sell = sum w_i 1[bid] / sum w_i, a share of events, not a rate (it
      could not be a GLFT arrival rate nor make kappa_total a total intensity); the rate above
      divides by the exposure instead. The share is kept as (1 - flow_imbalance) / 2.
    * Events: prints of `trades` (source.trades, aggressor side: +1 buy, -1 sell) and our fills
      of `fills` (exec.fills, optional: our bid filled, side +1, is a seller's arrival). Both
      inputs are optional and every wired one counts; on a real tape our fills are prints too,
      so wire one of them (the tape: the market's rates; our fills: the seed's own-fill rates,
      with kappa_prior set to our fill rate).
    * One aggressive order is one event: a run of prints of one timestamp and side at the same
      or worsening prices (as `features.hawkes` counts orders; a sweep is one arrival). The same
      rule groups our fills (one seller walking down our bids is one arrival). `per_print: true`
      counts every record.
    * Times: each event enters at its own event time, decayed to `now`, so values do not depend
      on when the node runs; one stamped after `now` enters undecayed. t0 is the first run, or the
      earliest event of its first batch.
    * The observation ticks only on runs that counted a new event (the rates themselves tick on
      every run, with the decay): an EW imbalance re-emitted on every cycle would be applied by the
      drift filter again and again with no new information. R_flow = sigma_flow^2 / kappa_total as
      the seed writes it (sigma_flow^2 in (bps/s)^2 * events/s): more arrivals, more confidence.
    * Defaults (to be calibrated): tau 120 s (Component 5); kappa_prior 0.7 events/s a side
      (the synthetic HYPE tape: ~0.7 orders/s a side); prior_s 30 s. scale 0.15 bps/s per unit of
      imbalance is the slope of the latent mu on -flow_imbalance in the synthetic market
      (`trend_down` and `trend_up`, all knobs 1, seeds 0-3, tau 120 s: slope 0.16, corr 0.80;
      on the next-10-s return rate 0.17); sigma_flow 0.2 as the other flow features (R 0.027
      (bps/s)^2 at 1.5 events/s): the observation ticks per event and is autocorrelated over
      tau, so R is deliberately wide.

    Edge cases: NaN, non-positive or zero-side records are skipped; zero or negative dt decays
    nothing; a gap decays the counts while the exposure grows, so the rates fall toward 0 (the
    tape alone cannot tell a quiet market from a dead feed). With kappa_prior = 0 the imbalance
    (and obs) is emitted only after the first event; with prior_s = 0 nothing is emitted before
    time has elapsed. Wire `clock: source.clock` to refresh the decay on cycles without events."""

    type_name = "estimators.flow"

    class Params(NodeParams):
        tau_s: float = Field(120.0, gt=0, description="time constant of the EW counts and exposure, s")
        kappa_prior: float = Field(0.7, ge=0, description="cold-start arrival rate per side, events/s")
        prior_s: float = Field(30.0, ge=0, description="weight of the prior: seconds of pseudo-exposure")
        per_print: bool = Field(False, description="count every print/fill (default: aggressive orders)")
        scale: float = Field(0.15, description="z_flow = -scale * flow_imbalance, bps/s")
        sigma_flow: float = Field(0.2, gt=0, description="R_flow = sigma_flow^2 / kappa_total")

    inputs = {
        "trades": In("trades", optional=True, doc="the tape (source.trades)"),
        "fills": In("fills", optional=True, doc="our fills (exec.fills)"),
        "clock": In("f64", optional=True, doc="wire source.clock to refresh the decay every cycle"),
    }
    outputs = {
        "kappa_buy": Out("f64", doc="arrival rate of buyers lifting the ask, events/s"),
        "kappa_sell": Out("f64", doc="arrival rate of sellers hitting the bid, events/s"),
        "kappa_total": Out("f64", doc="kappa_buy + kappa_sell, events/s"),
        "flow_imbalance": Out("f64", doc="(kappa_sell - kappa_buy) / kappa_total, > 0 = selling"),
        "informed_fraction": Out("f64", doc="|flow_imbalance|"),
        "obs": Out("obs", doc="z = -scale * flow_imbalance, R = sigma_flow^2 / kappa_total"),
    }
    trigger = "event"
    kernel = flow_kernel

    def init_state(self):
        fs = np.zeros(7)
        fs[F_TR_SIDE] = np.nan
        fs[F_FI_SIDE] = np.nan
        ts = np.zeros(4, np.int64)
        ts[T_TR] = np.iinfo(np.int64).min
        ts[T_FI] = np.iinfo(np.int64).min
        return fs, ts  # see F_* / T_* above


EMIT = Flow.EMIT  # the kernel's named emit bits (compile-time constants)
