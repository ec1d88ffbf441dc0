"""Shared helpers of the synthetic-market tests: read a generated event stream the way a
strategy would (from the events only, never the simulator's internals) and compute the
channel statistics. Generated data is built once per session and cached.

A statistic is computed per seed; "pooled over seeds" means a t-test across seeds (seeds are
independent, so the test is valid however autocorrelated the series are inside one run)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from flowmm.core import events as E

S = 10**9  # ns per second
MU_REF = 0.05  # bps/s, the drift scale the channel statistics use (docs/synthetic.md)
N_SEEDS = 20


def decode(ev) -> dict[str, np.ndarray]:
    """An EventTable -> per-kind arrays; books as [n, 20, 3] (px, sz, n) with NaN padding."""
    out: dict[str, np.ndarray] = {}
    t, kind, off, pl = ev.t, ev.kind, ev.off, ev.payload
    for name, code, n in [("bbo", E.BBO, 6), ("trade", E.TRADE, 4), ("ctx", E.CTX, 6), ("ref", E.REF_MID, 1),
                          ("spot", E.SPOT_MID, 1), ("truth", E.TRUTH, 3), ("timer", E.TIMER, 1)]:  # fmt: skip
        i = np.nonzero(kind == code)[0]
        out[name + "_t"] = t[i]
        out[name] = pl[off[i][:, None] + np.arange(n)] if len(i) else np.zeros((0, n))
    i = np.nonzero(kind == E.BOOK)[0]
    base = off[i]
    nb = pl[base].astype(np.int64)
    na = pl[base + 1].astype(np.int64)
    lev = np.arange(20)

    def levels(start, cnt):
        valid = lev[None, :] < cnt[:, None]
        idx = np.where(valid, start[:, None] + 3 * lev[None, :], 0)
        arr = np.stack([pl[idx], pl[idx + 1], pl[idx + 2]], axis=-1)
        arr[~valid] = np.nan
        return arr

    out["book_t"] = t[i]
    out["bids"] = levels(base + 2, nb)
    out["asks"] = levels(base + 2 + 3 * nb, na)
    return out


def at(ts: np.ndarray, vals: np.ndarray, q) -> np.ndarray:
    """The last value at or before each time in q (the first value before the first event)."""
    i = np.searchsorted(ts, q, side="right") - 1
    return vals[np.maximum(i, 0)]


def corr(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean()
    y = y - y.mean()
    d = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / d) if d > 0 else 0.0


def mid(d) -> tuple[np.ndarray, np.ndarray]:
    return d["bbo_t"], 0.5 * (d["bbo"][:, 0] + d["bbo"][:, 3])


def bim(d, depth_bps: float) -> np.ndarray:
    """Book imbalance (V_bid - V_ask)/(V_bid + V_ask) within depth_bps of each book's mid."""
    b, a = d["bids"], d["asks"]
    m = 0.5 * (b[:, 0, 0] + a[:, 0, 0])
    wb = (m[:, None] - b[:, :, 0]) / m[:, None] * 1e4 <= depth_bps
    wa = (a[:, :, 0] - m[:, None]) / m[:, None] * 1e4 <= depth_bps
    vb = np.nansum(np.where(wb, b[:, :, 1], 0.0), 1)
    va = np.nansum(np.where(wa, a[:, :, 1], 0.0), 1)
    return (vb - va) / (vb + va)


def orders(d) -> SimpleNamespace:
    """Aggressor orders and sweeps from the tape alone.

    Prints of one timestamp and side form a group. A sweep is a group of >= 3 prints at
    strictly worsening prices (one aggressor walking the book). In other groups an order
    starts at every print at the group's best price (a second order in the same block finds
    the touch again); its size is the sum of its prints."""
    t, px, sz, side = d["trade_t"], d["trade"][:, 0], d["trade"][:, 1], d["trade"][:, 2]
    n = len(t)
    if n == 0:
        z = np.zeros(0)
        return SimpleNamespace(t=z.astype(np.int64), side=z, size=z, sweep_t=z.astype(np.int64), sweep_side=z,
                               sweep_levels=z)  # fmt: skip
    newg = np.ones(n, bool)
    newg[1:] = (t[1:] != t[:-1]) | (side[1:] != side[:-1])
    gid = np.cumsum(newg) - 1
    ng = int(gid[-1]) + 1
    starts = np.nonzero(newg)[0]
    worse = np.zeros(n, bool)
    worse[1:] = ((px[1:] - px[:-1]) * side[1:] > 0) & ~newg[1:]
    nworse = np.bincount(gid[worse], minlength=ng)
    gsize = np.bincount(gid, minlength=ng)
    sweep_g = (gsize >= 3) & (nworse == gsize - 1)
    gside = side[starts]
    best = np.where(gside > 0, np.minimum.reduceat(px, starts), np.maximum.reduceat(px, starts))
    is_start = (px == best[gid]) & ~sweep_g[gid]
    oid = np.cumsum(is_start) - 1
    ok = ~sweep_g[gid]
    size = np.bincount(oid[ok], weights=sz[ok], minlength=int(is_start.sum()))
    return SimpleNamespace(
        t=t[is_start], side=side[is_start], size=size, sweep_t=t[starts][sweep_g], sweep_side=gside[sweep_g],
        sweep_levels=gsize[sweep_g],
    )  # fmt: skip


