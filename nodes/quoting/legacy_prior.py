"""quoting.legacy_prior: the prior injected at the legacy's start, a stale drift held ~90 s (RC5)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from pydantic import Field

from flowmm.core.node import In, Node, NodeParams, Out

# packed params (Params field order; None -> NaN)
P_MU, P_CONF, P_AGE_H, P_HOLD, P_AGE_HL = range(5)
# state (int64): [time of the first run, ns; 1 once started]
S_T0, S_STARTED = range(2)


@njit(cache=True)
def prior_hold_s(hold_s, conf, age_h, age_half_life_h):
    """Seconds the injected prior overrides the live estimate: hold_s x conf, discounted by the
    prior's age only when an age half-life is set (the legacy set none)."""
    c = min(max(conf, 0.0), 1.0)
    if age_half_life_h == age_half_life_h:  # not NaN: a careful system discounts a stale prior
        c *= math.exp(-math.log(2.0) * age_h / age_half_life_h)
    return hold_s * c


@njit(cache=True)
def legacy_prior_kernel(
    now, dt, params, st, mu_live, mu_live_ticked, clock, clock_ticked, mu_hat, prior_active, hold_s
):
    if st[S_STARTED] == 0:
        st[S_STARTED] = 1
        st[S_T0] = now
    h = prior_hold_s(params[P_HOLD], params[P_CONF], params[P_AGE_H], params[P_AGE_HL])
    hold_s[0] = h
    if now - st[S_T0] < np.int64(round(h * 1e9)):  # integer ns: the hold ends exactly on time
        mu_hat[0] = params[P_MU]
        prior_active[0] = 1.0
    else:
        m = mu_live[0]
        mu_hat[0] = m if (m == m and not math.isinf(m)) else math.nan
        prior_active[0] = 0.0
    return EMIT.ALL


class LegacyPrior(Node):
    """The prior injected at the legacy's start: its stale drift overrides the live one for a while.

    Seed 000, Deep Log Analysis: the timeline's first line, "22:06:32 Start, pos=0, prior injected
    (paper, 3.2h old, conf=1.00)", then "22:06:41-22:08:07 17 cycles, drift STUCK at +3.00 bps -
    bullish skew while trend bearish" and root cause RC5 ("bullish drift for first 90 seconds
    attracted the wrong fills ... likely from the prior injection"); the drift flips to
    -3.44e-4 at 22:08:07 once live evidence takes over. Sits between the drift estimate and
    quoting.legacy_drift (which turns mu into the clamped drift_adj_bps):

        hold_s_eff = hold_s * conf * (2^(-age_h / age_half_life_h) if age_half_life_h else 1)
        mu_hat     = mu_prior                      while now - t_start < hold_s_eff
                   = mu_live                       afterwards

    t_start is the node's first run (the first quote cycle). Defaults: mu_prior = +0.01 bps/s,
    which quoting.legacy_drift at legacy.yaml's horizon_s 300 turns into +3.00 bps - the logged
    drift_rate 3.00e-4 exactly at the +-3 bps cap; hold_s 90 at conf 1.00 ("the first 90
    seconds"; 17 cycles of the logged ~5-6 s cycle); age_h 3.2 (the log's "3.2h old").

    Choices where the log is silent: the log shows the stale drift held at one value and then a
    flip, not a gradual blend, so the prior *replaces* the live estimate for a fixed time rather
    than being averaged with it. The hold scales with the prior's stated confidence; the defect
    RC5 documents is that a 3.2-hour-old paper prior was injected at conf = 1.00, i.e. its age
    was ignored: `age_half_life_h` null (the legacy) ignores it, a value discounts the
    confidence by age (e.g. 1 h: a 3.2-h prior is held 9.8 s instead of 90 s) - the fix seed
    000 P3 asks for, available as a knob. mu_live NaN/inf after the hold -> NaN (the legacy
    drift then quotes symmetric).

    Outputs: mu_hat (bps/s), prior_active (1 while the prior is in force), hold_s (the effective
    hold, s); all emitted on every run. Cycle-triggered; wire `clock: source.clock` so it runs on
    every cycle even when the drift estimate did not tick."""

    type_name = "quoting.legacy_prior"
    tier = "hot"
    trigger = "cycle"

    class Params(NodeParams):
        mu_prior: float = Field(
            0.01, description="the injected prior's drift, bps/s (+3 bps over legacy_drift's 300 s)"
        )
        conf: float = Field(1.0, ge=0, le=1, description="the prior's stated confidence (logged 1.00)")
        age_h: float = Field(3.2, ge=0, description="the prior's age at injection, hours (logged 3.2)")
        hold_s: float = Field(90.0, ge=0, description="seconds a conf-1 prior overrides the live drift")
        age_half_life_h: float | None = Field(
            None, gt=0, description="discount the confidence by age with this half-life, h (legacy: none)"
        )

    inputs = {
        "mu_live": In("f64", optional=True, doc="live drift estimate, bps/s (estimators.kalman_drift)"),
        "clock": In("f64", optional=True, doc="source.clock: run every cycle"),
    }
    outputs = {
        "mu_hat": Out("f64", doc="the drift the legacy used, bps/s: the prior while it holds"),
        "prior_active": Out("f64", doc="1 while the injected prior overrides the live estimate"),
        "hold_s": Out("f64", doc="effective hold of the prior, s"),
    }
    kernel = legacy_prior_kernel

    def init_state(self):
        return (np.zeros(2, np.int64),)  # see S_*


EMIT = LegacyPrior.EMIT  # the kernel's named emit bits (compile-time constants)
