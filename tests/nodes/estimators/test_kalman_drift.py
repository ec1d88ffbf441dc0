"""estimators.kalman_drift: the exact-OU scalar drift filter against independent references."""

import copy
import math

import numpy as np
import pytest
from flowmm.nodes.estimators.kalman_drift import KalmanDrift, kalman_drift_kernel
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from pydantic import Field

import flowmm
from flowmm.core.engine import Interpreter
from flowmm.core.node import In, Node, NodeParams, Out
from flowmm.core.ports import FI_MID_REF, FI_PX, FI_SIDE
from flowmm.sources import Events
from flowmm.sources.synthetic import Synthetic
from flowmm.testing import NodeHarness, allocations, example_args

S = 1_000_000_000
T0 = 1_700_000_000 * S
KAPPA, SIGMA_MU, SIGMA_P = 0.03, 0.02, 0.4
C_FILL, TAU_FILL, SIGMA_FILL = 0.08, 5.0, 0.6
P_STAT = SIGMA_MU**2 / (2 * KAPPA)
PARAMS = dict(
    kappa_mu=KAPPA,
    sigma_mu=SIGMA_MU,
    sigma_p=SIGMA_P,
    c_fill=C_FILL,
    tau_fill=TAU_FILL,
    sigma_fill=SIGMA_FILL,
)


# --- a test-only obs producer: deterministic z, R from the time; every 5th emission invalid ----------
@njit(cache=True)
def _obs_src_kernel(now, dt, params, state, price, price_ticked, obs):
    state[0] += 1.0
    t = (now % (1000 * 1_000_000_000)) * 1e-9
    obs[0] = params[0] * math.sin(t / params[1]) + 0.01 * price[0]
    obs[1] = params[2] * (1.5 + math.cos(t))
    if state[0] % 5.0 == 0.0:
        if state[0] % 10.0 == 0.0:
            obs[1] = -params[2]  # R <= 0: skipped
        else:
            obs[0] = math.nan  # NaN z: skipped
    return EMIT_OBS_SRC.OBS


class _ObsSrc(Node):
    """Test producer: z = amp sin(t/period) + 0.01 price, R = r0 (1.5 + cos t); every 5th emission
    invalid (NaN z or R < 0)."""

    type_name = "kdtest.obs_src"

    class Params(NodeParams):
        amp: float = Field(0.1)
        period: float = Field(7.0)
        r0: float = Field(0.01)

    inputs = {"price": In("f64")}
    outputs = {"obs": Out("obs")}
    kernel = _obs_src_kernel

    def init_state(self):
        return (np.zeros(1),)


EMIT_OBS_SRC = _ObsSrc.EMIT


class _Spy(Interpreter):
    """The reference engine, recording each producer's emissions and each filter run."""

    def __init__(self, plan):
        super().__init__(plan)
        self.emitted: dict[str, list] = {}
        self.runs: list[tuple[int, float, float, float, float]] = []
        for n in plan.nodes:
            n.cls = type(n.cls.__name__, (n.cls,), {"kernel": staticmethod(self._wrap(n.name, n.cls.kernel))})

    def _wrap(self, name, kernel):
        def spied(*args):
            mask = int(kernel(*args))
            if name == "kd":
                f = args[3]
                self.runs.append((int(args[0]), f[0], f[1], f[4], f[5]))  # mu, P, n_upd, n_skip
            elif mask & 1:
                self.emitted.setdefault(name, []).append((int(args[0]), *args[-1][:2]))
            return mask

        return spied


def _events(seed: int):
    rng = np.random.default_rng(seed)
    t, times = 0.3, []
    while t < 150.0:
        times.append(t)
        t += rng.exponential(0.45)
        if 40.0 < t < 41.0:
            t += 12.3  # a gap: several cycles with nothing, a long predict
        if 90.0 < t < 91.0:
            t += 27.7  # longer than the cold tier
    t_ns = [int(round(x * 1e9)) for x in times]
    mids = 28.0 * np.exp(np.cumsum(rng.normal(0.0, 0.8, len(t_ns))) * 1e-4)
    ev, fills = [], []
    for k, (tk, m) in enumerate(zip(t_ns, mids)):
        ev.append(
            {"t": T0 + tk, "kind": "book", "bids": [[m - 0.005, 5.0, 1]], "asks": [[m + 0.005, 5.0, 1]]}
        )
        if k > 0 and rng.random() < 0.15:  # an own fill against the previous mid
            side = 1.0 if rng.random() < 0.5 else -1.0
            ref = mids[k - 1]
            px = ref * (1 - side * rng.uniform(0.0, 6.0) * 1e-4)
            bad = rng.random() < 0.1
            if rng.random() < 0.5:  # half at a book time (one batch), half between
                tf = tk
            else:
                tf = (t_ns[k - 1] + tk) // 2
            rec = {"px": px, "sz": 1.0, "side": side, "oid": k, "fee": 0.0, "maker": 1.0, "mid_ref": ref}
            if bad:
                rec["mid_ref"] = math.nan
            fills.append((T0 + tf, rec))
    for tf, rec in fills:
        ev.append({"t": tf, "kind": "fill", **rec})
    ev.sort(key=lambda e: e["t"])  # stable: a fill at a book time stays after the book
    return ev, t_ns, mids, fills


