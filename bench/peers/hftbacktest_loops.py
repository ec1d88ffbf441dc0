"""hftbacktest's replay and GLFT loops on one event file, for bench/vs_peers.py.

Run with the peers' python (hftbacktest installed, never a flowmm dependency). Written after
hftbacktest's tutorial "GLFT Market Making Model and Grid Trading" (docs/tutorials): every
cycle it records the deepest market-order arrival from the mid and the mid change; every 5 s of
event time it refits the trading intensity lambda = A exp(-k delta) over the last 10 minutes
(linear regression of log lambda on the depth in ticks, first 70 ticks) and the volatility;
then it quotes GLFT's closed form (eq. 4.6/4.7 of Guéant's "Optimal market making", xi = gamma,
delta = 1) as a 20-level grid at the half spread's interval, cancelling working orders that left
the grid and posting GTX limit orders where the grid has none, up to a position limit.

* ``--loop replay``: no strategy, ``elapse`` in 60-s steps to the end (feed processing only);
* ``--loop tutorial``: a cycle every ``--step-ms`` (100) of event time, ``hbt.elapse``; the
  volatility is the std of the per-step mid change times sqrt(steps per second), as there;
* ``--loop event``: a cycle on every market feed, ``hbt.wait_next_feed``; the same refits on
  the same 5-s / 10-min schedule, the volatility from the summed squared mid changes over the
  window (the steps are not equal).

Load (``BacktestAsset`` + building the backtester, which reads the file) and run are timed
apart; a warm-up on ``--warmup`` (a small file) compiles the numba loop first. Prints one JSON
line: rows, load and run seconds, cycles, fills (``num_trades``), hftbacktest version.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from hftbacktest import GTX, LIMIT, BacktestAsset, HashMapMarketDepthBacktest
from hftbacktest.types import BUY_EVENT
from numba import njit, uint64
from numba.typed import Dict

WINDOW_NS = 600_000_000_000  # 10 minutes of samples for the fits
REFIT_NS = 5_000_000_000  # refit every 5 s
MAX_CYCLES = 20_000_000


@njit(cache=True)
def replay(hbt) -> int:
    n = 0
    while hbt.elapse(60_000_000_000) == 0:
        n += 1
    return n


@njit(cache=True)
def _intensity(depths, out):
    """Counts per tick of how deep market orders reached (the tutorial's estimator)."""
    max_tick = 0
    for d in depths:
        if not np.isfinite(d):
            continue
        tick = round(d / 0.5) - 1
        if tick < 0 or tick >= len(out):
            continue
        out[:tick] += 1
        max_tick = max(max_tick, tick)
    return out[:max_tick]


@njit(cache=True)
def _regress(x, y):
    sx, sy, sx2, sxy, w = np.sum(x), np.sum(y), np.sum(x**2), np.sum(x * y), len(x)
    slope = (w * sxy - sx * sy) / (w * sx2 - sx**2)
    return slope, (sy - slope * sx) / w


@njit(cache=True)
def _coeff(xi, gamma, delta, a, k):
    inv_k = np.divide(1, k)
    c1 = 1 / (xi * delta) * np.log(1 + xi * delta * inv_k)
    c2 = np.sqrt(np.divide(gamma, 2 * a * delta * k) * ((1 + xi * delta * inv_k) ** (k / (xi * delta) + 1)))
    return c1, c2


@njit(cache=True)
def glft(hbt, event_driven, step_ns, gamma, order_qty, max_position, grid_num):
    tick_size = hbt.depth(0).tick_size
    ts = np.zeros(MAX_CYCLES, np.int64)
    depth_arr = np.full(MAX_CYCLES, np.nan)
    chg_arr = np.full(MAX_CYCLES, np.nan)
    tmp = np.zeros(500)
    ticks = np.arange(len(tmp)) + 0.5
    a = k = vol = np.nan
    mid_tick = np.nan
    t = 0
    next_fit = 0
    steps_per_s = 1e9 / step_ns
    while True:
        if event_driven:
            r = hbt.wait_next_feed(False, 3_600_000_000_000)
            if r == 1:
                break
            if r != 2:
                continue
        elif hbt.elapse(step_ns) != 0:
            break
        now = hbt.current_timestamp
        if not np.isnan(mid_tick):
            deepest = -np.inf
            trades = hbt.last_trades(0)
            for i in range(len(trades)):
                px_tick = trades[i].px / tick_size
                if trades[i].ev & BUY_EVENT == BUY_EVENT:
                    deepest = max(px_tick - mid_tick, deepest)
                else:
                    deepest = max(mid_tick - px_tick, deepest)
            depth_arr[t] = deepest
        hbt.clear_last_trades(0)
        depth = hbt.depth(0)
        best_bid, best_ask = depth.best_bid_tick, depth.best_ask_tick
        prev = mid_tick
        mid_tick = (best_bid + best_ask) / 2.0
        chg_arr[t] = mid_tick - prev
        ts[t] = now
        t += 1
        if t >= MAX_CYCLES:
            break
        if now >= next_fit:
            next_fit = now + REFIT_NS
            lo = np.searchsorted(ts[:t], now - WINDOW_NS)
            if ts[0] <= now - WINDOW_NS + 1_000_000_000:  # a full window of samples
                tmp[:] = 0
                lam = _intensity(depth_arr[lo:t], tmp)
                if len(lam) > 2:
                    lam = lam[:70] / 600
                    slope, intercept = _regress(ticks[: len(lam)], np.log(lam))
                    a, k = np.exp(intercept), -slope
                if event_driven:
                    c = chg_arr[lo:t]
                    vol = np.sqrt(np.nansum(c * c) / 600.0)
                else:
                    vol = np.nanstd(chg_arr[lo:t]) * np.sqrt(steps_per_s)
        c1, c2 = _coeff(gamma, gamma, 1.0, a, k)
        half = (c1 + 0.5 * c2) * vol
        skew = c2 * vol
        pos = hbt.position(0)
        res = mid_tick - skew * pos / order_qty
        bid = min(np.round(res - half), best_bid) * tick_size
        ask = max(np.round(res + half), best_ask) * tick_size
        interval = max(np.round(half) * tick_size, tick_size)
        bid = np.floor(bid / interval) * interval
        ask = np.ceil(ask / interval) * interval
        new_bids = Dict.empty(np.uint64, np.float64)
        if pos < max_position and np.isfinite(bid):
            for _ in range(grid_num):
                new_bids[uint64(round(bid / tick_size))] = bid
                bid -= interval
        new_asks = Dict.empty(np.uint64, np.float64)
        if pos > -max_position and np.isfinite(ask):
            for _ in range(grid_num):
                new_asks[uint64(round(ask / tick_size))] = ask
                ask += interval
        orders = hbt.orders(0)
        values = orders.values()
        while values.has_next():
            o = values.get()
            if o.cancellable and (
                (o.side == 1 and o.order_id not in new_bids) or (o.side == -1 and o.order_id not in new_asks)
            ):
                hbt.cancel(0, o.order_id, False)
        for oid, px in new_bids.items():
            if oid not in orders:
                hbt.submit_buy_order(0, oid, px, order_qty, GTX, LIMIT, False)
        for oid, px in new_asks.items():
            if oid not in orders:
                hbt.submit_sell_order(0, oid, px, order_qty, GTX, LIMIT, False)
        hbt.clear_inactive_orders(0)
    return t


def _backtester(path: str, tick: float, lot: float):
    asset = (
        BacktestAsset()
        .data([path])
        .linear_asset(1.0)
        .constant_order_latency(10_000_000, 10_000_000)
        .power_prob_queue_model(2.0)
        .no_partial_fill_exchange()
        .trading_value_fee_model(0.00015, 0.00045)  # Hyperliquid base maker / taker
        .tick_size(tick)
        .lot_size(lot)
        .last_trades_capacity(10_000)
    )
    return HashMapMarketDepthBacktest([asset])


def run(loop: str, path: str, args) -> dict:
    t0 = time.perf_counter()
    hbt = _backtester(path, args.tick, args.lot)
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    if loop == "replay":
        cycles = replay(hbt)
    else:
        cycles = glft(
            hbt, loop == "event", args.step_ms * 1_000_000, args.gamma, args.qty, args.max_position, 20
        )
    wall = time.perf_counter() - t0
    fills = int(hbt.state_values(0).num_trades)
    hbt.close()
    return {"load_s": load, "run_s": wall, "cycles": int(cycles), "fills": fills}


def main() -> None:
    import hftbacktest

    ap = argparse.ArgumentParser()
    ap.add_argument("--loop", choices=("replay", "tutorial", "event"), required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--warmup", help="a small file to compile the loop on first")
    ap.add_argument("--tick", type=float, required=True)
    ap.add_argument("--lot", type=float, default=0.01)
    ap.add_argument("--step-ms", type=int, default=100)
    ap.add_argument("--gamma", type=float, default=0.05)
    ap.add_argument("--qty", type=float, default=1.0)
    ap.add_argument("--max-position", type=float, default=50.0)
    args = ap.parse_args()
    if args.warmup:
        run(args.loop, args.warmup, args)
    out = run(args.loop, args.data, args)
    rows = int(np.load(args.data)["data"].shape[0])
    print(json.dumps({**out, "rows": rows, "version": hftbacktest.__version__}))


if __name__ == "__main__":
    main()
