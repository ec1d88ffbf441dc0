"""quoting.legacy_max_position: the legacy's dynamic max position, 17.18 reduced to 8.57 in a trend."""

from __future__ import annotations

import numpy as np
from numba import njit
from pydantic import Field

from flowmm.core.node import In, Node, NodeParams, Out

# packed params (Params field order)
P_MAX, P_FRACTION, P_AGREEMENT, P_HOLD = range(4)
# state (int64): [time of the last trigger, ns; NEVER = none yet]
S_LAST = 0
NEVER = np.iinfo(np.int64).min
LOGGED_MAX = 17.18  # max_pos on the start line
LOGGED_REDUCED = 8.57  # the value in force during the selloff


@njit(cache=True)
def legacy_max_position_kernel(
    now, dt, params, st, agreement, agreement_ticked, clock, clock_ticked, q_max, reduced
):
    a = agreement[0]
    if a == a and a >= params[P_AGREEMENT]:
        st[S_LAST] = now
    # in integer ns, so a hold of 60 s ends exactly 60 s after the trigger (a trigger now: 0 <= hold)
    on = st[S_LAST] != NEVER and now - st[S_LAST] <= np.int64(round(params[P_HOLD] * 1e9))
    q_max[0] = params[P_MAX] * (params[P_FRACTION] if on else 1.0)
    reduced[0] = 1.0 if on else 0.0
    return EMIT.ALL


class LegacyMaxPosition(Node):
    """Legacy dynamic max position: max_pos 17.18, halved to 8.57 while the trend detector agrees.

    Seed 000, Deep Log Analysis: the start line "max_pos=17.18" and RC2 "With max_position ~8.57
    (dynamically reduced from 17.18), that's ~4.3 contracts before bids get pulled";
    CONVENTIONS.md ("q_max = 8.57, the dynamically reduced value in force"). With a the trend's
    agreement (estimators.trend.agreement, 0, 1/3, 2/3 or 1):

        reduced = 1 while a >= agreement_min, and for hold_s after it last was
        q_max   = max_position * (reduced_fraction if reduced else 1)

    Defaults: max_position 17.18, reduced_fraction 8.57 / 17.18 = 0.4988 (the legacy halved it;
    the 0.2 % difference is the mid moving between the two readings), agreement_min 0.6 (the
    agreement takes the values 0, 1/3, 2/3, 1: at least two of the three timeframes agree
    beyond noise), hold_s 60.

    The trigger is our reading: the log states the two values, not the rule. It is the reading
    consistent with the whole session: 17.18 on the start line, before any trend reading; 8.57
    in force through the selloff, in which every logged trend line has agreement = 1.00 (a
    threshold of 2/3 rather than 1 keeps it in force through a selloff whose long window has not
    yet passed its noise band, as CONVENTIONS.md has it: "the dynamically reduced value in
    force"); and
    the last buy, 0.36 (a touch-level size) at 22:21:32 while long 6.58 = 77 % of 8.57 (red:
    bids pulled), is possible only if the limit was back at 17.18 for a moment (u = 0.38, green)
    after the agreement lapsed - by 22:25:57 the log shows red again. hold_s keeps one-cycle
    lapses of the agreement from flapping the limit. The output feeds quoting.legacy_quoter's
    q_max: zones, gate and inventory scalar all move with it.

    Edge cases: agreement NaN (not wired or no reading yet) -> not a trigger (max_position, unless
    a trigger is still held). Emitted on every run. Cycle-triggered; wire `clock: source.clock`
    so the hold expires on time when the trend node does not tick."""

    type_name = "quoting.legacy_max_position"
    tier = "hot"
    trigger = "cycle"

    class Params(NodeParams):
        max_position: float = Field(LOGGED_MAX, gt=0, description="max position, contracts (logged 17.18)")
        reduced_fraction: float = Field(
            LOGGED_REDUCED / LOGGED_MAX, gt=0, le=1, description="q_max x this while reduced (8.57/17.18)"
        )
        agreement_min: float = Field(
            0.6, ge=0, le=1, description="trend agreement at which it reduces (0.6: 2 of 3 timeframes)"
        )
        hold_s: float = Field(60.0, ge=0, description="stays reduced this long after the last trigger, s")

    inputs = {
        "agreement": In("f64", optional=True, doc="trend agreement (estimators.trend.agreement)"),
        "clock": In("f64", optional=True, doc="source.clock: run every cycle"),
    }
    outputs = {
        "q_max": Out("f64", doc="max position in force, contracts"),
        "reduced": Out("f64", doc="1 while the reduction is in force"),
    }
    kernel = legacy_max_position_kernel

    def init_state(self):
        return (np.full(1, NEVER, np.int64),)  # see S_LAST


EMIT = LegacyMaxPosition.EMIT  # the kernel's named emit bits (compile-time constants)
