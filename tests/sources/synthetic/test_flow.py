"""The order-flow market (flow.py) on flow_calm, measured from the events alone over 20 seeds
x 2 h (docs/synthetic.md, "Order flow moves the price"). Sampling: the last mid at or before
each 1-s boundary. Every figure the tests assert on is printed (pytest -s shows them)."""

from __future__ import annotations

import numpy as np
import pytest

from flowmm.sources.synthetic import Scenario, Synthetic, load_scenario

S = 10**9


def excess_kurtosis(r: np.ndarray) -> float:
    r = r - r.mean()
    return float(np.mean(r**4) / np.mean(r**2) ** 2 - 3.0)


def newey_west_t(x: np.ndarray, y: np.ndarray, lags: int = 5) -> float:
    """t of the OLS slope of y on x (with intercept), Newey-West (Bartlett) standard error."""
    x, y = x - x.mean(), y - y.mean()
    b = (x @ y) / (x @ x)
    u = x * (y - b * x)
    v = u @ u
    for lag in range(1, lags + 1):
        v += 2.0 * (1.0 - lag / (lags + 1)) * (u[lag:] @ u[:-lag])
    return float(b / np.sqrt(v / (x @ x) ** 2))


def informed_variant() -> Scenario:
    """flow_calm with informed metaorders and a latent drift for them to trade on (sd 0.04
    bps/s, 2-min time constant): the power check of the no-free-lunch regression."""
    d = load_scenario("flow_calm").with_flow(informed=1).model_dump()
    d["regimes"] = {"quiet": {"mu_sd": 0.04, "mu_tau_s": 120}}
    return Scenario.model_validate(d)


@pytest.fixture(scope="module")
def runs(tape):
    """Per variant: per-seed 1-s and 10-s returns, order signs/sizes/moves, 10-s regressions."""
    cache: dict[str, list[dict]] = {}
    base = load_scenario("flow_calm")
    variants = {"flow": base, "off": base.with_flow(impact=0, metaorders=0), "informed": informed_variant()}

    def get(name: str) -> list[dict]:
        if name in cache:
            return cache[name]
        rows = []
        for seed in range(tape.N_SEEDS):
            src = Synthetic(variants[name], seed=seed)
            d = tape.decode(src.events())
            bt, m = tape.mid(d)
            grid = src.start_ns + np.arange(0, int(src.duration_s) + 1) * S
            p = tape.at(bt, m, grid)
            o = tape.orders(d)
            # the mid 10 s after each order against the last mid strictly before it
            i0 = np.searchsorted(bt, o.t, side="left") - 1
            ok = (i0 >= 0) & (o.t + 10 * S <= src.end_time)
            move = o.side[ok] * np.log(tape.at(bt, m, o.t[ok] + 10 * S) / m[i0[ok]]) * 1e4
            # next non-overlapping 10-s return vs the past 10 s of signed aggressive volume
            g = src.start_ns + np.arange(10, int(src.duration_s) - 10, 10) * S
            fwd = np.log(tape.at(bt, m, g + 10 * S) / tape.at(bt, m, g)) * 1e4
            j = np.searchsorted(g, o.t, side="left")  # order in (g[j] - 10 s, g[j]]
            inw = (j < len(g)) & (o.t > g[0] - 10 * S)
            sv = np.bincount(j[inw], weights=(o.side * o.size)[inw], minlength=len(g))
            b, a = d["bbo"][:, 0], d["bbo"][:, 3]
            rows.append(
                {
                    "r1": np.diff(np.log(p)) * 1e4,
                    "r10": np.diff(np.log(p[::10])) * 1e4,
                    "sign": o.side,
                    "size": o.size[ok],
                    "move": move,
                    "sv": sv,
                    "fwd": fwd,
                    "never_crossed": bool(np.all(b < a)),
                }
            )
        cache[name] = rows
        return rows

    return get


