"""flowmm.render: what the drawing contains, subsets, output paths, and a missing Graphviz."""

from __future__ import annotations

import html
import re
import shutil
import textwrap
from pathlib import Path

import graphviz
import pytest

from flowmm.core.plan import load_plan
from flowmm.errors import FlowmmError
from flowmm.render import (
    GraphvizMissing,
    format_value,
    key_params,
    output_path,
    render,
    tier_colours,
    to_dot,
)

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "graphs" / "demo.yaml"
HAS_DOT = shutil.which("dot") is not None

# Two tiny node types the built-in library does not have yet: a ladder producer (for the
# execution.ladder sink) and a probe of the synthetic truth (a diagnostic node).
PLUGIN = textwrap.dedent(
    '''
    from numba import njit
    from pydantic import Field

    from flowmm.core.node import In, Node, NodeParams, Out


    @njit(cache=True)
    def quoter_kernel(
        now, dt, params, mid, mid_ticked, sigma, sigma_ticked, drift, drift_ticked,
        fills_t, fills_r, fills_start, fills_end, ladder,
    ):  # fmt: skip
        return EMIT_Q.NONE


    @njit(cache=True)
    def probe_kernel(now, dt, params, truth, truth_ticked, mu):
        return EMIT_P.NONE


    class Quoter(Node):
        """Test ladder producer."""

        type_name = "rendertest.quoter"

        class Params(NodeParams):
            half_spread_bps: float = Field(5.0)
            levels: int = Field(3)
            size: float = Field(1.0)
            gamma: float = Field(0.1)
            reduce_only: bool = Field(False)

        inputs = {
            "mid": In("f64"),
            "sigma": In("f64"),
            "drift": In("f64", variadic=True),
            "fills": In("fills", optional=True),
        }
        outputs = {"ladder": Out("ladder")}
        kernel = quoter_kernel


    class Probe(Node):
        """Test reader of source.truth."""

        type_name = "rendertest.probe"
        inputs = {"truth": In("vec")}
        outputs = {"mu": Out("f64")}
        kernel = probe_kernel


    EMIT_Q, EMIT_P = Quoter.EMIT, Probe.EMIT
    '''
)


@pytest.fixture(scope="module")
def rich(tmp_path_factory):
    """A plan with every feature the drawing shows: sinks, exec streams, a custom tier, a probe."""
    folder = tmp_path_factory.mktemp("render_nodes")
    (folder / "render_test_nodes.py").write_text(PLUGIN)
    spec = {
        "name": "rich",
        "clock": {"on_book": True},
        "tiers": {"hot": 1, "warm": 3, "slow": {"every": 20, "phase": 5}},
        "execution": {"ladder": "quote.ladder", "cancel": "burst.cancel"},
        "trace": ["ret.ret_bps", "probe.mu"],
        "nodes": {
            "ret": {"type": "features.mid_return", "in": {"price": "source.mid"}},
            "vol": {
                "type": "estimators.ewma_vol",
                "in": {"price": "source.mid"},
                "params": {"half_life_s": 120},
            },
            "vol_s": {"type": "basic.ewma", "tier": "slow", "in": {"x": "vol.sigma"}},
            "flow": {"type": "features.trade_flow", "tier": "warm", "in": {"trades": "source.trades"}},
            "fused": {"type": "estimators.obs_fusion", "in": {"obs": ["flow.obs"]}},
            "quote": {
                "type": "rendertest.quoter",
                "in": {
                    "mid": "source.mid",
                    "sigma": "vol_s.mean",
                    "drift": ["fused.mean", "ret.rate_bps_s"],
                    "fills": "exec.fills",
                },
                "params": {"levels": 6, "gamma": 0.25},
            },
            "burst": {"type": "quoting.burst_cancel", "in": {"trades": "source.trades"}},
            "probe": {"type": "rendertest.probe", "diagnostic": True, "in": {"truth": "source.truth"}},
        },
    }
    return load_plan(spec, node_dirs=[folder])


@pytest.fixture(scope="module")
def demo():
    return load_plan(DEMO)


