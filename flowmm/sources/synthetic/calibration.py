"""Book-shape calibration: numbers derived from one real hour of Hyperliquid BTC L2 books.

Source: ``s3://hyperliquid-archive/market_data/20240101/12/l2Book/BTC.lz4`` (5,587 20-level
snapshots, 2024-01-01 12:00-13:00 UTC; BTC tick $1). The file is not redistributed; only these
aggregate figures are, and ``derive(path)`` recomputes them from it (the calibration test checks
that it still does). Everything is in *ticks* and relative sizes, so it rescales to any
instrument: prices by its tick, sizes by ``Instrument.depth_scale`` (instrument units per BTC).

The book model (docs/synthetic.md, "Book") keeps one queue per price tick per side. Beyond the
touch, the tick at distance ``d`` ticks from the touch holds an order with probability
``OCC_PI[d]`` and a log-normal size ``exp(N(OCC_LOGMEAN[d], OCC_LOGSD[d]))`` BTC; a new touch
draws from ``TOUCH_LOG*``. Distances are binned (1..30 ticks one by one, then 10-tick bins);
beyond 250 ticks the archive's 20 levels rarely reach and a flat tail is used.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# spread in ticks -> number of snapshots (index = ticks, 30 = 30 or more)
SPREAD_COUNTS = np.array(
    [
        0,
        2496,
        833,
        884,
        727,
        362,
        149,
        41,
        19,
        14,
        13,
        10,
        8,
        4,
        6,
        3,
        0,
        2,
        3,
        1,
        5,
        0,
        5,
        0,
        0,
        1,
        1,
        0,
        0,
        0,
        0,
    ],
    np.float64,
)
# orders per level (index = n) over all 20+20 levels of every snapshot
N_COUNTS = np.array([0, 160976, 50716, 6632, 4303, 681, 124, 33, 12, 2, 0, 1], np.float64)

OCC_EDGES = np.array(list(range(1, 31)) + list(range(31, 261, 10)), np.int64)  # bin lower edges, ticks
OCC_PI = np.array([
    0.507, 0.425, 0.388, 0.342, 0.324, 0.295, 0.356, 0.345, 0.315, 0.268, 0.192, 0.166, 0.151, 0.161,
    0.207, 0.218, 0.263, 0.265, 0.244, 0.19, 0.196, 0.171, 0.116, 0.081, 0.066, 0.053, 0.05, 0.033,
    0.038, 0.036, 0.065, 0.144, 0.097, 0.083, 0.069, 0.087, 0.085, 0.078, 0.058, 0.058, 0.068, 0.058,
    0.061, 0.057, 0.084, 0.054, 0.054, 0.065, 0.059, 0.035, 0.028, 0.012, 0.019,
])  # fmt: skip
OCC_LOGMEAN = np.array([
    -0.65, -1.21, -1.14, -1.55, -1.21, -1.26, -0.05, 0.07, 0.22, 0.04, 0.13, -0.62, -1.06, -0.68,
    -0.35, -0.28, 0.11, -0.12, 0.16, 0.3, 0.05, 0.06, -0.48, -0.67, -1.93, -1.78, -2.46, -2.12,
    -2.0, -2.48, -0.92, -0.49, -1.37, -2.1, -1.15, -0.16, -0.81, -1.86, -2.09, -2.04, -2.1, -1.34,
    -1.2, -0.53, -0.62, -0.33, -0.11, 0.01, -0.21, -1.75, -2.89, -2.37, -2.09,
])  # fmt: skip
OCC_LOGSD = np.array([
    2.35, 2.48, 2.32, 2.62, 2.67, 2.75, 2.54, 2.59, 2.43, 2.56, 2.37, 2.72, 2.68, 2.64, 2.49, 2.35,
    2.28, 2.51, 2.25, 2.46, 2.46, 2.55, 2.78, 2.54, 2.85, 2.74, 2.62, 2.67, 2.54, 2.69, 2.81, 2.77,
    2.46, 1.71, 2.19, 2.33, 2.58, 2.35, 2.01, 1.83, 1.84, 2.29, 2.22, 2.2, 2.21, 2.42, 2.62, 2.15,
    2.3, 2.98, 2.45, 2.66, 2.67,
])  # fmt: skip
TAIL_PI, TAIL_LOGMEAN, TAIL_LOGSD = 0.02, -1.5, 2.6  # beyond the last bin (> 260 ticks)
TOUCH_LOGMEAN, TOUCH_LOGSD = -2.05, 2.66  # the best level's size, log BTC
SIZE_CAP, TOUCH_CAP = 42.77, 8.79  # largest queue seen (BTC) anywhere / at the touch
D_MAX = 1024  # ticks of book kept per side (a power of two: ring index = tick & (D_MAX - 1))


def slot_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-tick (pi, log-mean, log-sd, log of the size cap) arrays of length D_MAX (index =
    distance from the touch). The cap keeps the log-normal's tail within what the hour shows."""
    pi = np.full(D_MAX, TAIL_PI)
    lm = np.full(D_MAX, TAIL_LOGMEAN)
    ls = np.full(D_MAX, TAIL_LOGSD)
    edges = list(OCC_EDGES) + [int(OCC_EDGES[-1]) + 10]
    for i in range(len(OCC_EDGES)):
        pi[edges[i] : edges[i + 1]] = OCC_PI[i]
        lm[edges[i] : edges[i + 1]] = OCC_LOGMEAN[i]
        ls[edges[i] : edges[i + 1]] = OCC_LOGSD[i]
    pi[0], lm[0], ls[0] = 1.0, TOUCH_LOGMEAN, TOUCH_LOGSD
    cap = np.full(D_MAX, np.log(SIZE_CAP))
    cap[0] = np.log(TOUCH_CAP)
    return pi, lm, ls, cap


