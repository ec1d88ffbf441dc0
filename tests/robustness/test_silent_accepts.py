"""Values that used to be accepted silently are located errors (or documented behaviour)."""

from __future__ import annotations

import pytest

import flowmm
from flowmm.core.ports import PORT_TYPES

from .conftest import DEMO_GRAPH, ROOT

NODE = "nodes:\n  v: {type: estimators.ewma_vol, in: {price: source.mid}}\n"


def _errors(text: str) -> list:
    with pytest.raises(flowmm.GraphError) as exc:
        flowmm.load_graph(text)
    return exc.value.errors


@pytest.mark.parametrize(
    "clock, words",
    [
        ("quote_every_ms: 99999999999999999999", "less than or equal to 86400000"),
        ("quote_every_ms: true", "a number is required, not true"),
        ("quote_every_ms: 0", "greater than 0"),
    ],
)
def test_bad_clocks_are_located_errors(clock, words):
    errs = _errors(f"name: g\nclock: {{{clock}}}\n" + NODE)
    assert errs[0].location.line == 2 and words in errs[0].message


@pytest.mark.parametrize("value", ["1e14", "1.0e+14", "100000000000000"])
def test_a_huge_buffer_is_a_located_error_not_an_allocation(value):
    errs = _errors(f"name: g\nclock: {{quote_every_ms: 1000}}\nbuffers: {{trades: {value}}}\n" + NODE)
    assert errs[0].location.line == 3 and errs[0].message.startswith("buffers.trades: ")


def test_a_bool_for_a_number_param_is_a_located_error():
    text = (ROOT / "graphs" / "glft_minimal.yaml").read_text()
    assert "  ladder:\n" in text
    errs = _errors(
        "name: g\nclock: {quote_every_ms: 1000}\n"
        "nodes:\n  v: {type: estimators.ewma_vol, in: {price: source.mid}, params: {half_life_s: true}}\n"
    )
    assert errs[0].location.line == 4 and "a number is required, not true" in errs[0].message


def test_levels_true_is_refused():
    from flowmm.core.node import registry

    types = [cls for cls in registry().values() if "levels" in cls.Params.model_fields]
    assert types, "a node with a levels param"
    with pytest.raises(ValueError, match="a number is required"):
        types[0].Params(levels=True)


def test_a_traced_book_gives_its_touch_as_the_docs_say():
    doc = (ROOT / "docs" / "graph-reference.md").read_text()
    assert "| `book` | the touch:" in doc
    g = flowmm.load_graph("name: g\nclock: {quote_every_ms: 1000}\ntrace: [source.book]\n" + NODE)
    cols = [c.name for c in g.plan.trace]
    assert cols == ["source.book" + s for s in PORT_TYPES["book"].scalar_columns()]
    errs = _errors("name: g\nclock: {quote_every_ms: 1000}\ntrace: [exec.orders]\n" + NODE)
    assert "not a scalar type" in errs[0].message


@pytest.mark.parametrize("argv", [
    ["run", DEMO_GRAPH, "--source", "synthetic", "--duration", "20"],
    ["compare", DEMO_GRAPH, DEMO_GRAPH, "--duration", "20"],
    ["calibrate", DEMO_GRAPH, "--source", "synthetic", "--duration", "20", "--out", "p.yaml"],
    ["calibrate", DEMO_GRAPH, "--source", "synthetic", "--horizon", "10", "--out", "p.yaml"],
])  # fmt: skip
def test_a_duration_without_a_unit_is_refused_everywhere(argv, cli_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, text = cli_run(*argv)
    assert code == 2 and "a duration needs a unit" in text
    assert not (tmp_path / "runs").exists()