def node_ids(source: str) -> set[str]:
    """Ids of every node statement in DOT source (not graph/node/edge defaults, not edges)."""
    ids = set()
    for line in source.splitlines():
        m = re.match(r'^\s*("(?:[^"\\]|\\.)*"|[A-Za-z_][\w]*) \[', line)
        if m and "->" not in line:
            ids.add(m.group(1).strip('"'))
    return ids - {"graph", "node", "edge"}


def plan_nodes(source: str) -> set[str]:
    """Graph-node names in DOT source: ids without a dot (streams, sinks and legend have one)."""
    return {i for i in node_ids(source) if "." not in i}


def edges(source: str) -> list[tuple[str, str, str]]:
    """(tail, head, attribute text) of every edge statement."""
    out = []
    for m in re.finditer(r'^\s*("[^"]*"|\w+) -> ("[^"]*"|\w+) \[(.*)\]$', source, re.M):
        out.append((m.group(1).strip('"'), m.group(2).strip('"'), m.group(3)))
    return out


def node_attrs(source: str, name: str) -> str:
    m = re.search(rf'^\s*"?{re.escape(name)}"? \[(.*)\]$', source, re.M)
    assert m, f"no node statement for {name}"
    return m.group(1)


# -- content -----------------------------------------------------------------------------------


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz dot binary not installed")
def test_demo_svg_contains_every_node_and_stream(demo, tmp_path):
    out = render(demo, tmp_path / "demo.svg")
    assert out == tmp_path / "demo.svg"
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    for n in demo.nodes:
        assert f"<title>{n.name}</title>" in svg, n.name
        assert n.type_name in svg
    streams = {demo.ports[p].address for n in demo.nodes for b in n.inputs for p in b.ports} - {
        n.name + "." + port for n in demo.nodes for port, _ in n.outputs
    }
    assert streams == {"source.mid", "source.trades"}
    for s in streams:
        assert f"<title>{s}</title>" in svg
    assert "obs -> obs[0] : obs" in html.unescape(svg)  # variadic edge label, with its index
    assert demo.version_hash in svg
    assert "execution.cancel" in svg and "interrupt" in svg


def test_clusters_group_nodes_by_type_group(rich):
    src = to_dot(rich).source
    clusters = {}
    for m in re.finditer(r"subgraph (cluster_\w+) \{(.*?)\n\t\}", src, re.S):
        clusters[m.group(1)] = plan_nodes(m.group(2)) | {
            i for i in node_ids(m.group(2)) if i.startswith(("source.", "exec.", "execution."))
        }
    assert clusters["cluster_sources"] == {"source.mid", "source.trades", "source.truth"}
    assert clusters["cluster_group_features"] == {"ret", "flow"}
    assert clusters["cluster_group_estimators"] == {"vol", "fused"}
    assert clusters["cluster_group_basic"] == {"vol_s"}
    assert clusters["cluster_group_quoting"] == {"burst"}
    assert clusters["cluster_group_rendertest"] == {"quote", "probe"}
    assert clusters["cluster_execution"] == {"exec.fills", "execution.ladder", "execution.cancel"}
    assert "cluster_legend" in clusters
    # unread streams are not drawn
    assert "source.book" not in src and "exec.position" not in src


def test_node_styles_follow_tier_trigger_and_diagnostic(rich):
    src = to_dot(rich).source
    colours = tier_colours(rich)
    assert colours["hot"] != colours["warm"] != colours["slow"] != colours["hot"]
    assert f'fillcolor="{colours["hot"]}"' in node_attrs(src, "ret")
    assert f'fillcolor="{colours["warm"]}"' in node_attrs(src, "flow")
    assert f'fillcolor="{colours["slow"]}"' in node_attrs(src, "vol_s")
    assert "slow (every 20, phase 5)" in node_attrs(src, "vol_s")
    burst = node_attrs(src, "burst")
    assert "peripheries=2" in burst and "· " in burst and "event" in burst
    assert not any(f'fillcolor="{c}"' in burst for c in colours.values())
    assert "dashed" in node_attrs(src, "probe")
    assert "dashed" not in node_attrs(src, "ret")
    # graph label: name, version hash, clock
    assert "rich" in src and rich.version_hash in src and "quote on every book update" in src


