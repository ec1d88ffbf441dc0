"""Does each feature carry its synthetic channel's information, and only when the knob is on?

For each channel knob of the synthetic market (docs/synthetic.md), the scenario ``mixed`` runs
with that knob at 1 and every other at 0 ("on"), and with every knob at 0 ("off"), over the
same seeds. A graph with every feature node samples each feature's ``obs.z`` (its drift
observation, the value the filter consumes) once a second. Per feature, the next-h return of
the mid, ``1e4 ln(mid(t+h)/mid(t))`` (h = 10 s; 5 min for the slow features basis, OI and
funding), is regressed on the feature by least squares, leave-one-seed-out: fit on the other
seeds, predict the held-out one. Out-of-sample R^2 = 1 - SSE / SS about the training mean,
pooled over held-out seeds (negative when the feature only adds noise). Alongside, the
per-seed correlation's t-statistic across seeds, the synthetic channel tests' statistic.

Used by test_information.py; ``python tests/nodes/features/information.py [SEEDS DURATION]``
prints the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import flowmm
from flowmm.sources.synthetic import Synthetic, load_scenario

GRAPH = Path(__file__).with_name("information_graph.yaml")


@dataclass(frozen=True)
class Channel:
    feature: str  # the node name in information_graph.yaml
    knob: str
    horizon_s: int
    note: str = ""


CHANNELS = (
    Channel("bim", "book", 10),
    Channel("dbim", "book", 10),
    Channel("bpg", "book", 10),
    Channel("sweep", "sweeps", 10),
    # the hawkes knob is self-excitation only (mean rate and side balance kept): the directional
    # part of per-side intensity is the trade_side channel's (docs/synthetic.md, "also moves")
    Channel("hawkes", "trade_side", 10, "side-specific intensity is the trade_side mechanism"),
    Channel("lead", "lead", 10),
    Channel("size", "size", 10),
    Channel("basis", "basis", 300),
    Channel("oi", "oi", 300),
    Channel("funding", "funding", 300),
)
KNOBS = sorted({c.knob for c in CHANNELS})


def run_traces(knob: str | None, seeds, duration: str) -> list[dict]:
    graph = flowmm.load_graph(GRAPH)
    scn = load_scenario("mixed")
    if knob is not None:
        scn = scn.with_knobs(**{knob: 1.0})
    out = []
    for seed in seeds:
        trace = graph.run(Synthetic(scn, seed=seed, duration=duration), backend="fused").trace
        out.append({c: trace[c].to_numpy(zero_copy_only=False) for c in trace.column_names})
    return out


def samples(trace: dict, feature: str, horizon_s: int) -> tuple[np.ndarray, np.ndarray]:
    """(feature, next-h return in bps) on the 1-s cycle grid, rows with both finite."""
    mid = trace["source.mid"]
    x = trace[f"{feature}.obs.z"]
    h = horizon_s  # one cycle per second
    y = 1e4 * np.log(mid[h:] / mid[:-h])
    x = x[:-h]
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def oos_r2_and_t(traces: list[dict], ch: Channel) -> tuple[float, float]:
    data = [samples(tr, ch.feature, ch.horizon_s) for tr in traces]
    sse = sst = 0.0
    corrs = []
    for k, (xk, yk) in enumerate(data):
        xs = np.concatenate([d[0] for i, d in enumerate(data) if i != k])
        ys = np.concatenate([d[1] for i, d in enumerate(data) if i != k])
        if len(xk) < 10 or np.std(xs) == 0:
            continue
        slope, icpt = np.polyfit(xs, ys, 1)
        sse += float(np.sum((yk - (icpt + slope * xk)) ** 2))
        sst += float(np.sum((yk - ys.mean()) ** 2))
        if np.std(xk) > 0:
            corrs.append(np.corrcoef(xk, yk)[0, 1])
    r2 = 1.0 - sse / sst if sst > 0 else math.nan
    c = np.array(corrs)
    t = c.mean() / (c.std(ddof=1) / math.sqrt(len(c))) if len(c) > 1 and c.std(ddof=1) > 0 else math.nan
    return r2, float(t)


def table(seeds=range(10), duration: str = "1h") -> dict[str, dict[str, tuple[float, float]]]:
    """{feature: {"on": (r2, t), "off": (r2, t)}}."""
    off = run_traces(None, seeds, duration)
    on = {knob: run_traces(knob, seeds, duration) for knob in KNOBS}
    return {c.feature: {"on": oos_r2_and_t(on[c.knob], c), "off": oos_r2_and_t(off, c)} for c in CHANNELS}


if __name__ == "__main__":
    import sys

    n, duration = (int(sys.argv[1]), sys.argv[2]) if len(sys.argv) > 2 else (10, "1h")
    res = table(range(n), duration)
    print(f"{'feature':8} {'knob':10} {'h':>4}  {'R2 on':>8} {'t on':>7}  {'R2 off':>8} {'t off':>7}")
    for c in CHANNELS:
        (r_on, t_on), (r_off, t_off) = res[c.feature]["on"], res[c.feature]["off"]
        print(
            f"{c.feature:8} {c.knob:10} {c.horizon_s:>4}  {r_on:8.4f} {t_on:7.2f}  {r_off:8.4f} {t_off:7.2f}"
        )
