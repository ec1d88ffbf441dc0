"""The drift filter on the synthetic incident (issue 7): fed by price returns, own fills, the
trend detector and the feature observations at their default alpha and sigma, mu_hat turns
negative within minutes of the selloff's onset, and on a calm market stays within its own
uncertainty. About a minute: 20 + 4 paper runs on the python backend."""

from pathlib import Path

import numpy as np
import pytest

import flowmm
from flowmm.execution.paper import paper_broker_for
from flowmm.sources.synthetic import Synthetic

GRAPH = Path(__file__).with_name("drift_trend_down.yaml")
TRENDING_DOWN = 1  # source.truth regime id


def _run(scenario: str, seed: int) -> dict:
    graph = flowmm.load_graph(GRAPH)
    src = Synthetic(scenario, seed=seed)
    run = graph.run(src, broker=paper_broker_for(graph.plan, src))
    return {
        k: np.asarray(v.to_numpy(zero_copy_only=False), float)
        for k, v in zip(run.trace.column_names, run.trace.columns)
    }


def onset_windows(tr: dict) -> tuple[float, float]:
    """(mean mu_hat before the onset, mean mu_hat over minutes 1-3 after it); the onset is the
    first cycle whose truth regime is trending_down."""
    t = (tr["t"] - tr["t"][0]) * 1e-9
    onset = t[np.argmax(tr["source.truth.2"] == TRENDING_DOWN)]
    mu = tr["drift.mu_hat"]
    pre = mu[(t < onset) & np.isfinite(mu)]
    post = mu[(t >= onset + 60) & (t < onset + 180) & np.isfinite(mu)]
    return float(pre.mean()), float(post.mean())


@pytest.fixture(scope="module")
def trend_down():
    return [onset_windows(_run("trend_down", seed)) for seed in range(20)]


def test_mu_hat_turns_negative_after_the_onset_in_18_of_20_seeds(trend_down):
    hits = [post < 0 and post < pre for pre, post in trend_down]
    print("\n(pre, post) mu_hat per seed:", [(round(a, 4), round(b, 4)) for a, b in trend_down])
    print(f"negative and below the pre-onset mean in {sum(hits)} of 20 seeds")
    assert sum(hits) >= 18


def test_on_calm_mu_hat_stays_within_two_sd():
    inside = []
    for seed in range(4):
        tr = _run("calm", seed)
        mu, sd = tr["drift.mu_hat"], np.sqrt(tr["drift.P"])
        ok = np.isfinite(mu) & np.isfinite(sd)
        inside.append(float(np.mean(np.abs(mu[ok]) <= 2 * sd[ok])))
    print("\nshare of cycles with |mu_hat| <= 2 sqrt(P) on calm:", [round(x, 3) for x in inside])
    assert min(inside) >= 0.9
