"""From a graph and its data to per-block regression statistics, one segment at a time.

The graph's feature nodes (and whatever feeds them) are cut out into a small graph whose
trace is the mid and each feature's ``obs`` at *unit gain*: the gain param (``alpha``, or
``c_f`` for funding) set to 1 and ``sigma`` to 1, so ``obs.z`` is the raw feature in the
orientation its node gives it and ``obs.R`` is the node's own per-observation scale of R
(depth, intensity, count...). The regression of the forward return rate on ``obs.z`` then
gives the gain directly, and sigma^2 = mean(residual^2 / scale).

Each segment (a synthetic seed, a day of replay) is run and reduced to statistics at once,
so memory holds one segment's trace (one row per quote cycle), never all of the data.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from flowmm.calibrate.config import CalibrateConfig
from flowmm.calibrate.regression import BlockStats
from flowmm.core.events import BBO, BOOK, TRADE, EventTable
from flowmm.core.plan import Plan
from flowmm.errors import UsageError

GAIN_PARAMS = ("alpha", "c_f")  # the param that maps a node's raw value into obs.z (bps/s)
SIGMA_PARAM = "sigma"
MID = "source.mid"


@dataclass(frozen=True)
class Feature:
    name: str  # node name in the graph
    type: str
    gain: str  # "alpha" or "c_f"
    has_sigma: bool
    wired_to: tuple[str, ...] = ()  # "node.input" lists its obs is in (what removing it edits)


def _obs_lists(plan: Plan) -> dict[str, list[str]]:
    """producer -> the variadic obs inputs ("node.input") that take its ``obs``, wiring order."""
    out: dict[str, list[str]] = {}
    for n in plan.nodes:
        for b in n.inputs:
            if b.decl.variadic and b.decl.type == "obs":
                for pid in b.ports:
                    prod = plan.ports[pid].producer
                    if prod is not None and plan.ports[pid].address == f"{prod}.obs":
                        out.setdefault(prod, []).append(f"{n.name}.in.{b.name}")
    return out


def feature_nodes(plan: Plan, names: list[str] | None = None) -> list[Feature]:
    """The features to calibrate: ``names``, or every node whose ``obs`` is wired into a
    variadic obs input (the drift filter's feature list), in wiring order."""
    by_name = {n.name: n for n in plan.nodes}
    wired = _obs_lists(plan)
    if names is None:
        names = list(wired)
    out = []
    for name in names:
        n = by_name.get(name)
        if n is None:
            raise UsageError(f"--features: no node {name!r} in graph {plan.spec.name}")
        fields = type(n.node.params).model_fields
        gain = next((g for g in GAIN_PARAMS if g in fields), None)
        if "obs" not in n.cls.outputs or gain is None:
            raise UsageError(
                f"--features: node {name!r} ({n.type_name}) has no obs output with a gain param",
                hint="a calibrated feature has an `obs` output and a gain param: " + ", ".join(GAIN_PARAMS),
            )
        out.append(Feature(name, n.type_name, gain, SIGMA_PARAM in fields, tuple(wired.get(name, ()))))
    if not out:
        raise UsageError(
            f"graph {plan.spec.name} has no feature obs wired into an estimator",
            hint="name the nodes with --features",
        )
    return out


def _upstream(nodes: dict[str, Any], roots: list[str]) -> list[str]:
    keep: list[str] = []
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep.append(name)
        for ref in nodes[name].in_.values():
            for r in ref if isinstance(ref, list) else [ref]:
                producer = r.split(".", 1)[0]
                if producer in nodes:
                    todo.append(producer)
    return [n for n in nodes if n in keep]  # file order


def feature_graph(plan: Plan, features: list[Feature], cfg: CalibrateConfig) -> dict:
    """The features and what feeds them, at unit gain and sigma, tracing the mid and each obs."""
    spec = plan.spec
    base = Path(plan.file).resolve().parent if plan.file else Path.cwd()
    instances = {n.name: n.node for n in plan.nodes}
    keep = _upstream(spec.nodes, [f.name for f in features])
    nodes = {}
    for name in keep:
        ns = spec.nodes[name]
        params = instances[name].params.model_dump(mode="json")  # resolved, params_from included
        nodes[name] = {"type": ns.type, "in": ns.in_, "params": params, "unused": ns.unused}
        if ns.tier is not None:
            nodes[name]["tier"] = ns.tier
        if ns.trigger is not None:
            nodes[name]["trigger"] = ns.trigger
    for f in features:
        nodes[f.name]["params"][f.gain] = 1.0
        if f.has_sigma:
            nodes[f.name]["params"][SIGMA_PARAM] = 1.0
    clock = spec.clock.model_dump(exclude_none=True)
    if cfg.quote_every_ms is not None:
        clock = {"quote_every_ms": cfg.quote_every_ms}
    return {
        "name": f"{spec.name}_calibration",
        "instrument": spec.instrument.model_dump(exclude_none=True),
        "clock": clock,
        "tiers": {k: v.model_dump() for k, v in spec.tiers.items()},
        "buffers": spec.buffers.model_dump(),
        "plugins": [str(p if Path(p).is_absolute() else base / p) for p in spec.plugins],
        "trace": [MID] + [f"{f.name}.obs" for f in features],
        "nodes": nodes,
    }


# -- the tape, for the fill regression -----------------------------------------------------------


@njit(cache=True)
def _scan_tape(t, kind, off, payload, state):
    """Trades of one chunk with the mid strictly before their timestamp.
    state: [mid, mid before the current timestamp, current timestamp]. Returns (n, 4) rows
    (t, px, aggressor side, mid_ref)."""
    n_tr = 0
    for i in range(len(t)):
        if kind[i] == TRADE:
            n_tr += 1
    out = np.empty((n_tr, 4))
    j = 0
    for i in range(len(t)):
        if t[i] != state[2]:
            state[1] = state[0]
            state[2] = t[i]
        o = off[i]
        k = kind[i]
        if k == BOOK:
            nb = int(payload[o])
            na = int(payload[o + 1])
            if nb > 0 and na > 0:
                bid = payload[o + 2]
                ask = payload[o + 2 + 3 * nb]
                if bid > 0.0 and ask > bid:
                    state[0] = 0.5 * (bid + ask)
        elif k == BBO:
            bid = payload[o]
            ask = payload[o + 3]
            if bid > 0.0 and ask > bid:
                state[0] = 0.5 * (bid + ask)
        elif k == TRADE:
            out[j, 0] = t[i]
            out[j, 1] = payload[o]
            out[j, 2] = payload[o + 2]
            out[j, 3] = state[1]
            j += 1
    return out


class TapeTee:
    """Wraps a source: passes its chunks on unchanged and keeps each trade with its mid_ref."""

    def __init__(self, source):
        self._source = source
        self._state = np.array([np.nan, np.nan, -1.0])
        self._parts: list[np.ndarray] = []

    def __getattr__(self, name):  # name, end_time, provides, summary, coin...
        return getattr(self._source, name)

    def chunks(self) -> Iterator[EventTable]:
        for chunk in self._source.chunks():
            rows = _scan_tape(chunk.t, chunk.kind, chunk.off, chunk.payload, self._state)
            if len(rows):
                self._parts.append(rows)
            yield chunk

    def trades(self) -> np.ndarray:
        return np.concatenate(self._parts) if self._parts else np.zeros((0, 4))


# -- one segment -> statistics -----------------------------------------------------------------


def forward_rate(t: np.ndarray, mid: np.ndarray, h_s: float, tol_ns: int) -> np.ndarray:
    """1e4 ln(mid(t + h) / mid(t)) / h (bps/s); mid(t + h) is the first row at or after t + h,
    NaN when it is later than ``tol_ns`` past it (a gap) or beyond the data."""
    h = int(round(h_s * 1e9))
    j = np.searchsorted(t, t + h, side="left")
    ok = j < len(t)
    jj = np.minimum(j, len(t) - 1)
    ok &= t[jj] - (t + h) <= tol_ns
    with np.errstate(divide="ignore", invalid="ignore"):
        y = 1e4 * np.log(mid[jj] / mid) / h_s
    y[~ok] = np.nan
    return y


def grid_prices(t: np.ndarray, mid: np.ndarray, dt_s: float) -> np.ndarray:
    """The mid as of every dt_s of event time (last value at or before; NaN in a gap)."""
    if len(t) == 0:
        return np.zeros(0)
    step = int(round(dt_s * 1e9))
    grid = np.arange(t[0], t[-1] + 1, step)
    i = np.searchsorted(t, grid, side="right") - 1
    out = mid[i].astype(float)
    out[grid - t[i] > step] = np.nan
    return out


@dataclass
class Collected:
    """Everything the calibration keeps from the data: bounded by blocks, not by samples."""

    groups: dict[float, list[str]]  # horizon -> feature names (their target)
    blocks: dict[float, list[BlockStats]] = field(default_factory=dict)
    prices: list[np.ndarray] = field(default_factory=list)  # per segment: mid on the OU grid
    fill_gram: np.ndarray = field(default_factory=lambda: np.zeros((3, 3)))  # [1, x_fill, y]
    segments: int = 0
    cycles: int = 0
    seconds: float = 0.0


def _add_segment(
    col: Collected, trace, tape: np.ndarray, cfg: CalibrateConfig, tau_fill: float, clock_ns: int
):
    t = trace["t"].to_numpy()
    mid = trace[MID].to_numpy(zero_copy_only=False)
    if len(t) < 2:
        return
    tol = 2 * clock_ns
    col.segments += 1
    col.cycles += len(t)
    col.seconds += (t[-1] - t[0]) * 1e-9
    block_ns = int(round(cfg.block_s * 1e9))
    block = (t - t[0]) // block_ns
    for h, names in col.groups.items():
        y = forward_rate(t, mid, h, tol)
        x = np.column_stack([trace[f"{n}.obs.z"].to_numpy(zero_copy_only=False) for n in names])
        s = np.column_stack([trace[f"{n}.obs.R"].to_numpy(zero_copy_only=False) for n in names])
        # purge rows whose horizon reaches into the next block: no test target seen in training
        end = t[0] + (block + 1) * block_ns
        ok = np.isfinite(y) & (t + int(h * 1e9) < end)
        for b in np.unique(block):
            rows = ok & (block == b)
            stats = BlockStats(len(names))
            stats.add(x[rows], y[rows], s[rows])
            if stats.n > 0:
                col.blocks.setdefault(h, []).append(stats)
    grid = grid_prices(t, mid, cfg.ou_dt_s)
    col.prices.append(1e4 * np.log(grid))
    r = np.diff(col.prices[-1])
    r = r[np.isfinite(r)]
    if len(tape) and len(r) > 10:
        sigma = float(np.sqrt(np.mean(r * r) / cfg.ou_dt_s))  # this segment's realised vol, bps/sqrt(s)
        col.fill_gram += fill_gram(t, mid, tape, sigma, tau_fill, tol)


def fill_gram(
    t: np.ndarray, mid: np.ndarray, tape: np.ndarray, sigma: float, tau_s: float, tol_ns: int
) -> np.ndarray:
    """Cross-products of [1, x, y] for the fill regression (seed 000 Appendix A: sigma_fill by
    regressing post-fill moves on fill signals). Each tape trade is a fill of a resting order
    (ours would be on the other side of the aggressor): y = 1e4 ln(mid(t + tau) / mid_ref) / tau
    bps/s, x = -side d_bps / (sigma sqrt(tau)) with side = -aggressor, so that the slope is the
    drift filter's c_fill and the residual sd its sigma_fill (CONVENTIONS.md fill observation)."""
    tt, px, aggr, mref = tape.T
    tf = tt.astype(np.int64) + int(round(tau_s * 1e9))
    j = np.searchsorted(t, tf, side="left")
    jj = np.minimum(j, len(t) - 1)
    ok = (j < len(t)) & (mref > 0) & (px > 0) & (t[jj] - tf <= tol_ns)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = 1e4 * np.log(mid[jj] / mref) / tau_s
        x = aggr * (np.abs(px - mref) / mref * 1e4) / (sigma * np.sqrt(tau_s))
    v = np.column_stack([np.ones(len(y)), x, y])[ok]
    v = v[np.isfinite(v).all(1)]
    return v.T @ v


def collect(
    graph,
    features: list[Feature],
    segments: Iterable[tuple[str, Callable[[], Any]]],
    cfg: CalibrateConfig,
    tau_fill: float,
    progress: bool = True,
) -> Collected:
    """Run the feature graph over every segment (label, source factory) and keep statistics."""
    groups: dict[float, list[str]] = {}
    for f in features:
        groups.setdefault(cfg.horizon_of(f.name), []).append(f.name)
    col = Collected(groups)
    clock = graph.plan.spec.clock.quote_every_ms or 1000  # on_book clocks: a target within 2 s
    segments = list(segments)
    for i, (label, make) in enumerate(segments):
        if progress:
            print(f"\r  segment {i + 1}/{len(segments)}: {label:<40}", end="", file=sys.stderr, flush=True)
        from flowmm.sources.guard import guard_source

        tee = TapeTee(guard_source(make()))  # corrupt prices never reach the statistics either
        run = graph.run(tee, backend="fused")
        _add_segment(col, run.trace, tee.trades(), cfg, tau_fill, clock * 1_000_000)
    if progress and segments:
        print(file=sys.stderr)
    return col
