"""Least squares from sufficient statistics, so days of samples reduce to a few small matrices.

A block of samples is kept as the cross-product ``G = sum v v'`` of ``v = [1, x_1..x_k, y]``
(a feature with no value counts as 0: the drift filter skips a missing observation, which is
what a zero contribution is to a linear predictor) plus, per feature, the moments of its
valid rows. Blocks add; a fit on any union of blocks and its out-of-sample error on another
union need nothing else, which is what makes the walk-forward memory-bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# per-feature moments over its valid rows: n, sum x, sum x^2, sum y, sum x y, sum y^2
M_N, M_X, M_XX, M_Y, M_XY, M_YY = range(6)


@dataclass
class BlockStats:
    """Sufficient statistics of one block of (features, target) samples."""

    k: int  # number of features
    gram: np.ndarray = field(init=False)  # (k+2, k+2): [1, x.., y]
    moments: np.ndarray = field(init=False)  # (k, 6) over each feature's valid rows
    wmoments: np.ndarray = field(init=False)  # (k, 6) weighted by 1/s (s: the node's R at sigma = 1)

    def __post_init__(self):
        self.gram = np.zeros((self.k + 2, self.k + 2))
        self.moments = np.zeros((self.k, 6))
        self.wmoments = np.zeros((self.k, 6))

    @property
    def n(self) -> float:
        return float(self.gram[0, 0])

    def add(self, x: np.ndarray, y: np.ndarray, scale: np.ndarray | None = None) -> None:
        """Fold in rows: ``x`` (n, k) features (NaN = no value), ``y`` (n,) finite targets,
        ``scale`` (n, k) each observation's R at sigma = 1 (NaN or <= 0: weight 1)."""
        if len(y) == 0:
            return
        valid = np.isfinite(x)
        x0 = np.where(valid, x, 0.0)
        v = np.column_stack([np.ones(len(y)), x0, y])
        self.gram += v.T @ v
        if scale is None:
            w = np.ones_like(x0)
        else:
            ok = np.isfinite(scale) & (scale > 0)
            w = np.where(ok, 1.0 / np.where(ok, scale, 1.0), 1.0)
        for moments, wt in ((self.moments, valid.astype(float)), (self.wmoments, valid * w)):
            moments[:, M_N] += wt.sum(0)
            moments[:, M_X] += (wt * x0).sum(0)
            moments[:, M_XX] += (wt * x0 * x0).sum(0)
            moments[:, M_Y] += (wt * y[:, None]).sum(0)
            moments[:, M_XY] += (wt * x0 * y[:, None]).sum(0)
            moments[:, M_YY] += (wt * (y * y)[:, None]).sum(0)

    def __iadd__(self, other: BlockStats) -> BlockStats:
        self.gram += other.gram
        self.moments += other.moments
        self.wmoments += other.wmoments
        return self


def total(blocks: list[BlockStats], k: int) -> BlockStats:
    out = BlockStats(k)
    for b in blocks:
        out += b
    return out


def fit(gram: np.ndarray, cols: list[int]) -> np.ndarray:
    """OLS coefficients [intercept, b_cols...] of y on the features ``cols`` (0-based)."""
    idx = [0] + [c + 1 for c in cols]
    a = gram[np.ix_(idx, idx)]
    b = gram[idx, -1]
    return np.linalg.lstsq(a, b, rcond=1e-12)[0]  # a feature constant in training: no crash


def sse(gram: np.ndarray, cols: list[int], beta: np.ndarray) -> float:
    """Sum of squared errors of the prediction ``beta`` on the rows behind ``gram``."""
    idx = [0] + [c + 1 for c in cols]
    xx = gram[np.ix_(idx, idx)]
    xy = gram[idx, -1]
    return float(gram[-1, -1] - 2.0 * beta @ xy + beta @ xx @ beta)


def sst_about(gram: np.ndarray, mean: float) -> float:
    """Sum of squares of y about ``mean`` (the training mean: the out-of-sample baseline)."""
    n, sy, syy = gram[0, 0], gram[0, -1], gram[-1, -1]
    return float(syy - 2.0 * mean * sy + n * mean * mean)


def oos_errors(train: np.ndarray, test: np.ndarray, cols: list[int]) -> tuple[float, float]:
    """(SSE of the model fitted on ``train`` over ``test``, SS of test y about the train mean)."""
    if train[0, 0] < 2 or test[0, 0] < 1:
        return 0.0, 0.0
    beta = fit(train, cols) if cols else np.array([train[0, -1] / train[0, 0]])
    return sse(test, cols, beta), sst_about(test, train[0, -1] / train[0, 0])


@dataclass(frozen=True)
class SingleFit:
    """y = a + b x on a feature's valid rows; sigma^2 = weighted mean of squared residuals."""

    n: int
    intercept: float
    slope: float
    resid_sd: float  # plain residual sd of y
    sigma: float  # sqrt(mean(e^2 / s)): the noise at unit R-scale
    x_sd: float


def single_fit(moments: np.ndarray, wmoments: np.ndarray) -> SingleFit:
    """The fit of one feature from its moment rows (see ``BlockStats``)."""
    n, sx, sxx, sy, sxy, syy = moments
    nan = float("nan")
    if n < 3:
        return SingleFit(int(n), nan, nan, nan, nan, nan)
    mx, my = sx / n, sy / n
    vxx = sxx / n - mx * mx
    vxy = sxy / n - mx * my
    vyy = syy / n - my * my
    if not vxx > 1e-300:
        return SingleFit(int(n), my, nan, float(np.sqrt(max(vyy, 0.0))), nan, 0.0)
    b = vxy / vxx
    a = my - b * mx
    resid = max(vyy - b * vxy, 0.0) * n / max(n - 2, 1)
    # weighted residual: sum w (y - a - b x)^2 expanded in the weighted moments
    wn, wx, wxx, wy, wxy, wyy = wmoments
    wsse = wyy - 2 * a * wy - 2 * b * wxy + a * a * wn + 2 * a * b * wx + b * b * wxx
    sigma = float(np.sqrt(max(wsse, 0.0) / max(n - 2, 1)))
    return SingleFit(int(n), float(a), float(b), float(np.sqrt(resid)), sigma, float(np.sqrt(vxx)))
