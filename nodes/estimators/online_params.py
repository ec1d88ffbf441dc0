import numpy as np
from numba import njit
from pydantic import Field

from flowmm.core.node import In, Node, NodeParams, Out

P_KAPPA, P_HALF_LIFE, P_SIGMA_MU_MIN, P_GRID, P_ACF_HALF_LIFE = range(5)
# float state
(S_INIT, S_MU, S_P, S_NUM, S_DEN, S_GINIT, S_GPX, S_R1, S_R2, S_C0, S_C1, S_C2, S_NR) = range(13)
# int state (ns)
T_LAST, T_GRID = 0, 1


@njit(cache=True)
def online_params_kernel(
    now, dt, params, f, ti, mu_hat, mu_hat_ticked, P, P_ticked, price, price_ticked,
    sigma_mu, sigma_mu_var, kappa_mu, acf1,
):  # fmt: skip
    kappa = params[P_KAPPA]
    mask = EMIT.NONE
    # --- sigma_mu by covariance matching on the drift filter's corrections ----------------
    mu = mu_hat[0]
    pv = P[0]
    if (mu_hat_ticked or P_ticked) and mu == mu and pv >= 0.0 and abs(mu) < np.inf and pv < np.inf:
        if f[S_INIT] == 0.0:
            f[S_INIT] = 1.0
            f[S_MU] = mu
            f[S_P] = pv
            ti[T_LAST] = now
        else:
            el = (now - ti[T_LAST]) * 1e-9
            if el > 0.0:  # else: same time, the next interval covers it
                a = np.exp(-kappa * el)
                d = mu - a * f[S_MU]  # the filter's correction over the interval
                q_hat = d * d + pv - a * a * f[S_P]
                g = -np.expm1(-2.0 * kappa * el) / (2.0 * kappa)
                w = np.exp(-np.log(2.0) * el / params[P_HALF_LIFE])
                f[S_NUM] = w * f[S_NUM] + q_hat
                f[S_DEN] = w * f[S_DEN] + g
                f[S_MU] = mu
                f[S_P] = pv
                ti[T_LAST] = now
                v = f[S_NUM] / f[S_DEN]
                sigma_mu_var[0] = v
                lo = params[P_SIGMA_MU_MIN]
                sigma_mu[0] = np.sqrt(v) if v > lo * lo else lo
                mask |= EMIT.SIGMA_MU | EMIT.SIGMA_MU_VAR
    # --- kappa_mu from the autocorrelation of grid returns ---------------------------------
    px = price[0]
    if price_ticked and px > 0.0 and px < np.inf:
        grid = params[P_GRID]
        step = np.int64(grid * 1e9)
        if f[S_GINIT] == 0.0:
            f[S_GINIT] = 1.0
            f[S_GPX] = px
            ti[T_GRID] = now
        elif now - ti[T_GRID] >= step:
            nsteps = (now - ti[T_GRID]) // step
            r = np.log(px / f[S_GPX]) * 1e4
            f[S_GPX] = px
            ti[T_GRID] += nsteps * step
            if nsteps > 1:  # a gap: the return spans several grid steps; restart the lags
                f[S_NR] = 0.0
            else:
                w = 1.0 - np.exp(-np.log(2.0) * grid / params[P_ACF_HALF_LIFE])
                f[S_C0] += w * (r * r - f[S_C0])
                if f[S_NR] >= 1.0:
                    f[S_C1] += w * (r * f[S_R1] - f[S_C1])
                if f[S_NR] >= 2.0:
                    f[S_C2] += w * (r * f[S_R2] - f[S_C2])
                f[S_R2] = f[S_R1]
                f[S_R1] = r
                f[S_NR] += 1.0
                if f[S_NR] >= 3.0 and f[S_C0] > 0.0:
                    acf1[0] = f[S_C1] / f[S_C0]
                    mask |= EMIT.ACF1
                    if f[S_C1] > 0.0 and f[S_C2] > 0.0 and f[S_C2] < f[S_C1]:
                        kappa_mu[0] = -np.log(f[S_C2] / f[S_C1]) / grid
                        mask |= EMIT.KAPPA_MU
    return mask


