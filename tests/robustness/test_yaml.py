"""Hostile YAML: alias bombs, deep nesting, invalid UTF-8 end in located errors, fast."""

from __future__ import annotations

import json

import pytest

import flowmm

HEAD = "name: g\nclock: {quote_every_ms: 1000}\n"
NODES = "nodes:\n  v: {type: estimators.ewma_vol, in: {price: source.mid}}\n"


def bomb(levels: int = 9) -> str:
    """~700 bytes that expand to 9**levels strings (the "billion laughs")."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        p = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{','.join([p] * 9)}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_in_a_graph_is_a_located_error(tmp_path, cli_run):
    g = tmp_path / "g.yaml"
    g.write_text(HEAD + "description: x\n" + bomb().replace("a0:", "x0:", 1) + NODES)
    assert len(bomb()) < 1000
    code, text = cli_run("validate", g)
    assert code == 2 and f"{g}:4:" in text and "anchors and aliases" in text


def test_an_alias_bomb_through_params_from_is_a_located_error(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "params:\n  v: {half_life_s: 5}\ncalibration:\n" + "  " + bomb().replace("\n", "\n  ")
    )
    (tmp_path / "g.yaml").write_text(HEAD + "params_from: p.yaml\n" + NODES)
    with pytest.raises(flowmm.GraphError) as exc:
        flowmm.load_graph(tmp_path / "g.yaml")
    d = exc.value.errors[0]
    assert d.location.file == str(tmp_path / "p.yaml") and d.location.line == 4
    assert "anchors and aliases" in d.message


def test_a_single_alias_is_refused_too():
    with pytest.raises(flowmm.GraphError, match="anchors and aliases") as exc:
        flowmm.load_graph(HEAD + "tiers: &t {hot: 1}\n" + NODES)
    assert exc.value.errors[0].location.line == 3


def test_deeply_nested_yaml_is_a_located_error(tmp_path, cli_run):
    g = tmp_path / "g.yaml"
    g.write_text(HEAD + "description: " + "[" * 100000 + "]" * 100000 + "\n" + NODES)
    code, text = cli_run("validate", g)
    assert code == 2 and f"{g}:3:" in text and "nested deeper than" in text


def test_invalid_utf8_is_a_located_error(tmp_path, cli_run):
    g = tmp_path / "g.yaml"
    g.write_bytes((HEAD + "description: caf").encode() + b"\xe9\xff\n" + NODES.encode())
    code, text = cli_run("validate", g)
    assert code == 2 and f"{g}:3:17:" in text and "not UTF-8" in text


@pytest.mark.parametrize("name", ["../../../x", "a/b", "..", ".hidden", "a b", "x" * 101, "名前", ""])
def test_unsafe_graph_names_are_refused(name, tmp_path, cli_run, monkeypatch):
    monkeypatch.chdir(tmp_path)
    g = tmp_path / "g.yaml"
    g.write_text(f"name: {json.dumps(name)}\nclock: {{quote_every_ms: 1000}}\n" + NODES)
    code, text = cli_run("run", g, "--source", "synthetic", "--duration", "10s", "--no-progress")
    assert code == 2 and f"{g}:1:" in text and "not a safe file name" in text
    assert not (tmp_path / "runs").exists() and not (tmp_path.parent / "x").exists()


def test_ordinary_names_are_fine():
    for name in ("rfc_unified", "glft-minimal.v2", "A1"):
        flowmm.load_graph(f"name: {name}\nclock: {{quote_every_ms: 1000}}\n" + NODES)


def test_an_alias_bomb_in_calibrate_previous_is_a_located_error(tmp_path):
    from flowmm.cli import _previous_params
    from flowmm.errors import UsageError

    prev = tmp_path / "old.yaml"
    prev.write_text("params: {}\ncalibration:\n  " + bomb().replace("\n", "\n  "))
    with pytest.raises(UsageError, match="--previous: cannot read .*anchors and aliases") as exc:
        _previous_params(str(prev))  # what `flowmm calibrate --previous FILE` reads
    assert exc.value.location.file == str(prev) and exc.value.location.line == 3
