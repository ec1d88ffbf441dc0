"""A calibration's outcome: the gate per feature, the core parameters, and the params it sets."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flowmm.calibrate.config import CalibrateConfig
from flowmm.calibrate.ou import OUFit
from flowmm.calibrate.sampling import SIGMA_PARAM, Feature
from flowmm.calibrate.walkforward import GroupResult

DRIFT_TYPE = "estimators.kalman_drift"
ONLINE_TYPE = "estimators.online_params"  # carries a copy of kappa_mu that must match the filter's


@dataclass(frozen=True)
class FillFit:
    """Post-fill move rate on the fill signal: slope = c_fill, residual sd = sigma_fill (bps/s)."""

    n: int
    intercept: float
    slope: float
    resid_sd: float
    tau_s: float

    @staticmethod
    def from_gram(g: np.ndarray, tau_s: float) -> FillFit | None:
        n = g[0, 0]
        if n < 30:
            return None
        mx, my = g[0, 1] / n, g[0, 2] / n
        vxx = g[1, 1] / n - mx * mx
        vxy = g[1, 2] / n - mx * my
        vyy = g[2, 2] / n - my * my
        if not vxx > 0:
            return None
        b = vxy / vxx
        resid = max(vyy - b * vxy, 0.0) * n / (n - 2)
        return FillFit(int(n), float(my - b * mx), float(b), float(math.sqrt(resid)), tau_s)


@dataclass
class Calibration:
    graph: str
    graph_hash: str
    config: CalibrateConfig
    features: list[Feature]
    groups: list[GroupResult]
    ou: OUFit | None
    fill: FillFit | None
    data: dict[str, Any]  # what was read: source, segments, hours, cycles
    drift_nodes: list[str] = field(default_factory=list)
    online_nodes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def feature_results(self):
        return [r for g in self.groups for r in g.features]

    @property
    def admitted(self) -> list[str]:
        return [r.name for r in self.feature_results() if r.admitted]

    @property
    def rejected(self) -> list[str]:
        return [r.name for r in self.feature_results() if not r.admitted]

    def params(self) -> dict[str, dict[str, float]]:
        """Params to include in the graph: the admitted features' gain and sigma, the drift
        filter's kappa_mu, sigma_mu (and sigma_p) from the OU fit, c_fill and sigma_fill."""
        gains = {f.name: f for f in self.features}
        out: dict[str, dict[str, float]] = {}
        for r in self.feature_results():
            if not r.admitted:
                continue
            f = gains[r.name]
            p = {f.gain: _round(r.fit.slope)}
            if f.has_sigma and np.isfinite(r.fit.sigma) and r.fit.sigma > 0:
                p[SIGMA_PARAM] = _round(r.fit.sigma)
            out[r.name] = p
        core: dict[str, float] = {}
        if self.ou is not None:
            core.update(kappa_mu=_round(self.ou.kappa_mu), sigma_mu=_round(self.ou.sigma_mu))
            core["sigma_p"] = _round(self.ou.sigma)
        if self.fill is not None:
            core["c_fill"] = _round(max(self.fill.slope, 0.0))  # a negative slope: fills say nothing
            if self.fill.resid_sd > 0:
                core["sigma_fill"] = _round(self.fill.resid_sd)
        for name in self.drift_nodes:
            if core:
                out[name] = dict(core)
        if self.ou is not None:
            for name in self.online_nodes:
                out[name] = {"kappa_mu": _round(self.ou.kappa_mu)}
        return out


def _round(x: float) -> float:
    """Four significant figures: the estimates are not more precise than that."""
    return float(f"{x:.4g}")
