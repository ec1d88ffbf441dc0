"""incident (the Feb 19 session in the order-flow market) and its mirror incident_up, 20 seeds,
measured from the events alone: the fall and its timing, the BTC lead, funding, OI, sweeps;
then what resting quotes meet there: a touch probe and the legacy system (graphs/legacy.yaml).
Every asserted figure is printed (pytest -s)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from flowmm.compare import run_one
from flowmm.sources.synthetic import Synthetic, funding_zscore, load_scenario

S = 10**9
REPO = Path(__file__).resolve().parents[3]
PROBE = REPO / "tests" / "data" / "graphs" / "touch_probe.yaml"
LEGACY = REPO / "graphs" / "legacy.yaml"
LAGS = np.arange(0, 61)  # s: BTC 1-s return at t against the instrument's at t + lag
Q_MAX = 8.57  # legacy's max position (contracts), CONVENTIONS "The legacy system"


def window(scn, start_ns: int) -> tuple[int, int, int]:
    """(onset, end of the liquidation phase, end of the move) in ns: phases lead_in, grind,
    liquidations, tail, aftermath."""
    d = [p.duration for p in scn.phases]
    on = start_ns + int(d[0] * S)
    return on, on + int((d[1] + d[2]) * S), on + int((d[1] + d[2] + d[3]) * S)


@pytest.fixture(scope="module")
def runs(tape):
    cache = {}

    def get(name: str) -> dict:
        if name in cache:
            return cache[name]
        scn = load_scenario(name)
        sign = -1 if name == "incident" else 1
        rows = []
        for seed in range(tape.N_SEEDS):
            src = Synthetic(scn, seed=seed)
            d = tape.decode(src.events())
            bt, m = tape.mid(d)
            on, liq_end, end = window(scn, src.start_ns)
            grind_end = on + int(scn.phases[1].duration * S)
            o = tape.orders(d)
            ct, c = d["ctx_t"], d["ctx"]
            w = (ct >= on + 60 * S) & (ct < end)
            grid = src.start_ns + np.arange(0, int(src.duration_s) + 1) * S

            def oi(t, ct=ct, c=c):
                return float(tape.at(ct, c[:, 2], t))

            rows.append(
                {
                    "move": (tape.at(bt, m, end) / tape.at(bt, m, on) - 1) * 1e4,
                    "sweeps": int(np.sum((o.sweep_t >= on) & (o.sweep_t < end) & (o.sweep_side == sign))),
                    "z": float(np.mean(funding_zscore(c[w, 1], scn))),
                    "oi_grind": oi(grind_end) - oi(on),
                    "oi_liq": oi(liq_end) - oi(grind_end),
                    "r_btc": np.diff(np.log(tape.at(d["ref_t"], d["ref"][:, 0], grid))),
                    "r_ins": np.diff(np.log(tape.at(bt, m, grid))),
                }
            )
        out = {"sign": sign, "move_s": (end - on) / S} | {k: [r[k] for r in rows] for k in rows[0]}
        cache[name] = out
        return out

    return get


@pytest.mark.parametrize("name", ["incident", "incident_up"])
def test_the_fall_is_45_to_65_bps_within_12_to_18_minutes_of_the_onset(runs, name):
    r = runs(name)
    moves = np.array(r["move"]) * r["sign"]
    print(f"\n{name}: move {np.median(moves):.1f} bps median over {r['move_s'] / 60:.0f} min, "
          f"seeds {moves.round(1)}")  # fmt: skip
    assert 12 * 60 <= r["move_s"] <= 18 * 60
    assert 45 <= np.median(moves) <= 65 and np.mean(moves > 0) >= 0.9


@pytest.mark.parametrize("name", ["incident", "incident_up"])
def test_btc_leads_by_20_to_40_s(runs, name):
    r = runs(name)
    c = []
    for lag in LAGS:
        sxy = sxx = syy = 0.0
        for a, b in zip(r["r_btc"], r["r_ins"]):
            a, b = a - a.mean(), b - b.mean()
            x, y = a[: len(a) - lag], b[lag:]
            sxy, sxx, syy = sxy + (x * y).sum(), sxx + (x * x).sum(), syy + (y * y).sum()
        c.append(sxy / np.sqrt(sxx * syy))
    c = np.array(c)
    se = 1 / np.sqrt(sum(len(x) for x in r["r_btc"]))
    k = 3 + int(np.argmax(c[3:]))  # the lagged peak, away from the contemporaneous one
    print(f"\n{name}: BTC lead peak at {LAGS[k]} s, ccf {c[k]:.3f} (se {se:.4f}); at 0 s {c[0]:.3f}")
    assert 20 <= LAGS[k] <= 40 and c[k] > 5 * se


@pytest.mark.parametrize("name", ["incident", "incident_up"])
def test_funding_oi_and_sweeps(runs, name):
    r = runs(name)
    z = np.array(r["z"]) * -r["sign"]  # crowded longs before a fall, crowded shorts before a rise
    g, lq = np.array(r["oi_grind"]), np.array(r["oi_liq"])
    sw = np.array(r["sweeps"])
    print(f"\n{name}: funding z median {np.median(z) * -r['sign']:.2f}; OI change in the grind median "
          f"{np.median(g):.0f} (up in {np.mean(g > 0):.0%} of seeds), in the liquidations "
          f"{np.median(lq):.0f} "
          f"(down in {np.mean(lq < 0):.0%}); sweeps on the move's side median {np.median(sw)}")  # fmt: skip
    assert np.median(z) >= 1.5
    assert np.median(g) > 0 and np.mean(g > 0) >= 0.7  # new positions opened into the move first
    assert np.median(lq) < 0 and np.mean(lq < 0) >= 0.9  # then closed by the liquidations
    assert np.median(sw) >= 3


def quotes_on_incident(tape, graph: Path, n_seeds: int) -> dict:
    """Run ``graph`` with paper execution on incident; its fills from fills.parquet, the mids
    from the market's own events. Returns pooled selloff figures."""
    scn = load_scenario("incident")
    side_all, as30_all, edge_all, max_long = [], [], [], []
    for seed in range(n_seeds):
        with tempfile.TemporaryDirectory() as td:
            run_one(str(graph), "incident", seed, None, td, "python")
            f = pq.read_table(Path(td) / "fills.parquet").to_pydict()
        src = Synthetic(scn, seed=seed)
        bt, m = tape.mid(tape.decode(src.events()))
        on, _, end = window(scn, src.start_ns)
        t, px, sz, side = (np.array(f[k]) for k in ("t", "px", "sz", "side"))
        mref = np.array(f["mid_ref"])
        q = np.cumsum(side * sz)
        max_long.append(float(q.max()) if len(q) else 0.0)
        sel = (t >= on) & (t < end)
        side_all.append(side[sel])
        as30_all.append(side[sel] * (px[sel] - tape.at(bt, m, t[sel] + 30 * S)) / px[sel] * 1e4)
        edge_all.append(side[sel] * (mref[sel] - px[sel]) / px[sel] * 1e4)  # half-spread earned
    side, as30, edge = (np.concatenate(x) for x in (side_all, as30_all, edge_all))
    return {"side": side, "as30": as30, "edge": edge, "max_long": np.array(max_long)}


