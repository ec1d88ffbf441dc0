"""The params file ``flowmm calibrate`` writes, for a graph's ``params_from:`` key.

    params:                      # merged into the graph's nodes (docs/graph-reference.md)
      bim: {alpha: 0.0569, sigma: 0.186}
      drift: {kappa_mu: 0.0201, sigma_mu: 0.0049, sigma_p: 0.5, c_fill: 0.023, sigma_fill: 0.18}
    calibration: {...}           # provenance and the gate's verdicts; ignored by the graph

Only admitted features get params; the rejected ones are listed under ``calibration.rejected``
with the report's recommendation: remove them from the graph (a params file that names a node
the graph does not have is an error, so a file never silently sets a removed feature).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from flowmm.calibrate.result import Calibration


def _plain(x: Any) -> Any:
    """numpy scalars and tuples to plain YAML types."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def params_document(calib: Calibration) -> dict[str, Any]:
    cfg = calib.config
    record: dict[str, Any] = {
        "graph": calib.graph,
        "graph_hash": calib.graph_hash,
        "written": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data": {k: v for k, v in calib.data.items() if k != "labels"},
        "horizon_s": cfg.horizon_s,
        "node_horizons_s": dict(cfg.node_horizons),
        "walk_forward": {"folds": cfg.folds, "window": cfg.window, "block_s": cfg.block_s},
        "gate": {"r2_min": cfg.r2_min, "incr_r2_min": cfg.incr_r2_min, "cost_gate": cfg.cost_gate},
        "admitted": calib.admitted,
        "rejected": {r.name: "; ".join(r.reasons) for r in calib.feature_results() if not r.admitted},
    }
    return _plain({"params": calib.params(), "calibration": record})


def write_params(calib: Calibration, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = params_document(calib)
    head = f"# written by `flowmm calibrate` for graph {calib.graph}; include: `params_from: {path.name}`\n"
    if calib.rejected:
        head += f"# the gate rejected {', '.join(calib.rejected)}: remove them from the graph (report.md)\n"

    class _Dumper(yaml.SafeDumper):
        pass

    def _flow_dict(dumper, data):  # a node's params on one line, everything else in block style
        flow = bool(data) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in data.values()
        )
        return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=flow)

    _Dumper.add_representer(dict, _flow_dict)
    path.write_text(head + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=110))
    return path