def test_node_label_shows_changed_params_first_at_most_four(rich):
    quote = rich.node("quote")
    keys = [k for k, _, _ in key_params(quote)]
    assert keys[:2] == ["levels", "gamma"]  # the two set in the YAML, before the defaults
    label = node_attrs(to_dot(rich).source, "quote")
    assert "levels=6" in label and "gamma=0.25" in label and "half_spread_bps=5" in label
    # 5 params: 3 lines + "… 2 more"; size and reduce_only are left out
    assert ">size=1<" not in label and "reduce_only" not in label and "… 2 more" in label
    assert label.count('point-size="9"') == 1 + 4  # the type line + 4 param lines
    assert "half_life_s=120" in node_attrs(to_dot(rich).source, "vol")


def test_edges_one_per_wired_source_with_labels(rich):
    es = edges(to_dot(rich).source)
    into_quote = {(t, a) for t, h, a in es if h == "quote"}
    tails = sorted(t for t, _ in into_quote)
    assert tails == ["exec.fills", "fused", "ret", "source.mid", "vol_s"]
    labels = {t: a for t, a in into_quote}
    assert 'label="mean -> drift[0] : f64"' in labels["fused"]
    assert 'label="rate_bps_s -> drift[1] : f64"' in labels["ret"]
    assert 'label="mid -> mid : f64"' in labels["source.mid"]
    assert "style=bold" in labels["exec.fills"] and "style=bold" not in labels["vol_s"]
    bold = {(t, h) for t, h, a in es if "style=bold" in a}
    assert bold == {("source.trades", "flow"), ("source.trades", "burst"), ("exec.fills", "quote")}
    sinks = {h: a for t, h, a in es if h.startswith("execution.")}
    assert set(sinks) == {"execution.ladder", "execution.cancel"}
    assert "dashed" in sinks["execution.cancel"] and "#d62728" in sinks["execution.cancel"]
    assert "interrupt" in sinks["execution.cancel"] and "dashed" not in sinks["execution.ladder"]
    assert ("quote", "execution.ladder") in {(t, h) for t, h, _ in es}
    wired = sum(len(b.ports) for n in rich.nodes for b in n.inputs)
    graph_edges = [e for e in es if not e[0].startswith("legend.")]
    assert len(graph_edges) == wired + 2  # + ladder and cancel sinks


def test_legend_lists_tiers_with_period_and_phase(rich):
    src = to_dot(rich).source
    legend = re.search(r"subgraph cluster_legend \{(.*?)\n\t\}", src, re.S).group(1)
    assert "hot: every 1 cycle<" in legend and "warm: every 3 cycles" in legend
    assert "slow: every 20 cycles, phase 5" in legend
    for text in ("event-triggered", "diagnostic: true", "batch edge", "interrupt"):
        assert text in legend


# -- subsets -----------------------------------------------------------------------------------


def test_upstream_keeps_node_and_ancestors(rich):
    src = to_dot(rich, upstream="quote").source
    assert plan_nodes(src) == {"quote", "vol_s", "vol", "fused", "flow", "ret"}
    ids = node_ids(src)
    assert {"source.mid", "source.trades", "exec.fills"} <= ids
    assert "source.truth" not in ids  # only the probe reads it
    assert "execution.ladder" not in ids and "execution.cancel" not in ids
    assert "upstream of quote" in src


def test_downstream_keeps_node_descendants_and_reached_sink(rich):
    src = to_dot(rich, downstream="vol").source
    assert plan_nodes(src) == {"vol", "vol_s", "quote"}
    ids = node_ids(src)
    assert "execution.ladder" in ids and "execution.cancel" not in ids
    assert "source.mid" in ids and "exec.fills" in ids and "source.trades" not in ids
    # edges from nodes that were cut off are not drawn
    assert {t for t, h, _ in edges(src) if h == "quote"} == {"vol_s", "source.mid", "exec.fills"}