GAP = (
    "issue 17 criterion not met yet (docs/synthetic.md, incident): resting quotes are filled at every tick "
    "of a book re-centred on the mid, uniformly through the selloff; probe bid AS 1.97 bps, legacy 37 % buys"
)


@pytest.mark.xfail(strict=True, reason=GAP)
def test_a_bid_resting_at_the_touch_through_the_selloff_is_adversely_selected(tape):
    r = quotes_on_incident(tape, PROBE, tape.N_SEEDS)
    bid = r["side"] > 0
    print(
        f"\ntouch probe on incident: {len(r['side'])} selloff fills, {bid.mean():.2f} buys; "
        f"30-s AS of bid fills {r['as30'][bid].mean():.2f} bps, of ask fills {r['as30'][~bid].mean():.2f}"
    )
    assert r["as30"][bid].mean() >= 5


@pytest.mark.xfail(strict=True, reason=GAP)
def test_legacy_reproduces_the_incident(tape):
    r = quotes_on_incident(tape, LEGACY, tape.N_SEEDS)
    buys = float(np.mean(r["side"] > 0))
    print(f"\nlegacy on incident: {len(r['side'])} selloff fills, {buys:.2f} buys; median max long "
          f"{np.median(r['max_long']):.2f} ({np.median(r['max_long']) / Q_MAX:.0%} of q_max); 30-s AS "
          f"{r['as30'].mean():.2f} bps against a half-spread earned of {r['edge'].mean():.2f}")  # fmt: skip
    assert buys >= 0.8
    assert np.median(r["max_long"]) >= 0.6 * Q_MAX
    assert r["as30"].mean() > r["edge"].mean()
