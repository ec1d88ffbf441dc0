"""quoting.sizing: per-level order sizes, the RFC's optimum or seed 004's posterior sizing."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numba import njit
from pydantic import Field, model_validator

from flowmm.core.node import In, Node, NodeParams, Out
from flowmm.core.ports import LADDER_LEVELS

MODES = ("rfc", "posterior")
GAMMA_AT = ("post_fill", "current", "inventory")
# packed params (Params field order; the two Literal params packed as their index)
(
    P_MODE, P_LEVELS, P_GAMMA_AT, P_GAMMA, P_BETA, P_QMAX, P_TAU, P_SIGMA0, P_SIGMA_MIN, P_MAX_LEVEL,
    P_BASE, P_DECAY, P_REDUCE, P_RESUME, P_MIN_VIABLE, P_MAX_REDUCE, P_GATE,
) = range(17)  # fmt: skip
# state: [reduce-only mode: +1 ask-only (reducing a long), -1 bid-only (reducing a short), 0 none]
S_MODE = 0
BISECT_STEPS = 80


@njit(cache=True)
def _objective(s, e, q, side, c, b):
    """s E - gamma(q + side s)/gamma_base * c s^2, with c = gamma_base sigma^2 tau."""
    u = q + side * s
    return s * e - c * (1.0 + b * u * u) * s * s


@njit(cache=True)
def _marginal(s, e, q, side, c, b):
    """dF/ds = E - 2 c s [1 + b (q + side s)(q + 2 side s)]."""
    return e - 2.0 * c * s * (1.0 + b * (q + side * s) * (q + 2.0 * side * s))


@njit(cache=True)
def _root(lo, hi, e, q, side, c, b):
    """The zero of dF/ds on [lo, hi], where it is monotone and changes sign (bisection)."""
    for _ in range(BISECT_STEPS):
        mid = 0.5 * (lo + hi)
        if _marginal(mid, e, q, side, c, b) > 0.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@njit(cache=True)
def _consider(s, best_s, best_f, e, q, side, c, b):
    f = _objective(s, e, q, side, c, b)
    if f > best_f:
        return s, f
    return best_s, best_f


@njit(cache=True)
def optimal_size(e, q, side, c, b, cap, post_fill):
    """argmax over s in [0, cap] of s E - c (1 + b u^2) s^2, u = q + side s (post_fill) or q.

    post_fill false: the closed form E / (2 c (1 + b q^2)). post_fill true: dF/ds is a cubic;
    its derivative vanishes at s = (-6 side q +- sqrt(12 q^2 - 24/b)) / 12 (real only when
    b q^2 > 2), which splits [0, cap] into at most three pieces on each of which dF/ds is
    monotone: the global maximum is an end point or the sign change of one piece."""
    if not (e > 0.0) or not (cap > 0.0):
        return 0.0
    if not (c > 0.0):
        return cap  # no risk cost (sigma or gamma zero): the whole headroom
    if not post_fill:
        s = e / (2.0 * c * (1.0 + b * q * q))
        return min(s, cap)
    r1 = cap
    r2 = cap
    disc = 12.0 * q * q - 24.0 / b if b > 0.0 else -1.0
    if disc > 0.0:
        sq = math.sqrt(disc)
        r1 = min(max((-6.0 * side * q - sq) / 12.0, 0.0), cap)
        r2 = min(max((-6.0 * side * q + sq) / 12.0, 0.0), cap)
    best_s = 0.0
    best_f = 0.0
    best_s, best_f = _consider(cap, best_s, best_f, e, q, side, c, b)
    lo = 0.0
    for k in range(3):
        hi = r1 if k == 0 else (r2 if k == 1 else cap)
        if hi > lo:
            g_lo = _marginal(lo, e, q, side, c, b)
            g_hi = _marginal(hi, e, q, side, c, b)
            if g_lo > 0.0 and g_hi <= 0.0:  # a local maximum inside
                best_s, best_f = _consider(_root(lo, hi, e, q, side, c, b), best_s, best_f, e, q, side, c, b)
            lo = hi
    return best_s


@njit(cache=True)
def target_inventory(y, b):
    """The u with h'(u) = 2u + 4 b u^3 = y (h(u) = u^2 (1 + b u^2)). h' is strictly increasing,
    so the depressed cubic has one real root; its hyperbolic form, u = (2/sqrt(6b)) sinh(asinh(
    0.75 y sqrt(6b)) / 3), stays exact as b -> 0 (u -> y/2) where Cardano's cancels."""
    if b <= 0.0:
        return 0.5 * y
    w = math.sqrt(6.0 * b)
    return 2.0 / w * math.sinh(math.asinh(0.75 * y * w) / 3.0)


