"""The walk-forward gate on data with known structure, against a plain numpy walk-forward."""

import numpy as np
import pytest

from flowmm.calibrate import CalibrateConfig
from flowmm.calibrate.regression import BlockStats
from flowmm.calibrate.walkforward import fold_groups, gate
from flowmm.errors import UsageError

NAMES = ["strong", "copy", "noise", "other"]


def _blocks(n_blocks=12, per=2000, seed=5):
    rng = np.random.default_rng(seed)
    xs, ys, blocks = [], [], []
    for _ in range(n_blocks):
        s = rng.standard_normal(per)
        copy = s + 0.3 * rng.standard_normal(per)  # the same information, noisier: redundant
        noise = rng.standard_normal(per)
        other = rng.standard_normal(per)
        y = 0.25 * s + 0.15 * other + rng.standard_normal(per)
        x = np.column_stack([s, copy, noise, other])
        b = BlockStats(4)
        b.add(x, y)
        blocks.append(b)
        xs.append(x)
        ys.append(y)
    return blocks, xs, ys


def _numpy_r2(xs, ys, cols, groups):
    sse = sst = 0.0
    for i in range(1, len(groups)):
        tr = [b for g in groups[:i] for b in g]
        x_tr = np.concatenate([xs[b] for b in tr])[:, cols]
        y_tr = np.concatenate([ys[b] for b in tr])
        x_te = np.concatenate([xs[b] for b in groups[i]])[:, cols]
        y_te = np.concatenate([ys[b] for b in groups[i]])
        beta = np.linalg.lstsq(np.column_stack([np.ones(len(y_tr)), x_tr]), y_tr, rcond=None)[0]
        sse += np.sum((y_te - beta[0] - x_te @ beta[1:]) ** 2)
        sst += np.sum((y_te - y_tr.mean()) ** 2)
    return 1 - sse / sst


def test_fold_groups_are_contiguous_and_cover_every_block():
    groups = fold_groups(12, 5)
    assert len(groups) == 6 and sum(groups, []) == list(range(12))
    assert all(len(g) == 2 for g in groups)
    with pytest.raises(UsageError, match="at least 6 blocks"):
        fold_groups(5, 5)


def test_gate_admits_the_informative_rejects_the_redundant_and_the_noise():
    blocks, xs, ys = _blocks()
    res = gate(NAMES, blocks, 10.0, CalibrateConfig(folds=5))
    by = {r.name: r for r in res.features}
    assert [r.name for r in res.features][0] == "strong"  # selection in order of own R2
    assert by["strong"].admitted and by["other"].admitted
    assert by["copy"].r2 > 0.01 and not by["copy"].admitted  # informative alone, redundant after strong
    assert any("incremental" in why for why in by["copy"].reasons)
    assert not by["noise"].admitted and by["noise"].r2 < 0.002
    groups = fold_groups(12, 5)
    for j, name in enumerate(NAMES):
        assert by[name].r2 == pytest.approx(_numpy_r2(xs, ys, [j], groups), rel=1e-8, abs=1e-10)
    # incremental R2 of `other` over `strong`, and the model of both
    both = _numpy_r2(xs, ys, [0, 3], groups)
    assert by["other"].incr_r2 == pytest.approx(both - by["strong"].r2, rel=1e-8)
    assert res.r2_admitted == pytest.approx(both, rel=1e-8)
    # alpha is the slope of y on the feature (in y's unit per unit of feature), from all data
    assert by["strong"].fit.slope == pytest.approx(0.25, abs=0.02)
    assert by["strong"].sign_folds == "5/5"


def test_rolling_window_trains_on_the_last_groups_only():
    blocks, xs, ys = _blocks(n_blocks=6, per=500)
    res = gate(NAMES, blocks, 10.0, CalibrateConfig(folds=5, window="rolling", rolling_folds=1))
    assert [tr for tr, _ in res.folds] == [500] * 5


def test_cost_check_is_reported_and_enforced_only_when_asked():
    blocks, *_ = _blocks()
    cfg = CalibrateConfig(folds=5, fee_bps=1.5, spread_cost_bps=0.5, edge_sd=2.0)
    res = gate(NAMES, blocks, 10.0, cfg)
    strong = next(r for r in res.features if r.name == "strong")
    # predicted edge at 2 sd over the horizon: |alpha| * 2 * sd(x) * h
    assert strong.edge_bps == pytest.approx(abs(strong.fit.slope) * 2 * strong.fit.x_sd * 10.0)
    assert strong.cost_bps == 2.0 and strong.admitted
    strict = gate(NAMES, blocks, 1.0, cfg.model_copy(update={"cost_gate": True}))
    s1 = next(r for r in strict.features if r.name == "strong")  # at h = 1 s the edge is 0.5 bps
    assert not s1.cost_ok and not s1.admitted and any("cost" in why for why in s1.reasons)
