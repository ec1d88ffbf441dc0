"""Scenario files: the shipped set, the loader's located errors, durations and knobs."""

from __future__ import annotations

import numpy as np
import pytest

from flowmm.errors import GraphError
from flowmm.sources.synthetic import (
    KNOB_NAMES,
    Regime,
    Scenario,
    ScenarioError,
    Synthetic,
    list_scenarios,
    load_scenario,
    parse_duration,
)
from flowmm.sources.synthetic.scenario import scenario_dirs, segments

SHIPPED = {"calm", "chop", "vol_spike", "cascade", "trend_down", "trend_up", "trend_down_weak", "mixed"}


def test_the_shipped_scenarios_are_listed_with_a_description():
    listed = dict(list_scenarios())
    assert SHIPPED <= set(listed)
    assert all(listed[n] and "\n" not in listed[n] and not listed[n].startswith("(does not") for n in SHIPPED)
    assert any(d.name == "scenarios" for d in scenario_dirs())


def test_every_shipped_scenario_loads_and_runs_a_minute():
    for name in SHIPPED:
        scn = load_scenario(name)
        assert scn.name == name and scn.duration_s >= 10 * 60
        ev = Synthetic(scn, seed=1, duration="1m").events()
        assert len(ev) > 500


def test_calm_and_chop_carry_no_information_and_trends_are_mirrors():
    for name in ("calm", "chop", "vol_spike", "mixed"):
        assert not load_scenario(name).knobs.array().any(), name
    down, up, weak = (load_scenario(n) for n in ("trend_down", "trend_up", "trend_down_weak"))
    assert np.all(down.knobs.array() == 1) and np.all(weak.knobs.array() == 0.5)
    assert (
        [p.duration for p in down.phases]
        == [p.duration for p in up.phases]
        == [p.duration for p in weak.phases]
    )
    assert down.phases[1].mu == -up.phases[1].mu and down.phases[1].btc_mu == -up.phases[1].btc_mu
    assert down.phases[1].regime == "trending_down" and up.phases[1].regime == "trending_up"
    assert (down.phases[1].mu, down.phases[1].sigma) == (weak.phases[1].mu, weak.phases[1].sigma)


def test_a_scenario_loads_from_a_path(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("description: my test\nphases:\n  - {duration: 90s, regime: volatile}\n")
    scn = load_scenario(p)
    assert scn.name == "mine" and scn.duration_s == 90 and scn.description == "my test"
    assert load_scenario(str(p)).name == "mine"


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("phases:\n  - {duration: 1m, regime: quiet}\nknobs: {book: 1, bok: 2}\n", 3, "unknown key 'bok'"),
        ("phases:\n  - duration: 1m\n    regime: sideways\n", 3, "regime"),
        ("phases:\n  - {duration: 1m, regime: quiet, sigma: -1}\n", 2, "sigma"),
        ("phases:\n  - {duration: soon, regime: quiet}\n", 2, "not a duration"),
        ("phases:\n  - {duration: 1m}\n", 2, "exactly one of regime"),
        ("knobs: {book: 3}\nphases:\n  - {duration: 1m, regime: quiet}\n", 1, "knobs.book"),
        ("phases:\n  - {duration: 1m, regime: quiet}\nphases: []\n", 3, "duplicated key"),
        ("phases: [\n", 2, "YAML syntax error"),
        ("name: x\n", 1, "phases"),
    ],
)
def test_errors_name_the_file_and_line(tmp_path, text, line, message):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ScenarioError) as exc:
        load_scenario(p)
    err = exc.value
    assert isinstance(err, GraphError) and err.exit_code == 2
    d = err.diagnostics[0]
    assert d.location.file == str(p) and d.location.line == line, err.format()
    assert message in err.format()


def test_unknown_key_hint_lists_the_allowed_keys(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("phases:\n  - {duration: 1m, regime: quiet, sigmaa: 1}\n")
    with pytest.raises(ScenarioError) as exc:
        load_scenario(p)
    assert "sigma" in (exc.value.diagnostics[0].hint or "")


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(ScenarioError) as exc:
        load_scenario("trend_sideways")
    assert "trend_down" in exc.value.format()


def test_durations():
    assert parse_duration("20m") == 1200 and parse_duration("90s") == 90 and parse_duration("1h") == 3600
    assert parse_duration(45) == 45 and parse_duration("500ms") == 0.5 and parse_duration("2.5min") == 150
    for bad in ("", "fast", "-5s", 0, "3 weeks", True):
        with pytest.raises(ValueError):
            parse_duration(bad)
    with pytest.raises(ScenarioError, match="not a duration"):
        Synthetic("calm", duration="forever")


def test_knobs_and_regime_ids():
    scn = load_scenario("calm").with_knobs(book=1, lead=0.5)
    assert scn.knobs.book == 1 and scn.knobs.lead == 0.5 and scn.knobs.size == 0
    assert len(scn.knobs.array()) == len(KNOB_NAMES) == 9
    with pytest.raises(ValueError):
        scn.with_knobs(book=-1)
    assert [r.value for r in Regime] == [0, 1, 2, 3, 4]
    assert Regime.trending_down == 1 and Regime.volatile == 4


def test_markov_phases_switch_regimes_and_the_last_phase_extends():
    markov = {"regimes": ["trending_up", "volatile"], "dwell_s": 30}
    phases = [{"duration": "2m", "regime": "quiet"}, {"duration": "10m", "markov": markov}]
    scn = Scenario.model_validate({"name": "m", "phases": phases})  # fmt: skip
    start, rows, phase = segments(scn, 20 * 600, 0.1, seed=3)  # 20 min: 8 more than the scenario
    assert start[0] == 0 and phase[0] == 0 and rows[0, -2] == Regime.quiet
    later = rows[start >= 1200]
    assert set(later[:, -2]) == {Regime.trending_up, Regime.volatile} and len(later) > 10
    assert np.all(np.diff(start) > 0)
