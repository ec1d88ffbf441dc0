"""numba generators of the synthetic market (docs/synthetic.md has the equations).

Two passes:

* ``latent_pass`` - the price world, for the whole run at once, block by block (one block =
  ``dt`` = 0.1 s): regime drift mu (OU toward the segment's target), stochastic volatility,
  the reference asset (BTC), the instrument's efficient mid ``X`` in *half ticks* (so the mid
  of a book on the tick grid is exactly ``X/2`` ticks), and the jumps, each of which will be
  rendered as a sweep. ``anticipation`` adds a forward-looking average of the drift.
* ``render`` - the microstructure, chunk by chunk with persistent state: the book (one queue
  per tick and side), Hawkes order arrivals and their prints, sweeps, bbo, the merged
  5-level/20-level book feed, reference and spot mids, ctx (funding, OI, ...), truth.

Nothing rendered feeds back into ``X``: the market does not react to trades (ours or anyone's),
so the only ways observables predict returns are the planted channels (knobs).

Randomness: numba's own generator, re-seeded at the entry of every call from a seed derived
from (scenario seed, pass, chunk), so a chunk's events do not depend on what ran before it in
the process, and a shorter run is an exact prefix of a longer one.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from flowmm.core import events as E

# segment parameter columns (scenario.SEG_FIELDS)
(
    S_MU,
    S_MU_SD,
    S_MU_TAU,
    S_SIGMA,
    S_JUMP_RATE,
    S_JUMP_TICKS,
    S_MR,
    S_ACT,
    S_SPREAD,
    S_OI_FLOW,
    S_REGIME,
    S_BTC_MU,
) = range(12)
# knobs (scenario.KNOB_NAMES)
K_BOOK, K_SIDE, K_SWEEP, K_HAWKES, K_LEAD, K_BASIS, K_OI, K_FUNDING, K_SIZE = range(9)
# model constants (source.Model)
(
    C_DT, C_MU_REF, C_SIGMA_TAU, C_VOV, C_BOOK_G, C_BOOK_H, C_BOOK_DEPTH, C_SIDE_A, C_SWEEP_RATE,
    C_HAWKES_N, C_HAWKES_BETA, C_LEAD_SHARE, C_BASIS_K, C_BASIS_TAU, C_BASIS_MU_TAU, C_OI_OPEN,
    C_FUND_ZMAX, C_ANTIC_TAU, C_FUND_TAU, C_SIZE_SHIFT, C_MR_TAU, C_PARITY, C_SPREAD_REFRESH,
    C_BOOK_REFRESH, C_REFRESH_DEPTH, C_JUMP_MIN, C_REPRICE, C_XMIT, C_PFLIP,
) = range(29)  # fmt: skip
N_CONST = 29
# instrument parameters
(
    I_PRICE, I_TICK, I_LOT, I_DEPTH_SCALE, I_TRADE_RATE, I_TS_MED, I_TS_LOGSD, I_OI0, I_BTC_PX, I_BTC_TICK,
    I_BTC_SIGMA, I_BETA, I_BASIS_MEAN, I_BASIS_SD, I_F_MEAN, I_F_SD, I_TICK_DIV, I_BTC_TICK_DIV,
) = range(18)  # fmt: skip
N_IPAR = 18
# integer state
IS_INIT, IS_BID, IS_ASK, IS_SPREAD, IS_TID, IS_BBO_SET, IS_STALE_NB, IS_STALE_NA, IS_HOUR = range(9)
N_ISTATE = 9
# float state
FS_EB, FS_ES, FS_ZF, FS_FCUR, FS_BN, FS_MUEMA, FS_OI, FS_FSUM, FS_FCNT, FS_BBO = range(10)  # FS_BBO..+6
N_FSTATE = 16
LEVELS = 20
FRESH = 5  # levels of the fast book feed
BOOK_EVERY = 5  # blocks between book events (0.5 s)
FULL_EVERY = 50  # blocks between fully fresh 20-level books (5 s)
MIDS_EVERY = 5  # reference and spot mids (0.5 s)
CTX_EVERY = 10  # ctx and truth (1 s)
HOUR_NS = 3_600_000_000_000


# --- small helpers ------------------------------------------------------------------------


@njit(cache=True)
def _geometric(mean):
    """Number of failures before a success, with the given mean (0 if mean <= 0)."""
    if mean <= 0.0:
        return 0
    p = 1.0 / (1.0 + mean)
    u = np.random.random()
    if u <= 0.0:
        u = 1e-300
    return int(math.floor(math.log(u) / math.log1p(-p)))


@njit(cache=True)
def _draw_cdf(cdf):
    u = np.random.random()
    for i in range(cdf.shape[0]):
        if u < cdf[i]:
            return i
    return cdf.shape[0] - 1


@njit(cache=True)
def _lot_round(x, lot):
    return math.floor(x / lot + 0.5) * lot


@njit(cache=True)
def _px(p, ipar, which):
    """Price of integer tick ``p``: exact division when 1/tick is an integer."""
    div = ipar[I_TICK_DIV] if which == 0 else ipar[I_BTC_TICK_DIV]
    if div > 0.0:
        return p / div
    return p * (ipar[I_TICK] if which == 0 else ipar[I_BTC_TICK])


# --- the price world ----------------------------------------------------------------------


@njit(cache=True)
def latent_pass(
    seed_ref,
    seed_ins,
    n,
    lag,
    x0,
    seg_start,
    seg_par,
    knobs,
    cst,
    ipar,
    X,
    JUMP,
    MU,
    MULAT,
    SIG,
    REG,
    Y,
    dy,
    mub,
    yb,
):
    """Fill X, JUMP, MU, MULAT, SIG, REG, Y for blocks 0..n-1 (see the module docstring).

    ``lag`` = the reference lead in blocks; ``dy``, ``mub``, ``yb`` are scratch of n + lag:
    the reference path starts ``lag`` blocks before the instrument's first block. The two paths
    have their own random streams, so any run is a prefix of a longer one."""
    np.random.seed(seed_ref)
    dt = cst[C_DT]
    nseg = seg_start.shape[0]
    h = 0.5 * ipar[I_TICK] / ipar[I_PRICE] * 1e4  # half tick, bps
    tick_bps = 2.0 * h
    sb = ipar[I_BTC_SIGMA]
    beta = ipar[I_BETA]
    share = min(1.0, knobs[K_LEAD] * cst[C_LEAD_SHARE]) if lag > 0 else 0.0
    beta_l = beta * share
    beta_c = beta - beta_l
    sqdt = math.sqrt(dt)
    # reference: index j <-> instrument block j - lag; its drift targets run lag blocks ahead
    s = 0
    m = seg_par[0, S_BTC_MU]
    y = 0.0
    for j in range(n + lag):
        while s + 1 < nseg and j >= seg_start[s + 1]:
            s += 1
        a = math.exp(-dt / seg_par[s, S_MU_TAU])
        m = seg_par[s, S_BTC_MU] + (m - seg_par[s, S_BTC_MU]) * a
        mub[j] = m
        dy[j] = m * dt + sb * sqdt * np.random.normal(0.0, 1.0)
        y += dy[j]
        yb[j] = y
    # instrument
    np.random.seed(seed_ins)
    s = 0
    mu_ou = seg_par[0, S_MU] - beta * seg_par[0, S_BTC_MU]
    vov = cst[C_VOV]
    b_sv = math.exp(-dt / cst[C_SIGMA_TAU])
    sv_sd = vov * math.sqrt(1.0 - b_sv * b_sv)
    ls = vov * np.random.normal(0.0, 1.0)
    b_anchor = dt / cst[C_MR_TAU]
    anchor = 0.0
    xk = x0
    mu_ref = cst[C_MU_REF]
    xmit = int(cst[C_XMIT])
    p_flip = cst[C_PFLIP]
    # mean variance of the random rounding (f(1-f), f uniform) and of the parity flips, bps^2/s
    v_round = h * h * (1.0 / 6.0 + 0.5 * p_flip) / (xmit * dt)
    par_odd = cst[C_PARITY]
    for k in range(n):
        while s + 1 < nseg and k >= seg_start[s + 1]:
            s += 1
        a = math.exp(-dt / seg_par[s, S_MU_TAU])
        tgt = seg_par[s, S_MU] - beta * seg_par[s, S_BTC_MU]  # own share of the target drift
        mu_ou = (
            tgt
            + (mu_ou - tgt) * a
            + seg_par[s, S_MU_SD] * math.sqrt(1.0 - a * a) * np.random.normal(0.0, 1.0)
        )
        ls = ls * b_sv + sv_sd * np.random.normal(0.0, 1.0)
        sig_tot = seg_par[s, S_SIGMA] * math.exp(ls)
        price_bps = (xk - x0) * h
        anchor += (price_bps - anchor) * b_anchor
        mr = -seg_par[s, S_MR] * (price_bps - anchor)
        jc = k + lag
        mlat = mu_ou + beta_c * mub[jc] + beta_l * mub[k]
        d = mlat + mr
        MU[k] = d
        MULAT[k] = mlat
        REG[k] = int(seg_par[s, S_REGIME])
        # informed sweeps: on the drift's side, rate growing with |drift|
        lam_inf = knobs[K_SWEEP] * cst[C_SWEEP_RATE] * min(abs(d) / mu_ref, 3.0)
        side_inf = 1 if d > 0.0 else -1
        jm = max(seg_par[s, S_JUMP_TICKS], cst[C_JUMP_MIN])
        gm = jm - cst[C_JUMP_MIN]
        ej = jm * tick_bps
        ej2 = (jm * jm + gm + gm * gm) * tick_bps * tick_bps
        lam_j = seg_par[s, S_JUMP_RATE]
        jvar = (lam_j + lam_inf) * ej2
        vbtc = (beta_c * beta_c + beta_l * beta_l) * sb * sb
        own2 = sig_tot * sig_tot - vbtc - jvar - v_round
        fl = (0.15 * sig_tot) ** 2
        if own2 < fl:
            own2 = fl
        # own diffusion: symmetric +-1 and +-2 half-tick steps; the parity-changing +-1 steps
        # are more frequent from an even mid than from an odd one (same variance either way),
        # which keeps the mid on half ticks (odd spreads) as often as in the calibration book.
        # The drift rides on the +-1 steps, whose rate is raised to |drift| when the variance
        # budget is too small to carry it (a drift on a grid needs that much variance).
        # Informed jumps are compensated ex ante: the expected drift stays d, the jumps
        # reveal it, they do not add to it.
        cont = mu_ou + mr - side_inf * lam_inf * ej
        v = own2 / (h * h)
        net = cont / h
        a1 = max(v * (par_odd if xk % 2 != 0 else 1.0), abs(net))
        b2 = max(0.0, 0.25 * (v - a1))
        SIG[k] = math.sqrt((a1 + 4.0 * b2) * h * h + vbtc + jvar + v_round)
        step = np.random.poisson(0.5 * (a1 + net) * dt) - np.random.poisson(0.5 * (a1 - net) * dt)
        step += 2 * (np.random.poisson(0.5 * b2 * dt) - np.random.poisson(0.5 * b2 * dt))
        # the reference's moves arrive at the cadence its mid is published (so none is seen
        # early), rounded at random to the grid (a martingale rounding)
        if k % xmit == 0:
            dc = yb[jc] - (yb[jc - xmit] if jc >= xmit else 0.0)
            dl = (yb[k] - yb[k - xmit]) if k >= xmit else (yb[k] if lag > 0 else 0.0)
            step += int(math.floor((beta_c * dc + beta_l * dl) / h + np.random.random()))
            # a random rounding leaves the mid on a tick or half tick at random; a symmetric
            # +-1 (a martingale step) restores the calibrated share of half-tick mids
            if (xk + step) % 2 == 0 and np.random.random() < p_flip:
                step += 1 if np.random.random() < 0.5 else -1
        xk += step
        jump = 0
        u = np.random.random()
        if u < lam_inf * dt:
            jump = side_inf
        elif u < (lam_inf + lam_j) * dt:
            jump = 1 if np.random.random() < 0.5 else -1
        if jump != 0:
            jump *= 2 * (int(cst[C_JUMP_MIN]) + _geometric(gm))
        JUMP[k] = jump
        xk += jump
        X[k] = xk
        Y[k] = yb[jc]


@njit(cache=True)
def anticipation(mulat, dt, tau, out):
    """Forward exponentially weighted average of the drift: out[k] = E-weighted mean of
    mulat[k:], time constant tau (s). What the crowd 'knows' about the coming drift."""
    n = mulat.shape[0]
    w = math.exp(-dt / tau)
    out[n - 1] = mulat[n - 1]
    for k in range(n - 2, -1, -1):
        out[k] = (1.0 - w) * mulat[k] + w * out[k + 1]


# --- the book: one queue per tick and side, in a ring indexed by tick & (D-1) -------------


@njit(cache=True)
def _slot(d, pi, lm, lsd, cdf_n, scale, sz, nn, idx, forced):
    """Draw the queue at distance d (ticks) from the touch into ring slot idx. ``lm`` holds
    the log-size means in row 0 and the log of the size cap in row 1."""
    if forced or np.random.random() < pi[d]:
        sz[idx] = math.exp(min(lm[0, d] + lsd[d] * np.random.normal(0.0, 1.0), lm[1, d])) * scale
        nn[idx] = float(_draw_cdf(cdf_n))
    else:
        sz[idx] = 0.0
        nn[idx] = 0.0


@njit(cache=True)
def _move_touch(sz, nn, old, new, sgn, pi, lm, lsd, cdf_n, scale, reprice):
    """Move one side's touch from tick ``old`` to ``new`` (sgn +1 bids, -1 asks).

    Queues keep their absolute prices (a book is persistent), except the ``reprice`` ticks
    behind a moved touch, which are redrawn at their new distance (quotes pegged near the mid
    follow it); ticks the touch moves over toward the spread get fresh queues, ticks left
    inside the spread are re-used as fresh queues at the far end of the ring."""
    D = sz.shape[0]
    mask = D - 1
    m = sgn * (new - old)
    if abs(m) >= D:
        for d in range(D):
            _slot(d, pi, lm, lsd, cdf_n, scale, sz, nn, (new - sgn * d) & mask, d == 0)
        return
    if m > 0:
        for j in range(1, m):
            _slot(m - j, pi, lm, lsd, cdf_n, scale, sz, nn, (old + sgn * j) & mask, False)
        _slot(0, pi, lm, lsd, cdf_n, scale, sz, nn, new & mask, True)
    elif m < 0:
        w = -m
        for j in range(w):
            _slot(D - w + j, pi, lm, lsd, cdf_n, scale, sz, nn, (old - sgn * j) & mask, False)
    if m != 0:
        for d in range(1, reprice + 1):
            _slot(d, pi, lm, lsd, cdf_n, scale, sz, nn, (new - sgn * d) & mask, False)
    if sz[new & mask] <= 0.0:
        _slot(0, pi, lm, lsd, cdf_n, scale, sz, nn, new & mask, True)


@njit(cache=True)
def _tilt(p, sgn, mid_ticks, g_u, depth_bps):
    """Book-thinning multiplier of the queue at tick p: exp(sgn * g * u * w), w = 1 within
    ``depth_bps`` of mid and -1/2 from there to 5x as far (before a move, liquidity leaves the
    touch on the side the price moves toward and sits deeper), 0 beyond."""
    if g_u == 0.0:
        return 1.0
    dist = abs(p - mid_ticks) / mid_ticks * 1e4
    if dist <= depth_bps:
        return math.exp(sgn * g_u)
    if dist <= 5.0 * depth_bps:
        return math.exp(-0.5 * sgn * g_u)
    return 1.0


@njit(cache=True)
def _scan(sz, nn, touch, sgn, nmax, out, ipar, mid_ticks, g_u, depth_bps):
    """The first nmax non-empty levels from the touch outward -> out[i] = (px, sz, n)."""
    D = sz.shape[0]
    mask = D - 1
    lot = ipar[I_LOT]
    c = 0
    for d in range(D):
        p = touch - sgn * d
        i = p & mask
        if sz[i] > 0.0:
            q = _lot_round(sz[i] * _tilt(p, sgn, mid_ticks, g_u, depth_bps), lot)
            if q < lot:
                q = lot
            out[c, 0] = _px(p, ipar, 0)
            out[c, 1] = q
            out[c, 2] = nn[i]
            c += 1
            if c == nmax:
                break
    return c


@njit(cache=True)
def _refresh(sz, nn, touch, sgn, rho, depth, pi, lm, lsd, cdf_n, scale):
    """Each queue within ``depth`` ticks is redrawn with probability rho (geometric skips)."""
    mask = sz.shape[0] - 1
    lr = math.log1p(-rho)
    d = 0
    while True:
        u = np.random.random()
        if u <= 0.0:
            u = 1e-300
        d += int(math.floor(math.log(u) / lr))
        if d > depth:
            break
        _slot(d, pi, lm, lsd, cdf_n, scale, sz, nn, (touch - sgn * d) & mask, d == 0)
        d += 1


# --- event writers --------------------------------------------------------------------------


@njit(cache=True)
def _ev(out_t, out_k, out_off, ne, npl, t, kind):
    out_t[ne] = t
    out_k[ne] = kind
    out_off[ne] = npl


@njit(cache=True)
def _trade(out_t, out_k, out_off, out_pl, ne, npl, t, px, q, side, tid):
    _ev(out_t, out_k, out_off, ne, npl, t, E.TRADE)
    out_pl[npl] = px
    out_pl[npl + 1] = q
    out_pl[npl + 2] = side
    out_pl[npl + 3] = tid
    return ne + 1, npl + 4


@njit(cache=True)
def _book(out_t, out_k, out_off, out_pl, ne, npl, t, bl, nb, al, na):
    _ev(out_t, out_k, out_off, ne, npl, t, E.BOOK)
    out_pl[npl] = nb
    out_pl[npl + 1] = na
    p = npl + 2
    for i in range(nb):
        for j in range(3):
            out_pl[p + j] = bl[i, j]
        p += 3
    for i in range(na):
        for j in range(3):
            out_pl[p + j] = al[i, j]
        p += 3
    return ne + 1, p


@njit(cache=True)
def _scalars(out_t, out_k, out_off, out_pl, ne, npl, t, kind, vals, n):
    _ev(out_t, out_k, out_off, ne, npl, t, kind)
    for j in range(n):
        out_pl[npl + j] = vals[j]
    return ne + 1, npl + n


@njit(cache=True)
def _merge(fresh, nf, stale, ns, sgn, out):
    """Fresh top levels, then the last full book's levels strictly beyond them (what the live
    source's merge of the 5-level and 20-level feeds gives)."""
    c = 0
    for i in range(nf):
        for j in range(3):
            out[c, j] = fresh[i, j]
        c += 1
    if nf == 0:
        return 0
    edge = fresh[nf - 1, 0]
    for i in range(ns):
        if c == LEVELS:
            break
        if sgn * (edge - stale[i, 0]) > 1e-12:
            for j in range(3):
                out[c, j] = stale[i, j]
            c += 1
    return c