GRAPH = {
    "name": "kalman_mixed",
    "clock": {"quote_every_ms": 1000},
    "tiers": {"hot": 1, "warm": {"every": 3, "phase": 1}, "cold": {"every": 7, "phase": 2}},
    "nodes": {
        "o_hot": {"type": "kdtest.obs_src", "in": {"price": "source.mid"}, "params": {"amp": 0.2}},
        "o_warm": {
            "type": "kdtest.obs_src",
            "tier": "warm",
            "in": {"price": "source.mid"},
            "params": {"r0": 0.003},
        },
        "o_cold": {
            "type": "kdtest.obs_src",
            "tier": "cold",
            "in": {"price": "source.mid"},
            "params": {"period": 3},
        },
        "o_trend": {
            "type": "kdtest.obs_src",
            "tier": "warm",
            "in": {"price": "source.mid"},
            "params": {"amp": -0.3},
        },
        "o_flow": {"type": "kdtest.obs_src", "in": {"price": "source.mid"}, "params": {"r0": 0.05}},
        "kd": {
            "type": "estimators.kalman_drift",
            "params": PARAMS,
            "in": {
                "price": "source.mid",
                "fills": "exec.fills",
                "trend": "o_trend.obs",
                "flow": "o_flow.obs",
                "obs": ["o_hot.obs", "o_warm.obs", "o_cold.obs"],
            },
        },
    },
}


def _decorrelate(emissions, corr):
    """R inflated by max(1, corr / seconds since the source's previous emission, valid or not);
    the first emission counts as corr seconds after the last."""
    out, last = [], None
    for t, z, r in emissions:
        gap = corr if last is None else (t - last) * 1e-9
        out.append((t, z, r * corr / gap if corr > 0 and gap < corr else r))
        last = t
    return out


def _updates(t_ns, mids, fills, emitted, corr):
    """Every observation as (time ns, order within a time, z, R), built from the event list and the
    producers' own emissions (not from what the filter saw)."""
    ups = []
    for tf, rec in fills:
        ref, px, side = rec["mid_ref"], rec["px"], rec["side"]
        z = -side * C_FILL * abs(px - ref) / ref * 1e4 / (SIGMA_P * math.sqrt(TAU_FILL))
        ups.append((tf, 0, z, SIGMA_FILL**2 if ref == ref else math.nan))
    for k in range(1, len(t_ns)):
        el = (t_ns[k] - t_ns[k - 1]) * 1e-9
        ups.append((T0 + t_ns[k], 1, math.log(mids[k] / mids[k - 1]) * 1e4 / el, SIGMA_P**2 / el))
    for order, name in enumerate(("o_trend", "o_flow", "o_hot", "o_warm", "o_cold"), start=2):
        ups += [(t, order, z, r) for t, z, r in _decorrelate(emitted[name], corr)]
    ups.sort(key=lambda u: (u[0], u[1]))
    return ups


def _valid(z, r):
    return z == z and r > 0 and math.isfinite(r)


def _numpy_filter(t_start, ups, t_out):
    """Plain-numpy exact-OU Kalman filter; the state after all updates at <= each output time."""
    mu, p, t_f = 0.0, P_STAT, t_start
    out, j = [], 0

    def predict(t):
        nonlocal mu, p, t_f
        dt = (t - t_f) * 1e-9
        if dt > 0:
            a = np.exp(-KAPPA * dt)
            mu, p, t_f = mu * a, p * a * a + SIGMA_MU**2 * (1 - a * a) / (2 * KAPPA), t
        return dt

    for t in t_out:
        while j < len(ups) and ups[j][0] <= t:
            tu, _, z, r = ups[j]
            predict(tu)
            if _valid(z, r):
                k = p / (p + r)
                mu, p = mu + k * (z - mu), (1 - k) * p
            j += 1
        predict(t)
        out.append((mu, p))
    return np.array(out)


