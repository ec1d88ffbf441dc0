"""trend_down (the Feb 19 incident) and its mirror trend_up, measured on 20 seeds from the
events alone: the size and timing of the move, bid-side sweeps, the BTC lead, funding, OI."""

from __future__ import annotations

import numpy as np
import pytest

from flowmm.sources.synthetic import Synthetic, funding_zscore, load_scenario

LAGS = np.arange(-10, 61)  # seconds, BTC return at t vs instrument return at t + lag


@pytest.fixture(scope="module")
def runs(tape):
    """Per scenario and seed: the move, sweeps, funding z, OI change and 1 s returns."""
    S = tape.S
    cache = {}

    def get(name: str) -> dict:
        if name in cache:
            return cache[name]
        scn = load_scenario(name)
        onset_s = scn.phases[0].duration
        move_s = scn.phases[1].duration
        sign = -1 if "down" in name else 1
        out = {"onset_s": onset_s, "move_s": move_s, "sign": sign, "lead_s": scn.reference.lead_s}
        rows = []
        for seed in range(tape.N_SEEDS):
            src = Synthetic(scn, seed=seed)
            d = tape.decode(src.events())
            on, end = src.start_ns + int(onset_s * S), src.start_ns + int((onset_s + move_s) * S)
            bt, m = tape.mid(d)
            o = tape.orders(d)
            in_move = (o.sweep_t >= on) & (o.sweep_t < end)
            ct, c = d["ctx_t"], d["ctx"]
            w = (ct >= on + 60 * S) & (ct < end)  # the selloff, after its first minute
            grid = src.start_ns + np.arange(0, int(src.duration_s) + 1) * S
            rows.append(
                {
                    "move_bps": (tape.at(bt, m, end) / tape.at(bt, m, on) - 1) * 1e4,
                    "sweeps_with": int(np.sum(in_move & (o.sweep_side == sign))),
                    "sweeps_against": int(np.sum(in_move & (o.sweep_side == -sign))),
                    "z_pred": float(np.mean(funding_zscore(c[w, 1], scn))),
                    "z_current": float(np.mean(funding_zscore(c[w, 0], scn))),
                    "d_oi": float(tape.at(ct, c[:, 2], end) - tape.at(ct, c[:, 2], on)),
                    "r_btc": np.diff(np.log(tape.at(d["ref_t"], d["ref"][:, 0], grid))),
                    "r_ins": np.diff(np.log(tape.at(bt, m, grid))),
                    "regime": tape.at(
                        d["truth_t"], d["truth"][:, 2], np.array([on - 30 * S, (on + end) // 2])
                    ),
                }
            )
        for k in rows[0]:
            out[k] = [r[k] for r in rows]
        cache[name] = out
        return out

    return get


def ccf(pairs) -> np.ndarray:
    """Cross-correlation of BTC and instrument 1 s returns pooled over seeds, at LAGS."""
    out = []
    for lag in LAGS:
        sxy = sxx = syy = 0.0
        for a, b in pairs:
            a, b = a - a.mean(), b - b.mean()
            x, y = (a[: len(a) - lag], b[lag:]) if lag >= 0 else (a[-lag:], b[: len(b) + lag])
            sxy, sxx, syy = sxy + (x * y).sum(), sxx + (x * x).sum(), syy + (y * y).sum()
        out.append(sxy / np.sqrt(sxx * syy))
    return np.array(out)


@pytest.mark.parametrize("name", ["trend_down", "trend_up"])
def test_the_move_is_50_to_60_bps_over_12_to_18_minutes_after_2_minutes_of_calm(runs, name):
    r = runs(name)
    assert 90 <= r["onset_s"] <= 150, "about 2 min of calm lead-in"
    assert 12 * 60 <= r["move_s"] <= 18 * 60
    moves = np.array(r["move_bps"]) * r["sign"]
    assert 50 <= np.median(moves) <= 60, f"median move {np.median(moves):.1f} bps over seeds {moves.round(1)}"
    assert np.mean(moves > 0) >= 0.9  # the move is there in (almost) every seed, not only on average
    assert all(reg[0] == 0 for reg in r["regime"])  # quiet before the onset (truth regime ids)
    assert all(reg[1] == (1 if r["sign"] < 0 else 2) for reg in r["regime"])


@pytest.mark.parametrize("name", ["trend_down", "trend_up"])
def test_sweeps_walk_the_side_the_price_moves_through(runs, name):
    r = runs(name)
    with_, against = np.array(r["sweeps_with"]), np.array(r["sweeps_against"])
    assert np.median(with_) >= 3, with_
    assert with_.sum() > 3 * max(1, against.sum())


@pytest.mark.parametrize("name", ["trend_down", "trend_up"])
def test_btc_leads_by_the_configured_lag_besides_the_contemporaneous_peak(runs, name):
    r = runs(name)
    c = ccf(list(zip(r["r_btc"], r["r_ins"])))
    n = sum(len(x) for x in r["r_btc"])
    se = 1 / np.sqrt(n)
    i0 = int(np.nonzero(LAGS == 0)[0][0])
    assert np.argmax(c) == i0 and c[i0] > 10 * se  # the contemporaneous peak
    lead = r["lead_s"]
    window = np.nonzero(np.abs(LAGS - lead) <= 5)[0]
    k = window[np.argmax(c[window])]
    assert c[k] > 5 * se, f"lead peak {c[k]:.3f} vs se {se:.4f}"
    assert c[k] >= c[k - 1] and c[k] >= c[k + 1]  # a local maximum
    between = np.nonzero((LAGS >= 3) & (LAGS <= lead - 6))[0]
    assert np.max(np.abs(c[between])) < 4 * se < c[k]  # separate from the peak at 0


def test_funding_is_high_and_oi_rises_in_the_selloff(runs):
    r = runs("trend_down")
    assert np.median(r["z_pred"]) >= 1.5, np.round(r["z_pred"], 2)
    assert np.median(r["z_current"]) >= 1.5, np.round(r["z_current"], 2)
    d_oi = np.array(r["d_oi"])
    assert np.median(d_oi) > 0 and d_oi.mean() / (d_oi.std(ddof=1) / np.sqrt(len(d_oi))) > 3.5


def test_trend_up_mirrors_funding_and_oi(runs):
    r = runs("trend_up")
    assert np.median(r["z_pred"]) <= -1.5, np.round(r["z_pred"], 2)
    assert np.median(r["z_current"]) <= -1.5
    d_oi = np.array(r["d_oi"])
    assert np.median(d_oi) > 0 and d_oi.mean() / (d_oi.std(ddof=1) / np.sqrt(len(d_oi))) > 3.5


def test_a_shorter_run_shows_the_beginning_of_the_scenario():
    full = Synthetic("trend_down", seed=4)
    short = Synthetic("trend_down", seed=4, duration="3m")
    assert full.duration_s == 20 * 60 and short.end_time == short.start_ns + 180 * 10**9
    a, b = full.events(), short.events()
    n = len(b)
    assert n > 0 and np.array_equal(a.t[:n], b.t) and np.array_equal(a.kind[:n], b.kind)
    assert np.array_equal(a.payload[: b.off[-1]], b.payload)