class OnlineParams(Node):
    """Online estimates of the drift model's parameters (seed 000, Component 5).

    sigma_mu (drift process noise, (bps/s)/sqrt s; seed: "residual variance of drift innovations,
    updated every ~60 s") by covariance matching (Myers & Tapley 1976) on the drift filter's
    outputs ``mu_hat`` and ``P`` (wire estimators.kalman_drift). Between two filter states
    (t_j, mu_j, P_j) and (t_k, mu_k, P_k), dt = t_k - t_j, a = e^{-kappa_mu dt}:

        d = mu_k - a mu_j                       (the filter's corrections over the interval)
        q_hat = d^2 + P_k - a^2 P_j,   g = (1 - a^2)/(2 kappa_mu)

    For a filter running the true OU model E[q_hat] = sigma_mu^2 g exactly, for any number of
    updates inside the interval (the corrections K nu are uncorrelated with E[(K nu)^2] = K P-,
    and the process noise over dt composes to sigma_mu^2 g), so this node may run on any tier.
    The estimate is sigma_mu^2 = sum w q_hat / sum w g with weights halving every
    ``half_life_s`` (default 60 s). If the filter's sigma_mu is too small, its corrections are
    larger than its P predicts and the estimate rises above it (and vice versa): it points to
    the value to set. It cannot feed back into the same filter (graphs are DAGs); it is a
    monitor and the online value for a recalibration. ``kappa_mu`` must equal the filter's.
    Limitation (measured): with the small gains of a drift filter (K ~ 0.003 per update) the
    corrections are tiny next to P, so the estimate mostly returns the filter's own sigma_mu:
    a filter run at 0.003 or 0.03 against a true 0.01 gave ~0.003 and 0.021-0.029. Unbiased
    when the filter is right, weak at telling it is wrong; the return autocovariance
    (sigma_mu^2 = 2 kappa gamma_1 / b^2) would be a sharper check, not built yet.
    Output ``sigma_mu_var`` is the raw ratio (may be < 0 from noise); ``sigma_mu`` =
    sqrt(max(ratio, sigma_mu_min^2)).

    kappa_mu (drift reversion, 1/s; seed: "autocorrelation of returns", calibrated offline)
    from ``price`` (e.g. source.mid): log returns r_i (bps) on a grid of ``grid_s`` seconds
    (the last price seen when a grid boundary is crossed) and exponentially weighted moments
    c_l = E[r_i r_{i-l}], l = 0, 1, 2 (half-life ``acf_half_life_s``). For OU drift,
    cov(r_i, r_{i-l}) is proportional to e^{-kappa h (l-1)} for l >= 1 (h = grid_s), so
    kappa_mu = -ln(c_2/c_1)/h, emitted only when 0 < c_2 < c_1; ``acf1`` = c_1/c_0 (the lag-1
    autocorrelation, uncentred: drift is mean zero) is emitted once three returns are in. A
    gap longer than one grid step restarts the lags (the spanning return is dropped). It needs
    hours of data to resolve: drift makes returns' autocorrelation small.

    The other online estimates of Component 5 are nodes already: sigma (EW realised vol,
    ~300 s) is estimators.ewma_vol / estimators.vol; kappa_buy, kappa_sell and
    informed_fraction are estimators.flow. They are not duplicated here.

    Edge cases: NaN or inf inputs, P < 0 and zero elapsed time are ignored; the first filter
    state and the first price only seed."""

    type_name = "estimators.online_params"

    class Params(NodeParams):
        kappa_mu: float = Field(0.02, gt=0, description="the drift filter's kappa_mu, 1/s (must match it)")
        half_life_s: float = Field(60.0, gt=0, description="half-life of the sigma_mu estimate, seconds")
        sigma_mu_min: float = Field(1e-4, ge=0, description="floor of the sigma_mu output, (bps/s)/sqrt(s)")
        grid_s: float = Field(10.0, gt=0, description="return grid for the autocorrelation, seconds")
        acf_half_life_s: float = Field(3600.0, gt=0, description="half-life of the autocovariances, seconds")

    inputs = {
        "mu_hat": In("f64", doc="drift filter estimate, bps/s (estimators.kalman_drift.mu_hat)"),
        "P": In("f64", doc="its variance, (bps/s)^2 (estimators.kalman_drift.P)"),
        "price": In("f64", optional=True, doc="price for kappa_mu (e.g. source.mid)"),
    }
    outputs = {
        "sigma_mu": Out("f64", doc="drift process noise estimate, (bps/s)/sqrt(s)"),
        "sigma_mu_var": Out("f64", doc="raw sigma_mu^2 ratio (may be < 0)"),
        "kappa_mu": Out("f64", doc="drift reversion estimate, 1/s"),
        "acf1": Out("f64", doc="lag-1 autocorrelation of grid returns"),
    }
    tier, trigger = "hot", "cycle"
    kernel = online_params_kernel

    def init_state(self):
        return (np.zeros(13), np.zeros(2, np.int64))  # float state (S_*), [last filter t, grid t] ns


EMIT = OnlineParams.EMIT  # the kernel's named emit bits (compile-time constants)
