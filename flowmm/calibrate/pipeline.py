"""``calibrate``: a graph and its data in, a ``Calibration`` (gate, parameters) out."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from flowmm.calibrate.config import CalibrateConfig
from flowmm.calibrate.ou import fit_ou
from flowmm.calibrate.result import DRIFT_TYPE, ONLINE_TYPE, Calibration, FillFit
from flowmm.calibrate.sampling import collect, feature_graph, feature_nodes
from flowmm.calibrate.walkforward import gate
from flowmm.errors import FlowmmError

Segment = tuple[str, Callable[[], Any]]  # (label, a function returning a fresh source)


def calibrate(
    graph_path: str | Path,
    segments: Iterable[Segment],
    config: CalibrateConfig | None = None,
    *,
    node_dirs: list[str | Path] = (),
    allow_plugins: bool = False,
    progress: bool = False,
    source_name: str = "",
) -> Calibration:
    """Run the graph's features over the segments (time-ordered: synthetic seeds, replay
    days), walk-forward regress the forward return on each, gate them, and estimate the
    drift filter's core parameters from the same data (OU MLE on prices, fill regression)."""
    from flowmm.graph import load_graph

    cfg = config or CalibrateConfig()
    graph = load_graph(graph_path, node_dirs=list(node_dirs), allow_plugins=allow_plugins)
    plan = graph.plan
    features = feature_nodes(plan, cfg.features)
    sub = load_graph(
        feature_graph(plan, features, cfg), node_dirs=list(node_dirs), allow_plugins=allow_plugins
    )
    drift = [n for n in plan.nodes if n.type_name == DRIFT_TYPE]
    tau_fill = cfg.tau_fill_s or (drift[0].node.params.tau_fill if drift else 10.0)
    segments = list(segments)
    col = collect(sub, features, segments, cfg, tau_fill, progress=progress)
    groups = []
    for h, names in col.groups.items():
        if progress:
            print(f"  walk-forward at {h:g} s: {len(names)} features, {cfg.folds} folds", file=sys.stderr)
        res = gate(names, col.blocks.get(h, []), h, cfg)
        if progress:
            for i, (n_tr, n_te) in enumerate(res.folds):
                r2s = "  ".join(f"{r.name} {r.r2_folds[i]:+.4f}" for r in res.features)
                print(
                    f"    fold {i + 1}/{len(res.folds)}: train {n_tr:,}, test {n_te:,}: {r2s}",
                    file=sys.stderr,
                )
        groups.append(res)
    notes: list[str] = []
    try:
        ou = fit_ou(col.prices, cfg.ou_dt_s)
    except FlowmmError as exc:
        ou = None
        notes.append(f"OU drift fit skipped: {exc.message}")
    fill = FillFit.from_gram(col.fill_gram, tau_fill)
    if fill is None:
        notes.append("fill regression skipped: fewer than 30 trades with a mid after tau_fill")
    elif fill.slope < 0:
        notes.append(f"fill regression slope {fill.slope:.4g} < 0: c_fill set to 0 (fills carry no drift)")
    calib = Calibration(
        graph=plan.spec.name,
        graph_hash=plan.version_hash,
        config=cfg,
        features=features,
        groups=groups,
        ou=ou,
        fill=fill,
        data={
            "source": source_name,
            "segments": col.segments,
            "hours": round(col.seconds / 3600, 3),
            "cycles": col.cycles,
            "labels": [s[0] for s in segments],
        },
        drift_nodes=[n.name for n in drift],
        online_nodes=[n.name for n in plan.nodes if n.type_name == ONLINE_TYPE],
        notes=notes,
    )
    _check_params(calib, plan)
    return calib


def _check_params(calib: Calibration, plan) -> None:
    """A fitted value its node cannot take (e.g. a negative contrarian c_f) rejects the feature."""
    by_name = {n.name: n for n in plan.nodes}
    params = calib.params()
    for r in calib.feature_results():
        if not r.admitted:
            continue
        node = by_name[r.name].node
        try:
            type(node.params).model_validate({**node.params.model_dump(), **params[r.name]})
        except ValidationError as exc:
            msg = exc.errors()[0]["msg"]
            r.admitted = False
            r.reasons.append(f"fitted params not valid for {by_name[r.name].type_name}: {msg}")
