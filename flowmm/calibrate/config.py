"""What a calibration run does: horizons, folds, the gate's thresholds, the cost check."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flowmm.execution.fees import HL_BASE_MAKER_BPS


class CalibrateConfig(BaseModel):
    """Every knob of ``flowmm calibrate`` (seed 000 "Feature Parameter Estimation",
    "Validation gate", Appendix A "Calibration Approach"); docs/calibration.md."""

    model_config = ConfigDict(extra="forbid")

    horizon_s: float = Field(10.0, gt=0, description="forward-return horizon of the gate, s (seed: 10 s)")
    node_horizons: dict[str, float] = Field(
        default_factory=dict,
        description="per-feature horizon override, s (e.g. funding: 3600, Appendix A's next-hour return)",
    )
    features: list[str] | None = Field(
        None, description="feature nodes to calibrate (default: every obs wired into an estimator)"
    )
    quote_every_ms: int | None = Field(None, gt=0, description="sampling clock (default: the graph's)")
    block_s: float = Field(3600.0, gt=0, description="samples are reduced to statistics per block, s")
    folds: int = Field(5, ge=1, description="walk-forward test folds")
    window: Literal["expanding", "rolling"] = "expanding"
    rolling_folds: int = Field(2, ge=1, description="training groups of a rolling window")
    r2_min: float = Field(0.01, description="gate 1: out-of-sample R^2 of the feature alone")
    incr_r2_min: float = Field(0.003, description="gate 2: incremental out-of-sample R^2")
    fee_bps: float = Field(HL_BASE_MAKER_BPS, description="cost check: fee per fill, bps")
    spread_cost_bps: float = Field(0.45, ge=0, description="cost check: half spread paid, bps")
    edge_sd: float = Field(2.0, gt=0, description="cost check: predicted edge at this many sd of the feature")
    cost_gate: bool = Field(False, description="also require the cost check to admit (default: report it)")
    ou_dt_s: float = Field(10.0, gt=0, description="price grid of the OU drift MLE, s")
    tau_fill_s: float | None = Field(None, gt=0, description="fill horizon (default: the drift node's)")

    @model_validator(mode="after")
    def _horizons(self):
        bad = {k: v for k, v in self.node_horizons.items() if not v > 0}
        if bad:
            raise ValueError(f"node_horizons must be positive: {bad}")
        return self

    def horizon_of(self, node: str) -> float:
        return self.node_horizons.get(node, self.horizon_s)
