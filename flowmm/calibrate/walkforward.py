"""Walk-forward regression of the forward return on each feature, and the validation gate.

Seed 000 "Validation gate": a feature is admitted only if (1) its out-of-sample R^2 for the
forward return is > r2_min, (2) it is not redundant: the out-of-sample R^2 it adds to the
features already admitted is > incr_r2_min, (3) it survives the cost check (predicted edge >
fee + spread cost; reported, enforced with ``cost_gate``). Candidates are tried in order of
their own R^2 (forward selection). Everything is computed from per-block statistics
(regression.py): time-ordered blocks form ``folds + 1`` contiguous groups; fold i trains on
the groups before it (all of them: expanding; the last ``rolling_folds``: rolling) and tests
on group i. R^2 is pooled over folds: 1 - sum SSE / sum SS about each fold's training mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from flowmm.calibrate.config import CalibrateConfig
from flowmm.calibrate.regression import BlockStats, SingleFit, oos_errors, single_fit, total
from flowmm.errors import UsageError


@dataclass
class FeatureResult:
    name: str
    horizon_s: float
    fit: SingleFit  # on the final training window, y in bps/s: slope = alpha, sigma = sigma
    r2: float  # pooled out-of-sample R^2 alone
    r2_folds: list[float]
    incr_r2: float = float("nan")  # over the features admitted before it
    edge_bps: float = float("nan")  # |alpha| * edge_sd * sd(x) * horizon
    cost_bps: float = float("nan")
    admitted: bool = False
    reasons: list[str] = field(default_factory=list)  # why not admitted
    sign_folds: str = ""  # "k/n": folds whose training slope has the final slope's sign

    @property
    def cost_ok(self) -> bool:
        return bool(self.edge_bps > self.cost_bps)


@dataclass
class GroupResult:
    horizon_s: float
    features: list[FeatureResult]  # in selection order (own R^2, descending)
    n_samples: int
    folds: list[tuple[int, int]]  # (train samples, test samples) per fold
    r2_admitted: float  # pooled OOS R^2 of all admitted features together


def fold_groups(n_blocks: int, folds: int) -> list[list[int]]:
    """Split block indices 0..n-1 into ``folds + 1`` contiguous groups of near-equal size."""
    if n_blocks < folds + 1:
        raise UsageError(
            f"walk-forward needs at least {folds + 1} blocks of data, got {n_blocks}",
            hint="give more data (--duration, more --data), smaller --block, or fewer --folds",
        )
    edges = np.linspace(0, n_blocks, folds + 2).round().astype(int)
    return [list(range(edges[i], edges[i + 1])) for i in range(folds + 1)]


def _train_test(blocks: list[BlockStats], k: int, cfg: CalibrateConfig):
    groups = fold_groups(len(blocks), cfg.folds)
    sums = [total([blocks[i] for i in g], k) for g in groups]
    out = []
    for i in range(1, len(groups)):
        lo = 0 if cfg.window == "expanding" else max(0, i - cfg.rolling_folds)
        out.append((total(sums[lo:i], k), sums[i]))
    final = total(sums if cfg.window == "expanding" else sums[-cfg.rolling_folds :], k)
    return out, final


def _r2(pairs, cols: list[int]) -> tuple[float, list[float]]:
    sse_sum = sst_sum = 0.0
    per_fold = []
    for train, test in pairs:
        e, s = oos_errors(train.gram, test.gram, cols)
        sse_sum += e
        sst_sum += s
        per_fold.append(1.0 - e / s if s > 0 else float("nan"))
    return (1.0 - sse_sum / sst_sum if sst_sum > 0 else float("nan")), per_fold


def gate(names: list[str], blocks: list[BlockStats], horizon_s: float, cfg: CalibrateConfig) -> GroupResult:
    """Walk-forward fits and the gate for features sharing one horizon (their target)."""
    k = len(names)
    pairs, final = _train_test(blocks, k, cfg)
    cost = cfg.fee_bps + cfg.spread_cost_bps
    results = []
    for j, name in enumerate(names):
        r2, per_fold = _r2(pairs, [j])
        f = single_fit(final.moments[j], final.wmoments[j])
        res = FeatureResult(name, horizon_s, f, r2, per_fold, cost_bps=cost)
        res.edge_bps = abs(f.slope) * cfg.edge_sd * f.x_sd * horizon_s
        signs = [np.sign(single_fit(tr.moments[j], tr.wmoments[j]).slope) for tr, _ in pairs]
        res.sign_folds = f"{sum(s == np.sign(f.slope) for s in signs)}/{len(signs)}"
        results.append(res)
    order = sorted(range(k), key=lambda j: -np.nan_to_num(results[j].r2, nan=-np.inf))
    admitted: list[int] = []
    base, _ = _r2(pairs, [])
    for j in order:
        res = results[j]
        with_j, _ = _r2(pairs, admitted + [j])
        res.incr_r2 = with_j - base
        if not res.r2 > cfg.r2_min:
            res.reasons.append(f"R2 {res.r2:.4f} <= {cfg.r2_min}")
        if not res.incr_r2 > cfg.incr_r2_min:
            res.reasons.append(f"incremental R2 {res.incr_r2:.4f} <= {cfg.incr_r2_min}")
        if cfg.cost_gate and not res.cost_ok:
            res.reasons.append(f"edge {res.edge_bps:.2f} bps <= cost {res.cost_bps:.2f} bps")
        if not np.isfinite(res.fit.slope):
            res.reasons.append("no variation in the feature")
        res.admitted = not res.reasons
        if res.admitted:
            admitted.append(j)
            base = with_j
    folds = [(int(tr.n), int(te.n)) for tr, te in pairs]
    return GroupResult(horizon_s, [results[j] for j in order], int(final.n), folds, base)
