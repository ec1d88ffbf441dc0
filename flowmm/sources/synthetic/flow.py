"""Order-flow price formation (issue 17; docs/synthetic.md, "Order flow moves the price").

``flow_pass`` runs after ``kernels.latent_pass`` when a scenario has a ``flow:`` section. It
generates every aggressive order of the run (the renderer then prints them against the book
instead of drawing its own) and adds their price impact to the latent mid ``X``:

* arrivals: a Hawkes process (self-exciting, exogenous of any sign information), so orders
  cluster in time;
* signs: a hidden metaorder state M in {0, +1, -1} (a parent order split into child orders
  over minutes, Lillo-Mike-Farmer 2005): while M != 0 an order is a buy with probability
  (1 + a M)/2, so order signs are persistent; with ``informed`` > 0 new metaorders take the
  latent drift's side (Kyle 1985 / Glosten-Milgrom 1985: they trade on what the price will do);
* impact: each order moves the mid by ``eps * 2 (1 - p_eps) * lambda * (v / v_med)^delta``,
  where p_eps is the probability the market gave that sign before seeing it (an exact Bayes
  filter of M on the public tape). Every order moves the mid in its direction, concavely in
  its size (square-root law, Toth et al. 2011), and predictable orders move it less: the
  asymmetric-liquidity mechanism of Lillo & Farmer 2004 / Farmer, Gerig, Lillo & Mike 2006,
  which makes the price an exact martingale under uninformed flow however long the sign
  memory (the "history-dependent impact model" form of the Bouchaud et al. 2004 propagator,
  Taranto et al. 2018);
* liquidations: leveraged positions opened around the mid's 10-minute average ``A`` have
  their liquidation prices spread from ``liq_distance_bps`` below it (longs) and above it
  (shorts) outward; when the mid crosses levels not crossed before (below the front ``lo``,
  above ``hi``) forced orders are triggered in proportion to the range crossed, arriving as a
  self-exciting (Hawkes) burst; their impact pushes the mid further, which crosses more
  levels. The fronts relax back to A -+ liq_distance_bps (new positions are opened), so a
  market that has stood still has fresh levels at that distance again.

Randomness: its own stream (seeded from the scenario seed), so the latent pass and the
renderer draw exactly what they draw without a flow section."""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass

import numpy as np
from numba import njit

# flow knobs (scenario.Flow)
FK_IMPACT, FK_META, FK_INFORMED, FK_LIQ = range(4)
N_FK = 4
# flow model constants (FlowModel)
(
    FC_DT, FC_MU_REF, FC_IMPACT, FC_DELTA, FC_FCAP, FC_META_A, FC_META_ON, FC_META_T, FC_INF_ON,
    FC_HK_N, FC_HK_BETA, FC_LQ_TAU, FC_LQ_DIST, FC_LQ_RATE, FC_LQ_N, FC_LQ_BETA, FC_LQ_SIZE, FC_DEPTH_SD,
    FC_DEPTH_TAU,
) = range(19)  # fmt: skip
N_FC = 19
# instrument/segment inputs (packed by source.Synthetic)
FI_PRICE, FI_TICK, FI_LOT, FI_RATE, FI_MED, FI_LOGSD = range(6)
N_FI = 6
# order kinds in F_KIND
KIND_NOISE, KIND_META, KIND_LIQ = 0, 1, 2
S_MU_COL, S_ACT_COL = 0, 7  # scenario.SEG_FIELDS: mu, activity


@dataclass(frozen=True)
class FlowModel:
    """Constants of the order-flow mechanisms at knob 1 (docs/synthetic.md has the sources
    and the reasoning for each value)."""

    dt: float = 0.1
    mu_ref: float = 0.05  # bps/s, the drift scale of tanh(mu / mu_ref)
    impact_bps: float = 0.3  # lambda: mid move of an unpredicted median-size order
    impact_delta: float = 0.5  # concavity: impact ~ size^delta (square-root law)
    impact_cap: float = 12.0  # (v / v_med)^delta capped: one print cannot move the mid > 12 lambda
    meta_share: float = 0.8  # a: share of the flow a live metaorder takes
    meta_start_per_s: float = 1.0 / 120.0  # metaorders starting per s (when none is live)
    meta_duration_s: float = 120.0  # mean life of a metaorder (exponential)
    informed_start_per_s: float = 1.0 / 30.0  # extra starts per s on the drift's side at |tanh| = 1
    hawkes_n: float = 0.7  # branching ratio of order arrivals (signless clustering)
    hawkes_beta: float = 0.2  # 1/s, decay of the arrival excitation
    liq_refill_tau_s: float = 600.0  # the mid's 10-min EMA: where the crowd's positions were opened
    liq_distance_bps: float = 10.0  # nearest liquidation levels this far beyond it (leverage)
    liq_per_bps: float = 0.5  # forced orders per bps of new low (new high) the mid crosses
    liq_hawkes_n: float = 0.5  # branching ratio of forced orders
    liq_hawkes_beta: float = 0.3  # 1/s
    liq_size_mult: float = 10.0  # forced orders' median size / the crowd's
    depth_sd: float = 0.45  # sd of log market depth: impact scales as exp(-log depth), E[scale^2] = 1
    depth_tau_s: float = 120.0  # its OU time constant (liquidity comes and goes over minutes)

    def array(self) -> np.ndarray:
        a = np.array(astuple(self), np.float64)
        assert len(a) == N_FC, "FlowModel fields and FC_* out of step"
        return a