def _filterpy_filter(t_start, ups, t_out):
    filterpy = pytest.importorskip("filterpy.kalman")
    kf = filterpy.KalmanFilter(dim_x=1, dim_z=1)
    kf.x = np.zeros((1, 1))
    kf.P = np.array([[P_STAT]])
    kf.H = np.array([[1.0]])
    state = {"t": t_start}

    def predict(t):
        dt = (t - state["t"]) * 1e-9
        if dt > 0:
            a = math.exp(-KAPPA * dt)
            kf.F = np.array([[a]])
            kf.Q = np.array([[SIGMA_MU**2 * -math.expm1(-2 * KAPPA * dt) / (2 * KAPPA)]])
            kf.predict()
            state["t"] = t

    out, j = [], 0
    for t in t_out:
        while j < len(ups) and ups[j][0] <= t:
            tu, _, z, r = ups[j]
            predict(tu)
            if _valid(z, r):
                kf.update(np.array([[z]]), R=np.array([[r]]))
            j += 1
        predict(t)
        out.append((kf.x[0, 0], kf.P[0, 0]))
    return np.array(out)


@pytest.mark.parametrize("seed, corr", [(1, 0.0), (2, 0.0), (1, 4.0), (2, 10.0)])
def test_mixed_stream_through_tiered_graph_equals_numpy_and_filterpy(seed, corr):
    """corr 0: every tick independent (the plain filter); 4 s and 10 s: hot (1 s), warm (3 s) and
    cold (7 s) sources get different serial-correlation inflations of R."""
    ev, t_ns, mids, fills = _events(seed)
    spec = copy.deepcopy(GRAPH)
    spec["nodes"]["kd"]["params"]["obs_corr_s"] = corr
    graph = flowmm.load_graph(spec)
    src = Events(ev, end_time=T0 + 151 * S)
    eng = _Spy(graph.plan)
    for chunk in src.chunks():
        eng.process(chunk)
    eng.finish(src.end_time)

    # the producers ran on their tiers: warm every 3rd cycle, cold every 7th, with gaps
    cyc = {k: {t // S for t, *_ in v} for k, v in eng.emitted.items()}  # cycle number
    assert all(c % 3 == 1 for c in cyc["o_warm"]) and all(c % 7 == 2 for c in cyc["o_cold"])
    assert len(cyc["o_cold"]) >= 10 and len(cyc["o_hot"]) > 2 * len(cyc["o_warm"])

    ups = _updates(t_ns, mids, fills, eng.emitted, corr)
    runs = {}
    for t, mu, p, n_upd, n_skip in eng.runs:  # the last run at each time (event step, then cycle)
        runs[t] = (mu, p, n_upd, n_skip)
    t_out = sorted(runs)
    got = np.array([runs[t][:2] for t in t_out])
    ref = _numpy_filter(T0 + t_ns[0], ups, t_out)
    fpy = _filterpy_filter(T0 + t_ns[0], ups, t_out)
    np.testing.assert_allclose(got[:, 0], ref[:, 0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got[:, 1], ref[:, 1], rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(got[:, 0], fpy[:, 0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got[:, 1], fpy[:, 1], rtol=1e-9, atol=1e-15)

    # each observation applied exactly once: counts match the references' valid / invalid ones
    n_valid = sum(_valid(z, r) for *_, z, r in ups)
    assert runs[t_out[-1]][2] == n_valid
    assert runs[t_out[-1]][3] == len(ups) - n_valid
    assert len(ups) - n_valid >= 10  # the guards were exercised
    assert abs(got[:, 0]).max() > 0.05  # the stream moved the filter


def _harness(**kw):
    return NodeHarness("estimators.kalman_drift", {**PARAMS, **kw}, variadic={"obs": 2})


def test_cold_start_is_the_stationary_prior_and_the_gap_predict_is_exact():
    h = _harness()
    out = h.step(T0)
    assert out["mu_hat"] == 0.0 and out["P"] == pytest.approx(P_STAT, rel=1e-15)
    assert out.emitted == {"mu_hat", "P", "n_skipped"}
    out = h.step(T0 + S, obs=[(0.5, 0.01), None])
    k = P_STAT / (P_STAT + 0.01)
    mu1, p1 = k * 0.5, (1 - k) * P_STAT
    assert out["mu_hat"] == pytest.approx(mu1, rel=1e-12) and out["P"] == pytest.approx(p1, rel=1e-12)
    assert out["innovation"] == pytest.approx(0.5) and out["nis"] == pytest.approx(0.25 / (P_STAT + 0.01))
    out = h.step(T0 + 301 * S)  # a 300-s gap: exact OU, not sigma_mu^2 dt
    a = math.exp(-KAPPA * 300)
    assert out["mu_hat"] == pytest.approx(mu1 * a, rel=1e-12)
    assert out["P"] == pytest.approx(p1 * a * a + P_STAT * (1 - a * a), rel=1e-12)
    assert out["P"] < P_STAT  # the Euler form p1 + sigma_mu^2 * 300 would be 18x P_STAT
    assert out.emitted == {"mu_hat", "P"}  # no update: innovation stats do not tick


def test_each_obs_applied_once_when_it_ticks():
    h = _harness()
    h.step(T0)
    out = h.step(T0 + S, obs=[(0.3, 0.02), (-0.1, 0.05)])
    assert out["n_updates"] == 2
    for k in range(2, 6):  # obs keep their values but do not tick
        out = h.step(T0 + k * S, price=28.0 if k == 2 else 28.0 * (1 + 1e-4 * k))
    assert out["n_updates"] == 5  # three price returns only
    out = h.step(T0 + 6 * S, obs=[None, (-0.1, 0.05)])
    assert out["n_updates"] == 6


def test_fill_sign_value_and_time():
    h = _harness()
    h.step(T0)
    # our bid filled 3 bps below the mid before it, at T0 + 0.4 s; the node runs at T0 + 1 s
    fill = (T0 + 400_000_000, 28.0 * (1 - 3e-4), 1.0, 1.0, 7.0, 0.0, 1.0, 28.0)
    out = h.step(T0 + S, fills=[fill])
    z = -C_FILL * 3.0 / (SIGMA_P * math.sqrt(TAU_FILL))
    p_minus = P_STAT  # stationary: the predict to the fill's time (0.4 s) keeps it
    k = p_minus / (p_minus + SIGMA_FILL**2)
    mu, p = k * z, (1 - k) * p_minus
    a2 = math.exp(-KAPPA * 0.6)
    assert out["mu_hat"] == pytest.approx(mu * a2, rel=1e-9) and out["mu_hat"] < 0  # a bid fill is bearish
    assert out["P"] == pytest.approx(p * a2 * a2 + P_STAT * (1 - a2 * a2), rel=1e-9)
    h2 = _harness()
    h2.step(T0)
    ask = (T0 + S, 28.0 * (1 + 3e-4), 1.0, -1.0, 8.0, 0.0, 1.0, 28.0)
    assert h2.step(T0 + S, fills=[ask])["mu_hat"] == pytest.approx(-mu, rel=1e-9)  # bullish, at now


def test_sigma_input_scales_price_noise_and_fill_signal():
    h = _harness()
    h.step(T0, price=28.0, sigma=0.8)
    out = h.step(T0 + 2 * S, price=28.0 * math.exp(2e-4), sigma=0.8)
    k = P_STAT / (P_STAT + 0.8**2 / 2.0)  # R = sigma^2 / dt with the input's sigma
    assert out["mu_hat"] == pytest.approx(k * 1.0, rel=1e-9)  # z = 2 bps / 2 s
    for bad in (math.nan, 0.0, -1.0, math.inf):  # falls back to sigma_p
        h = _harness()
        h.step(T0, price=28.0, sigma=bad)
        out = h.step(T0 + 2 * S, price=28.0 * math.exp(2e-4))
        k = P_STAT / (P_STAT + SIGMA_P**2 / 2.0)
        assert out["mu_hat"] == pytest.approx(k, rel=1e-9)


def test_guards_skip_and_count():
    h = _harness()
    out = h.step(T0, price=math.nan)
    assert out["n_skipped"] == 0 and out["mu_hat"] == 0.0
    out = h.step(T0 + S, obs=[(0.2, 0.0), (math.nan, 0.1)])
    assert out["n_skipped"] == 2 and out["mu_hat"] == 0.0 and "n_updates" not in out.emitted
    out = h.step(
        T0 + 2 * S, obs=[(0.2, math.inf), (0.2, math.nan)], fills=[(T0 + 2 * S, 28.0, 1, 1, 1, 0, 1, 0.0)]
    )
    assert out["n_skipped"] == 5 and "n_skipped" in out.emitted
    h.step(T0 + 3 * S, price=28.0)  # seeds
    before = h.step(T0 + 3 * S, price=28.1)  # zero elapsed: folded, nothing applied
    assert math.isnan(before["n_updates"])
    out = h.step(T0 + 4 * S, price=28.2)  # the move from 28.0 over 1 s
    k = P_STAT / (P_STAT + SIGMA_P**2)
    assert out["mu_hat"] == pytest.approx(k * math.log(28.2 / 28.0) * 1e4, rel=1e-9)
    # a fill stamped before the filter time: applied at the filter time, never predicted backwards
    h2 = _harness()
    h2.step(T0 + 5 * S)
    out = h2.step(T0 + 5 * S, fills=[(T0 + 2 * S, 28.0 * (1 - 2e-4), 1, 1, 1, 0, 1, 28.0)])
    z = -C_FILL * 2.0 / (SIGMA_P * math.sqrt(TAU_FILL))
    assert out["mu_hat"] == pytest.approx(P_STAT / (P_STAT + SIGMA_FILL**2) * z, rel=1e-9)
    assert h2.step(T0 + 6 * S, fills=[]).emitted == {"mu_hat", "P"}  # an empty batch


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 30 * S),
            st.floats(-5, 5) | st.just(math.nan),
            st.floats(-1, 10) | st.sampled_from([math.nan, math.inf, 0.0, 1e-300, 5e-324]),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_property_variance_stays_in_0_and_the_prior(steps):
    h = _harness()
    t = T0
    h.step(t)
    for gap, z, r in steps:
        t += gap
        out = h.step(t, obs=[(z, r), None])
        assert 0.0 < out["P"] <= P_STAT * (1 + 1e-12)
        assert math.isfinite(out["mu_hat"])


def _calm(seed: int, minutes: int):
    g = flowmm.load_graph(
        {
            "name": "calm_kd",
            "clock": {"quote_every_ms": 1000},
            "trace": ["kd.mu_hat", "kd.P"],
            "nodes": {
                "vol": {"type": "estimators.ewma_vol", "in": {"price": "source.mid"}},
                "kd": {
                    "type": "estimators.kalman_drift",
                    "in": {"price": "source.mid", "sigma": "vol.sigma"},
                },
            },
        }
    )
    tr = g.run(Synthetic("calm", seed=seed, duration=f"{minutes}m")).trace
    return (np.asarray(tr.column(c).to_numpy(zero_copy_only=False), float) for c in ("kd.mu_hat", "kd.P"))


def test_no_warm_up_bias_on_a_driftless_stream():
    p0 = 0.01**2 / (2 * 0.02)
    means, inside = [], []
    for seed in range(8):
        mu, p = _calm(seed, 3)
        assert mu[0] == pytest.approx(0.0, abs=0.05) and p[0] <= p0  # cold start: no warm-up state
        means.append(mu[:60].mean())
        inside.append(np.mean(np.abs(mu) <= 2 * np.sqrt(p)))
    means = np.array(means)
    se = means.std(ddof=1) / math.sqrt(len(means))
    assert abs(means.mean()) < 3 * se + 1e-3  # the first minute is centred on 0
    assert np.mean(inside) > 0.8  # within +-2 sqrt(P) most of the time


@njit
def _drive(n, params, f, ti, ts, price, sigma, ft, fr, trend, flow, obs, obs_tk, *outs):
    total = 0
    cap = ft.shape[0]
    for k in range(n):
        now = np.int64(k + 1) * 100_000_000
        price[0] = 28.0 + 0.001 * (k % 7)
        i = k % cap
        ft[i] = now
        fr[i, FI_PX] = 27.99
        fr[i, FI_SIDE] = 1.0
        fr[i, FI_MID_REF] = 28.0
        obs[0, 0] = 0.1
        obs[0, 1] = 0.01
        obs_tk[0] = True
        total += kalman_drift_kernel(
            now,
            0.1,
            params,
            f,
            ti,
            ts,
            price,
            True,
            sigma,
            False,
            ft,
            fr,
            np.int64(k),
            np.int64(k + 1),
            trend,
            True,
            flow,
            False,
            obs,
            obs_tk,
            *outs,
        )
    return total


def test_kernel_allocates_nothing_per_update():
    a = example_args(KalmanDrift(), capacity=16)
    # now, dt, params, f, ti, ts, price, tk, sigma, tk, ft, fr, start, end, trend, tk, flow, tk, obs, tk,
    # 7 outs
    h = NodeHarness("estimators.kalman_drift", variadic={"obs": 1})
    args = (
        a[2],
        a[3],
        a[4],
        a[5],
        a[6],
        a[8],
        a[10],
        a[11],
        a[14],
        a[16],
        h.inputs["obs"],
        h.ticked["obs"],
        *a[20:],
    )
    assert _drive(3, *args) > 0
    assert allocations(_drive, 1, *args) == allocations(_drive, 400, *args)