# --- trades ---------------------------------------------------------------------------------


@njit(cache=True)
def _order(side, q, sz, nn, touch, ipar, mid_ticks, g_u, depth_bps, pi, lm, lsd, cdf_n, scale,
           out_t, out_k, out_off, out_pl, ne, npl, t, tid):  # fmt: skip
    """An uninformed aggressive order of size q: takes the touch, the rest at the next level
    (at most two levels; liquidity taken is replenished at the same prices, since the
    efficient price did not move). Returns (ne, npl, tid)."""
    D = sz.shape[0]
    mask = D - 1
    lot = ipar[I_LOT]
    sgn = -side  # a buyer (side +1) takes asks (sgn -1)
    i = touch & mask
    mult = _tilt(touch, sgn, mid_ticks, g_u, depth_bps)
    avail = max(lot, _lot_round(sz[i] * mult, lot))  # as displayed
    if q <= avail:
        ne, npl = _trade(out_t, out_k, out_off, out_pl, ne, npl, t, _px(touch, ipar, 0), q, side, tid)
        tid += 1
        sz[i] -= q / mult
        if sz[i] * mult < 0.5 * lot:
            _slot(0, pi, lm, lsd, cdf_n, scale, sz, nn, i, True)
        return ne, npl, tid
    ne, npl = _trade(out_t, out_k, out_off, out_pl, ne, npl, t, _px(touch, ipar, 0), avail, side, tid)
    tid += 1
    q = _lot_round(q - avail, lot)
    _slot(0, pi, lm, lsd, cdf_n, scale, sz, nn, i, True)
    for d in range(1, D):
        p = touch - sgn * d
        j = p & mask
        if sz[j] > 0.0:
            ne, npl = _trade(out_t, out_k, out_off, out_pl, ne, npl, t, _px(p, ipar, 0), q, side, tid)
            tid += 1
            m2 = _tilt(p, sgn, mid_ticks, g_u, depth_bps)
            sz[j] -= q / m2
            if sz[j] * m2 < 0.5 * lot:
                _slot(d, pi, lm, lsd, cdf_n, scale, sz, nn, j, False)
            return ne, npl, tid
    ne, npl = _trade(out_t, out_k, out_off, out_pl, ne, npl, t, _px(touch, ipar, 0), q, side, tid)
    return ne, npl, tid + 1