def test_upstream_and_downstream_together_is_the_union(rich):
    src = to_dot(rich, upstream="fused", downstream="burst").source
    assert plan_nodes(src) == {"fused", "flow", "burst"}
    ids = node_ids(src)
    assert "execution.cancel" in ids and "execution.ladder" not in ids


def test_demo_subset_by_name(demo):
    assert plan_nodes(to_dot(demo, upstream="vol_smooth").source) == {"vol_smooth", "vol"}
    assert plan_nodes(to_dot(demo, downstream="flow").source) == {"flow", "fused"}
    assert plan_nodes(to_dot(demo).source) == {n.name for n in demo.nodes}


def test_unknown_subset_node_names_close_matches(demo):
    with pytest.raises(FlowmmError) as exc:
        to_dot(demo, upstream="vol_smoth")
    err = exc.value
    assert "vol_smoth" in err.message and "--upstream" in err.message
    assert "vol_smooth" in err.hint
    assert err.exit_code == 1
    with pytest.raises(FlowmmError, match="--downstream"):
        render(demo, "unused.svg", downstream="nope_nothing_close")


# -- files -------------------------------------------------------------------------------------


def test_dot_format_needs_no_binary(demo, tmp_path, monkeypatch):
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    out = render(demo, tmp_path / "sub" / "graph", fmt="dot")
    assert out == tmp_path / "sub" / "graph.dot"
    src = out.read_text()
    assert src.startswith("digraph demo {")
    assert plan_nodes(src) == {n.name for n in demo.nodes}


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz dot binary not installed")
def test_png_is_written(demo, tmp_path):
    out = render(demo, tmp_path / "g.svg", fmt="png")
    assert out == tmp_path / "g.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_binary_writes_dot_and_says_how_to_install(demo, tmp_path, monkeypatch):
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(GraphvizMissing) as exc:
        render(demo, tmp_path / "out" / "demo.svg")
    err = exc.value
    dot_file = tmp_path / "out" / "demo.dot"
    assert dot_file.exists() and plan_nodes(dot_file.read_text()) == {n.name for n in demo.nodes}
    assert not (tmp_path / "out" / "demo.svg").exists()
    assert str(dot_file) in err.message
    assert "apt-get install graphviz" in err.hint and "brew install graphviz" in err.hint
    assert isinstance(err, FlowmmError) and err.exit_code == 1


def test_executable_not_found_from_graphviz_is_handled(demo, tmp_path, monkeypatch):
    monkeypatch.setattr("flowmm.render.shutil.which", lambda name: "/usr/bin/dot")

    def boom(self, *args, **kwargs):
        raise graphviz.ExecutableNotFound(("dot",))

    monkeypatch.setattr(graphviz.Digraph, "pipe", boom)
    with pytest.raises(GraphvizMissing, match="demo.dot") as exc:
        render(demo, tmp_path / "demo", fmt="png")
    assert (tmp_path / "demo.dot").read_text().startswith("digraph demo {")
    assert "apt-get install graphviz" in exc.value.hint


def test_unknown_format(demo, tmp_path):
    with pytest.raises(FlowmmError, match="format") as exc:
        render(demo, tmp_path / "g.pdf", fmt="pdf")
    assert "svg" in exc.value.hint


@pytest.mark.parametrize(
    "out,fmt,expected",
    [
        ("g.svg", "svg", "g.svg"),
        ("g", "svg", "g.svg"),
        ("g.svg", "png", "g.png"),
        ("g.PNG", "png", "g.PNG"),
        ("g.dot", "svg", "g.svg"),
        ("graph.v2", "svg", "graph.v2.svg"),
        ("dir/g", "dot", "dir/g.dot"),
    ],
)
def test_output_path_rule(out, fmt, expected):
    assert output_path(out, fmt) == Path(expected)


@pytest.mark.parametrize(
    "value,text",
    [
        (300.0, "300"),
        (0.05, "0.05"),
        (1e-5, "1e-5"),
        (123456.0, "1.235e5"),
        (4, "4"),
        (True, "true"),
        (None, "none"),
    ],
)
def test_format_value_is_compact(value, text):
    assert format_value(value) == text
