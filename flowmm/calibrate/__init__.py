"""Offline calibration and the feature validation gate (seed 000 "Feature Parameter
Estimation", "Validation gate", Appendix A "Calibration Approach"); docs/calibration.md.

``calibrate(graph, segments, CalibrateConfig(...))`` runs a graph's feature nodes over the data,
walk-forward regresses the forward return on each, gates them, estimates the drift filter's
kappa_mu / sigma_mu (OU MLE on prices) and c_fill / sigma_fill (fill regression), and returns a
``Calibration``; ``write_params`` and ``report.write_report`` write what a graph includes with
``params_from:`` and the report.
"""

from flowmm.calibrate.config import CalibrateConfig
from flowmm.calibrate.ou import OUFit, fit_ou, simulate_ou_prices
from flowmm.calibrate.params_file import write_params
from flowmm.calibrate.pipeline import calibrate
from flowmm.calibrate.result import Calibration, FillFit
from flowmm.calibrate.segments import replay_segments, synthetic_segments

__all__ = [
    "CalibrateConfig",
    "Calibration",
    "FillFit",
    "OUFit",
    "calibrate",
    "fit_ou",
    "replay_segments",
    "simulate_ou_prices",
    "synthetic_segments",
    "write_params",
]