@njit(cache=True)
def _take_touch(side, q, sz, nn, touch, ipar, mid_ticks, g_u, depth_bps, pi, lm, lsd, cdf_n, scale,
                out_t, out_k, out_off, out_pl, ne, npl, t, tid):  # fmt: skip
    """A flow order that is not a sweep: one print of its whole size at the touch (selective
    liquidity taking, Farmer, Gillemot, Lillo, Mike & Sen 2004: ordinary market orders are
    sized to the best quote and rarely walk the book). In the order-flow market the price an
    order moves is its impact, set by flow.py, not the gap to the next displayed level: what
    exceeds the touch queue is met by its replenishment at the same price (the mid has not
    moved within the block). Returns (ne, npl, tid)."""
    i = touch & (sz.shape[0] - 1)
    lot = ipar[I_LOT]
    mult = _tilt(touch, -side, mid_ticks, g_u, depth_bps)
    ne, npl = _trade(out_t, out_k, out_off, out_pl, ne, npl, t, _px(touch, ipar, 0), q, side, tid)
    sz[i] -= q / mult
    if sz[i] * mult < 0.5 * lot:  # the queue was eaten: what is there now is its replenishment
        _slot(0, pi, lm, lsd, cdf_n, scale, sz, nn, i, True)
    return ne, npl, tid + 1


