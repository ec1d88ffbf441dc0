import numpy as np
from numba import njit
from pydantic import Field

from flowmm.core.node import In, Node, NodeParams, Out
from flowmm.core.ports import FI_MID_REF, FI_PX, FI_SIDE, OBS_R, OBS_Z

# params (Params field order)
P_KAPPA, P_SIGMA_MU, P_SIGMA_P, P_C_FILL, P_TAU_FILL, P_SIGMA_FILL, P_NIS_WINDOW, P_OBS_CORR = range(8)
MAX_OBS = 62  # feature obs sources with their own decorrelation clock (+ trend and flow)
# float state
S_MU, S_P, S_LAST_PX, S_NIS_MEAN, S_N_UPD, S_N_SKIP, S_INIT, S_NU, S_NIS = range(9)
# int state (ns)
T_FILTER, T_PRICE = 0, 1


@njit(cache=True)
def _predict(f, ti, t, kappa, sigma_mu):
    """Exact OU predict of the state from its time to ``t`` (no-op when t <= its time)."""
    elapsed = (t - ti[T_FILTER]) * 1e-9
    if elapsed <= 0.0:  # dt <= 0: never predict backwards; the update lands at the filter time
        return
    a2m1 = np.expm1(-2.0 * kappa * elapsed)  # e^{-2 k dt} - 1, exact for tiny dt
    f[S_MU] *= np.exp(-kappa * elapsed)
    f[S_P] = f[S_P] * (1.0 + a2m1) - sigma_mu * sigma_mu * a2m1 / (2.0 * kappa)
    ti[T_FILTER] = t


R_FLOOR = 1e-18  # (bps/s)^2: no observation is taken as more precise than 1e-9 bps/s


@njit(cache=True)
def _update(f, z, r, nis_window):
    """One scalar update with observation z of variance r; returns 1 if applied, 0 if skipped."""
    if z != z or not (r > 0.0) or r == np.inf or z == np.inf or z == -np.inf:
        f[S_N_SKIP] += 1.0
        return 0
    r = max(r, R_FLOOR)  # a denormal R would underflow P r / s to 0
    s = f[S_P] + r
    nu = z - f[S_MU]
    k = f[S_P] / s
    f[S_MU] += k * nu
    f[S_P] = f[S_P] * r / s  # (1 - K) P, written so it stays > 0
    nis = nu * nu / s
    f[S_N_UPD] += 1.0
    n = f[S_N_UPD]
    f[S_NIS_MEAN] += (nis - f[S_NIS_MEAN]) / (n if n < nis_window else nis_window)
    f[S_NU] = nu
    f[S_NIS] = nis
    return 1


@njit(cache=True)
def _decorrelated(ts, j, now, r, corr_s):
    """R of source j inflated by max(1, corr_s / seconds since j last ticked): a source that
    ticks every cycle repeats much the same information, and counts at most once per corr_s."""
    gap = (now - ts[j]) * 1e-9 if ts[j] >= 0 else corr_s
    ts[j] = now
    if corr_s <= 0.0 or gap >= corr_s:
        return r
    return r * corr_s / max(gap, 1e-9)