def test_the_tails_come_from_the_flow_not_from_a_sticky_mid(runs, tape):
    k1 = {v: np.array([excess_kurtosis(r["r1"]) for r in runs(v)]) for v in ("flow", "off")}
    k10 = {v: np.array([excess_kurtosis(r["r10"]) for r in runs(v)]) for v in ("flow", "off")}
    zero = {v: float(np.mean(np.concatenate([r["r1"] for r in runs(v)]) == 0)) for v in ("flow", "off")}
    print(f"\nflow_calm excess kurtosis, median over seeds: 1 s {np.median(k1['flow']):.2f}, "
          f"10 s {np.median(k10['flow']):.2f}; impact/metaorders 0: 1 s {np.median(k1['off']):.2f}, "
          f"10 s {np.median(k10['off']):.2f}; zero 1-s returns {zero['flow']:.3f} (off {zero['off']:.3f}; "
          "the real BTC hour: see docs/synthetic.md, scripts/synthetic_facts.py)")  # fmt: skip
    assert np.median(k1["flow"]) >= 5 and np.median(k10["flow"]) >= 1
    assert np.median(k1["off"]) < 1.5 and np.median(k10["off"]) < 1.5


def test_order_signs_have_long_memory(runs):
    rows = runs("flow")
    ac = {}
    for lag in (1, 10, 100):
        num = sum(float(np.sum(r["sign"][:-lag] * r["sign"][lag:])) for r in rows)
        ac[lag] = num / sum(len(r["sign"]) - lag for r in rows)
    print(f"\nflow_calm sign autocorrelation (pooled, not de-meaned): {ac}")
    assert ac[1] >= 0.2 and ac[100] >= 0.02


def test_every_order_moves_the_mid_its_way_more_when_larger(runs):
    rows = runs("flow")
    move = np.concatenate([r["move"] for r in rows])
    size = np.concatenate([r["size"] for r in rows])
    med = np.median(size)
    big, small = move[size > med].mean(), move[size < med].mean()
    se = move.std() / np.sqrt(len(move))
    print(f"\nflow_calm signed mid move 10 s after an order: all {move.mean():.3f} bps (se {se:.3f}), "
          f"above median size {big:.3f}, below {small:.3f}")  # fmt: skip
    assert move.mean() > 3 * se and big > small > 0


def test_no_free_lunch_past_flow_does_not_predict_the_next_return_and_the_test_has_power(runs):
    out = {}
    for v in ("flow", "informed"):
        x = np.concatenate([r["sv"] for r in runs(v)])
        y = np.concatenate([r["fwd"] for r in runs(v)])
        out[v] = (newey_west_t(x, y), float(np.corrcoef(x, y)[0, 1]), len(x))
    print(f"\nnext 10-s return on past 10-s signed volume, (NW t, corr, n): {out}")
    assert abs(out["flow"][0]) < 3.5 and abs(out["flow"][1]) < 0.03
    assert abs(out["informed"][0]) > 5


def test_books_are_never_crossed_or_locked(runs):
    assert all(r["never_crossed"] for v in ("flow", "informed") for r in runs(v))


def test_flow_calm_is_a_martingale_for_every_observable(tape):
    """As calm (test_channels): nothing seen up to t predicts the next 10 s (t across seeds)."""
    scn = load_scenario("flow_calm")
    per_seed = []
    for seed in range(tape.N_SEEDS):
        src = Synthetic(scn, seed=seed, duration="30m")
        d = tape.decode(src.events())
        assert not d["truth"][:, 0].any()
        per_seed.append(tape.martingale_stats(d, src.start_ns, src.duration_s, scn.reference.lead_s))
    t = {k: round(tape.tstat([r[k] for r in per_seed]), 2) for k in per_seed[0]}
    print(f"\nflow_calm martingale t-stats: {t}")
    assert all(abs(v) < 3.5 for v in t.values()), t


@pytest.mark.parametrize("name", ["flow_calm", "incident"])
def test_same_seed_same_stream_and_a_shorter_run_is_a_prefix(name):
    a = Synthetic(name, seed=5, duration="10m").events()
    b = Synthetic(name, seed=5, duration="10m").events()
    c = Synthetic(name, seed=5, duration="4m").events()
    assert (
        np.array_equal(a.t, b.t) and np.array_equal(a.kind, b.kind) and np.array_equal(a.payload, b.payload)
    )
    n = len(c)
    assert np.array_equal(a.t[:n], c.t) and np.array_equal(a.payload[: c.off[-1]], c.payload)
    assert not np.array_equal(
        Synthetic(name, seed=6, duration="4m").events().payload[:1000], c.payload[:1000]
    )


def test_without_a_flow_section_nothing_changes():
    assert load_scenario("calm").flow is None and Synthetic("calm", seed=0).latent()["F_OFF"].sum() == 0
