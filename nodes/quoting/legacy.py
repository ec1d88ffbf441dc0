"""The legacy (pre-RFC) quoting system of the Feb 19 incident, as two stages.

``quoting.legacy_drift``: mu_hat -> the clamped drift adjustment (+-3 bps) and the dead
``smoothed_drift`` EWMA. ``quoting.legacy_quoter``: mid, position, drift adjustment, toxicity
-> zones, quote gate, inventory scalar, toxicity size multiplier and the ladder.

Two stages rather than one so a graph can trace (and replace) the drift clamp on its own, as
the incident logs did (``drift_adj_bps``); every quantity the incident analysis names is an
output. Parameters: CONVENTIONS.md "The legacy system" (from the incident logs), seed 000
("Deep Log Analysis" RC1-RC4 and the RFC's "What Gets Removed").
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from pydantic import Field, model_validator

from flowmm.core.node import In, Node, NodeParams, Out
from flowmm.core.ports import LAD_ASK_PX, LAD_ASK_SZ, LAD_BID_PX, LAD_BID_SZ, LADDER_LEVELS
from flowmm.execution.hyperliquid_rules import (
    PERP_MAX_DECIMALS,
    ROUND_DOWN,
    ROUND_UP,
    SPOT_MAX_DECIMALS,
    min_size_for_value,
    px_above,
    px_below,
    round_px,
    round_sz,
)

# ---------------------------------------------------------------------------------------------
# quoting.legacy_drift
# ---------------------------------------------------------------------------------------------
D_HORIZON, D_CLAMP, D_HALF_LIFE, D_WARMUP = range(4)
# state: [EWMA value, seconds since the first run, 1.0 once seeded]
S_EWMA, S_ELAPSED, S_SEEDED = range(3)


@njit(cache=True)
def legacy_drift_kernel(
    now, dt, params, st, mu_hat, mu_hat_ticked, drift_raw_bps, drift_adj_bps, clamped, smoothed_drift
):
    m = mu_hat[0]
    if m == m and not math.isinf(m):
        r = m * params[D_HORIZON]
        drift_raw_bps[0] = r
    else:
        r = 0.0  # no drift estimate yet: the legacy quoted symmetric
        drift_raw_bps[0] = math.nan
    cap = params[D_CLAMP]
    if r > cap:
        drift_adj_bps[0] = cap
        clamped[0] = 1.0
    elif r < -cap:
        drift_adj_bps[0] = -cap
        clamped[0] = -1.0
    else:
        drift_adj_bps[0] = r
        clamped[0] = 0.0
    # the position manager's smoothed_drift: an EWMA of the raw drift that reports 0 until warm
    if st[S_SEEDED] == 0.0:
        st[S_SEEDED] = 1.0
        st[S_EWMA] = r
    else:
        st[S_ELAPSED] += dt
        w = 1.0 - math.exp(-math.log(2.0) * dt / params[D_HALF_LIFE])
        st[S_EWMA] += w * (r - st[S_EWMA])
    smoothed_drift[0] = st[S_EWMA] if st[S_ELAPSED] >= params[D_WARMUP] else 0.0
    return EMIT_DRIFT.ALL


class LegacyDrift(Node):
    """Legacy drift adjustment: mu_hat scaled to bps, hard-clamped at +-3 bps (seed 000 RC1).

    Seed 000, Deep Log Analysis RC1 ("drift asymmetry hard-capped at +-3 bps") and the
    ``smoothed_drift: 0.000000`` paragraph; CONVENTIONS.md "The legacy system".

        drift_raw_bps = mu_hat * horizon_s                 (mu_hat in bps/s, e.g. kalman_drift)
        drift_adj_bps = clamp(drift_raw_bps, -clamp_bps, +clamp_bps)
        clamped       = +1 / -1 when pinned at +cap / -cap, else 0

    ``drift_adj_bps`` is the asymmetry the legacy quoter applies (ask depth minus bid depth;
    the quote centre moves by half of it, "3 bps asymmetry shifts the mid by ~1.5 bps").
    Horizon: the logs map drift_rate -5.28e-4 to ~5.3 bps; with the incident's realistic
    mu of 0.05-0.1 bps/s (CONVENTIONS.md) a 60 s horizon gives 3-6 bps, so in a selloff like
    ``trend_down`` (mu = -0.063 bps/s -> -3.8 bps) the adjustment sits pinned at -3 bps, as in
    97 of the incident's 181 cycles.

    ``smoothed_drift``: the position manager's EWMA of the drift (half-life
    ``smooth_half_life_s``), reported as 0 until it has run ``smooth_warmup_s`` seconds. The
    legacy warm-up outlasted the session ("never warms up", logged as 0.000000 throughout), so
    the default warm-up (1 h) is longer than the 19.5 min incident; the EWMA itself runs, so a
    shorter warm-up shows what it would have said. dt = 0 on the first run seeds it.

    Edge cases: mu_hat NaN/inf or not wired -> drift_raw_bps NaN, drift_adj_bps 0, clamped 0
    (symmetric quotes) and the EWMA is fed 0. Cycle-triggered (the legacy clamp ran once per
    quote cycle); emits every output on every run."""

    type_name = "quoting.legacy_drift"
    tier = "hot"
    trigger = "cycle"

    class Params(NodeParams):
        horizon_s: float = Field(60.0, gt=0, description="seconds of drift mu_hat turned into bps")
        clamp_bps: float = Field(3.0, gt=0, description="the legacy clamp on the drift adjustment, bps")
        smooth_half_life_s: float = Field(30.0, gt=0, description="smoothed_drift EWMA half-life, s")
        smooth_warmup_s: float = Field(
            3600.0, ge=0, description="smoothed_drift reads 0 until this many s have run (legacy: never)"
        )

    inputs = {"mu_hat": In("f64", optional=True, doc="drift estimate, bps/s (estimators.kalman_drift)")}
    outputs = {
        "drift_raw_bps": Out("f64", doc="mu_hat * horizon_s, bps (NaN without an estimate)"),
        "drift_adj_bps": Out("f64", doc="the clamped drift adjustment, bps (bearish < 0)"),
        "clamped": Out("f64", doc="+1 pinned at +clamp, -1 at -clamp, 0 inside"),
        "smoothed_drift": Out("f64", doc="the legacy EWMA of the drift, bps; 0 until warm"),
    }
    kernel = legacy_drift_kernel

    def init_state(self):
        return (np.zeros(3),)


EMIT_DRIFT = LegacyDrift.EMIT  # the kernel's named emit bits (compile-time constants)


# ---------------------------------------------------------------------------------------------
# quoting.legacy_quoter
# ---------------------------------------------------------------------------------------------
(
    Q_HALF, Q_SPACING, Q_LEVELS, Q_SIZE_TOUCH, Q_SIZE_DEEP, Q_QMAX, Q_SKEW, Q_SCALAR, Q_GREEN,
    Q_RED, Q_GATE, Q_Y_WIDEN, Q_Y_SIZE, Q_SIGNAL_W, Q_SIGNAL_TRIG, Q_TOX, Q_SZ_DEC, Q_PERP,
    Q_MIN_VALUE,
) = range(19)  # fmt: skip
ZONE_GREEN, ZONE_YELLOW, ZONE_RED = 0.0, 1.0, 2.0
# skew per contract at u = 0 such that skew(q = 4.87) = 0.73 bps with the scalar 1 + 3 u^2
# at q_max = 8.57 (CONVENTIONS.md: "0.73 bps at q = 4.87")
SKEW_PER_CONTRACT = 0.73 / (4.87 * (1.0 + 3.0 * (4.87 / 8.57) ** 2))


@njit(cache=True)
def _tox_mult(tox, threshold):
    """Legacy toxicity size multiplier 1 - max(0, toxicity - threshold), clipped to [0, 1]."""
    if tox != tox:
        return 1.0  # no toxicity estimate: full size
    m = 1.0 - max(0.0, tox - threshold)
    return min(1.0, max(0.0, m))


@njit(cache=True)
def _factor(x):
    """An optional multiplier input: its value when finite and >= 0, else 1 (not wired)."""
    if x >= 0.0 and not math.isinf(x):
        return x
    return 1.0


@njit(cache=True)
def legacy_quoter_kernel(
    now, dt, params, st,
    mid, mid_ticked, position, position_ticked, drift_adj, drift_adj_ticked,
    toxicity_bid, toxicity_bid_ticked, toxicity_ask, toxicity_ask_ticked, trend, trend_ticked,
    q_max, q_max_ticked, effective_q, effective_q_ticked, bid_size_scale, bid_size_scale_ticked,
    ask_size_scale, ask_size_scale_ticked, bid_spread_mult, bid_spread_mult_ticked,
    ask_spread_mult, ask_spread_mult_ticked,
    ladder, zone, gate, utilization, inventory_scalar, skew_bps, bid_depth_bps, ask_depth_bps,
    bid_size_mult, ask_size_mult, signal_weight, gate_signal, q_max_used,
):  # fmt: skip
    m = mid[0]
    if not (m > 0.0) or math.isinf(m):
        if st[0] == 1.0:
            return EMIT_QUOTER.NONE  # quotes already withheld: say it once
        ladder[:, :] = np.nan
        st[0] = 1.0
        return EMIT_QUOTER.LADDER
    st[0] = 0.0
    q = position[0]
    if q != q or math.isinf(q):
        q = 0.0  # no position stream yet: flat
    d = drift_adj[0]
    if d != d or math.isinf(d):
        d = 0.0
    tr = trend[0]
    if tr != tr or math.isinf(tr):
        tr = 0.0

    qm = params[Q_QMAX]
    if q_max[0] > 0.0 and not math.isinf(q_max[0]):
        qm = q_max[0]  # the dynamic max position (quoting.legacy_max_position)
    qs = effective_q[0]
    if qs != qs or math.isinf(qs):
        qs = q  # no position manager: the skew sees the position itself
    u = abs(q) / qm
    sc = 1.0 + params[Q_SCALAR] * u * u
    sk = params[Q_SKEW] * qs * sc  # bps; long -> bids further, asks closer
    if u < params[Q_GREEN]:
        z = ZONE_GREEN
    elif u <= params[Q_RED]:
        z = ZONE_YELLOW
    else:
        z = ZONE_RED
    # the quote gate: one-sided above gate_threshold of q_max (pull the accumulating side), or
    # when the weighted trend signal passes its trigger (signal_weight = 0: never)
    gs = params[Q_SIGNAL_W] * tr
    g = 0.0
    if u > params[Q_GATE] and q != 0.0:
        g = 1.0 if q > 0.0 else -1.0
    elif gs <= -params[Q_SIGNAL_TRIG]:
        g = 1.0  # bearish: pull the bids
    elif gs >= params[Q_SIGNAL_TRIG]:
        g = -1.0
    # the accumulating side (bids when long): widened and shrunk in yellow, gone in red
    acc = 0.0 if q == 0.0 else (1.0 if q > 0.0 else -1.0)
    half = params[Q_HALF]
    bd = half * _factor(bid_spread_mult[0]) - 0.5 * d + sk  # pre_fill_as: the side's half-spread widened
    ad = half * _factor(ask_spread_mult[0]) + 0.5 * d - sk
    bm = _tox_mult(toxicity_bid[0], params[Q_TOX])
    am = _tox_mult(toxicity_ask[0], params[Q_TOX])
    ms_b = _factor(bid_size_scale[0])  # the side's margin share (quoting.legacy_margin), 1 when flat
    ms_a = _factor(ask_size_scale[0])
    if z == ZONE_YELLOW:
        if acc > 0.0:
            bd += params[Q_Y_WIDEN]
            bm *= params[Q_Y_SIZE]
        elif acc < 0.0:
            ad += params[Q_Y_WIDEN]
            am *= params[Q_Y_SIZE]
    bid_on = not (g > 0.0 or (z == ZONE_RED and acc > 0.0))
    ask_on = not (g < 0.0 or (z == ZONE_RED and acc < 0.0))
    # red zone = reduce only: the reducing side's total size is capped at |q|
    cap_b = abs(q) if (z == ZONE_RED and acc < 0.0) else math.inf
    cap_a = abs(q) if (z == ZONE_RED and acc > 0.0) else math.inf

    zone[0] = z
    gate[0] = g
    utilization[0] = u
    inventory_scalar[0] = sc
    skew_bps[0] = sk
    bid_depth_bps[0] = bd
    ask_depth_bps[0] = ad
    bid_size_mult[0] = bm
    ask_size_mult[0] = am
    signal_weight[0] = params[Q_SIGNAL_W]
    gate_signal[0] = gs
    q_max_used[0] = qm

    spacing = params[Q_SPACING]
    n_levels = int(params[Q_LEVELS])
    szd = int(params[Q_SZ_DEC])
    perp = params[Q_PERP] > 0.5
    min_value = params[Q_MIN_VALUE]
    prev_bid = m  # level i strictly beyond level i-1, the touch strictly beyond mid
    prev_ask = m
    cum_b = 0.0
    cum_a = 0.0
    for i in range(LADDER_LEVELS):
        ladder[i, LAD_BID_PX] = np.nan
        ladder[i, LAD_BID_SZ] = np.nan
        ladder[i, LAD_ASK_PX] = np.nan
        ladder[i, LAD_ASK_SZ] = np.nan
        if i >= n_levels:
            continue
        frac = i / (n_levels - 1) if n_levels > 1 else 0.0
        base = params[Q_SIZE_TOUCH] + (params[Q_SIZE_DEEP] - params[Q_SIZE_TOUCH]) * frac
        bid = round_px(m * (1.0 - max(bd + i * spacing, 0.0) * 1e-4), szd, perp, ROUND_DOWN)
        if bid == bid and bid >= prev_bid:
            bid = px_below(prev_bid, szd, perp)
        ask = round_px(m * (1.0 + max(ad + i * spacing, 0.0) * 1e-4), szd, perp, ROUND_UP)
        if ask <= prev_ask:
            ask = px_above(prev_ask, szd, perp)
        if bid == bid:
            prev_bid = bid
            if bid_on:
                sz = _level_size(base * bm * ms_b, bid, cap_b - cum_b, szd, min_value)
                if sz > 0.0:
                    ladder[i, LAD_BID_PX] = bid
                    ladder[i, LAD_BID_SZ] = sz
                    cum_b += sz
        else:
            prev_bid = 0.0  # no positive price left below: deeper bids are gone too
        if ask == ask:
            prev_ask = ask
            if ask_on:
                sz = _level_size(base * am * ms_a, ask, cap_a - cum_a, szd, min_value)
                if sz > 0.0:
                    ladder[i, LAD_ASK_PX] = ask
                    ladder[i, LAD_ASK_SZ] = sz
                    cum_a += sz
    return EMIT_QUOTER.ALL


@njit(cache=True)
def _level_size(raw, px, room, szd, min_value):
    """A level's size: raw rounded down to the lot, raised to the $-minimum when positive (the
    legacy bumped small levels to the exchange minimum), then held within the reduce-only
    room (rounded down); 0 when nothing valid is left."""
    sz = round_sz(raw, szd)
    if not (sz > 0.0):
        return 0.0
    lo = min_size_for_value(px, szd, min_value)
    if sz < lo:
        sz = lo
    if sz > room:
        sz = round_sz(room, szd)
        if not (sz > 0.0) or sz * px < min_value:
            return 0.0
    return sz


class LegacyQuoter(Node):
    """Legacy ladder with zones, a 50 % quote gate, 1 + 3u^2 skew scalar, toxicity size cut.

    Reproduces the pre-RFC system of the Feb 19 incident (CONVENTIONS.md "The legacy system";
    seed 000 Deep Log Analysis RC2-RC4, P4, and the RFC's "What Gets Removed"), the baseline
    every RFC stage is measured against. Its discontinuities are the point.

    With q the position (exec.position, contracts), u = |q| / q_max, d the drift adjustment
    (quoting.legacy_drift.drift_adj_bps, bearish < 0) and h = half_spread_bps:

        inventory_scalar = 1 + 3 u^2                                     (RC4, Phase 2 curve)
        skew_bps         = skew_bps_per_contract * q * inventory_scalar
        bid_depth_0      = h - d/2 + skew_bps (+ yellow_widen_bps if yellow and long)
        ask_depth_0      = h + d/2 - skew_bps (+ yellow_widen_bps if yellow and short)
        depth_i          = depth_0 + i * level_spacing_bps,  i = 0 .. levels-1 (bps of mid)
        size_i           = size_touch + (size_deep - size_touch) * i / (levels - 1)
                           * toxicity_mult_side (* yellow_size_mult on the accumulating side)
        toxicity_mult    = 1 - max(0, toxicity_side - 0.5)     (CONVENTIONS.md fit to the logs)

    Zones (u = |q|/q_max): green u < 0.40, yellow 0.40 <= u <= 0.60, red u > 0.60. Red is
    reduce only: the accumulating side (bids when long) is pulled and the reducing side's total
    size is capped at |q|. The quote gate is one-sided above gate_threshold = 0.50: gate = +1
    (bids pulled, "ONLY ASKS") when q > 0.5 q_max, -1 when q < -0.5 q_max, else 0. Its trend
    input enters only through signal_weight: gate_signal = signal_weight * trend_bps pulls the
    bids at <= -signal_trigger_bps (asks at >= +); the legacy signal_weight was 0.000, so the
    trend never reaches the gate (RC2). Outputs ``zone`` (0 green, 1 yellow, 2 red) and
    ``gate`` jump at the boundaries, and so do depths and sizes (the RFC's "sudden behavioural
    jumps at zone boundaries").

    The rest of the legacy system enters through optional inputs (graphs/legacy.yaml wires all
    of them; unwired, each is the identity and the quoter is the one above):

    * ``q_max``: the dynamic max position in force (quoting.legacy_max_position: 17.18, reduced
      to 8.57 in a trend) replaces the q_max param in u, so zones, gate and scalar move with it;
    * ``effective_q``: the position the skew sees (quoting.legacy_pcm: q in Hold, q x urgency in
      Reduce): skew_bps = skew_bps_per_contract * effective_q * inventory_scalar;
    * ``bid_spread_mult`` / ``ask_spread_mult``: the pre_fill_as multipliers
      (quoting.legacy_pre_fill_as) on each side's half-spread: bid_depth_0 = h m_bid - d/2 + skew;
    * ``bid_size_scale`` / ``ask_size_scale``: each side's margin share (quoting.legacy_margin)
      on its sizes, after the toxicity and yellow multipliers and before the lot rounding and
      the red zone's reduce-only cap (bid_size_mult / ask_size_mult stay the logged toxicity x
      yellow multipliers).

    RC4's worked values: 1.19 at 25 % and 1.75 at 50 % are 1 + 3u^2 (1.1875, 1.75); its "by 80 %
    when it hits 3.56" is not (1 + 3 x 0.8^2 = 2.92; 3.56 would be u = 0.92): the formula, which
    the other two points and CONVENTIONS.md agree on, is kept.

    Choices where the logs are silent (all parameters):

    * Skew: the logs give the skew at one point only, 0.73 bps at q = 4.87 (~0.15 bps per
      contract there). The legacy skew is gamma-driven and gamma carries the 1 + 3u^2 scalar
      (RC4), so the scalar multiplies the skew and the per-contract base is fitted to that
      point: 0.73 / (4.87 (1 + 3 (4.87/8.57)^2)) = 0.0761 bps per contract at u = 0.
    * Sizes ramp linearly with depth from 0.36 at the touch to 0.89 at level 5 (the logged
      range; the sweeps filled the small touch first). Sum 3.75 (logged total: 4.17-5.66).
    * level_spacing_bps = 2 (not logged); yellow: accumulating side widened by 1 bp and sized
      x0.8 (the RFC names zone_spread_widen_bps and zone_size_mult without values).
    * Hyperliquid rules (flowmm.execution.hyperliquid_rules): prices rounded away from the mid
      (bid down, ask up), each level strictly beyond the one before (pushed one tick out) and
      the touch strictly beyond the mid, so the ladder never crosses the mid or the opposite
      best; sizes rounded down to sz_decimals and raised to the $10 minimum
      (min_order_value) when a multiplier took them under it: 0.36 HYPE at 28 is $10.08, so a
      0.98 toxicity cut would otherwise delete the touch, which the logs do not show. Under
      the reduce-only cap a level that cannot reach the minimum is dropped.

    Edge cases: mid NaN/inf/<= 0 withholds the quotes (the ladder is emitted once as all NaN;
    the other outputs keep their last values). Position NaN or not wired -> q = 0; drift NaN
    -> 0; toxicity NaN -> multiplier 1; trend NaN -> 0. Cycle-triggered, hot."""

    type_name = "quoting.legacy_quoter"
    tier = "hot"
    trigger = "cycle"

    class Params(NodeParams):
        half_spread_bps: float = Field(
            2.85, gt=0, le=5000, description="touch half-spread, bps (logged 5.7/2)"
        )
        level_spacing_bps: float = Field(
            2.0, ge=0, le=5000, description="added depth per level, bps (assumed)"
        )
        levels: int = Field(6, ge=1, le=LADDER_LEVELS, description="levels per side (logged 6)")
        size_touch: float = Field(0.36, gt=0, description="level-0 size, contracts (logged 0.36)")
        size_deep: float = Field(0.89, gt=0, description="deepest level's size, contracts (logged 0.89)")
        q_max: float = Field(8.57, gt=0, description="max position in force, contracts (logged 8.57)")
        skew_bps_per_contract: float = Field(
            SKEW_PER_CONTRACT, ge=0, description="skew per contract at u = 0, bps (0.73 bps at q = 4.87)"
        )
        scalar_coef: float = Field(3.0, ge=0, description="inventory scalar 1 + coef u^2 (logged 3)")
        green_max: float = Field(0.40, gt=0, le=1, description="green zone: u below this")
        red_min: float = Field(0.60, gt=0, le=1, description="red zone (reduce only): u above this")
        gate_threshold: float = Field(0.50, gt=0, le=1, description="gate one-sided above this u")
        yellow_widen_bps: float = Field(1.0, ge=0, description="yellow: accumulating side widened, bps")
        yellow_size_mult: float = Field(0.8, ge=0, le=1, description="yellow: accumulating side size factor")
        signal_weight: float = Field(0.0, ge=0, description="weight of the trend in the gate (legacy: 0)")
        signal_trigger_bps: float = Field(5.0, gt=0, description="|signal_weight * trend| that gates")
        toxicity_threshold: float = Field(0.5, ge=0, le=1, description="size cut 1 - max(0, tox - this)")
        sz_decimals: int = Field(2, ge=0, le=SPOT_MAX_DECIMALS, description="szDecimals: HYPE 2, BTC 5")
        is_perp: bool = Field(True, description="perp (6 max price decimals) or spot (8)")
        min_order_value: float = Field(10.0, ge=0, description="Hyperliquid's minimum order value, USDC")

        @model_validator(mode="after")
        def _consistent(self):
            top = PERP_MAX_DECIMALS if self.is_perp else SPOT_MAX_DECIMALS
            if self.sz_decimals > top:
                raise ValueError(f"sz_decimals {self.sz_decimals} exceeds the maximum {top}")
            if not self.green_max <= self.red_min:
                raise ValueError(f"green_max {self.green_max} must not exceed red_min {self.red_min}")
            return self

    inputs = {
        "mid": In("f64", doc="the mid (source.mid)"),
        "position": In("f64", optional=True, doc="signed position q (exec.position); NaN -> 0"),
        "drift_adj": In("f64", optional=True, doc="drift adjustment, bps (legacy_drift.drift_adj_bps)"),
        "toxicity_bid": In("f64", optional=True, doc="bid-side toxicity in [0, 1]; NaN -> no cut"),
        "toxicity_ask": In("f64", optional=True, doc="ask-side toxicity in [0, 1]; NaN -> no cut"),
        "trend": In("f64", optional=True, doc="trend, bps (estimators.trend.trend_bps); x signal_weight"),
        "q_max": In(
            "f64", optional=True, doc="max position in force (quoting.legacy_max_position); else param"
        ),
        "effective_q": In("f64", optional=True, doc="position the skew sees (quoting.legacy_pcm); else q"),
        "bid_size_scale": In("f64", optional=True, doc="bid sizes x this (quoting.legacy_margin); else 1"),
        "ask_size_scale": In("f64", optional=True, doc="ask sizes x this (quoting.legacy_margin); else 1"),
        "bid_spread_mult": In("f64", optional=True, doc="bid half-spread x this (legacy_pre_fill_as)"),
        "ask_spread_mult": In("f64", optional=True, doc="ask half-spread x this (legacy_pre_fill_as)"),
    }
    outputs = {
        "ladder": Out("ladder", doc="desired quotes; all NaN = quotes withheld"),
        "zone": Out("f64", doc="0 green, 1 yellow, 2 red (reduce only)"),
        "gate": Out("f64", doc="quote gate: 0 two-sided, +1 bids pulled (only asks), -1 asks pulled"),
        "utilization": Out("f64", doc="u = |q| / q_max"),
        "inventory_scalar": Out("f64", doc="1 + 3 u^2"),
        "skew_bps": Out("f64", doc="inventory skew, bps (long > 0: bids further)"),
        "bid_depth_bps": Out("f64", doc="touch bid depth before rounding, bps of mid"),
        "ask_depth_bps": Out("f64", doc="touch ask depth before rounding, bps of mid"),
        "bid_size_mult": Out("f64", doc="toxicity (x yellow) size multiplier, bids"),
        "ask_size_mult": Out("f64", doc="toxicity (x yellow) size multiplier, asks"),
        "signal_weight": Out("f64", doc="the gate's trend weight (legacy: 0)"),
        "gate_signal": Out("f64", doc="signal_weight * trend, bps"),
        "q_max_used": Out("f64", doc="the q_max in force, contracts (input, else param)"),
    }
    kernel = legacy_quoter_kernel

    def init_state(self):
        return (np.zeros(1),)  # [1.0 once an all-NaN ladder was emitted]


EMIT_QUOTER = LegacyQuoter.EMIT  # the kernel's named emit bits (compile-time constants)