@njit(cache=True)
def kalman_drift_kernel(
    now,
    dt,
    params,
    f,
    ti,
    ts,
    price,
    price_ticked,
    sigma,
    sigma_ticked,
    fills_t,
    fills_r,
    fills_start,
    fills_end,
    trend,
    trend_ticked,
    flow,
    flow_ticked,
    obs,
    obs_ticked,
    mu_hat,
    P,
    innovation,
    nis,
    nis_mean,
    n_updates,
    n_skipped,
):
    kappa = params[P_KAPPA]
    sigma_mu = params[P_SIGMA_MU]
    nis_window = params[P_NIS_WINDOW]
    if f[S_INIT] == 0.0:  # cold start: the stationary prior, no warm-up
        f[S_INIT] = 1.0
        f[S_MU] = 0.0
        f[S_P] = sigma_mu * sigma_mu / (2.0 * kappa)
        ti[T_FILTER] = now
    sig = sigma[0]
    if not (sig > 0.0) or sig == np.inf:
        sig = params[P_SIGMA_P]
    applied = 0
    skipped_before = f[S_N_SKIP]

    # 1. own fills, in time order, each at its own time
    cap = fills_t.shape[0]
    r_fill = params[P_SIGMA_FILL] * params[P_SIGMA_FILL]
    scale = params[P_C_FILL] / (sig * np.sqrt(params[P_TAU_FILL]))
    for i in range(fills_start, fills_end):
        j = i % cap
        _predict(f, ti, fills_t[j], kappa, sigma_mu)
        side = fills_r[j, FI_SIDE]
        px = fills_r[j, FI_PX]
        ref = fills_r[j, FI_MID_REF]
        if not (ref > 0.0 and px > 0.0 and (side == 1.0 or side == -1.0)):
            f[S_N_SKIP] += 1.0
            continue
        d_bps = abs(px - ref) / ref * 1e4
        applied += _update(f, -side * scale * d_bps, r_fill, nis_window)

    _predict(f, ti, now, kappa, sigma_mu)

    # 2. the price return since the last price this node saw
    p = price[0]
    if price_ticked and p > 0.0 and p < np.inf:
        if f[S_LAST_PX] != f[S_LAST_PX]:  # first price: only seeds
            f[S_LAST_PX] = p
            ti[T_PRICE] = now
        else:
            el = (now - ti[T_PRICE]) * 1e-9
            if el > 0.0:  # else: same time, folded into the next interval
                z = np.log(p / f[S_LAST_PX]) * 1e4 / el
                applied += _update(f, z, sig * sig / el, nis_window)
                f[S_LAST_PX] = p
                ti[T_PRICE] = now

    # 3. trend, 4. flow, 5. feature obs in wiring order: each once, when it ticked
    corr = params[P_OBS_CORR]
    if trend_ticked:
        applied += _update(f, trend[OBS_Z], _decorrelated(ts, 0, now, trend[OBS_R], corr), nis_window)
    if flow_ticked:
        applied += _update(f, flow[OBS_Z], _decorrelated(ts, 1, now, flow[OBS_R], corr), nis_window)
    for k in range(obs.shape[0]):
        if not obs_ticked[k]:
            continue
        if k >= MAX_OBS:  # beyond the decorrelation clocks: refused, and counted
            f[S_N_SKIP] += 1.0
            continue
        applied += _update(f, obs[k, OBS_Z], _decorrelated(ts, 2 + k, now, obs[k, OBS_R], corr), nis_window)

    mu_hat[0] = f[S_MU]
    P[0] = f[S_P]
    mask = EMIT.MU_HAT | EMIT.P
    if applied > 0:
        innovation[0] = f[S_NU]
        nis[0] = f[S_NIS]
        nis_mean[0] = f[S_NIS_MEAN]
        n_updates[0] = f[S_N_UPD]
        mask |= EMIT.INNOVATION | EMIT.NIS | EMIT.NIS_MEAN | EMIT.N_UPDATES
    if f[S_N_SKIP] != skipped_before or n_skipped[0] != n_skipped[0]:
        n_skipped[0] = f[S_N_SKIP]
        mask |= EMIT.N_SKIPPED
    return mask