@njit(cache=True)
def _flow_room(j0, j1, F_WALK):
    """Events the flow orders j0..j1-1 may print (0 without flow: F_OFF is all 0)."""
    n = 0
    for j in range(j0, j1):
        n += 2 + F_WALK[j]
    return n


@njit(cache=True)
def _flow_orders(j0, j1, F_SIDE, F_SIZE, F_KIND, F_WALK, p_open, fst, bsz, bnn, asz, ann, ist, ipar,
                 mid_ticks, g_u, depth_bps, pi, lm, lsd, cdf_n, scale, out_t, out_k, out_off, out_pl, ne,
                 npl, t, tid):  # fmt: skip
    """The flow pass's orders j0..j1-1 printed against the book (flow.py). A forced order that
    walks >= 2 ticks is a sweep to the touch its impact sets (its prints are what it took), the
    others print at the touch (``_take_touch``): no print lies beyond the price the order moves
    to. Open interest: a forced order (KIND_LIQ = 2)
    closes a position; the others open with probability p_open."""
    for j in range(j0, j1):
        side = int(F_SIDE[j])
        q = F_SIZE[j]
        walk = F_WALK[j]
        if walk >= 2:
            touch = ist[IS_BID] if side < 0 else ist[IS_ASK]
            new = touch + side * walk
            if side < 0:
                ne, npl, tid, q = _sweep(-1, bsz, bnn, touch, new, ipar, mid_ticks, g_u, depth_bps, pi, lm,
                                         lsd, cdf_n, scale, out_t, out_k, out_off, out_pl, ne, npl, t,
                                         tid)  # fmt: skip
                _move_touch(bsz, bnn, touch, new, 1, pi, lm, lsd, cdf_n, scale, 0)
                ist[IS_BID] = new
            else:
                ne, npl, tid, q = _sweep(1, asz, ann, touch, new, ipar, mid_ticks, g_u, depth_bps, pi, lm,
                                         lsd, cdf_n, scale, out_t, out_k, out_off, out_pl, ne, npl, t,
                                         tid)  # fmt: skip
                _move_touch(asz, ann, touch, new, -1, pi, lm, lsd, cdf_n, scale, 0)
                ist[IS_ASK] = new
        elif side == 1:
            ne, npl, tid = _take_touch(1, q, asz, ann, ist[IS_ASK], ipar, mid_ticks, g_u, depth_bps, pi, lm,
                                       lsd, cdf_n, scale, out_t, out_k, out_off, out_pl, ne, npl, t,
                                       tid)  # fmt: skip
        else:
            ne, npl, tid = _take_touch(-1, q, bsz, bnn, ist[IS_BID], ipar, mid_ticks, g_u, depth_bps, pi, lm,
                                       lsd, cdf_n, scale, out_t, out_k, out_off, out_pl, ne, npl, t,
                                       tid)  # fmt: skip
        if F_KIND[j] == 2 or np.random.random() >= p_open:
            fst[FS_OI] -= q
        else:
            fst[FS_OI] += q
    return ne, npl, tid


