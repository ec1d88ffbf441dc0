"""features.lead_lag: rolling lagged regression on a reference asset (BTC) and the lead signal."""

import math

import numpy as np
from numba import njit
from pydantic import Field, model_validator

from flowmm.core.node import In, Node, NodeParams, Out
from flowmm.core.ports import OBS_R, OBS_Z

# params, in field order
(
    P_LAG_S,
    P_MIN_LAG_S,
    P_MAX_LAG_S,
    P_WINDOW_S,
    P_STEP_S,
    P_HORIZON_S,
    P_OWN_WEIGHT,
    P_MIN_PAIRS,
    P_MAX_STALE_S,
    P_ALPHA,
    P_SIGMA,
) = range(11)
# cfg (int64, fixed at init): grid step ns, window W (steps), smallest lag, number of lags,
# horizon (steps; 0 = the lag), ring capacity
C_STEP, C_W, C_LMIN, C_NLAGS, C_HORIZON, C_CAP = range(6)
# ist (int64): time of the last valid price / reference tick (-1 = never), next grid point to
# close, closes since the last exact refit, index of the chosen lag (-1 = none yet)
I_X_T, I_Y_T, I_NEXT_J, I_SINCE_REFIT, I_BEST = range(5)
# val: the last valid log prices, 1e4 ln(px) (bps)
V_X, V_Y = range(2)
# reg rows, one column per lag: pairs, mean of the regressor (reference return), mean of the
# response (instrument return), centred sums Sxx, Syy, Sxy
R_N, R_MX, R_MY, R_SXX, R_SYY, R_SXY = range(6)


@njit(cache=True)
def _add(reg, i, x, y):
    """Welford update of lag column i with pair (x regressor, y response)."""
    n = reg[R_N, i] + 1.0
    dx = x - reg[R_MX, i]
    dy = y - reg[R_MY, i]
    reg[R_N, i] = n
    reg[R_MX, i] += dx / n
    reg[R_MY, i] += dy / n
    reg[R_SXX, i] += dx * (x - reg[R_MX, i])
    reg[R_SYY, i] += dy * (y - reg[R_MY, i])
    reg[R_SXY, i] += dx * (y - reg[R_MY, i])


@njit(cache=True)
def _remove(reg, i, x, y):
    """Inverse Welford update: drop pair (x, y) from lag column i."""
    n = reg[R_N, i] - 1.0
    if n <= 0.0:
        for r in range(6):
            reg[r, i] = 0.0
        return
    mx_new = reg[R_MX, i] - (x - reg[R_MX, i]) / n
    my_new = reg[R_MY, i] - (y - reg[R_MY, i]) / n
    reg[R_SXX, i] = max(0.0, reg[R_SXX, i] - (x - mx_new) * (x - reg[R_MX, i]))
    reg[R_SYY, i] = max(0.0, reg[R_SYY, i] - (y - my_new) * (y - reg[R_MY, i]))
    reg[R_SXY, i] -= (x - mx_new) * (y - reg[R_MY, i])
    reg[R_N, i] = n
    reg[R_MX, i] = mx_new
    reg[R_MY, i] = my_new


@njit(cache=True)
def _ret(ring, j):
    """Return of grid step j (ring[j] - ring[j - 1]); NaN when either sample is missing."""
    cap = ring.shape[0]
    return ring[j % cap] - ring[(j - 1) % cap]


@njit(cache=True)
def _refit(cfg, X, Y, reg, j):
    """Exact two-pass moments of the window ending at grid point j, every lag (bounds drift)."""
    w = cfg[C_W]
    for i in range(cfg[C_NLAGS]):
        lag = cfg[C_LMIN] + i
        n = 0.0
        sx = 0.0
        sy = 0.0
        for k in range(j - w + 1, j + 1):
            x = _ret(Y, k - lag)
            y = _ret(X, k)
            if x == x and y == y:
                n += 1.0
                sx += x
                sy += y
        for r in range(6):
            reg[r, i] = 0.0
        if n == 0.0:
            continue
        mx = sx / n
        my = sy / n
        sxx = 0.0
        syy = 0.0
        sxy = 0.0
        for k in range(j - w + 1, j + 1):
            x = _ret(Y, k - lag)
            y = _ret(X, k)
            if x == x and y == y:
                sxx += (x - mx) * (x - mx)
                syy += (y - my) * (y - my)
                sxy += (x - mx) * (y - my)
        reg[R_N, i] = n
        reg[R_MX, i] = mx
        reg[R_MY, i] = my
        reg[R_SXX, i] = sxx
        reg[R_SYY, i] = syy
        reg[R_SXY, i] = sxy