class KalmanDrift(Node):
    """Scalar Kalman filter of the drift mu (bps/s) with exact OU dynamics (seed 000, Component 1).

    State mu (bps/s, positive = up), variance P ((bps/s)^2). Between updates the state follows
    the OU process dmu = -kappa_mu mu dt + sigma_mu dW, predicted EXACTLY over any gap
    (CONVENTIONS.md "Kalman predict with the exact OU discretisation"; the seed's sigma_mu^2 dt
    is only the small-dt limit):

        mu- = mu e^{-kappa dt},   P- = P e^{-2 kappa dt} + sigma_mu^2 (1 - e^{-2 kappa dt}) / (2 kappa)

    Each observation z of variance R is a scalar update:
    S = P- + R, K = P-/S, nu = z - mu-, mu = mu- + K nu, P = P- R/S (= (1 - K) P-).

    Cold start (seed 000 Component 1 / Component 5): mu = 0, P = sigma_mu^2/(2 kappa_mu), the
    stationary variance, on the node's first run; updates begin at once (no warm-up).

    Observations, in the order they are applied within one run:

    1. ``fills`` (our fills, exec.fills), each at its own event time (the filter is predicted to
       the fill's time first), in ring order: corrected z_fill (CONVENTIONS.md)
       ``z = -side * c_fill * d_bps / (sigma * sqrt(tau_fill))``,
       ``d_bps = |px - mid_ref| / mid_ref * 1e4`` (mid_ref = FI_MID_REF, the last mid strictly
       before the fill), ``R = sigma_fill^2``. A bid fill (+1) is bearish, an ask fill bullish; a
       fill at the mid gives z = 0. A fill with NaN/non-positive px or mid_ref, or side not +-1,
       is skipped and counted.
    2. The filter is predicted to ``now``.
    3. ``price`` (e.g. source.mid), when it ticked: z = r/dt_p, R = sigma^2/dt_p with
       r = 1e4 ln(p/p_prev) bps and dt_p the seconds since the previous price this node used
       (seed: z = dp/dt, R = sigma_p^2/dt). Treated, as in the seed, as a measurement of mu
       at ``now``. The first price only seeds; a zero elapsed time folds the move into the next
       interval; NaN or non-positive prices are ignored.
    4. ``trend`` (estimators.trend's obs: z_trend corrected, R_trend = sigma_trend^2/agreement^2,
       both computed by that node), when it ticked.
    5. ``flow`` (estimators.flow's obs, z_flow / R_flow), when it ticked.
    6. ``obs``: any number of feature obs (features.*.obs), in wiring order, each applied once,
       in the run where it ticked (ticked since this node last ran).

    Sequential scalar updates of independent observations at one time commute, so the order
    only fixes floating-point rounding and which update the innovation outputs describe.

    Serial correlation (the node's choice; the seed treats every tick as independent). A
    feature's obs ticks every quote cycle, but its noise is correlated over many cycles (a BIM
    or a funding z-score barely changes in a second): counted as independent, a source ticking
    once a second with R = 0.05^2 would add 400 precision units a second and drag mu_hat to
    the features' average within seconds, whatever the price does. So the trend, flow and each
    feature obs get R_eff = R * max(1, obs_corr_s / dt_k), dt_k the seconds since that source
    last ticked (its first tick: dt_k = obs_corr_s): a source adds at most the precision 1/R
    per obs_corr_s however often it ticks, and a source ticking slower than that is not
    touched. Price returns (independent increments) and fills are not inflated. Default 60 s: on
    trend_down (20 seeds, the graph of tests/nodes/estimators/drift_trend_down.yaml: price,
    fills, trend and six features at their defaults) mu_hat over minutes 1-3 after the onset
    is negative and below its pre-onset mean in 5 seeds at 5 s, 9 at 10 s, 17 at 30 s and 18
    at each of 60, 90, 120, 180 and 300 s; with every tick independent the features drag
    mu_hat to their average (0 of 20). At most
    MAX_OBS = 62 feature obs sources; more are skipped and counted. Features of one book are
    also correlated with each other (CONVENTIONS.md): that is for the calibration gate's
    inflated R, not this.

    ``sigma`` (bps/sqrt s; e.g. estimators.ewma_vol.sigma) scales the price noise and the fill
    observation; while it is unwired, NaN, <= 0 or inf, the param ``sigma_p`` is used.

    Guards: an observation with NaN/inf z, R <= 0, R = NaN or R = inf is skipped and counted in
    ``n_skipped``; a positive R is floored at 1e-18 (bps/s)^2 so P stays > 0; dt <= 0
    (same-time events, a fill stamped before the filter time) never predicts backwards: the
    update is applied at the filter's current time.

    Outputs (every run): ``mu_hat`` (bps/s) and ``P`` ((bps/s)^2), predicted to ``now``.
    Innovation statistics (emitted on runs that applied at least one update; they describe the
    LAST update of the run): ``innovation`` nu = z - mu- (bps/s); ``nis`` = nu^2/S, the
    normalised innovation squared (chi^2_1 with mean 1 when the model is right); ``nis_mean``,
    the running mean of nis over all updates, the plain mean for the first ``nis_window`` and
    then an exponential average with weight 1/nis_window (consistency check: ~1; > 1 means the
    R's or sigma_mu are too small); ``n_updates`` updates applied since start. ``n_skipped``
    (emitted when it changes, and on the first run) counts skipped observations.

    Default trigger: event (a posterior update on fills, seed 004 §6): it also runs in a cycle
    step when a cycle-triggered obs ticked, after its producer."""

    type_name = "estimators.kalman_drift"

    class Params(NodeParams):
        kappa_mu: float = Field(
            0.02, gt=0, description="drift mean-reversion rate, 1/s (seed range 0.005-0.05; 35 s half-life)"
        )
        sigma_mu: float = Field(
            0.01,
            gt=0,
            description="drift process noise, (bps/s)/sqrt(s) (seed range 0.001-0.01); stationary sd "
            "sigma_mu/sqrt(2 kappa_mu) = 0.05 bps/s at the defaults",
        )
        sigma_p: float = Field(
            0.3, gt=0, description="price volatility, bps/sqrt(s), used when the sigma input has no value"
        )
        c_fill: float = Field(
            0.05, ge=0, description="fill observation scale, bps/s per unit of d_bps/(sigma sqrt(tau_fill))"
        )
        tau_fill: float = Field(10.0, gt=0, description="fill horizon tau_fill, seconds")
        sigma_fill: float = Field(
            0.5, gt=0, description="fill observation noise sd, bps/s (R_fill = sigma_fill^2; seed 0.5-5)"
        )
        nis_window: int = Field(500, ge=1, description="updates in the running NIS mean's window")
        obs_corr_s: float = Field(
            60.0,
            ge=0,
            description="correlation time of the trend, flow and feature obs, s: each source's R is "
            "inflated by max(1, obs_corr_s / seconds since it last ticked); 0 = every tick independent",
        )

    inputs = {
        "price": In("f64", optional=True, doc="price (e.g. source.mid); its returns are observations"),
        "sigma": In("f64", optional=True, doc="volatility, bps/sqrt(s) (e.g. estimators.ewma_vol.sigma)"),
        "fills": In("fills", optional=True, doc="our fills (exec.fills)"),
        "trend": In("obs", optional=True, doc="the trend detector's obs (estimators.trend.obs)"),
        "flow": In("obs", optional=True, doc="the flow model's obs (estimators.flow.obs)"),
        "obs": In("obs", variadic=True, optional=True, doc="feature observations, any number"),
    }
    outputs = {
        "mu_hat": Out("f64", doc="drift estimate, bps/s"),
        "P": Out("f64", doc="its posterior variance, (bps/s)^2"),
        "innovation": Out("f64", doc="last innovation z - mu-, bps/s"),
        "nis": Out("f64", doc="last normalised innovation squared nu^2/S"),
        "nis_mean": Out("f64", doc="running mean of nis (~1 when consistent)"),
        "n_updates": Out("f64", doc="updates applied since start"),
        "n_skipped": Out("f64", doc="observations skipped (NaN z, R <= 0, bad fills)"),
    }
    tier, trigger = "hot", "event"
    kernel = kalman_drift_kernel

    def init_state(self):
        f = np.zeros(9)
        f[S_LAST_PX] = np.nan
        ts = np.full(2 + MAX_OBS, -1, np.int64)  # last tick time per trend, flow, obs k (-1: never)
        return (f, np.zeros(2, np.int64), ts)  # float state (S_*), [filter time, last price time] ns


EMIT = KalmanDrift.EMIT  # the kernel's named emit bits (compile-time constants)