@njit(cache=True)
def _sweep(side, sz, nn, touch, new_touch, ipar, mid_ticks, g_u, depth_bps, pi, lm, lsd, cdf_n, scale,
           out_t, out_k, out_off, out_pl, ne, npl, t, tid):  # fmt: skip
    """An informed (or jump) sweep: takes every queue from the touch to ``new_touch``
    (exclusive) and part of the queue at ``new_touch``: at least three levels. Returns
    (ne, npl, tid, total size)."""
    mask = sz.shape[0] - 1
    lot = ipar[I_LOT]
    sgn = -side
    w = sgn * (touch - new_touch)  # ticks walked
    occ = 0
    for j in range(w):
        if sz[(touch - sgn * j) & mask] > 0.0:
            occ += 1
    # the queues a sweep walks through existed; the book model's sample just may not show them
    j = 0
    while occ < 2 and j < w:
        i = (touch - sgn * j) & mask
        if sz[i] <= 0.0:
            _slot(j, pi, lm, lsd, cdf_n, scale, sz, nn, i, True)
            occ += 1
        j += 1
    i_new = new_touch & mask
    if sz[i_new] <= 0.0:
        _slot(w, pi, lm, lsd, cdf_n, scale, sz, nn, i_new, True)
    total = 0.0
    for j in range(w):
        p = touch - sgn * j
        i = p & mask
        if sz[i] > 0.0:
            q = _lot_round(sz[i] * _tilt(p, sgn, mid_ticks, g_u, depth_bps), lot)
            if q < lot:
                q = lot
            ne, npl = _trade(out_t, out_k, out_off, out_pl, ne, npl, t, _px(p, ipar, 0), q, side, tid)
            tid += 1
            total += q
    mult = _tilt(new_touch, sgn, mid_ticks, g_u, depth_bps)
    q = _lot_round(sz[i_new] * mult * (0.2 + 0.6 * np.random.random()), lot)
    if q < lot:
        q = lot
    ne, npl = _trade(out_t, out_k, out_off, out_pl, ne, npl, t, _px(new_touch, ipar, 0), q, side, tid)
    tid += 1
    total += q
    sz[i_new] = max(sz[i_new] - q / mult, 0.5 * lot)
    return ne, npl, tid, total