def tstat(values) -> float:
    """t of the mean of per-seed values (NaN seeds dropped)."""
    v = np.asarray([x for x in values if np.isfinite(x)], float)
    sd = v.std(ddof=1)
    return float(v.mean() / (sd / np.sqrt(len(v)))) if sd > 0 else float(np.sign(v.mean()) * np.inf)


def channel_stats(d, t0: int, dur_s: float, lead_s: float) -> dict[str, float]:
    """Every channel's statistic for one run of a scenario with a varying drift (``mixed``).

    Returns are residual: the next-10 s mid return minus truth mu x 10 s, so a channel that
    only reveals the drift does not show up in the return statistics, and vice versa."""
    out: dict[str, float] = {}
    bt, m = mid(d)
    tt, mu_v = d["truth_t"], d["truth"][:, 0]
    g = t0 + (60 + np.arange(0, dur_s - 80, 2)) * S  # every 2 s, skipping the first minute
    m0 = at(bt, m, g)
    r_res = np.log(at(bt, m, g + 10 * S) / m0) * 1e4 - at(tt, mu_v, g) * 10
    b10, b50 = bim(d, 10.0), bim(d, 50.0)
    kt = d["book_t"]
    B10 = at(kt, b10, g)
    out["bim"] = corr(B10, r_res)
    out["dbim"] = corr(B10 - at(kt, b10, g - 2 * S), r_res)
    out["bpg"] = corr(B10 - at(kt, b50, g), r_res)
    o = orders(d)
    w = t0 + (60 + np.arange(10, dur_s - 60, 10)) * S  # 10 s windows (w - 10 s, w]
    j = np.searchsorted(w, o.t, side="left")
    ok = (j < len(w)) & (o.t > w[0] - 10 * S)
    nb = np.bincount(j[ok & (o.side > 0)], minlength=len(w)).astype(float)
    ns = np.bincount(j[ok & (o.side < 0)], minlength=len(w)).astype(float)
    out["side"] = corr(
        np.where(nb + ns > 0, (nb - ns) / np.maximum(nb + ns, 1), 0.0), at(tt, mu_v, w - 5 * S)
    )
    out["size"] = corr(o.side * at(tt, mu_v, o.t), np.log(o.size))
    ms = at(tt, mu_v, o.sweep_t)
    out["sweep"] = float(np.mean(o.sweep_side * np.tanh(ms / MU_REF))) if len(ms) else np.nan
    sec = (o.t - t0) // S
    sec = sec[(sec >= 60) & (sec < dur_s)] - 60
    cnt = np.bincount(sec, minlength=int(dur_s) - 60).astype(float)
    out["hawkes"] = cnt.var() / cnt.mean() - 1.0  # dispersion index of orders per second, - 1
    gl = t0 + (60 + np.arange(0, dur_s - 70 - lead_s, 5)) * S
    rt, rv = d["ref_t"], d["ref"][:, 0]
    lead = int(lead_s * S)
    r_btc = np.log(at(rt, rv, gl) / at(rt, rv, gl - 5 * S))
    r_lag = (
        np.log(at(bt, m, gl + lead) / at(bt, m, gl + lead - 5 * S)) * 1e4
        - at(tt, mu_v, gl + lead - 5 * S) * 5
    )
    out["lead"] = corr(r_btc, r_lag)
    g5 = t0 + (60 + np.arange(0, dur_s - 60, 5)) * S
    spot = at(d["spot_t"], d["spot"][:, 0], g5)
    out["basis"] = corr((at(bt, m, g5) - spot) / spot * 1e4, at(tt, mu_v, g5))
    ct, c = d["ctx_t"], d["ctx"]
    # net opening: the OI change over 30 s per unit of traded volume, against |mu|
    w30 = t0 + (60 + np.arange(30, dur_s - 60, 30)) * S
    doi = at(ct, c[:, 2], w30) - at(ct, c[:, 2], w30 - 30 * S)
    vol = np.diff(
        np.concatenate([[0.0], np.cumsum(d["trade"][:, 1])])[
            np.searchsorted(d["trade_t"], np.concatenate([w30[:1] - 30 * S, w30]), side="right")
        ]
    )
    out["oi"] = corr(doi / np.maximum(vol, 1e-9), np.abs(at(tt, mu_v, w30 - 15 * S)))
    # funding against the coming drift: truth mu averaged forward with weights exp(-s / 300 s),
    # normalised over the part of the future the run covers; samples up to 5 min before the end
    fut = np.zeros(len(mu_v))
    wsum = np.zeros(len(mu_v))
    acc = norm = 0.0
    decay = np.exp(-1.0 / 300.0)  # truth events are 1 s apart
    for i in range(len(mu_v) - 1, -1, -1):
        acc, norm = mu_v[i] + decay * acc, 1.0 + decay * norm
        fut[i], wsum[i] = acc, norm
    gf = g5[g5 <= t0 + (dur_s - 300) * S]
    i = np.searchsorted(tt, gf, side="right")
    i = np.minimum(i, len(mu_v) - 1)
    out["funding"] = corr(at(ct, c[:, 1], gf), fut[i] / wsum[i])
    return out


