"""Stylised facts of the synthetic market beside the real BTC hour (docs/synthetic.md table).

    python scripts/synthetic_facts.py [--seeds 20]

calm (20 min), flow_calm (2 h) and incident (its 20 min), each over seeds 0..N-1, computed from
the events the way the tests do (tests/sources/synthetic): the last mid at or before each 1-s
boundary; excess kurtosis of 1-s and 10-s log returns (median over seeds); the share of zero
1-s returns; the spread in ticks; the sign autocorrelation of aggressive orders (one sign per
order, not de-meaned, pooled); the mean signed mid move 10 s after an order from the last mid
strictly before it. The real hour (the l2Book archive of the calibration tests) has books
only: kurtosis, zero returns and spread."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "sources" / "synthetic"))
from conftest import at, decode, mid, orders, shared_data  # noqa: E402

from flowmm.sources.synthetic import Synthetic, load_scenario  # noqa: E402

S = 10**9
ARCHIVE = "hyperliquid/s3_archive_l2book/market_data_20240101_12_l2Book_BTC.lz4"


def kurt(r: np.ndarray) -> float:
    r = r - r.mean()
    return float(np.mean(r**4) / np.mean(r**2) ** 2 - 3.0)


def returns(t: np.ndarray, m: np.ndarray, t0: int, dur_s: int) -> tuple[np.ndarray, np.ndarray]:
    p = at(t, m, t0 + np.arange(0, dur_s + 1) * S)
    return np.diff(np.log(p)) * 1e4, np.diff(np.log(p[::10])) * 1e4


def real_hour() -> dict[str, float] | None:
    import lz4.frame

    path = shared_data() / ARCHIVE
    if not path.is_file():
        return None
    ts, mids, spreads = [], [], []
    for line in lz4.frame.decompress(path.read_bytes()).decode().splitlines():
        if not line.strip():
            continue
        data = json.loads(line)["raw"]["data"]
        b, a = data["levels"]
        if not b or not a:
            continue
        bb, aa = float(b[0]["px"]), float(a[0]["px"])
        ts.append(int(data["time"]) * 1_000_000)
        mids.append(0.5 * (bb + aa))
        spreads.append(aa - bb)  # BTC tick 1
    t, m = np.array(ts), np.array(mids)
    r1, r10 = returns(t, m, int(t[0]) // S * S + S, int((t[-1] - t[0]) // S) - 2)
    return {
        "k1": kurt(r1),
        "k10": kurt(r10),
        "zero": float(np.mean(r1 == 0)),
        "spread": float(np.mean(spreads)),
    }


def scenario_facts(name: str, seeds: int) -> dict[str, float]:
    scn = load_scenario(name)
    k1, k10, zero, spread, signs, moves, sizes = [], [], [], [], [], [], []
    for seed in range(seeds):
        src = Synthetic(scn, seed=seed)
        d = decode(src.events())
        bt, m = mid(d)
        r1, r10 = returns(bt, m, src.start_ns, int(src.duration_s))
        k1.append(kurt(r1))
        k10.append(kurt(r10))
        zero.append(np.mean(r1 == 0))
        spread.append(np.mean(np.rint((d["bbo"][:, 3] - d["bbo"][:, 0]) / scn.instrument.tick)))
        o = orders(d)
        signs.append(o.side)
        i0 = np.searchsorted(bt, o.t, side="left") - 1
        ok = (i0 >= 0) & (o.t + 10 * S <= src.end_time)
        moves.append(o.side[ok] * np.log(at(bt, m, o.t[ok] + 10 * S) / m[i0[ok]]) * 1e4)
        sizes.append(o.size[ok])
    ac = {}
    for lag in (1, 10, 100):
        ac[lag] = sum(float(np.sum(s[:-lag] * s[lag:])) for s in signs) / sum(len(s) - lag for s in signs)
    mv, sz = np.concatenate(moves), np.concatenate(sizes)
    med = np.median(sz)
    return {
        "k1": float(np.median(k1)), "k10": float(np.median(k10)), "zero": float(np.mean(zero)),
        "spread": float(np.mean(spread)), "ac1": ac[1], "ac10": ac[10], "ac100": ac[100],
        "impact": float(mv.mean()), "impact_big": float(mv[sz > med].mean()),
        "impact_small": float(mv[sz < med].mean()),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    args = ap.parse_args()
    cols = {name: scenario_facts(name, args.seeds) for name in ("calm", "flow_calm", "incident")}
    real = real_hour()
    rows = [
        ("excess kurtosis, 1-s mid returns (median over seeds)", "k1", "{:.2f}"),
        ("excess kurtosis, 10-s mid returns", "k10", "{:.2f}"),
        ("share of zero 1-s returns", "zero", "{:.3f}"),
        ("mean spread, ticks", "spread", "{:.2f}"),
        ("sign autocorrelation, lag 1 (orders)", "ac1", "{:.3f}"),
        ("sign autocorrelation, lag 10", "ac10", "{:.3f}"),
        ("sign autocorrelation, lag 100", "ac100", "{:.3f}"),
        ("signed mid move 10 s after an order, bps", "impact", "{:.3f}"),
        ("  orders above the median size", "impact_big", "{:.3f}"),
        ("  orders below the median size", "impact_small", "{:.3f}"),
    ]
    print(f"| fact | calm | flow_calm | incident | real BTC hour |  (seeds 0-{args.seeds - 1})")
    print("|---|---|---|---|---|")
    for label, key, fmt in rows:
        rv = (
            fmt.format(real[key])
            if real and key in real
            else "(l2Book only)"
            if real
            else "(archive missing)"
        )
        print(f"| {label} | " + " | ".join(fmt.format(cols[n][key]) for n in cols) + f" | {rv} |")


if __name__ == "__main__":
    main()
