"""End to end: a graph runs on the synthetic source, and the market ignores the graph."""

from __future__ import annotations

import numpy as np

import flowmm
from flowmm.sources.synthetic import Synthetic


def test_the_demo_graph_runs_on_two_minutes_of_calm(root):
    graph = flowmm.load_graph(root / "graphs" / "demo.yaml")
    run = graph.run(Synthetic("calm", seed=1, duration="2m"))
    assert run.summary["source"] == "synthetic" and run.summary["events"] > 1000
    assert run.trace.num_rows >= 119  # one quote cycle per second
    sigma = run.trace.column("vol.sigma").to_numpy()
    assert np.isfinite(sigma[-60:]).all() and (sigma[-60:] > 0).all()


def test_two_runs_of_one_seed_give_the_same_trace(root):
    graph = flowmm.load_graph(root / "graphs" / "demo.yaml")
    a = graph.run(Synthetic("trend_down", seed=2, duration="90s")).trace
    b = graph.run(Synthetic("trend_down", seed=2, duration="90s")).trace
    assert a.column_names == b.column_names and a.num_rows == b.num_rows > 0
    for name in a.column_names:  # NaN (no value yet) compares equal to NaN here
        assert np.array_equal(a.column(name).to_numpy(), b.column(name).to_numpy(), equal_nan=True), name