def spread_tables(max_ticks: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative spread distributions given the mid's parity: (odd spreads, even spreads).

    A mid on a half tick (odd number of half ticks) has an odd spread in ticks and vice versa,
    so the spread is drawn conditional on the parity of the (efficient) mid."""
    c = SPREAD_COUNTS[: max_ticks + 1].copy()
    odd = np.where(np.arange(len(c)) % 2 == 1, c, 0.0)
    even = np.where((np.arange(len(c)) % 2 == 0) & (np.arange(len(c)) > 0), c, 0.0)
    return np.cumsum(odd) / odd.sum(), np.cumsum(even) / even.sum()


def p_odd_spread() -> float:
    c = SPREAD_COUNTS
    return float(c[1::2].sum() / c.sum())


def n_table() -> np.ndarray:
    """Cumulative distribution of orders per level (index = n)."""
    return np.cumsum(N_COUNTS) / N_COUNTS.sum()


def read_archive(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """An archive ``l2Book`` hour (LZ4-framed JSON lines) -> (bids, asks), each [n, 20, 3]
    (px, sz, n) float arrays; snapshots with fewer than 20 levels a side are skipped."""
    import lz4.frame

    raw = lz4.frame.decompress(Path(path).read_bytes()).decode()
    bids, asks = [], []
    for line in raw.splitlines():
        if not line.strip():
            continue
        b, a = json.loads(line)["raw"]["data"]["levels"]
        if len(b) < 20 or len(a) < 20:
            continue
        bids.append([[float(v["px"]), float(v["sz"]), float(v["n"])] for v in b[:20]])
        asks.append([[float(v["px"]), float(v["sz"]), float(v["n"])] for v in a[:20]])
    return np.array(bids), np.array(asks)


def derive(path: str | Path, tick: float = 1.0) -> dict[str, np.ndarray]:
    """Recompute SPREAD_COUNTS, OCC_* and TOUCH_* from an archive hour (see module docstring)."""
    bids, asks = read_archive(path)
    spread = np.rint((asks[:, 0, 0] - bids[:, 0, 0]) / tick).astype(np.int64)
    dist = np.concatenate(
        [np.rint((bids[:, :1, 0] - bids[:, :, 0]) / tick), np.rint((asks[:, :, 0] - asks[:, :1, 0]) / tick)]
    ).astype(np.int64)
    size = np.concatenate([bids[:, :, 1], asks[:, :, 1]])
    hi = int(OCC_EDGES[-1]) + 10
    occ = np.zeros(hi + 1)
    risk = np.zeros(hi + 1)
    logs: list[list[float]] = [[] for _ in range(hi + 1)]
    for row, sz in zip(dist, size):
        risk[1 : min(row[-1], hi) + 1] += 1  # ticks up to the 20th level are observed
        for d, s in zip(row[1:], sz[1:]):
            if d <= hi:
                occ[d] += 1
                logs[d].append(np.log(s))
    edges = list(OCC_EDGES) + [hi]
    pi, lm, ls = [], [], []
    for lo, up in zip(edges[:-1], edges[1:]):
        v = np.concatenate([np.asarray(logs[d]) for d in range(lo, up)] + [np.zeros(0)])
        pi.append(occ[lo:up].sum() / max(risk[lo:up].sum(), 1.0))
        lm.append(v.mean() if len(v) else np.nan)
        ls.append(v.std() if len(v) else np.nan)
    touch = np.log(size[:, 0])
    return {
        "spread_counts": np.bincount(np.minimum(spread, 30), minlength=31).astype(np.float64),
        "occ_pi": np.array(pi),
        "occ_logmean": np.array(lm),
        "occ_logsd": np.array(ls),
        "touch": np.array([touch.mean(), touch.std()]),
    }