@njit(cache=True)
def _spread(x, s_base, cdf_odd, cdf_even, refresh):
    """Base spread in ticks, redrawn when the mid's parity no longer matches it."""
    if (x - s_base) % 2 != 0 or refresh:
        if x % 2 != 0:
            return _draw_cdf(cdf_odd)
        return _draw_cdf(cdf_even)
    return s_base


@njit(cache=True)
def _scaled(s, scale):
    """Spread widened by ``scale`` keeping its parity."""
    if scale <= 1.0:
        return s
    return s + 2 * int(math.floor((scale - 1.0) * s * 0.5 + 0.5))


# --- the renderer ---------------------------------------------------------------------------


@njit(cache=True)
def render(seed, k0, k1, t0_ns, dt_ns, X, JUMP, MU, SIG, REG, Y, ANT, seg_start, seg_par, knobs, cst,
           ipar, pi, lm, lsd, cdf_odd, cdf_even, cdf_n, ist, fst, bsz, bnn, asz, ann, stb, sta, fb, fa, mb,
           ma, vals, F_OFF, F_SIDE, F_SIZE, F_KIND, F_WALK, flow_on, out_t, out_k, out_off,
           out_pl):  # fmt: skip
    """Events of blocks k0..k1-1 into out_*; returns (events, payload floats), (-1, -1) if the
    output arrays are too small (the caller restores the state and retries with more room).
    With ``flow_on`` every aggressive order is the flow pass's (F_*, flow.py), none drawn here."""
    np.random.seed(seed)
    dt = cst[C_DT]
    nseg = seg_start.shape[0]
    nlat = X.shape[0]
    lot = ipar[I_LOT]
    scale = ipar[I_DEPTH_SCALE]
    h = 0.5 * ipar[I_TICK] / ipar[I_PRICE] * 1e4
    mu_ref = cst[C_MU_REF]
    depth_bps = cst[C_BOOK_DEPTH]
    hblk = int(round(cst[C_BOOK_H] / dt))
    g = knobs[K_BOOK] * cst[C_BOOK_G]
    n_hk = 0.0 if flow_on else min(0.9, knobs[K_HAWKES] * cst[C_HAWKES_N])
    beta_h = cst[C_HAWKES_BETA]
    dec_h = math.exp(-beta_h * dt)
    # each order adds alpha to its side's intensity from the next block on, decaying by dec_h
    # per block: expected offspring alpha * dt / (1 - dec_h) = n_hk, the branching ratio
    alpha_h = n_hk * (1.0 - dec_h) / dt
    a_b = math.exp(-dt / cst[C_BASIS_TAU])
    sd_b = ipar[I_BASIS_SD] * math.sqrt(1.0 - a_b * a_b)
    a_f = math.exp(-dt / cst[C_FUND_TAU])
    sd_f = math.sqrt(1.0 - a_f * a_f)
    e_mu = dt / cst[C_BASIS_MU_TAU]
    log_med = math.log(ipar[I_TS_MED])
    reprice = int(cst[C_REPRICE])
    cap_ev = out_t.shape[0]
    cap_pl = out_pl.shape[0]
    ne = 0
    npl = 0
    s = 0
    while s + 1 < nseg and k0 >= seg_start[s + 1]:
        s += 1
    for k in range(k0, k1):
        while s + 1 < nseg and k >= seg_start[s + 1]:
            s += 1
        t = t0_ns + k * dt_ns
        jump = JUMP[k]
        xd = X[k] - jump  # the mid before this block's sweep
        mu = MU[k]
        th = math.tanh(mu / mu_ref)
        kk = min(k + hblk, nlat - 1)
        u = (X[kk] - X[k]) * h / (SIG[k] * math.sqrt((kk - k) * dt)) if kk > k else 0.0
        u = min(3.0, max(-3.0, u))
        g_u = g * u
        # 1. the touch follows the mid
        if ist[IS_INIT] == 0:
            ist[IS_SPREAD] = _spread(xd, 0, cdf_odd, cdf_even, True)
            sp = _scaled(ist[IS_SPREAD], seg_par[s, S_SPREAD])
            ist[IS_BID] = (xd - sp) // 2
            ist[IS_ASK] = (xd + sp) // 2
            D = bsz.shape[0]
            for d in range(D):
                _slot(d, pi, lm, lsd, cdf_n, scale, bsz, bnn, (ist[IS_BID] - d) & (D - 1), d == 0)
                _slot(d, pi, lm, lsd, cdf_n, scale, asz, ann, (ist[IS_ASK] + d) & (D - 1), d == 0)
            fst[FS_ZF] = np.random.normal(0.0, 1.0)
            fst[FS_BN] = ipar[I_BASIS_SD] * np.random.normal(0.0, 1.0)
            fst[FS_OI] = ipar[I_OI0]
            fst[FS_MUEMA] = mu
            ist[IS_HOUR] = t // HOUR_NS
            ist[IS_INIT] = 1
        else:
            ist[IS_SPREAD] = _spread(
                xd, ist[IS_SPREAD], cdf_odd, cdf_even, np.random.random() < cst[C_SPREAD_REFRESH]
            )
        sp = _scaled(ist[IS_SPREAD], seg_par[s, S_SPREAD])
        nbid = (xd - sp) // 2
        nask = (xd + sp) // 2
        _move_touch(bsz, bnn, ist[IS_BID], nbid, 1, pi, lm, lsd, cdf_n, scale, reprice)
        _move_touch(asz, ann, ist[IS_ASK], nask, -1, pi, lm, lsd, cdf_n, scale, reprice)
        ist[IS_BID] = nbid
        ist[IS_ASK] = nask
        mid_ticks = 0.5 * xd
        # 2. uninformed and informed aggressive orders (Hawkes, side balance following mu)
        base = 0.0 if flow_on else ipar[I_TRADE_RATE] * seg_par[s, S_ACT] * (1.0 - n_hk)
        a_side = knobs[K_SIDE] * cst[C_SIDE_A] * th
        lam_b = 0.5 * base * (1.0 + a_side) + fst[FS_EB]
        lam_s = 0.5 * base * (1.0 - a_side) + fst[FS_ES]
        nb = np.random.poisson(lam_b * dt)
        ns = np.random.poisson(lam_s * dt)
        need_ev = 12 + 2 * (nb + ns) + abs(jump) + _flow_room(F_OFF[k], F_OFF[k + 1], F_WALK)
        if ne + need_ev > cap_ev or npl + 4 * need_ev + 400 > cap_pl:
            return -1, -1
        if k == 0:
            vals[0] = 1.0
            ne, npl = _scalars(out_t, out_k, out_off, out_pl, ne, npl, t, E.TIMER, vals, 1)
        p_open = 0.5 + knobs[K_OI] * cst[C_OI_OPEN] * abs(th) * seg_par[s, S_OI_FLOW]
        p_open = min(0.95, max(0.05, p_open))
        shift = knobs[K_SIZE] * cst[C_SIZE_SHIFT] * abs(th)
        side_mu = 1 if mu > 0.0 else -1
        rb = nb
        rs = ns
        tid = ist[IS_TID]
        while rb + rs > 0:
            if np.random.random() * (rb + rs) < rb:
                side = 1
                rb -= 1
            else:
                side = -1
                rs -= 1
            lq = log_med + ipar[I_TS_LOGSD] * np.random.normal(0.0, 1.0)
            if side == side_mu:
                lq += shift
            q = max(lot, _lot_round(math.exp(lq), lot))
            # the aggressor takes the opposite side of the book: buyers lift asks, sellers hit bids
            if side == 1:
                book_sz, book_n, side_state = asz, ann, ist[IS_ASK]
            else:
                book_sz, book_n, side_state = bsz, bnn, ist[IS_BID]
            ne, npl, tid = _order(
                side, q, book_sz, book_n, side_state, ipar, mid_ticks, g_u, depth_bps, pi, lm, lsd,
                cdf_n, scale, out_t, out_k, out_off, out_pl, ne, npl, t, tid,
            )  # fmt: skip
            fst[FS_OI] += q if np.random.random() < p_open else -q
        if flow_on:
            ne, npl, tid = _flow_orders(F_OFF[k], F_OFF[k + 1], F_SIDE, F_SIZE, F_KIND, F_WALK, p_open, fst,
                                        bsz, bnn, asz, ann, ist, ipar, mid_ticks, g_u, depth_bps, pi, lm, lsd,
                                        cdf_n, scale, out_t, out_k, out_off, out_pl, ne, npl, t,
                                        tid)  # fmt: skip
        # 3. this block's jump, rendered as a sweep through the book
        if jump != 0:
            xn = X[k]
            nbid = (xn - sp) // 2
            nask = (xn + sp) // 2
            mid_ticks = 0.5 * xn
            if jump < 0:
                ne, npl, tid, tot = _sweep(-1, bsz, bnn, ist[IS_BID], nbid, ipar, mid_ticks, g_u, depth_bps,
                                           pi, lm, lsd, cdf_n, scale, out_t, out_k, out_off, out_pl, ne, npl,
                                           t, tid)  # fmt: skip
                ns += 1
            else:
                ne, npl, tid, tot = _sweep(1, asz, ann, ist[IS_ASK], nask, ipar, mid_ticks, g_u, depth_bps,
                                           pi, lm, lsd, cdf_n, scale, out_t, out_k, out_off, out_pl, ne, npl,
                                           t, tid)  # fmt: skip
                nb += 1
            fst[FS_OI] += tot if np.random.random() < p_open else -tot
            _move_touch(bsz, bnn, ist[IS_BID], nbid, 1, pi, lm, lsd, cdf_n, scale, reprice)
            _move_touch(asz, ann, ist[IS_ASK], nask, -1, pi, lm, lsd, cdf_n, scale, reprice)
            ist[IS_BID] = nbid
            ist[IS_ASK] = nask
        ist[IS_TID] = tid
        fst[FS_EB] = fst[FS_EB] * dec_h + alpha_h * nb
        fst[FS_ES] = fst[FS_ES] * dec_h + alpha_h * ns
        # 4. the book's queues churn; book events (fresh top 5 + last 20-level book, or all fresh)
        if k % BOOK_EVERY == 0:
            rho = cst[C_BOOK_REFRESH]
            depth = int(cst[C_REFRESH_DEPTH])
            _refresh(bsz, bnn, ist[IS_BID], 1, rho, depth, pi, lm, lsd, cdf_n, scale)
            _refresh(asz, ann, ist[IS_ASK], -1, rho, depth, pi, lm, lsd, cdf_n, scale)
        if k % FULL_EVERY == 0:
            ist[IS_STALE_NB] = _scan(bsz, bnn, ist[IS_BID], 1, LEVELS, stb, ipar, mid_ticks, g_u, depth_bps)
            ist[IS_STALE_NA] = _scan(asz, ann, ist[IS_ASK], -1, LEVELS, sta, ipar, mid_ticks, g_u, depth_bps)
            ne, npl = _book(
                out_t, out_k, out_off, out_pl, ne, npl, t, stb, ist[IS_STALE_NB], sta, ist[IS_STALE_NA]
            )
        elif k % BOOK_EVERY == 0 or jump != 0:
            nfb = _scan(bsz, bnn, ist[IS_BID], 1, FRESH, fb, ipar, mid_ticks, g_u, depth_bps)
            nfa = _scan(asz, ann, ist[IS_ASK], -1, FRESH, fa, ipar, mid_ticks, g_u, depth_bps)
            nmb = _merge(fb, nfb, stb, ist[IS_STALE_NB], 1, mb)
            nma = _merge(fa, nfa, sta, ist[IS_STALE_NA], -1, ma)
            ne, npl = _book(out_t, out_k, out_off, out_pl, ne, npl, t, mb, nmb, ma, nma)
        # 5. bbo, when it changed
        _scan(bsz, bnn, ist[IS_BID], 1, 1, fb, ipar, mid_ticks, g_u, depth_bps)
        _scan(asz, ann, ist[IS_ASK], -1, 1, fa, ipar, mid_ticks, g_u, depth_bps)
        vals[0] = fb[0, 0]
        vals[1] = fb[0, 1]
        vals[2] = fb[0, 2]
        vals[3] = fa[0, 0]
        vals[4] = fa[0, 1]
        vals[5] = fa[0, 2]
        changed = ist[IS_BBO_SET] == 0
        for j in range(6):
            if vals[j] != fst[FS_BBO + j]:
                changed = True
        if changed:
            ne, npl = _scalars(out_t, out_k, out_off, out_pl, ne, npl, t, E.BBO, vals, 6)
            for j in range(6):
                fst[FS_BBO + j] = vals[j]
            ist[IS_BBO_SET] = 1
        # 6. cross-venue and ctx state
        mid_px = 0.5 * (_px(ist[IS_BID], ipar, 0) + _px(ist[IS_ASK], ipar, 0))
        fst[FS_BN] = fst[FS_BN] * a_b + sd_b * np.random.normal(0.0, 1.0)
        fst[FS_MUEMA] += (mu - fst[FS_MUEMA]) * e_mu
        basis = (
            ipar[I_BASIS_MEAN]
            + fst[FS_BN]
            + knobs[K_BASIS] * cst[C_BASIS_K] * math.tanh(fst[FS_MUEMA] / mu_ref)
        )
        spot = mid_px / (1.0 + basis * 1e-4)
        spot = _px(int(math.floor(spot / ipar[I_TICK] + 0.5)), ipar, 0)
        fst[FS_ZF] = fst[FS_ZF] * a_f + sd_f * np.random.normal(0.0, 1.0)
        z = fst[FS_ZF] + knobs[K_FUNDING] * cst[C_FUND_ZMAX] * math.tanh(-ANT[k] / mu_ref)
        pred = ipar[I_F_MEAN] + ipar[I_F_SD] * z
        # hourly settlement: the rate in force becomes the hour's average prediction. Before
        # the first settlement of the run it is the prediction's signal plus the noise an
        # hour's average of the OU noise has (sd sqrt(2 tau / T (1 - tau / T (1 - e^-T/tau))))
        hour = t // HOUR_NS
        if k == 0:
            ist[IS_HOUR] = hour
            r = cst[C_FUND_TAU] / 3600.0
            sd_h = math.sqrt(2.0 * r * (1.0 - r * (1.0 - math.exp(-1.0 / r))))
            fst[FS_FCUR] = pred + ipar[I_F_SD] * (sd_h * np.random.normal(0.0, 1.0) - fst[FS_ZF])
        elif hour != ist[IS_HOUR]:
            fst[FS_FCUR] = fst[FS_FSUM] / max(fst[FS_FCNT], 1.0)
            fst[FS_FSUM] = 0.0
            fst[FS_FCNT] = 0.0
            ist[IS_HOUR] = hour
        fst[FS_FSUM] += pred
        fst[FS_FCNT] += 1.0
        if k % MIDS_EVERY == 0:
            btc = ipar[I_BTC_PX] * math.exp(Y[k] * 1e-4)
            vals[0] = _px(int(math.floor(btc / ipar[I_BTC_TICK] + 0.5)), ipar, 1)
            ne, npl = _scalars(out_t, out_k, out_off, out_pl, ne, npl, t, E.REF_MID, vals, 1)
            vals[0] = spot
            ne, npl = _scalars(out_t, out_k, out_off, out_pl, ne, npl, t, E.SPOT_MID, vals, 1)
        if k % CTX_EVERY == 0:
            vals[0] = fst[FS_FCUR]
            vals[1] = pred
            vals[2] = _lot_round(fst[FS_OI], lot)
            vals[3] = mid_px
            vals[4] = spot
            vals[5] = mid_px / spot - 1.0
            ne, npl = _scalars(out_t, out_k, out_off, out_pl, ne, npl, t, E.CTX, vals, 6)
            vals[0] = mu
            vals[1] = SIG[k]
            vals[2] = float(REG[k])
            ne, npl = _scalars(out_t, out_k, out_off, out_pl, ne, npl, t, E.TRUTH, vals, 3)
    out_off[ne] = npl
    return ne, npl