@njit(cache=True)
def inventory_size(e, q, side, c, b, cap):
    """argmax over s in [0, cap] of s E - c [h(q + side s) - h(q)]: concave (h convex), its
    maximum where the post-fill inventory reaches the target u* with h'(u*) = side E / c."""
    if not (e == e) or not (cap > 0.0):
        return 0.0
    if not (c > 0.0):
        return cap if e > 0.0 else 0.0
    u = target_inventory(side * e / c, b)
    return min(max(side * (u - q), 0.0), cap)


@njit(cache=True)
def _level(v, i):
    return v[i] if i < v.shape[0] else np.nan


@njit(cache=True)
def _weight(i, decay):
    return decay**i


@njit(cache=True)
def sizing_kernel(
    now, dt, params, state,
    bid_epnl, bid_epnl_ticked, ask_epnl, ask_epnl_ticked,
    q, q_ticked, sigma, sigma_ticked, p_down, p_down_ticked,
    bid_sizes, ask_sizes, reduce_only, bid_total, ask_total,
):  # fmt: skip
    n = int(params[P_LEVELS])
    q_max = params[P_QMAX]
    q_now = q[0]
    if not (q_now == q_now and abs(q_now) < np.inf):
        q_now = 0.0  # no position stream yet: flat
    max_level = params[P_MAX_LEVEL]
    if not (max_level == max_level):
        max_level = np.inf
    mode = int(params[P_MODE])
    tot_b = 0.0
    tot_a = 0.0
    if mode == 0:  # the RFC's optimum, level by level, each at the inventory after the ones before
        if not (bid_epnl[0] == bid_epnl[0] or ask_epnl[0] == ask_epnl[0]):
            return EMIT.NONE  # no E[PnL] yet
        sig = sigma[0]
        if not (sig == sig and sig < np.inf):
            sig = params[P_SIGMA0]
        sig = max(sig, params[P_SIGMA_MIN])
        c = params[P_GAMMA] * sig * sig * params[P_TAU]
        b = params[P_BETA] / (q_max * q_max)
        post = params[P_GAMMA_AT] < 0.5
        whole = params[P_GAMMA_AT] > 1.5
        for side_i in range(2):
            side = 1.0 if side_i == 0 else -1.0
            qi = q_now
            for i in range(bid_sizes.shape[0]):
                e = _level(bid_epnl, i) if side_i == 0 else _level(ask_epnl, i)
                s = 0.0
                if i < n:
                    cap = min(max(q_max - side * qi, 0.0), max_level)
                    if whole:
                        s = inventory_size(e, qi, side, c, b, cap)
                    else:
                        s = optimal_size(e, qi, side, c, b, cap, post)
                    qi += side * s
                if side_i == 0:
                    bid_sizes[i] = s
                    tot_b += s
                else:
                    ask_sizes[i] = s
                    tot_a += s
        reduce_only[0] = 0.0
    else:  # seed 004 Stage 5: posterior sizing with reduce-only hysteresis
        p = p_down[0]
        if not (p >= 0.0 and p <= 1.0):
            p = 0.5  # no posterior: neutral
        min_v = params[P_MIN_VIABLE]
        m = state[S_MODE]
        if m > 0.0 and (p < params[P_RESUME] or q_now <= min_v):
            m = 0.0
        elif m < 0.0 and (p > 1.0 - params[P_RESUME] or q_now >= -min_v):
            m = 0.0
        if m == 0.0:
            if p > params[P_REDUCE] and q_now > min_v:
                m = 1.0
            elif p < 1.0 - params[P_REDUCE] and q_now < -min_v:
                m = -1.0
        state[S_MODE] = m
        gate = params[P_GATE] > 0.5
        wsum = 0.0
        for i in range(min(n, bid_sizes.shape[0])):
            wsum += _weight(i, params[P_DECAY])
        reduce_total = (
            min(abs(q_now), params[P_MAX_REDUCE])
            if params[P_MAX_REDUCE] == params[P_MAX_REDUCE]
            else abs(q_now)
        )
        cap_b = min(max((q_max - q_now) / q_max, 0.0), 1.0)
        cap_a = min(max((q_max + q_now) / q_max, 0.0), 1.0)
        head_b = max(q_max - q_now, 0.0)
        head_a = max(q_max + q_now, 0.0)
        for i in range(bid_sizes.shape[0]):
            sb = 0.0
            sa = 0.0
            if i < n:
                w = _weight(i, params[P_DECAY])
                if m > 0.0:
                    sa = reduce_total * w / wsum
                elif m < 0.0:
                    sb = reduce_total * w / wsum
                else:
                    sb = params[P_BASE] * w * (1.0 - p) * cap_b
                    sa = params[P_BASE] * w * p * cap_a
                    if gate and not (_level(bid_epnl, i) > 0.0):
                        sb = 0.0
                    if gate and not (_level(ask_epnl, i) > 0.0):
                        sa = 0.0
                    sb = min(sb, max_level, max(head_b - tot_b, 0.0))
                    sa = min(sa, max_level, max(head_a - tot_a, 0.0))
            bid_sizes[i] = sb
            ask_sizes[i] = sa
            tot_b += sb
            tot_a += sa
        reduce_only[0] = m
    bid_total[0] = tot_b
    ask_total[0] = tot_a
    return EMIT.ALL


