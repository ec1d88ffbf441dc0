"""estimators.regime_hmm: 4-regime HMM, online forward filter (seed 004 §1D)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from pydantic import Field, field_validator, model_validator

from flowmm.core.node import In, Node, NodeParams, Out
from flowmm.core.ports import FI_SIDE, MK_AS_BPS, MK_HORIZON_S

N_REG = 4  # trending_down, trending_up, mean_reverting, volatile (index = regime id here)
REGIMES = ("trending_down", "trending_up", "mean_reverting", "volatile")

# packed params: six per-regime blocks of 4, the generator's 16 rates (row-major), the prior,
# then scalars
P_RET_MEAN, P_RET_SD, P_P_BID, P_FILL_RATE, P_AS_MEAN, P_AS_SD = 0, 4, 8, 12, 16, 20
P_RATES = 24  # 24..39: rates[i, j] per second, i -> j (diagonal packed as minus the row sum)
P_PRIOR = 40  # 40..43
P_AS_HORIZON = 44
P_COUNT_FILLS = 45
# derived (logs packed once, so a step takes few transcendentals)
P_LOG_RET_SD, P_LOG_P_BID, P_LOG_P_ASK, P_LOG_FILL_RATE, P_LOG_AS_SD = 46, 50, 54, 58, 62
N_PARAMS = 66
TINY = 1e-280  # below this a predicted probability is recomputed in log space

# fs (float64 state)
F_LAST_MID, F_CACHED_DT, F_SEEDED = 0, 1, 2
N_FS = 3
TAYLOR_TERMS = 18  # |Y| <= 0.5 after scaling: remainder < 0.5^19/19! ~ 1e-23
LOG_2PI = math.log(2.0 * math.pi)


@njit(cache=True)
def _expm_into(params, dt, out, y, term, tmp):
    """out = expm(Q dt) for the generator packed in params (scaling and squaring, Taylor).

    Q has off-diagonal rates >= 0 and rows summing to zero, so every entry of the exact result
    is >= 0; rounding can leave -1e-17 where a transition is unreachable, clamped to 0."""
    norm = 0.0
    for i in range(N_REG):
        row = 0.0
        for j in range(N_REG):
            row += abs(params[P_RATES + N_REG * i + j]) * dt
        norm = max(norm, row)
    s = 0
    while norm > 0.5:
        norm *= 0.5
        s += 1
    scale = dt / 2.0**s
    for i in range(N_REG):
        for j in range(N_REG):
            y[i, j] = params[P_RATES + N_REG * i + j] * scale
            term[i, j] = 1.0 if i == j else 0.0
            out[i, j] = term[i, j]
    for k in range(1, TAYLOR_TERMS + 1):
        big = 0.0
        for i in range(N_REG):  # tmp = term @ y / k
            for j in range(N_REG):
                acc = 0.0
                for m in range(N_REG):
                    acc += term[i, m] * y[m, j]
                tmp[i, j] = acc / k
                big = max(big, abs(tmp[i, j]))
        for i in range(N_REG):
            for j in range(N_REG):
                term[i, j] = tmp[i, j]
                out[i, j] += tmp[i, j]
        if big < 1e-20:  # |Y| <= 0.5: every later term is smaller still (a few terms at rate*dt ~ 1e-3)
            break
    for _ in range(s):
        for i in range(N_REG):
            for j in range(N_REG):
                acc = 0.0
                for m in range(N_REG):
                    acc += out[i, m] * out[m, j]
                tmp[i, j] = acc
        for i in range(N_REG):
            for j in range(N_REG):
                out[i, j] = tmp[i, j]
    for i in range(N_REG):
        for j in range(N_REG):
            if out[i, j] < 0.0:
                out[i, j] = 0.0


@njit(cache=True)
def _gauss_ll(x, mean, sd, log_sd):
    z = (x - mean) / sd
    return -0.5 * (LOG_2PI + z * z) - log_sd


@njit(cache=True)
def regime_hmm_kernel(
    now, dt, params, fs, ts, logb, amat, ll, scratch,
    mid, mid_ticked,
    fills_t, fills_r, fills_start, fills_end,
    markouts_t, markouts_r, markouts_start, markouts_end,
    probs, regime, p_trending_down, p_trending_up, p_mean_reverting, p_volatile, loglik,
):  # fmt: skip
    if fs[F_SEEDED] == 0.0:  # first run: the prior, normalised in log space
        fs[F_SEEDED] = 1.0
        tot = 0.0
        for r in range(N_REG):
            tot += params[P_PRIOR + r]
        for r in range(N_REG):
            logb[r] = math.log(params[P_PRIOR + r] / tot)
    # predict: logb_j <- log sum_i b_i A_ij(dt), A = expm(Q dt) (cached for a repeated dt).
    # logb is normalised, so exp(logb) sums to 1 and the sum is safe in linear space; a
    # predicted probability below TINY (a regime ruled out, no switching into it) is redone
    # by log-sum-exp so it keeps its exact log instead of underflowing to 0
    if dt > 0.0:
        if dt != fs[F_CACHED_DT]:
            _expm_into(params, dt, amat, scratch[0], scratch[1], scratch[2])
            fs[F_CACHED_DT] = dt
        for i in range(N_REG):
            ll[i] = math.exp(logb[i])
        for j in range(N_REG):
            acc = 0.0
            for i in range(N_REG):
                acc += ll[i] * amat[i, j]
            scratch[0, 0, j] = acc
        for j in range(N_REG):
            acc = scratch[0, 0, j]
            if acc > TINY:
                scratch[0, 1, j] = math.log(acc)
                continue
            top = -math.inf
            for i in range(N_REG):
                if amat[i, j] > 0.0:
                    top = max(top, logb[i] + math.log(amat[i, j]))
            acc = 0.0
            for i in range(N_REG):
                if amat[i, j] > 0.0:
                    acc += math.exp(logb[i] + math.log(amat[i, j]) - top)
            scratch[0, 1, j] = top + math.log(acc) if top > -math.inf else -math.inf
        for j in range(N_REG):
            logb[j] = scratch[0, 1, j]
    for r in range(N_REG):
        ll[r] = 0.0

    # price move since the last mid used: r ~ N(m tau, s^2 tau), bps, tau in s
    p = mid[0]
    if mid_ticked and p > 0.0 and p < math.inf:
        last = fs[F_LAST_MID]
        if last != last:
            fs[F_LAST_MID] = p
            ts[0] = now  # time of the last mid used, ns
        else:
            tau = (now - ts[0]) * 1e-9
            if tau > 0.0:  # a same-time mid is folded into the next interval
                ret = 1e4 * math.log(p / last)
                sq = math.sqrt(tau)
                half_log_tau = 0.5 * math.log(tau)
                for r in range(N_REG):
                    ll[r] += _gauss_ll(
                        ret,
                        params[P_RET_MEAN + r] * tau,
                        params[P_RET_SD + r] * sq,
                        params[P_LOG_RET_SD + r] + half_log_tau,
                    )
                fs[F_LAST_MID] = p
                ts[0] = now

    # own fills: Bernoulli side per fill, and a Poisson process of fills over the node's dt
    n = 0
    cap = fills_t.shape[0]
    for i in range(fills_start, fills_end):
        side = fills_r[i % cap, FI_SIDE]
        if side == 1.0:
            for r in range(N_REG):
                ll[r] += params[P_LOG_P_BID + r]
            n += 1
        elif side == -1.0:
            for r in range(N_REG):
                ll[r] += params[P_LOG_P_ASK + r]
            n += 1
    if params[P_COUNT_FILLS] != 0.0:
        span = dt if dt > 0.0 else 0.0
        for r in range(N_REG):
            ll[r] += n * params[P_LOG_FILL_RATE + r] - params[P_FILL_RATE + r] * span

    # adverse selection of our fills at one markout horizon
    cap = markouts_t.shape[0]
    h = params[P_AS_HORIZON]
    for i in range(markouts_start, markouts_end):
        row = i % cap
        a = markouts_r[row, MK_AS_BPS]
        if abs(markouts_r[row, MK_HORIZON_S] - h) > 1e-9 or not (abs(a) < math.inf):
            continue
        for r in range(N_REG):
            ll[r] += _gauss_ll(a, params[P_AS_MEAN + r], params[P_AS_SD + r], params[P_LOG_AS_SD + r])

    # update and normalise in log space (log-sum-exp)
    top = -math.inf
    for r in range(N_REG):
        ll[r] += logb[r]
        top = max(top, ll[r])
    best = 0
    if top > -math.inf and top < math.inf:
        acc = 0.0
        for r in range(N_REG):
            probs[r] = math.exp(ll[r] - top)
            acc += probs[r]
        lse = top + math.log(acc)
        for r in range(N_REG):
            logb[r] = ll[r] - lse
            probs[r] /= acc
            if logb[r] > logb[best]:
                best = r
        loglik[0] = lse
    else:  # a likelihood that is 0 (or inf) everywhere carries no usable information
        for r in range(N_REG):
            probs[r] = math.exp(logb[r])
            if logb[r] > logb[best]:
                best = r
        loglik[0] = math.nan
    regime[0] = best
    p_trending_down[0] = probs[0]
    p_trending_up[0] = probs[1]
    p_mean_reverting[0] = probs[2]
    p_volatile[0] = probs[3]
    return EMIT.ALL


Quad = tuple[float, float, float, float]


class RegimeHmm(Node):
    """Filtered posterior over 4 market regimes: an online HMM forward filter (seed 004 §1D).

    Regimes, in this order everywhere (probs[i], `regime` = argmax index): 0 trending_down,
    1 trending_up, 2 mean_reverting, 3 volatile. (source.truth numbers them 1..4, with 0 quiet.)

    Each run is one HMM step. With b the filtered belief after the previous run:

        predict  b⁻_j = Σ_i b_i A_ij(dt),  A(dt) = expm(Q·dt)
        update   b_j ∝ b⁻_j · L_j,  L_j = P(everything observed since the last run | regime j)

    with log b kept in state and normalised by log-sum-exp, so nothing underflows however
    sharp the evidence (the predict sums the normalised b in linear space and falls back to
    log-sum-exp for a predicted probability below 1e-280). The seed writes update-then-predict
    and would output the one-step prediction; we output the filtered (not smoothed)
    posterior P(regime_t | events up to t). The seed's "slow transitions, ~0.001 per second"
    is a continuous-time Markov chain with generator Q: `rates_per_s[i][j]`, if given, is the
    rate of switching i → j per second (diagonal ignored; Q_ii is minus the row sum), so
    irregular dt, zero dt (A = I) and long gaps are exact. Default: `switch_rate_per_s` 0.001
    (mean dwell ~17 min), next regime uniform among the other three. Q·dt is exponentiated in
    the kernel by scaling and squaring (Taylor, up to 18 terms, stopping once a term is
    < 1e-20), cached per dt.

    Emissions (the seed gives only "high/low"; these distributions are our choice, with the
    default numbers as calibration starting points, not fitted values). Terms multiply, i.e.
    they are taken as independent given the regime; an observation that is absent contributes
    likelihood 1:

    * price move: when `mid` ticks, r = 1e4·ln(mid/mid_last) bps over τ s since the last mid
      used, r ~ N(ret_mean_bps_s·τ, ret_sd_bps_sqrt_s²·τ) — a Brownian motion with regime drift
      (bps/s) and volatility (bps/√s). Defaults: drift −0.06/+0.06/0/0 (the synthetic trends),
      sd 0.6/0.6/0.6/1.8: volatile is "|Δp| large"; the seed's "|Δp| small" for mean_reverting
      is its zero drift — a smaller sd there would let the (strong, per-event) variance
      evidence swamp the (weak) drift evidence that separates it from the trends. The
      mean-reverting regime's pull is not modelled (returns are taken as i.i.d. given the
      regime). A mid at the same time as the last one used is folded into the next interval;
      NaN / non-positive mids are skipped.
    * fill side: each own fill with side ±1, P(side = +1, our bid filled) = p_bid_fill:
      0.7 in trending_down (sellers hit our bids), 0.3 in trending_up, 0.5 otherwise ("buy ≈
      sell"). Fills with any other side are ignored.
    * fill count: fills arrive as a Poisson process of rate fill_rate_per_s per regime; over the
      node's dt the point-process likelihood is λ^n·e^{−λ·dt} (λ^n on the first run, dt = 0).
      Defaults 0.1/0.1/0.05/0.2 per s: volatile "many fills". The rates depend on how we
      quote; set `count_fills: false` when `fills` is not wired, or the absence of fills reads
      as evidence for the slowest regime (an unwired batch input is indistinguishable from an
      empty one inside the kernel).
    * adverse selection: each markout at horizon `as_horizon_s` (other horizons ignored, so a
      fill counts once) gives AS_bps ~ N(as_mean_bps, as_sd_bps²): high in both trends (6 bps),
      low when mean-reverting (0), in between with a wide spread when volatile. The markout
      arrives h s after its fill and is attributed to the regime when it arrives (regimes are
      slow). AS is partly the same price move the returns already saw: the independence
      assumption overcounts that evidence somewhat.

    Outputs: `probs` (vec 4), `regime` (argmax index; the first on ties), the four
    probabilities as f64 ports for wiring, and `loglik`, the step's log predictive likelihood
    log Σ_j b⁻_j L_j (NaN if the evidence was 0 everywhere, in which case the step keeps the
    predicted belief). Every run emits every output. Event-triggered (posterior updates on
    fills and trades, seed 004 §6).
    """

    type_name = "estimators.regime_hmm"

    class Params(NodeParams):
        ret_mean_bps_s: Quad = Field(
            (-0.06, 0.06, 0.0, 0.0), description="drift of the mid per regime, bps/s"
        )
        ret_sd_bps_sqrt_s: Quad = Field(
            (0.6, 0.6, 0.6, 1.8), description="volatility of the mid per regime, bps/sqrt(s), > 0"
        )
        p_bid_fill: Quad = Field(
            (0.7, 0.3, 0.5, 0.5), description="P(a fill is on our bid) per regime, in (0, 1)"
        )
        fill_rate_per_s: Quad = Field(
            (0.1, 0.1, 0.05, 0.2), description="rate of our fills per regime, per s, > 0"
        )
        as_mean_bps: Quad = Field(
            (6.0, 6.0, 0.0, 3.0), description="mean adverse selection per regime at as_horizon_s, bps"
        )
        as_sd_bps: Quad = Field(
            (6.0, 6.0, 3.0, 8.0), description="sd of adverse selection per regime, bps, > 0"
        )
        switch_rate_per_s: float = Field(
            0.001, ge=0, description="rate of leaving each regime, per s; next regime uniform"
        )
        rates_per_s: tuple[tuple[float, ...], ...] | None = Field(
            None,
            description="full switching rates i -> j per s (row = from; diagonal ignored); "
            "overrides switch_rate_per_s",
        )
        prior: Quad = Field(
            (0.25, 0.25, 0.25, 0.25), description="belief before the first event (normalised), > 0"
        )
        as_horizon_s: float = Field(5.0, gt=0, description="markout horizon whose AS is used, s")
        count_fills: bool = Field(True, description="use the fill count (Poisson) term; needs fills wired")

        @field_validator("ret_sd_bps_sqrt_s", "fill_rate_per_s", "as_sd_bps", "prior")
        @classmethod
        def _positive(cls, v: Quad) -> Quad:
            if not all(x > 0 and math.isfinite(x) for x in v):
                raise ValueError(f"every entry must be finite and > 0, got {v}")
            return v

        @field_validator("p_bid_fill")
        @classmethod
        def _probability(cls, v: Quad) -> Quad:
            if not all(0 < x < 1 for x in v):
                raise ValueError(f"every entry must be in (0, 1), got {v}")
            return v

        @field_validator("ret_mean_bps_s", "as_mean_bps")
        @classmethod
        def _finite(cls, v: Quad) -> Quad:
            if not all(math.isfinite(x) for x in v):
                raise ValueError(f"every entry must be finite, got {v}")
            return v

        @model_validator(mode="after")
        def _rates(self):
            m = self.rates_per_s
            if m is not None and (len(m) != N_REG or any(len(row) != N_REG for row in m)):
                raise ValueError("rates_per_s must be a 4x4 matrix (rows: from regime)")
            for i, row in enumerate(m or ()):
                for j, x in enumerate(row):
                    if i != j and not (x >= 0 and math.isfinite(x)):
                        raise ValueError(f"rates_per_s[{i}][{j}] must be finite and >= 0, got {x}")
            return self

    inputs = {
        "mid": In("f64", doc="mid price (source.mid)"),
        "fills": In("fills", optional=True, doc="our fills (exec.fills)"),
        "markouts": In("markouts", optional=True, doc="markouts of our fills (exec.markouts)"),
    }
    outputs = {
        "probs": Out("vec", size=N_REG, doc="P(regime) in the order of REGIMES"),
        "regime": Out("f64", doc="argmax: 0 down, 1 up, 2 mean_reverting, 3 volatile"),
        "p_trending_down": Out("f64"),
        "p_trending_up": Out("f64"),
        "p_mean_reverting": Out("f64"),
        "p_volatile": Out("f64"),
        "loglik": Out("f64", doc="log predictive likelihood of the step's evidence"),
    }
    trigger = "event"
    kernel = regime_hmm_kernel

    def generator(self) -> np.ndarray:
        """Q (per s): the off-diagonal rates with Q_ii = -sum_j!=i Q_ij."""
        p = self.params
        if p.rates_per_s is None:
            q = np.full((N_REG, N_REG), p.switch_rate_per_s / (N_REG - 1))
        else:
            q = np.array(p.rates_per_s, dtype=np.float64)
        np.fill_diagonal(q, 0.0)
        np.fill_diagonal(q, -q.sum(axis=1))
        return q

    def pack_params(self) -> np.ndarray:
        p = self.params
        out = np.empty(N_PARAMS)
        for off, v in (
            (P_RET_MEAN, p.ret_mean_bps_s),
            (P_RET_SD, p.ret_sd_bps_sqrt_s),
            (P_P_BID, p.p_bid_fill),
            (P_FILL_RATE, p.fill_rate_per_s),
            (P_AS_MEAN, p.as_mean_bps),
            (P_AS_SD, p.as_sd_bps),
            (P_PRIOR, p.prior),
        ):
            out[off : off + N_REG] = v
        out[P_RATES : P_RATES + N_REG * N_REG] = self.generator().ravel()
        out[P_AS_HORIZON] = p.as_horizon_s
        out[P_COUNT_FILLS] = float(p.count_fills)
        for off, src in ((P_LOG_RET_SD, P_RET_SD), (P_LOG_FILL_RATE, P_FILL_RATE), (P_LOG_AS_SD, P_AS_SD)):
            out[off : off + N_REG] = np.log(out[src : src + N_REG])
        out[P_LOG_P_BID : P_LOG_P_BID + N_REG] = np.log(out[P_P_BID : P_P_BID + N_REG])
        out[P_LOG_P_ASK : P_LOG_P_ASK + N_REG] = np.log1p(-out[P_P_BID : P_P_BID + N_REG])
        return out

    def init_state(self):
        fs = np.zeros(N_FS)  # [last mid used, cached dt, seeded]
        fs[F_LAST_MID] = np.nan
        fs[F_CACHED_DT] = np.nan
        return (
            fs,
            np.zeros(1, np.int64),  # time of the last mid used, ns
            np.zeros(N_REG),  # log belief
            np.zeros((N_REG, N_REG)),  # A(cached dt)
            np.zeros(N_REG),  # step log-likelihoods
            np.zeros((3, N_REG, N_REG)),  # expm scratch
        )


EMIT = RegimeHmm.EMIT  # the kernel's named emit bits (compile-time constants)
