"""The as2008 scenario: Avellaneda & Stoikov (2008)'s setup, and their symmetric strategy's row.

Their Table 1 (gamma = 0.1, 1000 simulations), symmetric strategy quoting at half the inventory
strategy's mean spread (1.29): profit 67.21 (sd 13.43), final inventory sd 8.66."""

import math

import numpy as np
import pytest

import flowmm
from flowmm.execution.paper import paper_broker_for
from flowmm.sources.synthetic import AS2008, list_scenarios, open_synthetic

N_SEEDS = 100


@pytest.fixture(scope="module")
def symmetric(root):
    g = flowmm.load_graph(root / "graphs" / "as2008_symmetric.yaml")
    out = []
    for seed in range(N_SEEDS):
        src = AS2008(seed)
        out.append(g.run(src, broker=paper_broker_for(g.plan, src), backend="python").summary)
    return out


def test_the_setup_is_the_papers():
    src = open_synthetic("as2008", seed=3)
    s = src.mids()
    assert len(s) == 201 and s[0] == 100.0  # T = 1, dt = 0.005
    np.testing.assert_allclose(np.abs(np.diff(s)), 2 * math.sqrt(0.005))  # binomial +-sigma sqrt(dt)
    ev = src.events()
    assert np.all(np.diff(ev.t) == 5_000_000) and ev.t[-1] == src.end_time
    assert np.array_equal(ev.payload, AS2008(3).events().payload)  # deterministic per seed
    assert not np.array_equal(ev.payload, AS2008(4).events().payload)
    assert "as2008" in dict(list_scenarios())


def test_fill_rate_is_A_exp_minus_k_delta(symmetric):
    per_side = np.array([[s["fills_buys"], s["fills_sells"]] for s in symmetric], float)
    lam_dt = 140 * math.exp(-1.5 * 0.645) * 0.005  # the paper's chance per step
    expected = 199 * lam_dt  # quotes rest from the first step on: 199 intervals
    se = per_side.std(ddof=1) / math.sqrt(len(per_side))
    assert np.all(np.abs(per_side.mean(axis=0) - expected) < 4 * se + 0.5)  # + rounding to the tick


def test_symmetric_strategy_reproduces_the_papers_row(symmetric):
    pnl = np.array([s["total_pnl"] for s in symmetric])
    q = np.array([s["final_q"] for s in symmetric])
    assert abs(pnl.mean() - 67.21) < 3 * pnl.std(ddof=1) / math.sqrt(N_SEEDS)
    assert abs(q.std(ddof=1) / 8.66 - 1) < 0.2
    assert all(s["fees"] == 0 for s in symmetric)  # the paper has no fees
