"""The shipped examples work: graphs, docs/examples, the demo event file and its converter."""

import importlib.util
import json
import os
from pathlib import Path

import pytest

import flowmm
from flowmm.sources import Events

ROOT = Path(__file__).resolve().parents[1]
DEMO_EVENTS = ROOT / "flowmm/examples/btc_20250126_events.jsonl"
SHARED = Path(os.environ.get("FLOWMM_SHARED_DATA", ROOT.parent / "shared" / "data"))
CAPTURE = SHARED / "hyperliquid/hftbacktest_ws_capture/btcusd_20250126.gz"


def _module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# The four flagship graphs read the execution layer and asset contexts, which a bare event file
# does not carry; tests/graphs/test_flagship.py validates them strictly and runs them on the
# synthetic market and the real BTC hour with a paper broker.
# rfc_unified_calibrated.yaml likewise (tests/calibrate validates and runs it on trend_down).
FLAGSHIP = {
    "legacy.yaml",
    "rfc_unified.yaml",
    "bayes_e2e.yaml",
    "glft_minimal.yaml",
    "rfc_unified_calibrated.yaml",
}
EXAMPLES = [g for g in sorted(ROOT.glob("graphs/*.yaml")) if g.name not in FLAGSHIP]


@pytest.mark.parametrize("graph", EXAMPLES + [ROOT / "docs/examples/spread.yaml"], ids=lambda p: p.name)
def test_example_graphs_validate_strictly_and_run_on_the_demo_events(graph):
    run = flowmm.load_graph(graph, strict=True).run(Events.from_file(DEMO_EVENTS))
    assert run.summary["events"] == 109
    assert run.summary["cycles"] > 0


def test_demo_fires_two_burst_cancels_on_the_real_btc_events():
    run = flowmm.load_graph(ROOT / "graphs/demo.yaml").run(Events.from_file(DEMO_EVENTS))
    assert run.interrupts == [(1737918802071000000, -1.0), (1737918865696000000, 1.0)]
    assert run.summary["cycles"] == 74


def test_broken_example_reports_its_six_errors():
    with pytest.raises(flowmm.GraphError) as err:
        flowmm.load_graph(ROOT / "docs/examples/broken.yaml")
    assert len(err.value.errors) == 6


def test_scheduling_example_matches_its_logged_engine(capsys):
    _module(ROOT / "docs/examples/scheduling_example.py").main()
    out = capsys.readouterr().out
    assert "| event | 1.3 | `burst` | dt=0.3; reads 2 trades; emits cancel=1 |" in out
    assert "interrupts: [(1.3, 1.0)]" in out


def test_demo_events_are_sorted_and_regenerate_from_the_capture(tmp_path):
    ev = Events.from_file(DEMO_EVENTS)
    assert len(ev.table) == 109 and ev.table.kinds_present() == {"book", "trade"}
    if not CAPTURE.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"missing shared data file {CAPTURE}")
        pytest.skip(f"shared data not found: {CAPTURE}")
    out = tmp_path / "events.jsonl"
    assert (
        _module(ROOT / "scripts/make_demo_events.py").main(["--input", str(CAPTURE), "--output", str(out)])
        == 0
    )
    assert out.read_text() == DEMO_EVENTS.read_text()
    tids = [json.loads(l)["tid"] for l in out.read_text().splitlines()[1:] if '"trade"' in l]
    assert len(tids) == len(set(tids)) == 64


def test_writing_a_node_shows_the_example_node_verbatim():
    """docs/writing-a-node.md's complete example is the file that tests run (spread.yaml)."""
    doc = (ROOT / "docs/writing-a-node.md").read_text()
    block = doc.split("```python\n", 1)[1].split("```\n", 1)[0]
    assert block == (ROOT / "docs/examples/nodes/spread_bps.py").read_text()
