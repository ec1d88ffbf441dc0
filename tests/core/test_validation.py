"""Graph validation: every broken graph of tests/graphs/broken is reported, located, all at once.

Each case names the exact line and column of the offending key or value, and the text expected
there, so a location that drifts to a neighbouring key fails the test. The same cases are run
through ``flowmm validate`` (exit 2, no traceback, ``file:line:col`` printed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from flowmm.cli import main
from flowmm.core.plan import load_plan
from flowmm.errors import Diagnostic, FlowmmError, GraphError

GRAPHS = Path(__file__).resolve().parents[1] / "graphs"
BROKEN = GRAPHS / "broken"
OK = GRAPHS / "ok"
DEMO = Path(__file__).resolve().parents[2] / "graphs" / "demo.yaml"


@dataclass(frozen=True)
class Case:
    file: str
    line: int
    col: int | None  # None: only the line is asserted
    token: str | None  # the text at line:col (the offending key or value)
    message: tuple[str, ...]  # substrings of the message
    hint: tuple[str, ...] = ()  # substrings of the hint
    where: str | None = None  # "node" or "node.port"


CASES = [
    Case("yaml_syntax", 7, None, None, ("YAML syntax error", "flow mapping that starts at line 6")),
    Case(
        "unknown_type",
        5,
        11,
        "features.mid_retrun",
        ("unknown node type 'features.mid_retrun'",),
        ("did you mean features.mid_return",),
        "ret",
    ),
    Case(
        "unknown_param",
        8,
        7,
        "half_life:",
        ("unknown param 'half_life'", "estimators.ewma_vol"),
        ("takes: half_life_s",),
        "vol",
    ),
    Case(
        "mistyped_param_str",
        8,
        20,
        "fast",
        ("param 'half_life_s'", "valid number", "'fast'"),
        where="vol",
    ),
    Case(
        "mistyped_param_negative",
        7,
        27,
        "-1",
        ("param 'half_life_s'", "greater than 0", "-1"),
        where="vol",
    ),
    Case(
        "unknown_node_ref",
        10,
        10,
        "vil.sigma",
        ("input 'x' reads unknown node 'vil'",),
        ("did you mean 'vol'",),
        "smooth.x",
    ),
    Case(
        "unknown_port",
        10,
        10,
        "vol.sigmaa",
        ("node 'vol' has no output 'sigmaa'",),
        ("vol outputs: sigma",),
        "smooth.x",
    ),
    Case(
        "unknown_stream",
        7,
        15,
        "source.bok",
        ("unknown stream 'source.bok'",),
        ("source.book",),
        "flow.trades",
    ),
    Case(
        "type_mismatch_trades_to_f64",
        7,
        14,
        "source.trades",
        ("type mismatch", "source.trades is trades", "vol.price", "takes f64"),
        where="vol.price",
    ),
    Case(
        "type_mismatch_f64_to_trades",
        7,
        15,
        "source.mid",
        ("type mismatch", "source.mid is f64", "flow.trades", "takes trades"),
        where="flow.trades",
    ),
    Case("cycle", 9, 5, "in:", ("cycle in the graph: a -> b -> a",), ("lagged value",), "b"),
    Case("duplicate_node", 7, 3, "vol:", ("duplicated key 'vol'", "first defined at line 4")),
    Case(
        "duplicate_key_in_node",
        8,
        5,
        "params:",
        ("duplicated key 'params'", "first defined at line 7"),
    ),
    Case(
        "truth_not_diagnostic",
        8,
        14,
        "source.truth",
        ("probe reads source.truth",),
        ("diagnostic: true",),
        "probe.truth",
    ),
    Case("unknown_top_key", 3, 1, "tires:", ("unknown key 'tires'",), ("tiers",)),
    Case("unknown_node_key", 7, 5, "parms:", ("unknown key 'parms'",), ("params",), "vol"),
    Case(
        "list_to_non_variadic",
        7,
        14,
        "[source.mid, source.ref_mid]",
        ("input 'price' takes one source, got a list of 2",),
        where="vol.price",
    ),
    Case(
        "tier_on_event_node",
        7,
        11,
        "warm",
        ("tier 'warm' set on an event-triggered node",),
        ("trigger: cycle",),
        "burst",
    ),
    Case("unknown_tier", 6, 11, "tepid", ("unknown tier 'tepid'",), ("hot, warm, cold",), "vol"),
    Case("clock_negative", 3, 19, "-5", ("clock.quote_every_ms", "greater than 0", "-5")),
    Case("clock_empty", 2, 8, "{}", ("clock: set exactly one of quote_every_ms: N or on_book: true",)),
    Case("not_a_mapping", 1, 1, "- name", ("a graph file is a mapping",)),
]


def diagnostics(path: Path | str, **kwargs) -> list[Diagnostic]:
    with pytest.raises(GraphError) as info:
        load_plan(Path(path), **kwargs)
    return info.value.diagnostics


def errors(path: Path | str, **kwargs) -> list[Diagnostic]:
    return [d for d in diagnostics(path, **kwargs) if d.severity == "error"]


@pytest.mark.parametrize("case", CASES, ids=[c.file for c in CASES])
def test_broken_graph_is_located(case: Case):
    path = BROKEN / f"{case.file}.yaml"
    errs = errors(path, allow_plugins=True)  # truth_not_diagnostic loads tests/plugins
    assert len(errs) == 1, [e.format() for e in errs]
    d = errs[0]
    assert d.location.file == str(path)
    assert d.location.line == case.line, d.format()
    for text in case.message:
        assert text in d.message
    for text in case.hint:
        assert text in (d.hint or "")
    if case.where is not None:
        assert ".".join(p for p in (d.location.node, d.location.port) if p) == case.where
    if case.col is not None:
        assert d.location.col == case.col, d.format()
        source_line = path.read_text().splitlines()[case.line - 1]
        assert source_line[case.col - 1 :].startswith(case.token), source_line


@pytest.mark.parametrize("case", CASES, ids=[c.file for c in CASES])
def test_cli_validate_reports_broken_graph(case: Case, capsys):
    path = BROKEN / f"{case.file}.yaml"
    assert main(["validate", "--allow-plugins", str(path)]) == 2
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text
    pos = f"{path}:{case.line}:" + (f"{case.col}" if case.col is not None else "")
    lines = [ln for ln in text.splitlines() if ln.startswith(pos)]
    assert lines and ": error: " in lines[0], text
    assert case.message[0] in lines[0]
    assert f"{path}: failed (1 error)" in text


def test_missing_required_inputs_all_reported_at_in_or_node_key():
    path = BROKEN / "missing_input.yaml"
    errs = errors(path)
    # vol has no `in:` at all -> its node key; smooth has `in: {}` -> that key
    assert [(e.location.line, e.location.col, e.location.node, e.location.port) for e in errs] == [
        (4, 3, "vol", "price"),
        (9, 5, "smooth", "x"),
    ]
    assert all("missing required input" in e.message for e in errs)
    assert "(f64)" in errs[0].message


def test_many_errors_reported_in_one_pass_in_file_order():
    errs = errors(BROKEN / "many_errors.yaml")
    found = [(e.location.line, e.message) for e in errs]
    expected = [
        (4, "unknown key 'tires'"),
        (7, "unknown node type 'features.mid_retrun'"),
        (12, "param 'half_life_s'"),
        (15, "reads unknown node 'vil'"),
        (18, "type mismatch: source.mid is f64"),
        (22, "unknown key 'parms'"),
        (25, "unknown tier 'tepid'"),
        (32, "cycle in the graph: a -> b -> a"),
        (33, "duplicated key 'a'"),
    ]
    assert len(found) == len(expected), "\n".join(e.format() for e in errs)
    for (line, msg), (want_line, want_msg) in zip(found, expected):
        assert line == want_line and want_msg in msg, (line, msg)
    # `slow` reads `typo.mean`, and `typo` is broken: that is not reported a second time
    assert not any("typo" in e.message for e in errs if e.location.node != "typo")


def test_cli_many_errors_prints_every_error(capsys):
    path = BROKEN / "many_errors.yaml"
    assert main(["validate", str(path)]) == 2
    out = capsys.readouterr().out
    assert out.count(": error: ") == 9
    assert f"{path}: failed (9 errors)" in out


def test_truth_is_fine_for_a_diagnostic_node():
    plan = load_plan(OK / "truth_diagnostic.yaml", allow_plugins=True)
    assert [n.name for n in plan.nodes] == ["probe"]


def test_unconsumed_output_warns_located_and_strict_makes_it_an_error():
    path = BROKEN / "unconsumed_output.yaml"
    plan = load_plan(path)
    warned = [(w.location.line, w.location.node, w.location.port, w.severity) for w in plan.warnings]
    assert warned == [(8, "ret", "ret_bps", "warning"), (8, "ret", "rate_bps_s", "warning")]
    assert "neither consumed nor traced" in plan.warnings[0].message
    errs = errors(path, strict=True)
    assert [(e.location.line, e.location.port) for e in errs] == [(8, "ret_bps"), (8, "rate_bps_s")]


def test_cli_unconsumed_output_exit_0_then_2_with_strict(capsys):
    path = BROKEN / "unconsumed_output.yaml"
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}:8:3 [ret.ret_bps]: warning: output ret.ret_bps is neither consumed nor traced" in out
    assert f"{path}: ok (2 nodes, hash " in out and "2 warnings" in out
    assert main(["validate", "--strict", str(path)]) == 2
    out = capsys.readouterr().out
    assert f"{path}:8:3 [ret.ret_bps]: error: output ret.ret_bps" in out


def test_empty_file(tmp_path):
    errs = errors(BROKEN / "empty.yaml")
    assert len(errs) == 1 and "empty" in errs[0].message
    comments_only = tmp_path / "comments.yaml"
    comments_only.write_text("# nothing here\n")
    assert "empty" in errors(comments_only)[0].message


def test_missing_file_and_folder(tmp_path):
    for path in (tmp_path / "nope.yaml", tmp_path / "nope", tmp_path):
        errs = errors(path)
        assert len(errs) == 1 and "cannot read graph file" in errs[0].message
        assert errs[0].location.file == str(path)


def test_cli_missing_file_still_checks_the_others(tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    assert main(["validate", str(missing), str(DEMO)]) == 2
    out = capsys.readouterr().out
    assert f"{missing}: error: cannot read graph file" in out
    assert f"{DEMO}: ok (6 nodes, hash " in out
    assert "2 files: 1 ok, 1 failed" in out


# -- graph-level pydantic errors: located and readable -------------------------------------------

HEAD = "name: g\nclock: {quote_every_ms: 1000}\n"
NODE = "nodes:\n  r:\n    type: features.mid_return\n    in: {price: source.mid}\n"


def text_errors(text: str, allow_plugins: bool = False) -> list[Diagnostic]:
    with pytest.raises(GraphError) as info:
        load_plan(text, allow_plugins=allow_plugins)
    return info.value.errors


def test_union_errors_keep_the_branch_that_applies():
    # tiers: int | TierSpec; a mapping goes to TierSpec: no "should be a valid integer" noise
    errs = text_errors(HEAD + "tiers:\n  hot:\n    every: 0\n" + NODE)
    assert [(e.location.line, e.message) for e in errs] == [
        (5, "tiers.hot.every: Input should be greater than 0 (got 0)")
    ]


def test_union_errors_are_joined_when_no_branch_applies():
    errs = text_errors(HEAD + "nodes:\n  r:\n    type: features.mid_return\n    in: {price: 5}\n")
    assert len(errs) == 1
    assert errs[0].location.line == 6 and errs[0].location.node == "r"
    assert "valid string or Input should be a valid list (got 5)" in errs[0].message


def test_trace_value_error_is_one_readable_error():
    errs = text_errors(HEAD + "trace: alll\n" + NODE)
    assert len(errs) == 1
    assert errs[0].location.line == 3
    assert errs[0].message == "trace: Input should be a valid list or Input should be 'all' (got 'alll')"


def test_missing_graph_keys_are_all_reported():
    errs = text_errors("description: no name, no clock\n" + NODE)
    assert sorted(e.message for e in errs) == ["clock: Field required", "name: Field required"]


def test_graph_level_error_does_not_hide_node_errors():
    errs = text_errors("name: g\nclock: {quote_every_ms: -5}\nnodes:\n  r:\n    type: features.mid_retrun\n")
    assert [(e.location.line, e.location.col) for e in errs] == [(2, 25), (5, 11)]


def test_node_with_bad_params_still_has_its_inputs_checked():
    errs = text_errors(HEAD + "nodes:\n  v:\n    type: estimators.ewma_vol\n    params: {half_life_s: 0}\n")
    assert sorted(e.message.split(":")[0] for e in errs) == [
        "missing required input 'price' (f64)",
        "param 'half_life_s'",
    ]


def test_reference_to_node_with_bad_params_is_not_reported_again():
    errs = text_errors(
        HEAD
        + "nodes:\n  v:\n    type: estimators.ewma_vol\n    in: {price: source.mid}\n"
        + "    params: {half_life_s: 0}\n  s:\n    type: basic.ewma\n    in: {x: v.sigma}\n"
    )
    assert len(errs) == 1 and errs[0].location.node == "v"


def test_bad_node_name_reported_with_other_errors():
    errs = text_errors(HEAD + "nodes:\n  source:\n    type: basic.ewma\n  r:\n    type: nope.nope\n")
    messages = [e.message for e in errs]
    assert any("reserved" in m for m in messages) and any(
        "unknown node type 'nope.nope'" in m for m in messages
    )


def test_missing_plugin_folder_is_a_located_diagnostic_among_others():
    errs = text_errors(
        HEAD + "plugins: [does/not/exist]\nnodes:\n  r:\n    type: nope.nope\n", allow_plugins=True
    )
    assert [(e.location.line, e.message.split(":")[0]) for e in errs] == [
        (3, "node folder not found"),
        (6, "unknown node type 'nope.nope'"),
    ]


def test_default_tiers_are_usable():
    plan = load_plan(HEAD + NODE)
    assert {n.tier: n.every for n in plan.nodes} == {"hot": 1}


def test_errors_of_a_graph_are_flowmm_errors_with_exit_code_2():
    with pytest.raises(FlowmmError) as info:
        load_plan(BROKEN / "cycle.yaml")
    assert info.value.exit_code == 2


def test_unused_outputs_are_acknowledged_and_checked():
    spec = {
        "name": "u",
        "clock": {"on_book": True},
        "trace": ["ret.ret_bps"],
        "nodes": {"ret": {"type": "features.mid_return", "in": {"price": "source.mid"}}},
    }
    assert any("ret.rate_bps_s" in d.message for d in load_plan(spec).warnings)
    spec["nodes"]["ret"]["unused"] = ["rate_bps_s"]
    assert load_plan(spec, strict=True).warnings == []
    spec["nodes"]["ret"]["unused"] = ["rate"]
    with pytest.raises(GraphError, match="unused: ret has no output 'rate'"):
        load_plan(spec)
