"""A calibrated params file, included with ``params_from:``: merged, located errors, and the
calibrated example of rfc_unified (issue 12, "Done when" 3)."""

from pathlib import Path

import pytest
import yaml

import flowmm
from flowmm.cli import main
from flowmm.errors import GraphError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "graphs" / "rfc_unified_calibrated.yaml"
PARAMS = ROOT / "graphs" / "params" / "rfc_unified_synthetic.yaml"
REPORT = ROOT / "docs" / "examples" / "calibration" / "report.md"

GRAPH = """name: inc
clock: {quote_every_ms: 1000}
params_from: PARAMS
nodes:
  bim: {type: features.bim, in: {book: source.book}, params: {depth_ref_usd: 1.0e+5}}
  fused: {type: estimators.obs_fusion, in: {obs: [bim.obs]}}
"""


def _graph(tmp_path, params: str, ref="p.yaml") -> Path:
    (tmp_path / "p.yaml").write_text(params)
    g = tmp_path / "g.yaml"
    g.write_text(GRAPH.replace("PARAMS", ref))
    return g


def test_params_are_merged_into_the_nodes_and_change_the_hash(tmp_path):
    g = _graph(tmp_path, "params:\n  bim: {alpha: 0.05, sigma: 0.3}\ncalibration: {any: [record]}\n")
    graph = flowmm.load_graph(g)
    p = graph.plan.node("bim").node.params
    assert (p.alpha, p.sigma, p.depth_ref_usd) == (0.05, 0.3, 1e5)
    (tmp_path / "p.yaml").write_text("params:\n  bim: {alpha: 0.06, sigma: 0.3}\n")
    assert flowmm.load_graph(g).version_hash != graph.version_hash


@pytest.mark.parametrize(
    "params, line, message",
    [
        ("params:\n  bimm: {alpha: 1}\n", 2, "params file sets node 'bimm', which the graph does not have"),
        ("params:\n  bim: {alpah: 1}\n", 2, "unknown param 'alpah' for features.bim"),
        ("params:\n  bim:\n    depth_ref_usd: 2.0e+5\n", 3, "set both in the graph and in the params file"),
        ("params:\n  bim:\n    sigma: -1\n", 3, "param 'sigma': Input should be greater than 0"),
        ("params:\n  bim: {alpha: 1}\nextra: 2\n", 3, "unknown key 'extra' in params file"),
        ("- just a list\n", 1, "a params file is a mapping"),
    ],
)
def test_bad_params_files_are_located_errors(tmp_path, params, line, message):
    g = _graph(tmp_path, params)
    with pytest.raises(GraphError) as exc:
        flowmm.load_graph(g)
    d = exc.value.errors[0]
    assert message in d.message
    assert d.location.file == str(tmp_path / "p.yaml") and d.location.line == line


def test_missing_params_file_is_located_in_the_graph(tmp_path):
    g = _graph(tmp_path, "params: {}\n", ref="nope.yaml")
    with pytest.raises(GraphError, match="params file not found") as exc:
        flowmm.load_graph(g)
    assert exc.value.errors[0].location.file == str(g) and exc.value.errors[0].location.line == 3


def test_the_calibrated_example_validates_and_runs(tmp_path, capsys):
    assert main(["validate", "--strict", str(EXAMPLE)]) == 0
    drift = flowmm.load_graph(EXAMPLE).plan.node("drift").node.params
    core = yaml.safe_load(PARAMS.read_text())["params"]["drift"]
    assert drift.kappa_mu == core["kappa_mu"] and drift.sigma_fill == core["sigma_fill"]
    out = tmp_path / "run"
    argv = ["run", str(EXAMPLE), "--source", "synthetic", "--scenario", "trend_down", "--duration", "3m"]
    assert main(argv + ["--out", str(out), "--no-progress"]) == 0
    assert (out / "trace.parquet").exists()


def test_the_example_removes_exactly_what_the_report_recommends():
    doc = yaml.safe_load(PARAMS.read_text())
    rejected, admitted = set(doc["calibration"]["rejected"]), doc["calibration"]["admitted"]
    spec = flowmm.load_graph(EXAMPLE).plan.spec
    assert rejected and not rejected & set(spec.nodes)
    obs = [r.split(".")[0] for r in spec.nodes["drift"].in_["obs"]]
    assert sorted(obs) == sorted(admitted)
    report = REPORT.read_text()
    for name in rejected:
        assert f"remove {name}: delete node `{name}` and `{name}.obs` from `drift.in.obs`" in report
    # the original graph still has them all: the example is what following the report gives
    original = flowmm.load_graph(ROOT / "graphs" / "rfc_unified.yaml").plan.spec
    assert rejected <= set(original.nodes)


def test_the_params_file_also_includes_into_the_uncalibrated_graph(tmp_path):
    """Only admitted features get params, so the file includes into rfc_unified as it is."""
    text = (ROOT / "graphs" / "rfc_unified.yaml").read_text()
    text = text.replace("instrument:", f"params_from: {PARAMS}\ninstrument:", 1)
    g = tmp_path / "rfc_with_params.yaml"
    g.write_text(text)
    plan = flowmm.load_graph(g, strict=True).plan
    assert plan.node("bim").node.params.alpha == yaml.safe_load(PARAMS.read_text())["params"]["bim"]["alpha"]