FLOW_MODEL = FlowModel()


@njit(cache=True)
def _filter_step(post, a_on, a_off):
    """Markov prediction of the hidden metaorder state (post = P(M=0), P(M=+1), P(M=-1))."""
    p0 = post[0] * (1.0 - a_on) + (post[1] + post[2]) * a_off
    pp = post[1] * (1.0 - a_off) + post[0] * 0.5 * a_on
    pm = post[2] * (1.0 - a_off) + post[0] * 0.5 * a_on
    post[0] = p0
    post[1] = pp
    post[2] = pm


@njit(cache=True)
def _filter_obs(post, eps, a):
    """Bayes update on one order's sign; returns P(sign = eps) before it was seen."""
    l0 = 0.5
    lp = 0.5 * (1.0 + a * eps)
    lm = 0.5 * (1.0 - a * eps)
    pr = post[0] * l0 + post[1] * lp + post[2] * lm
    post[0] = post[0] * l0 / pr
    post[1] = post[1] * lp / pr
    post[2] = post[2] * lm / pr
    return pr


@njit(cache=True)
def _chain_step(m, a_on, a_off, p_informed, side_inf):
    """The true metaorder state one block on: a start from 0 is on the drift's side with
    probability p_informed (its extra rate included in a_on), else a coin flip."""
    if m == 0:
        if np.random.random() < a_on:
            if np.random.random() < p_informed:
                return side_inf
            return 1 if np.random.random() < 0.5 else -1
        return 0
    if np.random.random() < a_off:
        return 0
    return m


@njit(cache=True)
def _one(st, post, eps, v, kind, fk, fc, fi, F_SIDE, F_SIZE, F_KIND, F_WALK, j):
    """Record order j and add its impact to st[0] (cumulative impact, bps). A forced order
    walks the book as far as its impact moves the touch (F_WALK ticks): it is a sweep."""
    F_SIDE[j] = eps
    F_SIZE[j] = v
    F_KIND[j] = kind
    pr = _filter_obs(post, float(eps), fc[FC_META_A])
    f = min((v / fi[FI_MED]) ** fc[FC_DELTA], fc[FC_FCAP])
    d = eps * 2.0 * (1.0 - pr) * fk[FK_IMPACT] * fc[FC_IMPACT] * f * st[1]
    st[0] += d
    F_WALK[j] = int(abs(d) / (fi[FI_TICK] / fi[FI_PRICE] * 1e4) + 0.5) if kind == KIND_LIQ else 0


@njit(cache=True)
def _size(fi, mult):
    lot = fi[FI_LOT]
    v = fi[FI_MED] * mult * math.exp(fi[FI_LOGSD] * np.random.normal(0.0, 1.0))
    return max(lot, math.floor(v / lot + 0.5) * lot)


