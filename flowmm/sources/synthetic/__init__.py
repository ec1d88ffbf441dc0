"""The synthetic market: a seeded, simulated Hyperliquid perp with switchable information.

``Synthetic(scenario, seed, duration)`` is an event source for ``Graph.run``; scenarios are
YAML files in ``graphs/scenarios/`` (``list_scenarios()``, ``load_scenario(name_or_path)``).
The model, its information channels (knobs) and what each one moves: docs/synthetic.md.
"""

from flowmm.sources.synthetic.scenario import (
    KNOB_NAMES,
    Knobs,
    Regime,
    Scenario,
    ScenarioError,
    list_scenarios,
    load_scenario,
    parse_duration,
)
from flowmm.sources.synthetic.source import MODEL, Model, Synthetic, funding_zscore
from flowmm.sources.synthetic.textbook import AS2008


def open_synthetic(scenario: str = "calm", seed: int = 0, duration: str | float | None = None):
    """The synthetic source of a scenario name or file: ``as2008`` is the textbook setup
    (``AS2008``), everything else the simulated Hyperliquid perp (``Synthetic``)."""
    if str(scenario) == AS2008.scenario:
        return AS2008(seed, duration)
    return Synthetic(scenario, seed=seed, duration=duration)


__all__ = [
    "AS2008",
    "open_synthetic",
    "KNOB_NAMES",
    "MODEL",
    "Knobs",
    "Model",
    "Regime",
    "Scenario",
    "ScenarioError",
    "Synthetic",
    "funding_zscore",
    "list_scenarios",
    "load_scenario",
    "parse_duration",
]
