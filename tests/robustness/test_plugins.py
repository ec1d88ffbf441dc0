"""A graph file never runs code its caller did not allow: ``plugins:`` needs --allow-plugins."""

from __future__ import annotations

from pathlib import Path

import pytest

import flowmm

MARKER_PLUGIN = """
from pathlib import Path
Path({marker!r}).write_text("ran")
"""


def _graph(tmp_path: Path) -> Path:
    (tmp_path / "evil").mkdir()
    marker = tmp_path / "ran.txt"
    (tmp_path / "evil" / "x.py").write_text(MARKER_PLUGIN.format(marker=str(marker)))
    g = tmp_path / "g.yaml"
    g.write_text(
        "name: g\nclock: {quote_every_ms: 1000}\nplugins: [evil]\n"
        "nodes:\n  v: {type: estimators.ewma_vol, in: {price: source.mid}}\n"
    )
    return g


@pytest.mark.parametrize("command", ["validate", "render", "run", "compare", "calibrate"])
def test_plugins_are_not_imported_without_allow_plugins(command, cli_run, tmp_path):
    g = _graph(tmp_path)
    argv = {
        "validate": ["validate", g],
        "render": ["render", g, "-o", tmp_path / "g.dot", "--format", "dot"],
        "run": ["run", g, "--source", "synthetic", "--duration", "10s", "--out", tmp_path / "r"],
        "compare": ["compare", g, g, "--seeds", "0", "--duration", "10s", "--out", tmp_path / "c"],
        "calibrate": ["calibrate", g, "--source", "synthetic", "--seeds", "0", "--out", tmp_path / "p.yaml"],
    }[command]
    code, text = cli_run(*argv)
    assert code == 2, text
    assert f"{g}:3:" in text and "would import and run the Python files of" in text
    assert str(tmp_path / "evil") in text and "--allow-plugins" in text
    assert not (tmp_path / "ran.txt").exists()


def test_the_python_api_needs_allow_plugins_too(tmp_path):
    g = _graph(tmp_path)
    with pytest.raises(flowmm.GraphError, match="would import and run"):
        flowmm.load_graph(g)
    assert not (tmp_path / "ran.txt").exists()
    flowmm.load_graph(g, allow_plugins=True)
    assert (tmp_path / "ran.txt").read_text() == "ran"


def test_validate_with_allow_plugins_loads_them(cli_run, tmp_path):
    g = _graph(tmp_path)
    g.write_text(g.read_text().replace("evil", "evil2"))
    (tmp_path / "evil").rename(tmp_path / "evil2")  # a new folder: not yet imported in this process
    code, text = cli_run("validate", "--allow-plugins", g)
    assert code == 0, text
    assert (tmp_path / "ran.txt").exists()