def martingale_stats(d, t0: int, dur_s: float, lead_s: float) -> dict[str, float]:
    """Observables against the next 10 s raw mid return (for a driftless scenario)."""
    out: dict[str, float] = {}
    bt, m = mid(d)
    g = t0 + (30 + np.arange(0, dur_s - 50, 10)) * S  # non-overlapping 10 s horizons
    m0 = at(bt, m, g)
    fwd = np.log(at(bt, m, g + 10 * S) / m0) * 1e4
    out["past_10s"] = corr(np.log(m0 / at(bt, m, g - 10 * S)), fwd)
    out["past_1s"] = corr(np.log(m0 / at(bt, m, g - 1 * S)), fwd)
    kt = d["book_t"]
    b10, b50 = bim(d, 10.0), bim(d, 50.0)
    B10 = at(kt, b10, g)
    out["bim"] = corr(B10, fwd)
    out["dbim"] = corr(B10 - at(kt, b10, g - 2 * S), fwd)
    out["bpg"] = corr(B10 - at(kt, b50, g), fwd)
    o = orders(d)
    j = np.searchsorted(g, o.t, side="left")  # the 10 s before each sample time
    ok = (j < len(g)) & (o.t > g[0] - 10 * S)
    nb = np.bincount(j[ok & (o.side > 0)], minlength=len(g)).astype(float)
    ns = np.bincount(j[ok & (o.side < 0)], minlength=len(g)).astype(float)
    out["flow"] = corr(nb - ns, fwd)
    vb = np.bincount(j[ok & (o.side > 0)], weights=np.log(o.size[ok & (o.side > 0)]), minlength=len(g))
    vs = np.bincount(j[ok & (o.side < 0)], weights=np.log(o.size[ok & (o.side < 0)]), minlength=len(g))
    out["size"] = corr(vb - vs, fwd)
    rt, rv = d["ref_t"], d["ref"][:, 0]
    out["btc_lagged"] = corr(
        np.log(at(rt, rv, g - int(lead_s * S) + 5 * S) / at(rt, rv, g - int(lead_s * S))), fwd
    )
    spot = at(d["spot_t"], d["spot"][:, 0], g)
    out["basis"] = corr((m0 - spot) / spot, fwd)
    ct, c = d["ctx_t"], d["ctx"]
    out["funding"] = corr(at(ct, c[:, 1], g), fwd)
    out["oi_change"] = corr(at(ct, c[:, 2], g) - at(ct, c[:, 2], g - 30 * S), fwd)
    return out


def shared_data() -> Path:
    env = os.environ.get("FLOWMM_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[3].parent / "shared" / "data"


@pytest.fixture(scope="session")
def tape() -> SimpleNamespace:
    """The helpers above, for the test modules (importlib mode cannot import conftest)."""
    return SimpleNamespace(
        decode=decode, at=at, corr=corr, mid=mid, bim=bim, orders=orders, tstat=tstat,
        channel_stats=channel_stats, martingale_stats=martingale_stats, S=S, N_SEEDS=N_SEEDS,
        shared_data=shared_data,
    )  # fmt: skip


@pytest.fixture(scope="session")
def generated():
    """Decoded runs, generated once per session: generated(scenario, seed, duration)."""
    from flowmm.sources.synthetic import Synthetic

    cache: dict = {}

    def get(scenario, seed: int, duration=None):
        key = (scenario if isinstance(scenario, str) else scenario.model_dump_json(), seed, duration)
        if key not in cache:
            src = Synthetic(scenario, seed=seed, duration=duration)
            cache[key] = (src, decode(src.events()))
        return cache[key]

    return get