@njit(cache=True)
def _close(params, cfg, ist, val, X, Y, reg, j):
    """Sample both prices at grid point j, slide every lag's window by one step, pick the lag."""
    h = cfg[C_STEP]
    cap = cfg[C_CAP]
    w = cfg[C_W]
    g = j * h
    stale = params[P_MAX_STALE_S] * 1e9
    X[j % cap] = val[V_X] if ist[I_X_T] >= 0 and g - ist[I_X_T] <= stale else np.nan
    Y[j % cap] = val[V_Y] if ist[I_Y_T] >= 0 and g - ist[I_Y_T] <= stale else np.nan
    ist[I_SINCE_REFIT] += 1
    if ist[I_SINCE_REFIT] >= w:
        _refit(cfg, X, Y, reg, j)
        ist[I_SINCE_REFIT] = 0
    else:
        y_new = _ret(X, j)
        y_old = _ret(X, j - w)
        for i in range(cfg[C_NLAGS]):
            lag = cfg[C_LMIN] + i
            x_new = _ret(Y, j - lag)
            if x_new == x_new and y_new == y_new:
                _add(reg, i, x_new, y_new)
            x_old = _ret(Y, j - w - lag)
            if x_old == x_old and y_old == y_old:
                _remove(reg, i, x_old, y_old)
    # the lead lag: the peak of |cross-correlation| (of its square) over lags with enough pairs
    min_pairs = max(params[P_MIN_PAIRS], 3.0)
    best = -1
    best_rho2 = -1.0
    for i in range(cfg[C_NLAGS]):
        sxx = reg[R_SXX, i]
        syy = reg[R_SYY, i]
        if reg[R_N, i] < min_pairs or not (sxx > 0.0 and syy > 0.0):
            continue
        rho2 = reg[R_SXY, i] * reg[R_SXY, i] / (sxx * syy)
        if rho2 > best_rho2:
            best_rho2 = rho2
            best = i
    ist[I_BEST] = best


@njit(cache=True)
def lead_lag_kernel(
    now, dt, params, cfg, ist, val, X, Y, reg, price, price_ticked, ref, ref_ticked, clock, clock_ticked,
    beta, beta_se, r2, lag_s, lead_bps, obs,
):  # fmt: skip
    h = cfg[C_STEP]
    cap = cfg[C_CAP]
    if ist[I_NEXT_J] < 0:  # first run: the first grid point at or after now
        ist[I_NEXT_J] = (now + h - 1) // h
    # 1. grid points strictly before now take the prices known before this run's ticks
    last_before = (now - 1) // h
    if last_before - ist[I_NEXT_J] >= cap:  # a gap longer than the ring: forget it all
        X[:] = np.nan
        Y[:] = np.nan
        reg[:, :] = 0.0
        ist[I_SINCE_REFIT] = 0
        ist[I_NEXT_J] = last_before - cap + 1
    while ist[I_NEXT_J] <= last_before:
        _close(params, cfg, ist, val, X, Y, reg, ist[I_NEXT_J])
        ist[I_NEXT_J] += 1
    # 2. this run's ticks (NaN or non-positive prices are ignored)
    if price_ticked and price[0] > 0.0:
        val[V_X] = 1e4 * math.log(price[0])
        ist[I_X_T] = now
    if ref_ticked and ref[0] > 0.0:
        val[V_Y] = 1e4 * math.log(ref[0])
        ist[I_Y_T] = now
    # 3. a grid point at now sees them (every event at now is applied before nodes run)
    if ist[I_NEXT_J] * h == now:
        _close(params, cfg, ist, val, X, Y, reg, ist[I_NEXT_J])
        ist[I_NEXT_J] += 1
    # 4. emit once per quote cycle (every run when the clock is not wired)
    if not clock_ticked and clock[0] == clock[0]:
        return EMIT.NONE
    i = ist[I_BEST]
    if i < 0:
        return EMIT.NONE
    n = reg[R_N, i]
    sxx = reg[R_SXX, i]
    sxy = reg[R_SXY, i]
    b = sxy / sxx
    lag = cfg[C_LMIN] + i
    beta[0] = b
    beta_se[0] = math.sqrt(max(reg[R_SYY, i] - b * sxy, 0.0) / (n - 2.0) / sxx)
    r2[0] = sxy * sxy / (sxx * reg[R_SYY, i])
    lag_s[0] = lag * params[P_STEP_S]
    # the lead signal, from the current prices and the grid samples of the last lag
    stale = params[P_MAX_STALE_S] * 1e9
    if ist[I_X_T] < 0 or ist[I_Y_T] < 0 or now - ist[I_X_T] > stale or now - ist[I_Y_T] > stale:
        return EMIT.BETA | EMIT.BETA_SE | EMIT.R2 | EMIT.LAG_S
    hs = cfg[C_HORIZON]
    if hs == 0 or hs > lag:
        hs = lag
    jn = now // h  # the newest closed grid point
    y0 = Y[(jn - lag) % cap]
    y1 = val[V_Y] if hs == lag else Y[(jn - lag + hs) % cap]
    r_ref = y1 - y0
    own = 0.0
    if params[P_OWN_WEIGHT] != 0.0:
        own = val[V_X] - X[(jn - hs) % cap]
    if r_ref != r_ref or own != own:
        return EMIT.BETA | EMIT.BETA_SE | EMIT.R2 | EMIT.LAG_S  # a missing sample in the span
    lead = b * r_ref - params[P_OWN_WEIGHT] * own
    lead_bps[0] = lead
    horizon_s = hs * params[P_STEP_S]
    alpha = params[P_ALPHA]
    obs[OBS_Z] = alpha * lead / horizon_s
    e = alpha * beta_se[0] * r_ref / horizon_s
    obs[OBS_R] = params[P_SIGMA] * params[P_SIGMA] + e * e
    return EMIT.ALL