@njit(cache=True)
def flow_pass(seed, x0, seg_start, seg_par, fk, fc, fi, MU, X, SIG, F_OFF, F_SIDE, F_SIZE, F_KIND, F_WALK):
    """Orders of every block into F_* (block k's orders are F_OFF[k]:F_OFF[k+1]) and their
    impact into X (from the next block on: an order meets the book its block starts with).
    Returns the number of orders, or -1 when F_SIDE is too small (the caller retries)."""
    np.random.seed(seed)
    n = X.shape[0]
    cap = F_SIDE.shape[0]
    dt = fc[FC_DT]
    h = 0.5 * fi[FI_TICK] / fi[FI_PRICE] * 1e4  # half tick, bps (X is in half ticks)
    a_meta = fc[FC_META_A]
    a_off = dt / fc[FC_META_T]
    on_u = fk[FK_META] * fc[FC_META_ON] * dt
    n_hk = fc[FC_HK_N]
    dec = math.exp(-fc[FC_HK_BETA] * dt)
    alpha = n_hk * (1.0 - dec) / dt  # expected offspring alpha dt / (1 - dec) = n_hk
    dec_l = math.exp(-fc[FC_LQ_BETA] * dt)
    alpha_l = fc[FC_LQ_N] * (1.0 - dec_l) / dt
    b_ref = dt / fc[FC_LQ_TAU]
    liq = fk[FK_LIQ] * fc[FC_LQ_RATE]
    decay_l = (1.0 - dec_l) / dt  # a triggered mass L arrives at rate L * decay_l, decaying
    lam_imp = fk[FK_IMPACT] * fc[FC_IMPACT]
    ef2 = math.exp(2.0 * (fc[FC_DELTA] * fi[FI_LOGSD]) ** 2)  # E f^2 of a lognormal size
    post = np.array([1.0, 0.0, 0.0])  # the market's belief about M; one allocation per run
    st = np.zeros(2)  # cumulative impact (bps), impact scale of the current market depth
    b_d = math.exp(-dt / fc[FC_DEPTH_TAU])
    sd_d = fc[FC_DEPTH_SD]
    ld = sd_d * np.random.normal(0.0, 1.0)
    m = 0
    ex = 0.0
    ex_dn = 0.0
    ex_up = 0.0
    dist = fc[FC_LQ_DIST]
    anchor = 0.0  # where positions were opened (bps from start)
    lo = -dist  # the nearest long-liquidation levels not yet crossed, and short ones
    hi = dist
    j = 0
    nseg = seg_start.shape[0]
    s = 0
    for k in range(n):
        while s + 1 < nseg and k >= seg_start[s + 1]:
            s += 1
        F_OFF[k] = j
        ld = ld * b_d + sd_d * math.sqrt(1.0 - b_d * b_d) * np.random.normal(0.0, 1.0)
        st[1] = math.exp(ld - sd_d * sd_d)
        X[k] += int(math.floor(st[0] / h + 0.5))
        price_bps = (X[k] - x0) * h
        anchor += (price_bps - anchor) * b_ref
        lo += (anchor - dist - lo) * b_ref
        hi += (anchor + dist - hi) * b_ref
        if price_bps < lo:  # levels crossed: a mass of forced sells, arriving as a burst
            ex_dn += liq * (lo - price_bps) * decay_l
            lo = price_bps
        if price_bps > hi:
            ex_up += liq * (price_bps - hi) * decay_l
            hi = price_bps
        # metaorders: the true state moves, the market's belief is propagated with the same
        # uninformed chain (it cannot see the drift)
        th = math.tanh(MU[k] / fc[FC_MU_REF])
        inf_on = fk[FK_INFORMED] * fc[FC_INF_ON] * abs(th) * dt
        m = _chain_step(m, on_u + inf_on, a_off, inf_on / max(on_u + inf_on, 1e-300), 1 if th > 0 else -1)
        _filter_step(post, on_u, a_off)
        base = fi[FI_RATE] * seg_par[s, S_ACT_COL] * (1.0 - n_hk)
        nk = np.random.poisson((base + ex) * dt)
        nd = np.random.poisson(ex_dn * dt) if ex_dn > 0.0 else 0
        nu = np.random.poisson(ex_up * dt) if ex_up > 0.0 else 0
        if j + nk + nd + nu > cap:
            return -1
        for _ in range(nk):
            meta = m != 0 and np.random.random() < a_meta
            eps = m if meta else (1 if np.random.random() < 0.5 else -1)
            _one(st, post, eps, _size(fi, 1.0), KIND_META if meta else KIND_NOISE, fk, fc, fi,
                 F_SIDE, F_SIZE, F_KIND, F_WALK, j)  # fmt: skip
            j += 1
        for _ in range(nd):
            _one(st, post, -1, _size(fi, fc[FC_LQ_SIZE]), KIND_LIQ, fk, fc, fi, F_SIDE, F_SIZE, F_KIND,
                 F_WALK, j)  # fmt: skip
            j += 1
        for _ in range(nu):
            _one(st, post, 1, _size(fi, fc[FC_LQ_SIZE]), KIND_LIQ, fk, fc, fi, F_SIDE, F_SIZE, F_KIND,
                 F_WALK, j)  # fmt: skip
            j += 1
        ex = ex * dec + alpha * nk
        ex_dn = ex_dn * dec_l + alpha_l * nd
        ex_up = ex_up * dec_l + alpha_l * nu
        # the truth's sigma carries the flow's variance (lambda^2 * rate * E f^2, unpredicted)
        SIG[k] = math.sqrt(SIG[k] * SIG[k] + (lam_imp * st[1]) ** 2 * (base + ex) * ef2)
    F_OFF[n] = j
    return j
