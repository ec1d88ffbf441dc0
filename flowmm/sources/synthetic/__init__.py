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

__all__ = [
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