class LeadLag(Node):
    """Lagged regression of the instrument on a reference asset (BTC) and the lead signal.

    Both mids are sampled on a grid of ``step_s`` (the last price at or before each grid
    time, as a log price in bps). For every lag l in the search range (or the one fixed
    ``lag_s``), a rolling OLS with intercept over the last W = window_s / step_s grid
    steps regresses the instrument's step return r(k) on the reference's step return
    r_ref(k - l): beta_l = Sxy / Sxx, R^2 = Sxy^2 / (Sxx Syy), se(beta) =
    sqrt((Syy - beta Sxy) / (n - 2) / Sxx) (seed 000, Component 7, C2 "Cross-Asset Correlation
    Signal"; the seed's beta is contemporaneous, here it is taken at the lead lag, as issue 6
    asks). The lead lag L is ``lag_s`` when set, else the lag of the peak |cross-correlation|
    over [min_lag_s, max_lag_s] (lag 0 is excluded: a contemporaneous move is no lead). The
    peak picks the largest of many noisy correlations, so beta at a searched lag is biased
    away from 0 when the true lead is weak; fix ``lag_s`` once it is known.

    Lead signal: lead_bps = beta * r_ref(t - L, t - L + H) - own_weight * r(t - H, t), in
    bps: the part of the reference's move that the lagged response says arrives within the
    next H = ``horizon_s`` seconds (H <= L). ``horizon_s: null`` takes H = L, the form of
    issue 6, beta * r_ref(over the last L) - r(over the same span): everything still to come.
    Defaults, measured on the synthetic ``mixed`` market (30 min, 20 seeds, per-seed corr with
    the next 10 s mid return, t across seeds; lead knob on / every knob off), search mode:
    H = 10 s, W = 600 s: 0.121 (t 5.9) / 0.010 (t 0.7); H = 10 s, W = 1200 s: 0.135 (t 7.1) /
    0.005 (t 0.3); H = L, W = 1200 s: 0.090 (t 4.4) / -0.001. H = 10 s is the seed's
    validation horizon (10 s ahead) and the part of the lead that is drift now; the rest of
    the lag arrives later. own_weight defaults to 0, not issue 6's 1: with beta the lagged
    response, subtracting the instrument's own return over the span adds its whole variance
    and its momentum; with lag_s 30, H = L, W = 600 s and own_weight 1 the signal was -0.095
    (t -3.3, the wrong sign) on and -0.062 (t -3.4, a trend leak) off. The seed's form (a
    contemporaneous beta, both returns over ~5 s) suits a lead of a few seconds; with a lead
    of L, the reference's move of the last 5 s reaches the instrument only L later.
    Observation: z = alpha * lead_bps / H (the catch-up spread over the horizon, bps/s;
    alpha dimensionless), R = sigma^2 + (alpha se(beta) r_ref / H)^2, the error beta's
    uncertainty propagates into z.

    Scheduling (why one node, event-triggered): the grid needs the price at each grid time,
    which a node that runs only every few cycles never sees, so the node runs on every tick
    of ``price`` and ``ref`` (trigger ``event``). That work is O(1) per tick plus, per closed
    grid step, O(number of lags) Welford add/remove updates of every lag's window (exact
    two-pass refit every W steps bounds rounding drift). It emits once per quote cycle,
    when ``clock`` (source.clock) ticked: beta, R^2, se and L at their latest values, and the
    lead signal recomputed from the current prices, so it is fresh every cycle however slowly
    the regression itself moves. Without ``clock`` wired it emits on every run (use
    ``trigger: cycle`` then, and the grid is only as fine as the node's runs).

    Edge cases: NaN or non-positive prices are ignored; a grid sample whose price is older than
    ``max_stale_s`` is missing, and every return touching it drops out of the windows; a gap
    longer than the ring resets the regression. No tick before a lag has ``min_pairs`` pairs
    (and Sxx, Syy > 0); beta / R^2 / se / lag tick without lead_bps and obs while either
    price is stale or a sample of the span is missing. Zero dt: no new grid point, the same
    values are emitted again on a new cycle."""

    type_name = "features.lead_lag"

    class Params(NodeParams):
        lag_s: float | None = Field(
            None, gt=0, description="fixed lead lag, s; null = search the peak of the cross-correlation"
        )
        min_lag_s: float = Field(1.0, gt=0, description="smallest lag searched, s")
        max_lag_s: float = Field(60.0, gt=0, description="largest lag searched, s")
        window_s: float = Field(
            1200.0, gt=0, description="regression window, s (W = window_s / step_s pairs)"
        )
        step_s: float = Field(1.0, gt=0, description="sampling grid of both prices, s")
        horizon_s: float | None = Field(
            10.0,
            gt=0,
            description="part of the lead arriving within this horizon, s (<= lag); null = the lag",
        )
        own_weight: float = Field(
            0.0, ge=0, le=1, description="weight of the instrument's own return over the span (seed: 1)"
        )
        min_pairs: int = Field(120, ge=3, description="valid pairs a lag needs before it is used")
        max_stale_s: float = Field(5.0, gt=0, description="a price older than this is missing, s")
        alpha: float = Field(1.0, description="fraction of the expected catch-up taken as drift")
        sigma: float = Field(0.05, gt=0, description="observation noise, bps/s (R >= sigma^2)")

        @model_validator(mode="after")
        def _grid(self):
            lags = (self.lag_s, self.lag_s) if self.lag_s is not None else (self.min_lag_s, self.max_lag_s)
            if lags[1] < lags[0]:
                raise ValueError(f"max_lag_s {self.max_lag_s} < min_lag_s {self.min_lag_s}")
            if lags[0] < self.step_s:
                raise ValueError(f"the smallest lag {lags[0]} s is shorter than step_s {self.step_s} s")
            if round(lags[1] / self.step_s) - round(lags[0] / self.step_s) + 1 > 600:
                raise ValueError("more than 600 lags to search: raise step_s or narrow the range")
            if not 10 <= round(self.window_s / self.step_s) <= 100_000:
                raise ValueError("window_s / step_s must be between 10 and 100000 pairs")
            return self

        def grid(self) -> tuple[int, int, int, int]:
            """(window steps, smallest lag, number of lags, horizon steps or 0) on the grid."""
            lo, hi = (self.lag_s, self.lag_s) if self.lag_s is not None else (self.min_lag_s, self.max_lag_s)
            lmin, lmax = round(lo / self.step_s), round(hi / self.step_s)
            hs = 0 if self.horizon_s is None else max(1, round(self.horizon_s / self.step_s))
            return round(self.window_s / self.step_s), lmin, lmax - lmin + 1, hs

    inputs = {
        "price": In("f64", doc="the instrument's mid, USDC (source.mid)"),
        "ref": In("f64", doc="the reference asset's mid (source.ref_mid: BTC)"),
        "clock": In("f64", optional=True, doc="source.clock: emit once per quote cycle"),
    }
    outputs = {
        "beta": Out("f64", doc="response of the instrument's return to the reference's, L earlier"),
        "beta_se": Out("f64", doc="standard error of beta"),
        "r2": Out("f64", doc="R^2 of the lagged regression"),
        "lag_s": Out("f64", doc="the lead lag L in use, s"),
        "lead_bps": Out("f64", doc="beta r_ref(t - L, t - L + H) - own_weight r(t - H, t), bps"),
        "obs": Out("obs", doc="z = alpha lead_bps / H bps/s; R = sigma^2 + (alpha se r_ref / H)^2"),
    }
    tier, trigger = "hot", "event"
    kernel = lead_lag_kernel

    def init_state(self):
        p = self.params
        w, lmin, nlags, hs = p.grid()
        cap = w + lmin + nlags + 2  # returns back to j - W - lmax - 1 stay in the ring
        cfg = np.array([round(p.step_s * 1e9), w, lmin, nlags, hs, cap], np.int64)
        ist = np.array([-1, -1, -1, 0, -1], np.int64)
        return (
            cfg,
            ist,
            np.full(2, np.nan),  # last log prices
            np.full(cap, np.nan),  # X: instrument log price per grid point (NaN = missing)
            np.full(cap, np.nan),  # Y: reference
            np.zeros((6, nlags)),  # per-lag window moments
        )


EMIT = LeadLag.EMIT  # the kernel's named emit bits (compile-time constants)