class Sizing(Node):
    """Per-level order sizes per side: the RFC's optimal size, or seed 004's posterior sizing.

    mode "rfc" (seed 000 Component 3 "Optimal Size Per Level", CONVENTIONS.md side-aware form):
    for each side (+1 bid, -1 ask) and level i = 0..levels-1 (0 = touch),

        s_i = argmax over 0 <= s <= cap_i of  s E_i - gamma(q_i + side s) sigma^2 tau s^2
        gamma(x) = gamma_base (1 + beta (x / q_max)^2)           (quoting.gamma_q's function)
        q_i = q + side (s_0 + ... + s_{i-1})                     (inventory once the levels before filled)
        cap_i = min(max(q_max - side q_i, 0), max_level_size)    (headroom to +-q_max)

    and s_i = 0 where E_i <= 0 or NaN (but see `inventory` below; E_i = quoting.epnl E[PnL] of
    level i, bps per contract;
    gamma_base in 1/(bps contract) with sigma in bps/sqrt(s) and tau in s, so gamma sigma^2 tau is
    bps per contract and the objective is bps x contracts). Levels are sized in order from the
    touch, each at the inventory the shallower ones would leave (a deeper level fills only after
    them): the side total never exceeds the headroom and every s_i is continuous in q.

    Solution. `gamma_at: current` (default) evaluates gamma at q_i (no s inside): the closed form
    s = E / (2 gamma(q_i) sigma^2 tau), clipped to cap; the objective is concave and s* is
    continuous in (E, q) everywhere; the side enters through q_i, the headroom and E.
    `gamma_at: post_fill` keeps the seed / CONVENTIONS gamma(q_i + side s): dF/ds = E - 2 c s
    [1 + b (q + side s)(q + 2 side s)] (c = gamma_base sigma^2 tau, b = beta/q_max^2) is a cubic,
    solved exactly up to bisection on its monotone pieces (see optimal_size), taking the global
    maximum. F is concave, and s* continuous, only while beta (q/q_max)^2 <= 2; beyond (the
    reducing side at |q| > 0.71 q_max for beta 4) F is non-concave for s between ~0.21 |q| and
    ~0.79 |q| (the reducing fill lowers gamma), and the global maximum jumps between two local
    maxima: with gamma_base 0.002, sigma 1, tau 60 and E ~ 0.8 bps the unwinding ask size jumps by
    ~2.8 contracts near q = 0.75 q_max (tests/nodes/quoting/test_sizing.py shows it). That is why
    it is not the default: the RFC's "no discontinuities" wins over the literal formula.

    `gamma_at: inventory` reads the seed's words, "marginal risk of adding s to inventory q", as
    the change in the whole inventory's risk rather than a cost on s alone:

        s_i = argmax  s E_i - c [h(q_i + side s) - h(q_i)],   h(x) = x^2 (1 + b x^2)

    (c, b as above; at q_i = 0 it is the seed's gamma(s) sigma^2 tau s^2). h is convex, so the
    objective is concave and s* is continuous in (E, q): the post-fill inventory goes to the
    target u* solving h'(u*) = 2u* + 4 b u*^3 = side E / c (one real root, in closed form), s* =
    clip(side (u* - q_i), 0, cap). The difference that matters: a side that reduces the
    inventory is worth its risk reduction, so it keeps quoting while E <= 0 as long as E >
    -c h'(|q|) (mean-variance's reservation logic, in sizes). With the literal forms a long
    whose reservation price has dropped below the mid sees E[ask] <= 0, quotes no ask and stays
    stuck at q_max. E NaN still means no level. With
    sigma (after sigma_floor) or gamma zero there is no risk cost and a level with E > 0 takes its
    whole cap.

    mode "posterior" (seed 004 Stage 5), p = P(down) (estimators.direction_logodds p_down):

        bid_i = base_size w_i (1 - p) capacity_bid,  ask_i = base_size w_i p capacity_ask
        w_i = level_decay^i
        capacity_bid = clip((q_max - q)/q_max, 0, 1),  capacity_ask = clip((q_max + q)/q_max, 0, 1)

    each side's running total clipped to its headroom (q_max -+ q) and each level to
    max_level_size; with `epnl_gate: true` a level whose wired E[PnL] is not > 0 gets 0. Reduce-only
    with hysteresis (seed 004 section 8: p_reduce 0.85 enters, p_resume 0.70 leaves; these are
    thresholds on P(down), not fractions of q_max): entered when p > p_reduce and q > min_viable_size
    (long, ask-only: reduce_only +1) or p < 1 - p_reduce and q < -min_viable_size (short,
    bid-only: -1); left when p falls below p_resume (rises above 1 - p_resume) or the position is
    no longer above min_viable_size on that side. In reduce-only the opposed side is 0 and the
    reducing side quotes min(|q|, max_reduce_size) in total, split over the levels by w_i (never
    more than the position: it cannot flip). Entering and leaving reduce-only are the only
    discontinuities (in p and q); the state changes only when the node runs.

    Inputs (all optional): bid_epnl / ask_epnl (quoting.epnl, vec; entry i = level i; missing
    entries are NaN = no level), q (exec.position; unwired / NaN = 0), sigma (bps/sqrt(s);
    NaN = sigma_fallback), p_down (NaN or outside [0, 1] = 0.5). In rfc mode the node is silent
    until an E[PnL] vec has a level-0 value.

    Outputs: bid_sizes, ask_sizes (vec of size `levels`, contracts, entry i = ladder level i,
    0 where no order; wire them to quoting.ladder's per-level size inputs), reduce_only (+1 / -1 /
    0), bid_total, ask_total (contracts). Sizes are not rounded: the ladder rounds to szDecimals
    and drops orders under the $10 minimum. Cycle-triggered."""

    type_name = "quoting.sizing"

    class Params(NodeParams):
        mode: Literal["rfc", "posterior"] = Field(
            "rfc", description="rfc: argmax of s E - risk; posterior: seed 004"
        )
        levels: int = Field(6, ge=1, le=LADDER_LEVELS, description="levels per side (vec output size)")
        gamma_at: Literal["post_fill", "current", "inventory"] = Field(
            "current",
            description="rfc: gamma at q + side s (seed), at q (closed form), or the inventory's risk change",
        )
        gamma_base: float = Field(
            0.002, ge=0, description="gamma_base, 1/(bps contract) (match quoting.gamma_q)"
        )
        beta: float = Field(4.0, ge=0, description="inventory curvature of gamma(q) (match quoting.gamma_q)")
        q_max: float = Field(8.57, gt=0, description="position limit, contracts")
        tau_s: float = Field(60.0, gt=0, description="risk horizon tau of the risk cost, s")
        sigma_fallback: float = Field(1.0, ge=0, description="sigma when unwired / NaN, bps/sqrt(s)")
        sigma_floor: float = Field(0.0, ge=0, description="sigma is at least this, bps/sqrt(s)")
        max_level_size: float | None = Field(None, gt=0, description="cap per level, contracts (None = none)")
        base_size: float = Field(0.6, ge=0, description="posterior: level-0 size before (1-p) / p, contracts")
        level_decay: float = Field(1.0, gt=0, description="posterior: level i weight = level_decay^i")
        p_reduce: float = Field(0.85, gt=0.5, lt=1, description="posterior: P(down) entering reduce-only")
        p_resume: float = Field(0.70, ge=0.5, lt=1, description="posterior: P(down) leaving reduce-only")
        min_viable_size: float = Field(
            0.05, ge=0, description="posterior: |q| above which reduce-only applies"
        )
        max_reduce_size: float | None = Field(
            None, gt=0, description="posterior: reduce-only total cap, contracts (None = |q|)"
        )
        epnl_gate: bool = Field(False, description="posterior: zero levels whose E[PnL] is not > 0")

        @model_validator(mode="after")
        def _hysteresis(self):
            if self.p_resume >= self.p_reduce:
                raise ValueError(f"p_resume ({self.p_resume}) must be below p_reduce ({self.p_reduce})")
            return self

    inputs = {
        "bid_epnl": In("vec", optional=True, doc="E[PnL] per bid level, bps (quoting.epnl bid_epnl)"),
        "ask_epnl": In("vec", optional=True, doc="E[PnL] per ask level, bps (quoting.epnl ask_epnl)"),
        "q": In("f64", optional=True, doc="signed position, contracts (exec.position)"),
        "sigma": In("f64", optional=True, doc="volatility, bps/sqrt(s) (estimators.vol sigma)"),
        "p_down": In("f64", optional=True, doc="P(down) (estimators.direction_logodds p_down)"),
    }
    outputs = {
        "bid_sizes": Out("vec", size="levels", doc="bid size per level, contracts"),
        "ask_sizes": Out("vec", size="levels", doc="ask size per level, contracts"),
        "reduce_only": Out("f64", doc="+1 ask-only (reducing a long), -1 bid-only, 0 two-sided"),
        "bid_total": Out("f64", doc="sum of bid_sizes, contracts"),
        "ask_total": Out("f64", doc="sum of ask_sizes, contracts"),
    }
    kernel = sizing_kernel

    def pack_params(self) -> np.ndarray:
        """Field order; mode and gamma_at as their index in MODES / GAMMA_AT, None as NaN."""
        p = self.params
        values = []
        for name in type(p).model_fields:
            v = getattr(p, name)
            if name == "mode":
                v = MODES.index(v)
            elif name == "gamma_at":
                v = GAMMA_AT.index(v)
            values.append(math.nan if v is None else float(v))
        return np.array(values, dtype=np.float64)

    def init_state(self):
        return (np.zeros(1),)  # see S_MODE


EMIT = Sizing.EMIT  # the kernel's named emit bits (compile-time constants)
